"""The outputs of a compression: the chosen structures, the report and the curve.

* the chosen structures as extxyz, in choice order, each with ``info["quests_index"]``
  (its index in the input data set), ``quests_file`` / ``quests_frame`` (where it came
  from), ``quests_entropy`` (its own H) and ``quests_novelty`` (against the reference and
  the structures chosen before it; ``inf`` for a first pick against nothing);
* an HDF5 report, a quests-hpc results file (root attributes ``format``, ``k``,
  ``cutoff``, ``bandwidths``; ``quests-hpc info`` reads it) holding the group
  :func:`quests_hpc.results.layout.compression_path` with the report as attributes
  (method, H, D, overlap, structures and environments kept) and the datasets
  ``chosen/{index,novelty,entropy,n_environments}`` and
  ``curve/{size,n_environments,entropy,diversity}`` (H and D of the first m chosen
  structures: m = 1 .. 32, then 16 sizes evenly spaced in log m up to all of them);
* the compression curve as a picture (H and D of the subset against its size, like the
  paper's Fig. 2 for random subsets).

Every file is new: :mod:`quests_hpc.results.new_file` writes it aside and publishes it
without replacing anything.  Rank 0 writes; the functions are not collective.
"""

import io
import json
import time

import numpy as np

from .._version import __version__
from ..results import layout as L
from ..results.new_file import write_new


def report_lines(result, data):
    """The printed report, a list of lines."""
    r = result
    return [f"compression ({r.method}): {len(r.indices)} of {r.n_structures} structures, "
            f"{r.kept_environments} of {r.n_environments} environments kept",
            f"  entropy H = {r.H:.6f} nats   diversity D = {r.D:.6f}   "
            f"(whole set: {r.n_environments} environments)",
            f"  overlap of the whole set with the subset (dH <= 1e-5): {100 * r.overlap:.2f} %",
            f"  bandwidth {data.h:g} 1/A, k {data.k}, cutoff {data.cutoff:g} A"]


def tagged_atoms(atoms, result, data):
    """The chosen ``atoms`` (choice order) with their ``info`` tags."""
    out = []
    for a, s, h, nov in zip(atoms, result.indices, result.entropy, result.novelty):
        a = a.copy()
        a.info.update(quests_index=int(s), quests_file=str(data.files[s]),
                      quests_frame=int(data.frames[s]), quests_entropy=float(h),
                      quests_novelty=float(nov))
        out.append(a)
    return out


def write_structures(path, atoms):
    """The structures as extxyz (ASE's writer), a new file."""
    from ase.io import write

    def put(tmp):
        buf = io.StringIO()
        write(buf, atoms, format="extxyz", parallel=False)
        with open(tmp, "w") as f:
            f.write(buf.getvalue())
    return write_new(path, put)


def _root_attributes(data, mpi_size):
    return {"format": L.FORMAT, "format_version": L.FORMAT_VERSION, "k": int(data.k),
            "cutoff": float(data.cutoff), "bandwidths": np.array([data.h], dtype=np.float64),
            "quests_hpc_version": __version__, "software": json.dumps(L.software_versions()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mpi_size": int(mpi_size),
            "writer": "quests-hpc compress", "complete": True, "campaign_name": "compress"}


def write_report(path, result, data, options, mpi_size=1):
    """The HDF5 report (see the module doc), a new file; ``options``: the run's settings
    (method, size, seed, start, reference, inputs), stored as attributes."""
    import h5py

    r = result

    def put(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs.update(_root_attributes(data, mpi_size))
            g = f.create_group(L.compression_path())
            g.attrs.update(environment_folds=r.environment_folds, method=r.method, entropy=r.H, diversity=r.D, overlap=r.overlap,
                           overlap_eps=1e-5, n_structures=r.n_structures,
                           n_environments=r.n_environments, kept_structures=len(r.indices),
                           kept_environments=r.kept_environments,
                           options=json.dumps(options, default=str))
            g["chosen/index"] = np.asarray(r.indices, dtype=np.int64)
            g["chosen/novelty"] = np.asarray(r.novelty, dtype=np.float64)
            g["chosen/entropy"] = np.asarray(r.entropy, dtype=np.float64)
            g["chosen/n_environments"] = data.counts[r.indices].astype(np.int64)
            g["chosen/file"] = np.array([data.files[s] for s in r.indices],
                                        dtype=h5py.string_dtype())
            g["chosen/frame"] = np.array([data.frames[s] for s in r.indices], dtype=np.int64)
            g["curve/size"] = np.asarray(r.curve_picks, dtype=np.int64)
            g["curve/n_environments"] = np.asarray(r.curve_size, dtype=np.int64)
            g["curve/entropy"] = np.asarray(r.curve_entropy, dtype=np.float64)
            g["curve/diversity"] = np.asarray(r.curve_diversity, dtype=np.float64)
    return write_new(path, put)


def curve_figure(result, title=None):
    """H and D of the first m chosen structures against m (a matplotlib Figure)."""
    from ..plotting import new_figure

    fig, ax = new_figure(6.4, 4.0)
    m = np.asarray(result.curve_picks)
    ax.plot(m, result.curve_entropy, "-", color="C0", label="entropy H")
    ax.plot(m, result.curve_diversity, "--", color="C1", label="diversity D")
    ax.set_xscale("log")
    ax.set_xlabel("structures in the subset")
    ax.set_ylabel("nats")
    ax.set_title(title or f"compression curve ({result.method})")
    ax.legend(loc="lower right")
    ax.grid(True, alpha=0.3)
    return fig


def write_curve(path, result, title=None):
    """The compression curve as a picture (format from the extension), a new file."""
    fig = curve_figure(result, title)
    fmt = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else "png"

    def put(tmp):
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    return write_new(path, put)
