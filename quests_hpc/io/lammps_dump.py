"""LAMMPS text dumps (``dump atom`` / ``dump custom``): serial and MPI-parallel reading.

Quick use::

    from quests_hpc.io import read_lammps_dump, iread_lammps_dump, LammpsDump

    frame = read_lammps_dump("dump.lammpstrj")              # last frame
    frames = read_lammps_dump("dump.lammpstrj.gz", "0:100:5")
    for f in iread_lammps_dump("dump.*.lammpstrj", "t=1000:5000"):  # by timestep
        ...
    with LammpsDump("big.lammpstrj", comm=MPI.COMM_WORLD) as dump:  # every rank
        f = dump.read(-1)         # this rank's share: f.ids, f.positions, ...

What is read (see :mod:`.lammps_header` for the format): every box style (orthogonal,
restricted triclinic ``xy xz yz``, general triclinic ``abc origin``), boundary flags ->
``pbc``, coordinates ``x`` / ``xs`` / ``xu`` / ``xsu`` (preferred in that order; scaled
ones converted; positions wrapped into the cell along periodic axes unless
``wrap=False``), ``id`` / ``type`` / ``element`` and any extra column asked for.
Atoms always come out sorted by id.  A dump without ``id`` numbers its atoms by their
position in the frame (1, 2, ...).

Parallel reading (``comm`` with several ranks; every call is then collective):

* plain files -- each rank reads and parses only its byte range of the frame's atom
  lines (split at line boundaries), then the atoms go to their owners: by default
  rank ``r`` gets atoms ``[r*N//P, (r+1)*N//P)`` of the frame sorted by id; an ``owner``
  callable can impose another map (the MPI pipeline's spatial decomposition).  No rank
  ever holds the whole frame, nor more text than one chunk (``chunk_bytes``).  When the
  ids are ``1..N`` (the LAMMPS default) and come first on the line, each rank stores
  the rows it will own directly at their final place while parsing and sends only the
  others; any other numbering is detected and the frame parsed again in file order
  (then remembered for the file).  The same placement makes serial reads skip the sort.
* compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``) -- decompression is serial:
  rank 0 decompresses and deals chunks of whole lines round-robin to all ranks, which
  parse them in parallel; then the same ownership step.  The frame index of a
  compressed file is built by rank 0 in one decompression pass.

The frame index (:mod:`.frame_index`) is built once, cached and revalidated by size,
modification time and a content fingerprint (a frame that fails to parse with a cached
index is read again after a rescan).  A truncated last frame (file still being written) is
left out with a :class:`DumpWarning`; a truncated frame elsewhere, a wrong atom count, a
malformed header (a count or timestep that is not an integer in [0, 2**63), a box that is
not finite, has ``hi <= lo`` or a left-handed general triclinic cell), a malformed line, a
NaN/inf coordinate, a coordinate more than 2**20 box lengths out along a periodic axis
(:data:`quests_hpc.geometry.MAX_FRACTIONAL`), missing coordinate columns or duplicate ids
raise :class:`~quests_hpc.errors.QuestsInputError` naming the file, the frame (index and
timestep) and the line or atom id -- on every rank of an MPI read, with the same message.
Selecting a frame whose header or count is bad fails at once (:meth:`LammpsDump.select`).
Files that are not dumps (empty, binary, other text) and paths that are not regular files
(directories, FIFOs, devices) are refused when opened.
"""

import glob
import os
import re
import time
import warnings

import numpy as np

from ..errors import QuestsInputError
from ..geometry import MAX_FRACTIONAL
from ..parallel import comm as pcomm
from . import _kernels as K
from .atoms_block import (DEFAULT_CHUNK, Rows, id_locality, line_start_after, locate_atom_line,
                          parse_range, stream_parse)
from .compressed import open_source, regular_file_problem
from .frame import Frame, decode_codes, map_types, normalize_type_map
from .frame_index import BAD_HEADER, SHORT, get_index
from .lammps_header import DumpWarning, column_plan, old_style_columns, parse_header
from .ownership import (even_split_by_id, exchange_placed, local_id_range, send_to_owners,
                        sort_by_id)
from .selection import is_single, select_frames

_SMALL_FILE = 4 << 20  # files below this size are indexed without a cache file
_MIN_LOCALITY = 0.5  # place rows by id only when half the consecutive ids are close


def expand_paths(path):
    """The files of ``path``: one file, a list, or a glob (``dump.*.lammpstrj``).

    Glob matches are sorted naturally (``dump.2`` before ``dump.10``).
    """
    if isinstance(path, (list, tuple)):
        return [str(p) for p in path]
    path = str(path)
    if any(c in path for c in "*?[") and not os.path.exists(path):
        files = glob.glob(path)
        if not files:
            raise QuestsInputError(f"{path}: no file matches")

        def key(p):
            return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)]

        files = sorted(files, key=key)
    else:
        files = [path]
    for f in files:
        problem = regular_file_problem(f)
        if problem:
            raise QuestsInputError(f"{f}: {problem}")
    return files


class LammpsDump:
    """An opened LAMMPS text dump (one file, a list of files or a glob pattern).

    Parameters
    ----------
    path : str, os.PathLike or list
        Dump file(s); a pattern like ``dump.*.lammpstrj`` is expanded and sorted
        naturally; frames of all files are numbered in that order.
    comm : mpi4py communicator, optional
        Read in parallel over this communicator (every method is then collective).
    columns : sequence of str or "all"
        Extra per-atom columns to return in ``Frame.arrays``.
    type_map : dict, sequence or str, optional
        LAMMPS type -> element (``{1: "Cu"}``, ``["Cu", "Ni"]`` or ``"Cu Ni"``); used
        when the dump has no ``element`` column.
    wrap : bool
        Wrap positions into the cell along periodic axes (default True).
    cache : {"auto", "beside", "user"} or False
        Where to cache frame indices (see :func:`.frame_index.cache_path`); files under
        4 MiB are rescanned instead (cheaper than a cache file).
    rebuild_index : bool
        Ignore cached indices.
    chunk_bytes : int
        Bytes of text a rank reads (or receives) at a time.
    """

    def __init__(self, path, comm=None, columns=(), type_map=None, wrap=True, cache="auto",
                 rebuild_index=False, chunk_bytes=DEFAULT_CHUNK):
        self.comm = comm
        self.columns = columns
        self.type_map = normalize_type_map(type_map)
        self.wrap = wrap
        self.chunk_bytes = int(chunk_bytes)
        err, files = None, None
        if pcomm.rank_size(comm)[0] == 0:
            try:
                files = expand_paths(path)
            except QuestsInputError as exc:
                err = exc
        pcomm.raise_if_any(err, comm)
        self.files = pcomm.bcast(files, comm)
        self._src = {}
        self._place = {}
        self.timings = {}
        self.indices = []
        self._cache = cache
        rank = pcomm.rank_size(comm)[0]
        for fno, f in enumerate(self.files):
            src = self._source(fno)
            # what is plainly not a dump is refused before the whole file is scanned
            pcomm.raise_if_any(_error_of(check_head, src) if rank == 0 else None, comm,
                               prefix=False)
            small = os.path.getsize(f) < _SMALL_FILE
            ix = get_index(src, comm, cache=False if small else cache, rebuild=rebuild_index)
            pcomm.raise_if_any(_error_of(check_is_dump, src, ix) if rank == 0 else None, comm,
                               prefix=False)
            self.indices.append(ix)
        self._index_changed()
        if pcomm.rank_size(comm)[0] == 0:
            for ix in self.indices:
                t = ix.truncated_tail
                if t:
                    what = (f"{t['nlines']} of {t['natoms']} atom lines" if t.get("natoms") is not None
                            else "header cut short")
                    ts = t.get("timestep")
                    warnings.warn(f"{ix.path}: last frame (timestep {ts if ts is not None else '?'}, "
                                  f"line {t['line']}) is incomplete ({what}); it is left out "
                                  "(file still being written?)", DumpWarning, stacklevel=2)

    # -------------------------------------------------------------- bookkeeping
    def _source(self, fno):
        src = self._src.get(fno)
        if src is None:
            for other in list(self._src):
                self._src.pop(other).close()
            src = self._src[fno] = open_source(self.files[fno])
        return src

    def __len__(self):
        return len(self.timesteps)

    def __repr__(self):
        return f"LammpsDump({self.files[0] if len(self.files) == 1 else self.files!r}, {len(self)} frames)"

    def close(self):
        for k in list(self._src):
            self._src.pop(k).close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def select(self, selection=":", by="index"):
        """Frame numbers selected (see :mod:`.selection`).

        Raises :class:`~quests_hpc.errors.QuestsInputError` when a selected frame cannot
        be read (see :meth:`check_readable`), before any frame is read.
        """
        where = self.files[0] if len(self.files) == 1 else self.files[0] + " ..."
        sel = select_frames(selection, len(self), self.timesteps, by, where)
        self.check_readable(sel)
        return sel

    def check_readable(self, frames):
        """Raise for the first of ``frames`` whose header is malformed or that has fewer
        atom lines than its ``NUMBER OF ATOMS`` (known from the index, nothing is read).

        Callers that size outputs by :attr:`natoms` call this first: a malformed count
        (or one that the file cannot hold) must never size anything.
        """
        for i in frames:
            i = int(i)
            fno, k = int(self._file_of[i]), int(self._local[i])
            if self.indices[fno].status[k] in (BAD_HEADER, SHORT):
                self._header_status_error(fno, k, self.where(i))

    def where(self, i):
        fno, k = int(self._file_of[i]), int(self._local[i])
        ix = self.indices[fno]
        extra = f"; frame {i} of the sequence" if len(self.files) > 1 else ""
        ts = int(ix.timestep[k])
        return f"{ix.path}, frame {k} (timestep {ts if ts >= 0 else '?'}{extra})"

    def header(self, i, first_of_file=False):
        """The parsed header of frame ``i`` (this rank alone, no atoms read); with
        ``first_of_file`` the header of the first frame of ``i``'s file instead (no long
        seek into a compressed stream)."""
        fno, k = int(self._file_of[i]), int(self._local[i])
        hdr, _ = self._header(fno, 0 if first_of_file else k, self.where(i))
        return hdr

    def byte_range(self, i):
        """``(file, start, end)`` of frame ``i``'s bytes, or None in a compressed file."""
        fno, k = int(self._file_of[i]), int(self._local[i])
        ix = self.indices[fno]
        return None if ix.compressed else (self.files[fno], int(ix.start[k]), int(ix.end[k]))

    # ------------------------------------------------------------------ reading
    def iread(self, selection=":", by="index", owner=None):
        """Yield the selected frames (collective over ``comm``)."""
        for i in self.select(selection, by):
            yield self.read(int(i), owner=owner)

    def __iter__(self):
        return self.iread()

    def read(self, i, owner=None):
        """Read frame ``i`` (negative counts from the end); collective over ``comm``.

        Parameters
        ----------
        i : int
        owner : callable, optional
            MPI only: ``owner(header, ids, positions) -> dest`` (int array, one rank per
            atom, called on every rank with its parsed atoms, wrapped Cartesian
            positions); default: even split of the id-sorted frame.

        Returns
        -------
        Frame
            Serially the whole frame; in an MPI read, this rank's share.

        Notes
        -----
        When a frame read with a *cached* index is malformed, the index is first rebuilt
        from the file (the cache may be stale: a file rewritten with the same size and
        time stamp whose fingerprint samples did not change): the error is reported only
        if the fresh index gives it too.
        """
        n = len(self)
        if not -n <= i < n:
            raise QuestsInputError(f"{self.files[0]}: frame index {i} out of range ({n} frames)")
        i %= n
        fno = int(self._file_of[i])
        try:
            return self._read(i, owner)
        except QuestsInputError as exc:  # raised on every rank alike: the retry is collective
            if not self.indices[fno].from_cache:
                raise
            err = exc
        k = int(self._local[i])
        old = self.indices[fno]
        new = get_index(self._source(fno), self.comm, cache=self._cache, rebuild=True)
        if _same_index(old, new):
            raise err
        self.indices[fno] = new
        self._index_changed()
        if k < len(new) and all(int(getattr(new, f)[k]) == int(getattr(old, f)[k])
                                for f in ("timestep", "natoms")):
            return self._read(i, owner)  # the same frame, found where it now is
        raise QuestsInputError(
            f"{old.where(k)}: the cached frame index of {old.path} was stale (the file was "
            f"rewritten keeping its size and modification time) and has been rebuilt: "
            f"{len(old)} -> {len(new)} frames, and this frame is no longer the one selected; "
            "open the dump again (rerun)") from None

    def _index_changed(self):
        counts = [len(ix) for ix in self.indices]
        self._file_of = np.repeat(np.arange(len(counts)), counts)
        self._local = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int)
        self.timesteps = (np.concatenate([ix.timestep for ix in self.indices])
                          if counts else np.zeros(0, np.int64))
        self.natoms = (np.concatenate([ix.natoms for ix in self.indices])
                       if counts else np.zeros(0, np.int64))

    def _read(self, i, owner):
        t0 = time.perf_counter()
        comm = self.comm
        rank, size = pcomm.rank_size(comm)
        fno, k = int(self._file_of[i]), int(self._local[i])
        ix = self.indices[fno]
        where = self.where(i)
        d0, d1 = int(ix.data[k]), int(ix.end[k])
        natoms, data_line = int(ix.natoms[k]), int(ix.data_line[k])

        # 1. header and column plan: every rank reads the (small) header of a plain file
        #    itself (same bytes, same result, same error: no collective needed); for a
        #    compressed file rank 0 reads it and broadcasts
        if not ix.compressed or size == 1:
            with warnings.catch_warnings():
                if rank != 0:
                    warnings.simplefilter("ignore", DumpWarning)  # warn once, on rank 0
                hdr, plan = self._header(fno, k, where)
        else:
            err, meta = None, None
            if rank == 0:
                try:
                    meta = self._header(fno, k, where)
                except Exception as exc:  # reported on every rank, never a hang
                    err = exc
            pcomm.raise_if_any(err, comm)
            hdr, plan = pcomm.bcast(meta, comm)

        t1 = time.perf_counter()
        # 2. parse this rank's atom lines.  Plain files with ids in the first column try
        #    *placement*: rows of the ids this rank will own (LAMMPS ids are usually
        #    1..N) go straight to their final row, the others to an outgoing block; a
        #    miss anywhere (sparse ids) makes every rank parse again in file order, and
        #    the file is read in file order from then on.
        stream = size > 1 and ix.compressed
        bounds = pcomm.even_bounds(natoms, size)
        placing = (not stream and owner is None and natoms > 0 and plan.kinds[0] == K.ID
                   and self._place.get(fno, True))
        if stream:
            rows = Rows(plan, min(natoms, natoms // size * 5 // 4 + 1024))
            lines, perr = stream_parse(self._source(fno) if rank == 0 else None, d0, d1, plan,
                                        rows, natoms, comm, self.chunk_bytes)
            res = dict(rows=rows, out=None, lines=lines, perr=perr, placed=False, count=rows.n)
        else:
            src = self._source(fno)
            lo = line_start_after(src, d0 + (d1 - d0) * rank // size, d0, d1)
            hi = line_start_after(src, d0 + (d1 - d0) * (rank + 1) // size, d0, d1)
            if placing:
                # placement pays when consecutive lines have nearby ids; decided together
                local = id_locality(src, lo, hi, plan) >= _MIN_LOCALITY
                placing = bool(pcomm.allreduce(np.int64(local), "min", comm))
            res = self._parse_range(src, lo, hi, plan, natoms, size, bounds, rank, placing)
            if placing:
                if not all(pcomm.allgather(res["placed"], comm)):
                    self._place[fno] = False
                    res = self._parse_range(src, lo, hi, plan, natoms, size, bounds, rank, False)
        rows, placed = res["rows"], res["placed"]

        t2 = time.perf_counter()
        # 3. errors and the atom count, on every rank
        idr = local_id_range(rows.ids[:rows.n]) if plan.has_id and not placed else None
        info = pcomm.allgather((res["count"], res["lines"], res["perr"], idr), comm)
        offsets = np.zeros(size, dtype=np.int64) if stream else \
            np.concatenate([[0], np.cumsum([t[1] for t in info])[:-1]])
        for r, (_, _, e, _) in enumerate(info):
            if e is not None and e[0] is None:
                raise QuestsInputError(f"{where}: {e[1]}")
            if e is not None:
                raise QuestsInputError(f"{where}, line {data_line + int(offsets[r]) + e[0]}: {e[1]}")
        total = sum(t[0] for t in info)
        if total != natoms:
            raise QuestsInputError(f"{where}: NUMBER OF ATOMS is {natoms} but {total} atom lines "
                                   f"follow (from line {data_line})")
        lines_are_rows = not stream and sum(t[1] for t in info) == total

        # 4. ids of dumps without an id column; 5. ownership, order and coordinates
        t3 = time.perf_counter()
        sub = {}
        first = int(bounds[rank])
        if placed:
            cols = rows.columns()
            out = res.pop("out")
            out_cols = out.columns()  # the only references left: freed as they are sent
            del out, res, rows
            if size > 1:
                exchange_placed(cols, out_cols, int(bounds[rank]) + 1, natoms, comm, where, sub)
            del out_cols
            pcomm.raise_if_any(self._far_atom(cols, hdr, plan, fno, k, where), comm,
                               prefix=False)
            _to_cartesian(cols["pos"], hdr, plan, self.wrap)
        else:
            cols = rows.columns()
            del res, rows
            if not plan.has_id:
                cols["ids"] += int(offsets[rank]) + 1
            pcomm.raise_if_any(self._far_atom(cols, hdr, plan, fno, k, where), comm,
                               prefix=False)
            _to_cartesian(cols["pos"], hdr, plan, self.wrap)
            if size == 1:
                sort_by_id(cols, where, data_line, lines_are_rows)
            elif owner is None:
                id_range = None
                if plan.has_id:
                    id_range = (min(t[3][0] for t in info), max(t[3][1] for t in info))
                cols, first = even_split_by_id(cols, natoms, comm, where, sub, id_range)
            else:
                err, dest = None, None
                try:
                    dest = np.asarray(owner(hdr, cols["ids"], cols["pos"]), dtype=np.int64)
                    if dest.shape != cols["ids"].shape:
                        raise QuestsInputError(f"owner returned shape {dest.shape}, expected "
                                               f"{cols['ids'].shape}")
                except Exception as exc:  # an owner hook failing on one rank must not hang
                    err = exc
                pcomm.raise_if_any(err, comm)
                cols = send_to_owners(cols, dest, comm, where)
                first = -1
        frame, err = None, None
        try:
            frame = self._frame(cols, hdr, plan, i, fno, where, first)
        except QuestsInputError as exc:  # e.g. a type missing from the type map on one rank
            err = exc
        pcomm.raise_if_any(err, comm, prefix=False)
        t4 = time.perf_counter()
        self.timings = dict(header=t1 - t0, parse=t2 - t1, check=t3 - t2, ownership=t4 - t3,
                            total=t4 - t0, placed=placed)
        self.timings.update({f"ownership.{k}": v for k, v in sub.items()})
        return frame

    def _far_atom(self, cols, hdr, plan, fno, k, where):
        """The error for the first atom here too far outside the periodic box to be wrapped
        (see :data:`quests_hpc.geometry.MAX_FRACTIONAL`), or None."""
        pbc = np.asarray(hdr.pbc, dtype=np.bool_)
        pos = cols["pos"]
        if not pbc.any() or not len(pos):
            return None
        cell = np.asarray(hdr.cell, dtype=float)
        row, axis, f = K.first_far_atom(pos, np.asarray(hdr.origin, dtype=float), np.linalg.inv(cell),
                                        pbc, plan.scaled, MAX_FRACTIONAL)
        if row < 0:
            return None
        ix = self.indices[fno]
        atom = int(cols["ids"][row])
        line = locate_atom_line(self._source(fno), int(ix.data[k]), int(ix.end[k]), plan, atom)
        at = f", line {int(ix.data_line[k]) + line}" if line is not None else ""
        value = ", ".join(f"{c} = {v!r}" for c, v in zip(plan.coords, pos[row].tolist()))
        return QuestsInputError(
            f"{where}{at}: atom {'id ' if plan.has_id else ''}{atom}: {value} is {abs(f):.3g} box "
            f"lengths out along the periodic axis {'xyz'[axis]}; expected at most 2**20 = 1048576 "
            "(further out, wrapping it into the box loses its position to rounding)")

    def _parse_range(self, src, lo, hi, plan, natoms, size, bounds, rank, placing):
        """Parse bytes ``[lo, hi)`` (placement or file order); never raises."""
        out = None
        if placing:
            own_lo, own_hi = int(bounds[rank]) + 1, int(bounds[rank + 1]) + 1
            rows = Rows(plan, own_hi - own_lo, zero_ids=True)
            # rows for other ranks: at most a quarter of the share (memory), else the
            # frame is parsed again in file order
            out_cap = min(natoms - (own_hi - own_lo), (hi - lo) // plan.min_line_bytes + 1,
                          (own_hi - own_lo) // 4 + 4096)
            out = Rows(plan, out_cap)
            place = (own_lo, own_hi, 1, natoms + 1)
            max_rows = natoms
        else:
            cap = natoms if size == 1 else min(natoms, (hi - lo) // plan.min_line_bytes + 1)
            rows = Rows(plan, cap)
            place = None
            max_rows = cap
        try:
            lines, perr, placed, count = parse_range(src, lo, hi, plan, rows, max_rows,
                                                     self.chunk_bytes, place=place, out=out)
        except QuestsInputError as exc:
            lines, perr, placed, count = 0, (None, str(exc)), False, 0
        except Exception as exc:  # e.g. MemoryError: reported on every rank
            lines, perr, placed, count = 0, (None, f"{type(exc).__name__}: {exc}"), False, 0
        if placed:
            rows.n = rows.cap
        return dict(rows=rows, out=out, lines=lines, perr=perr, placed=placed, count=count)

    def _header_status_error(self, fno, k, where):
        ix = self.indices[fno]
        if ix.status[k] == BAD_HEADER:
            raise QuestsInputError(f"{where}: {ix.errors.get(k, 'malformed header')}")
        if ix.status[k] == SHORT:
            n, nl, dl = int(ix.natoms[k]), int(ix.nlines[k]), int(ix.data_line[k])
            lines = f"lines {dl}-{dl + nl - 1}" if nl else f"none from line {dl}"
            raise QuestsInputError(
                f"{where}: truncated frame: NUMBER OF ATOMS is {n} but only {nl} atom lines "
                f"follow ({lines}); expected {n} lines before the next ITEM: TIMESTEP")

    def _header(self, fno, k, where):
        ix = self.indices[fno]
        self._header_status_error(fno, k, where)
        src = self._source(fno)
        start, data = int(ix.start[k]), int(ix.data[k])
        raw = src.read_at(start, data - start)
        hdr = parse_header(raw, where, first_line=int(ix.line[k]))
        if hdr.units is None:
            hdr.units = ix.units
        columns = hdr.columns
        data_line = int(ix.data_line[k])
        if columns is None:
            first = src.read_at(data, 1 << 12).split(b"\n", 1)[0].decode("ascii", "replace")
            columns = old_style_columns(first, where, data_line)
            hdr.columns = columns
        plan = column_plan(columns, self.columns, where, data_line - 1)
        return hdr, plan

    def _frame(self, cols, hdr, plan, i, fno, where, first):
        arrays = {}
        if "fext" in cols:
            for j, name in enumerate(plan.float_names):
                arrays[name] = cols["fext"][:, j]
        if "iext" in cols:
            for j, name in enumerate(plan.int_names):
                arrays[name] = cols["iext"][:, j]
        elements = None
        if "sext" in cols:
            for j, name in enumerate(plan.str_names):
                strings = decode_codes(cols["sext"][:, j])
                if j == plan.element_slot:
                    elements = strings
                else:
                    arrays[name] = strings
        types = cols.get("types")
        if elements is None and self.type_map is not None and types is not None:
            elements = map_types(types, self.type_map, where)
        return Frame(timestep=hdr.timestep, natoms=hdr.natoms, cell=hdr.cell, origin=hdr.origin,
                     pbc=hdr.pbc, ids=cols["ids"], positions=cols["pos"], types=types,
                     elements=elements, arrays=arrays, columns=tuple(plan.columns), first=first,
                     index=i, source=self.files[fno], units=hdr.units, time=hdr.time,
                     boundary=hdr.boundary, box_style=hdr.box_style)


def _same_index(a, b):
    return len(a) == len(b) and all(np.array_equal(a.arrays()[f], b.arrays()[f])
                                    for f in a.arrays()) and a.errors == b.errors


def _error_of(check, *args):
    """The QuestsInputError ``check(*args)`` raises, or None."""
    try:
        check(*args)
    except QuestsInputError as exc:
        return exc
    return None


def check_head(src):
    """Refuse a file whose first non-blank line is not an ``ITEM:`` line, from its first
    4 KiB (an empty file is left to :func:`check_is_dump`)."""
    head = src.read_at(0, 4096)
    text = head.lstrip()
    if text and not text.startswith(b"ITEM:"):
        raise QuestsInputError(f"{src.path}: not a LAMMPS text dump: {_first_line(head)}")


def check_is_dump(src, ix):
    """Refuse a file that is not a LAMMPS text dump: empty, binary, other text, or text
    before its first ``ITEM:`` line (``ix`` is its frame index)."""
    first = int(ix.start[0]) if len(ix) else (ix.truncated_tail or {}).get("start")
    if first is None:
        head = src.read_at(0, 4096)
        if not head and getattr(src, "truncated", False):
            return  # a compressed stream cut short before its first line: still being written
        if not head:
            raise QuestsInputError(f"{src.path}: empty file; expected a LAMMPS text dump "
                                   "(frames starting with ITEM: TIMESTEP)")
        raise QuestsInputError(f"{src.path}: not a LAMMPS text dump: no line 'ITEM: TIMESTEP' "
                               f"in it; {_first_line(head)}")
    if first > 0:
        lead = src.read_at(0, min(first, 4096))
        if lead.strip() or first > 4096:
            raise QuestsInputError(f"{src.path}: not a LAMMPS text dump before its first frame "
                                   f"(line {ix.line[0] if len(ix) else '?'}): "
                                   f"{_first_line(lead)}")


def _first_line(head):
    """``line 1 is '...'`` or ``it is binary data`` for a message."""
    text = head.lstrip()
    n_lead = head[:len(head) - len(text)].count(b"\n")
    line = text.split(b"\n", 1)[0][:60]
    if b"\0" in head or sum(c < 9 or 13 < c < 32 or c > 126 for c in head[:512]) > 8:
        return "it holds binary data"
    return (f"line {n_lead + 1} is {line.decode('ascii', 'replace')!r}, expected ITEM: TIMESTEP "
            "(or ITEM: UNITS / ITEM: TIME)")


def _to_cartesian(pos, hdr, plan, wrap):
    """Scaled -> Cartesian, then wrap along periodic axes (in place)."""
    pbc = np.asarray(hdr.pbc, dtype=np.bool_)
    if plan.scaled:
        K.scaled_to_cartesian_inplace(pos, hdr.origin, hdr.cell, pbc if wrap else np.zeros(3, bool))
    elif wrap and pbc.any() and len(pos):
        cell = np.asarray(hdr.cell, dtype=float)
        if np.count_nonzero(cell - np.diag(np.diag(cell))) == 0:
            K.wrap_ortho_inplace(pos, hdr.origin, np.diag(cell).copy(), pbc)
        else:
            K.wrap_inplace(pos, hdr.origin, cell, np.linalg.inv(cell), pbc)


def read_lammps_dump(path, index=-1, *, by="index", comm=None, owner=None, **kwargs):
    """Read one frame or a selection of frames of a LAMMPS text dump.

    Parameters
    ----------
    path : str, os.PathLike or list
        A dump (plain or compressed), a list of dumps or a glob pattern.
    index : int, str, slice or sequence
        Frame selection (:mod:`.selection`): ``-1`` (default, the last frame), ``"all"``,
        ``"0:100:5"``, ``"3,5,8"``, ``"t=1000"`` (by timestep) ...
    by : {"index", "timestep"}
    comm : mpi4py communicator, optional
        Parallel read (collective); each rank gets its share of every frame.
    owner : callable, optional
        See :meth:`LammpsDump.read`.
    **kwargs
        ``columns``, ``type_map``, ``wrap``, ``cache``, ``rebuild_index``,
        ``chunk_bytes`` (see :class:`LammpsDump`).

    Returns
    -------
    Frame or list of Frame
        A single frame when ``index`` names one frame (an int or one number), else a list.
    """
    with LammpsDump(path, comm=comm, **kwargs) as dump:
        sel = dump.select(index, by)
        frames = [dump.read(int(i), owner=owner) for i in sel]
    if is_single(index):
        if not frames:
            raise QuestsInputError(f"{path}: no frame selected by {index!r}")
        return frames[0]
    return frames


def iread_lammps_dump(path, index=":", *, by="index", comm=None, owner=None, **kwargs):
    """Iterate over the selected frames (one frame in memory at a time).

    Same parameters as :func:`read_lammps_dump`.
    """
    with LammpsDump(path, comm=comm, **kwargs) as dump:
        for i in dump.select(index, by):
            yield dump.read(int(i), owner=owner)
