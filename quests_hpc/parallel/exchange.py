"""Gathers and broadcasts of numpy arrays that :mod:`quests_hpc.parallel.comm` lacks.

(Alltoallv and redistribution come from :mod:`~quests_hpc.parallel.comm`; these two could
move there.)  Every function here is collective over ``comm`` (all ranks call it, in the
same order, whatever their data).  Arrays are moved by *rows* (one contiguous MPI
datatype per row) or in byte chunks, so counts stay below the 32-bit limit of classic
MPI calls even for multi-GB arrays.
"""

import numpy as np
from mpi4py import MPI


def _row_type(arr):
    """Committed MPI datatype of one row of ``arr`` (caller frees it)."""
    base = MPI._typedict[arr.dtype.char]
    row = int(np.prod(arr.shape[1:], dtype=np.int64)) if arr.ndim > 1 else 1
    t = base.Create_contiguous(row)
    t.Commit()
    return t


def _displacements(counts):
    d = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=d[1:])
    return d


def gather_rows(comm, arr, root=0):
    """Gather row blocks of ``arr`` from every rank to ``root`` in rank order.

    Returns the concatenated array on ``root`` and ``None`` elsewhere.  Meant for
    results of moderate size (tests, summaries); whole-frame arrays should be written
    in parallel instead.
    """
    arr = np.ascontiguousarray(arr)
    counts = np.array(comm.allgather(len(arr)), dtype=np.int64)
    tail = comm.bcast(arr.shape[1:] if comm.rank == root else None, root=root)
    if arr.shape[1:] != tail:
        raise ValueError(f"rank {comm.rank}: row shape {arr.shape[1:]} differs from root's {tail}")
    recv = None
    t = _row_type(arr)
    try:
        if comm.rank == root:
            recv = np.empty((int(counts.sum()),) + arr.shape[1:], dtype=arr.dtype)
            comm.Gatherv([arr, len(arr), t], [recv, (counts, _displacements(counts)), t], root=root)
        else:
            comm.Gatherv([arr, len(arr), t], None, root=root)
    finally:
        t.Free()
    return recv


def bcast_array(comm, arr, root=0, chunk_bytes=1 << 28):
    """Broadcast an ndarray from ``root`` (shape and dtype included), in chunks.

    ``arr`` is only read on ``root``; other ranks may pass ``None``.
    """
    meta = comm.bcast((arr.shape, arr.dtype.str) if comm.rank == root else None, root=root)
    shape, dtype = meta
    out = np.ascontiguousarray(arr) if comm.rank == root else np.empty(shape, dtype=dtype)
    bcast_into(comm, out, root=root, chunk_bytes=chunk_bytes)
    return out


def bcast_into(comm, buf, root=0, chunk_bytes=1 << 28):
    """Broadcast the contents of the contiguous array ``buf`` in place, in chunks."""
    flat = buf.reshape(-1).view(np.uint8)
    for start in range(0, len(flat), chunk_bytes):
        comm.Bcast([flat[start:start + chunk_bytes], MPI.BYTE], root=root)


def alltoallv_rows(comm, arr, send_counts, recv_counts=None):
    """``comm``-first spelling of :func:`quests_hpc.parallel.comm.alltoallv_rows`.

    Kept for callers written against the first version of this module.
    """
    from .comm import alltoallv_rows as _a2a

    return _a2a(arr, send_counts, comm, recv_counts)
