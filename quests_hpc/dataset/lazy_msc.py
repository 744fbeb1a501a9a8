"""msc and msc_conditional by lazy greedy evaluation: the same choice, far less work.

A structure's msc score ``novelty + H_s`` can only fall as the subset grows: every chosen
structure adds kernel terms to ``S(x)``, so ``-min_x log S(x)`` decreases.  A score
computed against the first ``j`` chosen structures is therefore an upper bound of the
score against all ``m >= j`` of them (Minoux's lazy greedy).  Each rank keeps its
structures in a heap by their last score; to find its best it brings only the heap's top
up to date, folding in the chosen structures it has not seen, until the top is exact.
The best of the ranks' bests (ties to the lowest structure index) is the msc choice.

Every structure's ``log S`` is folded one chosen structure at a time in choice order by
:func:`quests_hpc._fold_kernels.fold_segments`, whose per-row result does not depend on
the other rows of its call; a structure brought up to date folds all the chosen
structures it has not seen in one call, with others.  So every exact score is bitwise
the eager one, whichever structures are brought up to date when and on which rank: the
choice does not depend on the number of ranks, and it is upstream's (which recomputes
every structure every step).

Every rank keeps the chosen structures' environments (the subset: it is the output);
each rank's candidates stay on it.  Collective where ``comm`` is taken.
"""

import heapq

import numpy as np

from .._fold_kernels import fold_segments
from ..parallel import comm as pcomm

#: Stale structures brought up to date together (one kernel call per chosen structure).
REFRESH_BATCH = 64


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
        self.chosen, self.xt, self.nx, self.mu = [], [], [], []
        self.cs = -0.5 / data.h ** 2
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
        """Fold every chosen structure not yet seen into the structures ``batch``."""
        m = len(self.chosen)
        j0 = int(self.upto[batch].min())
        y = np.concatenate([self.data.x[i] for i in batch])
        log = np.concatenate([self.log[i] for i in batch])
        first = np.concatenate([np.full(len(self.log[i]), self.upto[i] - j0, np.int64)
                                for i in batch])
        xt = np.concatenate(self.xt[j0:m], axis=1)
        nx = np.concatenate(self.nx[j0:m])
        seg = np.concatenate([[0], np.cumsum([len(v) for v in self.nx[j0:m]])]).astype(np.int64)
        fold_segments(y, first, log, xt, nx, np.array(self.mu[j0:m]), seg, self.cs)
        a = 0
        for i in batch:
            n = len(self.log[i])
            self.log[i] = log[a:a + n]
            a += n
        self.refreshed += int((m - self.upto[batch]).sum())
        self.upto[batch] = m
        for i in batch:
            self._score(i)

    def local_best(self):
        """``(score, structure)`` of this rank's best remaining structure, exact
        (``(-inf, -1)`` when none is left)."""
        m = len(self.chosen)
        while self.heap:
            negb, s = self.heap[0]
            if self.upto[s - self.lo] == m:
                return -negb, s
            batch = []
            while self.heap and len(batch) < REFRESH_BATCH:
                if self.upto[self.heap[0][1] - self.lo] == m:
                    break
                batch.append(heapq.heappop(self.heap)[1] - self.lo)
            self._refresh(np.array(batch))
            for i in batch:
                heapq.heappush(self.heap, (-self.bound[i], self.lo + i))
        return -np.inf, -1

    def take(self, s):
        """Remove this rank's structure ``s`` (the heap's top) from the candidates."""
        negb, top = heapq.heappop(self.heap)
        assert top == s, (top, s)

    def add_chosen(self, x):
        """A new chosen structure, kept centred on its mean and transposed."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        mu = x.mean(axis=0)
        xc = x - mu
        self.chosen.append(x)
        self.mu.append(mu)
        self.xt.append(np.ascontiguousarray(xc.T))
        self.nx.append(np.einsum("ij,ij->i", xc, xc))


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
    while len(order) < size:
        v, s = state.local_best()
        _, (s,), owner = pcomm.argmax_with_key(v, (s,), comm)
        _choose(comm, data, state, s, owner, order, novelty)
    return order, np.array(novelty), state.refreshed


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
