"""Per-rank runtime: threads, Numba compile-cache warm-up, failure handling, memory.

* :func:`configure_threads` -- Numba threads per rank default to
  ``cores on the node / ranks on the node`` (at least 1), so ``mpiexec -n 2`` on a 2-core
  machine does not oversubscribe; overridable by argument or ``QUESTS_HPC_NUM_THREADS``.
* :func:`warm_up` -- compile (or load from Numba's cache) every kernel in a safe order:
  world rank 0 first, then one rank per node, then all other ranks.  Cache files are
  written once, by one process at a time, and no rank compiles what another has cached.
* :func:`abort_on_error` / :func:`install_excepthook` -- an exception on any rank prints
  its traceback prefixed with the rank number and ends every rank with
  ``COMM_WORLD.Abort(1)``: a non-zero exit within seconds, never a hang.
* :func:`initialize` -- all of the above at the start of a job.
* :func:`collective_errors` -- for stages whose failure is an expected outcome (bad input
  on one rank): every rank learns that some rank failed and raises, so all leave the
  stage together and no rank is left waiting in a later collective.
"""

import contextlib
import os
import resource
import sys
import time
import traceback

import numpy as np
from mpi4py import MPI

from .. import threads as _threads
from ..errors import QuestsInputError

ENV_THREADS = "QUESTS_HPC_NUM_THREADS"
#: Seconds a failing rank waits after printing its traceback before aborting every rank.
ABORT_GRACE_S = 0.2


class RankFailedError(RuntimeError):
    """Raised on the ranks that did not fail when another rank failed in a stage.

    Attributes
    ----------
    failures : list of (int, str)
        Rank and one-line message of every rank that failed.
    """

    def __init__(self, failures):
        self.failures = list(failures)
        r, msg = self.failures[0]
        more = f" (and {len(self.failures) - 1} more rank(s))" if len(self.failures) > 1 else ""
        super().__init__(f"rank {r} failed: {msg}{more}")


class RankInputError(RankFailedError, QuestsInputError):
    """:class:`RankFailedError` where the failed rank's error was bad input.

    Also a :class:`~quests_hpc.errors.QuestsInputError` (a ``ValueError``), so callers
    (the CLI) handle it on every rank as they handle the input error itself.
    """


def node_comm(comm=None):
    """Communicator of the ranks sharing this node (``Split_type(COMM_TYPE_SHARED)``)."""
    comm = MPI.COMM_WORLD if comm is None else comm
    return comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)


def cores_available():
    """Cores this process may run on (its CPU affinity set, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(ranks_on_node, cores=None):
    """Threads per rank: ``cores // ranks_on_node``, at least 1.

    When the launcher binds each rank to a subset of the cores (its affinity set is
    smaller than the node), that subset is the rank's share already.
    """
    node_cores = os.cpu_count() or 1
    cores = cores_available() if cores is None else int(cores)
    if cores < node_cores:
        return max(1, cores)
    return max(1, cores // max(1, int(ranks_on_node)))


def configure_threads(comm=None, n=None):
    """Set the Numba threads of this rank (and hold BLAS to one thread, via threadpoolctl).

    Collective over ``comm`` (it splits a node communicator).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Defaults to ``COMM_WORLD``.
    n : int, optional
        Explicit thread count; otherwise ``QUESTS_HPC_NUM_THREADS``; otherwise
        :func:`default_threads` for the ranks on this node.

    Returns
    -------
    int
        Threads applied.
    """
    nc = node_comm(comm)
    ranks_on_node = nc.size
    nc.Free()
    if n is None:
        env = os.environ.get(ENV_THREADS)
        n = int(env) if env else default_threads(ranks_on_node)
    n = _threads.set_num_threads(int(n))
    try:
        # BLAS stays single-threaded: the kernel sums run one BLAS call per worker thread
        # (quests_hpc.information), and the pipeline's own products are tall and skinny
        # ((n, 3) @ (3, 3)), which multi-threaded OpenBLAS runs 2-3x slower.
        import threadpoolctl

        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        pass
    return n


def _warm_kernels(callables):
    for fn in callables:
        fn()


def default_warmups(size=1):
    """Tiny calls that compile every Numba kernel a pipeline run uses, by signature.

    ``size`` is the number of ranks (some kernels are typed by the rank dtype).
    """
    from ..descriptors import local_descriptors
    from .decomposition import build_grid
    from .halo import ghost_targets

    rng = np.random.default_rng(0)
    pts = rng.random((12, 3)) * 4.0

    def descriptors():
        local_descriptors(pts, 4, k=4, cutoff=3.0)

    def halo():
        from mpi4py import MPI as _MPI

        grid = build_grid(_MPI.COMM_SELF, pts, np.eye(3) * 4.0, True)
        ghost_targets(grid, grid.fractional(pts), 0, 3.0)

    def redistribute():
        # the in-place grouping kernel of comm.redistribute, for the row types it moves
        try:
            from ..io._kernels import partition_rows
            from .comm import rank_dtype, row_view
        except ImportError:
            return
        for a in (np.zeros(4, np.int64), np.zeros((4, 3)), np.zeros(4, np.int32)):
            d = (np.arange(4) % size).astype(rank_dtype(size))
            partition_rows(d, row_view(a), size)

    calls = [descriptors, halo, redistribute]
    try:
        from .. import information

        y = rng.random((3, 5))
        calls.append(lambda: information.log_kernel_sum(y, y, 0.5))
    except (ImportError, AttributeError):
        pass
    return calls


def warm_up(comm=None, callables=None):
    """Compile or cache-load every kernel without N-fold compiles (collective).

    World rank 0 runs ``callables`` first (compiling and writing Numba's cache); then the
    first rank of every other node (loading the cache where the file system is shared,
    compiling into a node-local cache otherwise); then every remaining rank, which only
    loads from the cache.  Barriers separate the three waves.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    callables = default_warmups(comm.size) if callables is None else callables
    nc = node_comm(comm)
    try:
        with abort_on_error(comm):
            if comm.rank == 0:
                _warm_kernels(callables)
        comm.Barrier()
        with abort_on_error(comm):
            if nc.rank == 0 and comm.rank != 0:
                _warm_kernels(callables)
        comm.Barrier()
        with abort_on_error(comm):
            if nc.rank != 0:
                _warm_kernels(callables)
        comm.Barrier()
    finally:
        nc.Free()


def initialize(comm=None, threads=None, warm=True, excepthook=True):
    """Start-of-job set-up for an MPI run of the pipeline (collective).

    1. :func:`install_excepthook` (an uncaught exception on any rank aborts the job);
    2. :func:`configure_threads` (``threads`` or the per-node default);
    3. :func:`warm_up` (compile or load every Numba kernel, one wave at a time).

    Returns
    -------
    int
        Threads per rank applied.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    if excepthook:
        install_excepthook()
    n = configure_threads(comm, threads)
    if warm:
        warm_up(comm)
    return n


def _report(exc_type, exc, tb, rank):
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    prefix = f"[rank {rank}] "
    # One write, then a moment for the launcher to forward it: MPICH's proxy relays a
    # rank's stderr asynchronously, and an Abort right after two writes lost the second
    # (the traceback) now and then.
    sys.stderr.write(f"{prefix}unhandled exception; aborting all ranks\n" + "".join(
        prefix + line + "\n" for line in text.rstrip("\n").split("\n")))
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_S)


@contextlib.contextmanager
def abort_on_error(comm=None, errorcode=1):
    """Context manager: any exception inside prints its traceback and aborts every rank.

    ``SystemExit(0)`` and ``KeyboardInterrupt`` on a single-rank run propagate normally.
    """
    comm = MPI.COMM_WORLD if comm is None else comm
    try:
        yield
    except SystemExit as e:
        if e.code in (None, 0):
            raise
        _report(type(e), e, e.__traceback__, MPI.COMM_WORLD.rank)
        MPI.COMM_WORLD.Abort(int(e.code) if isinstance(e.code, int) else errorcode)
    except BaseException as e:  # noqa: BLE001 -- every failure must end the job
        _report(type(e), e, e.__traceback__, MPI.COMM_WORLD.rank)
        MPI.COMM_WORLD.Abort(errorcode)


def install_excepthook(errorcode=1):
    """Make an uncaught exception on any rank print ``[rank r]`` + traceback and Abort."""

    def hook(exc_type, exc, tb):
        _report(exc_type, exc, tb, MPI.COMM_WORLD.rank)
        MPI.COMM_WORLD.Abort(errorcode)

    sys.excepthook = hook
    return hook


@contextlib.contextmanager
def collective_errors(comm):
    """Collective context manager: if the block raises on any rank, it raises on all.

    The failing rank re-raises its own exception; the others raise
    :class:`RankInputError` (a ``QuestsInputError``) when the first failure was bad input,
    else :class:`RankFailedError`, naming the failed ranks.  One ``allgather`` of a short
    message at the end of the block (whether or not it failed).
    """
    failure = None
    try:
        yield
    except Exception as e:  # noqa: BLE001 -- shared with every rank below
        failure = e
    msg = None
    if failure is not None:
        msg = (f"{type(failure).__name__}: {failure}", isinstance(failure, QuestsInputError))
    failures = [(r, m) for r, m in enumerate(comm.allgather(msg)) if m is not None]
    if failure is not None:
        raise failure
    if failures:
        cls = RankInputError if failures[0][1][1] else RankFailedError
        raise cls([(r, m[0]) for r, m in failures])


def peak_memory_bytes():
    """Peak resident memory of this process so far (``ru_maxrss``), in bytes."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb) * (1 if sys.platform == "darwin" else 1024)


def current_memory_bytes():
    """Current resident memory of this process (Linux ``/proc/self/statm``), in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_memory_bytes()
