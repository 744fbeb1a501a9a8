"""The cluster and nucleation analyses of a results file, and the campaign's ``analysis``.

Entry points (collective over ``comm``, which every one requires; ``MPI.COMM_SELF`` for
a serial run):

* :func:`cluster_analysis` -- clusters of every complete frame, written into the file:
  ``/frames/<name>/cluster`` (label per atom, aligned with ``id``; 0 = not a node) and
  the table ``/analysis/clusters`` (one row per frame).
* :func:`nucleation_analysis` -- CNT critical sizes per frame (from each frame's
  temperature and the material constants, which have no defaults) and the fit of the
  cluster-size distribution -> ``/analysis/nucleation``.
* :func:`run_analyses` -- everything a campaign's ``analysis`` section asks for (clusters,
  nucleation, pictures, per-frame exports); what ``quests-hpc run`` calls after the frames.

Layout written (all created by these functions, paths from :mod:`quests_hpc.results.layout`;
a rerun replaces them)::

    /frames/<name>/cluster      (n,) int64   attrs: threshold, r_edge, column
    /analysis/clusters/         attrs: threshold, r_edge, column, biconnected_max_size,
                                       complete
        frame (S), timestep, n_atoms, n_nodes, n_clusters, largest, largest_label (i8),
        novelty (f8: fraction with dH > threshold),
        biconnected_largest, biconnected_count, biconnected_skipped (i8, -1 if not asked),
        hist_offsets (nf+1), hist_sizes, hist_counts   size histogram of frame i in
                                                       [hist_offsets[i], hist_offsets[i+1])
    /analysis/nucleation/       attrs: gamma_sl, gamma_range, t_melt, dh_melt,
                                       atomic_volume, fit (JSON), fit_error, complete
        temperature, undercooling, r_star, n_star, n_star_lo, n_star_hi (nf,) f8
"""

import csv
import json
import os

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..results import layout as L
from . import nucleation as N
from . import results_io as rio
from .clusters import find_clusters
from .common import check_cluster_parameters, root_call
from .figures import plot_results
from .frame_export import export_results

CLUSTER_COLUMNS = ("timestep", "n_atoms", "n_nodes", "n_clusters", "largest", "largest_label",
                   "biconnected_largest", "biconnected_count", "biconnected_skipped")

#: The material constants of :func:`nucleation_analysis`: required keywords, no defaults.
MATERIAL_KEYS = ("t_melt", "dh_melt", "gamma_sl", "gamma_range", "atomic_volume")


def cluster_analysis(path, *, comm, threshold=0.0, r_edge=3.0, column=None,
                     biconnected_max_size=None, frames=None, dims=None, balance="uniform",
                     backend="auto", out=None):
    """Clusters of covered atoms in every complete frame of a results file (collective).

    Parameters
    ----------
    path : str
        Results file (written by ``quests-hpc run`` or ``quests-hpc dh``).
    comm : mpi4py.MPI.Comm
    threshold, r_edge, biconnected_max_size, dims, balance
        See :func:`quests_hpc.analysis.clusters.find_clusters`.
    column : int or str, optional
        dH column (index, ``ref@h=..`` label, or reference name); default the first.
    frames : list of str, optional
        Frame names (default: every complete frame, in campaign order).
    backend : {"auto", "mpio", "gather"}
        Results writer back end.
    out : callable, optional
        Progress lines (rank 0).

    Returns
    -------
    dict
        Per-frame columns (numpy arrays) and ``frame`` names, on every rank.

    Raises
    ------
    QuestsInputError
        Not a results file, no complete frame, frames without dH, bad parameters.
    """
    threshold, r_edge, bic = check_cluster_parameters(threshold, r_edge, biconnected_max_size)
    names = pcomm.bcast(root_call(comm, rio.analysed_frames, path, frames), comm, root=0)
    rows = {k: [] for k in CLUSTER_COLUMNS + ("novelty",)}
    hists, label = [], None
    for name in names:
        share = rio.read_frame_share(path, name, comm, column)
        label = share["column"]
        res = find_clusters(share["ids"], share["positions"], share["dh"], share["cell"],
                            share["pbc"], threshold=threshold, r_edge=r_edge, comm=comm,
                            dims=dims, balance=balance, biconnected_max_size=bic)
        rio.write_frame_labels(path, name, share, res.labels, comm, backend,
                               {"threshold": threshold, "r_edge": r_edge, "column": label})
        s = res.summary()
        s["timestep"] = share["timestep"]
        for k in CLUSTER_COLUMNS:
            rows[k].append(int(s.get(k, -1)))
        rows["novelty"].append(1.0 - s["n_nodes"] / max(1, s["n_atoms"]))
        hists.append((res.sizes, res.counts))
        if out is not None and comm.rank == 0:
            out(_cluster_line(name, s, threshold, bic))
    table = _cluster_table(names, rows, hists)
    attrs = {"threshold": threshold, "r_edge": r_edge, "column": label or "",
             "biconnected_max_size": -1 if bic is None else bic}
    rio.write_analysis_table(path, L.CLUSTERS_TABLE, table, attrs, comm, backend)
    return table


def _cluster_line(name, s, threshold, bic):
    return (f"clusters {name}: {s['n_nodes']} of {s['n_atoms']} atoms with dH <= "
            f"{threshold:g}, {s['n_clusters']} clusters, largest {s['largest']}"
            + (f", largest 2-connected {s['biconnected_largest']}" if bic else ""))


def _cluster_table(names, rows, hists):
    table = {k: np.asarray(v) for k, v in rows.items()}
    table["frame"] = np.array(names)
    table["hist_offsets"] = np.concatenate(
        [[0], np.cumsum([len(h[0]) for h in hists])]).astype(np.int64)
    table["hist_sizes"] = np.concatenate([h[0] for h in hists] + [np.empty(0, np.int64)])
    table["hist_counts"] = np.concatenate([h[1] for h in hists] + [np.empty(0, np.int64)])
    return table


def frame_temperatures(timesteps, temperature=None, temperature_file=None):
    """Temperature of each frame: a number, a list (one per frame) or a CSV file.

    The CSV needs a ``step`` column and a ``temperature_K`` (or ``temperature``) column;
    frames are matched by timestep (linear interpolation between rows).
    """
    ts = np.asarray(timesteps, dtype=np.float64)
    if temperature_file is not None:
        with open(temperature_file, newline="") as fh:
            rows = list(csv.DictReader(fh))
        key = "temperature_K" if rows and "temperature_K" in rows[0] else "temperature"
        if not rows or "step" not in rows[0] or key not in rows[0]:
            raise QuestsInputError(f"{temperature_file}: needs columns 'step' and "
                                   "'temperature_K'")
        st = np.array([float(r["step"]) for r in rows])
        tv = np.array([float(r[key]) for r in rows])
        o = np.argsort(st)
        return np.interp(ts, st[o], tv[o])
    if temperature is None:
        raise QuestsInputError("nucleation analysis needs the frames' temperature: "
                               "`temperature` (K, a number or one per frame) or "
                               "`temperature_file` (CSV with step, temperature_K)")
    t = np.asarray(temperature, dtype=np.float64).reshape(-1)
    if len(t) == 1:
        return np.full(len(ts), t[0])
    if len(t) != len(ts):
        raise QuestsInputError(f"temperature lists {len(t)} values for {len(ts)} frames")
    return t


def nucleation_analysis(path, *, comm, t_melt, dh_melt, gamma_sl, gamma_range, atomic_volume,
                        temperature=None, temperature_file=None, fit=True, fit_max_size=None,
                        fit_frames=None, backend="auto"):
    """CNT critical sizes per frame and the fit of the cluster-size distribution.

    Needs :func:`cluster_analysis` first.  The material constants (:data:`MATERIAL_KEYS`) are
    required: nothing is assumed.  The fit uses the pre-nucleation frames (an
    equilibrium-like distribution of subcritical clusters), at their mean temperature:
    ``fit_frames`` (``[start, stop)`` frame positions) or, by default, the frames before
    the largest cluster rises above the upper critical size for good (see
    :func:`fit_frame_indices`).

    Returns
    -------
    dict
        Per-frame ``temperature``, ``undercooling``, ``r_star``, ``n_star``,
        ``n_star_lo``, ``n_star_hi``, and ``fit`` (a dict, or None when the fit is off
        or impossible, with ``fit_error`` saying why).
    """
    tab = pcomm.bcast(root_call(comm, rio.read_analysis_table, path, L.CLUSTERS_TABLE), comm,
                      root=0)
    if tab is None:
        raise QuestsInputError(f"{path}: no cluster analysis (/{L.analysis_path(L.CLUSTERS_TABLE)}"
                               "); run the cluster analysis first")
    temp = frame_temperatures(tab["timestep"], temperature, temperature_file)
    res = critical_sizes(temp, t_melt, dh_melt, gamma_sl, gamma_range, atomic_volume)
    fit_info, fit_error = None, ""
    if fit:
        fit_info, fit_error = _fit(tab, temp, res["n_star_hi"], atomic_volume, fit_frames,
                                   fit_max_size)
    attrs = {"gamma_sl": gamma_sl, "gamma_range": np.asarray(gamma_range, np.float64),
             "t_melt": t_melt, "dh_melt": dh_melt, "atomic_volume": atomic_volume,
             "fit": json.dumps(fit_info), "fit_error": fit_error}
    rio.write_analysis_table(path, L.NUCLEATION_TABLE, dict(res, frame=tab["frame"]), attrs,
                             comm, backend)
    res["fit"], res["fit_error"] = fit_info, fit_error
    return res


def critical_sizes(temperature, t_melt, dh_melt, gamma_sl, gamma_range, atomic_volume):
    """Undercooling, ``r*``, ``n*`` and the ``n*`` band at each temperature (NaN where the
    temperature is not below ``t_melt``)."""
    dt = t_melt - np.asarray(temperature, dtype=np.float64)
    ok = dt > 0
    r_star = np.full(len(dt), np.nan)
    r_star[ok] = N.critical_radius(dt[ok], gamma_sl, t_melt, dh_melt, atomic_volume)
    lo, hi = N.critical_size_band(temperature, gamma_range, t_melt, dh_melt, atomic_volume)
    n_star = np.asarray(N.atoms_in_sphere(r_star, atomic_volume), dtype=np.float64)
    return {"temperature": np.asarray(temperature, dtype=np.float64), "undercooling": dt,
            "r_star": r_star, "n_star": n_star, "n_star_lo": lo, "n_star_hi": hi}


def _fit(tab, temp, n_star_hi, atomic_volume, fit_frames, fit_max_size):
    """The CNT fit of the pre-nucleation frames: ``(dict or None, error message)``."""
    pre = fit_frame_indices(tab["largest"], n_star_hi, fit_frames)
    sizes, counts = rio.summed_histogram(tab, pre)
    try:
        cf = N.fit_size_distribution(sizes, counts, float(np.mean(temp[pre])), atomic_volume,
                                     n_frames=len(pre), max_size=fit_max_size)
    except QuestsInputError as exc:
        return None, str(exc)
    return dict(cf.as_dict(), frames=[str(tab["frame"][i]) for i in pre]), ""


def fit_frame_indices(largest, n_star_hi, fit_frames=None):
    """Frames (positions) whose cluster sizes the CNT fit uses.

    ``fit_frames = [start, stop]`` picks them; by default the frames before the largest
    cluster rises above ``n_star_hi`` and stays above it to the end (the nucleation
    event); all frames when that never happens; at least the first frame.
    """
    n = len(largest)
    if fit_frames is not None:
        a, b = (int(x) for x in fit_frames)
        idx = np.arange(n)[a:b]
        if len(idx) == 0:
            raise QuestsInputError(f"fit_frames {list(fit_frames)} selects no frame of {n}")
        return idx
    above = np.asarray(largest, dtype=float) > np.nan_to_num(n_star_hi, nan=np.inf)
    stays = np.flatnonzero(~above)
    first = 0 if len(stays) == 0 else stays[-1] + 1  # from here on, always above
    return np.arange(max(1, first if first < n else n))


def run_analyses(path, analysis, comm, out=None):
    """Run a campaign's ``analysis`` section on its results file (collective).

    Parameters
    ----------
    path : str
        The campaign's results file (complete frames).
    analysis : mapping
        The ``analysis`` section as the campaign validation normalised it (every key of
        :data:`quests_hpc.campaign.analysis_section.ANALYSIS` and its defaults): sections
        ``clusters``, ``nucleation``, ``plots``, ``export``, each None (off) or a mapping.
        An absent section is off.
    comm : mpi4py.MPI.Comm
    out : callable, optional
        Where rank 0's progress lines go.

    Returns
    -------
    dict
        ``clusters`` and ``nucleation`` results (or None) and ``plots``, ``exports`` (files).
    """
    a = analysis or {}
    res = {"clusters": None, "nucleation": None, "plots": [], "exports": []}
    c, nuc, e, p = (a.get(k) for k in ("clusters", "nucleation", "export", "plots"))
    if c is not None:
        res["clusters"] = cluster_analysis(
            path, comm=comm, threshold=c["threshold"], r_edge=c["r_edge"], column=c["column"],
            biconnected_max_size=c["biconnected_max_size"], out=out)
        if nuc is not None:
            res["nucleation"] = nucleation_analysis(
                path, comm=comm, temperature=nuc["temperature"],
                temperature_file=nuc["temperature_file"], fit=nuc["fit"],
                fit_max_size=nuc["fit_max_size"], fit_frames=nuc["fit_frames"],
                **{k: nuc[k] for k in MATERIAL_KEYS})
    if e is not None:
        d = e["directory"] or os.path.splitext(path)[0] + "_frames"
        res["exports"] = export_results(path, d, comm=comm, fmt=e["format"],
                                        compress=e["compress"], column=(c or {}).get("column"),
                                        elements=e["elements"])
    if p is not None and p["enabled"]:
        files = root_call(comm, plot_results, path, p["directory"], p["formats"])
        res["plots"] = pcomm.bcast(files, comm, root=0)
    if out is not None and comm.rank == 0:
        for f in res["plots"]:
            out(f"picture: {f}")
        if res["exports"]:
            out(f"{len(res['exports'])} frame file(s) for OVITO in "
                f"{os.path.dirname(res['exports'][0])}")
    return res
