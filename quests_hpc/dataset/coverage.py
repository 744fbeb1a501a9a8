"""How well a growing subset of a distributed data set covers every environment.

For every environment ``x`` of this rank's structures :class:`Coverage` keeps

* ``log_sub(x) = log sum_{y in chosen} K(x, y)``, folded in one chosen structure at a
  time, in the order they were chosen;
* ``log_ref(x)``, the same against a fixed reference set (``msc_conditional``), folded
  in fixed chunks of its rows.

Every term is computed by :func:`quests_hpc.information.log_kernel_sum` for one row
against one structure (or chunk), and folded with ``np.logaddexp`` in a fixed order, so
every value is bitwise the same whatever the number of ranks.  From it come: a
structure's novelty ``-min_x log S(x)`` (its least covered environment, SPEC.md "msc"),
and, for the chosen structures themselves, the entropy ``H`` and diversity ``D`` of each
prefix of the subset (the compression curve), and the overlap of the whole set with the
subset.  Collective where ``comm`` is taken.
"""

import numpy as np

from ..information import log_kernel_sum
from ..parallel import comm as pcomm

#: Reference rows folded per chunk (fixed: the chunks do not depend on the ranks).
REFERENCE_CHUNK = 8192


class Coverage:
    """Kernel sums of this rank's environments against a subset (and a reference).

    Parameters
    ----------
    data : quests_hpc.dataset.structures.Dataset
    """

    def __init__(self, data):
        width = 2 * data.k - 1
        self.data = data
        self.y = np.concatenate(data.x) if data.x else np.empty((0, width))
        n = np.array([len(x) for x in data.x], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
        self.log_sub = np.full(len(self.y), -np.inf)
        self.log_ref = None
        self.folded = 0

    def _log_sum(self, x):
        if len(self.y) == 0:
            return np.empty(0)
        return log_kernel_sum(self.y, x, self.data.h)

    def fold(self, x):
        """Add the environments ``x`` of the next chosen structure to the subset."""
        self.log_sub = np.logaddexp(self.log_sub, self._log_sum(x))
        self.folded += 1

    def fold_reference(self, chunks):
        """Add a reference set, given as an iterable of row chunks, to ``log_ref``."""
        log_ref = np.full(len(self.y), -np.inf)
        for x in chunks:
            log_ref = np.logaddexp(log_ref, self._log_sum(x))
        self.log_ref = log_ref

    def log_total(self):
        """``log S`` against the reference and the subset together."""
        if self.log_ref is None:
            return self.log_sub
        return np.logaddexp(self.log_ref, self.log_sub)

    def novelty(self):
        """``-min_x log S(x)`` of each of this rank's structures (+inf before anything is
        folded in)."""
        if len(self.data.x) == 0:
            return np.empty(0)
        return -np.minimum.reduceat(self.log_total(), self.starts[:-1])

    def rows_of(self, s):
        """``log_sub`` of the environments of this rank's structure ``s``."""
        i = s - self.data.lo
        return self.log_sub[self.starts[i]:self.starts[i + 1]]

    def overlap_count(self, eps):
        """Environments of this rank with ``dH = -log_sub <= eps`` against the subset."""
        return int(np.count_nonzero(-self.log_sub <= eps))


def dataset_chunks(comm, data, chunk=REFERENCE_CHUNK):
    """The rows of a distributed data set in fixed chunks of ``chunk`` rows, each one on
    every rank (collective: one allgather per chunk)."""
    counts = data.counts
    row0 = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    lo, hi = int(row0[data.lo]), int(row0[data.hi])
    mine = np.concatenate(data.x) if data.x else np.empty((0, 2 * data.k - 1))
    total = int(row0[-1])
    for a in range(0, total, chunk):
        b = min(a + chunk, total)
        part = mine[max(a, lo) - lo:max(min(b, hi), lo) - lo]
        yield np.concatenate(pcomm.allgather(part, comm))


def file_chunks(read_rows, n_rows, chunk=REFERENCE_CHUNK):
    """The rows of a descriptor file in fixed chunks, read by ``read_rows(slice)`` on every
    rank (no communication)."""
    for a in range(0, n_rows, chunk):
        yield read_rows(slice(a, min(a + chunk, n_rows)))


class PrefixMeasures:
    """Entropy and diversity of each prefix of the chosen structures (the compression
    curve): after chosen structure ``m`` is folded in, the chosen rows' ``log_sub`` are
    their log kernel sums against the first ``m + 1`` chosen structures, so

    ``H_m = log n_m - (1/n_m) sum log S``,  ``D_m = log sum exp(-log S)``

    over those rows.  Each structure's two sums are formed on its owner and summed in
    choice order on every rank (bitwise the same for any rank count)."""

    def __init__(self, comm, coverage):
        self.comm, self.cov = comm, coverage
        self.order, self.n = [], []
        self.entropy, self.diversity = [], []

    def add(self, s):
        """Record the chosen structure ``s`` (after it was folded in) and the measures of
        the prefix it closes (collective)."""
        cov, data = self.cov, self.cov.data
        self.order.append(int(s))
        m = len(self.order)
        sums = np.zeros((2, m))
        for j, t in enumerate(self.order):
            if data.lo <= t < data.hi:
                r = cov.rows_of(t)
                sums[0, j] = r.sum()
                sums[1, j] = np.logaddexp.reduce(-r)
        sums = pcomm.allreduce(sums, "sum", self.comm)
        n = int(data.counts[self.order].sum())
        total = 0.0
        for v in sums[0]:
            total += v
        self.n.append(n)
        self.entropy.append(float(np.log(n) - total / n))
        d = -np.inf
        for v in sums[1]:
            d = np.logaddexp(d, v)
        self.diversity.append(float(d))
