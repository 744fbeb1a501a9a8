"""Numba row parser for the ``ITEM: ATOMS`` lines of LAMMPS text dumps.

:func:`parse_rows` reads the lines of a byte buffer column by column; each column has a
*kind* (skip, id, type, position, float, int, string) and a *slot* (the column of the
output array it goes to).  Numbers are converted exactly by :mod:`._numparse`; the rare
tokens it cannot convert are handed back to the caller as *fix-ups* (row, column, byte
range) and converted with Python's ``float``.

This module also re-exports the kernels of :mod:`._numparse` and :mod:`._reorder`, so
callers use one namespace (``from quests_hpc.io import _kernels as K``).
"""

import numpy as np
from numba import njit

from ._numparse import _parse_float, _parse_float_careful, _parse_int  # noqa: F401
from ._reorder import (count_placed, dense_check, dense_dest, first_duplicate_sorted,  # noqa: F401
                       first_far_atom, id_stats, partition_columns, partition_rows, place_ids,
                       scaled_to_cartesian_inplace, scatter_rows, splitter_dest, wrap_inplace,
                       wrap_ortho_inplace)

__all__ = ["parse_rows", "_parse_float", "_parse_float_careful", "_parse_int", "count_placed",
           "dense_check", "dense_dest", "first_duplicate_sorted", "first_far_atom", "id_stats",
           "partition_columns", "partition_rows", "place_ids", "scaled_to_cartesian_inplace",
           "scatter_rows", "splitter_dest", "wrap_inplace", "wrap_ortho_inplace"]
# Column kinds.
SKIP, ID, TYPE, POS, FLOAT, INT, STR = 0, 1, 2, 3, 4, 5, 6

# Status codes returned by parse_rows (errors are negative).
OK = 0
FIX_FULL = 1
CAPACITY = 2
PLACE_FAIL = 3
ERR_FEW_COLUMNS = -1
ERR_MANY_COLUMNS = -2
ERR_BAD_INT = -3
ERR_LONG_STRING = -4
ERR_TYPE_RANGE = -5


@njit(cache=True, nogil=True)
def parse_rows(buf, start, stop, final, max_rows, kinds, slots, row0, cap, line0, auto_id,
               ids, types, pos, fext, iext, sext, fix, place,
               ids2, types2, pos2, fext2, iext2, sext2, out_n):
    """Parse whole lines of ``buf[start:stop]`` into the output arrays.

    Parameters
    ----------
    buf : uint8 array
    start, stop : int
        Byte range.  Unless ``final``, only lines ending with ``\\n`` before ``stop`` are
        parsed (the rest is left for the next call).
    final : bool
        ``stop`` is the end of the data: a last line without ``\\n`` is parsed.
    max_rows : int
        Stop after this many (non-blank) rows.
    kinds, slots : int64 arrays, one entry per column
    row0, cap : int
        File-order mode: first output row and capacity (rows) of the output arrays.
    line0 : int
        Line index (0-based, in the caller's numbering) of the line at ``start``.
    auto_id : bool
        No id column: store the line index (``line0`` + lines before the row) as id.
    ids, types, pos, fext, iext, sext : arrays
        Outputs: int64 ``(cap,)``, int32 ``(cap,)``, float64 ``(cap, 3)``, float64
        ``(cap, nf)``, int64 ``(cap, ni)``, int64 ``(cap, ns)`` (strings packed 8 bytes
        little-endian).  Unused ones may have zero rows.
    fix : int64 array ``(F, 5)``
        Receives ``(row, column, begin, end, set)`` of tokens to convert in Python
        (``set`` 1: a row of the second array set).
    place : int64 array ``(4,)``
        ``(own_lo, own_hi, valid_lo, valid_hi)``; ``own_lo == 0``: file-order mode.
        Otherwise (id column first, ``ids`` zero-filled) the row of an id ``i`` in
        ``[own_lo, own_hi)`` is stored at row ``i - own_lo`` of the first set (rows come
        out sorted), the row of any other id in ``[valid_lo, valid_hi)`` is appended to
        the second set (``ids2`` ...) at row ``out_n[0]``.  An id outside stops with
        status ``PLACE_FAIL``; an id placed twice overwrites: compare :func:`count_placed`
        with the rows placed.
    ids2, types2, pos2, fext2, iext2, sext2 : arrays
        The second set (placement mode only).
    out_n : int64 array ``(1,)``
        Rows in the second set (updated).

    Returns
    -------
    tuple
        ``(rows, next, lines, status, err_col, nfix)``: rows parsed, byte offset where
        parsing stopped (start of the unparsed line), lines consumed (blank lines
        included), status code, the offending column on error, fix-ups written.
    """
    ncols = kinds.shape[0]
    own_lo, own_hi, valid_lo, valid_hi = place[0], place[1], place[2], place[3]
    placing = own_lo != 0
    limit = stop
    if not final:
        while limit > start and buf[limit - 1] != 10:
            limit -= 1
    nfixmax = fix.shape[0]
    nfix = 0
    rows = 0
    lines = 0
    i = start
    while i < limit:
        if rows >= max_rows:
            return rows, i, lines, OK, -1, nfix
        line_start = i
        # skip blank space; a blank line is consumed and not counted as a row
        while i < limit and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
            i += 1
        if i >= limit:
            break
        if buf[i] == 10:
            i += 1
            lines += 1
            continue
        if not placing and row0 + rows >= cap:
            return rows, line_start, lines, CAPACITY, -1, nfix
        if nfix + ncols > nfixmax:
            return rows, line_start, lines, FIX_FULL, -1, nfix
        r = row0 + rows
        tset = 0
        if auto_id:
            ids[r] = line0 + lines
        for c in range(ncols):
            while i < limit and (buf[i] == 32 or buf[i] == 9):
                i += 1
            if i >= limit or buf[i] == 10 or buf[i] == 13:
                return rows, line_start, lines, ERR_FEW_COLUMNS, c, nfix
            b = i
            k = kinds[c]
            if k == POS or k == FLOAT:
                v, j, ok = _parse_float(buf, b, limit)
                if ok and (j >= limit or buf[j] <= 32):
                    i = j
                else:
                    i = b
                    while i < limit and buf[i] > 32:
                        i += 1
                    fix[nfix, 0] = r
                    fix[nfix, 1] = c
                    fix[nfix, 2] = b
                    fix[nfix, 3] = i
                    fix[nfix, 4] = tset
                    nfix += 1
                    v = np.nan
                if k == POS:
                    if tset == 0:
                        pos[r, slots[c]] = v
                    else:
                        pos2[r, slots[c]] = v
                elif tset == 0:
                    fext[r, slots[c]] = v
                else:
                    fext2[r, slots[c]] = v
                continue
            if k == ID or k == TYPE or k == INT:
                iv, j, ok = _parse_int(buf, b, limit)
                if not ok or (j < limit and buf[j] > 32):
                    return rows, line_start, lines, ERR_BAD_INT, c, nfix
                i = j
                if k == ID:
                    if placing:
                        if own_lo <= iv < own_hi:
                            # no read of ids[r] here (a dependent cache miss per row):
                            # duplicates are found afterwards by check_placed
                            r = iv - own_lo
                        elif valid_lo <= iv < valid_hi and out_n[0] < ids2.shape[0]:
                            r = out_n[0]
                            out_n[0] += 1
                            tset = 1
                        else:
                            return rows, line_start, lines, PLACE_FAIL, c, nfix
                    if tset == 0:
                        ids[r] = iv
                    else:
                        ids2[r] = iv
                elif k == TYPE:
                    if iv < -2147483648 or iv > 2147483647:
                        return rows, line_start, lines, ERR_TYPE_RANGE, c, nfix
                    if tset == 0:
                        types[r] = iv
                    else:
                        types2[r] = iv
                elif tset == 0:
                    iext[r, slots[c]] = iv
                else:
                    iext2[r, slots[c]] = iv
                continue
            while i < limit and buf[i] > 32:
                i += 1
            if k == STR:
                if i - b > 8:
                    return rows, line_start, lines, ERR_LONG_STRING, c, nfix
                code = 0
                for q in range(i - b):
                    code |= np.int64(buf[b + q]) << (8 * q)
                if tset == 0:
                    sext[r, slots[c]] = code
                else:
                    sext2[r, slots[c]] = code
        while i < limit and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
            i += 1
        if i < limit:
            if buf[i] != 10:
                return rows, line_start, lines, ERR_MANY_COLUMNS, ncols, nfix
            i += 1
        lines += 1
        rows += 1
    return rows, i, lines, OK, -1, nfix
