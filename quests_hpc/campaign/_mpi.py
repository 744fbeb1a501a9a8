"""Row-wise MPI helpers of the campaign driver (collective; rows as one MPI datatype).

Kept local so the driver does not depend on the internals of :mod:`quests_hpc.parallel`.
Counts are in rows, so multi-GB arrays stay far below the 32-bit count limit.
"""

import numpy as np


def _row_type(MPI, dtype, tail):
    base = MPI._typedict[np.dtype(dtype).char]
    t = base.Create_contiguous(max(1, int(np.prod(tail, dtype=np.int64))))
    t.Commit()
    return t


def _displ(counts):
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def alltoallv_rows(comm, arr, send_counts, recv_counts=None):
    """Send consecutive row blocks of ``arr`` to every rank; returns (rows, recv_counts)."""
    from mpi4py import MPI

    arr = np.ascontiguousarray(arr)
    send_counts = np.asarray(send_counts, dtype=np.int64)
    if recv_counts is None:
        recv_counts = np.empty_like(send_counts)
        comm.Alltoall(send_counts, recv_counts)
    recv = np.empty((int(recv_counts.sum()),) + arr.shape[1:], dtype=arr.dtype)
    t = _row_type(MPI, arr.dtype, arr.shape[1:])
    try:
        comm.Alltoallv([arr, (send_counts, _displ(send_counts)), t],
                       [recv, (recv_counts, _displ(recv_counts)), t])
    finally:
        t.Free()
    return recv, recv_counts


def gather_rows(comm, arr, root=0):
    """Rows of every rank concatenated in rank order on ``root`` (None elsewhere)."""
    from mpi4py import MPI

    arr = np.ascontiguousarray(arr)
    counts = np.array(comm.allgather(len(arr)), dtype=np.int64)
    t = _row_type(MPI, arr.dtype, arr.shape[1:])
    try:
        if comm.rank == root:
            out = np.empty((int(counts.sum()),) + arr.shape[1:], dtype=arr.dtype)
            comm.Gatherv([arr, len(arr), t], [out, (counts, _displ(counts)), t], root=root)
            return out
        comm.Gatherv([arr, len(arr), t], None, root=root)
        return None
    finally:
        t.Free()


def scatter_blocks(comm, arr, n, root=0):
    """Rows ``[r n/P, (r+1) n/P)`` of ``arr`` (given on ``root``) to rank ``r``."""
    from mpi4py import MPI

    size, rank = comm.size, comm.rank
    bounds = np.array([n * r // size for r in range(size + 1)], dtype=np.int64)
    counts = np.diff(bounds)
    tail, dt = comm.bcast((arr.shape[1:], arr.dtype.str) if rank == root else None, root=root)
    out = np.empty((int(counts[rank]),) + tuple(tail), dtype=np.dtype(dt))
    t = _row_type(MPI, dt, tail)
    try:
        send = [np.ascontiguousarray(arr), (counts, bounds[:-1]), t] if rank == root else None
        comm.Scatterv(send, [out, len(out), t], root=root)
    finally:
        t.Free()
    return out
