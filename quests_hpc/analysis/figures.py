"""Every picture a results file supports (``quests-hpc plot``): the plotting driver.

:func:`plot_results` reads a results file (frames, summary tables, the analyses under
``/analysis``) and draws it with the array -> figure functions of
:mod:`quests_hpc.plotting`, which know nothing of files.  Not collective: call it on one
rank.
"""

import json
import os

import numpy as np

from .. import plotting as P
from ..results import layout as L
from ..results.reader import complete_frames, open_results, read_table
from . import nucleation as N
from .results_io import read_analysis_table, summed_histogram


def plot_results(path, outdir=None, formats=("png",), max_points=2_000_000):
    """Write every picture the results file supports; return the files written.

    * ``dh_histogram``: dH of up to four frames spread over the campaign (first dH column);
    * ``timeline``: novelty per frame, and with a cluster analysis the largest cluster
      with the CNT critical-size band of the nucleation analysis;
    * ``cluster_sizes``: the pre-nucleation cluster-size distribution and its CNT fit;
    * ``learning_curve``: H(N) with the asymptote fit, per bandwidth;
    * ``overlap``: overlap of every input with every reference (first bandwidth).

    Parameters
    ----------
    path : str
        A quests-hpc results file.
    outdir : str, optional
        Default: ``<results stem>_plots`` next to the file.
    formats : sequence of str
        File formats (png, pdf, svg).
    max_points : int
        dH values read per frame at most (evenly strided) for the histogram.
    """
    outdir = outdir or os.path.splitext(os.fspath(path))[0] + "_plots"
    os.makedirs(outdir, exist_ok=True)
    data = _read(path, max_points)
    data["clusters"] = read_analysis_table(path, L.CLUSTERS_TABLE)
    data["nucleation"] = read_analysis_table(path, L.NUCLEATION_TABLE)
    title = os.path.basename(path)
    figures = {
        "dh_histogram": P.dh_histogram(data["dh"], threshold=data["threshold"], title=title)
        if data["dh"] else None,
        "timeline": _timeline(data, title),
        "cluster_sizes": _cluster_sizes(data["clusters"], data["nucleation"]),
        "learning_curve": _learning_curve(data["learning_curve"]),
        "overlap": _overlap(data["overlap"]),
    }
    written = []
    for name, fig in figures.items():
        if fig is not None:
            written += P.save(fig, os.path.join(outdir, name), formats)
    return written


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _sample(ds, limit):
    """At most ``limit`` rows of an HDF5 dataset, evenly strided (first column if 2-D)."""
    step = max(1, int(np.ceil(ds.shape[0] / limit)))
    v = ds[::step]
    return np.asarray(v if v.ndim == 1 else v[:, 0], dtype=float)


def _read(path, max_points):
    """Complete frames, dH samples of up to four of them and the summary tables."""
    with open_results(path) as f:
        names = complete_frames(f)
        with_dh = [n for n in names if "delta_entropy" in f[L.frame_path(n)]]
        picks = sorted({int(round(x)) for x in np.linspace(0, len(with_dh) - 1, 4)}) \
            if with_dh else []
        summary = read_table(f, L.SUMMARY_FRAMES)
        return {
            "names": names, "threshold": float(f.attrs.get("threshold", 0.0)),
            "dh": {with_dh[i]: _sample(f[L.frame_path(with_dh[i], "delta_entropy")], max_points)
                   for i in picks},
            "summary": summary,
            "summary_frames": [_text(n) for n in (summary["frame"] if summary is not None else [])],
            "learning_curve": read_table(f, L.LEARNING_CURVE),
            "overlap": read_table(f, L.SUMMARY_OVERLAP),
        }


def _timeline(data, title):
    summ, names = data["summary"], data["names"]
    if summ is None or "novelty" not in summ or not names:
        return None
    idx = [data["summary_frames"].index(n) for n in names]
    nov = summ["novelty"][idx, 0, 0]
    ts = summ["timestep"][idx]
    x, xl = (ts, "timestep") if (ts >= 0).all() and len(set(ts)) == len(ts) else (
        np.arange(len(idx)), "frame")
    kw = {}
    cl, nuc = data["clusters"], data["nucleation"]
    if cl is not None:
        pos = {n: i for i, n in enumerate(cl["frame"])}
        keep = [i for i, n in enumerate(names) if n in pos]
        sel = [pos[names[i]] for i in keep]
        x, nov = x[keep], nov[keep]
        kw["largest"] = cl["largest"][sel]
        kw["n_nodes"] = cl["n_nodes"][sel]
        if (cl["biconnected_largest"][sel] >= 0).all():
            kw["biconnected_largest"] = cl["biconnected_largest"][sel]
        if nuc is not None:
            kw["n_star_band"] = (nuc["n_star_lo"][sel], nuc["n_star_hi"][sel])
    return P.cluster_timeline(x, nov, xlabel=xl, title=title, **kw)


def _cluster_sizes(cl, nuc):
    """The cluster-size distribution of the fitted (pre-nucleation) frames and the fit."""
    if nuc is None or cl is None:
        return None
    fit = json.loads(nuc["attrs"].get("fit", "null") or "null")
    frames = set(fit["frames"] if fit else cl["frame"])
    rows = [i for i, n in enumerate(cl["frame"]) if n in frames]
    sizes, counts = summed_histogram(cl, rows)
    if not len(sizes):
        return None
    model, label = None, None
    if fit:
        cf = N.fit_from_dict(fit)
        grid = np.linspace(max(1.0, float(sizes.min())), float(sizes.max()), 200)
        model = (grid, N.fitted_distribution(cf, grid, float(nuc["attrs"]["atomic_volume"])))
        label = (f"CNT fit: $\\gamma$ = {cf.gamma:.3f} J/m$^2$, "
                 f"$\\Delta g$ = {cf.dg / 1e9:.2f} GJ/m$^3$"
                 + (f", $n^*$ = {cf.n_star:.0f}" if np.isfinite(cf.n_star) else ""))
    return P.cluster_size_distribution(sizes, counts, len(rows), model=model,
                                       model_label=label, title="cluster sizes before nucleation")


def _learning_curve(lc):
    if lc is None or not bool(lc["attrs"].get("complete")):
        return None
    hs = np.asarray(lc["attrs"]["bandwidths"])
    return P.learning_curve(lc["sizes"], lc["mean"], lc["std"], lc["fit"],
                            label=[f"h = {h:g} 1/A" for h in hs],
                            title=f"learning curve of {lc['attrs'].get('dataset', '')}")


def _overlap(ov):
    if ov is None or not bool(ov["attrs"].get("complete")):
        return None
    ins = [_text(v) for v in ov["attrs"]["inputs"]]
    refs = [_text(v) for v in ov["attrs"]["references"]]
    h0 = float(np.asarray(ov["attrs"]["bandwidths"])[0])
    return P.overlap_matrix(ov["overlap"][:, :, 0], ins, refs, title=f"overlap, h = {h0:g} 1/A")
