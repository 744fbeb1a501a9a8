"""Sort parsed atoms by id and hand them to their owner ranks.

The parsed columns of a rank are a dict ``{"ids": (n,), "pos": (n, 3), ...}`` of
row-major arrays (see :meth:`.atoms_block.Rows.columns`).  Everything here works in
place or one array at a time, so that the peak memory stays a small multiple of the
positions a rank holds:

* serial: :func:`sort_by_id` -- ids ``base .. base+n-1`` (the usual LAMMPS numbering)
  are placed by a direct gather permutation (no sort); other ids are argsorted;
* MPI: :func:`even_split_by_id` -- rank ``r`` gets the atoms at positions
  ``[r*N//P, (r+1)*N//P)`` of the frame sorted by id, whatever the rank count (found
  arithmetically for dense ids, by a bisection over id values otherwise);
  :func:`send_to_owners` -- any other owner map (the spatial decomposition of the MPI
  pipeline), then a local sort by id.

Duplicate ids are detected in every path and reported collectively.
"""

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from . import _kernels as K


def _apply(cols, perm):
    visited = np.empty(len(perm), dtype=np.uint8)
    n = len(perm)
    for a in cols.values():
        width = int(np.prod(a.shape[1:], dtype=np.int64))
        if n and width:
            K.apply_perm_inplace(a.reshape(n, width), perm, visited)


def _local_sort(cols, base=None, count=None):
    """Sort ``cols`` by id in place; returns a duplicate id or None.

    With ``base``/``count`` the ids must be exactly ``base .. base+count-1`` (returns
    the first id out of place: a duplicate, or -1 for a missing one).
    """
    ids = cols["ids"]
    if base is not None:
        perm, bad = K.dense_gather_perm(ids, base, count)
        if bad != -1:
            return int(bad)
        if len(ids) != count:
            return -1
    else:
        perm = np.argsort(ids, kind="stable")
    _apply(cols, perm)
    del perm
    if base is None:
        j = K.first_duplicate_sorted(ids)
        if j >= 0:
            return int(ids[j])
    return None


def _dup_message(where, dup, cols=None, lines_are_rows=False, data_line=None):
    if dup == -1:
        return f"{where}: atom ids are not unique (some id appears twice, another is missing)"
    msg = f"{where}: duplicate atom id {dup}"
    if cols is not None and lines_are_rows and data_line is not None:
        rows = np.nonzero(cols["ids"] == dup)[0][:2]
        if len(rows) == 2:
            msg += f" (lines {data_line + rows[0]} and {data_line + rows[1]})"
    return msg


def sort_by_id(cols, where="", data_line=None, lines_are_rows=False):
    """Serial: sort the columns by id in place; raise on duplicate ids.

    ``data_line`` (line number of the first row) and ``lines_are_rows`` (no blank lines
    among the rows) let the error name the lines of a duplicate.
    """
    ids = cols["ids"]
    n = len(ids)
    if n < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return cols  # already sorted and unique (dump_modify sort id)
    lo, hi = int(ids.min()), int(ids.max())
    if hi - lo + 1 == n:
        perm, bad = K.dense_gather_perm(ids, lo, n)
    else:
        perm = np.argsort(ids, kind="stable")
        s = ids[perm]
        j = K.first_duplicate_sorted(s)
        bad = int(s[j]) if j >= 0 else -1
        del s
    if bad != -1:
        raise QuestsInputError(_dup_message(where, int(bad), cols, lines_are_rows, data_line))
    _apply(cols, perm)
    return cols


def _dense_dest(ids, gmin, natoms, size):
    """Owner of each id when ids are exactly ``gmin .. gmin+natoms-1`` (even split)."""
    j = ids - gmin
    j += 1
    j *= size
    j -= 1
    j //= natoms
    return j


def _sparse_splitters(sorted_ids, natoms, gmin, gmax, comm):
    """Smallest id of every rank's share (ranks 1..P-1), by a collective bisection."""
    _, size = pcomm.rank_size(comm)
    bounds = pcomm.even_bounds(natoms, size)[1:-1]  # sorted position of each share start
    lo = np.full(size - 1, gmin, dtype=np.int64)
    hi = np.full(size - 1, gmax, dtype=np.int64)
    # invariant: count(ids <= hi) >= bound + 1 ; answer is the smallest such value
    while True:
        active = lo < hi
        if not pcomm.allreduce(np.int64(active.any()), "max", comm):
            break
        mid = lo + (hi - lo) // 2
        c = np.searchsorted(sorted_ids, mid, side="right").astype(np.int64)
        c = pcomm.allreduce(c, "sum", comm)
        ok = c >= bounds + 1
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)
    return lo


def even_split_by_id(cols, natoms, comm, where=""):
    """MPI: give rank ``r`` the atoms ``[r*N//P, (r+1)*N//P)`` of the id-sorted frame.

    Collective.  ``cols`` is consumed (reordered in place, then released).

    Returns
    -------
    cols : dict
        This rank's share, sorted by id.
    first : int
        Position of the share's first atom in the id-sorted frame.
    """
    rank, size = pcomm.rank_size(comm)
    ids = cols["ids"]
    n = len(ids)
    big = np.iinfo(np.int64).max
    mn = int(ids.min()) if n else big
    mx = -int(ids.max()) if n else big
    gmin, negmax = (int(v) for v in pcomm.allreduce(np.array([mn, mx], dtype=np.int64), "min", comm))
    gmax = -negmax
    bounds = pcomm.even_bounds(natoms, size)
    dense = natoms > 0 and gmax - gmin + 1 == natoms
    if dense:
        dest = _dense_dest(ids.copy(), gmin, natoms, size)
    else:
        dup = _local_sort(cols)
        pcomm.raise_if_any(None if dup is None else QuestsInputError(_dup_message(where, dup)),
                           comm)
        ids = cols["ids"]
        split = _sparse_splitters(ids, natoms, gmin, gmax, comm) if size > 1 else np.zeros(0, np.int64)
        dest = np.searchsorted(split, ids, side="right").astype(np.int64)
    del ids
    names = list(cols)
    arrays = [cols.pop(k) for k in names]
    received = pcomm.redistribute(arrays, dest, comm)
    del dest
    out = dict(zip(names, received))
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    err = None
    if dense:
        dup = _local_sort(out, gmin + lo, hi - lo)
    else:
        dup = _local_sort(out)
        if dup is None and len(out["ids"]) != hi - lo:
            dup = -1
    if dup is not None:
        err = QuestsInputError(_dup_message(where, dup))
    pcomm.raise_if_any(err, comm)
    return out, lo


def send_to_owners(cols, dest, comm, where=""):
    """MPI: send every atom to rank ``dest[i]``, then sort each rank's atoms by id.

    Collective.  ``cols`` is consumed.  Returns this rank's columns.
    """
    names = list(cols)
    arrays = [cols.pop(k) for k in names]
    received = pcomm.redistribute(arrays, dest, comm)
    out = dict(zip(names, received))
    dup = _local_sort(out)
    pcomm.raise_if_any(None if dup is None else QuestsInputError(_dup_message(where, dup)), comm)
    return out
