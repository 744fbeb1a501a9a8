"""The results file layout: names, shapes, the structure plan and root attributes.

One HDF5 file per campaign (see ``docs/results-layout.md`` for the user-facing
description)::

    /                       attrs: format, format_version, k, cutoff, bandwidths, threshold,
                                   species, type_maps (JSON) and descriptor_layout (runs
                                   with species),
                                   references (JSON), reference_paths, reference_sha256,
                                   campaign_yaml, campaign_fingerprint, inputs (JSON),
                                   software (JSON), quests_hpc_version, created, mpi_size,
                                   writer, layout_complete, complete
    /frames/<input>_<index:06d>/      one group per processed frame
        id              (n,)    int64    atom ids, ascending
        delta_entropy   (n,) or (n, m)   dH against each (reference, bandwidth) pair,
                                         column j = attrs["columns"][j]
        descriptors     (n, 2k-1)        optional; (n, (2k-1)(n_species+1)) with species
        position        (n, 3)           optional (wrapped along periodic axes)
        type            (n,)    int32    optional (LAMMPS type; atomic number for ASE input)
        attrs: input, source, source_path, source_index, timestep, natoms, cell, pbc,
               wall_time, mpi_size, content_sha256, complete
               (content_sha256: hash of the frame's bytes in its dump, see
               :func:`quests_hpc.results.restart.frame_hash`; empty for ASE inputs)
        cluster         (n,)    int64    optional, written by the cluster analysis
    /summary/frames/<column>          one row per frame, in campaign order
    /summary/overlap/<column>         novelty / overlap of every input vs every reference
    /learning_curve/<column>          H of random subsets and the asymptote fit
    /analysis/clusters/<column>       the cluster analysis, one row per frame
    /analysis/nucleation/<column>     the CNT analysis, one row per frame
    /generations/<column>             ``quests-hpc generations`` (a file of its own)

Every path of the file is spelled here only: the constants and functions below
(:data:`FRAMES`, :data:`SUMMARY_FRAMES`, :func:`frame_path`, :func:`analysis_path`, ...)
name them.

Every object is created up front (:func:`~quests_hpc.results.writer.ResultsWriter.
create_structure`), with contiguous, fully allocated datasets; afterwards a run only
writes raw data into place and flips fixed-size attributes, so a killed run never leaves
a half-written HDF5 structure behind (see :mod:`quests_hpc.results.restart`).
"""

import json
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from .._version import __version__
from ..species import descriptor_width, layout_text

FORMAT = "quests-hpc-results"
FORMAT_VERSION = 1

#: Attributes that legitimately differ between two runs producing the same results
#: (ignored by :func:`quests_hpc.results.reader.diff_results`).
VOLATILE_ATTRS = frozenset({
    "created", "mpi_size", "wall_time", "software", "quests_hpc_version", "writer",
    "source_path", "source", "references", "reference_paths", "inputs", "campaign_yaml",
})

#: Datasets that legitimately differ between such runs (matched by their last name).
VOLATILE_DATASETS = frozenset({"wall_time"})

#: Content hash of a frame's bytes in its source (fixed-length ``S64``; empty when none).
FRAME_HASH_ATTR = "content_sha256"

#: Frame attributes written when the frame is finished (pre-created with placeholders).
FRAME_FINAL_ATTRS = ("timestep", "cell", "pbc", "wall_time", "mpi_size", FRAME_HASH_ATTR)

FLOAT_FILL = np.nan
INT_FILL = -1

# ------------------------------------------------------------------ paths in the file
#: Group of the frames (one subgroup per frame).
FRAMES = "frames"
#: Per-frame table (one row per frame), the per-input overlap table, the learning curve.
SUMMARY_FRAMES = "summary/frames"
SUMMARY_OVERLAP = "summary/overlap"
LEARNING_CURVE = "learning_curve"
#: Group of the analyses of a results file (tables written after the frames).
ANALYSIS = "analysis"
#: Table of the cluster analysis and of the nucleation (CNT) analysis under ``/analysis``.
CLUSTERS_TABLE = "clusters"
NUCLEATION_TABLE = "nucleation"
#: Per-atom cluster labels of a frame (written by the cluster analysis).
CLUSTER_DATASET = "cluster"
#: Table of ``quests-hpc generations`` (one row per generation; the report's own file).
GENERATIONS = "generations"
#: ``quests-hpc compress``: the choice (one row per chosen structure) and the curve.
COMPRESSION = "compression"


def frame_name(input_name, index):
    """Group name of frame ``index`` of input ``input_name`` (``melt_000004``)."""
    return f"{input_name}_{int(index):06d}"


def frame_path(name, dataset=None):
    """``frames/<name>`` or ``frames/<name>/<dataset>``."""
    return f"{FRAMES}/{name}" + (f"/{dataset}" if dataset else "")


def summary_path(column=None):
    """``summary/frames`` (one row per frame) or one of its columns."""
    return SUMMARY_FRAMES + (f"/{column}" if column else "")


def overlap_path(column=None):
    """``summary/overlap`` (inputs x references x bandwidths) or one of its tables."""
    return SUMMARY_OVERLAP + (f"/{column}" if column else "")


def learning_curve_path(column=None):
    """``learning_curve`` or one of its datasets."""
    return LEARNING_CURVE + (f"/{column}" if column else "")


def analysis_path(table, column=None):
    """``analysis/<table>`` (``clusters``, ``nucleation``) or one of its columns."""
    return f"{ANALYSIS}/{table}" + (f"/{column}" if column else "")


def generations_path(column=None):
    """``generations`` (the report across generations) or one of its columns."""
    return GENERATIONS + (f"/{column}" if column else "")


def compression_path(column=None):
    """``compression`` (a compression report) or one of its datasets (``chosen/...``,
    ``curve/...``)."""
    return COMPRESSION + (f"/{column}" if column else "")


@dataclass
class FramePlan:
    """One frame of the campaign: where it comes from and how many atoms it has.

    Attributes
    ----------
    name : str
        Group name under ``/frames``.
    input : str
        Name of the input it belongs to.
    input_no : int
        Position of that input in the campaign.
    source_path : str
        File holding the frame.
    source_index : int
        Frame number within the input (over all files of a sequence).
    timestep : int
        LAMMPS timestep (-1 when the format has none).
    natoms : int
    """

    name: str
    input: str
    input_no: int
    source_path: str
    source_index: int
    timestep: int
    natoms: int


@dataclass
class StructurePlan:
    """Everything needed to create the whole file structure up front.

    Attributes
    ----------
    frames : list of FramePlan
    k : int
    cutoff : float
    bandwidths : list of float
    threshold : float
    references : list of dict
        ``name``, ``path``, ``sha256``, ``n_environments``, ``frames`` of each reference.
    inputs : list of str
        Input names, in campaign order.
    store : dict
        Per-atom datasets to create: ``delta_entropy``, ``descriptors``, ``positions``.
    entropy, diversity, overlap : bool
        Per-frame H / D columns; the per-input overlap table.
    learning_curve : dict or None
        ``sizes`` (list of int), ``repeats`` (int), ``dataset``, ``seed``, ``drop``.
    root_attrs : dict
        Extra root attributes (campaign text, fingerprints, versions ...).
    species : tuple of str or None
        The run's species (multi-element descriptors for several).
    type_maps : dict
        Input name -> its type map (recorded with species, for ``select`` to reread).
    """

    frames: list
    k: int
    cutoff: float
    bandwidths: list
    threshold: float = 0.0
    references: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    store: dict = field(default_factory=dict)
    entropy: bool = False
    diversity: bool = False
    overlap: bool = False
    learning_curve: dict = None
    root_attrs: dict = field(default_factory=dict)
    species: tuple = None
    type_maps: dict = field(default_factory=dict)

    @property
    def n_columns(self):
        """Columns of ``delta_entropy``: one per (reference, bandwidth)."""
        return len(self.references) * len(self.bandwidths)

    def dh_columns(self):
        """Labels of the ``delta_entropy`` columns, ``"<reference>@h=<h>"``."""
        return [f"{r['name']}@h={h:g}" for r in self.references for h in self.bandwidths]

    @property
    def descriptor_width(self):
        return descriptor_width(self.k, self.species)

    def frame_datasets(self, fp):
        """``{name: (shape, dtype)}`` of the per-atom datasets of frame ``fp``."""
        n = int(fp.natoms)
        out = {"id": ((n,), "i8")}
        m = self.n_columns
        if self.store.get("delta_entropy") and m:
            out["delta_entropy"] = (((n,) if m == 1 else (n, m)), "f8")
        if self.store.get("descriptors"):
            out["descriptors"] = ((n, self.descriptor_width), "f8")
        if self.store.get("positions"):
            out["position"] = ((n, 3), "f8")
            out["type"] = ((n,), "i4")
        return out


def software_versions():
    """Versions of quests-hpc, Python and the libraries the results depend on."""
    out = {"quests-hpc": __version__, "python": platform.python_version()}
    for mod in ("numpy", "numba", "h5py", "mpi4py", "ase", "yaml"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except ImportError:  # pragma: no cover - all are dependencies
            out[mod] = None
    try:
        import h5py

        out["hdf5"] = h5py.version.hdf5_version
        out["h5py_mpi"] = bool(h5py.get_config().mpi)
    except ImportError:  # pragma: no cover
        pass
    try:
        from mpi4py import MPI

        out["mpi"] = MPI.Get_library_version().strip().splitlines()[0]
    except Exception:
        out["mpi"] = None
    return out


def root_attributes(plan, mpi_size, writer):
    """Root attributes of a new file (identical on every rank: build on one, broadcast)."""
    refs = plan.references
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "k": int(plan.k),
        "cutoff": float(plan.cutoff),
        "bandwidths": np.asarray(plan.bandwidths, dtype=np.float64),
        "threshold": float(plan.threshold),
        "references": json.dumps(refs),
        "reference_names": json.dumps([r["name"] for r in refs]),
        "reference_paths": json.dumps([r["path"] for r in refs]),
        "reference_sha256": json.dumps([r["sha256"] for r in refs]),
        "input_names": json.dumps(list(plan.inputs)),
        "n_frames": len(plan.frames),
        "quests_hpc_version": __version__,
        "software": json.dumps(software_versions()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mpi_size": int(mpi_size),
        "writer": writer,
    }
    if plan.species is not None:  # files of one-element runs keep their attributes as before
        attrs["species"] = json.dumps(list(plan.species))
        attrs["descriptor_layout"] = layout_text(plan.k, plan.species)
        attrs["type_maps"] = json.dumps(plan.type_maps)
    attrs.update(plan.root_attrs)
    return attrs


def summary_columns(plan):
    """``{column: (shape, dtype, fill)}`` of ``/summary/frames``."""
    nf, nr, nh = len(plan.frames), len(plan.references), len(plan.bandwidths)
    cols = {
        "source_index": ((nf,), "i8", INT_FILL),
        "timestep": ((nf,), "i8", INT_FILL),
        "natoms": ((nf,), "i8", INT_FILL),
        "wall_time": ((nf,), "f8", FLOAT_FILL),
    }
    if nr and plan.store.get("delta_entropy", True):
        cols["n_novel"] = ((nf, nr, nh), "i8", INT_FILL)
        for c in ("novelty", "overlap", "dh_mean", "dh_min", "dh_max"):
            cols[c] = ((nf, nr, nh), "f8", FLOAT_FILL)
    if plan.entropy:
        cols["entropy"] = ((nf, nh), "f8", FLOAT_FILL)
    if plan.diversity:
        cols["diversity"] = ((nf, nh), "f8", FLOAT_FILL)
    return cols


def overlap_columns(plan):
    """``{column: (shape, dtype, fill)}`` of ``/summary/overlap`` (inputs x refs x h)."""
    shape = (len(plan.inputs), len(plan.references), len(plan.bandwidths))
    return {
        "n_atoms": (shape, "i8", INT_FILL),
        "n_novel": (shape, "i8", INT_FILL),
        "novelty": (shape, "f8", FLOAT_FILL),
        "overlap": (shape, "f8", FLOAT_FILL),
    }


def learning_curve_columns(plan):
    """``{column: (shape, dtype, fill)}`` of ``/learning_curve``."""
    lc = plan.learning_curve
    ns, nh, rep = len(lc["sizes"]), len(plan.bandwidths), int(lc["repeats"])
    return {
        "sizes": ((ns,), "i8", INT_FILL),
        "entropy": ((nh, ns, rep), "f8", FLOAT_FILL),
        "mean": ((nh, ns), "f8", FLOAT_FILL),
        "std": ((nh, ns), "f8", FLOAT_FILL),
        "fit": ((nh, 3), "f8", FLOAT_FILL),
        "fit_rmse": ((nh,), "f8", FLOAT_FILL),
        "information_gap": ((nh, ns), "f8", FLOAT_FILL),
    }
