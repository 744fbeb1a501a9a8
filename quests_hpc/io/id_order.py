"""Order parsed atoms by id, serially (pure functions on arrays; no ranks, no MPI).

The parsed columns of a frame are a dict ``{"ids": (n,), "pos": (n, 3), ...}`` of
C-contiguous arrays (see :meth:`.atoms_block.Rows.columns`).  The final order by id is
made one array at a time, so memory stays a small multiple of the positions held.

* :func:`sort_by_id` -- ids ``base .. base+n-1`` (the usual LAMMPS numbering) are
  placed by a direct scatter (no sort); other ids are argsorted; duplicates raise;
* :func:`order_dense`, :func:`order_sparse`, :func:`dup_message`, :func:`local_id_range`
  -- the pieces :mod:`quests_hpc.parallel.routing` reuses after its exchanges;
* :func:`row_view` -- any C-contiguous array as rows of unsigned words (for the row
  moving kernels).
"""

import numpy as np

from ..errors import QuestsInputError
from . import _kernels as K


def row_view(a):
    """``a`` as a 2-D array of unsigned words, one row per leading index (a view).

    The word size is the largest of 8, 4, 2, 1 bytes dividing the row size, so that
    kernels moving rows handle every dtype with four compiled variants.
    """
    if not a.flags.c_contiguous:
        raise ValueError("row_view needs a C-contiguous array")
    n = a.shape[0]
    rowbytes = a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))
    for size, dt in ((8, np.uint64), (4, np.uint32), (2, np.uint16), (1, np.uint8)):  # noqa: B007
        if rowbytes % size == 0:
            break
    if rowbytes == 0:
        return np.empty((n, 0), dtype=np.uint8)
    return a.reshape(n * rowbytes // a.itemsize).view(dt).reshape(n, rowbytes // size)


def dup_message(where, dup, lines=None):
    if dup is None:
        return f"{where}: atom ids are not unique (an id appears twice, another is missing)"
    msg = f"{where}: duplicate atom id {dup}"
    if lines is not None:
        msg += f" (lines {lines[0]} and {lines[1]})"
    return msg


def order_dense(cols, base):
    """Reorder so that row ``j`` holds id ``base + j`` (ids already checked)."""
    ids = cols["ids"]
    n = len(ids)
    for name in list(cols):
        if name == "ids":
            continue
        a = cols[name]
        out = np.empty_like(a)
        src, dst = row_view(a), row_view(out)
        if n and src.shape[1]:
            K.scatter_rows(src, ids, base, dst)
        del src, dst
        cols[name] = out
        del a
    cols["ids"] = np.arange(base, base + n, dtype=np.int64)


def order_sparse(cols):
    """Sort by id with an argsort; returns a duplicated id or None."""
    perm = np.argsort(cols["ids"], kind="stable")
    for name in list(cols):
        a = cols[name]
        cols[name] = np.take(a, perm, axis=0)
        del a
    del perm
    j = K.first_duplicate_sorted(cols["ids"])
    return int(cols["ids"][j]) if j >= 0 else None


def sort_by_id(cols, where="", data_line=None, lines_are_rows=False):
    """Serial: sort the columns by id (arrays replaced); raise on duplicate ids.

    ``data_line`` (line number of the first row) and ``lines_are_rows`` (no blank lines
    among the rows) let the error name the two lines of a duplicate.
    """
    ids = cols["ids"]
    n = len(ids)
    if n < 2:
        return cols
    lo, hi, increasing = K.id_stats(ids)
    if increasing:
        return cols  # already sorted and unique (dump_modify sort id)
    lo, hi = int(lo), int(hi)
    if hi - lo + 1 == n:
        bad = int(K.dense_check(ids, lo, n))
        dup = None if bad == -1 else bad
        if dup is None:
            order_dense(cols, lo)
            return cols
    else:
        s = np.sort(ids)
        j = K.first_duplicate_sorted(s)
        dup = int(s[j]) if j >= 0 else None
        del s
        if dup is None:
            order_sparse(cols)
            return cols
    lines = None
    if lines_are_rows and data_line is not None:
        rows = np.nonzero(ids == dup)[0][:2]
        lines = (data_line + int(rows[0]), data_line + int(rows[1]))
    raise QuestsInputError(dup_message(where, dup, lines))


def local_id_range(ids):
    """``(min, max)`` of local ids; ``(int64 max, int64 min)`` when there are none."""
    if len(ids):
        mn, mx, _ = K.id_stats(ids)
        return int(mn), int(mx)
    return int(np.iinfo(np.int64).max), int(np.iinfo(np.int64).min)
