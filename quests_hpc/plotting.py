"""Figures of quests-hpc results (matplotlib, no display needed).

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, so
importing this module never changes matplotlib's global backend (scripts, notebooks and
batch jobs on nodes without a display all work).  Sizes and fonts are chosen to be
readable as they come out, in a paper column (3.4 in) scaled to 1.5x or on a slide.

Functions
---------
dh_histogram
    Distribution of dH (density and cumulative fraction) with the dH = 0 line.
cluster_timeline
    Novelty fraction and largest cluster per frame, with the CNT critical-size band.
learning_curve
    Entropy of random subsets vs their size, with the asymptote fit ``a - b exp(-c (log N)^2)``.
overlap_matrix
    Overlap (fraction with dH <= 0) of every input against every reference.
cluster_size_distribution
    Cluster-size histogram and a model curve (the CNT fit).

Every figure is a function of arrays (no file is read, nothing of quests_hpc is
imported): the driver that reads a results file and draws them all is
:func:`quests_hpc.analysis.figures.plot_results` (``quests-hpc plot RESULTS.h5``).
"""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Colours (colour-blind safe, Okabe-Ito) used throughout.
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
_RC = {"font.size": 11, "axes.labelsize": 12, "axes.titlesize": 12, "legend.fontsize": 10,
       "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.spines.top": False,
       "axes.spines.right": False, "lines.linewidth": 1.8, "savefig.bbox": "tight"}


def new_figure(width=6.4, height=4.0, nrows=1, ncols=1, **kwargs):
    """A Figure on the Agg canvas with the package style, and its axes.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : Axes or ndarray of Axes
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def save(fig, path, formats=("png",), dpi=200):
    """Write ``fig`` as ``path`` with each extension in ``formats``; return the paths."""
    import matplotlib

    base, ext = os.path.splitext(os.fspath(path))
    out = []
    for f in ([ext.lstrip(".")] if ext else list(formats)):
        p = f"{base}.{f}"
        with matplotlib.rc_context(_RC):
            fig.savefig(p, dpi=dpi)
        out.append(p)
    return out


def _as_series(data, default="dH"):
    if isinstance(data, dict):
        return [(str(k), np.asarray(v, dtype=float).reshape(-1)) for k, v in data.items()]
    return [(default, np.asarray(data, dtype=float).reshape(-1))]


def dh_histogram(dh, threshold=0.0, bins=120, title=None, log_density=True):
    """Histogram and cumulative distribution of dH, with the dH = threshold line.

    Parameters
    ----------
    dh : array_like or dict of name -> array_like
        dH values (nats); a dict overlays several datasets.
    threshold : float
        The novelty threshold (drawn as a vertical line; the legend gives the fraction
        of each dataset at or below it, i.e. covered).
    bins : int
    title : str, optional
    log_density : bool
        Logarithmic density axis (dH distributions have long novel tails).

    Returns
    -------
    matplotlib.figure.Figure
    """
    series = _as_series(dh)
    finite = np.concatenate([v[np.isfinite(v)] for _, v in series])
    fig, ax = new_figure()
    cdf_ax = ax.twinx()
    cdf_ax.spines["right"].set_visible(True)
    hidden = 0.0
    if len(finite):
        # Far-novel environments can reach dH of thousands of nats: show the bulk of the
        # distribution (0.2-99.5 percentiles, always the threshold) and say what is cut.
        lo, hi = np.percentile(finite, [0.2, 99.5])
        lo, hi = min(lo, threshold), max(hi, threshold)
        pad = 0.05 * max(hi - lo, 1e-3)
        lo, hi = lo - pad, hi + pad
        hidden = float(((finite < lo) | (finite > hi)).mean())
        edges = np.linspace(lo, hi, bins + 1)
        for i, (name, v) in enumerate(series):
            v = v[np.isfinite(v)]
            c = COLORS[i % len(COLORS)]
            cov = float((v <= threshold).mean()) if len(v) else float("nan")
            ax.hist(v, bins=edges, density=True, histtype="stepfilled", alpha=0.3, color=c)
            ax.hist(v, bins=edges, density=True, histtype="step", color=c,
                    label=f"{name}: {100 * cov:.1f}% covered (n = {len(v):,})")
            x = np.sort(v)
            cdf_ax.plot(x, np.arange(1, len(x) + 1) / len(x), color=c, ls="--", lw=1.4)
        ax.set_xlim(lo, hi)
        cdf_ax.set_xlim(lo, hi)
    ax.axvline(threshold, color="k", lw=1.2)
    ax.text(threshold, 1.01, f"dH = {threshold:g}", transform=ax.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=10)
    if log_density:
        ax.set_yscale("log")
    ax.set_xlabel(r"$\delta\mathcal{H}$ (nats)   covered $\leftarrow$ | $\rightarrow$ novel")
    ax.set_ylabel("probability density")
    cdf_ax.set_ylabel("cumulative fraction (dashed)")
    cdf_ax.set_ylim(0, 1.02)
    note = f"covered: dH <= {threshold:g}" + (
        f"; {100 * hidden:.2f}% of values beyond the axis" if hidden > 0 else "")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2 if len(series) > 1 else 1,
              frameon=False, title=note, title_fontsize=10, fontsize=9.5)
    if title:
        ax.set_title(title, pad=16)
    return fig


def cluster_timeline(x, novelty, largest=None, n_star_band=None, biconnected_largest=None,
                     xlabel="frame", title=None, n_nodes=None):
    """Novelty fraction (top) and largest cluster (bottom) per frame.

    Parameters
    ----------
    x : array_like
        Frame position (index, timestep or time).
    novelty : array_like
        Fraction of atoms with dH > threshold in each frame.
    largest : array_like, optional
        Atoms in the largest cluster of each frame (without it: the top panel only).
    n_star_band : (array_like, array_like), optional
        Lower and upper CNT critical size (atoms) at each frame (or scalars).
    biconnected_largest : array_like, optional
        Largest 2-connected component per frame.
    xlabel, title : str
    n_nodes : array_like, optional
        Covered atoms per frame (range given above the top panel).

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = np.asarray(x, dtype=float)
    if largest is None:
        fig, a0 = new_figure(6.4, 3.2)
        a1 = None
    else:
        fig, (a0, a1) = new_figure(6.4, 5.2, 2, 1, sharex=True,
                                   gridspec_kw={"height_ratios": [1, 1.6]})
    a0.plot(x, 100 * np.asarray(novelty, dtype=float), "o-", ms=3.5, color=COLORS[0])
    a0.set_ylabel("novel atoms (%)\n(dH > 0)")
    if n_nodes is not None:
        a0.set_title(f"covered atoms per frame: {int(np.min(n_nodes)):,} to "
                     f"{int(np.max(n_nodes)):,}", fontsize=10, loc="right")
    if title:
        a0.set_title(title, loc="left")
    if a1 is None:
        a0.set_xlabel(xlabel)
        return fig
    lg = np.asarray(largest, dtype=float)
    a1.plot(x, np.where(lg > 0, lg, np.nan), "o-", ms=3.5, color=COLORS[1],
            label="largest cluster (connected)")
    if biconnected_largest is not None:
        b = np.asarray(biconnected_largest, dtype=float)
        a1.plot(x, np.where(b > 0, b, np.nan), "s--", ms=3, color=COLORS[2],
                label="largest 2-connected part")
    if n_star_band is not None:
        lo = np.broadcast_to(np.asarray(n_star_band[0], dtype=float), x.shape)
        hi = np.broadcast_to(np.asarray(n_star_band[1], dtype=float), x.shape)
        a1.fill_between(x, lo, hi, color=COLORS[4], alpha=0.35, lw=0,
                        label=r"CNT critical size $n^*$")
    a1.set_yscale("log")
    a1.set_ylabel("atoms")
    a1.set_xlabel(xlabel)
    a1.legend(loc="best", frameon=True, framealpha=0.85, edgecolor="none")
    return fig


def learning_curve_model(n, a, b, c):
    """``a - b exp(-c (log N)^2)`` (SPEC.md)."""
    return a - b * np.exp(-c * np.log(np.asarray(n, dtype=float)) ** 2)


def learning_curve(sizes, entropy, std=None, fit=None, label=None, title=None):
    """Entropy of random subsets against subset size, with the asymptote fit.

    Parameters
    ----------
    sizes : array_like
        Subset sizes N.
    entropy : array_like, shape (len(sizes),) or (m, len(sizes))
        Mean H(N) (nats), one row per bandwidth / dataset.
    std : array_like, optional
        Standard deviation over repeats (error bars), same shape as ``entropy``.
    fit : array_like, shape (3,) or (m, 3), optional
        ``a, b, c`` of each curve; draws the model and the asymptote ``a``.
    label : str or list of str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = np.asarray(sizes, dtype=float)
    h = np.atleast_2d(np.asarray(entropy, dtype=float))
    s = None if std is None else np.atleast_2d(np.asarray(std, dtype=float))
    f = None if fit is None else np.atleast_2d(np.asarray(fit, dtype=float))
    labels = label if isinstance(label, (list, tuple)) else [label] * len(h)
    fig, ax = new_figure()
    grid = np.geomspace(n.min(), n.max() * 4, 200)
    top = max(np.nanmax(h) * 1.25, np.log(n.max()) * 1.1, 0.5)
    for i, row in enumerate(h):
        c = COLORS[i % len(COLORS)]
        name = labels[i] or ("H(N)" if len(h) == 1 else f"curve {i}")
        ax.errorbar(n, row, yerr=None if s is None else s[i], fmt="o", ms=4, color=c,
                    capsize=2, label=name)
        if f is not None and np.isfinite(f[i]).all():
            a, b, cc = f[i]
            off = not 0 <= a <= top
            ax.plot(grid, learning_curve_model(grid, a, b, cc), color=c, lw=1.4,
                    label=f"fit, asymptote a = {a:.3g} nats" + (" (off scale)" if off else ""))
            if not off:
                ax.axhline(a, color=c, ls=":", lw=1.2)
    ax.plot(grid, np.log(grid), color="0.6", lw=1, ls="--", label="log N (upper bound)")
    ax.set_ylim(0, top)
    ax.set_xscale("log")
    ax.set_xlabel("subset size N (environments)")
    ax.set_ylabel(r"entropy $\mathcal{H}$ (nats)")
    ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    return fig


def overlap_matrix(matrix, rows, cols, title=None, label="overlap (fraction with dH <= 0)"):
    """Heat map of the overlap of every input (row) with every reference (column).

    Parameters
    ----------
    matrix : array_like, shape (len(rows), len(cols))
        Values in [0, 1].
    rows, cols : sequence of str

    Returns
    -------
    matplotlib.figure.Figure
    """
    m = np.asarray(matrix, dtype=float)
    w = min(12.0, 2.4 + 1.1 * len(cols))
    hgt = min(10.0, 1.6 + 0.6 * len(rows))
    fig, ax = new_figure(w, hgt)
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m[i, j]
            ax.text(j, i, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center",
                    va="center", color="w" if np.isfinite(v) and v < 0.6 else "k", fontsize=11)
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel("reference")
    ax.set_ylabel("input")
    ax.spines[:].set_visible(False)
    fig.colorbar(im, ax=ax, label=label, shrink=0.9)
    if title:
        ax.set_title(title)
    return fig


def cluster_size_distribution(sizes, counts, n_frames=1, model=None, model_label=None,
                              title=None):
    """Clusters per frame of each size, with a model curve (the CNT fit) when given.

    Parameters
    ----------
    sizes, counts : array_like
        Size histogram (summed over ``n_frames``).
    n_frames : int
    model : (array_like, array_like), optional
        Sizes and the clusters per frame a model predicts for them (e.g.
        :func:`quests_hpc.analysis.nucleation.fitted_distribution`), drawn as a line.
    model_label : str, optional
        Legend of the model line.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    s = np.asarray(sizes, dtype=float)
    c = np.asarray(counts, dtype=float) / float(n_frames)
    fig, ax = new_figure()
    ax.plot(s, c, "o", ms=4, color=COLORS[0], label=f"clusters per frame ({n_frames} frames)")
    if model is not None:
        ax.plot(np.asarray(model[0], dtype=float), np.asarray(model[1], dtype=float),
                color=COLORS[1], label=model_label or "model")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cluster size (atoms)")
    ax.set_ylabel("clusters per frame")
    ax.legend(loc="lower left", frameon=False)
    if title:
        ax.set_title(title)
    return fig
