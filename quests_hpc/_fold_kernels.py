"""Numba kernels of the lazy msc compression: fold kernel sums against a run of small
sets ("segments": chosen structures) into running log sums, each row on its own.

Given ``G[i, c] = y_i . x_c`` (:func:`quests_hpc._ordered_products.row_products`; rows
and columns centred on one common point) and the squared norms, for row ``i`` and every
segment ``j >= first[i]`` in order::

    log[i] = logaddexp(log[i], log sum_{c in segment j} exp(cs |y_i - x_c|^2))

each segment's sum shifted by its largest term (finite where every term underflows).
:func:`segment_sums` gives each segment's log sum (threads may take different segments
of the same rows), :func:`fold_logs` folds them in order.  A row's result depends only
on its row of ``G`` and the segments, not on the other rows or the threads.  Pure
functions on arrays.
"""

import math

import numba as nb
import numpy as np

from ._kernel_sums import _exp_neg


@nb.njit(cache=True)
def _logaddexp(a, b):
    """``log(exp(a) + exp(b))`` (its own function: no fast-math, which assumes no inf)."""
    m = a if a > b else b
    if m == -np.inf:
        return m
    return m + math.log1p(math.exp(-abs(a - b)))


@nb.njit(fastmath=True, inline="always")
def _exponents(row, ny, nx, c0, w, cs):
    """``row[c] = cs * max(ny + nx[c] - 2 row[c], 0)`` for the ``w`` columns from ``c0``
    (in place); returns the largest.  Unsigned indices: no negative-index wraparound,
    which would keep the loop from vectorising."""
    top = cs * 1e300
    for c in range(w):
        k = c0 + np.uint64(c)
        d2 = ny + nx[k] - 2.0 * row[k]
        row[k] = cs * (d2 if d2 > 0.0 else 0.0)
    for c in range(w):
        v = row[c0 + np.uint64(c)]
        top = v if v > top else top
    return top


@nb.njit(fastmath=True, inline="always")
def _shifted_sum(row, c0, w, top):
    s = 0.0
    for c in range(w):
        s += _exp_neg(row[c0 + np.uint64(c)] - top)
    return s


@nb.njit(nogil=True, cache=True)
def fold_logs(out, first, log):
    """``log[i] = logaddexp(log[i], out[i, j])`` for ``j = first[i] ..`` in order."""
    for i in range(out.shape[0]):
        acc = log[i]
        for j in range(first[i], out.shape[1]):
            acc = _logaddexp(acc, out[i, j])
        log[i] = acc


@nb.njit(fastmath=True, nogil=True, cache=True)
def segment_sums(g, ny, nx, seg, first, out, cs):
    """``out[i, j] = log sum_{c in segment j} exp(cs |y_i - x_c|^2)`` for every row
    ``i`` of ``g`` and segment ``j >= first[i]`` (``g`` is overwritten).  The segments of
    one row may be split among calls (threads, with ``first`` shifted and ``out`` a
    view): each value depends only on its row of ``g`` and its segment."""
    for i in range(g.shape[0]):
        row = g[i]
        for j in range(max(first[i], 0), seg.shape[0] - 1):
            c0, w = np.uint64(seg[j]), seg[j + 1] - seg[j]
            top = _exponents(row, ny[i], nx, c0, w, cs)
            out[i, j] = top + math.log(_shifted_sum(row, c0, w, top))
