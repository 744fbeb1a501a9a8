"""Numba kernels for the float32 kernel sums (pure functions on arrays, no I/O).

The float32 twins of :mod:`quests_hpc._kernel_sums`: the caller computes a block of dot
products ``G = Y_blk @ X_blk.T`` of centred descriptors rounded to float32
(:func:`quests_hpc._ordered_products.row_products`: fused multiply-adds in a fixed order,
about twice the float64 rate), and the kernels below turn it
into squared distances, exponentiate and sum, all in float32 (16 lanes of AVX-512 where
float64 has 8).  The sum of one row over one block is rounded to float64 before it is
combined with the other blocks, so the running sums ``exp(M) * S`` are float64 as in the
float64 mode, and rows whose terms all underflow float32 (``exp(-87)``) take the same
log-space path: dH stays finite where float32 ``exp`` gives 0 (and ``log`` +inf).

The error against float64 is bounded in :func:`quests_hpc.information.float32_error_bound`
(derivation in ``docs/precision.md``).

Numerics
--------
* ``_exp_neg32``: Cody-Waite reduction to ``|r| <= ln2 / 2`` (``ln2`` split in a 9-bit
  head and a tail, so ``k * ln2_hi`` is exact for every ``|k| <= 126``), a degree-6
  polynomial interpolating ``exp`` at the Chebyshev nodes (approximation error 2.5e-9,
  against float32's unit roundoff 6e-8), exponent built from the bits; exactly 0 below
  -87 (``exp(-87) = 1.6e-38``, just above float32's smallest normal number).
* All constants are float32 (a float64 literal would promote the whole loop to float64).
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types

from ._kernel_sums import _FAST, _combine, bitcast, compile_signatures

_f = np.float32

#: Plain float32 row sums of a block below this are recomputed with a shift.
TINY32 = _f(1e-20)

#: Arguments below this give 0 from :func:`_exp_neg32`.
EXP_MIN_ARG32 = _f(-87.0)

#: Unit roundoff of float32.
U32 = 2.0 ** -24

_ZERO = _f(0.0)
_HALF = _f(0.5)
_TWO = _f(2.0)
_INF = _f(np.inf)
_LOG2E = _f(1.4426950408889634)
_LN2_HI = _f(0.693359375)
_LN2_LO = _f(-2.1219444005469057e-4)
_C0, _C1, _C2, _C3, _C4, _C5, _C6 = (_f(v) for v in (
    1.0, 1.000000037716214, 0.5000000047117757, 0.16666415514653277, 0.04166635289677516,
    0.008375126398153335, 0.0013941108433972674))

_EXACT_FLAGS = {"nnan", "ninf", "nsz", "arcp", "contract"}


_i32_as_f32 = bitcast(types.int32, types.float32, ir.FloatType())


@nb.njit(fastmath=_EXACT_FLAGS, cache=True)
def _exp_neg32(a):
    """float32 ``exp(a)`` for ``a <= 0``, vectorisable; exactly 0 for ``a < -87``."""
    t = a if a > EXP_MIN_ARG32 else EXP_MIN_ARG32
    kf = np.floor(t * _LOG2E + _HALF)
    r = t - kf * _LN2_HI
    r = r - kf * _LN2_LO
    p = _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    p = p * r + _C0
    scale = _i32_as_f32((np.int32(kf) + np.int32(127)) << np.int32(23))
    return p * scale if a > EXP_MIN_ARG32 else _ZERO


@nb.njit(fastmath=_FAST, inline="always")
def _d2(gij, nyi, nxj, hyi, hxj, near):
    """float32 squared distance from a dot product (see ``_kernel_sums._d2``); ``near``
    is the relative rounding noise of float32 distances."""
    d = nyi + nxj - _TWO * gij
    same = (d <= near * (nyi + nxj)) & (hxj == hyi)  # no branch: vectorises
    return _ZERO if (same or d < _ZERO) else d


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def _shifted_row_sum(g, i, nyi, nx, hyi, hx, c, near, drow):
    """Log-space float32 row sum: ``(m, s)`` with ``sum_j exp(c d2_j) = exp(c m) s``,
    ``m = min d2`` (so ``s >= 1``); ``drow`` is scratch for the row's distances."""
    bj = g.shape[1]
    for j in range(bj):
        drow[j] = _d2(g[i, j], nyi, nx[j], hyi, hx[j], near)
    m = _row_min(drow)
    s = _ZERO
    for j in range(bj):
        s += _exp_neg32(c * (drow[j] - m))
    return m, s


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def _row_min(drow):
    """Smallest value of ``drow`` (eight accumulators: a plain min loop does not vectorise)."""
    n = drow.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _INF
    j = 0
    while j + 8 <= n:
        a0 = min(a0, drow[j])
        a1 = min(a1, drow[j + 1])
        a2 = min(a2, drow[j + 2])
        a3 = min(a3, drow[j + 3])
        a4 = min(a4, drow[j + 4])
        a5 = min(a5, drow[j + 5])
        a6 = min(a6, drow[j + 6])
        a7 = min(a7, drow[j + 7])
        j += 8
    m = min(min(min(a0, a1), min(a2, a3)), min(min(a4, a5), min(a6, a7)))
    while j < n:
        m = min(m, drow[j])
        j += 1
    return m


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def rows_update32(g, hy, hx, i0, j0, nyb, nx, cs, cs64, near, M, S):
    """float32 :func:`~quests_hpc._kernel_sums.rows_update`.

    ``g``, ``nyb``, ``nx``, ``cs`` are float32 (``cs64``: the same ``-1/(2h^2)`` in
    float64, for the shift of the log-space path), ``near`` the float32 relative noise
    bound of a distance; ``M``, ``S`` are float64 as in the float64 kernel.
    """
    bi, bj = g.shape
    nh = cs.shape[0]
    nxs = nx[j0:j0 + bj]
    hxs = hx[j0:j0 + bj]
    drow = np.empty(bj, dtype=np.float32)
    for i in range(bi):
        r = i0 + i
        nyi = nyb[i]
        hyi = hy[r]
        for h in range(nh):
            c = cs[h]
            s = _ZERO
            for j in range(bj):
                s += _exp_neg32(c * _d2(g[i, j], nyi, nxs[j], hyi, hxs[j], near))
            shift = 0.0
            if s < TINY32:
                m, s = _shifted_row_sum(g, i, nyi, nxs, hyi, hxs, c, near, drow)
                shift = cs64[h] * np.float64(m)
            _combine(M, S, h, r, shift, np.float64(s))


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def sym_update32(g, hx, i0, j0, nx, cs, near, col, acc):
    """float32 :func:`~quests_hpc._kernel_sums.sym_update`.

    Row and column sums of the block are formed in float32 (``col``: a float32 scratch
    of at least ``bj`` values) and added to the float64 ``acc`` once per block.
    """
    bi, bj = g.shape
    nh = cs.shape[0]
    diag = i0 == j0
    nxs = nx[j0:j0 + bj]
    hxs = hx[j0:j0 + bj]
    for h in range(nh):
        c = cs[h]
        cb = col[:bj]
        cb[:] = _ZERO
        for i in range(bi):
            r = i0 + i
            nyi = nx[r]
            hyi = hx[r]
            s = _ZERO
            if diag:
                for j in range(bj):
                    s += _exp_neg32(c * _d2(g[i, j], nyi, nxs[j], hyi, hxs[j], near))
            else:
                for j in range(bj):
                    e = _exp_neg32(c * _d2(g[i, j], nyi, nxs[j], hyi, hxs[j], near))
                    s += e
                    cb[j] += e
            acc[h, r] += np.float64(s)
        if not diag:
            for j in range(bj):
                acc[h, j0 + j] += np.float64(cb[j])


# --------------------------------------------------------------------------- compilation

_F = types.float32
_D = types.float64
_A1 = types.Array(_F, 1, "C")
_A2 = types.Array(_F, 2, "C")
_D1 = types.Array(_D, 1, "C")
_D2 = types.Array(_D, 2, "C")
_I = types.int64
_H1 = types.Array(_I, 1, "C")
#: Signatures compiled at import (16 lanes where the CPU has AVX-512).
SIGNATURES = {
    rows_update32: [(_A2, _H1, _H1, _I, _I, _A1, _A1, _A1, _D1, _F, _D2, _D2)],
    sym_update32: [(_A2, _H1, _I, _I, _A1, _A1, _F, _A1, _D2)],
}

compile_signatures(SIGNATURES, lanes=16)
