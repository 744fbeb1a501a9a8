"""The lazy msc fold kernels (quests_hpc._fold_kernels) and the ordered products they fold
(quests_hpc._ordered_products) against their definitions."""

from fractions import Fraction

import numpy as np
import pytest
from scipy.special import logsumexp

from quests_hpc._fold_kernels import fold_logs, segment_sums
from quests_hpc._ordered_products import row_products


@pytest.fixture
def rows():
    rng = np.random.default_rng(3)
    return rng.normal(size=(37, 63)), rng.normal(size=(300, 63))


def _in_order(y, x):
    """Each product summed k = 0, 1, .. in plain Python floats (rounded per step)."""
    out = np.empty((len(y), len(x)))
    for i, a in enumerate(y.tolist()):
        for c, b in enumerate(x.tolist()):
            s = 0.0
            for u, v in zip(a, b):
                s += u * v
            out[i, c] = s
    return out


@pytest.mark.parametrize("n, c0, w", [(37, 50, 250), (8, 0, 16), (3, 5, 9), (5, 290, 10)])
def test_row_products_are_summed_in_order(rows, n, c0, w):
    """Register tiles, left-over rows and left-over columns: every element the in-order sum."""
    y, x = rows
    out = np.empty((n, w))
    row_products(y[:n], np.ascontiguousarray(x.T), c0, out)
    assert out.tobytes() == _in_order(y[:n], x[c0:c0 + w]).tobytes()


@pytest.mark.parametrize("r0, r1, c0, w", [(0, 37, 0, 300), (5, 6, 17, 1), (3, 11, 60, 97),
                                           (0, 36, 1, 8), (20, 37, 200, 100), (1, 4, 3, 7),
                                           (2, 7, 0, 16), (0, 37, 0, 0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_products_bits_do_not_depend_on_the_shape(rows, r0, r1, c0, w, dtype):
    """An element's bits are the same in any block of rows and run of columns (BLAS's
    may not be: OpenBLAS's AVX-512 dgemm gave other last bits in other shapes, its
    Haswell sgemm at other row positions)."""
    y, x = (a.astype(dtype) for a in rows)
    xt = np.ascontiguousarray(x.T)
    whole = np.empty((len(y), len(x)), dtype)
    row_products(y, xt, 0, whole)
    part = np.empty((r1 - r0, w), dtype)
    row_products(y[r0:r1], xt, c0, part)
    assert part.tobytes() == whole[r0:r1, c0:c0 + w].tobytes()


def _fma32(a, b, s):
    """``s + a b`` rounded once to float32 (nearest, ties to even), in exact arithmetic."""
    exact = Fraction(float(s)) + Fraction(float(a)) * Fraction(float(b))
    c = np.float32(float(exact))
    near = (np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf)))
    return min(near, key=lambda v: (abs(Fraction(float(v)) - exact),
                                    int(v.view(np.uint32)) & 1))


def test_float32_row_products_are_fused_sums_in_order(rows):
    """float32: one fused multiply-add per term, k = 0, 1, .. (the tile of 4 x 32, the
    one-vector tile, single columns and left-over rows all round the same way)."""
    y = rows[0][:6].astype(np.float32)   # 6 rows: a tile and 2 left over
    x = rows[1][:56].astype(np.float32)  # 56 columns: a tile of 32, one of 16, 8 single
    out = np.empty((6, 56), np.float32)
    row_products(y, np.ascontiguousarray(x.T), 0, out)
    differ = 0
    for i in range(6):
        for c in range(56):
            s = p = np.float32(0.0)
            for k in range(y.shape[1]):
                s = _fma32(y[i, k], x[c, k], s)
                p = np.float32(p + np.float32(y[i, k] * x[c, k]))
            assert out[i, c] == s, (i, c)
            differ += s != p
    assert differ > 0  # and it is not mul-then-add: somewhere the bits differ


@pytest.mark.parametrize("h", [8.0, 0.1])  # terms near 1; every term underflows
def test_segment_sums_and_fold_logs_are_the_log_sums_in_order(rows, h):
    y, x = rows
    cs = -0.5 / h ** 2
    seg = np.array([0, 100, 101, 250, 300], dtype=np.int64)
    first = np.array([0, 1, 3, 4] * 9 + [2], dtype=np.int64)
    g = np.empty((len(y), len(x)))
    row_products(y, np.ascontiguousarray(x.T), 0, g)
    out = np.full((len(y), 4), np.nan)
    segment_sums(g, np.einsum("ij,ij->i", y, y), np.einsum("ij,ij->i", x, x), seg, first,
                 out, cs)
    d2 = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    log = np.full(len(y), -np.inf)
    fold_logs(out, first, log)
    for i in range(len(y)):
        want = [logsumexp(cs * d2[i, a:b]) for a, b in zip(seg[:-1], seg[1:])]
        assert np.allclose(out[i, first[i]:], want[first[i]:], rtol=1e-12, atol=0)
        expect = np.logaddexp.reduce(want[first[i]:]) if first[i] < 4 else -np.inf
        assert log[i] == pytest.approx(expect, rel=1e-12)
