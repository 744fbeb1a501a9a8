"""What a chosen subset keeps of a distributed data set: its entropy, diversity and
compression curve, the novelty of each pick, and the overlap of the whole set with it.

The subset (the chosen structures' environments, the output of a compression) is put on
every rank once (:func:`subset_rows`); every quantity is then a kernel sum of some rows
against a prefix of the subset, by :func:`quests_hpc.information.log_kernel_sum`, whose
per-row result does not depend on the other rows of its call:

* novelty of pick ``k``: ``-min_x log S(x)`` over its environments against picks
  ``0 .. k-1`` (+inf for ``k = 0``: nothing to compare with);
* the curve: ``H`` and ``D`` of the first ``p`` picks at sizes ``p`` = 1 .. 32, then 16
  sizes spaced evenly in ``log p`` up to all of them (the prefixes are nested: each
  pick's sums over the next size's new picks are added to those of the size before, so
  each pick passes over the subset once);
* overlap: the fraction of all environments with ``dH <= OVERLAP_EPS`` against the
  subset (upstream's 1e-5).

Each pick's terms are computed by rank ``k mod P`` and summed in pick order on every
rank, so every number is bitwise the same for any number of ranks.  Collective.
"""

from dataclasses import dataclass

import numpy as np

from ..information import log_kernel_sum
from ..parallel import comm as pcomm

#: dH at or below which an environment counts as covered by the subset (upstream's).
OVERLAP_EPS = 1e-5
#: Rows of this rank's structures per kernel call of the overlap.
OVERLAP_ROWS = 65536


@dataclass
class SubsetReport:
    novelty: np.ndarray
    curve_picks: np.ndarray
    curve_environments: np.ndarray
    curve_entropy: np.ndarray
    curve_diversity: np.ndarray
    overlap: float


def subset_rows(comm, data, order):
    """The chosen structures' environments, in choice order, on every rank (one
    allgather of each rank's picks)."""
    mine = {s: data.local(s) for s in order if data.lo <= s < data.hi}
    merged = {}
    for part in pcomm.allgather(mine, comm):
        merged.update(part)
    return [merged[s] for s in order]


def curve_sizes(m):
    """Subset sizes of the curve: 1 .. 32, then 16 log-spaced sizes up to ``m``."""
    small = np.arange(1, min(m, 32) + 1)
    big = np.round(np.geomspace(32, m, 16)).astype(int) if m > 32 else np.empty(0, int)
    return np.unique(np.concatenate([small, big, [m]]))


def _per_pick(comm, n_picks, fn, width):
    """``fn(k)`` (an array of ``width``) for every pick, computed on rank ``k mod P`` and
    put on every rank (a sum of one nonzero entry each: exact)."""
    out = np.zeros((n_picks, width))
    for k in range(comm.rank, n_picks, comm.size):
        out[k] = fn(k)
    return pcomm.allreduce(out, "sum", comm)


def pick_novelty(comm, xs, h):
    """Each pick's novelty against the picks before it (+inf for the first)."""
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in xs])])
    x_all = np.concatenate(xs)

    def nov(k):
        return [-log_kernel_sum(xs[k], x_all[:offsets[k]], h).min() if k else 0.0]
    out = _per_pick(comm, len(xs), nov, 1)[:, 0]
    out[0] = np.inf
    return out


def subset_curve(comm, xs, h, sizes):
    """``(n_environments, H, D)`` of the first ``p`` picks for each ``p`` in ``sizes``."""
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in xs])])
    x_all = np.concatenate(xs)
    top = int(sizes[-1])

    def sums(k):  # pick k's terms for every size p > k: one pass over the picks
        row = np.zeros(2 * len(sizes))
        log_s, prev = None, 0
        for q, p in enumerate(sizes):
            if k >= p:
                continue
            part = log_kernel_sum(xs[k], x_all[prev:offsets[p]], h)
            log_s = part if log_s is None else np.logaddexp(log_s, part)
            prev = offsets[p]
            row[q], row[len(sizes) + q] = log_s.sum(), np.logaddexp.reduce(-log_s)
        return row
    per = _per_pick(comm, top, sums, 2 * len(sizes))
    n_env, ent, div = [], [], []
    for q, p in enumerate(sizes):
        n = int(offsets[p])
        total, d = 0.0, -np.inf
        for k in range(int(p)):  # in pick order
            total += per[k, q]
            d = np.logaddexp(d, per[k, len(sizes) + q])
        n_env.append(n)
        ent.append(float(np.log(n) - total / n))
        div.append(float(d))
    return np.array(n_env), np.array(ent), np.array(div)


def overlap_fraction(comm, data, xs, eps=OVERLAP_EPS):
    """Fraction of all environments with ``dH <= eps`` against the subset ``xs``."""
    x_all = np.concatenate(xs)
    covered, batch, rows = 0, [], 0
    for i, x in enumerate(data.x):
        batch.append(x)
        rows += len(x)
        if rows >= OVERLAP_ROWS or i == len(data.x) - 1:
            log_s = log_kernel_sum(np.concatenate(batch), x_all, data.h)
            covered += int(np.count_nonzero(-log_s <= eps))
            batch, rows = [], 0
    covered = int(pcomm.allreduce(np.int64(covered), "sum", comm))
    return covered / data.n_environments


def subset_report(comm, data, order, novelty=None, overlap=True):
    """The :class:`SubsetReport` of the picks ``order`` (``novelty``: already known, as
    msc knows it; ``overlap`` False: NaN, skipping the pass over the whole set)."""
    xs = subset_rows(comm, data, order)
    if novelty is None:
        novelty = pick_novelty(comm, xs, data.h)
    sizes = curve_sizes(len(order))
    n_env, ent, div = subset_curve(comm, xs, data.h, sizes)
    ov = overlap_fraction(comm, data, xs) if overlap else float("nan")
    return SubsetReport(novelty=np.asarray(novelty, float), curve_picks=sizes,
                        curve_environments=n_env, curve_entropy=ent, curve_diversity=div,
                        overlap=ov)
