"""msc and msc_conditional by lazy greedy evaluation: the same choice, far less work.

A structure's msc score ``novelty + H_s`` can only fall as the subset grows: every chosen
structure adds kernel terms to ``S(x)``, so ``-min_x log S(x)`` decreases.  A score
computed against the first ``j`` chosen structures is therefore an upper bound of the
score against all ``m >= j`` of them (Minoux's lazy greedy).  Each rank keeps its
structures in a heap by their last score.  Each step the ranks show each other their
heap's top; while the best shown is stale, the ranks whose stale tops could still win
bring them up to date, folding in the chosen structures they have not seen; once the
best shown is exact, it is the msc choice (ties to the lowest structure index).

Every structure's ``log S`` is folded one chosen structure at a time in choice order
(:func:`quests_hpc._fold_kernels.fold_rows`, on products from BLAS in blocks of a fixed
shape), and a row's result does not depend on the other rows it is computed with
(structures brought up to date together share the products).  So every exact score is
bitwise the eager one, whichever structures are brought up to date when and on which rank: the
choice does not depend on the number of ranks, and it is upstream's (which recomputes
every structure every step).

Every rank keeps the chosen structures' environments (the subset: it is the output);
each rank's candidates stay on it.  Collective where ``comm`` is taken.
"""

import heapq
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._fold_kernels import fold_rows
from ..information import blas_one_thread
from ..parallel import comm as pcomm
from ..threads import get_num_threads

#: Stale structures brought up to date together.
REFRESH_BATCH = 16
#: Rows of the batch per BLAS product (a fixed shape: see ``LazyMsc._refresh``).
ROW_BLOCK = 256
#: Columns (rows of chosen structures) per BLAS product at most.
MAX_COLUMNS = 8192


class LazyMsc:
    """The msc state of this rank's structures (see the module doc).

    ``log_ref``: per structure, ``log S`` against a reference set (msc_conditional), or
    None.
    """

    def __init__(self, data, log_ref=None):
        self.data, self.lo = data, data.lo
        self.ent = np.asarray(data.entropies, dtype=float)
        self.log = [np.full(len(x), -np.inf) for x in data.x]
        self.ref = log_ref
        self.upto = np.zeros(len(data.x), dtype=np.int64)
        self.chosen, self.xc, self.nxc, self.centre = [], [], [], None
        self.cs = -0.5 / data.h ** 2
        nt = get_num_threads()
        self.pool = ThreadPoolExecutor(max_workers=nt) if nt > 1 else None
        self.bound = np.full(len(data.x), np.inf)
        self.novelty = np.full(len(data.x), np.inf)
        if log_ref is not None:
            for i in range(len(data.x)):
                self._score(i)
        self.heap = [(-b, self.lo + i) for i, b in enumerate(self.bound)]
        heapq.heapify(self.heap)
        self.refreshed = 0  # structure-folds done (a measure of the work)

    def _score(self, i):
        tot = self.log[i] if self.ref is None else np.logaddexp(self.ref[i], self.log[i])
        self.novelty[i] = -tot.min()
        self.bound[i] = self.novelty[i] + self.ent[i]

    def _refresh(self, batch):
        """Fold every chosen structure not yet seen into the structures ``batch``.

        The products of the batch's rows with the pending chosen structures' rows come
        from BLAS in blocks of exactly ``ROW_BLOCK`` rows (zero-padded: the same shape
        whatever the batch) and at most ``MAX_COLUMNS`` columns of whole structures; the
        exponentials, sums and ordered folds from :func:`fold_rows`.
        """
        m = len(self.chosen)
        batch = batch[np.argsort(self.upto[batch], kind="stable")]  # blocks of like rows
        upto = self.upto[batch]
        y = np.concatenate([self.data.x[i] for i in batch]) - self.centre
        ny = np.einsum("ij,ij->i", y, y)
        log = np.concatenate([self.log[i] for i in batch])
        first = np.repeat(upto, [len(self.log[i]) for i in batch])
        for ja, jb in _column_chunks(self.nxc, int(upto.min()), m):
            xc = np.concatenate(self.xc[ja:jb])
            nx = np.concatenate(self.nxc[ja:jb])
            seg = np.concatenate([[0], np.cumsum([len(v) for v in self.nxc[ja:jb]])])
            rel = np.maximum(first - ja, 0)
            _fold_blocks(y, ny, xc, nx, seg.astype(np.int64), rel, log, self.cs, self.pool)
        a = 0
        for i in batch:
            n = len(self.log[i])
            self.log[i] = log[a:a + n]
            a += n
        self.refreshed += int((m - upto).sum())
        self.upto[batch] = m
        for i in batch:
            self._score(i)

    def top(self):
        """``(bound, structure, exact)`` of the heap's top (``(-inf, -1, True)`` if none)."""
        if not self.heap:
            return -np.inf, -1, True
        negb, s = self.heap[0]
        return -negb, s, bool(self.upto[s - self.lo] == len(self.chosen))

    def refresh_top(self, floor):
        """Bring up to date the stale structures at the heap's top whose bound is at
        least ``floor`` (at most ``REFRESH_BATCH`` of them)."""
        m, batch = len(self.chosen), []
        while self.heap and len(batch) < REFRESH_BATCH:
            negb, s = self.heap[0]
            if -negb < floor or self.upto[s - self.lo] == m:
                break
            batch.append(heapq.heappop(self.heap)[1] - self.lo)
        if batch:
            self._refresh(np.array(batch))
            for i in batch:
                heapq.heappush(self.heap, (-self.bound[i], self.lo + i))

    def take(self, s):
        """Remove this rank's structure ``s`` (the heap's top) from the candidates."""
        negb, top = heapq.heappop(self.heap)
        assert top == s, (top, s)

    def add_chosen(self, x):
        """A new chosen structure; kept centred on ``centre`` (the first one's mean, the
        same bits on every rank)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if self.centre is None:
            self.centre = x.mean(axis=0)
        xc = x - self.centre
        self.chosen.append(x)
        self.xc.append(xc)
        self.nxc.append(np.einsum("ij,ij->i", xc, xc))


def _column_chunks(nxc, j0, m):
    """Runs ``[ja, jb)`` of chosen structures ``j0 .. m-1`` of at most ``MAX_COLUMNS``
    rows each (at least one structure per run)."""
    ja, cols = j0, 0
    for j in range(j0, m):
        if cols and cols + len(nxc[j]) > MAX_COLUMNS:
            yield ja, j
            ja, cols = j, 0
        cols += len(nxc[j])
    if ja < m:
        yield ja, m


def _fold_blocks(y, ny, xc, nx, seg, first, log, cs, pool=None):
    """:func:`fold_rows` over ``y`` in zero-padded blocks of ``ROW_BLOCK`` rows, each
    against the segments from the first one a row of the block needs (rows sorted by
    ``first``: a block's rows need about the same).  With a thread ``pool`` the blocks
    are shared among its threads (a row's result is the same on any thread)."""
    n_seg = len(seg) - 1
    starts = [r0 for r0 in range(0, len(y), ROW_BLOCK)
              if int(first[r0:r0 + ROW_BLOCK].min()) < n_seg]

    def run(part):
        block = np.zeros((ROW_BLOCK, y.shape[1]))
        for r0 in part:
            r1 = min(r0 + ROW_BLOCK, len(y))
            j = int(first[r0:r1].min())
            block[:r1 - r0] = y[r0:r1]
            block[r1 - r0:] = 0.0
            c = int(seg[j])
            g = block @ xc[c:].T
            fold_rows(g[:r1 - r0], ny[r0:r1], nx[c:], seg[j:] - c, first[r0:r1] - j,
                      log[r0:r1], cs)

    with blas_one_thread():
        if pool is None or len(starts) < 2:
            run(starts)
            return
        nt = pool._max_workers
        for f in [pool.submit(run, starts[t::nt]) for t in range(nt)]:
            f.result()


def lazy_msc(comm, data, size, log_ref=None):
    """The msc choice of ``size`` structures (msc_conditional with ``log_ref``).

    Returns ``(order, novelty, work)``: the chosen structures, the novelty of each when
    it was chosen (+inf for msc's first pick by entropy) and this rank's structure-folds.
    """
    state = LazyMsc(data, log_ref)
    order, novelty = [], []
    if log_ref is None:  # msc's first pick: the largest entropy
        i = int(np.argmax(state.ent)) if len(state.ent) else -1
        v = float(state.ent[i]) if i >= 0 else -np.inf
        _, (s,), owner = pcomm.argmax_with_key(v, (data.lo + i if i >= 0 else -1,), comm)
        _choose(comm, data, state, s, owner, order, novelty, first=True)
    try:
        while len(order) < size:
            s, owner = _global_best(comm, state)
            _choose(comm, data, state, s, owner, order, novelty)
    finally:
        if state.pool is not None:
            state.pool.shutdown()
    return order, np.array(novelty), state.refreshed


def _global_best(comm, state):
    """``(structure, owner rank)`` of the largest exact score over all ranks, ties to the
    lowest structure.  Rounds: every rank shows its heap's top; when the best of them is
    exact it is the answer (every other score is at most its bound); else the ranks whose
    stale tops reach the best exact score shown bring a batch up to date (one small
    allgather per round; only structures that could still win are refreshed)."""
    while True:
        tops = pcomm.allgather(state.top(), comm)
        owner = max(range(len(tops)), key=lambda r: (tops[r][0], -tops[r][1]))
        if tops[owner][2]:
            return tops[owner][1], owner
        state.refresh_top(max((t[0] for t in tops if t[2]), default=-np.inf))


def _choose(comm, data, state, s, owner, order, novelty, first=False):
    """Record the choice of ``s`` (held by rank ``owner``) on every rank."""
    payload = None
    if comm.rank == owner:
        i = s - data.lo
        if first:
            state.heap.remove((-state.bound[i], s))
            heapq.heapify(state.heap)
        else:
            state.take(s)
        payload = (data.x[i], float(np.inf if first else state.novelty[i]))
    x, nov = pcomm.bcast(payload, comm, root=owner)
    state.add_chosen(x)
    order.append(int(s))
    novelty.append(nov)
