"""Numba kernel of the lazy msc compression: fold kernel sums against small sets into
running log sums, one set ("segment") at a time, each row on its own.

For row ``i`` of ``y`` and every segment ``j >= first[i]`` (a chosen structure's
environments, centred on their own mean ``mu[j]``, stored transposed in ``xt``)::

    log[i] = logaddexp(log[i], log sum_c exp(cs |y_i - x_c|^2))

with ``|y - x|^2 = |y - mu|^2 + |x - mu|^2 - 2 (y - mu).(x - mu)`` (centring keeps the
cancellation small, as in :mod:`quests_hpc._kernel_sums`), the sum shifted by its
largest term (finite where every term underflows) and the segments folded in order.
A row's result depends on that row and the segments only -- not on the other rows of
the call, nor on the threads -- so a lazy evaluation that brings rows up to date at
different times gets them bitwise the same.  Pure functions on arrays.
"""

import math

import numba as nb
import numpy as np

from ._kernel_sums import _exp_neg


@nb.njit(inline="always")
def _logaddexp(a, b):
    m = a if a > b else b
    if m == -np.inf:
        return m
    return m + math.log1p(math.exp(-abs(a - b)))


@nb.njit(fastmath=True, inline="always")
def _products(yc, xt, c0, w, g):
    """``g[c] = yc . x_{c0 + c}`` for ``c < w`` (vectorised over the columns)."""
    for c in range(w):
        g[c] = 0.0
    for k in range(yc.shape[0]):
        v = yc[k]
        for c in range(w):
            g[c] += v * xt[k, c0 + c]


@nb.njit(fastmath=True, inline="always")
def _exponents(g, ny, nx, c0, w, cs):
    """``g[c] = cs * max(d2, 0)`` in place; returns the largest (the shift)."""
    top = cs * 1e300
    for c in range(w):
        d2 = ny + nx[c0 + c] - 2.0 * g[c]
        g[c] = cs * max(d2, 0.0)
        top = max(top, g[c])
    return top


@nb.njit(fastmath=True, inline="always")
def _shifted_sum(g, w, top):
    s = 0.0
    for c in range(w):
        s += _exp_neg(g[c] - top)
    return s


@nb.njit(parallel=True, cache=True, error_model="numpy")
def fold_segments(y, first, log, xt, nx, mu, seg, cs):
    """Fold segments ``first[i] ..`` into ``log[i]`` for every row (in place).

    ``xt``: (d, n_cols) centred columns of all segments; ``nx``: their squared norms;
    ``mu``: (n_seg, d) segment means; ``seg``: (n_seg + 1,) column offsets; ``cs`` =
    -1 / (2 h^2).
    """
    n, d = y.shape
    width = 1
    for j in range(len(seg) - 1):
        width = max(width, seg[j + 1] - seg[j])
    for i in nb.prange(n):
        g = np.empty(width)
        yc = np.empty(d)
        acc = log[i]
        for j in range(first[i], len(seg) - 1):
            c0, w = seg[j], seg[j + 1] - seg[j]
            ny = 0.0
            for k in range(d):
                yc[k] = y[i, k] - mu[j, k]
                ny += yc[k] * yc[k]
            _products(yc, xt, c0, w, g)
            top = _exponents(g, ny, nx, c0, w, cs)
            acc = _logaddexp(acc, top + math.log(_shifted_sum(g, w, top)))
        log[i] = acc
