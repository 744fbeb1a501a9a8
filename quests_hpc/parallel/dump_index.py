"""Frame index of a LAMMPS dump, built together by the ranks of a communicator.

The collective half of :mod:`quests_hpc.io.frame_index` (which owns the format, the scan
and the cache, and knows nothing of ranks):

* plain files -- each rank scans its share of the bytes
  (:func:`~quests_hpc.io.frame_index.scan_share`) and one ``allgather`` of the per-rank
  summaries gives everyone the same index;
* compressed files -- rank 0 scans while decompressing, then the index is broadcast;
* the cache -- rank 0 decides (use / resume / rescan) and writes it; the decision is
  broadcast.

A scan error (a malformed header the index cannot step over) is raised on every rank.
Every function takes a real communicator (``MPI.COMM_SELF`` for a serial run).
"""

import os

from ..errors import QuestsInputError
from ..io import frame_index as fi
from . import comm as pcomm

__all__ = ["build_index", "get_index"]


def build_index(src, comm, resume=None):
    """Scan ``src`` and return its :class:`~quests_hpc.io.frame_index.FrameIndex` on every
    rank (collective).  ``resume``: an older index of the same file that only grew."""
    rank, size = pcomm.rank_size(comm)
    if src.compressed:
        err, idx = None, None
        if rank == 0:
            try:
                idx = fi.scan_compressed(src)
            except QuestsInputError as exc:
                err = exc
        pcomm.raise_if_any(err, comm)
        return pcomm.bcast(idx, comm)
    st = os.stat(src.path)
    a0, base = fi.resume_base(resume)
    err, part = None, None
    try:
        part = fi.scan_share(src, a0, rank, size)
    except QuestsInputError as exc:
        err = exc
    pcomm.raise_if_any(err, comm)
    parts = pcomm.allgather(part, comm)
    return fi.assemble_plain(src, st, parts, base)


def get_index(src, comm, cache="auto", rebuild=False):
    """The frame index of ``src`` on every rank (collective): from the cache when still
    valid, else scanned in parallel; rank 0 checks and writes the cache.

    ``cache`` and ``rebuild`` as in :func:`quests_hpc.io.frame_index.get_index`.
    """
    rank, _ = pcomm.rank_size(comm)
    cfile = fi.cache_path(src.path, cache) if cache else None
    decision = fi.cache_decision(src, cfile, rebuild) if rank == 0 else None
    decision = pcomm.bcast(decision, comm)
    if decision[0] == "use":
        return fi.use_cached(src, decision[1])
    idx = build_index(src, comm, resume=decision[1])
    return fi.finish_index(src, idx, decision, cfile, cache, write=rank == 0)
