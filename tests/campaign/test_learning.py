"""Learning curve: the asymptote fit (vs SciPy and known parameters) and subset entropies."""

import numpy as np
import pytest

from quests_hpc.campaign.learning import asymptote, fit_asymptote, subset_sizes, summarize
from quests_hpc.errors import QuestsInputError


def test_fit_recovers_known_parameters():
    n = np.round(np.geomspace(10, 1e5, 16)).astype(int)
    a, b, c = 6.2, 4.0, 0.03
    h = asymptote(n, a, b, c)
    fa, fb, fc, rmse = fit_asymptote(n, h, drop=(3, 3))
    assert abs(fa - a) < 1e-6 and abs(fb - b) < 1e-5 and abs(fc - c) < 1e-7
    assert rmse < 1e-8


def test_fit_matches_scipy_curve_fit():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(3)
    n = np.round(np.geomspace(16, 20000, 14)).astype(int)
    h = asymptote(n, 5.0, 3.0, 0.05) + rng.normal(0, 0.02, len(n))
    fa, fb, fc, rmse = fit_asymptote(n, h)
    x, y = n[3:-3], h[3:-3]

    def f(N, a, b, c):
        return a - b * np.exp(-c * np.log(N) ** 2)

    p, _ = optimize.curve_fit(f, x, y, p0=(5, 3, 0.05), bounds=(0, np.inf))
    sse_ours = np.sum((f(x, fa, fb, fc) - y) ** 2)
    sse_scipy = np.sum((f(x, *p) - y) ** 2)
    assert sse_ours <= sse_scipy * (1 + 1e-6) + 1e-14
    assert np.allclose([fa, fb, fc], p, rtol=1e-3, atol=1e-5)
    assert rmse == pytest.approx(np.sqrt(sse_ours / len(x)))


def test_fit_respects_bounds_and_drop():
    n = np.arange(2, 14) * 10
    falling = 10.0 - np.log(n)  # decreasing data: best a, b, c >= 0 is b = 0 (a flat line)
    a, b, c, _ = fit_asymptote(n, falling, drop=(0, 0))
    assert a >= 0 and b >= 0 and c >= 0
    curve = asymptote(n, a, b, c)
    assert b == 0 or c == 0 or abs(curve - curve.mean()).max() < 1e-9
    with pytest.raises(QuestsInputError, match="at least 3 points"):
        fit_asymptote(n[:8], falling[:8], drop=(3, 3))


def test_subset_sizes():
    s = subset_sizes(500, num=9, min_size=20)
    assert s[0] == 20 and s[-1] == 500 and len(s) == 9 and s == sorted(set(s))
    assert subset_sizes(10, num=12, min_size=16) == sorted(set(subset_sizes(10, 12, 16)))
    assert subset_sizes(10, 12, 16)[-1] == 10


def test_summarize_shapes_and_gap():
    sizes = [10, 20, 40, 80, 160, 320, 640, 1280, 2560]
    e = np.stack([asymptote(sizes, 4.0, 2.0, 0.04), asymptote(sizes, 3.0, 1.0, 0.1)])
    e = np.repeat(e[:, :, None], 3, axis=2)
    s = summarize(sizes, e, fit=True, drop=(3, 3))
    assert s["mean"].shape == (2, 9) and s["fit"].shape == (2, 3)
    assert np.allclose(s["fit"][:, 0], [4.0, 3.0], atol=1e-5)
    assert np.allclose(s["information_gap"], s["fit"][:, :1] - s["mean"])
    assert np.all(s["std"] < 1e-12)
    s = summarize(sizes, e, fit=False)
    assert np.isnan(s["fit"]).all()


def test_learning_curve_entropies_match_serial():
    MPI = pytest.importorskip("mpi4py.MPI")
    from quests_hpc import information
    from quests_hpc.campaign.learning import learning_curve
    from quests_hpc.parallel.shared_reference import SharedReference

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.02, (200, 5))
    with SharedReference.from_root(MPI.COMM_SELF, x) as ref:
        e = learning_curve(MPI.COMM_SELF, ref, [20, 50, 200], 2, 7, [0.015, 0.05])
    g = np.random.default_rng(7)
    for j, size in enumerate([20, 50, 200]):
        for r in range(2):
            idx = np.sort(g.choice(200, size, replace=False))
            want = information.entropy(x[idx], [0.015, 0.05])
            assert np.allclose(e[:, j, r], want, atol=1e-12)
