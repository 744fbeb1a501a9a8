"""Information measures of data spread over MPI ranks (SPEC.md, "Information measures").

Every rank holds some rows (descriptors) of a data set; the full ``n x n`` kernel is never
held anywhere.  Kernel sums over the whole set are ring passes
(:func:`~quests_hpc.parallel.shared_reference.ring_log_kernel_sum`); scalar results are
reduced to every rank (deterministically: partial sums are gathered in rank order and
added with ``math.fsum``), so they do not depend on the number of ranks beyond rounding.

All functions are collective over ``comm``.  Bandwidths: a float, or a sequence (results
gain a leading axis of length ``len(h)``), as in :mod:`quests_hpc.information`.
"""

import math

import numpy as np

from .. import information
from .shared_reference import SharedReference, ring_log_kernel_sum


def _fsum_all(comm, values):
    """Sum of per-row values over all ranks; ``values`` (n,) or (n_h, n) -> scalar or (n_h,)."""
    v = np.asarray(values, dtype=np.float64)
    local = [math.fsum(row) for row in np.atleast_2d(v)] if v.size else None
    parts = [p for p in comm.allgather(local) if p is not None]
    if not parts:
        return 0.0
    out = np.array([math.fsum(col) for col in zip(*parts)])
    return out


def _logsumexp_all(comm, values):
    """``log sum exp`` of per-row values over all ranks (scalar or (n_h,))."""
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    local = np.logaddexp.reduce(v, axis=-1) if v.shape[-1] else None
    parts = [p for p in comm.allgather(local) if p is not None]
    return np.logaddexp.reduce(np.array(parts), axis=0)


def _shape_like(h, arr):
    arr = np.asarray(arr, dtype=np.float64)
    return float(arr[0]) if np.ndim(h) == 0 else arr


def total_rows(comm, x_local):
    """Rows of a distributed array (sum over ranks)."""
    return int(comm.allreduce(len(x_local)))


def self_log_sums(comm, x_local, h, **kwargs):
    """``log S(X_i)`` of the local rows against the whole distributed set (self included)."""
    return ring_log_kernel_sum(comm, x_local, x_local, h, **kwargs)


def delta_entropy(comm, y_local, reference, h, **kwargs):
    """``dH(y_i | X) = -log S(y_i)`` of the local test rows (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    y_local : ndarray, shape (n_y_local, d)
    reference : SharedReference or ndarray
        A :class:`SharedReference`, or this rank's block of a distributed reference
        (ring pass over all ranks' blocks).
    h : float or sequence of float

    Returns
    -------
    ndarray, shape (n_y_local,) or (n_h, n_y_local)
    """
    if isinstance(reference, SharedReference):
        return -reference.log_kernel_sum(y_local, h, **kwargs)
    return -ring_log_kernel_sum(comm, y_local, reference, h, **kwargs)


def entropy_from_log_sums(comm, log_s_local, h):
    """``H = log n - (1/n) sum_i log S(X_i)`` from distributed ``log S`` (collective)."""
    n = total_rows(comm, np.atleast_2d(log_s_local)[0])
    total = _fsum_all(comm, log_s_local)
    return _shape_like(h, math.log(n) - np.asarray(total) / n)


def diversity_from_log_sums(comm, log_s_local, h):
    """``D = log sum_i exp(-log S(X_i))`` from distributed ``log S`` (collective)."""
    return _shape_like(h, _logsumexp_all(comm, -np.asarray(log_s_local)))


def entropy(comm, x_local, h=information.DEFAULT_BANDWIDTH, **kwargs):
    """Entropy H of the data set whose rows are spread over the ranks (every rank gets H)."""
    return entropy_from_log_sums(comm, self_log_sums(comm, x_local, h, **kwargs), h)


def diversity(comm, x_local, h=information.DEFAULT_BANDWIDTH, **kwargs):
    """Diversity D of the distributed data set (every rank gets D)."""
    return diversity_from_log_sums(comm, self_log_sums(comm, x_local, h, **kwargs), h)


def entropy_and_diversity(comm, x_local, h=information.DEFAULT_BANDWIDTH, **kwargs):
    """``(H, D)`` from one ring pass."""
    log_s = self_log_sums(comm, x_local, h, **kwargs)
    return entropy_from_log_sums(comm, log_s, h), diversity_from_log_sums(comm, log_s, h)


def count_novel(comm, dh_local, threshold=0.0):
    """``(n_novel, n)``: rows with ``dH > threshold`` and all rows, over all ranks."""
    dh = np.atleast_2d(np.asarray(dh_local))
    local = (dh > threshold).sum(axis=-1).astype(np.int64)
    novel = np.empty_like(local)
    comm.Allreduce(local, novel)
    n = total_rows(comm, dh[0])
    return novel, n


def novelty(comm, y_local, reference, h=information.DEFAULT_BANDWIDTH, threshold=0.0, **kwargs):
    """Fraction of the distributed test rows with ``dH > threshold`` (every rank gets it)."""
    dh = delta_entropy(comm, y_local, reference, h, **kwargs)
    novel, n = count_novel(comm, dh, threshold)
    return _shape_like(h, novel / n)


def overlap(comm, y_local, reference, h=information.DEFAULT_BANDWIDTH, threshold=0.0, **kwargs):
    """Fraction of the distributed test rows with ``dH <= threshold`` (= 1 - novelty)."""
    dh = delta_entropy(comm, y_local, reference, h, **kwargs)
    novel, n = count_novel(comm, dh, threshold)
    return _shape_like(h, (n - novel) / n)


def summarize_dh(comm, dh_local, threshold=0.0, root=0):
    """Dataset-level summary of distributed dH values, on ``root`` (``None`` elsewhere).

    Returns a dict per bandwidth row: ``n``, ``n_novel``, ``novelty``, ``overlap``,
    ``mean``, ``min``, ``max`` of dH (fsum-accurate mean, independent of the rank count).
    """
    dh = np.atleast_2d(np.asarray(dh_local, dtype=np.float64))
    novel, n = count_novel(comm, dh, threshold)
    total = np.atleast_1d(_fsum_all(comm, dh))
    has = dh.shape[-1] > 0
    lo = comm.gather(dh.min(axis=-1) if has else None, root=root)
    hi = comm.gather(dh.max(axis=-1) if has else None, root=root)
    if comm.rank != root:
        return None
    lo = np.min([v for v in lo if v is not None], axis=0) if n else np.full(len(dh), np.nan)
    hi = np.max([v for v in hi if v is not None], axis=0) if n else np.full(len(dh), np.nan)
    out = []
    for b in range(len(dh)):
        out.append({
            "n": n, "n_novel": int(novel[b]), "novelty": novel[b] / n if n else float("nan"),
            "overlap": (n - novel[b]) / n if n else float("nan"),
            "mean": float(total[b] / n) if n else float("nan"),
            "min": float(lo[b]), "max": float(hi[b]),
        })
    return out
