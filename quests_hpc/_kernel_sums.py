"""Numba kernels for Gaussian kernel sums (pure functions on arrays, no I/O).

The callers (:mod:`quests_hpc.information`) compute a block of dot products
``G = Y_blk @ X_blk.T`` with BLAS and hand it to one of the kernels below, which turn each
dot product into a squared distance ``d2 = |y|^2 + |x|^2 - 2 y.x``, exponentiate
``-d2 / (2 h^2)`` and accumulate row (and, for the symmetric case, column) sums, in one
pass over the block for the symmetric sums (``G`` read once per bandwidth, never
written); :func:`rows_update` writes the distances of a row in place first (one pass
over ``G``) and then exponentiates the row from L1, which measured faster there.

Every kernel is serial and ``nogil``: the callers run one kernel per thread, each on its
own block, so that the BLAS product and the exponentials of a block stay in that core's
cache.  Measured on the 2-core development machine, dH of 30,000 x 10,000: 1.0-1.9 s this
way against 2.2-3.4 s for the alternative of a two-thread BLAS product per large block
followed by a ``prange`` kernel (best block shape, three rounds each).

Numerics
--------
* ``_exp_neg`` is a vectorisable ``exp`` (Cody-Waite reduction to ``|r| <= ln2 / 2``, a
  degree-11 polynomial interpolating ``exp`` at the Chebyshev nodes of that interval
  (approximation error 4.2e-18, so about 1 ulp after rounding), exponent built by bit
  manipulation); it returns exactly 0 below -708 (where ``exp`` is subnormal or 0).
  Numba's own ``math.exp`` compiles to a scalar libm call here (4.4 ns per value against
  about 1 ns for this one); the degree-13 Taylor polynomial used before cost 10-20 % more
  per term for the same accuracy.
* The caller centres the descriptors (subtracts a common vector, e.g. the mean of the
  reference) before the BLAS product: the rounding error of ``|y|^2 + |x|^2 - 2 y.x`` is
  about ``eps (|y|^2 + |x|^2)``, which centring shrinks by 10-50x for real descriptors.
* Squared distances within the rounding noise of zero (``d2 <= 32 eps (|y|^2 + |x|^2)``)
  are set to exactly 0 when the two rows are bitwise identical (compared through 64-bit
  row hashes, :func:`row_hashes`), so H of identical environments is exactly 0 and dH of
  a training point against its own set is <= 0.  A hash collision could only zero a
  distance that is already below the rounding noise, where 0 is as good a value as the
  expansion's.  Checking hashes rather than recomputing ``sum (y_k - x_k)^2`` keeps data
  sets full of (near-)duplicates, such as perfect crystals, at the normal speed.
* Row sums that fall below ``TINY`` (all terms tiny or underflowed) are recomputed with
  the shift ``c * min(d2)`` and carried in a scaled form ``S = exp(M) * s``, so that
  ``log S = M + log s`` is accurate and finite however small ``S`` is.
"""

import math
import sys

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

#: Plain row sums below this are recomputed with a shift (log-space path).
TINY = 1e-250

#: Arguments below this give 0 from :func:`_exp_neg` (``exp(-708) ~ 3e-308``).
EXP_MIN_ARG = -708.0

#: Relative size of the rounding noise of ``|y|^2 + |x|^2 - 2 y.x`` (32 machine epsilons).
NEAR_ZERO_REL = 32.0 * np.finfo(np.float64).eps

_LOG2E = 1.4426950408889634
#: Coefficients (degree 0..11) of the polynomial interpolating exp(r) at the 12 Chebyshev
#: nodes of [-ln2/2, ln2/2] (solved in 50-digit arithmetic; max relative error 4.2e-18).
_EXP_C = (1.0, 1.0, 0.5000000000000019, 0.1666666666666668, 0.0416666666664881,
          0.008333333333319601, 0.0013888888952314775, 0.00019841269890047113,
          2.4801485482328494e-05, 2.755724091857897e-06, 2.763263963904103e-07,
          2.5110037605963777e-08)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10

# Fast-math flags without 'reassoc': the Cody-Waite reduction must not be re-associated.
_EXACT_FLAGS = {"nnan", "ninf", "nsz", "arcp", "contract"}
# Reductions (row sums) need 'reassoc' to vectorise.
_FAST = True


def bitcast(src, dst, ir_type):
    """A Numba intrinsic reinterpreting the bits of a ``src`` value as ``dst`` (same
    width, no conversion; ``ir_type`` is ``dst`` in LLVM)."""

    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir_type)

        return dst(src), codegen

    return cast


_i64_as_f64 = bitcast(types.int64, types.float64, ir.DoubleType())
_f64_as_i64 = bitcast(types.float64, types.int64, ir.IntType(64))


@nb.njit(nogil=True, cache=True)
def row_hashes(a, out):
    """64-bit hash of the bits of every row of ``a`` (``-0.0`` counted as ``0.0``).

    FNV-1a over 64-bit words followed by a SplitMix64 finaliser; integer arithmetic
    wraps modulo 2^64.
    """
    n, d = a.shape
    for i in range(n):
        h = np.uint64(14695981039346656037)
        for k in range(d):
            w = np.uint64(_f64_as_i64(a[i, k] + 0.0))
            h = (h ^ w) * np.uint64(1099511628211)
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
        out[i] = np.int64(h)


@nb.njit(fastmath=_EXACT_FLAGS, cache=True)
def _exp_neg(a):
    """``exp(a)`` for ``a <= 0``, vectorisable; exactly 0.0 for ``a < -708``."""
    t = a if a > EXP_MIN_ARG else EXP_MIN_ARG
    k = math.floor(t * _LOG2E + 0.5)
    r = t - k * _LN2_HI
    r = r - k * _LN2_LO
    p = _EXP_C[11]
    p = p * r + _EXP_C[10]
    p = p * r + _EXP_C[9]
    p = p * r + _EXP_C[8]
    p = p * r + _EXP_C[7]
    p = p * r + _EXP_C[6]
    p = p * r + _EXP_C[5]
    p = p * r + _EXP_C[4]
    p = p * r + _EXP_C[3]
    p = p * r + _EXP_C[2]
    p = p * r + _EXP_C[1]
    p = p * r + _EXP_C[0]
    scale = _i64_as_f64((np.int64(k) + 1023) << 52)
    return p * scale if a > EXP_MIN_ARG else 0.0


@nb.njit(fastmath=_FAST, inline="always")
def _d2(gij, nyi, nxj, hyi, hxj):
    """Squared distance of two centred rows from their dot product ``gij`` and squared
    norms: clamped at 0, and exactly 0 for identical rows (equal hashes ``hyi == hxj``)
    whose value is within the rounding noise of 0."""
    d = nyi + nxj - 2.0 * gij
    same = (d <= NEAR_ZERO_REL * (nyi + nxj)) & (hxj == hyi)
    return 0.0 if (same or d < 0.0) else d


@nb.njit(fastmath=_FAST, cache=True)
def _combine(M, S, h, r, m_new, s_new):
    """Add ``exp(m_new) * s_new`` to the scaled pair ``exp(M[h, r]) * S[h, r]``."""
    s_old = S[h, r]
    if s_new == 0.0:
        return
    if s_old == 0.0:
        M[h, r] = m_new
        S[h, r] = s_new
        return
    m_old = M[h, r]
    if m_new == m_old:
        S[h, r] = s_old + s_new
    elif m_new > m_old:
        S[h, r] = s_old * math.exp(m_old - m_new) + s_new
        M[h, r] = m_new
    else:
        S[h, r] = s_old + s_new * math.exp(m_new - m_old)


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def _row_sqdist(g, i, hyi, hx, nyi, nx):
    """Row ``i`` of ``g`` (dot products of centred rows) -> squared distances, in place.

    Clamped at 0; the rare values within rounding noise of 0 become exactly 0 when the
    rows are identical, in a second loop run only when there are any (the hash compare
    in the main loop cost 10-25 % of the kernel sums).
    """
    n = g.shape[1]
    nsmall = 0
    for j in range(n):
        d = nyi + nx[j] - 2.0 * g[i, j]
        nsmall += 1 if d <= NEAR_ZERO_REL * (nyi + nx[j]) else 0
        g[i, j] = d if d > 0.0 else 0.0
    if nsmall > 0:
        for j in range(n):
            d = g[i, j]
            same = d <= NEAR_ZERO_REL * (nyi + nx[j]) and hx[j] == hyi
            g[i, j] = 0.0 if same else d


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def _row_d2(g, i, nyi, nx, hyi, hx, drow):
    """Squared distances of row ``i`` of the block into ``drow`` (for the rare paths that
    read them more than once: the log-space sum, truncation)."""
    for j in range(g.shape[1]):
        drow[j] = _d2(g[i, j], nyi, nx[j], hyi, hx[j])


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def _row_min(drow, dmax2):
    """Smallest ``drow[j]`` that is ``<= dmax2`` (``inf`` if none).

    Eight independent accumulators: LLVM does not vectorise a plain min reduction here
    (1 ns per element, latency-bound); this runs at about 0.2 ns.
    """
    n = drow.shape[0]
    inf = np.inf
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = inf
    j = 0
    while j + 8 <= n:
        v0 = drow[j]
        v1 = drow[j + 1]
        v2 = drow[j + 2]
        v3 = drow[j + 3]
        v4 = drow[j + 4]
        v5 = drow[j + 5]
        v6 = drow[j + 6]
        v7 = drow[j + 7]
        a0 = v0 if (v0 < a0 and v0 <= dmax2) else a0
        a1 = v1 if (v1 < a1 and v1 <= dmax2) else a1
        a2 = v2 if (v2 < a2 and v2 <= dmax2) else a2
        a3 = v3 if (v3 < a3 and v3 <= dmax2) else a3
        a4 = v4 if (v4 < a4 and v4 <= dmax2) else a4
        a5 = v5 if (v5 < a5 and v5 <= dmax2) else a5
        a6 = v6 if (v6 < a6 and v6 <= dmax2) else a6
        a7 = v7 if (v7 < a7 and v7 <= dmax2) else a7
        j += 8
    m = min(min(min(a0, a1), min(a2, a3)), min(min(a4, a5), min(a6, a7)))
    while j < n:
        v = drow[j]
        m = v if (v < m and v <= dmax2) else m
        j += 1
    return m


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def _shifted_row_sum(drow, c, dmax2):
    """Log-space row sum: ``(shift, s)`` with ``sum_{d2 <= dmax2} exp(c d2) = exp(shift) s``
    over the squared distances ``drow``.

    ``shift = c * min(d2)`` over the kept terms, so ``s >= 1``; ``(0, 0)`` if none is kept.
    """
    m = _row_min(drow, dmax2)
    if m == np.inf:
        return 0.0, 0.0
    shift = c * m
    s = 0.0
    # c * (d2 - m), not c * d2 - shift: a fused multiply-add of the latter is off by up to
    # ulp(shift), which for |shift| > 1e16 makes exp() of the nearest term 0 or inf
    if dmax2 == np.inf:
        for j in range(drow.shape[0]):
            s += _exp_neg(c * (drow[j] - m))
    else:
        for j in range(drow.shape[0]):
            v = drow[j]
            e = _exp_neg(c * (v - m))
            s += e if v <= dmax2 else 0.0
    return shift, s


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def rows_update(g, hy, hx, i0, j0, nyb, nx, cs, M, S):
    """Accumulate kernel sums of a block of test rows against a block of reference rows.

    Parameters
    ----------
    g : (bi, bj) float64, C-contiguous
        ``(y[i0:i0+bi] - mu) @ (x[j0:j0+bj] - mu).T`` for any centre ``mu``; overwritten
        with the squared distances.
    hy, hx : (n_y,), (n_x,) int64
        Row hashes of ``y`` and ``x`` (:func:`row_hashes`).
    i0, j0 : int
        Offsets of the block in ``y`` and ``x``.
    nyb, nx : (bi,), (n_x,) float64
        Squared norms of the centred rows of the block of ``y`` and of all of ``x``.
    cs : (n_h,) float64
        ``-1 / (2 h^2)`` per bandwidth.
    M, S : (n_h, n_y) float64
        Running scaled sums, ``sum_j K = exp(M) * S`` (start from zeros); updated for
        rows ``i0:i0+bi``.
    """
    bi, bj = g.shape
    nh = cs.shape[0]
    nxs = nx[j0:j0 + bj]
    hxs = hx[j0:j0 + bj]
    for i in range(bi):
        r = i0 + i
        drow = g[i]
        # distances in place first, then one exp pass per bandwidth over the row (in L1):
        # measured faster than one fused pass per bandwidth with the identical-rows test
        # in it (log_kernel_sum of 20,000 x 10,000 FCC rows, 1 thread: 1.33 s fused)
        _row_sqdist(g, i, hy[r], hxs, nyb[i], nxs)
        for h in range(nh):
            c = cs[h]
            s = 0.0
            for j in range(bj):
                s += _exp_neg(c * drow[j])
            shift = 0.0
            if s < TINY:
                shift, s = _shifted_row_sum(drow, c, np.inf)
            _combine(M, S, h, r, shift, s)


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def rows_update_truncated(g, hy, hx, i0, j0, nyb, nx, cs, dmax2, M, S, dmin, nkept):
    """:func:`rows_update` keeping only the terms with ``d2 <= dmax2``.

    Extra parameters
    ----------------
    dmax2 : float
        Squared distance bound.
    dmin : (n_y,) float64
        Running minimum squared distance per row (start from ``inf``): a row with no
        term within the bound falls back to its nearest point.
    nkept : (n_y,) int64
        Running count of kept terms per row (start from 0).
    """
    bi, bj = g.shape
    nh = cs.shape[0]
    nxs = nx[j0:j0 + bj]
    hxs = hx[j0:j0 + bj]
    drow = np.empty(bj)
    for i in range(bi):
        r = i0 + i
        _row_d2(g, i, nyb[i], nxs, hy[r], hxs, drow)
        dmin[r] = min(dmin[r], _row_min(drow, np.inf))
        cnt = 0
        for j in range(bj):
            cnt += 1 if drow[j] <= dmax2 else 0
        nkept[r] += cnt
        if cnt == 0:
            continue
        for h in range(nh):
            c = cs[h]
            s = 0.0
            for j in range(bj):
                v = drow[j]
                e = _exp_neg(c * v)
                s += e if v <= dmax2 else 0.0
            shift = 0.0
            if s < TINY:
                shift, s = _shifted_row_sum(drow, c, dmax2)
            _combine(M, S, h, r, shift, s)


@nb.njit(fastmath=_FAST, nogil=True, cache=True)
def sym_update(g, hx, i0, j0, nx, cs, acc):
    """Accumulate a block of the symmetric kernel sum of ``x`` against itself.

    Parameters
    ----------
    g : (bi, bj) float64, C-contiguous
        ``xc[i0:i0+bi] @ xc[j0:j0+bj].T`` with ``i0 <= j0`` (``xc = x - mu`` for any
        centre ``mu``); read only.
    hx : (n,) int64
        Row hashes of the data set (:func:`row_hashes`).
    i0, j0 : int
        Block offsets.  For ``i0 == j0`` (a diagonal block) only row sums are added, as
        the block holds both orders of every pair; otherwise each term is added to its
        row ``i0 + i`` and to its column ``j0 + j``.
    nx : (n,) float64
        Squared norms of the rows of ``xc``.
    cs : (n_h,) float64
        ``-1 / (2 h^2)`` per bandwidth.
    acc : (n_h, n) float64
        Plain kernel sums, updated in place (one array per thread: columns of other
        row blocks are written).

    Notes
    -----
    No log-space path is needed: every sum contains its self term ``exp(0) = 1``, so the
    dropped terms (below ``exp(-708)``) change it by a relative ``n * 1e-308`` at most.
    """
    bi, bj = g.shape
    nh = cs.shape[0]
    diag = i0 == j0
    nxs = nx[j0:j0 + bj]
    hxs = hx[j0:j0 + bj]
    for i in range(bi):
        r = i0 + i
        nyi = nx[r]
        hyi = hx[r]
        for h in range(nh):
            c = cs[h]
            s = 0.0
            if diag:
                for j in range(bj):
                    s += _exp_neg(c * _d2(g[i, j], nyi, nxs[j], hyi, hxs[j]))
            else:
                col = acc[h, j0:j0 + bj]
                for j in range(bj):
                    e = _exp_neg(c * _d2(g[i, j], nyi, nxs[j], hyi, hxs[j]))
                    s += e
                    col[j] += e
            acc[h, r] += s


# --------------------------------------------------------------------------- compilation

#: Signatures compiled at import (with 512-bit vectors where the CPU has AVX-512).
_F = types.float64
_A1 = types.Array(_F, 1, "C")
_A2 = types.Array(_F, 2, "C")
_I = types.int64
_H1 = types.Array(_I, 1, "C")
_SIGNATURES = {
    rows_update: [(_A2, _H1, _H1, _I, _I, _A1, _A1, _A1, _A2, _A2)],
    rows_update_truncated: [(_A2, _H1, _H1, _I, _I, _A1, _A1, _A1, _F, _A2, _A2, _A1, _H1)],
    sym_update: [(_A2, _H1, _I, _I, _A1, _A1, _A2)],
    row_hashes: [(_A2, _H1)],
}


def _host_has_avx512():
    try:
        import llvmlite.binding as llvm
        return "+avx512f" in llvm.get_host_cpu_features().flatten()
    except Exception:  # pragma: no cover - feature query unsupported
        return False


class _LLVMRemarksFiltered:
    """Context: drop LLVM's "remark:" lines from stderr (fd 2), pass everything else on.

    Forcing the vector width makes LLVM report every loop it cannot vectorise (min
    reductions, the rare-path loops) as a remark on stderr at compile time; they are not
    errors.
    """

    def __enter__(self):
        import os
        import tempfile
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
            self._tmp = tempfile.TemporaryFile()
            os.dup2(self._tmp.fileno(), 2)
        except (OSError, ValueError):  # no usable fd 2: leave stderr alone
            self._saved = None
        return self

    def __exit__(self, *exc):
        import os
        if self._saved is None:
            return False
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        text = self._tmp.read().decode(errors="replace")
        self._tmp.close()
        kept = [ln for ln in text.splitlines(keepends=True) if not ln.startswith("remark: ")]
        if kept:
            sys.stderr.write("".join(kept))
        return False


def compile_signatures(table, lanes=8):
    """Compile (or load from Numba's cache) the kernels of ``table`` for their signatures.

    LLVM's cost model prefers 256-bit vectors; on the Intel machine these kernels were
    tuned on, the exp-and-sum loops ran about 30 % faster with 512-bit ones (measured:
    1.2 -> 0.85 ns per term), so where the CPU has AVX-512 the vector width is forced to
    ``lanes`` elements (8 doubles or 16 floats: 512 bits) while *these* kernels compile,
    and reset right after.  ``QUESTS_HPC_VECTOR_WIDTH`` overrides the width in bits
    (0: LLVM's choice).
    """
    import os

    import llvmlite.binding as llvm
    if not all(hasattr(fn, "compile") for fn in table):  # NUMBA_DISABLE_JIT
        return
    env = os.environ.get("QUESTS_HPC_VECTOR_WIDTH")
    try:
        width = int(env) * lanes // 512 if env else (lanes if _host_has_avx512() else 0)
    except ValueError:
        width = 0
    if width <= 0:
        for fn, sigs in table.items():
            for sig in sigs:
                fn.compile(sig)
        return
    llvm.set_option("", f"--force-vector-width={width}")
    try:
        with _LLVMRemarksFiltered():
            for fn, sigs in table.items():
                for sig in sigs:
                    fn.compile(sig)
    finally:
        llvm.set_option("", "--force-vector-width=0")


compile_signatures(_SIGNATURES)
