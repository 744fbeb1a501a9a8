"""Classical nucleation theory (CNT) helpers (SPEC.md; the paper's Methods).

Critical radius of a spherical solid nucleus in an undercooled melt::

    r* = 2 gamma_SL T_m / (dH_m dT)

with ``gamma_SL`` the solid-liquid interfacial energy, ``T_m`` the melting temperature,
``dH_m`` the latent heat of melting per volume and ``dT = T_m - T`` the undercooling.
The critical size is the number of atoms in that sphere, ``n* = 4 pi r*^3 / (3 v)``
for an atomic volume ``v``.

Equilibrium distribution of cluster sizes below the critical size::

    log N_r = log N_0 - 4 pi r^3 dg / (3 kT) - 4 pi r^2 gamma / (kT)

with ``dg`` the free-energy change per volume on solidifying (< 0 below T_m).  It is
linear in ``(1, r^3, r^2)``, so :func:`fit_size_distribution` is a weighted linear
least-squares fit; the fitted ``dg`` and ``gamma`` give ``r* = -2 gamma / dg``.

Units: energies per area in J/m^2, latent heat in kJ/mol, temperatures in K, radii in
Angstrom, atomic volumes in Angstrom^3 per atom.  The material constants have no
defaults: every function needs them (the paper's Mishin Cu EAM values, for instance,
are stated in ``examples/cu_nucleation/campaign.yaml``).
"""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import QuestsInputError

K_B_EV = 8.617333262e-5          # eV / K
AVOGADRO = 6.02214076e23         # 1 / mol
EV_PER_A2_IN_J_PER_M2 = 16.02176634  # 1 eV/A^2 = 16.02 J/m^2
EV_PER_A3_IN_J_PER_M3 = 1.602176634e11


def _positive(value, name):
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise QuestsInputError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v).all() or (v <= 0).any():
        raise QuestsInputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def latent_heat_per_volume(dh_melt, atomic_volume):
    """Latent heat of melting per volume (J/m^3) from kJ/mol and A^3/atom."""
    dh = _positive(dh_melt, "dh_melt") * 1e3 / AVOGADRO
    return dh / (_positive(atomic_volume, "atomic_volume") * 1e-30)


def critical_radius(undercooling, gamma_sl, t_melt, dh_melt, atomic_volume):
    """CNT critical radius ``r* = 2 gamma_SL T_m / (dH_m dT)`` in Angstrom.

    Parameters
    ----------
    undercooling : float or array_like
        ``dT = T_m - T`` in K (> 0).
    gamma_sl : float
        Solid-liquid interfacial energy (J/m^2).
    t_melt : float
        Melting temperature (K).
    dh_melt : float
        Latent heat of melting (kJ/mol).
    atomic_volume : float
        Volume per atom (A^3), to turn the molar latent heat into one per volume.

    Returns
    -------
    float or ndarray
        ``r*`` in Angstrom (same shape as ``undercooling``).

    Examples
    --------
    The paper's Mishin Cu numbers at 420 K of undercooling give r* of about 7.2 A:

    >>> round(float(critical_radius(420.0, 0.177, 1323.0, 11.99, 12.893)), 2)
    7.22
    """
    dt = _positive(undercooling, "undercooling (T_m - T)")
    g = _positive(gamma_sl, "gamma_sl")
    tm = _positive(t_melt, "t_melt")
    hv = latent_heat_per_volume(dh_melt, atomic_volume)
    r = 2.0 * g * tm / (hv * dt) * 1e10
    return float(r) if np.ndim(r) == 0 else r


def atoms_in_sphere(radius, atomic_volume):
    """Atoms in a sphere of ``radius`` (A): ``4 pi r^3 / (3 v)``."""
    r = np.asarray(radius, dtype=np.float64)
    n = 4.0 * math.pi * r ** 3 / (3.0 * _positive(atomic_volume, "atomic_volume"))
    return float(n) if np.ndim(n) == 0 else n


def radius_of_size(n_atoms, atomic_volume):
    """Radius (A) of a sphere holding ``n_atoms`` atoms of volume ``atomic_volume``."""
    n = np.asarray(n_atoms, dtype=np.float64)
    r = np.cbrt(3.0 * n * _positive(atomic_volume, "atomic_volume") / (4.0 * math.pi))
    return float(r) if np.ndim(r) == 0 else r


def critical_size(undercooling, gamma_sl, t_melt, dh_melt, atomic_volume):
    """CNT critical nucleus size ``n*`` (atoms); parameters as in :func:`critical_radius`."""
    return atoms_in_sphere(critical_radius(undercooling, gamma_sl, t_melt, dh_melt,
                                           atomic_volume), atomic_volume)


def critical_size_band(temperature, gamma_range, t_melt, dh_melt, atomic_volume):
    """Lower and upper ``n*`` at each temperature for a range of ``gamma_SL``.

    Parameters
    ----------
    temperature : float or array_like
        Temperature of each frame (K), below ``t_melt``.
    gamma_range : (float, float)
        Interfacial energies (J/m^2) spanning the band.

    Returns
    -------
    lo, hi : ndarray
        Critical sizes (atoms), NaN where the temperature is not below ``t_melt``.
    """
    t = np.atleast_1d(np.asarray(temperature, dtype=np.float64))
    dt = float(t_melt) - t
    ok = np.isfinite(dt) & (dt > 0)
    lo = np.full(t.shape, np.nan)
    hi = np.full(t.shape, np.nan)
    g0, g1 = sorted(float(g) for g in gamma_range)
    if ok.any():
        lo[ok] = critical_size(dt[ok], g0, t_melt, dh_melt, atomic_volume)
        hi[ok] = critical_size(dt[ok], g1, t_melt, dh_melt, atomic_volume)
    return lo, hi


@dataclass
class CNTFit:
    """Fit of ``log N_r = log N_0 - 4 pi r^3 dg / (3 kT) - 4 pi r^2 gamma / (kT)``.

    Attributes
    ----------
    log_n0 : float
    dg : float
        Free-energy change per volume on solidifying, J/m^3 (< 0 below T_m).
    gamma : float
        Interfacial energy, J/m^2.
    r_star : float
        ``-2 gamma / dg`` (A); NaN unless ``dg < 0 < gamma``.
    n_star : float
        Atoms in the sphere of radius ``r_star``.
    temperature : float
    coef : ndarray, shape (3,)
        Raw coefficients of ``(1, r^3, r^2)`` (r in A).
    rmse : float
        Weighted root-mean-square residual of ``log N_r``.
    n_points : int
        Sizes used in the fit.
    """

    log_n0: float
    dg: float
    gamma: float
    r_star: float
    n_star: float
    temperature: float
    coef: np.ndarray
    rmse: float
    n_points: int

    def as_dict(self):
        """Plain-number dict (for HDF5 attributes or JSON)."""
        return {"log_n0": self.log_n0, "dg_J_per_m3": self.dg, "gamma_J_per_m2": self.gamma,
                "r_star_A": self.r_star, "n_star": self.n_star,
                "temperature": self.temperature, "rmse": self.rmse, "n_points": self.n_points}


def fit_size_distribution(sizes, counts, temperature, atomic_volume, n_frames=1, min_size=1,
                          max_size=None):
    """Fit the CNT cluster-size distribution to a size histogram.

    Parameters
    ----------
    sizes, counts : array_like of int
        Cluster sizes and how many clusters of each size were seen (e.g. summed over
        ``n_frames`` pre-nucleation frames).
    temperature : float
        Temperature (K) of the frames.
    atomic_volume : float
        A^3 per atom, to turn sizes into radii ``r = (3 n v / 4 pi)^(1/3)``.
    n_frames : int
        Frames the counts were summed over (``N_r = counts / n_frames``).
    min_size, max_size : int, optional
        Range of sizes to fit.

    Returns
    -------
    CNTFit

    Raises
    ------
    QuestsInputError
        Fewer than three distinct sizes with non-zero counts in range, or bad numbers.

    Notes
    -----
    Weighted least squares in ``log N_r`` with weights ``sqrt(counts)`` (Poisson counts:
    the variance of ``log N_r`` is about ``1 / counts``).
    """
    s = np.asarray(sizes, dtype=np.float64).reshape(-1)
    c = np.asarray(counts, dtype=np.float64).reshape(-1)
    if s.shape != c.shape:
        raise QuestsInputError(f"sizes ({s.shape}) and counts ({c.shape}) differ in shape")
    t = float(_positive(temperature, "temperature"))
    nf = float(_positive(n_frames, "n_frames"))
    keep = (c > 0) & (s >= min_size)
    if max_size is not None:
        keep &= s <= max_size
    s, c = s[keep], c[keep]
    if len(np.unique(s)) < 3:
        raise QuestsInputError(
            f"the CNT fit needs at least 3 distinct cluster sizes with counts, got {len(s)}")
    r = radius_of_size(s, atomic_volume)
    y = np.log(c / nf)
    a = np.stack([np.ones_like(r), r ** 3, r ** 2], axis=1)
    w = np.sqrt(c)
    coef, *_ = np.linalg.lstsq(a * w[:, None], y * w, rcond=None)
    kt = K_B_EV * t
    dg = -3.0 * kt * coef[1] / (4.0 * math.pi)        # eV / A^3
    gamma = -kt * coef[2] / (4.0 * math.pi)           # eV / A^2
    r_star = -2.0 * gamma / dg if (dg < 0 < gamma) else float("nan")
    res = (a @ coef - y) * w
    return CNTFit(
        log_n0=float(coef[0]), dg=float(dg * EV_PER_A3_IN_J_PER_M3),
        gamma=float(gamma * EV_PER_A2_IN_J_PER_M2), r_star=float(r_star),
        n_star=float(atoms_in_sphere(r_star, atomic_volume)) if np.isfinite(r_star)
        else float("nan"),
        temperature=t, coef=coef, rmse=float(np.sqrt(np.mean(res ** 2))), n_points=len(s))


def cnt_log_distribution(radius, log_n0, dg, gamma, temperature):
    """``log N_r`` of the CNT model (dg in J/m^3, gamma in J/m^2, r in A)."""
    r = np.asarray(radius, dtype=np.float64)
    kt = K_B_EV * float(temperature)
    dg_ev = dg / EV_PER_A3_IN_J_PER_M3
    g_ev = gamma / EV_PER_A2_IN_J_PER_M2
    return log_n0 - 4 * math.pi * r ** 3 * dg_ev / (3 * kt) - 4 * math.pi * r ** 2 * g_ev / kt


def fit_from_dict(d):
    """The :class:`CNTFit` of :meth:`CNTFit.as_dict` (e.g. read back from a results file)."""
    return CNTFit(log_n0=d["log_n0"], dg=d["dg_J_per_m3"], gamma=d["gamma_J_per_m2"],
                  r_star=d["r_star_A"], n_star=d["n_star"], temperature=d["temperature"],
                  coef=np.full(3, np.nan), rmse=d["rmse"], n_points=d["n_points"])


def fitted_distribution(fit, sizes, atomic_volume):
    """Clusters per frame of each size in ``sizes`` predicted by ``fit`` (a :class:`CNTFit`)."""
    r = radius_of_size(sizes, atomic_volume)
    return np.exp(cnt_log_distribution(r, fit.log_n0, fit.dg, fit.gamma, fit.temperature))
