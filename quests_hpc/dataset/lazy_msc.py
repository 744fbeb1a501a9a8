"""msc and msc_conditional by lazy greedy evaluation: the same choice, far less work.

A structure's msc score ``novelty + H_s`` can only fall as the subset grows: every chosen
structure adds kernel terms to ``S(x)``, so ``-min_x log S(x)`` decreases.  A score
computed against the first ``j`` chosen structures is therefore an upper bound of the
score against all ``m >= j`` of them (Minoux's lazy greedy).  Each rank keeps its
structures in a heap by their last score.  Each step the ranks show each other their
heap's top; while the best shown is stale, the ranks whose stale tops could still win
bring them up to date, folding in the chosen structures they have not seen; once the
best shown is exact, it is the msc choice (ties to the lowest structure index).

A refresh also folds only the environments that matter: those whose own stale value
``-log S(x) + H_s`` still reaches the floor (the best exact score shown).  Each
environment keeps how many chosen structures it has seen.  The structure's score is
exact once its largest up-to-date value is at least every stale value (stale values are
upper bounds of their exact ones); else its bound is its largest stale value, which lies
below the floor.  Well-covered environments of a structure are then never folded at all.

Every environment's ``log S`` is folded one chosen structure at a time in choice order
(:mod:`quests_hpc._fold_kernels`, on products summed in a fixed order by
:mod:`quests_hpc._ordered_products`: not BLAS, whose bits may depend on the shape), and a
row's result does not depend on the other rows it is computed with (environments brought
up to date together share the products).  So every exact score is bitwise the eager one,
whichever environments are brought up to date when and on which rank: the choice does
not depend on the number of ranks, and it is upstream's (which recomputes
every structure every step).

The candidates are first dealt cyclically over the ranks (:mod:`.msc_deal`: structure
``s`` to rank ``s mod P``), so that the structures msc keeps refreshing, which often sit
together in a file, are spread over every rank.  Every rank keeps the chosen
structures' environments (the subset: it is the output); each rank's candidates stay on
it.  Collective where ``comm`` is taken.
"""

import heapq
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._fold_kernels import fold_logs, segment_sums
from .._ordered_products import row_products
from ..parallel import comm as pcomm
from ..threads import get_num_threads
from .msc_deal import deal_cyclic

#: Stale structures brought up to date together.
REFRESH_BATCH = 16
#: Rows of the batch per product block; with
#: MAX_COLUMNS a 1 MB product, one core's L2 (256 rows measured slower on 2 ranks).
ROW_BLOCK = 128
#: Most novel stale environments of each structure folded first in a refresh (a probe).
PROBE_ROWS = 16
#: Columns (rows of chosen structures) per product at most; 8192 columns (16 MB
#: products, two ranks sharing one L3) measured 8-11 % slower at 10,000 Cu frames
#: (docs/datasets.md).
MAX_COLUMNS = 1024


class LazyMsc:
    """The msc state of this rank's candidates (:class:`.msc_deal.Candidates`, whose
    ``log_ref`` is ``log S`` against a reference set for msc_conditional, or None; see
    the module doc)."""

    def __init__(self, cand):
        self.cand, self.ids = cand, cand.ids
        self.ent = np.asarray(cand.entropies, dtype=float)
        self.log = [np.full(len(x), -np.inf) for x in cand.x]
        self.ref = cand.log_ref
        self.seen = [np.zeros(len(x), dtype=np.int64) for x in cand.x]  # per environment
        self.upto = np.zeros(len(cand.x), dtype=np.int64)  # the score is exact at upto
        # the chosen structures' rows, centred and transposed (d x rows), and their norms
        self.xt, self.nxc, self.centre = [], [], None
        self.cs = -0.5 / cand.h ** 2
        nt = get_num_threads()
        self.pool = ThreadPoolExecutor(max_workers=nt) if nt > 1 else None
        self.bound = np.full(len(cand.x), np.inf)
        self.novelty = np.full(len(cand.x), np.inf)
        if self.ref is not None:
            for i in range(len(cand.x)):
                self._score(i)
        self.heap = [(-b, int(s)) for b, s in zip(self.bound, self.ids)]
        heapq.heapify(self.heap)
        self.refreshed = 0  # environment-folds done (a measure of the work)
        self.lower = -np.inf  # a lower bound of this step's best score (see _refresh)
        # where this rank's time goes: rounds of the step protocol, seconds refreshing,
        # seconds in the collectives (waiting for the other ranks included)
        self.stats = {"rounds": 0, "refresh_s": 0.0, "collective_s": 0.0}

    def _values(self, i):
        """``-log S(x)`` of structure ``i``'s environments (stale ones: upper bounds)."""
        tot = self.log[i] if self.ref is None else np.logaddexp(self.ref[i], self.log[i])
        return -tot

    def _score(self, i):
        """The bound of structure ``i``, exact (``upto = m``) when its largest up-to-date
        value is at least each stale one."""
        v, m = self._values(i), len(self.xt)
        fresh = self.seen[i] == m
        best = v[fresh].max() if fresh.any() else -np.inf
        stale = v[~fresh].max() if not fresh.all() else -np.inf
        if best >= stale:
            self.novelty[i], self.upto[i] = best, m
            self.bound[i] = best + self.ent[i]
        else:
            self.bound[i] = stale + self.ent[i]

    def _rows(self, i, floor):
        """Environments of structure ``i`` to fold: the stale ones that reach ``floor``."""
        stale = self.seen[i] < len(self.xt)
        if floor > -np.inf:
            stale &= self._values(i) + self.ent[i] >= floor
        return np.flatnonzero(stale)

    def _refresh(self, batch, floor=-np.inf):
        """Bring the structures ``batch`` up to date as far as ``floor`` needs.

        First a probe: the few most novel stale environments of each structure (one
        block of rows).  An up-to-date environment's value plus ``H_s`` is a lower bound
        of the structure's exact score, so of this step's best: the floor rises to it,
        and only the environments that reach the new floor are folded next.
        """
        probe = PROBE_ROWS
        self._fold(batch, [self._top_rows(i, probe) for i in batch])
        for i in batch:
            fresh = self.seen[i] == len(self.xt)
            if fresh.any():
                self.lower = max(self.lower, self._values(i)[fresh].max() + self.ent[i])
        floor = max(floor, self.lower)
        self._fold(batch, [self._rows(i, floor) for i in batch])
        for i in batch:
            self._score(i)

    def _top_rows(self, i, n):
        """The ``n`` stale environments of structure ``i`` of largest value."""
        stale = np.flatnonzero(self.seen[i] < len(self.xt))
        if len(stale) > n:
            v = self._values(i)[stale]
            stale = np.sort(stale[np.argpartition(-v, n - 1)[:n]])
        return stale

    def _fold(self, batch, rows):
        """Fold every chosen structure not yet seen into the environments ``rows`` of
        the structures ``batch``.

        The products of those rows with the pending chosen structures' rows, in blocks
        of ``ROW_BLOCK`` rows and at most ``MAX_COLUMNS`` columns of whole structures,
        come from :mod:`quests_hpc._ordered_products`, the exponentials, sums and
        ordered folds from :mod:`quests_hpc._fold_kernels`.
        """
        m = len(self.xt)
        owner = np.repeat(np.arange(len(batch)), [len(r) for r in rows])
        env = np.concatenate(rows)
        first = np.concatenate([self.seen[i][r] for i, r in zip(batch, rows)])
        order = np.argsort(first, kind="stable")  # blocks of like rows
        owner, env, first = owner[order], env[order], first[order]
        if len(env):
            y = np.concatenate([self.cand.x[i][r] for i, r in zip(batch, rows)])[order]
            y -= self.centre
            ny = np.einsum("ij,ij->i", y, y)
            log = np.concatenate([self.log[i][r] for i, r in zip(batch, rows)])[order]
            for ja, jb in _column_chunks(self.nxc, int(first.min()), m):
                xt = np.concatenate(self.xt[ja:jb], axis=1)  # C-contiguous d x cols
                nx = np.concatenate(self.nxc[ja:jb])
                seg = np.concatenate([[0], np.cumsum([len(v) for v in self.nxc[ja:jb]])])
                rel = np.maximum(first - ja, 0)
                _fold_blocks(y, ny, xt, nx, seg.astype(np.int64), rel, log, self.cs,
                             self.pool)
            for b, i in enumerate(batch):
                here = owner == b
                self.log[i][env[here]] = log[here]
                self.seen[i][env[here]] = m
            self.refreshed += int((m - first).sum())

    def top(self):
        """``(bound, structure, exact, lower)`` of the heap's top (``(-inf, -1, True,
        lower)`` if none); ``lower``: this rank's lower bound of the step's best score."""
        if not self.heap:
            return -np.inf, -1, True, self.lower
        negb, s = self.heap[0]
        return -negb, s, bool(self.upto[self.cand.slot(s)] == len(self.xt)), self.lower

    def refresh_top(self, floor):
        """Bring up to date the stale structures at the heap's top whose bound is at
        least ``floor`` (at most ``REFRESH_BATCH`` of them)."""
        m, batch = len(self.xt), []
        while self.heap and len(batch) < REFRESH_BATCH:
            negb, s = self.heap[0]
            if -negb < floor or self.upto[self.cand.slot(s)] == m:
                break
            batch.append(self.cand.slot(heapq.heappop(self.heap)[1]))
        if batch:
            t = time.perf_counter()
            self._refresh(batch, floor)
            for i in batch:
                heapq.heappush(self.heap, (-self.bound[i], int(self.ids[i])))
            self.stats["refresh_s"] += time.perf_counter() - t

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
        self.lower = -np.inf
        self.xt.append(np.ascontiguousarray(xc.T))
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


def _fold_blocks(y, ny, xt, nx, seg, first, log, cs, pool=None):
    """Fold the segments into ``log``: ``y`` in blocks of ``ROW_BLOCK`` rows, each against
    the segments from the first one a row of the block needs (rows sorted by ``first``: a
    block's rows need about the same); ``xt``: the segments' rows transposed (d x
    columns, C-contiguous), ``nx`` their squared norms.

    With a thread ``pool``, each block's segments are split in runs of about equal
    columns, one per thread (:func:`segment_sums`: each segment's log sum on its own),
    and each block's rows then fold their segments in order (:func:`fold_logs`): the same
    bits as one thread, whatever the split.
    """
    n_seg = len(seg) - 1
    blocks = []
    for r0 in range(0, len(y), ROW_BLOCK):
        r1 = min(r0 + ROW_BLOCK, len(y))
        j = int(first[r0:r1].min())
        if j < n_seg:
            blocks.append((r0, r1, j))
    nt = 1 if pool is None else pool._max_workers
    tasks = [(b, ja, jb) for b, (_, _, j) in enumerate(blocks)
             for ja, jb in _split_segments(seg, j, n_seg, nt)]
    sums = [np.empty((r1 - r0, n_seg)) for r0, r1, _ in blocks]

    def run(part):
        buf = np.empty(0)  # the products, reused: no fresh pages to fault in per product
        for b, ja, jb in part:
            r0, r1, _ = blocks[b]
            c0, c1 = int(seg[ja]), int(seg[jb])
            if buf.size < ROW_BLOCK * (c1 - c0):
                buf = np.empty(ROW_BLOCK * max(c1 - c0, MAX_COLUMNS))
            g = buf[:(r1 - r0) * (c1 - c0)].reshape(r1 - r0, c1 - c0)
            row_products(y[r0:r1], xt, c0, g)
            segment_sums(g[:r1 - r0], ny[r0:r1], nx[c0:c1], seg[ja:jb + 1] - c0,
                         first[r0:r1] - ja, sums[b][:, ja:jb], cs)

    if nt == 1 or len(tasks) < 2:
        run(tasks)
    else:
        for f in [pool.submit(run, tasks[t::nt]) for t in range(nt)]:
            f.result()
    for b, (r0, r1, _) in enumerate(blocks):
        fold_logs(sums[b], first[r0:r1], log[r0:r1])


def _split_segments(seg, j0, n_seg, parts):
    """Runs ``[ja, jb)`` of segments ``j0 .. n_seg - 1``, about equal in columns, at most
    ``parts`` of them (whole segments)."""
    if parts <= 1 or n_seg - j0 <= 1:
        return [(j0, n_seg)]
    goal = (seg[n_seg] - seg[j0]) / parts
    cuts = [j0]
    for j in range(j0 + 1, n_seg):
        if seg[j] - seg[cuts[-1]] >= goal and len(cuts) < parts:
            cuts.append(j)
    return list(zip(cuts, cuts[1:] + [n_seg]))


def lazy_msc(comm, data, size, log_ref=None):
    """The msc choice of ``size`` structures (msc_conditional with ``log_ref``).

    Returns ``(order, novelty, work, stats)``: the chosen structures, the novelty of
    each when it was chosen (+inf for msc's first pick by entropy), this rank's
    environment-folds and where its time went (``LazyMsc.stats``).
    """
    cand = deal_cyclic(comm, data, log_ref)
    state = LazyMsc(cand)
    order, novelty = [], []
    if log_ref is None:  # msc's first pick: the largest entropy
        i = int(np.argmax(state.ent)) if len(state.ent) else -1
        v = float(state.ent[i]) if i >= 0 else -np.inf
        key = int(cand.ids[i]) if i >= 0 else -1
        _, (s,), owner = pcomm.argmax_with_key(v, (key,), comm)
        _choose(comm, cand, state, s, owner, order, novelty, first=True)
    try:
        while len(order) < size:
            s, owner = _global_best(comm, state)
            _choose(comm, cand, state, s, owner, order, novelty)
    finally:
        if state.pool is not None:
            state.pool.shutdown()
    state.stats["folds"] = state.refreshed
    return order, np.array(novelty), state.refreshed, state.stats


def _global_best(comm, state):
    """``(structure, owner rank)`` of the largest exact score over all ranks, ties to the
    lowest structure.  Rounds: every rank shows its heap's top; when the best of them is
    exact it is the answer (every other score is at most its bound); else the ranks whose
    stale tops reach the best exact score shown bring a batch up to date (one small
    allgather per round; only structures that could still win are refreshed)."""
    while True:
        t = time.perf_counter()
        tops = pcomm.allgather(state.top(), comm)
        state.stats["collective_s"] += time.perf_counter() - t
        state.stats["rounds"] += 1
        owner = max(range(len(tops)), key=lambda r: (tops[r][0], -tops[r][1]))
        if tops[owner][2]:
            return tops[owner][1], owner
        state.refresh_top(max(max(t[3] for t in tops),
                              max((t[0] for t in tops if t[2]), default=-np.inf)))


def _choose(comm, cand, state, s, owner, order, novelty, first=False):
    """Record the choice of ``s`` (held by rank ``owner``) on every rank."""
    payload = None
    if comm.rank == owner:
        i = cand.slot(s)
        if first:
            state.heap.remove((-state.bound[i], s))
            heapq.heapify(state.heap)
        else:
            state.take(s)
        payload = (cand.x[i], float(np.inf if first else state.novelty[i]))
    t = time.perf_counter()
    x, nov = pcomm.bcast(payload, comm, root=owner)
    state.stats["collective_s"] += time.perf_counter() - t
    state.add_chosen(x)
    order.append(int(s))
    novelty.append(nov)
