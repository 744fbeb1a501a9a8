"""Checks and small collective helpers shared by the analyses.

Every function taking ``comm`` is collective: call it on all ranks, in the same order.
"""

import math
import numbers

import numpy as np

from .. import geometry
from ..errors import QuestsInputError
from ..parallel.comm import allgather, alltoallv_rows, collective_errors, raise_if_any


def root_call(comm, fn, *args):
    """Run ``fn`` on rank 0; its QuestsInputError is raised on every rank (collective)."""
    err, val = None, None
    if comm.rank == 0:
        try:
            val = fn(*args)
        except QuestsInputError as exc:
            err = exc
    raise_if_any(err, comm, prefix=False, root=0)
    return val


def _finite(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise QuestsInputError(f"{name} must be a finite number, got {value!r}") from None
    value = float(value)
    if not math.isfinite(value):
        raise QuestsInputError(f"{name} must be a finite number, got {value!r}")
    return value


def check_cluster_parameters(threshold, r_edge, biconnected_max_size=None):
    """Validate the cluster parameters; return ``(threshold, r_edge, max_size)``.

    Raises
    ------
    QuestsInputError
        For a threshold or ``r_edge`` that is not a finite number, ``r_edge <= 0``, or a
        ``biconnected_max_size`` that is not an integer >= 2 (None is allowed: skip).
    """
    threshold = _finite(threshold, "threshold")
    r_edge = _finite(r_edge, "r_edge")
    if r_edge <= 0:
        raise QuestsInputError(f"r_edge must be > 0 (Angstrom), got {r_edge!r}")
    if biconnected_max_size is not None:
        b = biconnected_max_size
        if isinstance(b, bool) or not isinstance(b, (numbers.Integral, np.integer)) or b < 2:
            raise QuestsInputError(
                f"biconnected_max_size must be an integer >= 2 or None, got {b!r}")
        biconnected_max_size = int(b)
    return threshold, r_edge, biconnected_max_size


def check_r_edge_cell(r_edge, cell, pbc):
    """Refuse an ``r_edge`` larger than half the cell along a periodic axis.

    Beyond half the perpendicular width an atom could be joined to two images of the
    same atom, and the minimum-image picture of a cluster breaks down.
    """
    pbc = geometry.as_pbc(pbc)
    full = geometry.complete_cell(cell, pbc)
    widths = geometry.perpendicular_widths(full)
    for a in np.flatnonzero(pbc):
        if r_edge > 0.5 * widths[a]:
            raise QuestsInputError(
                f"r_edge = {r_edge:g} A is larger than half the cell along periodic axis "
                f"{'xyz'[a]} (perpendicular width {widths[a]:.4g} A); use r_edge <= "
                f"{0.5 * widths[a]:.4g} A or a larger cell")


def route_by_key(comm, keys, *columns):
    """Send rows to rank ``key % size`` (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    keys : ndarray of int64, shape (n,)
        Non-negative keys.
    *columns : ndarray, shape (n, ...)
        Sent along with the keys.

    Returns
    -------
    recv : list of ndarray
        Keys then columns, as received (ordered by source rank).
    order : ndarray of int64
        The local order the rows were sent in (``keys[order]``).
    send_counts, recv_counts : ndarray of int64
        For a reply with the counts swapped.
    """
    dest = keys % comm.size
    order = np.argsort(dest, kind="stable")
    send_counts = np.bincount(dest, minlength=comm.size).astype(np.int64)
    out, recv_counts = alltoallv_rows(keys[order], send_counts, comm)
    recv = [out]
    for c in columns:
        r, _ = alltoallv_rows(np.asarray(c)[order], send_counts, comm, recv_counts)
        recv.append(r)
    return recv, order, send_counts, recv_counts


def lookup_by_id(comm, owner_ids, owner_values, query_ids):
    """Values of ``query_ids`` held by other ranks as ``(owner_ids, owner_values)``.

    A directory keyed by ``id % size``: owners file their ``(id, value)``; every rank
    asks for its queries and gets the answers back in query order (collective).

    Raises
    ------
    QuestsInputError
        On every rank when an id is owned twice (duplicate atom ids) or a queried id is
        owned nowhere.
    """
    owner_ids = np.ascontiguousarray(owner_ids, dtype=np.int64)
    query_ids = np.ascontiguousarray(query_ids, dtype=np.int64)
    (d_ids, d_vals), _, _, _ = route_by_key(comm, owner_ids, owner_values)
    (q_ids,), q_order, q_send, q_recv = route_by_key(comm, query_ids)
    with collective_errors(comm):
        srt = np.argsort(d_ids, kind="stable")
        d_ids, d_vals = d_ids[srt], d_vals[srt]
        if len(d_ids) > 1 and (d_ids[1:] == d_ids[:-1]).any():
            dup = int(d_ids[1:][d_ids[1:] == d_ids[:-1]][0])
            raise QuestsInputError(f"atom id {dup} appears more than once in the frame")
        pos = np.searchsorted(d_ids, q_ids)
        ok = pos < len(d_ids)
        ok[ok] = d_ids[pos[ok]] == q_ids[ok]
        if not ok.all():
            raise QuestsInputError(f"atom id {int(q_ids[~ok][0])} has no owner rank")
        answer = d_vals[pos]
    back, _ = alltoallv_rows(answer, q_recv, comm, q_send)
    out = np.empty_like(back)
    out[q_order] = back
    return out


def size_histogram(comm, sizes):
    """Global histogram of cluster sizes held across ranks (collective).

    Returns
    -------
    values, counts : ndarray of int64
        Distinct sizes (ascending) and how many clusters have each; same on all ranks.
    """
    v, c = np.unique(np.asarray(sizes, dtype=np.int64), return_counts=True)
    parts = allgather((v, c), comm)
    allv = np.concatenate([p[0] for p in parts]).astype(np.int64)
    allc = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if len(allv) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    values, inv = np.unique(allv, return_inverse=True)
    counts = np.bincount(inv.reshape(-1), weights=allc, minlength=len(values)).astype(np.int64)
    return values, counts


def unique_rows(pairs):
    """Distinct rows of an ``(m, 2)`` int64 array, sorted (a lexsort, not a hash)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) < 2:
        return pairs.copy()
    p = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    keep = np.ones(len(p), dtype=bool)
    keep[1:] = (p[1:] != p[:-1]).any(axis=1)
    return p[keep]
