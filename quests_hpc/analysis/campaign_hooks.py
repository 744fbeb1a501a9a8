"""The cluster and nucleation analyses of a results file, and the campaign's ``analysis``.

Entry points (collective over ``comm``; ``comm=None`` is a serial run):

* :func:`cluster_analysis` -- clusters of every complete frame, written into the file:
  ``/frames/<name>/cluster`` (label per atom, aligned with ``id``; 0 = not a node) and
  the table ``/analysis/clusters`` (one row per frame).
* :func:`nucleation_analysis` -- CNT critical sizes per frame (from each frame's
  temperature) and the fit of the cluster-size distribution -> ``/analysis/nucleation``.
* :func:`run_analyses` -- everything a campaign's ``analysis`` section asks for (clusters,
  nucleation, pictures, per-frame exports); what ``quests-hpc run`` calls after the frames.

Layout written (all created by these functions; a rerun replaces them)::

    /frames/<name>/cluster      (n,) int64   attrs: threshold, r_edge, column
    /analysis/clusters/         attrs: threshold, r_edge, column, biconnected_max_size,
                                       complete
        frame (S), timestep, n_atoms, n_nodes, n_clusters, largest, largest_label (i8),
        novelty (f8: fraction with dH > threshold),
        biconnected_largest, biconnected_count, biconnected_skipped (i8, -1 if not asked),
        hist_offsets (nf+1), hist_sizes, hist_counts   size histogram of frame i in
                                                       [hist_offsets[i], hist_offsets[i+1])
    /analysis/nucleation/       attrs: gamma_sl, gamma_range, t_melt, dh_melt,
                                       atomic_volume, fit (JSON), complete
        temperature, undercooling, r_star, n_star, n_star_lo, n_star_hi (nf,) f8
"""

import numpy as np

from ..errors import QuestsInputError
from . import nucleation as N
from . import results_io as rio
from .schema import check_analysis

CLUSTER_COLUMNS = ("timestep", "n_atoms", "n_nodes", "n_clusters", "largest", "largest_label",
                   "biconnected_largest", "biconnected_count", "biconnected_skipped")


def _comm(comm):
    if comm is None:
        from mpi4py import MPI

        return MPI.COMM_SELF
    return comm


def cluster_analysis(path, *, comm=None, threshold=0.0, r_edge=3.0, column=None,
                     biconnected_max_size=None, frames=None, dims=None, balance="uniform",
                     backend="auto", out=None):
    """Clusters of covered atoms in every complete frame of a results file (collective).

    Parameters
    ----------
    path : str
        Results file (written by ``quests-hpc run`` or ``quests-hpc dh``).
    comm : mpi4py.MPI.Comm, optional
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
    from .clusters import find_clusters
    from .common import check_cluster_parameters

    comm = _comm(comm)
    threshold, r_edge, bic = check_cluster_parameters(threshold, r_edge, biconnected_max_size)
    names = comm.bcast(_root_call(comm, rio.analysed_frames, path, frames), root=0)
    rows = {k: [] for k in CLUSTER_COLUMNS}
    rows["novelty"], hists, label = [], [], None
    for name in names:
        share = rio.read_frame_share(path, name, comm, column)
        label = share["column"]
        res = find_clusters(share["ids"], share["positions"], share["dh"], share["cell"],
                            share["pbc"], threshold=threshold, r_edge=r_edge, comm=comm,
                            dims=dims, balance=balance, biconnected_max_size=bic)
        _write_labels(path, name, share, res.labels, comm, backend,
                      {"threshold": threshold, "r_edge": r_edge, "column": label})
        s = res.summary()
        s["timestep"] = share["timestep"]
        for k in CLUSTER_COLUMNS:
            rows[k].append(int(s.get(k, -1)))
        rows["novelty"].append(1.0 - s["n_nodes"] / max(1, s["n_atoms"]))
        hists.append((res.sizes, res.counts))
        if out is not None and comm.rank == 0:
            out(f"clusters {name}: {s['n_nodes']} of {s['n_atoms']} atoms with dH <= "
                f"{threshold:g}, {s['n_clusters']} clusters, largest {s['largest']}"
                + (f", largest 2-connected {s['biconnected_largest']}" if bic else ""))
    table = {k: np.asarray(v) for k, v in rows.items()}
    table["frame"] = np.array(names)
    off = np.concatenate([[0], np.cumsum([len(h[0]) for h in hists])]).astype(np.int64)
    table["hist_offsets"] = off
    table["hist_sizes"] = np.concatenate([h[0] for h in hists] + [np.empty(0, np.int64)])
    table["hist_counts"] = np.concatenate([h[1] for h in hists] + [np.empty(0, np.int64)])
    attrs = {"threshold": threshold, "r_edge": r_edge, "column": label or "",
             "biconnected_max_size": -1 if bic is None else bic}
    _write_table(path, "clusters", table, attrs, comm, backend)
    return table


def _root_call(comm, fn, *args):
    """Run ``fn`` on rank 0; its QuestsInputError is raised on every rank."""
    from ..parallel.comm import raise_if_any

    err, val = None, None
    if comm.rank == 0:
        try:
            val = fn(*args)
        except QuestsInputError as exc:
            err = exc
    raise_if_any(err, comm)
    return val


def _write_labels(path, name, share, labels, comm, backend, attrs):
    w = rio.open_writer(path, comm, backend)
    try:
        n = share["natoms"]

        def make(f):
            ds = rio.replace_dataset(f["frames"][name], "cluster", (n,), "i8")
            for k, v in attrs.items():
                ds.attrs[k] = v

        rio.on_file(w, make)
        w.write_slab(f"frames/{name}/cluster", labels.astype(np.int64), offset=share["first"])
        w.flush()
    finally:
        w.close()


def _write_table(path, group, table, attrs, comm, backend):
    w = rio.open_writer(path, comm, backend)
    try:
        def make(f):
            g = f.require_group(rio.ANALYSIS_GROUP)
            if group in g:
                del g[group]
            t = g.create_group(group)
            for k, v in table.items():
                v = np.asarray(v)
                t.create_dataset(k, data=v.astype("S") if v.dtype.kind == "U" else v)
            for k, v in attrs.items():
                t.attrs[k] = v
            t.attrs["complete"] = True
            f.flush()

        rio.on_file(w, make)
    finally:
        w.close()


def read_table(path, group):
    """Columns of ``/analysis/<group>`` as a dict (plus ``attrs``); None if absent."""
    from ..results.reader import open_results

    with open_results(path) as f:
        key = f"{rio.ANALYSIS_GROUP}/{group}"
        if key not in f:
            return None
        g = f[key]
        out = {k: g[k][()] for k in g}
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
    if "frame" in out:
        out["frame"] = np.array([v.decode() if isinstance(v, bytes) else str(v)
                                 for v in out["frame"]])
    return out


def frame_temperatures(timesteps, temperature=None, temperature_file=None):
    """Temperature of each frame: a number, a list (one per frame) or a CSV file.

    The CSV needs a ``step`` column and a ``temperature_K`` (or ``temperature``) column;
    frames are matched by timestep (linear interpolation between rows).
    """
    ts = np.asarray(timesteps, dtype=np.float64)
    if temperature_file is not None:
        import csv

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


def nucleation_analysis(path, *, comm=None, temperature=None, temperature_file=None,
                        gamma_sl=N.CU_MISHIN["gamma_sl"], gamma_range=N.CU_MISHIN["gamma_sl_range"],
                        t_melt=N.CU_MISHIN["t_melt"], dh_melt=N.CU_MISHIN["dh_melt"],
                        atomic_volume=N.CU_MISHIN["atomic_volume"], fit=True, fit_max_size=None,
                        fit_frames=None, backend="auto"):
    """CNT critical sizes per frame and the fit of the cluster-size distribution.

    Needs :func:`cluster_analysis` first.  The fit uses the pre-nucleation frames (an
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
    comm = _comm(comm)
    tab = comm.bcast(_root_call(comm, read_table, path, "clusters"), root=0)
    if tab is None:
        raise QuestsInputError(f"{path}: no cluster analysis (/analysis/clusters); run the "
                               "cluster analysis first")
    temp = frame_temperatures(tab["timestep"], temperature, temperature_file)
    dt = t_melt - temp
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = dt > 0
        r_star = np.full(len(dt), np.nan)
        r_star[ok] = N.critical_radius(dt[ok], gamma_sl, t_melt, dh_melt, atomic_volume)
    n_star = N.atoms_in_sphere(r_star, atomic_volume)
    lo, hi = N.critical_size_band(temp, gamma_range, t_melt, dh_melt, atomic_volume)
    res = {"temperature": temp, "undercooling": dt, "r_star": r_star,
           "n_star": np.asarray(n_star, dtype=np.float64), "n_star_lo": lo, "n_star_hi": hi}
    fit_info, fit_error = None, ""
    if fit:
        pre = fit_frame_indices(tab["largest"], hi, fit_frames)
        sizes, counts = _summed_histogram(tab, pre)
        try:
            cf = N.fit_size_distribution(sizes, counts, float(np.mean(temp[pre])),
                                         atomic_volume, n_frames=len(pre),
                                         max_size=fit_max_size)
            fit_info = dict(cf.as_dict(), frames=[str(tab["frame"][i]) for i in pre])
        except QuestsInputError as exc:
            fit_error = str(exc)
    res["fit"], res["fit_error"] = fit_info, fit_error
    attrs = {"gamma_sl": gamma_sl, "gamma_range": np.asarray(gamma_range, np.float64),
             "t_melt": t_melt, "dh_melt": dh_melt, "atomic_volume": atomic_volume,
             "fit": __import__("json").dumps(fit_info), "fit_error": fit_error}
    table = {k: v for k, v in res.items() if k not in ("fit", "fit_error")}
    table["frame"] = tab["frame"]
    _write_table(path, "nucleation", table, attrs, comm, backend)
    return res


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


def _summed_histogram(tab, frames):
    off = tab["hist_offsets"]
    sizes = np.concatenate([tab["hist_sizes"][off[i]:off[i + 1]] for i in frames])
    counts = np.concatenate([tab["hist_counts"][off[i]:off[i + 1]] for i in frames])
    if len(sizes) == 0:
        return sizes, counts
    u, inv = np.unique(sizes, return_inverse=True)
    return u, np.bincount(inv.reshape(-1), weights=counts).astype(np.int64)


def export_results(path, directory, *, comm=None, frames=None, fmt="lammps-dump",
                   compress=True, column=None, elements=None):
    """One file per frame with per-atom ``dH`` and ``cluster`` columns (collective).

    Returns the list of files written (on every rank).
    """
    import os

    from ..export import export_frame

    comm = _comm(comm)
    names = comm.bcast(_root_call(comm, rio.analysed_frames, path, frames), root=0)
    _root_call(comm, _make_export_dir, directory)
    ext = (".lammpstrj" if fmt == "lammps-dump" else ".xyz") + (".gz" if compress else "")
    io_error = comm.bcast(_root_call(comm, _claim_export_files, path, directory,
                                     [n + ext for n in names]), root=0)
    if io_error:  # a full disk is not bad input: exit status 1, on every rank
        from ..results.writer import ResultsIOError

        raise ResultsIOError(io_error)
    written = []
    for name in names:
        share = rio.read_frame_share(path, name, comm, column)
        cols = {"dH": share["dh"]}
        lab = _read_slab(path, f"frames/{name}/cluster", share, comm)
        if lab is not None:
            cols["cluster"] = lab
        p = os.path.join(directory, name + ext)
        export_frame(p, share["ids"], share["positions"], share["cell"], share["pbc"],
                     columns=cols, types=share["types"], elements=elements,
                     timestep=share["timestep"], fmt=fmt, comm=comm)
        written.append(p)
    return written


def _make_export_dir(directory):
    """Create the export directory (rank 0); a file in its place or an OSError is bad input."""
    import os

    if os.path.exists(directory) and not os.path.isdir(directory):
        raise QuestsInputError(f"export directory {directory} exists and is not a directory; "
                               "name a directory (it is created if missing)")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise QuestsInputError(f"cannot create the export directory {directory}: "
                               f"{exc.strerror or exc}") from None


#: In an export directory: which results file each exported file was written from.
EXPORT_MANIFEST = ".quests-hpc-export.json"


def _claim_export_files(path, directory, files):
    """Refuse to replace files that were not exported from the results file ``path``
    (rank 0, before any file is written); then record ``files`` as exported from it.
    Returns None, or the message of an I/O failure writing the record.

    An export replaces its own earlier files (the same results file exported again, or
    rewritten by a campaign with ``--overwrite``), never another results file's export,
    an input or any other file that happens to have an exported file's name.
    """
    import json
    import os

    source = os.path.realpath(path)
    manifest = os.path.join(directory, EXPORT_MANIFEST)
    try:
        with open(manifest) as f:
            known = json.load(f)
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    foreign = [f for f in files if os.path.lexists(os.path.join(directory, f))
               and known.get(f) != source]
    if foreign:
        whose = {known.get(f) for f in foreign} - {None}
        raise QuestsInputError(
            f"export directory {directory}: {len(foreign)} file(s) to write already exist "
            f"and were not exported from {path} ({', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}"
            f"{'; exported from ' + ', '.join(sorted(whose)) if whose else ''}); they are "
            "kept: export into another directory, or move them away first")
    known.update({f: source for f in files})
    tmp = f"{manifest}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(known, f, indent=1, sort_keys=True)
        os.replace(tmp, manifest)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        return f"cannot write {manifest}: {exc.strerror or exc}; no exported file was written"
    return None


def _read_slab(path, dset, share, comm):
    from ..results.reader import open_results

    with open_results(path) as f:
        if dset not in f:
            return None
        n = len(share["ids"])
        return f[dset][share["first"]:share["first"] + n].astype(np.int64)


def run_analyses(path, analysis, comm=None, out=None):
    """Run a campaign's ``analysis`` section on its results file (collective).

    Parameters
    ----------
    path : str
        The campaign's results file (complete frames).
    analysis : dict
        Normalised ``analysis`` section (:func:`quests_hpc.analysis.schema.check_analysis`).
    comm : mpi4py.MPI.Comm, optional
    out : callable, optional
        Where rank 0's progress lines go.

    Returns
    -------
    dict
        ``clusters`` and ``nucleation`` results (or None) and ``plots``, ``exports`` (files).
    """
    import os

    comm = _comm(comm)
    a = check_analysis(analysis or {})
    res = {"clusters": None, "nucleation": None, "plots": [], "exports": []}
    c = a["clusters"]
    if c is not None:
        res["clusters"] = cluster_analysis(
            path, comm=comm, threshold=c["threshold"], r_edge=c["r_edge"], column=c["column"],
            biconnected_max_size=c["biconnected_max_size"], out=out)
        nuc = a["nucleation"]
        if nuc is not None:
            res["nucleation"] = nucleation_analysis(
                path, comm=comm, temperature=nuc["temperature"],
                temperature_file=nuc["temperature_file"], gamma_sl=nuc["gamma_sl"],
                gamma_range=nuc["gamma_range"], t_melt=nuc["t_melt"], dh_melt=nuc["dh_melt"],
                atomic_volume=nuc["atomic_volume"], fit=nuc["fit"],
                fit_max_size=nuc["fit_max_size"], fit_frames=nuc["fit_frames"])
    e = a["export"]
    if e is not None:
        d = e["directory"] or os.path.splitext(path)[0] + "_frames"
        res["exports"] = export_results(path, d, comm=comm, fmt=e["format"],
                                        compress=e["compress"], column=(c or {}).get("column"),
                                        elements=e["elements"])
    p = a["plots"]
    if p["enabled"]:
        files = None
        if comm.rank == 0:
            from ..plotting import plot_results

            files = plot_results(path, p["directory"], formats=p["formats"])
        res["plots"] = comm.bcast(files, root=0)
    if out is not None and comm.rank == 0:
        for f in res["plots"]:
            out(f"picture: {f}")
        if res["exports"]:
            out(f"{len(res['exports'])} frame file(s) for OVITO in "
                f"{os.path.dirname(res['exports'][0])}")
    return res
