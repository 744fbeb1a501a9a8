"""What ``quests-hpc select`` reads: the dH results file and the frames it was computed from.

:func:`read_plan` (serial, rank 0) reads the file's parameters (k, cutoff, bandwidths,
threshold, references) and, for every selected complete frame, where it came from
(``source_path``, ``source_index``, ``timestep``, ``natoms``, the content hash of its
bytes).  :func:`open_frame_source` finds that frame again in the input (the recorded
path, or ``--input``) and checks it is the same one (atom count, content hash where the
file keeps one); :func:`read_dh_block` reads this rank's block of the frame's dH, in the
id order of the pipeline's output, and refuses atom ids that differ from the file's.
"""

import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..species import descriptor_width


@dataclass
class FrameSpec:
    """A frame of the results file and where it came from."""

    name: str
    input: str
    source_path: str
    source_index: int
    timestep: int
    natoms: int
    sha: str


@dataclass
class SelectPlan:
    """Parameters of a selection, read from the results file (same on every rank)."""

    path: str
    k: int
    cutoff: float
    bandwidth: float
    columns: list
    reference_text: str
    threshold: float
    types_are_numbers: bool = False
    radius: float = None
    box: float = None
    species: tuple = None
    type_maps: dict = None

    @property
    def width(self):
        return descriptor_width(self.k, self.species)


def _species_attr(attrs):
    """The species a results file was computed with (None: one element)."""
    got = json.loads(_text(attrs["species"])) if "species" in attrs else None
    return tuple(got) if got else None


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _bandwidth_index(bandwidths, bandwidth, path):
    if bandwidth is None:
        return 0
    hits = np.flatnonzero(np.isclose(bandwidths, float(bandwidth), rtol=1e-9, atol=0))
    if len(hits) == 0:
        raise QuestsInputError(f"--bandwidth {bandwidth:g}: {path} holds dH at h = "
                               f"{[float(h) for h in bandwidths]} 1/A only (the selection "
                               "starts from the stored dH)")
    return int(hits[0])


def read_plan(path, frames="all", bandwidth=None, input_path=None):
    """The :class:`SelectPlan` and the :class:`FrameSpec` of every selected frame (serial).

    ``frames`` selects among the file's complete frames (SEL syntax, by position).

    Raises
    ------
    QuestsInputError
        Not a results file, no complete frame with dH, a bandwidth the file lacks, a bad
        selection.
    """
    from ..analysis.results_io import analysed_frames, dh_columns
    from ..io.reference import is_lammps_dump
    from ..io.selection import select_frames
    from ..results import layout as L
    from ..results.reader import open_results

    names = analysed_frames(path)
    with open_results(path) as f:
        a = f.attrs
        hs = np.atleast_1d(np.asarray(a["bandwidths"], dtype=np.float64))
        refs = json.loads(_text(a.get("references", "[]")))
        b = _bandwidth_index(hs, bandwidth, path)
        n_cols = len(dh_columns(f, names[0]))
        if n_cols != max(len(refs), 1) * len(hs):
            raise QuestsInputError(f"{path}: {n_cols} dH column(s) for {len(refs)} "
                                   f"reference(s) and {len(hs)} bandwidth(s)")
        sel = select_frames(frames, len(names), where=path)
        specs = []
        for i in sel.tolist():
            g = f[L.frame_path(names[i])]
            specs.append(FrameSpec(
                name=names[i], input=_text(g.attrs.get("input", "")),
                source_path=_text(g.attrs.get("source_path", "")),
                source_index=int(g.attrs.get("source_index", -1)),
                timestep=int(g.attrs.get("timestep", -1)), natoms=int(g.attrs["natoms"]),
                sha=_text(g.attrs.get(L.FRAME_HASH_ATTR, b"")).strip()))
        plan = SelectPlan(path=str(path), k=int(a["k"]), cutoff=float(a["cutoff"]),
                          bandwidth=float(hs[b]),
                          columns=[r * len(hs) + b for r in range(max(len(refs), 1))],
                          reference_text=", ".join(r.get("name", "?") for r in refs)
                          or "no reference recorded", threshold=float(a.get("threshold", 0.0)),
                          species=_species_attr(a), type_maps=json.loads(a.get("type_maps",
                                                                                "{}")))
    if not specs:
        raise QuestsInputError(f"{path}: the frame selection {frames!r} selects no frame")
    first = input_path or specs[0].source_path
    plan.types_are_numbers = bool(first) and not is_lammps_dump(first)
    return plan, specs


def _missing_input(comm, path, plan, fp):
    """Refuse an input that is not there (rank 0 looks; collective)."""
    err = None
    if comm.rank == 0:
        glob = any(ch in path for ch in "*?[")
        if not path:
            err = QuestsInputError(f"{plan.path}: frame {fp.name} records no input file; "
                                   "give it with --input")
        elif not glob and not os.path.exists(path):
            err = QuestsInputError(
                f"{path}: no such file: the input of frame {fp.name} of {plan.path} (where "
                "the results file says it was); give its new place with --input")
    pcomm.raise_if_any(err, comm, prefix=False, root=0)


def open_frame_source(comm, plan, fp, input_path=None):
    """A pipeline source holding frame ``fp``, its index there, and a close function.

    The frame is found in the input by its timestep (else its recorded index) and
    checked against the results file: atom count, and the content hash of its bytes
    where both sides have one (collective).
    """
    from ..io.reference import is_lammps_dump
    from ..parallel.dump_reader import ParallelDump
    from ..parallel.frame_pipeline import DumpSource

    path = input_path or fp.source_path
    _missing_input(comm, path, plan, fp)
    if not is_lammps_dump(path):
        return _ase_source(comm, path, plan, fp), 0, lambda: None
    dump = ParallelDump(path, comm, type_map=(plan.type_maps or {}).get(fp.input))
    try:
        idx = _frame_in_dump(dump, path, plan, fp)
        _same_content(comm, dump, idx, path, plan, fp)
    except BaseException:
        dump.close()
        raise
    return DumpSource(dump), idx, dump.close


def _mismatch(path, where, plan, fp, what):
    return QuestsInputError(
        f"{path}: {where} does not match frame {fp.name} of {plan.path} ({what}); it is not "
        "the frame the results were computed from: give the right dump with --input")


def _frame_in_dump(dump, path, plan, fp):
    """Index of frame ``fp`` in the dump (same on every rank; no communication)."""
    n = len(dump)
    hits = []
    if fp.timestep >= 0:
        try:
            hits = [int(i) for i in dump.select(f"t={fp.timestep}")]
        except QuestsInputError:  # no such timestep
            hits = []
    if hits:
        idx = fp.source_index if fp.source_index in hits else hits[0]
    elif fp.timestep < 0 and 0 <= fp.source_index < n:
        idx = fp.source_index
    else:
        raise QuestsInputError(
            f"{path}: no frame with timestep {fp.timestep} ({n} frames): frame {fp.name} of "
            f"{plan.path} was computed from one; give the right dump with --input")
    natoms = int(dump.header(idx).natoms)
    if natoms != fp.natoms:
        raise _mismatch(path, dump.where(idx), plan, fp,
                        f"{natoms} atoms, the results file {fp.natoms}")
    return idx


def _same_content(comm, dump, idx, path, plan, fp):
    """Compare the frame's bytes with the hash in the results file (collective)."""
    from ..results.restart import frame_hash

    rng = dump.byte_range(idx)
    if not fp.sha or rng is None:
        return
    if frame_hash(comm, *rng) != fp.sha:
        raise _mismatch(path, dump.where(idx), plan, fp, "its content hash differs: the "
                        "positions changed")


def _ase_source(comm, path, plan, fp):
    """A frame of a file ASE reads, as an :class:`ArraySource` (rank 0 holds its rows)."""
    from ..parallel.frame_pipeline import ArraySource

    err, meta = None, None
    rows = (np.empty(0, np.int64), np.empty((0, 3)), np.empty(0, np.int32), np.empty(0, "<U2"))
    if comm.rank == 0:
        try:
            from ase.io import read

            a = read(path, index=max(fp.source_index, 0), parallel=False)
            if len(a) != fp.natoms:
                raise _mismatch(path, f"frame {fp.source_index}", plan, fp,
                                f"{len(a)} atoms, the results file {fp.natoms}")
            ids = np.asarray(a.arrays["id"], np.int64) if "id" in a.arrays else \
                np.arange(1, len(a) + 1, dtype=np.int64)
            rows = (ids, a.get_positions(), a.numbers.astype(np.int32),
                    np.array(a.get_chemical_symbols()))
            meta = (a.cell.array.copy(), a.pbc.copy())
        except QuestsInputError as exc:
            err = exc
        except Exception as exc:  # noqa: BLE001 - any ASE failure is bad input here
            err = QuestsInputError(f"{path}: ASE cannot read frame {fp.source_index} "
                                   f"({type(exc).__name__}: {exc})")
    pcomm.raise_if_any(err, comm, prefix=False, root=0)
    cell, pbc = pcomm.bcast(meta, comm, root=0)
    return ArraySource(rows[0], rows[1], cell, pbc, types=rows[2], where=f"{path}",
                       elements=rows[3])


def read_dh_block(comm, plan, fp, out):
    """This rank's ids and dH (references combined) of frame ``fp``, checked against the
    pipeline's output block ``out`` (the same rows of the id-sorted frame; collective)."""
    from ..results import layout as L
    from ..results.reader import open_results

    lo, hi = (int(v) for v in pcomm.even_bounds(fp.natoms, comm.size)[comm.rank:comm.rank + 2])
    with open_results(plan.path) as f:
        g = f[L.frame_path(fp.name)]
        ids = g["id"][lo:hi].astype(np.int64)
        ds = g["delta_entropy"]
        dh = np.asarray(ds[lo:hi] if ds.ndim == 1 else ds[lo:hi][:, plan.columns], np.float64)
    same = int(out.natoms == fp.natoms and np.array_equal(out.ids, ids))
    if int(pcomm.allreduce(np.array([same], np.int64), "min", comm)[0]) == 0:
        raise _mismatch(out.where or fp.source_path, "the frame's atom ids", plan, fp,
                        "other atom ids")
    if dh.ndim == 2:  # the union of the references: log S = logsumexp_r(-dH_r)
        dh = -np.logaddexp.reduce(-dh, axis=1)
    return ids, dh
