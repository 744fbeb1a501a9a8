"""The outputs of ``quests-hpc generations``: the HDF5 report and the picture.

This module owns checking the output names before any work (:func:`check_outputs`) and
writing them (:func:`write_outputs`).  No run deletes or replaces earlier results: an
output that exists, that is one of the inputs, or whose directory is missing is refused
(exit status 2) before anything is computed, and every file is written aside and then
published without replacing anything (:mod:`quests_hpc.results.new_file`); a failure
while writing (disk full) raises :class:`~quests_hpc.results.writer.ResultsIOError`
naming the file on every rank.

The HDF5 file is a quests-hpc results file (root attributes ``format``, ``k``, ``cutoff``,
``bandwidths``, ``threshold``, ...; ``quests-hpc info`` reads them) holding one table,
``/generations`` (:func:`quests_hpc.results.layout.generations_path`), one row per
generation::

    generation, n_structures, n_environments, union_structures,
    union_environments                          (n_gen,)       int64
    label, files                                (n_gen,)       str (files: JSON list)
    entropy, diversity, novelty, dh_mean,
    union_entropy, union_diversity              (n_gen, n_h)   float64 (NaN: none)
    n_novel                                     (n_gen, n_h)   int64 (-1: none)

The picture (:func:`generations_figure`, the paper's Fig. 2f) has two panels sharing the
generation axis: (a) H and D of every generation on its own (solid) and of the cumulative
union 0..g (dashed); (b) the novelty of every generation against the union of the earlier
ones as bars (fraction with dH > threshold), the mean dH written on each bar.  It is built
with the style of :mod:`quests_hpc.plotting` (Agg canvas, no display).

Rank 0 writes (the table is small); functions taking ``comm`` are collective.
"""

import json
import os
import time

import numpy as np

from .. import plotting as P
from .._version import __version__
from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..results import layout as L
from ..results.new_file import check_new, write_new
from ..results.writer import ResultsIOError
from .generations import PER_BANDWIDTH
from .structures import expand_inputs

INT_COLUMNS = ("generation", "n_structures", "n_environments", "union_structures",
               "union_environments")


def check_outputs(comm, outputs, generations):
    """Refuse, before any work, outputs that exist, whose directory is missing, that name
    an input or the same file twice (:func:`quests_hpc.results.new_file.check_new`), and
    empty input files (collective).

    Parameters
    ----------
    outputs : list of (str or None, str)
        ``(path, option)``, e.g. ``(args.output, "-o")``; None paths are skipped.
    generations : list
        The inputs of every generation (paths or globs).
    """
    err = None
    if comm.rank == 0:
        try:
            inputs = [(f, g) for g, paths in enumerate(generations)
                      for f in expand_inputs(paths, f"generation {g} ({paths})")]
            for f, g in inputs:
                if os.path.getsize(f) == 0:
                    raise QuestsInputError(f"{f} (generation {g}): the file is empty; every "
                                           "generation needs at least one structure")
            check_new(outputs, [f for f, _ in inputs])
        except QuestsInputError as exc:
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)


def root_attributes(meta, mpi_size):
    """Root attributes of the report file (``meta``: k, cutoff, bandwidths, threshold)."""
    return {"format": L.FORMAT, "format_version": L.FORMAT_VERSION, "k": int(meta["k"]),
            "cutoff": float(meta["cutoff"]),
            "bandwidths": np.asarray(meta["bandwidths"], dtype=np.float64),
            "threshold": float(meta["threshold"]), "quests_hpc_version": __version__,
            "software": json.dumps(L.software_versions()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mpi_size": int(mpi_size),
            "writer": "quests-hpc generations", "complete": True,
            "campaign_name": "generations"}


def write_report(path, rows, meta, mpi_size=1):
    """Write the HDF5 report of ``rows`` to ``path`` (not collective: one process)."""
    import h5py

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs.update(root_attributes(meta, mpi_size))
            g = f.create_group(L.generations_path())
            g.attrs["bandwidths"] = np.asarray(meta["bandwidths"], dtype=np.float64)
            g.attrs["threshold"] = float(meta["threshold"])
            for c in INT_COLUMNS:
                g[c] = np.array([getattr(r, c) for r in rows], dtype=np.int64)
            g["label"] = np.array([r.label for r in rows], dtype=h5py.string_dtype())
            g["files"] = np.array([json.dumps(list(f)) for f in meta["files"]],
                                  dtype=h5py.string_dtype())
            for c in PER_BANDWIDTH:
                dt = np.int64 if c == "n_novel" else np.float64
                g[c] = np.array([np.asarray(getattr(r, c)) for r in rows], dtype=dt)
    return write_new(path, write)


def save_figure(fig, path):
    """Save a matplotlib figure as ``path`` (format from its extension), aside first."""
    
    return write_new(path, lambda tmp: P.save(fig, tmp))


def write_outputs(comm, rows, meta, output=None, plot=None, bandwidth_index=0):
    """Write the report file and the picture asked for, from rank 0 (collective).

    Returns the list of files written (on every rank).
    """
    err, written = None, []
    if comm.rank == 0:
        try:
            if output is not None:
                written.append(write_report(output, rows, meta, comm.size))
            if plot is not None:
                fig = generations_figure(rows, meta["bandwidths"], bandwidth_index,
                                         threshold=meta["threshold"])
                written.append(save_figure(fig, plot))
        except ResultsIOError as exc:
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0, keep=(ResultsIOError,))
    return pcomm.bcast(written, comm)


# ------------------------------------------------------------------ the picture


def _series(rows, name, j):
    return np.array([np.asarray(getattr(r, name), dtype=float)[j] for r in rows])


def _entropy_panel(ax, g, rows, j):
    c0, c1 = P.COLORS[0], P.COLORS[1]
    ax.plot(g, _series(rows, "entropy", j), "o-", color=c0, label="H (generation)")
    ax.plot(g, _series(rows, "union_entropy", j), "o--", color=c0, mfc="white",
            label="H (union 0..g)")
    ax.plot(g, _series(rows, "diversity", j), "s-", color=c1, label="D (generation)")
    ax.plot(g, _series(rows, "union_diversity", j), "s--", color=c1, mfc="white",
            label="D (union 0..g)")
    ax.set_ylabel("H, D (nats)")
    ax.legend(loc="best", frameon=False, fontsize=9)


def _novelty_panel(ax, g, rows, j, threshold):
    nov = _series(rows, "novelty", j)
    mean = _series(rows, "dh_mean", j)
    has = np.isfinite(nov)
    bars = ax.bar(g[has], nov[has], color=P.COLORS[2], width=0.6)
    for b, m in zip(bars, mean[has]):
        ax.annotate(f"{m:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel(f"novel fraction\n(dH > {threshold:g}; mean dH on bars)", fontsize=10)
    ax.set_xlabel("generation g (novelty against generations 0..g-1)")


def generations_figure(rows, bandwidths, bandwidth_index=0, threshold=0.0, title=None):
    """H, D and novelty per generation for one bandwidth.

    Parameters
    ----------
    rows : list of :class:`~quests_hpc.dataset.generations.GenerationRow`
    bandwidths : sequence of float
        The bandwidths of the rows' per-bandwidth columns.
    bandwidth_index : int
        Which of them to draw.
    threshold : float
        The novelty threshold used (for the label).

    Returns
    -------
    matplotlib.figure.Figure
    """
    j = int(bandwidth_index)
    g = np.array([r.generation for r in rows], dtype=float)
    fig, (top, bottom) = P.new_figure(6.4, 6.0, nrows=2, sharex=True)
    _entropy_panel(top, g, rows, j)
    _novelty_panel(bottom, g, rows, j, threshold)
    bottom.set_xticks(g, [str(int(v)) for v in g])
    top.set_title(title or f"data set across generations (h = {float(bandwidths[j]):g} 1/A)")
    return fig
