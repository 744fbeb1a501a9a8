"""Information measures (quests_hpc.information) against upstream quests and properties.

Descriptors come from upstream ``quests.descriptor.get_descriptors`` on randomly displaced
structures (never perfect crystals); upstream ``quests.entropy`` is the oracle.
"""

import math

import numpy as np
import pytest
from ase.build import bulk
from quests.descriptor import get_descriptors as upstream_descriptors
from quests.entropy import delta_entropy as up_delta_entropy
from quests.entropy import diversity as up_diversity
from quests.entropy import entropy as up_entropy

from quests_hpc import threads
from quests_hpc._kernel_sums import _EXACT_FLAGS, _exp_neg
from quests_hpc.errors import QuestsInputError
from quests_hpc.information import (
    delta_entropy,
    diversity,
    diversity_from_log_sums,
    entropy,
    entropy_from_log_sums,
    log_kernel_sum,
    novelty,
    overlap,
    self_log_kernel_sum,
)

TOL = 1e-9
H0 = 0.015
HS = [0.01, 0.015, 0.03, 0.1]


def _fcc_frames(seed, stdevs):
    frames = []
    for i, s in enumerate(stdevs):
        at = bulk("Cu", "fcc", a=3.61, cubic=True) * (3, 3, 3)
        at.rattle(stdev=s, seed=seed + i)
        frames.append(at)
    return frames


@pytest.fixture(scope="module")
def fcc_train():
    """432 environments of rattled FCC Cu (stdev 0.05-0.1 A)."""
    return upstream_descriptors(_fcc_frames(1, [0.05, 0.07, 0.08, 0.1]), k=32, cutoff=5.0)


@pytest.fixture(scope="module")
def fcc_test():
    return upstream_descriptors(_fcc_frames(101, [0.06, 0.09]), k=32, cutoff=5.0)


@pytest.fixture(scope="module")
def bcc_test():
    """BCC Cu (a = 2.87 A), rattled: a test/reference mismatch."""
    at = bulk("Cu", "bcc", a=2.87, cubic=True) * (4, 4, 4)
    at.rattle(stdev=0.05, seed=7)
    return upstream_descriptors([at], k=32, cutoff=5.0)


def _brute_log_s(y, x, h):
    """log S by brute force: exact differences and a max-shifted log-sum-exp."""
    d2 = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    a = -d2 / (2 * h * h)
    m = a.max(axis=1)
    return m + np.log(np.exp(a - m[:, None]).sum(axis=1)), d2


# ------------------------------------------------------------------ upstream oracle


def test_delta_entropy_matches_upstream(fcc_test, fcc_train):
    ours = delta_entropy(fcc_test, fcc_train, H0)
    ref = up_delta_entropy(fcc_test, fcc_train, H0)
    assert ours.shape == (len(fcc_test),)
    assert np.all(np.isfinite(ref))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)


def test_delta_entropy_mismatch_matches_upstream(bcc_test, fcc_train):
    ours = delta_entropy(bcc_test, fcc_train, H0)
    with np.errstate(divide="ignore"):
        ref = up_delta_entropy(bcc_test, fcc_train, H0)
    assert np.all(np.isfinite(ours))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=0, atol=TOL)
    # where upstream overflows to +inf, ours is the brute-force log-sum-exp
    brute, _ = _brute_log_s(bcc_test[~fin], fcc_train, H0)
    np.testing.assert_allclose(ours[~fin], -brute, rtol=1e-12)
    assert np.all(ours > 0)  # BCC environments are novel w.r.t. FCC


def test_delta_entropy_several_bandwidths_one_pass(bcc_test, fcc_test, fcc_train):
    y = np.vstack([fcc_test, bcc_test[:40]])
    ours = delta_entropy(y, fcc_train, HS)
    assert ours.shape == (len(HS), len(y))
    with np.errstate(divide="ignore"):
        ref = up_delta_entropy(y, fcc_train, np.array(HS))  # upstream returns (n_y, n_h)
    fin = np.isfinite(ref.T)
    np.testing.assert_allclose(ours[fin], ref.T[fin], rtol=0, atol=TOL)
    for k, h in enumerate(HS):
        np.testing.assert_allclose(ours[k], delta_entropy(y, fcc_train, h), rtol=0, atol=1e-12)


def test_entropy_and_diversity_match_upstream(fcc_train, bcc_test):
    for x in (fcc_train, np.vstack([fcc_train, bcc_test])):
        assert abs(entropy(x, H0) - up_entropy(x, H0)) < TOL
        assert abs(diversity(x, H0) - up_diversity(x, H0)) < TOL
        h_many = entropy(x, HS)
        d_many = diversity(x, HS)
        assert h_many.shape == d_many.shape == (len(HS),)
        np.testing.assert_allclose(h_many, up_entropy(x, np.array(HS)), rtol=0, atol=TOL)
        np.testing.assert_allclose(d_many, up_diversity(x, np.array(HS)), rtol=0, atol=TOL)


def test_novelty_and_overlap(fcc_test, bcc_test, fcc_train):
    y = np.vstack([fcc_test, bcc_test])
    with np.errstate(divide="ignore"):
        ref = up_delta_entropy(y, fcc_train, H0)
    nov, ovl = novelty(y, fcc_train, H0), overlap(y, fcc_train, H0)
    assert nov == pytest.approx(np.mean(ref > 0), abs=1e-15)
    assert nov + ovl == pytest.approx(1.0, abs=1e-15)
    assert 0 < nov < 1
    many = novelty(y, fcc_train, HS)
    assert many.shape == (len(HS),)
    assert many[1] == nov
    assert overlap(fcc_train, fcc_train, H0) == 1.0


# ------------------------------------------------------------------ properties


def test_identical_environments_have_zero_entropy(fcc_train):
    x = np.repeat(fcc_train[:1], 300, axis=0)
    # identical rows are at distance exactly 0, so every S is exactly n
    np.testing.assert_array_equal(self_log_kernel_sum(x, HS), math.log(300))
    np.testing.assert_array_equal(log_kernel_sum(x[:5], x, H0), math.log(300))
    assert entropy(x, H0) == pytest.approx(0.0, abs=1e-15)  # rounding of the mean only
    np.testing.assert_allclose(entropy(x, HS), 0.0, rtol=0, atol=1e-15)
    assert diversity(x, H0) == pytest.approx(0.0, abs=1e-12)  # log(n * 1/n)


def test_signed_zeros_and_duplicates_are_identical():
    a = np.array([[0.0, 0.25, 0.5], [0.0, 0.25, 0.5 + 1e-9]])
    b = np.array([[-0.0, 0.25, 0.5]])
    assert log_kernel_sum(b, a[:1], 0.01)[0] == 0.0  # exactly exp(0)
    assert self_log_kernel_sum(np.vstack([a[:1], b]), 0.01)[0] == math.log(2.0)
    # a row 1e-9 away is not treated as identical
    assert log_kernel_sum(b, a[1:], 1e-10)[0] == pytest.approx(-1e-18 / 2e-20, rel=1e-6)


def test_entropy_bounds(fcc_train, bcc_test):
    x = np.vstack([fcc_train, bcc_test])
    n = len(x)
    for hh in entropy(x, [1e-4, 0.005, H0, 0.1, 10.0]):
        assert -1e-12 <= hh <= math.log(n) + 1e-12
    # tiny bandwidth: every environment its own: H = log n
    assert entropy(x, 1e-6) == pytest.approx(math.log(n), abs=1e-12)


def test_training_points_are_covered(fcc_train):
    n = len(fcc_train)
    dh = delta_entropy(fcc_train, fcc_train, HS)
    assert np.all(dh <= 0.0)
    assert np.all(dh >= -math.log(n) - 1e-12)
    # H recovered from dH (H = log n + mean dH, as dH = -log S), and symmetric and
    # non-symmetric sums agree
    np.testing.assert_allclose(entropy(fcc_train, HS), math.log(n) + dh.mean(axis=1),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(self_log_kernel_sum(fcc_train, HS), -dh, rtol=0, atol=1e-12)


def test_delta_entropy_lower_bound(fcc_test, fcc_train):
    dh = delta_entropy(fcc_test, fcc_train, [H0, 1.0, 100.0])
    assert np.all(dh >= -math.log(len(fcc_train)) - 1e-12)
    assert dh[-1] == pytest.approx(np.full(len(fcc_test), -math.log(len(fcc_train))), abs=1e-6)


def test_all_underflow_rows_are_finite_and_exact(fcc_train):
    y = fcc_train[:20] + 0.5  # d^2 / 2h^2 ~ 7e4: every term underflows
    log_s = log_kernel_sum(y, fcc_train, H0)
    brute, d2 = _brute_log_s(y, fcc_train, H0)
    assert np.all(np.isfinite(log_s))
    np.testing.assert_allclose(log_s, brute, rtol=1e-12)
    # the largest term dominates: log S ~ -min d^2 / 2h^2 (+ log of the ties)
    dmin = d2.min(axis=1)
    assert np.all(np.abs(log_s + dmin / (2 * H0 * H0)) < 1e-6 * dmin / (2 * H0 * H0))


def test_tiny_sums_are_accurate():
    # one-dimensional descriptors with known distances: S = sum_j exp(-a_j)
    h = 0.5
    for a in [650.0, 700.0, 707.9, 708.5, 720.0, 745.0, 800.0, 1e5]:
        x = np.array([[math.sqrt(2 * h * h * a)], [math.sqrt(2 * h * h * (a + 1.0))]])
        y = np.zeros((1, 1))
        expected = -a + math.log1p(math.exp(-1.0))
        got = log_kernel_sum(y, x, h)[0]
        assert got == pytest.approx(expected, rel=1e-13, abs=1e-13), a
    # mixed: one ordinary row, one tiny row, one underflowing row in the same block
    x = np.array([[0.0], [1.0]])
    y = np.array([[0.1], [30.0], [300.0]])
    brute, _ = _brute_log_s(y, x, 1.0)
    np.testing.assert_allclose(log_kernel_sum(y, x, 1.0, block_size=(3, 2)), brute, rtol=1e-14)


def _exp_neg_array(a, out):
    """``exp(a)`` of every entry through the kernel sums' own exponential (compiled here:
    the package needs no wrapper that only a test calls)."""
    import numba

    kernel = numba.njit(fastmath=_EXACT_FLAGS)(_exp_neg_loop)
    kernel(a, out)


def _exp_neg_loop(a, out):
    for i in range(a.size):
        out[i] = _exp_neg(a[i])


def test_vectorised_exp_accuracy():
    exp_neg_array = _exp_neg_array
    a = -np.concatenate([np.linspace(0, 1, 10001), np.random.default_rng(0).random(100000) * 708,
                         np.linspace(700, 707.999, 1001)])
    out = np.empty_like(a)
    exp_neg_array(a, out)
    np.testing.assert_allclose(out, np.exp(a), rtol=4e-16, atol=0)
    b = np.array([-708.5, -745.0, -1e4, -np.inf])
    exp_neg_array(b, out[:4])
    np.testing.assert_array_equal(out[:4], 0.0)


def test_shards_combine_with_logaddexp(fcc_test, fcc_train, bcc_test):
    y = np.vstack([fcc_test, bcc_test[:10]])
    full = log_kernel_sum(y, fcc_train, HS)
    parts = [log_kernel_sum(y, s, HS) for s in np.array_split(fcc_train, 3)]
    comb = parts[0]
    for p in parts[1:]:
        comb = np.logaddexp(comb, p)
    np.testing.assert_allclose(comb, full, rtol=0, atol=1e-12)
    # distributed entropy / diversity from per-shard log sums of the data set itself
    x = fcc_train
    shards = np.array_split(x, 3)
    log_s = np.concatenate([
        np.logaddexp.reduce([log_kernel_sum(own, other, H0) for other in shards], axis=0)
        for own in shards])
    assert entropy_from_log_sums(log_s) == pytest.approx(entropy(x, H0), abs=1e-12)
    assert diversity_from_log_sums(log_s) == pytest.approx(diversity(x, H0), abs=1e-12)
    total = sum(np.sum(log_s[i::3]) for i in range(3))  # an MPI SUM reduction
    assert math.log(len(x)) - total / len(x) == pytest.approx(entropy(x, H0), abs=1e-12)


@pytest.mark.parametrize("block", [1, 7, (5, 64), (64, 5), (1000, 1000), (33, 1)])
def test_block_size_does_not_change_results(fcc_test, fcc_train, bcc_test, block):
    y = np.vstack([fcc_test[:100], bcc_test[:20]])
    ref = delta_entropy(y, fcc_train, HS)
    np.testing.assert_allclose(delta_entropy(y, fcc_train, HS, block_size=block), ref,
                               rtol=0, atol=1e-12)
    if not isinstance(block, tuple):
        x = fcc_train[:200]
        np.testing.assert_allclose(entropy(x, HS, block_size=block), entropy(x, HS),
                                   rtol=0, atol=1e-12)


def test_thread_count_does_not_change_results(fcc_test, fcc_train):
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        one = (delta_entropy(fcc_test, fcc_train, HS), entropy(fcc_train, HS))
        threads.set_num_threads(threads.max_threads())
        many = (delta_entropy(fcc_test, fcc_train, HS), entropy(fcc_train, HS))
    finally:
        threads.set_num_threads(before)
    np.testing.assert_allclose(one[0], many[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(one[1], many[1], rtol=0, atol=1e-12)


def test_few_rows_many_reference_blocks(fcc_train):
    # fewer row blocks than threads: (row, column) tasks with per-thread states
    y = fcc_train[:3] + 0.003
    brute = np.array([_brute_log_s(y, fcc_train, h)[0] for h in HS])
    np.testing.assert_allclose(log_kernel_sum(y, fcc_train, HS, block_size=(64, 16)), brute,
                               rtol=0, atol=1e-11)


# ------------------------------------------------------------------ truncation


def test_truncated_sums_overestimate_within_bound(fcc_test, fcc_train, bcc_test):
    y = np.vstack([fcc_test, bcc_test[:30]])
    exact = delta_entropy(y, fcc_train, H0)
    _, d2 = _brute_log_s(y, fcc_train, H0)
    for d_max in [0.02, 0.05, 0.08, 0.15]:
        log_t, n_dropped = log_kernel_sum(y, fcc_train, H0, d_max=d_max, return_dropped=True)
        trunc = -log_t
        assert np.all(np.isfinite(trunc))
        assert np.all(trunc >= exact - 1e-12)
        within = (d2 <= d_max**2).sum(axis=1)
        np.testing.assert_array_equal(n_dropped, np.where(within > 0, len(fcc_train) - within,
                                                          len(fcc_train) - 1))
        bound = np.log1p(n_dropped * np.exp(-d_max**2 / (2 * H0 * H0)) / np.exp(log_t))
        assert np.all(trunc - exact <= bound + 1e-12)
        # rows with nothing within d_max keep their nearest point only
        none = within == 0
        np.testing.assert_allclose(trunc[none], d2.min(axis=1)[none] / (2 * H0 * H0),
                                   rtol=1e-12)
    # a bound beyond every distance is exact
    np.testing.assert_allclose(delta_entropy(y, fcc_train, H0, d_max=1e3), exact,
                               rtol=0, atol=1e-12)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("h, text", [(0.0, "h = 0.0"), (-0.1, "h = -0.1"),
                                     (float("nan"), "h = nan"), (float("inf"), "h = inf"),
                                     ([0.01, 0.0], "h = 0.0"), ([], "h"), ("abc", "h")])
def test_bad_bandwidth(fcc_train, h, text):
    for call in (lambda: delta_entropy(fcc_train, fcc_train, h), lambda: entropy(fcc_train, h),
                 lambda: diversity(fcc_train, h), lambda: novelty(fcc_train, fcc_train, h)):
        with pytest.raises(ValueError, match="h") as err:
            call()
        assert isinstance(err.value, QuestsInputError)
        assert text in str(err.value)


def test_bad_arrays(fcc_train):
    x = fcc_train
    bad = x[:10].copy()
    bad[3, 5] = np.nan
    cases = [
        (lambda: delta_entropy(bad, x), r"y\[3, 5\] = nan"),
        (lambda: delta_entropy(x, bad), r"x\[3, 5\] = nan"),
        (lambda: entropy(np.where(np.isnan(bad), np.inf, bad)), r"x\[3, 5\] = inf"),
        (lambda: delta_entropy(np.empty((0, 63)), x), r"y is empty"),
        (lambda: delta_entropy(x, np.empty((0, 63))), r"x is empty"),
        (lambda: entropy(np.empty((0, 63))), r"x is empty"),
        (lambda: delta_entropy(x[:, :62], x), r"y with 62 columns and x with 63"),
        (lambda: delta_entropy(x[0], x), r"y must be a 2-D"),
        (lambda: delta_entropy(x, x, block_size=0), r"block_size must be an integer >= 1"),
        (lambda: delta_entropy(x, x, d_max=-1.0), r"d_max"),
        (lambda: entropy_from_log_sums(np.zeros(3), n=0), r"n must be"),
    ]
    for call, pattern in cases:
        with pytest.raises(QuestsInputError, match=pattern):
            call()


# ------------------------------------------------------------------ bandwidth limits


def test_tiny_bandwidth_is_refused_not_infinite(fcc_test, fcc_train):
    # h = 1e-300: -1/(2h^2) overflows to -inf; dH was +inf (and H NaN) before
    for fn in (lambda h: delta_entropy(fcc_test[:3], fcc_train, h), lambda h: entropy(fcc_train, h)):
        with pytest.raises(QuestsInputError, match=r"h = 1e-300 is too small: 1/\(2 h\^2\) "
                                                   r"overflows"):
            fn(1e-300)
        with pytest.raises(QuestsInputError, match="too small"):
            fn([0.015, 1e-160])


def test_smallest_campaign_bandwidth_gives_finite_exact_dh(fcc_test, fcc_train):
    from quests_hpc.campaign.fields import MIN_BANDWIDTH

    h = MIN_BANDWIDTH  # every term underflows: the log-space path alone
    dh = delta_entropy(fcc_test, fcc_train, [h, 1.5e-4])
    assert np.all(np.isfinite(dh))
    brute, d2 = _brute_log_s(fcc_test, fcc_train, h)
    np.testing.assert_allclose(dh[0], -brute, rtol=1e-10)
    assert dh[0].min() > 1e3  # d_min^2 / 2h^2: large and finite
    assert np.isfinite(entropy(fcc_train, h)) and np.isfinite(diversity(fcc_train, h))


def test_bandwidth_too_small_for_the_descriptors_is_refused():
    # finite h, but d^2 / 2h^2 could overflow: refused (dH must stay finite)
    x = np.array([[0.0], [2e90]])
    y = np.array([[1e90]])  # at distance 1e90 from both
    for h in (1e-150, 1e-100):
        with pytest.raises(QuestsInputError, match=rf"h = {h!r} is too small for these "
                                                   r"descriptors: d\^2/\(2 h\^2\) can reach"):
            log_kernel_sum(y, x, h)
    # huge but finite exponents stay exact (they were +-inf: c d^2 - shift as a fused
    # multiply-add is off by ulp(shift), ~1e103 here)
    for h in (1e-40, 1e30, 1e85):
        want = -1e180 / (2 * h * h) + math.log(2)
        assert log_kernel_sum(y, x, h)[0] == pytest.approx(want, rel=1e-14)
        assert log_kernel_sum(y, x, h, d_max=3e90)[0] == pytest.approx(want, rel=1e-14)
    x, y = np.array([[0.0], [2.0]]), np.array([[1.0]])
    assert log_kernel_sum(y, x, 1e-140)[0] == pytest.approx(-0.5e280 + math.log(2), rel=1e-14)
    with pytest.raises(QuestsInputError, match=r"h must be >= 2.12e-150"):
        log_kernel_sum(y, x, 1e-151)


def test_log_kernel_sum_rows_do_not_depend_on_batching_or_threads():
    """Each row's log S is the same, bit for bit, in any batch of rows and on any number of
    threads (the pipeline's chunks and the rank count must not change dH)."""
    from quests_hpc import information

    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 0.05, (300, 9))
    y = x[:200] + rng.normal(0.0, 0.01, (200, 9))
    hs = [0.015, 0.4]
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(2)
        full = information.log_kernel_sum(y, x, hs)
        for nt in (1, 2):
            threads.set_num_threads(nt)
            for b in (1, 5, 37, 129):
                parts = np.concatenate([information.log_kernel_sum(y[i:i + b], x, hs)
                                        for i in range(0, len(y), b)], axis=1)
                assert np.array_equal(parts, full), (nt, b)
    finally:
        threads.set_num_threads(before)


def test_self_log_kernel_sum_is_reproducible_run_to_run_on_two_threads():
    """Every thread sums the same blocks in the same order on every call (the ranks of an
    MPI run must hold the same values)."""
    from quests_hpc import information

    rng = np.random.default_rng(6)
    x = rng.normal(0.0, 0.05, (2000, 9))
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(2)
        first = information.self_log_kernel_sum(x, [0.015, 0.4], block_size=64)
        for _ in range(5):
            assert np.array_equal(information.self_log_kernel_sum(x, [0.015, 0.4],
                                                                  block_size=64), first)
    finally:
        threads.set_num_threads(before)
