"""Per-rank runtime: threads, Numba compile-cache warm-up, abort on an unexpected failure.

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

Collective errors (:func:`~quests_hpc.parallel.comm.collective_errors`) live in
:mod:`quests_hpc.parallel.comm`; memory readings in :mod:`quests_hpc.timing`.  Every
function here takes an explicit communicator (a serial run passes ``MPI.COMM_SELF``).
"""

import contextlib
import os
import sys
import time
import traceback

import numpy as np
from mpi4py import MPI

from .. import threads as _threads
from .comm import require_comm

ENV_THREADS = "QUESTS_HPC_NUM_THREADS"
#: Seconds a failing rank waits after printing its traceback before aborting every rank.
ABORT_GRACE_S = 0.2


def node_comm(comm):
    """Communicator of the ranks of ``comm`` sharing this node (``Split_type``); free it."""
    require_comm(comm, "node_comm")
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


def configure_threads(comm, n=None):
    """Set the Numba threads of this rank (and hold BLAS to one thread, via threadpoolctl).

    Collective over ``comm`` (it splits a node communicator).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The job's communicator (``COMM_SELF`` for a serial run).
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


#: Tiny LAMMPS dumps that take every path of the text reader a run uses: orthogonal
#: box with Cartesian positions (wrapped in place), triclinic box with scaled and with
#: Cartesian positions.
_DUMPS = {
    "ortho.lammpstrj": ("ITEM: BOX BOUNDS pp pp pp\n0 4\n0 4\n0 4\n", "x y z"),
    "tri.lammpstrj": ("ITEM: BOX BOUNDS xy xz yz pp pp pp\n0 4.5 0.5\n0 4 0\n0 4 0\n",
                      "xs ys zs"),
    "tri-xyz.lammpstrj": ("ITEM: BOX BOUNDS xy xz yz pp pp pp\n0 4.5 0.5\n0 4 0\n0 4 0\n",
                          "x y z"),
}


def _read_dumps():
    """Read a tiny dump of each kind (the text parser and wrapping kernels); sort dense
    and sparse ids (the id-order kernels)."""
    import tempfile

    from ..io.lammps_dump import read_lammps_dump

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="quests-hpc-warm-") as d:
        for name, (box, cols) in _DUMPS.items():
            pos = rng.random((8, 3)) * (4.0 if cols == "x y z" else 1.0)
            pos[0] += 4.5 if cols == "x y z" else 1.25  # one atom outside the box
            rows = "".join(f"{i} 1 {p[0]:.6f} {p[1]:.6f} {p[2]:.6f}\n"
                           for i, p in zip(rng.permutation(8) + 1, pos))
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(f"ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n8\n{box}"
                        f"ITEM: ATOMS id type {cols}\n{rows}")
            read_lammps_dump(path, 0, cache=False)
    from ..io.id_order import local_id_range, sort_by_id

    perm = rng.permutation(8).astype(np.int64) + 1
    for ids in (perm, perm * 3):  # dense and sparse ids, as the parallel reader sorts them
        local_id_range(ids)
        sort_by_id({"ids": ids, "pos": pos.copy(), "types": np.ones(8, np.int32)})


def _route():
    """The routing kernels of a frame read by several ranks (not reached on one rank):
    rows grouped by owner rank, received ids placed."""
    from ..io import _kernels as K
    from .routing import _partition

    ids = np.arange(8, 0, -1, dtype=np.int64)
    cols = {"ids": ids, "pos": np.zeros((8, 3)), "types": np.ones(8, np.int32)}
    _partition(cols, 1, 1, 8, np.array([5], np.int64), 2)
    K.place_ids(ids[:4].copy(), 5, np.zeros(4, np.int64))


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

    calls = [descriptors, halo, redistribute, _read_dumps, _route]
    try:
        from .. import information

        y = rng.random((3, 5))
        calls.append(lambda: information.log_kernel_sum(y, y, 0.5))
    except (ImportError, AttributeError):
        pass
    return calls


#: Names of the warm-up groups this process has run (see :func:`warm_up`).
_WARMED = set()


def warm_up(comm, callables=None, name=None):
    """Compile or cache-load every kernel without N-fold compiles (collective).

    World rank 0 runs ``callables`` first (compiling and writing Numba's cache); then the
    first rank of every other node (loading the cache where the file system is shared,
    compiling into a node-local cache otherwise); then every remaining rank, which only
    loads from the cache.  Barriers separate the three waves.

    ``name`` names the group, or a tuple of the groups ``callables`` cover (default:
    ``"default"`` for :func:`default_warmups`, None for explicit ``callables``): when this
    process has run every one of them already on every rank of ``comm`` (one allreduce),
    nothing is done.  Returns True when the calls ran.
    """
    require_comm(comm, "warm_up")
    if callables is None:
        name = name or "default"
    names = (name,) if isinstance(name, str) else tuple(name or ())
    # skipped only when every rank of ``comm`` has run them (a rank that warmed up on
    # another communicator before must not leave the others waiting at a barrier)
    if names and comm.allreduce(int(_WARMED.issuperset(names)), op=MPI.MIN):
        return False
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
    _WARMED.update(names)
    return True


def initialize(comm, threads=None, warm=True, excepthook=True):
    """Start-of-job set-up for an MPI run of the pipeline (collective).

    1. :func:`install_excepthook` (an uncaught exception on any rank aborts the job);
    2. :func:`configure_threads` (``threads`` or the per-node default);
    3. :func:`warm_up` (compile or load every Numba kernel, one wave at a time).

    Returns
    -------
    int
        Threads per rank applied.
    """
    require_comm(comm, "initialize")
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
def abort_on_error(comm, errorcode=1):
    """Context manager: any exception inside prints its traceback and aborts every rank.

    ``SystemExit(0)`` propagates normally.  The job is aborted through ``COMM_WORLD``
    whatever ``comm`` is (an abort on a sub-communicator may leave other ranks running).
    """
    require_comm(comm, "abort_on_error")
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
