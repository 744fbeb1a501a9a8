"""One MPI layer (issue 10): no module outside :mod:`quests_hpc.parallel` calls an MPI
collective or point-to-point method itself; every exchange goes through the functions of
:mod:`quests_hpc.parallel.comm` (or another module of the parallel layer).

Every module is parsed with :mod:`ast` (nothing is imported): any call ``x.m(...)`` whose
attribute name ``m`` is a communication method of mpi4py (``COLLECTIVE_METHODS``) counts,
whatever ``x`` is (``comm``, ``self.comm``, ``world``, ``MPI.COMM_WORLD``, a window, a
file handle ...).  Names that are also common non-MPI methods (``reduce``, ``scatter``,
...; ``AMBIGUOUS``) count too, except on a receiver that is plainly not MPI (a numpy
ufunc such as ``np.logaddexp.reduce``, :func:`functools.reduce`, a matplotlib axes).
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "quests_hpc"

#: mpi4py methods that communicate (communicators, requests started by them, one-sided
#: windows, MPI-IO files) or create a communicator collectively.
COLLECTIVE_METHODS = frozenset("""
    bcast allgather allreduce alltoall barrier gather scatter reduce scan exscan
    send recv isend irecv ssend issend bsend ibsend sendrecv probe iprobe mprobe improbe
    neighbor_allgather neighbor_alltoall
    Bcast Allgather Allgatherv Allreduce Alltoall Alltoallv Alltoallw Barrier Gather Gatherv
    Scatter Scatterv Reduce Reduce_scatter Reduce_scatter_block Reduce_local Scan Exscan
    Send Recv Isend Irecv Ssend Issend Bsend Ibsend Rsend Irsend Sendrecv Sendrecv_replace
    Probe Iprobe Mprobe Improbe Mrecv
    Ibcast Iallgather Iallgatherv Iallreduce Ialltoall Ialltoallv Ialltoallw Ibarrier
    Igather Igatherv Iscatter Iscatterv Ireduce Ireduce_scatter Ireduce_scatter_block
    Iscan Iexscan
    Neighbor_allgather Neighbor_allgatherv Neighbor_alltoall Neighbor_alltoallv
    Split Split_type Dup Create Create_group Create_cart Create_graph Create_dist_graph
    Create_intercomm Merge Abort
    Win Allocate Allocate_shared Create_dynamic Shared_query Fence Put Get Accumulate
    Get_accumulate Fetch_and_op Compare_and_swap Lock_all Unlock_all Flush Sync
    Write_at_all Read_at_all Write_all Read_all Write_ordered Read_ordered Set_view
    Set_size Preallocate Open Close Free
""".split())

#: Names that also are ordinary methods elsewhere; see ``_not_mpi``.
AMBIGUOUS = frozenset({"reduce", "scatter", "gather", "send", "recv", "scan", "probe",
                       "Flush", "Sync", "Get", "Put", "Create", "Merge", "Win"})

#: Receivers (the first name of ``x`` in ``x.m(...)``) that are never MPI objects for
#: the ambiguous names: numpy ufuncs, functools, matplotlib axes and pyplot.
_NOT_MPI_ROOTS = frozenset({"np", "numpy", "functools", "operator", "ax", "axes", "plt",
                            "fig", "h5py", "f", "h5", "group"})


def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _parallel_aliases(tree):
    """Names bound to modules of the parallel layer (``from ..parallel import comm as
    pcomm``): ``pcomm.bcast(...)`` is a call of the layer, not of mpi4py."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and "parallel" in (node.module or "").split("."):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is None and node.level:
            names.update(a.asname or a.name for a in node.names if a.name == "parallel")
        elif isinstance(node, ast.Import):
            names.update(a.asname for a in node.names
                         if a.asname and "parallel" in a.name.split("."))
    return names


def _not_mpi(call, aliases):
    """True for a call of the parallel layer, or an ambiguous method name on a receiver
    that is plainly not MPI."""
    root = _root_name(call.func.value)
    return root in aliases or (call.func.attr in AMBIGUOUS and root in _NOT_MPI_ROOTS)


def collective_calls(source, filename="<string>"):
    """``(line, "receiver.method")`` of every MPI communication call in ``source``."""
    out = []
    tree = ast.parse(source, filename)
    aliases = _parallel_aliases(tree)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in COLLECTIVE_METHODS and not _not_mpi(node, aliases)):
            out.append((node.lineno, node.col_offset,
                        f"{ast.unparse(node.func.value)}.{node.func.attr}"))
    return [(line, call) for line, _, call in sorted(out)]


def _outside_parallel():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent)
        if rel.parts[1] != "parallel":
            yield rel, path


def test_no_collective_outside_the_parallel_layer():
    found = [f"{rel}:{line}: {call}(...)" for rel, path in _outside_parallel()
             for line, call in collective_calls(path.read_text(), str(path))]
    assert not found, ("MPI calls outside quests_hpc/parallel (use quests_hpc.parallel.comm):\n"
                       + "\n".join(found))


@pytest.mark.parametrize("src, expect", [
    ("comm.bcast(x, root=0)", [(1, "comm.bcast")]),
    ("self.comm.allgather(x)", [(1, "self.comm.allgather")]),
    ("MPI.COMM_WORLD.Barrier()", [(1, "MPI.COMM_WORLD.Barrier")]),
    ("world().Split_type(0)", [(1, "world().Split_type")]),
    ("c.Allreduce(a, b, op=MPI.MIN)", [(1, "c.Allreduce")]),
    ("node.Free()\nreq = comm.Ibarrier()", [(1, "node.Free"), (2, "comm.Ibarrier")]),
    ("comm.gather(x, root=0)", [(1, "comm.gather")]),
    ("MPI.File.Open(comm, p, m).Write_at_all(0, b)",
     [(1, "MPI.File.Open"), (1, "MPI.File.Open(comm, p, m).Write_at_all")]),
    ("np.logaddexp.reduce(a)\nfunctools.reduce(f, xs)\nax.scatter(x, y)", []),
    ("from ..parallel import comm as pcomm\npcomm.bcast(x, comm)\ncomm.Get_rank()", []),
    ("import quests_hpc.parallel.comm as pc\npc.gather(x, comm)", []),
    ("pcomm.bcast(x, comm)", [(1, "pcomm.bcast")]),
])
def test_collective_calls_finds_mpi_calls_only(src, expect):
    assert collective_calls(src) == expect
