"""Reading frames from, and writing analysis results into, a quests-hpc results file.

The adapter between the analyses and :mod:`quests_hpc.results` (layout in
``docs/results-layout.md``): every rank reads its even slab of a frame's ``id`` /
``delta_entropy`` rows; positions come from the frame's ``position`` dataset when the
campaign stored them, else from the frame's source dump (read in parallel with
:func:`quests_hpc.io.read_lammps_dump`).  Writing goes through
:class:`quests_hpc.results.ResultsWriter` (parallel HDF5 or through rank 0).

Everything taking ``comm`` is collective.
"""

import json

import numpy as np

from ..errors import QuestsInputError
from ..parallel.comm import even_bounds
from .common import lookup_by_id

ANALYSIS_GROUP = "analysis"


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def dh_columns(f, name):
    """Labels of the ``delta_entropy`` columns of frame ``name`` (``ref@h=...``)."""
    ds = f["frames"][name]["delta_entropy"]
    cols = ds.attrs.get("columns")
    if cols is None:
        return [f"column {j}" for j in range(1 if ds.ndim == 1 else ds.shape[1])]
    return [_text(c) for c in np.atleast_1d(cols)]


def resolve_column(columns, column, path=""):
    """Index of the dH column chosen by ``column`` (None: 0; int; label or reference name)."""
    if column is None:
        return 0
    if isinstance(column, (int, np.integer)) and not isinstance(column, bool):
        if not 0 <= column < len(columns):
            raise QuestsInputError(f"{path}: dH column {column} out of range; columns: "
                                   f"{columns}")
        return int(column)
    c = str(column)
    for j, name in enumerate(columns):
        if name == c or name.split("@")[0] == c:
            return j
    raise QuestsInputError(f"{path}: no dH column {c!r}; columns: {columns}")


def analysed_frames(path, frames=None):
    """Complete frames of a results file that hold dH (rank-independent; call anywhere).

    Raises
    ------
    QuestsInputError
        When the file is not a results file, or no complete frame holds dH.
    """
    from ..results.reader import complete_frames, open_results

    with open_results(path) as f:
        names = complete_frames(f)
        if frames is not None:
            missing = [n for n in frames if n not in names]
            if missing:
                raise QuestsInputError(f"{path}: frame(s) not complete or absent: {missing}")
            names = list(frames)
        with_dh = [n for n in names if "delta_entropy" in f["frames"][n]]
    if not names:
        raise QuestsInputError(f"{path}: no complete frame to analyse")
    if not with_dh:
        raise QuestsInputError(
            f"{path}: the frames hold no dH (delta_entropy): the campaign computed no dH; "
            "give it a reference and measures.delta_entropy: true")
    if len(with_dh) != len(names):
        raise QuestsInputError(f"{path}: frame(s) without dH: "
                               f"{[n for n in names if n not in with_dh]}")
    return names


def read_frame_share(path, name, comm, column=None):
    """This rank's share of frame ``name``: ids, positions, dH (one column), metadata.

    Parameters
    ----------
    path : str
    name : str
        Frame group under ``/frames``.
    comm : mpi4py.MPI.Comm
    column : int or str, optional
        dH column (index, label ``ref@h=..``, or reference name); default the first.

    Returns
    -------
    dict
        ``ids``, ``positions``, ``dh``, ``types`` (or None) of this rank's share;
        ``first`` (its first row in the frame), ``natoms``, ``cell``, ``pbc``,
        ``timestep``, ``column`` (label), ``source_path``, ``source_index``.
    """
    from ..results.reader import open_results

    rank, size = comm.rank, comm.size
    err, out = None, None
    try:
        with open_results(path) as f:
            g = f["frames"][name]
            n = int(g["id"].shape[0])
            b = even_bounds(n, size)
            lo, hi = int(b[rank]), int(b[rank + 1])
            cols = dh_columns(f, name)
            j = resolve_column(cols, column, path)
            ds = g["delta_entropy"]
            dh = ds[lo:hi] if ds.ndim == 1 else ds[lo:hi, j]
            out = {
                "ids": g["id"][lo:hi].astype(np.int64), "dh": np.asarray(dh, np.float64),
                "positions": g["position"][lo:hi] if "position" in g else None,
                "types": g["type"][lo:hi].astype(np.int64) if "type" in g else None,
                "first": lo, "natoms": n, "cell": np.asarray(g.attrs["cell"], np.float64),
                "pbc": np.asarray(g.attrs["pbc"], bool), "timestep": int(g.attrs["timestep"]),
                "column": cols[j], "source_path": _text(g.attrs.get("source_path", "")),
                "source_index": int(g.attrs.get("source_index", -1)),
            }
    except QuestsInputError as exc:
        err = exc
    from ..parallel.comm import raise_if_any

    raise_if_any(err, comm)
    has_pos = comm.allreduce(out["positions"] is not None or out["natoms"] == 0)
    if has_pos != size:
        _positions_from_source(path, name, out, comm)
    return out


def _positions_from_source(path, name, share, comm):
    """Fill ``share["positions"]`` (and types) from the frame's source dump (collective)."""
    from ..io import LammpsDump

    src = share["source_path"]
    if not src:
        raise QuestsInputError(f"{path}: frame {name} stores no positions and no source file")
    with LammpsDump(src, comm=comm) as dump:
        sel = (dump.select(f"t={share['timestep']}") if share["timestep"] >= 0 else [])
        idx = int(sel[0]) if len(sel) == 1 else share["source_index"]
        fr = dump.read(idx)
    if fr.natoms != share["natoms"]:
        raise QuestsInputError(f"{src}: frame {idx} has {fr.natoms} atoms, the results file "
                               f"{share['natoms']} (frame {name}); the dump changed?")
    same = np.array_equal(fr.ids, share["ids"])
    if comm.allreduce(int(same)) == comm.size:
        share["positions"] = fr.positions
        if share["types"] is None and fr.types is not None:
            share["types"] = fr.types.astype(np.int64)
        return
    share["positions"] = np.stack([lookup_by_id(comm, fr.ids, np.ascontiguousarray(
        fr.positions[:, a]), share["ids"]) for a in range(3)], axis=1)
    if share["types"] is None and comm.allreduce(int(fr.types is not None)) == comm.size:
        share["types"] = lookup_by_id(comm, fr.ids, fr.types.astype(np.int64), share["ids"])


def open_writer(path, comm, backend="auto"):
    """A :class:`~quests_hpc.results.ResultsWriter` on an existing results file."""
    from ..results import ResultsWriter

    return ResultsWriter.open(path, comm, backend=backend, mode="a")


def on_file(writer, fn):
    """Run ``fn(h5py.File)`` where the writer holds the file (collective).

    With the ``mpio`` back end every rank runs it (structure changes must be identical
    on all ranks); with ``gather``, rank 0.  Errors are raised on every rank.
    """
    return writer._on_writer(fn)  # the writer's one entry point for new objects


def replace_dataset(group, name, shape, dtype, data=None):
    """Create ``group[name]`` (deleting an older one); contiguous, allocated now."""
    if name in group:
        del group[name]
    if data is not None:
        return group.create_dataset(name, data=data)
    return group.create_dataset(name, shape=shape, dtype=dtype)


def write_json_attr(obj, key, value):
    """Store a dict or list as a JSON string attribute."""
    obj.attrs[key] = json.dumps(value)
