"""quests_hpc._gemm32: float32 block products whose rows do not depend on their position."""

import numpy as np
import pytest

from quests_hpc._gemm32 import SHIFTS, positional_sgemm, positional_shapes, product32
from quests_hpc.information import blas_one_thread


@pytest.fixture
def blocks():
    rng = np.random.default_rng(7)
    y = (rng.random((200, 63)) * 0.3).astype(np.float32)
    x = (rng.random((700, 63)) * 0.3).astype(np.float32)
    return y, x


def _product(yb, x):
    """product32 as the kernel sums call it: with float64 copies where sgemm is positional."""
    out = np.empty((len(yb), len(x)), np.float32)
    if positional_shapes(len(yb), yb.shape[1], [len(x)]):
        return product32(yb, x, out, yb.astype(np.float64), x.astype(np.float64))
    return product32(yb, x, out)


@pytest.mark.parametrize("rows", [96, 128])
def test_a_row_gives_the_same_bits_at_every_position(blocks, rows):
    y, x = blocks
    with blas_one_thread():
        base = _product(y[:rows].copy(), x)
        for s in SHIFTS + (rows - 1,):
            block = np.zeros((rows, y.shape[1]), np.float32)
            block[:rows - s] = y[s:rows]
            got = _product(block, x)
            np.testing.assert_array_equal(got[:rows - s], base[s:])


def test_products_are_float32_roundings_of_the_exact_ones(blocks):
    y, x = blocks
    with blas_one_thread():
        got = _product(y[:128].copy(), x)
    exact = y[:128].astype(np.float64) @ x.astype(np.float64).T
    scale = np.abs(y[:128]).astype(np.float64) @ np.abs(x).astype(np.float64).T
    err = np.abs(got - exact) / scale
    assert got.dtype == np.float32
    assert err.max() <= 63 * 2.0 ** -24  # a float32 dot of 63 terms at worst
    assert err.max() > 0  # rounded to float32 indeed


def test_the_probe_tells_what_plain_sgemm_does(blocks):
    """The probe's answer is what plain sgemm does on other data of the same shape (the
    probe is what product32 trusts; positional on OpenBLAS 0.3.31 Haswell sgemm on AMD
    EPYC, not positional on the machines before it)."""
    y, x = blocks
    rows = 128
    with blas_one_thread():
        positional = positional_sgemm(rows, y.shape[1], len(x))
        base = y[:rows] @ x.T
        differs = []
        for s in SHIFTS:
            block = np.zeros((rows, y.shape[1]), np.float32)
            block[:rows - s] = y[s:rows]
            differs.append(not np.array_equal((block @ x.T)[:rows - s], base[s:]))
    assert positional == any(differs)
