"""Reading frames from, and writing analysis results into, a quests-hpc results file.

The adapter between the analyses and :mod:`quests_hpc.results` (layout in
``docs/results-layout.md``): every rank reads its even slab of a frame's ``id`` /
``delta_entropy`` rows; positions come from the frame's ``position`` dataset when the
campaign stored them, else from the frame's source dump (read in parallel with
:class:`quests_hpc.parallel.dump_reader.ParallelDump`).  Writing goes through
:class:`quests_hpc.results.ResultsWriter` (parallel HDF5 or through rank 0).

Everything taking ``comm`` is collective.
"""

import numpy as np

from ..errors import QuestsInputError
from ..parallel.comm import allreduce, even_bounds, raise_if_any
from ..parallel.dump_reader import ParallelDump
from ..results import ResultsWriter
from ..results import layout as L
from ..results.reader import complete_frames, open_results
from .common import lookup_by_id


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def dh_columns(f, name):
    """Labels of the ``delta_entropy`` columns of frame ``name`` (``ref@h=...``)."""
    ds = f[L.frame_path(name, "delta_entropy")]
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
    with open_results(path) as f:
        names = complete_frames(f)
        if frames is not None:
            missing = [n for n in frames if n not in names]
            if missing:
                raise QuestsInputError(f"{path}: frame(s) not complete or absent: {missing}")
            names = list(frames)
        with_dh = [n for n in names if "delta_entropy" in f[L.frame_path(n)]]
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
    rank, size = comm.rank, comm.size
    err, out = None, None
    try:
        with open_results(path) as f:
            g = f[L.frame_path(name)]
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
    raise_if_any(err, comm)
    has_pos = allreduce(int(out["positions"] is not None or out["natoms"] == 0), "sum", comm)
    if has_pos != size:
        _positions_from_source(path, name, out, comm)
    return out


def _positions_from_source(path, name, share, comm):
    """Fill ``share["positions"]`` (and types) from the frame's source dump (collective)."""
    src = share["source_path"]
    if not src:
        raise QuestsInputError(f"{path}: frame {name} stores no positions and no source file")
    with ParallelDump(src, comm) as dump:
        sel = (dump.select(f"t={share['timestep']}") if share["timestep"] >= 0 else [])
        idx = int(sel[0]) if len(sel) == 1 else share["source_index"]
        fr = dump.read(idx)
    if fr.natoms != share["natoms"]:
        raise QuestsInputError(f"{src}: frame {idx} has {fr.natoms} atoms, the results file "
                               f"{share['natoms']} (frame {name}); the dump changed?")
    same = np.array_equal(fr.ids, share["ids"])
    if allreduce(int(same), "sum", comm) == comm.size:
        share["positions"] = fr.positions
        if share["types"] is None and fr.types is not None:
            share["types"] = fr.types.astype(np.int64)
        return
    share["positions"] = np.stack([lookup_by_id(comm, fr.ids, np.ascontiguousarray(
        fr.positions[:, a]), share["ids"]) for a in range(3)], axis=1)
    if share["types"] is None and allreduce(int(fr.types is not None), "sum", comm) == comm.size:
        share["types"] = lookup_by_id(comm, fr.ids, fr.types.astype(np.int64), share["ids"])


def open_writer(path, comm, backend="auto"):
    """A :class:`~quests_hpc.results.ResultsWriter` on an existing results file."""
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


def write_frame_labels(path, name, share, labels, comm, backend, attrs):
    """Per-atom ``labels`` of this rank's share into ``frames/<name>/cluster`` (collective)."""
    w = open_writer(path, comm, backend)
    try:
        n = share["natoms"]

        def make(f):
            ds = replace_dataset(f[L.frame_path(name)], L.CLUSTER_DATASET, (n,), "i8")
            for k, v in attrs.items():
                ds.attrs[k] = v

        on_file(w, make)
        w.write_slab(L.frame_path(name, L.CLUSTER_DATASET), labels.astype(np.int64),
                     offset=share["first"])
        w.flush()
    finally:
        w.close()


def read_frame_labels(path, name, share):
    """This rank's share of ``frames/<name>/cluster``; None when the frame has none."""
    key = L.frame_path(name, L.CLUSTER_DATASET)
    with open_results(path) as f:
        if key not in f:
            return None
        n = len(share["ids"])
        return f[key][share["first"]:share["first"] + n].astype(np.int64)


def write_analysis_table(path, table, columns, attrs, comm, backend):
    """Replace ``/analysis/<table>`` by ``columns`` (equal-length arrays) and ``attrs``,
    marked ``complete`` (collective)."""
    w = open_writer(path, comm, backend)
    try:
        def make(f):
            g = f.require_group(L.ANALYSIS)
            if table in g:
                del g[table]
            t = g.create_group(table)
            for k, v in columns.items():
                v = np.asarray(v)
                t.create_dataset(k, data=v.astype("S") if v.dtype.kind == "U" else v)
            for k, v in attrs.items():
                t.attrs[k] = v
            t.attrs["complete"] = True
            f.flush()

        on_file(w, make)
    finally:
        w.close()


def read_analysis_table(path, table):
    """Columns of ``/analysis/<table>`` as a dict (plus ``attrs``); None if absent."""
    with open_results(path) as f:
        key = L.analysis_path(table)
        if key not in f:
            return None
        g = f[key]
        out = {k: g[k][()] for k in g}
        out["attrs"] = {k: _text(v) if isinstance(v, bytes) else v for k, v in g.attrs.items()}
    if "frame" in out:
        out["frame"] = np.array([_text(v) for v in out["frame"]])
    return out


def summed_histogram(clusters, rows):
    """Cluster-size histogram of the frames at positions ``rows`` of a clusters table.

    Returns
    -------
    sizes, counts : ndarray of int64
        Distinct sizes (ascending) and how many clusters of each size those frames hold.
    """
    off = clusters["hist_offsets"]
    sizes = np.concatenate([clusters["hist_sizes"][off[i]:off[i + 1]] for i in rows]
                           + [np.empty(0, np.int64)])
    counts = np.concatenate([clusters["hist_counts"][off[i]:off[i + 1]] for i in rows]
                            + [np.empty(0, np.int64)])
    if len(sizes) == 0:
        return sizes.astype(np.int64), counts.astype(np.int64)
    u, inv = np.unique(sizes, return_inverse=True)
    return u, np.bincount(inv.reshape(-1), weights=counts).astype(np.int64)
