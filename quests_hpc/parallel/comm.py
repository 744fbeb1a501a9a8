"""The MPI layer's communication functions: rank helpers, collective errors, numpy
redistribution.  The only place (with the other modules of :mod:`quests_hpc.parallel`)
that calls collectives.

Conventions
-----------
* Every function that takes a communicator requires one: a serial run passes
  ``MPI.COMM_SELF`` (one rank: no message is sent); ``None`` is refused with a
  ``TypeError`` naming the function.
* Every function that takes a communicator is *collective*: all ranks call it, in the same
  order, whatever their data -- never call one from a rank-dependent branch.
* Arrays are exchanged by rows (one contiguous MPI datatype per row of an ``(n, ...)``
  array, built with :func:`mpi4py.util.dtlib.from_numpy_dtype`), so element counts stay
  far below the 32-bit limit of classic MPI calls.

Errors (one idiom)
------------------
A rank that catches an exception passes it to :func:`raise_if_any`, which every rank
calls; or a rank-local block runs inside ``with collective_errors(comm):``, built on it.
Then every rank raises: a failing rank its own exception, every other rank a
:class:`RankInputError` (a :class:`~quests_hpc.errors.QuestsInputError`) when the lowest
failing rank's error was bad input, else a :class:`RankFailedError` (a ``RuntimeError``),
whose message is that rank's, prefixed with ``(from rank r)``; ``prefix=False`` raises the
lowest failing rank's error on every rank with its message unchanged.  So no rank is left
waiting in a later collective.
"""

import contextlib

import numpy as np

from ..errors import QuestsInputError
from ..io.id_order import row_view  # noqa: F401  (re-exported: the row view of every exchange)


def world():
    """``MPI.COMM_WORLD`` (imports :mod:`mpi4py.MPI`, which initialises MPI)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def require_comm(comm, fn):
    """``comm``, or ``TypeError`` naming ``fn`` when it is None (serial is ``COMM_SELF``)."""
    if comm is None:
        raise TypeError(f"{fn}(): comm is None; pass MPI.COMM_SELF for a serial run")
    return comm


def rank_size(comm):
    """``(rank, size)`` of ``comm``."""
    require_comm(comm, "rank_size")
    return comm.Get_rank(), comm.Get_size()


def is_parallel(comm):
    """True when ``comm`` has more than one rank."""
    return require_comm(comm, "is_parallel").Get_size() > 1


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


def bcast(obj, comm, root=0):
    """Broadcast a picklable object from ``root``."""
    if not is_parallel(require_comm(comm, "bcast")):
        return obj
    return comm.bcast(obj, root=root)


def allgather(obj, comm):
    """List of ``obj`` from every rank, in rank order."""
    if not is_parallel(require_comm(comm, "allgather")):
        return [obj]
    return comm.allgather(obj)


def gather(obj, comm, root=0):
    """List of ``obj`` from every rank, in rank order, on ``root``; ``None`` elsewhere."""
    if not is_parallel(require_comm(comm, "gather")):
        return [obj]
    return comm.gather(obj, root=root)


def ranks_on_node(comm):
    """How many ranks of ``comm`` share this rank's node (a shared-memory ``Split_type``,
    freed at once)."""
    if not is_parallel(require_comm(comm, "ranks_on_node")):
        return 1
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    try:
        return node.Get_size()
    finally:
        node.Free()


def allreduce(values, op, comm):
    """Element-wise reduction of a numeric array (or scalar) over all ranks.

    Parameters
    ----------
    values : array_like
    op : {"sum", "min", "max"}
    comm : mpi4py communicator

    Returns
    -------
    ndarray (same shape as ``values``; a 0-d input gives a numpy scalar)
    """
    require_comm(comm, "allreduce")
    if op not in ("sum", "min", "max"):
        raise ValueError(f"allreduce: op must be 'sum', 'min' or 'max', got {op!r}")
    a = np.asarray(values)
    a = np.ascontiguousarray(a).reshape(a.shape)  # (ascontiguousarray makes 0-d 1-d)
    if not is_parallel(comm):
        return a.copy()[()]
    from mpi4py import MPI

    mop = {"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}[op]
    out = np.empty_like(a)
    comm.Allreduce(a, out, op=mop)
    return out[()]


def exscan_sum(value, comm):
    """Exclusive prefix sum of an integer over ranks (0 on rank 0)."""
    if not is_parallel(require_comm(comm, "exscan_sum")):
        return 0
    counts = np.asarray(comm.allgather(int(value)), dtype=np.int64)
    return int(counts[:comm.Get_rank()].sum())


def argmax_with_key(score, key, comm):
    """The largest ``score`` over ranks, with its integer ``key`` and its rank (one
    ``Allgather`` of ``1 + len(key)`` int64 per rank; every rank decides alike).

    Ties go to the lowest ``key`` (lexicographic), then to the lowest rank, so the answer
    does not depend on how items are spread over the ranks when keys are unique.  A rank
    with nothing to offer passes ``-inf`` (NaN counts as ``-inf``).

    Returns
    -------
    (float, tuple of int, int)
        The best score, its key and the rank that holds it (``-inf``, the lowest key and
        the lowest rank when every score is ``-inf``).
    """
    require_comm(comm, "argmax_with_key")
    s = float(score)
    row = np.empty(1 + len(key), dtype=np.int64)
    row[0] = np.float64(-np.inf if s != s else s).view(np.int64)
    row[1:] = np.asarray(key, dtype=np.int64)
    if is_parallel(comm):
        rows = np.empty((comm.size, len(row)), dtype=np.int64)
        comm.Allgather(row, rows)
    else:
        rows = row[None, :]
    scores = rows[:, 0].copy().view(np.float64)
    best = np.flatnonzero(scores == scores.max())
    keys = tuple(rows[best, j] for j in range(len(row) - 1, 0, -1))  # first key last
    r = int(best[np.lexsort(keys)[0]]) if keys else int(best[0])
    return float(scores[r]), tuple(int(v) for v in rows[r, 1:]), r


def error_channel(comm):
    """A communicator of its own for :func:`barrier_or_abort` after an error.

    Collective: every rank calls it at start-up, before any rank can fail.  Collectives
    match by order on a communicator, whatever their kind, so an error sync on the
    application's communicator could complete against a barrier (or a non-blocking
    collective) that a rank still working is waiting in: the failing rank would then take
    it for "every rank failed" and return without its message, and the others would go on.
    On a duplicate nothing of the application can match it.
    """
    if not is_parallel(require_comm(comm, "error_channel")):
        return comm
    return comm.Dup()


def barrier_or_abort(comm, seconds, code, on_timeout=None):
    """Wait (a non-blocking barrier, polled) until every rank arrives here; if they do not
    within ``seconds``, call ``on_timeout()`` and abort every rank with exit ``code``.

    For a rank that failed alone: it must not wait forever for ranks that will never
    arrive.  Serial: returns at once.
    """
    if not is_parallel(require_comm(comm, "barrier_or_abort")):
        return
    import time

    req = comm.Ibarrier()
    deadline = time.monotonic() + seconds
    while not req.Test():
        if time.monotonic() > deadline:
            if on_timeout is not None:
                on_timeout()
            comm.Abort(code)
        time.sleep(0.01)


# ---------------------------------------------------------------------- collective errors


class RankFailedError(RuntimeError):
    """Raised on the ranks that did not fail when another rank failed (see the module doc).

    Attributes
    ----------
    failures : list of (int, str)
        Rank and ``"<Type>: <message>"`` of every rank that failed, lowest rank first.
    rank : int
        The lowest failing rank (whose message this error carries).
    error_type : str
        Class name of that rank's exception.
    """

    def __init__(self, message, failures=(), error_type="RuntimeError"):
        super().__init__(message)
        self.failures = list(failures)
        self.rank = self.failures[0][0] if self.failures else None
        self.error_type = error_type

    def __reduce__(self):
        return type(self), (str(self), self.failures, self.error_type)


class RankInputError(RankFailedError, QuestsInputError):
    """:class:`RankFailedError` where the failed rank's error was bad input.

    Also a :class:`~quests_hpc.errors.QuestsInputError` (a ``ValueError``), so callers
    (the CLI) handle it on every rank as they handle the input error itself.
    """


def _summary(error):
    """What a failing rank tells the others: (is input, type name, message)."""
    return isinstance(error, QuestsInputError), type(error).__name__, str(error)


def raise_if_any(error, comm, prefix=True, root=None, keep=()):
    """Collective error check: raise on every rank if any rank passes an exception.

    Parameters
    ----------
    error : BaseException or None
        This rank's error (usually a caught :class:`QuestsInputError`, but any
        exception caught around rank-local work works).
    comm : mpi4py communicator
    prefix : bool
        True: every failing rank raises its own error, the others the lowest failing
        rank's message prefixed with ``(from rank r)``.  False: every rank raises the
        lowest failing rank's error, its message unchanged (e.g. a bad line of a file
        that only one rank parsed).
    root : int, optional
        Only ``root``'s error counts (it alone did the work): one broadcast instead of an
        allgather; the errors passed on other ranks are ignored.
    keep : tuple of exception classes
        Classes (constructed from one message) that the other ranks raise as such when
        the lowest failing rank's error is exactly of one of them (e.g. ``ResultsIOError``),
        instead of :class:`RankFailedError` / :class:`RankInputError`.

    Raises
    ------
    Exception
        The failing rank's own exception; on the others :class:`RankInputError` when the
        lowest failing rank's error was a :class:`QuestsInputError`, else
        :class:`RankFailedError` (or a class of ``keep``).  The message is the failed
        rank's (``"<Type>: <message>"`` for an error that is not an input error).
    """
    require_comm(comm, "raise_if_any")
    if not is_parallel(comm):
        if error is not None:
            raise error
        return
    if root is None:
        msgs = comm.allgather(None if error is None else _summary(error))
    else:
        sent = comm.bcast(None if error is None or comm.rank != root else _summary(error),
                          root=root)
        msgs = [sent if r == root else None for r in range(comm.size)]
    failures = [(r, m) for r, m in enumerate(msgs) if m is not None]
    if not failures:
        return
    first, (is_input, name, text) = failures[0]
    if error is not None and (first == comm.rank or (prefix and msgs[comm.rank] is not None)):
        raise error
    if not is_input:
        text = f"{name}: {text}"
    message = f"(from rank {first}) {text}" if prefix else text
    for cls in keep:
        if cls.__name__ == name:
            raw = msgs[first][2]
            raise cls(f"(from rank {first}) {raw}" if prefix else raw)
    cls = RankInputError if is_input else RankFailedError
    raise cls(message, [(r, f"{m[1]}: {m[2]}") for r, m in failures], name)


@contextlib.contextmanager
def collective_errors(comm, prefix=True):
    """Collective context manager: if the block raises on any rank, it raises on all.

    :func:`raise_if_any` on the block's exception (an ``Exception``; ``KeyboardInterrupt``
    and ``SystemExit`` pass through unshared): the failing rank re-raises its own, the
    others raise :class:`RankInputError` / :class:`RankFailedError` naming the failed
    rank.  One ``allgather`` of a short message at the end of the block, failed or not.
    """
    require_comm(comm, "collective_errors")
    failure = None
    try:
        yield
    except Exception as e:  # noqa: BLE001 -- shared with every rank below
        failure = e
    raise_if_any(failure, comm, prefix=prefix)


# ---------------------------------------------------------------------- arrays by rows


def row_type(dtype, shape=()):
    """Committed MPI datatype of one row: ``prod(shape)`` elements of ``dtype``.

    Built with :func:`mpi4py.util.dtlib.from_numpy_dtype`; a dtype MPI has no elementary
    type of the same size for (``"S5"``, ``"U3"``, ...) travels as bytes.  Free it after use.
    """
    from mpi4py import MPI
    from mpi4py.util import dtlib

    dtype = np.dtype(dtype)
    try:
        base = dtlib.from_numpy_dtype(dtype)
    except (ValueError, KeyError, RuntimeError):
        base = None
    if base is not None and base.Get_extent()[1] != dtype.itemsize:
        base.Free()
        base = None
    if base is None:
        base = MPI.BYTE.Create_contiguous(dtype.itemsize)
    row = int(np.prod(shape, dtype=np.int64))
    try:
        t = base.Create_contiguous(row)
    finally:
        base.Free()
    return t.Commit()


def _row_type(arr):
    return row_type(arr.dtype, arr.shape[1:])


def alltoallv_rows(arr, send_counts, comm, recv_counts=None, out=None):
    """Send consecutive row blocks of ``arr`` to every rank (``MPI_Alltoallv``).

    Parameters
    ----------
    arr : ndarray, shape (n, ...)
        Rows grouped by destination: the first ``send_counts[0]`` rows go to rank 0, ...
    send_counts : array_like of int, shape (size,)
    comm : mpi4py communicator
    recv_counts : array_like of int, optional
        Rows coming from each rank, when known (saves an ``Alltoall``).
    out : ndarray, optional
        C-contiguous array of ``sum(recv_counts)`` rows (same row shape and dtype) to
        receive into, instead of a new one.

    Returns
    -------
    recv : ndarray, shape (sum(recv_counts), ...)
        Rows received, ordered by source rank (each source's rows in their order).
    recv_counts : ndarray of int64
    """
    require_comm(comm, "alltoallv_rows")
    send_counts = np.asarray(send_counts, dtype=np.int64)
    if int(send_counts.sum()) != len(arr):
        raise ValueError(f"send_counts sum to {int(send_counts.sum())}, array has {len(arr)} rows")
    if not is_parallel(comm):
        if out is not None:
            out[...] = arr
            return out, send_counts.copy()
        return arr, send_counts.copy()
    arr = np.ascontiguousarray(arr)
    if recv_counts is None:
        recv_counts = np.empty_like(send_counts)
        comm.Alltoall(send_counts, recv_counts)
    recv_counts = np.asarray(recv_counts, dtype=np.int64)
    shape = (int(recv_counts.sum()),) + arr.shape[1:]
    if out is None:
        recv = np.empty(shape, dtype=arr.dtype)
    elif out.shape != shape or out.dtype != arr.dtype or not out.flags.c_contiguous:
        raise ValueError(f"alltoallv_rows: out must be C-contiguous {shape} {arr.dtype}, got "
                         f"{out.shape} {out.dtype}")
    else:
        recv = out
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


def gather_rows(arr, comm, root=0):
    """Rows of every rank concatenated in rank order on ``root`` (``None`` elsewhere).

    For results of moderate size (tests, summaries); whole-frame arrays are written in
    parallel instead.  Collective.
    """
    arr = np.ascontiguousarray(arr)
    if not is_parallel(require_comm(comm, "gather_rows")):
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


def send_array(arr, dest, comm, tag=0):
    """Send the contiguous array ``arr`` to rank ``dest`` (point to point; blocking).

    The receiver posts :func:`recv_array_into` with a buffer of the same shape and dtype.
    Keep messages moderate (bounded chunks): the element count is a C int.
    """
    require_comm(comm, "send_array").Send(np.ascontiguousarray(arr), dest=dest, tag=tag)


def recv_array_into(buf, source, comm, tag=0):
    """Receive into the contiguous array ``buf`` what rank ``source`` sent with
    :func:`send_array` (point to point; blocking); returns ``buf``."""
    require_comm(comm, "recv_array_into").Recv(buf, source=source, tag=tag)
    return buf


def scatter(objs, comm, root=0):
    """Object ``objs[r]`` (a list given on ``root``, ignored elsewhere) to rank ``r``."""
    if not is_parallel(require_comm(comm, "scatter")):
        return objs[0]
    return comm.scatter(objs if comm.rank == root else None, root=root)


def scatter_blocks(arr, n, comm, root=0):
    """Rows ``[r n/P, (r+1) n/P)`` of ``arr`` (read on ``root`` only) to rank ``r``."""
    if not is_parallel(require_comm(comm, "scatter_blocks")):
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


def bcast_into(buf, comm, root=0, chunk_bytes=1 << 28):
    """Broadcast the contents of the contiguous array ``buf`` in place, in byte chunks
    (counts stay below the 32-bit limit of classic MPI calls)."""
    if not is_parallel(require_comm(comm, "bcast_into")):
        return buf
    from mpi4py import MPI

    flat = buf.reshape(-1).view(np.uint8)
    for start in range(0, len(flat), chunk_bytes):
        comm.Bcast([flat[start:start + chunk_bytes], MPI.BYTE], root=root)
    return buf


def redistribute(arrays, dest, comm):
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
    comm : mpi4py communicator

    Returns
    -------
    list of ndarray
        Received rows, grouped by source rank; the order within a source's block is
        unspecified (identical for every array).
    """
    from ..io._kernels import partition_rows

    _, size = rank_size(require_comm(comm, "redistribute"))
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


# ---------------------------------------------------------------------- MPI-IO files


def file_create(path, comm):
    """Open ``path`` for writing by every rank of ``comm`` (``MPI.File.Open`` with
    ``MODE_WRONLY | MODE_CREATE``; collective).  An existing file is not truncated.

    Raises ``mpi4py.MPI.Exception`` (or ``OSError``) when it cannot be opened.
    """
    from mpi4py import MPI

    return MPI.File.Open(require_comm(comm, "file_create"), path,
                         MPI.MODE_WRONLY | MPI.MODE_CREATE)


def file_write_at_all(fh, offset, buf):
    """Write ``buf`` at byte ``offset`` of the file ``fh`` (``Write_at_all``): every rank
    of the file's communicator calls it, the same number of times."""
    fh.Write_at_all(offset, buf)


def file_close(fh):
    """Close the file ``fh`` (collective over its communicator)."""
    fh.Close()
