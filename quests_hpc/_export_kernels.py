"""Numba kernels that format per-atom rows as text (LAMMPS dump / extxyz bodies).

Pure functions on arrays.  A row is a sequence of columns separated by one space and
ended by a newline; each column is an integer, a fixed-point float with a given number
of decimals, or a string picked from a small table (chemical symbols).  About 50x faster
than Python's ``%`` formatting, which matters for multi-million-atom frames.
"""

import numpy as np
from numba import njit, prange

# Column kinds.
INT, FLOAT, STRING = 0, 1, 2
# Widest text of one column: int64 (20) / fixed float (sign + 19 digits + point + 18).
MAX_INT_WIDTH = 20
_MAX_SCALED = 9.0e18


@njit(inline="always")
def _write_uint(buf, pos, v):
    """Write the decimal digits of v >= 0 at buf[pos:]; return the new position."""
    if v == 0:
        buf[pos] = 48
        return pos + 1
    n = 0
    t = v
    while t > 0:
        n += 1
        t //= 10
    p = pos + n - 1
    while v > 0:
        buf[p] = 48 + v % 10
        v //= 10
        p -= 1
    return pos + n


@njit(inline="always")
def _write_text(buf, pos, table, length, k):
    for c in range(length[k]):
        buf[pos + c] = table[k, c]
    return pos + length[k]


@njit(inline="always")
def _write_float(buf, pos, x, d, p10):
    """Fixed-point ``x`` with ``d`` decimals; returns -1 when |x| is too large."""
    if x != x:
        buf[pos] = 110  # nan
        buf[pos + 1] = 97
        buf[pos + 2] = 110
        return pos + 3
    if x < 0:
        neg = True
        x = -x
    else:
        neg = False
    if x == np.inf:
        if neg:
            buf[pos] = 45
            pos += 1
        buf[pos] = 105  # inf
        buf[pos + 1] = 110
        buf[pos + 2] = 102
        return pos + 3
    s = x * p10
    if s >= _MAX_SCALED:
        return -1
    r = np.int64(np.rint(s))
    if neg and r != 0:
        buf[pos] = 45
        pos += 1
    ip = r // np.int64(p10)
    fp = r - ip * np.int64(p10)
    pos = _write_uint(buf, pos, ip)
    if d > 0:
        buf[pos] = 46
        pos += 1
        p = pos + d - 1
        for _ in range(d):
            buf[p] = 48 + fp % 10
            fp //= 10
            p -= 1
        pos += d
    return pos


@njit(parallel=True, cache=True)
def format_rows(ints, floats, kinds, index, decimals, table, length, width, out, lengths):
    """Format every row into a fixed-width slot of ``out``.

    Parameters
    ----------
    ints : ndarray of int64, shape (n, ki)
        Integer columns (string columns hold their table index here too).
    floats : ndarray of float64, shape (n, kf)
    kinds, index : ndarray of int64, shape (ncols,)
        Kind of every output column (INT, FLOAT, STRING) and its column in ``ints`` /
        ``floats``.
    decimals : ndarray of int64, shape (ncols,)
        Decimals of float columns.
    table : ndarray of uint8, shape (m, w)
        Strings of STRING columns; ``length`` (m,) their lengths.
    width : int
        Slot width (bytes) per row, enough for the widest row.
    out : ndarray of uint8, shape (n * width,)
    lengths : ndarray of int64, shape (n,)
        Output: bytes used in each slot; -1 where a float was too large (the caller
        formats those rows another way).
    """
    n = ints.shape[0] if ints.shape[1] > 0 else floats.shape[0]
    ncols = kinds.shape[0]
    for i in prange(n):
        pos = i * width
        start = pos
        bad = False
        for c in range(ncols):
            if c > 0:
                out[pos] = 32
                pos += 1
            k = kinds[c]
            j = index[c]
            if k == 0:
                v = ints[i, j]
                if v < 0:
                    out[pos] = 45
                    pos += 1
                    v = -v
                pos = _write_uint(out, pos, v)
            elif k == 1:
                d = decimals[c]
                pos = _write_float(out, pos, floats[i, j], d, 10.0 ** d)
                if pos < 0:
                    bad = True
                    break
            else:
                pos = _write_text(out, pos, table, length, ints[i, j])
        if bad:
            lengths[i] = -1
        else:
            out[pos] = 10
            lengths[i] = pos + 1 - start


@njit(cache=True)
def compact_rows(out, width, lengths, offsets, dest):
    """Copy row ``i``'s ``lengths[i]`` bytes from its slot to ``dest[offsets[i]:]``."""
    for i in range(lengths.shape[0]):
        s = i * width
        o = offsets[i]
        for b in range(lengths[i]):
            dest[o + b] = out[s + b]
