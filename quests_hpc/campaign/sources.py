"""Inputs of a campaign: frames of LAMMPS dumps or ASE-readable files, as pipeline rows.

This is the one adapter between the campaign driver and the readers:

* LAMMPS dumps go through :class:`quests_hpc.parallel.dump_reader.ParallelDump` (each
  rank parses its byte range; the rows go straight to the ranks owning them in the
  frame pipeline's decomposition);
* anything else ASE reads is read on rank 0 (ASE is serial), sorted by id (the ``id``
  array when the file has one, else 1..n in file order); the pipeline sends the rows to
  their owners.

:meth:`InputSource.read_rows` is what :func:`quests_hpc.parallel.frame_pipeline.run_frame`
reads a frame with.  All functions taking ``comm`` are collective.
"""

import os

import numpy as np

from ..errors import QuestsInputError
from ..geometry import MAX_FRACTIONAL, complete_cell, fractional, wrap_positions
from ..io.compressed import regular_file_problem
from ..parallel import comm as pcomm
from ..parallel.frame_pipeline import DumpSource, FrameRows

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_DUMP_HINTS = (".lammpstrj", ".dump", ".lammps-dump", ".lmp-dump")


def detect_format(path, declared="auto"):
    """``"lammps-dump"``, ``"descriptors"`` (an HDF5 results file) or ``"ase"``."""
    if declared != "auto":
        return declared
    p = str(path)
    try:
        with open(p, "rb") as f:
            if f.read(8) == _HDF5_MAGIC:
                return "descriptors"
    except OSError:
        pass
    from ..io.compressed import compression_of

    base = os.path.basename(p).lower()
    comp = compression_of(base)
    if comp:
        base = base[: -len(comp) - 1]
    if base.startswith("dump.") or any(base.endswith(s) for s in _DUMP_HINTS):
        return "lammps-dump"
    try:  # content: a dump starts with "ITEM:"
        from ..io.compressed import open_source

        with open_source(p) as src:
            head = src.read_at(0, 256).lstrip()
        if head.startswith(b"ITEM:"):
            return "lammps-dump"
    except Exception:
        pass
    return "ase"


class InputSource:
    """One input (a file, a glob or a list of files) opened for the campaign (collective).

    Built from a :class:`~quests_hpc.campaign.model.Source` (an input or reference entry)
    and the communicator.

    Attributes
    ----------
    name : str
    files : list of str
    format : {"lammps-dump", "ase"}
    timesteps : ndarray of int64
        Per frame (-1 where the format has none).
    natoms : ndarray of int64
        Per frame.
    frame_file : list of str
        The file holding each frame.
    """

    def __init__(self, spec, comm):
        self.comm = comm
        self.name = spec.name
        paths = list(spec.paths)
        for p in paths:  # before anything opens it: opening a FIFO waits for a writer
            if not (any(c in str(p) for c in "*?[") and not os.path.exists(p)):
                problem = regular_file_problem(p)
                if problem:
                    raise QuestsInputError(f"{p}: {problem}")
        self.format = detect_format(paths[0], spec.format)
        self.type_map = spec.type_map_plain()
        self.ase_format = spec.ase_format
        self._dump = None
        self._atoms = None
        if self.format == "lammps-dump":
            from ..parallel.dump_reader import ParallelDump

            path = paths if len(paths) > 1 else paths[0]
            self._dump = ParallelDump(path, comm, type_map=self.type_map)
            self.files = list(self._dump.files)
            self.timesteps = np.asarray(self._dump.timesteps, dtype=np.int64)
            self.natoms = np.asarray(self._dump.natoms, dtype=np.int64)
            self.frame_file = [f for f, ix in zip(self.files, self._dump.indices)
                               for _ in range(len(ix))]
        elif self.format == "ase":
            self.files = _expand(paths)
            meta, err = None, None
            if comm.rank == 0:
                try:
                    self._atoms, frame_file = _read_ase(self.files, self.ase_format)
                    meta = ([len(a) for a in self._atoms], frame_file)
                except QuestsInputError as exc:
                    err = exc
            pcomm.raise_if_any(err, comm, prefix=False, root=0)
            counts, self.frame_file = pcomm.bcast(meta, comm)
            self.natoms = np.asarray(counts, dtype=np.int64)
            self.timesteps = np.full(len(counts), -1, dtype=np.int64)
        else:
            raise QuestsInputError(f"{paths[0]}: format {self.format!r} cannot be an input "
                                   "(inputs need atoms)")

    def __len__(self):
        return len(self.natoms)

    def select(self, selection):
        """Frame numbers selected by ``selection`` (see :mod:`quests_hpc.io.selection`)."""
        from ..io.selection import select_frames

        ts = self.timesteps if (self.timesteps >= 0).all() else None
        sel = select_frames(selection, len(self), ts, "index", self.files[0])
        out, seen = [], set()
        for i in sel.tolist():  # a frame selected twice is processed once
            if i not in seen:
                seen.add(i)
                out.append(i)
        if self._dump is not None:  # a malformed header or count never sizes the output
            self._dump.check_readable(out)
        return out

    def unnamed_elements(self, sel, species):
        """The refusal of a run with ``species`` whose selected dump frames name no elements
        (no ``element`` column, no type map), or None; this rank only, headers only."""
        if species is None or self._dump is None or self.type_map is not None or not sel:
            return None
        i = int(sel[0])
        cols = self._dump.header(i, first_of_file=True).columns
        if cols is not None and "element" in cols:
            return None
        return (f"{self.where(i)}: the atoms' elements are not named (columns "
                f"{' '.join(cols or ['?'])}: no `element` column) and there is no type map; "
                f"give `type_map` (--type-map 1=Ni,2=Al) for the species {list(species)}")

    @property
    def dump(self):
        """The :class:`~quests_hpc.parallel.dump_reader.ParallelDump` behind a LAMMPS-dump input,
        None for inputs read by ASE."""
        return self._dump

    def read_rows(self, comm, i, owner=None):
        """This rank's rows of frame ``i`` for the frame pipeline (collective).

        A LAMMPS dump is parsed in parallel and its rows go straight to the ranks that
        ``owner`` names (:func:`quests_hpc.parallel.frame_pipeline.route`): one exchange.
        An ASE frame is read on rank 0 (ASE is serial), which holds every row; the
        pipeline then sends them to their owners.

        Returns
        -------
        quests_hpc.parallel.frame_pipeline.FrameRows
        """
        if self._dump is not None:
            return DumpSource(self._dump).read_rows(comm, i, owner)
        where = self.where(i)
        meta, err = None, None
        arrays = (np.empty(0, np.int64), np.empty((0, 3)), np.empty(0, np.int32),
                  np.empty(0, "<U2"))
        if comm.rank == 0:
            try:
                arrays, meta = _ase_frame(self._atoms[int(i)], where)
            except QuestsInputError as exc:  # rank 0's error must reach every rank
                err = exc
        pcomm.raise_if_any(err, comm, prefix=False)
        cell, pbc, ts, n = pcomm.bcast(meta, comm)
        return FrameRows(arrays[0], arrays[1], arrays[2], np.asarray(cell, dtype=float),
                         np.asarray(pbc, dtype=bool), ts, n, where, routed=False,
                         elements=arrays[3])

    def atoms(self, i):
        """The ASE ``Atoms`` of frame ``i`` (rank 0 of an ASE input only)."""
        return self._atoms[int(i)]

    def where(self, i):
        """``"<file>, frame <k> (timestep <t>)"`` of frame ``i`` (``k`` counted in its file)."""
        if self._dump is not None:
            return self._dump.where(int(i))
        f = self.frame_file[int(i)]
        k = int(i) - self.frame_file.index(f)
        ts = int(self.timesteps[int(i)])
        return f"{f}, frame {k}" + (f" (timestep {ts})" if ts >= 0 else "")

    def close(self):
        if self._dump is not None:
            self._dump.close()
        self._atoms = None


def _ase_frame(a, where):
    """Id-sorted ``(ids, wrapped positions, numbers, symbols)`` and ``(cell, pbc, timestep, n)`` of
    one ASE frame (rank 0); a non-finite coordinate or cell, or a coordinate too far out
    to wrap, is refused naming the atom."""
    ids = np.asarray(a.arrays["id"], dtype=np.int64) if "id" in a.arrays \
        else np.arange(1, len(a) + 1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    pos = a.get_positions()[order]

    def who(row):
        return f"atom id {int(ids[row])}" if "id" in a.arrays else \
            f"atom {int(ids[row])} (counting from 1)"

    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if len(bad):
        raise QuestsInputError(f"{where}: {who(bad[0])}: position "
                               f"{pos[bad[0]].tolist()} is not finite ({len(bad)} such atom(s))")
    if a.pbc.any():
        try:
            cell = complete_cell(a.cell.array, a.pbc)
        except QuestsInputError as exc:
            raise QuestsInputError(f"{where}: {exc}") from None
        far = np.flatnonzero((np.abs(fractional(pos, cell)) > MAX_FRACTIONAL)[:, a.pbc].any(axis=1))
        if len(far):
            raise QuestsInputError(
                f"{where}: {who(far[0])}: position {pos[far[0]].tolist()} lies more "
                f"than 2**20 cell lengths outside the periodic cell: wrapping it back would lose "
                f"its position to rounding ({len(far)} such atom(s))")
        pos = wrap_positions(pos, cell, a.pbc)
    arrays = (ids, pos, a.numbers[order].astype(np.int32),
              np.array(a.get_chemical_symbols())[order])
    return arrays, (a.cell.array.copy(), a.pbc.copy(), int(a.info.get("timestep", -1)), len(a))


def _expand(paths):
    from ..io.lammps_dump import expand_paths

    out = []
    for p in paths:
        out.extend(expand_paths(p))
    return out


def _read_ase(files, fmt=None):
    """All frames of ``files`` with ASE (rank 0); returns (atoms list, file of each frame)."""
    from ase.io import read

    frames, where = [], []
    for f in files:
        try:
            got = read(f, index=":", format=fmt, parallel=False)  # ASE must not bcast
        except Exception as exc:
            raise QuestsInputError(f"{f}: ASE cannot read it ({type(exc).__name__}: {exc}); "
                                   "set `format` / `ase_format` if the type is not "
                                   "recognised") from None
        got = got if isinstance(got, list) else [got]
        frames.extend(got)
        where.extend([f] * len(got))
    if not frames:
        raise QuestsInputError(f"{files[0]}: no frames")
    for k, a in enumerate(frames):
        if len(a) == 0:
            raise QuestsInputError(f"{where[k]}: frame {k} has no atoms")
    return frames, where
