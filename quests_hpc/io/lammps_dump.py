"""LAMMPS text dumps (``dump atom`` / ``dump custom``): serial reading.

Quick use::

    from quests_hpc.io import read_lammps_dump, iread_lammps_dump, LammpsDump

    frame = read_lammps_dump("dump.lammpstrj")              # last frame
    frames = read_lammps_dump("dump.lammpstrj.gz", "0:100:5")
    for f in iread_lammps_dump("dump.*.lammpstrj", "t=1000:5000"):  # by timestep
        ...
    with LammpsDump("big.lammpstrj") as dump:
        f = dump.read(-1)         # f.ids, f.positions, ...

What is read (see :mod:`.lammps_header` for the format): every box style (orthogonal,
restricted triclinic ``xy xz yz``, general triclinic ``abc origin``), boundary flags ->
``pbc``, coordinates ``x`` / ``xs`` / ``xu`` / ``xsu`` (preferred in that order; scaled
ones converted; positions wrapped into the cell along periodic axes unless
``wrap=False``), ``id`` / ``type`` / ``element`` and any extra column asked for.
Atoms always come out sorted by id.  A dump without ``id`` numbers its atoms by their
position in the frame (1, 2, ...).  When the ids are ``1..N`` (the LAMMPS default) and
come first on the line, rows are stored at their final place while parsing
(*placement*: no sort); any other numbering is detected and the frame parsed again in
file order (then remembered for the file).

This module reads serially and knows nothing of ranks.  The MPI-parallel reader,
:class:`quests_hpc.parallel.dump_reader.ParallelDump` (every rank parses a byte range of
the frame, the atoms then go to their owner ranks), is built on the primitives of
:class:`LammpsDump`: :meth:`~LammpsDump.spot`, :meth:`~LammpsDump.frame_header`,
:meth:`~LammpsDump.share_bytes`, :meth:`~LammpsDump.parse_share`,
:func:`check_row_counts`, :meth:`~LammpsDump.far_atom`, :meth:`~LammpsDump.to_cartesian`,
:meth:`~LammpsDump.make_frame` -- none of them communicates, all report input errors as
:class:`~quests_hpc.errors.QuestsInputError` (returned or raised).

The frame index (:mod:`.frame_index`) is built once, cached and revalidated by size,
modification time and a content fingerprint (a frame that fails to parse with a cached
index is read again after a rescan).  A truncated last frame (file still being written) is
left out with a :class:`DumpWarning`; a truncated frame elsewhere, a wrong atom count, a
malformed header (a count or timestep that is not an integer in [0, 2**63), a box that is
not finite, has ``hi <= lo`` or a left-handed general triclinic cell), a malformed line, a
NaN/inf coordinate, a coordinate more than 2**20 box lengths out along a periodic axis
(:data:`quests_hpc.geometry.MAX_FRACTIONAL`), missing coordinate columns or duplicate ids
raise :class:`~quests_hpc.errors.QuestsInputError` naming the file, the frame (index and
timestep) and the line or atom id.
Selecting a frame whose header or count is bad fails at once (:meth:`LammpsDump.select`).
Files that are not dumps (empty, binary, other text) and paths that are not regular files
(directories, FIFOs, devices) are refused when opened.
"""

import glob
import os
import re
import time
import warnings
from typing import NamedTuple

import numpy as np

from ..errors import QuestsInputError
from ..geometry import MAX_FRACTIONAL
from . import _kernels as K
from .atoms_block import (DEFAULT_CHUNK, Rows, id_locality, line_start_after, locate_atom_line,
                          parse_range)
from .compressed import open_source, regular_file_problem
from .frame import Frame, decode_codes, map_types, normalize_type_map
from .frame_index import BAD_HEADER, SHORT, get_index
from .id_order import sort_by_id
from .lammps_header import DumpWarning, column_plan, old_style_columns, parse_header
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


class FrameSpot(NamedTuple):
    """Where frame ``i`` of a :class:`LammpsDump` is (see :meth:`LammpsDump.spot`)."""
    i: int          # frame number in the whole sequence
    fno: int        # file number
    k: int          # frame number within the file
    where: str      # "file, frame k (timestep t)" for messages
    d0: int         # byte offset of the first atom line
    d1: int         # end of the atom lines
    natoms: int     # NUMBER OF ATOMS
    data_line: int  # line number of the first atom line
    compressed: bool


def even_bounds(n, size):
    """``b[r] = r * n // size`` for ``r = 0 .. size`` (an even split of ``n`` rows)."""
    return np.array([r * int(n) // size for r in range(size + 1)], dtype=np.int64)


class LammpsDump:
    """An opened LAMMPS text dump (one file, a list of files or a glob pattern), read serially.

    Parameters
    ----------
    path : str, os.PathLike or list
        Dump file(s); a pattern like ``dump.*.lammpstrj`` is expanded and sorted
        naturally; frames of all files are numbered in that order.
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
        Bytes of text read at a time.

    For an MPI-parallel read use :class:`quests_hpc.parallel.dump_reader.ParallelDump`.
    """

    def __init__(self, path, columns=(), type_map=None, wrap=True, cache="auto",
                 rebuild_index=False, chunk_bytes=DEFAULT_CHUNK):
        self._setup(columns, type_map, wrap, cache, chunk_bytes)
        self.files = expand_paths(path)
        for fno in range(len(self.files)):
            src = self._source(fno)
            check_head(src)  # what is plainly not a dump is refused before a whole scan
            ix = get_index(src, cache=self.index_cache(fno), rebuild=rebuild_index)
            check_is_dump(src, ix)
            self.indices.append(ix)
        self._index_changed()
        self.warn_truncated()

    def _setup(self, columns, type_map, wrap, cache, chunk_bytes):
        """The options and empty state (shared with the parallel reader)."""
        self.columns = columns
        self.type_map = normalize_type_map(type_map)
        self.wrap = wrap
        self.chunk_bytes = int(chunk_bytes)
        self._src = {}
        self._place = {}
        self.timings = {}
        self.indices = []
        self._cache = cache

    def index_cache(self, fno):
        """The ``cache`` argument for file ``fno``'s index (False for small files)."""
        return False if os.path.getsize(self.files[fno]) < _SMALL_FILE else self._cache

    def warn_truncated(self):
        """One :class:`DumpWarning` per file whose last frame is incomplete."""
        for ix in self.indices:
            t = ix.truncated_tail
            if t:
                what = (f"{t['nlines']} of {t['natoms']} atom lines" if t.get("natoms") is not None
                        else "header cut short")
                ts = t.get("timestep")
                warnings.warn(f"{ix.path}: last frame (timestep {ts if ts is not None else '?'}, "
                              f"line {t['line']}) is incomplete ({what}); it is left out "
                              "(file still being written?)", DumpWarning, stacklevel=3)

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
        files = self.files[0] if len(self.files) == 1 else self.files
        return f"{type(self).__name__}({files!r}, {len(self)} frames)"

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
    def iread(self, selection=":", by="index"):
        """Yield the selected frames."""
        for i in self.select(selection, by):
            yield self.read(int(i))

    def __iter__(self):
        return self.iread()

    def read(self, i):
        """Read frame ``i`` (negative counts from the end): the whole frame, a :class:`Frame`.

        When a frame read with a *cached* index is malformed, the index is first rebuilt
        from the file (the cache may be stale: a file rewritten with the same size and
        time stamp whose fingerprint samples did not change): the error is reported only
        if the fresh index gives it too.
        """
        return self._read_retrying(i, self._read)

    def _read_retrying(self, i, read):
        """``read(i)`` (``i`` checked, made non-negative); on an input error with a cached
        index, the index is rebuilt (:meth:`_rebuild_index`) and the frame read again."""
        n = len(self)
        if not -n <= i < n:
            raise QuestsInputError(f"{self.files[0]}: frame index {i} out of range ({n} frames)")
        i %= n
        fno = int(self._file_of[i])
        try:
            return read(i)
        except QuestsInputError as exc:  # in an MPI read raised on every rank alike
            if not self.indices[fno].from_cache:
                raise
            err = exc
        k = int(self._local[i])
        old = self.indices[fno]
        new = self._rebuild_index(fno)
        if _same_index(old, new):
            raise err
        self.indices[fno] = new
        self._index_changed()
        if k < len(new) and all(int(getattr(new, f)[k]) == int(getattr(old, f)[k])
                                for f in ("timestep", "natoms")):
            return read(i)  # the same frame, found where it now is
        raise QuestsInputError(
            f"{old.where(k)}: the cached frame index of {old.path} was stale (the file was "
            f"rewritten keeping its size and modification time) and has been rebuilt: "
            f"{len(old)} -> {len(new)} frames, and this frame is no longer the one selected; "
            "open the dump again (rerun)") from None

    def _rebuild_index(self, fno):
        return get_index(self._source(fno), cache=self._cache, rebuild=True)

    def _index_changed(self):
        counts = [len(ix) for ix in self.indices]
        self._file_of = np.repeat(np.arange(len(counts)), counts)
        self._local = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int)
        self.timesteps = (np.concatenate([ix.timestep for ix in self.indices])
                          if counts else np.zeros(0, np.int64))
        self.natoms = (np.concatenate([ix.natoms for ix in self.indices])
                       if counts else np.zeros(0, np.int64))

    def _read(self, i):
        """Serial read of frame ``i`` (non-negative)."""
        t0 = time.perf_counter()
        s = self.spot(i)
        hdr, plan = self.frame_header(s)
        t1 = time.perf_counter()
        placing = self.can_place(s, plan)
        lo, hi = s.d0, s.d1
        bounds = even_bounds(s.natoms, 1)
        if placing:
            placing = self.locality_ok(s, plan, lo, hi)
        res = self.parse_share(s, plan, lo, hi, bounds, 0, placing)
        if placing and not res["placed"]:
            self._place[s.fno] = False
            res = self.parse_share(s, plan, lo, hi, bounds, 0, False)
        rows, placed = res["rows"], res["placed"]
        t2 = time.perf_counter()
        offsets = check_row_counts(s, [share_info(res)])
        lines_are_rows = res["lines"] == res["count"]
        t3 = time.perf_counter()
        cols = rows.columns()
        del res, rows
        if not placed and not plan.has_id:
            cols["ids"] += int(offsets[0]) + 1
        err = self.far_atom(cols, hdr, plan, s)
        if err is not None:
            raise err
        self.to_cartesian(cols["pos"], hdr, plan)
        if not placed:
            sort_by_id(cols, s.where, s.data_line, lines_are_rows)
        frame = self.make_frame(cols, hdr, plan, s, 0)
        t4 = time.perf_counter()
        self.timings = dict(header=t1 - t0, parse=t2 - t1, check=t3 - t2, ownership=t4 - t3,
                            total=t4 - t0, placed=placed)
        return frame

    # --------------------------------------------- primitives (also of the parallel reader)
    def spot(self, i):
        """The :class:`FrameSpot` of frame ``i`` (non-negative)."""
        fno, k = int(self._file_of[i]), int(self._local[i])
        ix = self.indices[fno]
        return FrameSpot(i, fno, k, self.where(i), int(ix.data[k]), int(ix.end[k]),
                         int(ix.natoms[k]), int(ix.data_line[k]), bool(ix.compressed))

    def frame_header(self, s):
        """``(header, column plan)`` of the frame at spot ``s`` (raises on a bad header)."""
        return self._header(s.fno, s.k, s.where)

    def can_place(self, s, plan):
        """Placement may be tried: a plain file, ids in the first column, not yet refuted."""
        return (not s.compressed and s.natoms > 0 and plan.kinds[0] == K.ID
                and self._place.get(s.fno, True))

    def no_placement(self, fno):
        """Remember that file ``fno``'s ids are not ``1..N`` in a placeable order."""
        self._place[fno] = False

    def share_bytes(self, s, share, nshares):
        """Byte range ``[lo, hi)`` of share ``share`` of ``nshares`` of the frame's atom
        lines, cut at line starts."""
        src = self._source(s.fno)
        lo = line_start_after(src, s.d0 + (s.d1 - s.d0) * share // nshares, s.d0, s.d1)
        hi = line_start_after(src, s.d0 + (s.d1 - s.d0) * (share + 1) // nshares, s.d0, s.d1)
        return lo, hi

    def locality_ok(self, s, plan, lo, hi):
        """Placement pays here: consecutive lines of ``[lo, hi)`` have nearby ids."""
        return id_locality(self._source(s.fno), lo, hi, plan) >= _MIN_LOCALITY

    def stream_rows(self, s, plan, nshares):
        """Growable rows for one share of a frame dealt in line chunks."""
        return Rows(plan, min(s.natoms, s.natoms // nshares * 5 // 4 + 1024))

    def far_atom(self, cols, hdr, plan, s):
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
        fno, k, where = s.fno, s.k, s.where
        ix = self.indices[fno]
        atom = int(cols["ids"][row])
        line = locate_atom_line(self._source(fno), int(ix.data[k]), int(ix.end[k]), plan, atom)
        at = f", line {int(ix.data_line[k]) + line}" if line is not None else ""
        value = ", ".join(f"{c} = {v!r}" for c, v in zip(plan.coords, pos[row].tolist()))
        return QuestsInputError(
            f"{where}{at}: atom {'id ' if plan.has_id else ''}{atom}: {value} is {abs(f):.3g} box "
            f"lengths out along the periodic axis {'xyz'[axis]}; expected at most 2**20 = 1048576 "
            "(further out, wrapping it into the box loses its position to rounding)")

    def parse_share(self, s, plan, lo, hi, bounds, share, placing):
        """Parse bytes ``[lo, hi)`` of the frame at spot ``s``; never raises.

        ``bounds`` is the even split of the frame's id-sorted rows over the shares
        (``even_bounds(natoms, nshares)``), ``share`` this share's number.  With
        ``placing``, rows with ids in this share's range go straight to their final row
        and the others to an outgoing block (``"out"``); ``"placed"`` says whether every
        row could be placed.  Returns a dict ``rows, out, lines, perr, placed, count``
        (``perr``: ``(line within the range or None, message)`` or None).
        """
        natoms, nshares = s.natoms, len(bounds) - 1
        out = None
        if placing:
            own_lo, own_hi = int(bounds[share]) + 1, int(bounds[share + 1]) + 1
            rows = Rows(plan, own_hi - own_lo, zero_ids=True)
            # rows for other shares: at most a quarter of the share (memory), else the
            # frame is parsed again in file order
            out_cap = min(natoms - (own_hi - own_lo), (hi - lo) // plan.min_line_bytes + 1,
                          (own_hi - own_lo) // 4 + 4096)
            out = Rows(plan, out_cap)
            place = (own_lo, own_hi, 1, natoms + 1)
            max_rows = natoms
        else:
            cap = natoms if nshares == 1 else min(natoms, (hi - lo) // plan.min_line_bytes + 1)
            rows = Rows(plan, cap)
            place = None
            max_rows = cap
        try:
            lines, perr, placed, count = parse_range(self._source(s.fno), lo, hi, plan, rows,
                                                     max_rows, self.chunk_bytes, place=place, out=out)
        except QuestsInputError as exc:
            lines, perr, placed, count = 0, (None, str(exc)), False, 0
        except Exception as exc:  # e.g. MemoryError: reported on every rank
            lines, perr, placed, count = 0, (None, f"{type(exc).__name__}: {exc}"), False, 0
        if placed:
            rows.n = rows.cap
        return dict(rows=rows, out=out, lines=lines, perr=perr, placed=placed, count=count)

    def to_cartesian(self, pos, hdr, plan):
        """Scaled -> Cartesian, then (``wrap``) wrap along periodic axes, in place."""
        _to_cartesian(pos, hdr, plan, self.wrap)

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

    def make_frame(self, cols, hdr, plan, s, first):
        """The :class:`Frame` of the columns ``cols`` of the frame at spot ``s`` (``first``:
        position of the first row in the id-sorted frame, -1 if not a contiguous share);
        raises when a type is missing from the type map."""
        i, fno, where = s.i, s.fno, s.where
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


def share_info(res):
    """What a share reports after :meth:`LammpsDump.parse_share`: ``(rows, lines, error)``."""
    return res["count"], res["lines"], res["perr"]


def check_row_counts(s, infos, offsets=None):
    """Raise for the first error of the shares' ``infos`` (``(rows, lines, error)`` each,
    in file order), or when their rows do not add up to ``NUMBER OF ATOMS``.

    ``offsets``: line offset of each share within the atom block (default: the running
    sum of the shares' line counts).  Returns the offsets.  Given the same ``infos``
    every rank raises the same message.
    """
    if offsets is None:
        offsets = np.concatenate([[0], np.cumsum([t[1] for t in infos])[:-1]]).astype(np.int64)
    for r, (_, _, e) in enumerate(infos):
        if e is not None and e[0] is None:
            raise QuestsInputError(f"{s.where}: {e[1]}")
        if e is not None:
            raise QuestsInputError(f"{s.where}, line {s.data_line + int(offsets[r]) + e[0]}: {e[1]}")
    total = sum(t[0] for t in infos)
    if total != s.natoms:
        raise QuestsInputError(f"{s.where}: NUMBER OF ATOMS is {s.natoms} but {total} atom lines "
                               f"follow (from line {s.data_line})")
    return offsets


def _same_index(a, b):
    return len(a) == len(b) and all(np.array_equal(a.arrays()[f], b.arrays()[f])
                                    for f in a.arrays()) and a.errors == b.errors


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


def read_lammps_dump(path, index=-1, *, by="index", **kwargs):
    """Read one frame or a selection of frames of a LAMMPS text dump.

    Parameters
    ----------
    path : str, os.PathLike or list
        A dump (plain or compressed), a list of dumps or a glob pattern.
    index : int, str, slice or sequence
        Frame selection (:mod:`.selection`): ``-1`` (default, the last frame), ``"all"``,
        ``"0:100:5"``, ``"3,5,8"``, ``"t=1000"`` (by timestep) ...
    by : {"index", "timestep"}
    **kwargs
        ``columns``, ``type_map``, ``wrap``, ``cache``, ``rebuild_index``,
        ``chunk_bytes`` (see :class:`LammpsDump`).

    Returns
    -------
    Frame or list of Frame
        A single frame when ``index`` names one frame (an int or one number), else a list.

    For an MPI-parallel read see :func:`quests_hpc.parallel.dump_reader.read_lammps_dump`.
    """
    with LammpsDump(path, **kwargs) as dump:
        return selected_frames(dump, path, index, by)


def selected_frames(dump, path, index, by, **read_kw):
    """The frames of ``dump`` selected by ``index`` (one Frame when ``index`` names one)."""
    sel = dump.select(index, by)
    frames = [dump.read(int(i), **read_kw) for i in sel]
    if is_single(index):
        if not frames:
            raise QuestsInputError(f"{path}: no frame selected by {index!r}")
        return frames[0]
    return frames


def iread_lammps_dump(path, index=":", *, by="index", **kwargs):
    """Iterate over the selected frames (one frame in memory at a time).

    Same parameters as :func:`read_lammps_dump`.
    """
    with LammpsDump(path, **kwargs) as dump:
        for i in dump.select(index, by):
            yield dump.read(int(i))
