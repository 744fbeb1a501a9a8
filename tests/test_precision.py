"""The float32 mode of the kernel sums: its error against float64 stays within the bound
``information.float32_error_bound`` (derived in docs/precision.md) on crystal, liquid and
gas-like environments, including rows whose every term underflows float32 (finite there,
where a plain float32 sum gives exp() = 0 and dH = +inf)."""

import numpy as np
import pytest
from ase.build import bulk

from quests_hpc import threads
from quests_hpc._kernel_sums_f32 import EXP_MIN_ARG32, U32
from quests_hpc.descriptors import descriptors_from_arrays
from quests_hpc.errors import QuestsInputError
from quests_hpc.information import (
    delta_entropy,
    diversity,
    entropy,
    float32_error_bound,
    log_kernel_sum,
    self_log_kernel_sum,
)

HS = [0.015, 0.05, 0.2]


def _cu(rattle, seed, rep=4):
    at = bulk("Cu", "fcc", a=3.61, cubic=True) * (rep, rep, rep)
    at.rattle(stdev=rattle, seed=seed)
    return descriptors_from_arrays(at.positions, at.cell.array, True)


def _gas(n, seed):
    """Ideal-gas-like Cu: uniform random positions at the FCC density."""
    side = (n / 4) ** (1 / 3) * 3.61
    pos = np.random.default_rng(seed).random((n, 3)) * side
    return descriptors_from_arrays(pos, np.eye(3) * side, True)


@pytest.fixture(scope="module")
def reference():
    return np.vstack([_cu(0.05, 1), _cu(0.1, 2)])


@pytest.fixture(scope="module")
def cases():
    return {"crystal": _cu(0.07, 11), "liquid": _cu(0.45, 12), "gas": _gas(256, 13)}


@pytest.mark.parametrize("kind", ["crystal", "liquid", "gas"])
def test_float32_dh_is_within_the_bound(reference, cases, kind):
    y = cases[kind]
    d64 = delta_entropy(y, reference, HS)
    d32 = delta_entropy(y, reference, HS, precision="float32")
    bound = float32_error_bound(y, reference, HS)
    err = np.abs(d32 - d64)
    assert d32.shape == d64.shape == bound.shape == (len(HS), len(y))
    assert np.isfinite(d32).all()
    assert (err <= bound).all(), float((err / bound).max())
    # float32 arithmetic really ran (errors far above float64 rounding), and the bound is
    # a bound, not a blanket: within 1e3 of the largest error seen at the narrowest h
    assert err.max() > 1e-8
    assert bound[0].max() < 1e3 * max(err[0].max(), 1e-7)


def test_rows_whose_every_term_underflows_float32_stay_finite_and_bounded(reference, cases):
    """Gas environments at h = 0.015: every term is below exp(-87) (float32's exp gives 0,
    so a plain float32 sum gives dH = +inf); some are below exp(-708) (float64 too)."""
    y = cases["gas"]
    d64 = delta_entropy(y, reference, 0.015)
    assert (d64 > 87 + np.log(len(reference))).mean() > 0.5  # the rows meant here
    assert (d64 > 708 + np.log(len(reference))).any()
    with np.errstate(divide="ignore"):
        naive = -np.log(np.exp(-((y[:, None, :].astype(np.float32) - reference[None].astype(
            np.float32)) ** 2).sum(-1) / np.float32(2 * 0.015 ** 2)).sum(1))
    assert np.isinf(naive).mean() > 0.5
    d32 = delta_entropy(y, reference, 0.015, precision="float32")
    assert np.isfinite(d32).all()
    assert (np.abs(d32 - d64) <= float32_error_bound(y, reference, 0.015)).all()


def test_float32_entropy_and_diversity_within_the_bound(cases):
    x = np.vstack([cases["crystal"], cases["liquid"]])
    b = float32_error_bound(x, x, HS, block_size=(384, 384))
    h64, h32 = entropy(x, HS), entropy(x, HS, precision="float32")
    d64, d32 = diversity(x, HS), diversity(x, HS, precision="float32")
    assert (np.abs(h32 - h64) <= b.mean(axis=1)).all()
    assert (np.abs(d32 - d64) <= b.max(axis=1)).all()
    assert np.abs(h32 - h64).max() > 1e-9
    ls = self_log_kernel_sum(x, HS, precision="float32")
    assert (np.abs(ls - self_log_kernel_sum(x, HS)) <= b).all()


def test_float32_rows_do_not_depend_on_batching_or_threads(reference, cases):
    """What makes the pipeline's float32 dH independent of chunks and ranks."""
    y = np.vstack([cases["crystal"], cases["liquid"]])
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        whole = log_kernel_sum(y, reference, HS, precision="float32")
        threads.set_num_threads(2)
        parts = np.hstack([log_kernel_sum(y[a:b], reference, HS, precision="float32")
                           for a, b in [(0, 5), (5, 300), (300, len(y))]])
    finally:
        threads.set_num_threads(before)
    np.testing.assert_array_equal(whole, parts)


def test_float32_exp_accuracy():
    import numba

    from quests_hpc._kernel_sums_f32 import _exp_neg32

    @numba.njit
    def run(a, out):
        for i in range(a.size):
            out[i] = _exp_neg32(a[i])

    a = -np.concatenate([np.linspace(0, 1, 10001), np.random.default_rng(0).random(200000) * 87,
                         np.linspace(86, 86.999, 1001)]).astype(np.float32)
    out = np.empty_like(a)
    run(a, out)
    rel = np.abs(out.astype(np.float64) / np.exp(a.astype(np.float64)) - 1)
    assert rel.max() <= 8 * U32  # the exp term of the bound
    b = np.array([EXP_MIN_ARG32 - 0.01, -100, -1e30, -np.inf], dtype=np.float32)
    run(b, out[:4])
    np.testing.assert_array_equal(out[:4], 0.0)


def test_precision_is_checked(reference):
    y = reference[:4]
    with pytest.raises(QuestsInputError, match="precision must be one of 'float64', 'float32'"):
        delta_entropy(y, reference, 0.015, precision="float16")
    with pytest.raises(QuestsInputError, match="d_max .* needs precision 'float64'"):
        delta_entropy(y, reference, 0.015, d_max=0.5, precision="float32")
    with pytest.raises(QuestsInputError, match="do not fit precision 'float32'"):
        entropy(reference * 1e19, 0.015, precision="float32")
    # float64 stays the default: the same numbers with and without the argument
    np.testing.assert_array_equal(delta_entropy(y, reference, 0.015),
                                  delta_entropy(y, reference, 0.015, precision="float64"))


def test_bandwidth_too_small_for_float32_is_refused(reference):
    with pytest.raises(QuestsInputError, match="too small for precision 'float32'"):
        delta_entropy(reference[:3], reference, 1e-20, precision="float32")
    with pytest.raises(QuestsInputError, match="too small for precision 'float32'"):
        entropy(reference, 1e-20, precision="float32")
