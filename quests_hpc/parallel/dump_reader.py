"""MPI-parallel reading of LAMMPS text dumps: every call is collective over ``comm``.

Quick use::

    from quests_hpc.parallel.dump_reader import ParallelDump, read_lammps_dump

    with ParallelDump("big.lammpstrj", MPI.COMM_WORLD) as dump:  # every rank
        f = dump.read(-1)         # this rank's share: f.ids, f.positions, ...
    frames = read_lammps_dump("dump.lammpstrj.gz", ":", MPI.COMM_WORLD)

The format, the frame index, the parsing of a byte range and the building of a
:class:`~quests_hpc.io.frame.Frame` are those of the serial reader
(:class:`quests_hpc.io.lammps_dump.LammpsDump`, whose primitives this class drives);
this module adds who reads what and where the atoms go:

* plain files -- each rank reads and parses only its byte range of the frame's atom
  lines (split at line boundaries), then the atoms go to their owners: by default
  rank ``r`` gets atoms ``[r*N//P, (r+1)*N//P)`` of the frame sorted by id; an ``owner``
  callable can impose another map (the MPI pipeline's spatial decomposition), reached
  in one exchange.  No rank ever holds the whole frame, nor more text than one chunk
  (``chunk_bytes``).  When the ids are ``1..N`` (the LAMMPS default) and come first on
  the line, each rank stores the rows it will own directly at their final place while
  parsing and sends only the others; any other numbering is detected and the frame
  parsed again in file order (then remembered for the file).
* compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``) -- decompression is serial:
  rank 0 decompresses and deals chunks of whole lines round-robin to all ranks
  (:mod:`.dump_stream`), which parse them in parallel; then the same ownership step.
* the frame index is scanned in parallel (:mod:`.dump_index`; rank 0 alone for a
  compressed file).

Every input error is raised on every rank with the same message (naming the file, the
frame index and timestep, the line or atom id).  With one rank (``MPI.COMM_SELF``) a
read is the serial read.
"""

import time
import warnings

import numpy as np

from ..errors import QuestsInputError
from ..io.atoms_block import DEFAULT_CHUNK
from ..io.id_order import local_id_range
from ..io.lammps_dump import (DumpWarning, LammpsDump, check_head, check_is_dump, check_row_counts,
                              expand_paths, selected_frames)
from . import comm as pcomm
from .dump_index import get_index
from .dump_stream import stream_parse
from .routing import even_split_by_id, exchange_placed, send_to_owners

__all__ = ["ParallelDump", "read_lammps_dump", "iread_lammps_dump"]


def _error_of(check, *args):
    """The QuestsInputError ``check(*args)`` raises, or None."""
    try:
        check(*args)
    except QuestsInputError as exc:
        return exc
    return None


class ParallelDump(LammpsDump):
    """A LAMMPS text dump opened on every rank of ``comm`` (collective object).

    Parameters
    ----------
    path : str, os.PathLike or list
        As :class:`~quests_hpc.io.lammps_dump.LammpsDump`.
    comm : mpi4py communicator
        Required (``MPI.COMM_SELF`` for a serial run); every method that reads is
        collective over it (:meth:`read`, :meth:`iread`, construction, :meth:`close` is
        local); :meth:`header`, :meth:`select`, :meth:`where`, :meth:`byte_range` are
        local (same result on every rank).
    columns, type_map, wrap, cache, rebuild_index, chunk_bytes
        As :class:`~quests_hpc.io.lammps_dump.LammpsDump` (``chunk_bytes``: text a rank
        reads or receives at a time).
    """

    def __init__(self, path, comm, columns=(), type_map=None, wrap=True, cache="auto",
                 rebuild_index=False, chunk_bytes=DEFAULT_CHUNK):
        pcomm.require_comm(comm, "ParallelDump")
        self.comm = comm
        self._setup(columns, type_map, wrap, cache, chunk_bytes)
        rank = pcomm.rank_size(comm)[0]
        err, files = None, None
        if rank == 0:
            try:
                files = expand_paths(path)
            except QuestsInputError as exc:
                err = exc
        pcomm.raise_if_any(err, comm)
        self.files = pcomm.bcast(files, comm)
        for fno in range(len(self.files)):
            src = self._source(fno)
            # what is plainly not a dump is refused before the whole file is scanned
            pcomm.raise_if_any(_error_of(check_head, src) if rank == 0 else None, comm,
                               prefix=False)
            ix = get_index(src, comm, cache=self.index_cache(fno), rebuild=rebuild_index)
            pcomm.raise_if_any(_error_of(check_is_dump, src, ix) if rank == 0 else None, comm,
                               prefix=False)
            self.indices.append(ix)
        self._index_changed()
        if rank == 0:
            self.warn_truncated()  # once

    # ------------------------------------------------------------------ reading
    def iread(self, selection=":", by="index", owner=None):
        """Yield the selected frames (collective over ``comm``)."""
        for i in self.select(selection, by):
            yield self.read(int(i), owner=owner)

    def read(self, i, owner=None):
        """Read frame ``i`` (negative counts from the end); collective over ``comm``.

        Parameters
        ----------
        i : int
        owner : callable, optional
            ``owner(header, ids, positions) -> dest`` (int array, one rank per atom,
            called on every rank with its parsed atoms, wrapped Cartesian positions);
            default: even split of the id-sorted frame.  Not called with one rank.

        Returns
        -------
        Frame
            This rank's share (sorted by id; ``first`` is its position in the id-sorted
            frame, -1 with an ``owner`` map).

        A malformed frame read with a *cached* index is read again after a rebuild of the
        index (collective), as in :meth:`quests_hpc.io.lammps_dump.LammpsDump.read`.
        """
        return self._read_retrying(i, lambda j: self._read_collective(j, owner))

    def _rebuild_index(self, fno):
        return get_index(self._source(fno), self.comm, cache=self._cache, rebuild=True)

    def _read_collective(self, i, owner):
        comm = self.comm
        rank, size = pcomm.rank_size(comm)
        if size == 1:
            return self._read(i)
        t0 = time.perf_counter()
        s = self.spot(i)
        hdr, plan = self._collective_header(s, rank)
        t1 = time.perf_counter()
        bounds = pcomm.even_bounds(s.natoms, size)
        if s.compressed:
            rows = self.stream_rows(s, plan, size)
            lines, perr = stream_parse(self._source(s.fno) if rank == 0 else None, s.d0, s.d1, plan,
                                       rows, s.natoms, comm, self.chunk_bytes)
            res = dict(rows=rows, out=None, lines=lines, perr=perr, placed=False, count=rows.n)
        else:
            res = self._parse_plain(s, plan, bounds, rank, size,
                                    owner is None and self.can_place(s, plan))
        rows, placed = res["rows"], res["placed"]

        t2 = time.perf_counter()
        # errors and the atom count, on every rank
        idr = local_id_range(rows.ids[:rows.n]) if plan.has_id and not placed else None
        info = pcomm.allgather((res["count"], res["lines"], res["perr"], idr), comm)
        offsets = check_row_counts(s, [t[:3] for t in info],
                                   np.zeros(size, dtype=np.int64) if s.compressed else None)

        # ids of dumps without an id column; ownership, order and coordinates
        t3 = time.perf_counter()
        sub = {}
        first = int(bounds[rank])
        cols = rows.columns()
        if placed:
            out_cols = res.pop("out").columns()  # the only references left: freed as sent
            del res, rows
            exchange_placed(cols, out_cols, first + 1, s.natoms, comm, s.where, sub)
            del out_cols
        else:
            del res, rows
            if not plan.has_id:
                cols["ids"] += int(offsets[rank]) + 1
        pcomm.raise_if_any(self.far_atom(cols, hdr, plan, s), comm, prefix=False)
        self.to_cartesian(cols["pos"], hdr, plan)
        if not placed and owner is None:
            id_range = None
            if plan.has_id:
                id_range = (min(t[3][0] for t in info), max(t[3][1] for t in info))
            cols, first = even_split_by_id(cols, s.natoms, comm, s.where, sub, id_range)
        elif not placed:
            cols = self._send_to_owner_hook(cols, hdr, owner, s)
            first = -1
        frame, err = None, None
        try:
            frame = self.make_frame(cols, hdr, plan, s, first)
        except QuestsInputError as exc:  # e.g. a type missing from the type map on one rank
            err = exc
        pcomm.raise_if_any(err, comm, prefix=False)
        t4 = time.perf_counter()
        self.timings = dict(header=t1 - t0, parse=t2 - t1, check=t3 - t2, ownership=t4 - t3,
                            total=t4 - t0, placed=placed)
        self.timings.update({f"ownership.{k}": v for k, v in sub.items()})
        return frame

    def _collective_header(self, s, rank):
        """Header and column plan on every rank: each rank reads the (small) header of a
        plain file itself (same bytes, same result, same error: no collective needed);
        for a compressed file rank 0 reads it and broadcasts."""
        if not s.compressed:
            with warnings.catch_warnings():
                if rank != 0:
                    warnings.simplefilter("ignore", DumpWarning)  # warn once, on rank 0
                return self.frame_header(s)
        err, meta = None, None
        if rank == 0:
            try:
                meta = self.frame_header(s)
            except Exception as exc:  # reported on every rank, never a hang
                err = exc
        pcomm.raise_if_any(err, self.comm)
        return pcomm.bcast(meta, self.comm)

    def _parse_plain(self, s, plan, bounds, rank, size, placing):
        """Parse this rank's byte range of a plain file.  With ``placing`` (ids in the
        first column) rows of the ids this rank will own go straight to their final row;
        a miss anywhere (sparse ids, or ids far apart) makes every rank parse again in
        file order, and the file is read in file order from then on."""
        comm = self.comm
        lo, hi = self.share_bytes(s, rank, size)
        if placing:  # placement pays when consecutive lines have nearby ids: decided together
            placing = bool(pcomm.allreduce(np.int64(self.locality_ok(s, plan, lo, hi)), "min", comm))
        res = self.parse_share(s, plan, lo, hi, bounds, rank, placing)
        if placing and not all(pcomm.allgather(res["placed"], comm)):
            self.no_placement(s.fno)
            res = self.parse_share(s, plan, lo, hi, bounds, rank, False)
        return res

    def _send_to_owner_hook(self, cols, hdr, owner, s):
        """Send the atoms to the ranks ``owner(hdr, ids, positions)`` names (one exchange)."""
        err, dest = None, None
        try:
            dest = np.asarray(owner(hdr, cols["ids"], cols["pos"]), dtype=np.int64)
            if dest.shape != cols["ids"].shape:
                raise QuestsInputError(f"owner returned shape {dest.shape}, expected "
                                       f"{cols['ids'].shape}")
        except Exception as exc:  # an owner hook failing on one rank must not hang
            err = exc
        pcomm.raise_if_any(err, self.comm)
        return send_to_owners(cols, dest, self.comm, s.where)


def read_lammps_dump(path, index, comm, *, by="index", owner=None, **kwargs):
    """Read one frame or a selection of frames in parallel (collective over ``comm``).

    Parameters
    ----------
    path, index, by
        As :func:`quests_hpc.io.lammps_dump.read_lammps_dump`.
    comm : mpi4py communicator
        Required (``MPI.COMM_SELF`` for a serial run); each rank gets its share of every
        frame.
    owner : callable, optional
        See :meth:`ParallelDump.read`.
    **kwargs
        ``columns``, ``type_map``, ``wrap``, ``cache``, ``rebuild_index``,
        ``chunk_bytes`` (see :class:`ParallelDump`).

    Returns
    -------
    Frame or list of Frame
        This rank's share of one frame when ``index`` names one frame, else a list.
    """
    pcomm.require_comm(comm, "read_lammps_dump")
    with ParallelDump(path, comm, **kwargs) as dump:
        return selected_frames(dump, path, index, by, owner=owner)


def iread_lammps_dump(path, index, comm, *, by="index", owner=None, **kwargs):
    """Iterate over the selected frames (collective; one frame share in memory at a time).

    Same parameters as :func:`read_lammps_dump`.
    """
    pcomm.require_comm(comm, "iread_lammps_dump")
    with ParallelDump(path, comm, **kwargs) as dump:
        for i in dump.select(index, by):
            yield dump.read(int(i), owner=owner)
