"""CNT helpers: the paper's numbers, round trips, and the fit on synthetic data."""

import math

import numpy as np
import pytest

from quests_hpc.analysis import nucleation as N
from quests_hpc.errors import QuestsInputError

# The paper's Methods, Mishin Cu EAM: gamma = 0.177 J/m^2, T_m = 1323 K,
# dH_m = 11.99 kJ/mol, v = 12.893 A^3 (the functions have no material defaults).
CU = {"gamma_sl": 0.177, "t_melt": 1323.0, "dh_melt": 11.99, "atomic_volume": 12.893}


def test_critical_radius_paper_numbers():
    hv = 11.99e3 / 6.02214076e23 / 12.893e-30
    dt = 406.0  # critical nucleus seen around 917 K
    r = 2 * 0.177 * 1323 / (hv * dt) * 1e10
    assert N.critical_radius(dt, **CU) == pytest.approx(r, rel=1e-12)
    n = N.critical_size(dt, **CU)
    assert n == pytest.approx(4 * math.pi * r ** 3 / 3 / 12.893, rel=1e-12)
    assert 100 < n < 160  # the paper's largest cluster at nucleation: 114 atoms
    np.testing.assert_allclose(N.critical_radius([100.0, 200.0], **CU),
                               [N.critical_radius(100.0, **CU), N.critical_radius(200.0, **CU)])


def test_the_material_is_never_assumed():
    with pytest.raises(TypeError, match="t_melt"):
        N.critical_radius(406.0, gamma_sl=0.177, dh_melt=11.99, atomic_volume=12.893)
    with pytest.raises(TypeError, match="atomic_volume"):
        N.atoms_in_sphere(5.0)


def test_sizes_and_radii_round_trip():
    v = CU["atomic_volume"]
    assert N.atoms_in_sphere(N.radius_of_size(123.0, v), v) == pytest.approx(123.0)
    lo, hi = N.critical_size_band([900.0, 1400.0], (0.177, 0.221), 1323.0, 11.99, v)
    assert lo[0] < hi[0] and np.isnan(lo[1]) and np.isnan(hi[1])
    assert lo[0] == pytest.approx(N.critical_size(423.0, **CU))
    assert hi[0] == pytest.approx(N.critical_size(423.0, **dict(CU, gamma_sl=0.221)))
    assert hi[0] / lo[0] == pytest.approx((0.221 / 0.177) ** 3)


def test_fit_recovers_synthetic_parameters():
    t, dg, gamma, v = 900.0, -6.0e8, 0.18, 12.893
    sizes = np.arange(1, 80)
    r = N.radius_of_size(sizes, v)
    log_n = N.cnt_log_distribution(r, math.log(5000.0), dg, gamma, t)
    counts = np.exp(log_n) * 10  # 10 frames
    fit = N.fit_size_distribution(sizes, counts, t, v, n_frames=10)
    assert fit.dg == pytest.approx(dg, rel=1e-6)
    assert fit.gamma == pytest.approx(gamma, rel=1e-6)
    assert fit.log_n0 == pytest.approx(math.log(5000.0), rel=1e-9)
    assert fit.r_star == pytest.approx(-2 * gamma / dg * 1e10, rel=1e-6)
    assert fit.rmse < 1e-8 and fit.n_points == len(sizes)
    back = N.fit_from_dict(fit.as_dict())
    assert (back.dg, back.gamma, back.n_star) == (fit.dg, fit.gamma, fit.n_star)
    np.testing.assert_allclose(N.fitted_distribution(back, sizes, v), counts / 10, rtol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: N.critical_radius(0.0, **CU), "undercooling"),
    (lambda: N.critical_radius(-5.0, **CU), "undercooling"),
    (lambda: N.critical_radius(100.0, **dict(CU, gamma_sl=float("nan"))), "gamma_sl"),
    (lambda: N.critical_radius(100.0, **dict(CU, atomic_volume="x")), "atomic_volume"),
    (lambda: N.fit_size_distribution([1, 2], [5, 3], 900.0, 12.893), "at least 3"),
    (lambda: N.fit_size_distribution([1, 2, 3], [5, 3, 1], -1.0, 12.893), "temperature"),
])
def test_bad_input(call, match):
    with pytest.raises(QuestsInputError, match=match):
        call()
