"""Thin MPI communication layer: rank helpers, collective errors, numpy redistribution.

Every function takes ``comm`` last; ``comm=None`` means a serial run (one rank, no MPI
call, :mod:`mpi4py` not even imported), so the same code path serves serial and MPI
callers.  Every function that takes a communicator is *collective*: all ranks call it,
in the same order, whatever their data -- never call one from a rank-dependent branch.

Errors: a rank that catches a :class:`~quests_hpc.errors.QuestsInputError` passes it to
:func:`raise_if_any`, which every rank calls; then every rank raises the same error (the
one of the lowest failing rank), so no rank is left waiting in a collective.

Arrays are exchanged by rows (one contiguous MPI datatype per row of an ``(n, ...)``
array), so element counts stay far below the 32-bit limit of classic MPI calls.
"""

import numpy as np

from ..errors import QuestsInputError


def world():
    """``MPI.COMM_WORLD`` (imports :mod:`mpi4py.MPI`, which initialises MPI)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def rank_size(comm=None):
    """``(rank, size)`` of ``comm``; ``(0, 1)`` for None."""
    if comm is None:
        return 0, 1
    return comm.Get_rank(), comm.Get_size()


def is_parallel(comm=None):
    """True when ``comm`` has more than one rank."""
    return comm is not None and comm.Get_size() > 1


def even_bounds(n, size):
    """Bounds of an even split of ``n`` items over ``size`` parts.

    Part ``r`` holds items ``[b[r], b[r+1])`` with ``b[r] = r * n // size``.

    Returns
    -------
    ndarray of int64, shape (size + 1,)
    """
    r = np.arange(size + 1, dtype=np.int64)
    return (r * np.int64(n)) // np.int64(size) if n < 2**62 // max(size, 1) else np.array(
        [i * n // size for i in range(size + 1)], dtype=np.int64)


def rank_dtype(size):
    """Smallest signed integer dtype holding ranks ``0 .. size-1``."""
    return np.int16 if size <= 2**15 else np.int32


def bcast(obj, comm=None, root=0):
    """Broadcast a picklable object from ``root``."""
    if not is_parallel(comm):
        return obj
    return comm.bcast(obj, root=root)


def allgather(obj, comm=None):
    """List of ``obj`` from every rank, in rank order."""
    if not is_parallel(comm):
        return [obj]
    return comm.allgather(obj)


def allreduce(values, op="sum", comm=None):
    """Element-wise reduction of a numeric array (or scalar) over all ranks.

    Parameters
    ----------
    values : array_like
    op : {"sum", "min", "max"}

    Returns
    -------
    ndarray (same shape as ``values``; a 0-d input gives a numpy scalar)
    """
    a = np.ascontiguousarray(values)
    if not is_parallel(comm):
        return a.copy()[()]
    from mpi4py import MPI

    mop = {"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}[op]
    out = np.empty_like(a)
    comm.Allreduce(a, out, op=mop)
    return out[()]


def exscan_sum(value, comm=None):
    """Exclusive prefix sum of an integer over ranks (0 on rank 0)."""
    if not is_parallel(comm):
        return 0
    counts = np.asarray(comm.allgather(int(value)), dtype=np.int64)
    return int(counts[:comm.Get_rank()].sum())


def raise_if_any(error, comm=None, prefix=True):
    """Collective error check: raise on every rank if any rank passes an exception.

    Parameters
    ----------
    error : BaseException or None
        This rank's error (usually a caught :class:`QuestsInputError`, but any
        exception caught around rank-local work works).

    Raises
    ------
    Exception
        On a failing rank, its own exception; on the others a
        :class:`QuestsInputError` (or ``RuntimeError`` when the first failure was not an
        input error) with the message of the lowest failing rank, prefixed with its
        number.  With ``prefix=False`` every rank raises the lowest failing rank's error
        with its message unchanged (e.g. a bad line of a file that only one rank parsed).
    """
    if not is_parallel(comm):
        if error is not None:
            raise error
        return
    msgs = comm.allgather(None if error is None else
                          (isinstance(error, QuestsInputError), f"{type(error).__name__}: {error}"
                           if not isinstance(error, QuestsInputError) else str(error)))
    first = next((r for r, m in enumerate(msgs) if m is not None), None)
    if error is not None and (prefix or first == comm.rank):
        raise error
    if first is not None:
        is_input, text = msgs[first]
        cls = QuestsInputError if is_input else RuntimeError
        raise cls(f"(from rank {first}) {text}" if prefix else text)


def _row_type(arr):
    from mpi4py import MPI

    base = MPI._typedict[arr.dtype.char]
    row = int(np.prod(arr.shape[1:], dtype=np.int64)) if arr.ndim > 1 else 1
    t = base.Create_contiguous(row)
    t.Commit()
    return t


def alltoallv_rows(arr, send_counts, comm=None, recv_counts=None):
    """Send consecutive row blocks of ``arr`` to every rank (``MPI_Alltoallv``).

    Parameters
    ----------
    arr : ndarray, shape (n, ...)
        Rows grouped by destination: the first ``send_counts[0]`` rows go to rank 0, ...
    send_counts : array_like of int, shape (size,)
    comm : mpi4py communicator or None
    recv_counts : array_like of int, optional
        Rows coming from each rank, when known (saves an ``Alltoall``).

    Returns
    -------
    recv : ndarray, shape (sum(recv_counts), ...)
        Rows received, ordered by source rank (each source's rows in their order).
    recv_counts : ndarray of int64
    """
    send_counts = np.asarray(send_counts, dtype=np.int64)
    if int(send_counts.sum()) != len(arr):
        raise ValueError(f"send_counts sum to {int(send_counts.sum())}, array has {len(arr)} rows")
    if not is_parallel(comm):
        return arr, send_counts.copy()
    arr = np.ascontiguousarray(arr)
    if recv_counts is None:
        recv_counts = np.empty_like(send_counts)
        comm.Alltoall(send_counts, recv_counts)
    recv_counts = np.asarray(recv_counts, dtype=np.int64)
    recv = np.empty((int(recv_counts.sum()),) + arr.shape[1:], dtype=arr.dtype)
    sd = _displacements(send_counts)
    rd = _displacements(recv_counts)
    t = _row_type(arr)
    try:
        comm.Alltoallv([arr, (send_counts, sd), t], [recv, (recv_counts, rd), t])
    finally:
        t.Free()
    return recv, recv_counts


def _displacements(counts):
    d = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=d[1:])
    return d


def gather_rows(arr, comm=None, root=0):
    """Rows of every rank concatenated in rank order on ``root`` (``None`` elsewhere).

    For results of moderate size (tests, summaries); whole-frame arrays are written in
    parallel instead.  Collective.
    """
    arr = np.ascontiguousarray(arr)
    if not is_parallel(comm):
        return arr
    # Shapes travel with the counts, so a mismatch is seen (and raised) by every rank
    # rather than leaving the others waiting in Gatherv.
    info = comm.allgather((len(arr), arr.shape[1:], arr.dtype.str))
    if len({(i[1], i[2]) for i in info}) > 1:
        raise ValueError("gather_rows: ranks hold rows of different shapes/dtypes: "
                         + ", ".join(f"rank {r}: {i[1]} {i[2]}" for r, i in enumerate(info)))
    counts = np.array([i[0] for i in info], dtype=np.int64)
    t = _row_type(arr)
    try:
        if comm.rank == root:
            out = np.empty((int(counts.sum()),) + arr.shape[1:], dtype=arr.dtype)
            comm.Gatherv([arr, len(arr), t], [out, (counts, _displacements(counts)), t],
                         root=root)
            return out
        comm.Gatherv([arr, len(arr), t], None, root=root)
        return None
    finally:
        t.Free()


def scatter_blocks(arr, n, comm=None, root=0):
    """Rows ``[r n/P, (r+1) n/P)`` of ``arr`` (read on ``root`` only) to rank ``r``."""
    if not is_parallel(comm):
        return np.ascontiguousarray(arr)
    rank, size = comm.rank, comm.size
    bounds = np.array([n * r // size for r in range(size + 1)], dtype=np.int64)
    counts = np.diff(bounds)
    tail, dt = comm.bcast((arr.shape[1:], arr.dtype.str) if rank == root else None, root=root)
    out = np.empty((int(counts[rank]),) + tuple(tail), dtype=np.dtype(dt))
    t = _row_type(out)
    try:
        send = [np.ascontiguousarray(arr), (counts, bounds[:-1]), t] if rank == root else None
        comm.Scatterv(send, [out, len(out), t], root=root)
    finally:
        t.Free()
    return out


def bcast_into(buf, comm=None, root=0, chunk_bytes=1 << 28):
    """Broadcast the contents of the contiguous array ``buf`` in place, in byte chunks
    (counts stay below the 32-bit limit of classic MPI calls)."""
    if not is_parallel(comm):
        return buf
    from mpi4py import MPI

    flat = buf.reshape(-1).view(np.uint8)
    for start in range(0, len(flat), chunk_bytes):
        comm.Bcast([flat[start:start + chunk_bytes], MPI.BYTE], root=root)
    return buf


def row_view(a):
    """``a`` as a 2-D array of unsigned words, one row per leading index (a view).

    The word size is the largest of 8, 4, 2, 1 bytes dividing the row size, so that
    kernels moving rows handle every dtype with four compiled variants.
    """
    if not a.flags.c_contiguous:
        raise ValueError("row_view needs a C-contiguous array")
    n = a.shape[0]
    rowbytes = a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64))
    for size, dt in ((8, np.uint64), (4, np.uint32), (2, np.uint16), (1, np.uint8)):  # noqa: B007
        if rowbytes % size == 0:
            break
    if rowbytes == 0:
        return np.empty((n, 0), dtype=np.uint8)
    return a.reshape(n * rowbytes // a.itemsize).view(dt).reshape(n, rowbytes // size)


def redistribute(arrays, dest, comm=None):
    """Send row ``i`` of every array to rank ``dest[i]``; return the rows received.

    Memory: each array is grouped by destination *in place* (a cache-friendly
    partition, see :func:`quests_hpc.io._kernels.partition_rows`) and exchanged one
    at a time; an input array is released once sent, provided the caller holds no
    other reference to it (pass the list and drop your own names).  Peak extra memory:
    one received array plus 2 bytes per row (4 beyond 32768 ranks).

    Parameters
    ----------
    arrays : list of ndarray
        Same number of rows each, C-contiguous; the list is emptied.
    dest : array_like of int, shape (n,)
        Destination rank of each row.
    comm : mpi4py communicator or None

    Returns
    -------
    list of ndarray
        Received rows, grouped by source rank; the order within a source's block is
        unspecified (identical for every array).
    """
    from ..io._kernels import partition_rows

    _, size = rank_size(comm)
    dest = np.asarray(dest)
    n = len(dest)
    if n and (int(dest.min()) < 0 or int(dest.max()) >= size):
        raise ValueError(f"destination ranks must be in [0, {size}), got "
                         f"[{int(dest.min())}, {int(dest.max())}]")
    for a in arrays:
        if len(a) != n:
            raise ValueError(f"array of {len(a)} rows, expected {n}")
    if not is_parallel(comm):
        out = list(arrays)
        arrays.clear()
        return out
    counts = np.bincount(dest, minlength=size).astype(np.int64)
    recv_counts = np.empty_like(counts)
    comm.Alltoall(counts, recv_counts)
    out = []
    while arrays:
        a = arrays.pop(0)
        v = row_view(a)
        if n and v.shape[1]:
            d = dest.astype(rank_dtype(size))
            partition_rows(d, v, size)
            del d
        del v
        if int(np.prod(a.shape[1:], dtype=np.int64)) == 0:
            r = np.empty((int(recv_counts.sum()),) + a.shape[1:], dtype=a.dtype)
        else:
            r, _ = alltoallv_rows(a, counts, comm, recv_counts)
        del a
        out.append(r)
    return out
