"""The thin MPI layer (quests_hpc.parallel.comm): serial behaviour and collectives."""

import numpy as np
import pytest

from quests_hpc.errors import QuestsInputError
from quests_hpc.parallel import comm as pc


def test_serial_helpers():
    MPI = pytest.importorskip("mpi4py.MPI")
    one = MPI.COMM_SELF
    assert pc.rank_size(one) == (0, 1) and not pc.is_parallel(one)
    assert pc.even_bounds(10, 3).tolist() == [0, 3, 6, 10]
    assert pc.even_bounds(2, 4).tolist() == [0, 0, 1, 1, 2]
    assert pc.bcast({"a": 1}, one) == {"a": 1} and pc.allgather(3, one) == [3]
    assert pc.allreduce(np.array([1, 2]), "max", one).tolist() == [1, 2]
    for x in (1.5, 3, np.int64(4), np.array(2.0)):  # a scalar in, a numpy scalar out
        got = pc.allreduce(x, "min", one)
        assert np.ndim(got) == 0 and got == x, (x, got)
    assert pc.exscan_sum(5, one) == 0
    assert pc.rank_dtype(4) == np.int16 and pc.rank_dtype(100000) == np.int32
    pc.raise_if_any(None, one)
    with pytest.raises(QuestsInputError, match="boom"):
        pc.raise_if_any(QuestsInputError("boom"), one)
    with pytest.raises(ZeroDivisionError, match="serial"):
        with pc.collective_errors(one):
            raise ZeroDivisionError("serial")


def test_serial_object_collectives_and_files(tmp_path):
    """gather, ranks_on_node, barrier_or_abort on COMM_SELF: no message, no abort; an
    MPI-IO file written by one rank holds exactly its bytes."""
    MPI = pytest.importorskip("mpi4py.MPI")
    one = MPI.COMM_SELF
    assert pc.gather({"a": 1}, one) == [{"a": 1}]
    assert pc.ranks_on_node(one) == 1
    called = []
    pc.barrier_or_abort(one, 0.0, 3, on_timeout=lambda: called.append(1))
    assert called == []
    p = tmp_path / "f.bin"
    p.write_bytes(b"0123456789")  # not truncated by file_create
    fh = pc.file_create(str(p), one)
    pc.file_write_at_all(fh, 2, np.frombuffer(b"ab", dtype=np.uint8))
    pc.file_close(fh)
    assert p.read_bytes() == b"01ab456789"


CALLS = {  # every function of parallel.comm taking a communicator, with None in its place
    "rank_size": lambda: pc.rank_size(None),
    "is_parallel": lambda: pc.is_parallel(None),
    "bcast": lambda: pc.bcast(1, None),
    "allgather": lambda: pc.allgather(1, None),
    "allreduce": lambda: pc.allreduce(np.zeros(2), "sum", None),
    "exscan_sum": lambda: pc.exscan_sum(1, None),
    "raise_if_any": lambda: pc.raise_if_any(None, None),
    "collective_errors": lambda: pc.collective_errors(None).__enter__(),
    "alltoallv_rows": lambda: pc.alltoallv_rows(np.zeros(2), [2], None),
    "gather_rows": lambda: pc.gather_rows(np.zeros(2), None),
    "scatter_blocks": lambda: pc.scatter_blocks(np.zeros(2), 2, None),
    "bcast_into": lambda: pc.bcast_into(np.zeros(2), None),
    "redistribute": lambda: pc.redistribute([np.zeros(2)], np.zeros(2, int), None),
    "scatter": lambda: pc.scatter([1], None),
    "gather": lambda: pc.gather(1, None),
    "ranks_on_node": lambda: pc.ranks_on_node(None),
    "barrier_or_abort": lambda: pc.barrier_or_abort(None, 1.0, 1),
    "send_array": lambda: pc.send_array(np.zeros(2), 0, None),
    "recv_array_into": lambda: pc.recv_array_into(np.zeros(2), 0, None),
    "file_create": lambda: pc.file_create("x", None),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_function_refuses_a_missing_communicator(name):
    with pytest.raises(TypeError) as e:
        CALLS[name]()
    assert str(e.value) == f"{name}(): comm is None; pass MPI.COMM_SELF for a serial run"


def test_comm_is_a_required_argument_everywhere():
    import inspect

    for name in CALLS:
        sig = inspect.signature(getattr(pc, name))
        assert sig.parameters["comm"].default is inspect.Parameter.empty, name


def test_row_types_come_from_dtlib_and_match_the_numpy_row_size():
    MPI = pytest.importorskip("mpi4py.MPI")
    for dtype, shape in [("f8", (3,)), ("i8", ()), ("i2", (2, 2)), ("?", (5,)), ("S7", ()),
                         ("c16", (1,)), ("u1", (0,))]:
        t = pc.row_type(dtype, shape)
        try:
            assert t.Get_size() == np.dtype(dtype).itemsize * int(np.prod(shape)), dtype
        finally:
            t.Free()
    src = open(pc.__file__).read()
    assert "_typedict" not in src and "dtlib.from_numpy_dtype" in src
    assert MPI.COMM_SELF.Get_size() == 1


def test_row_view_and_serial_redistribute():
    a = np.arange(12, dtype=np.float64).reshape(4, 3)
    v = pc.row_view(a)
    assert v.shape == (4, 3) and v.dtype == np.uint64 and np.shares_memory(v, a)
    assert pc.row_view(np.zeros(5, np.int32)).shape == (5, 1)
    assert pc.row_view(np.zeros((5, 3), np.int16)).dtype == np.uint16
    assert pc.row_view(np.zeros((5, 0))).shape == (5, 0)
    with pytest.raises(ValueError, match="contiguous"):
        pc.row_view(a[:, :2])
    arrays = [a, np.arange(4)]
    one = pytest.importorskip("mpi4py.MPI").COMM_SELF
    out = pc.redistribute(arrays, np.zeros(4, int), one)
    assert arrays == [] and np.array_equal(out[0], np.arange(12.0).reshape(4, 3))
    with pytest.raises(ValueError, match="destination ranks"):
        pc.redistribute([np.zeros(2)], np.array([0, 1]), one)


@pytest.mark.mpi
def test_redistribute_every_dtype_and_shape():
    MPI = pytest.importorskip("mpi4py.MPI")
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    rng = np.random.default_rng(rank)
    n = 1000 + 37 * rank
    gid = rank * 10**6 + np.arange(n)
    dest = rng.integers(0, size, n)
    arrays = [gid.astype(np.int64), (gid * 0.5).reshape(-1, 1).repeat(3, 1),
              (gid % 30000).astype(np.int16), np.zeros((n, 0)), (gid % 7).astype(np.int8).reshape(-1, 1)]
    everything = comm.allgather((gid, dest))
    ids, pos, small, empty, tiny = pc.redistribute(arrays, dest, comm)
    expected = np.concatenate([g[d == rank] for g, d in everything])
    assert np.array_equal(np.sort(ids), np.sort(expected))
    assert np.array_equal(pos, (ids * 0.5).reshape(-1, 1).repeat(3, 1))
    assert np.array_equal(small, (ids % 30000).astype(np.int16))
    assert np.array_equal(tiny[:, 0], (ids % 7).astype(np.int8))
    assert empty.shape == (len(ids), 0)
    # rows grouped by source rank
    src = ids // 10**6
    assert np.all(np.diff(src) >= 0)


@pytest.mark.mpi
def test_collectives():
    MPI = pytest.importorskip("mpi4py.MPI")
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    assert pc.exscan_sum(rank + 1, comm) == rank * (rank + 1) // 2
    assert pc.allreduce(np.array([rank, -rank]), "min", comm).tolist() == [0, -(size - 1)]
    total = pc.allreduce(rank + 1, "sum", comm)
    assert np.ndim(total) == 0 and total == size * (size + 1) // 2
    top = pc.allreduce(float(rank) / 2, "max", comm)
    assert np.ndim(top) == 0 and top == (size - 1) / 2
    assert pc.bcast("x" if rank == 0 else None, comm) == "x"
    send = np.full(size, rank, dtype=np.int64)
    recv, counts = pc.alltoallv_rows(np.repeat(np.arange(size), 2).astype(float), np.full(size, 2),
                                     comm)
    assert counts.tolist() == [2] * size and np.all(recv == rank)
    del send


@pytest.mark.mpi(min_size=2)
def test_gather_node_ranks_point_to_point_and_a_shared_file(mpi_tmp_path):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    got = pc.gather(("r", rank), comm, root=size - 1)
    assert got == ([("r", r) for r in range(size)] if rank == size - 1 else None)
    node = pc.ranks_on_node(comm)
    assert pc.allgather(node, comm) == [size] * size  # the tests run on one machine
    pc.barrier_or_abort(comm, 60.0, 3)  # every rank arrives: returns, no abort
    # point to point: every rank sends rank 0 a block of its own dtype and shape
    if rank == 0:
        for r in range(1, size):
            buf = pc.recv_array_into(np.empty((r, 3), np.int32), r, comm, tag=7)
            np.testing.assert_array_equal(buf, np.full((r, 3), r, np.int32))
    else:
        pc.send_array(np.full((rank, 3), rank, np.int32), 0, comm, tag=7)
    # MPI-IO: every rank writes its rank's byte at its offset
    path = str(mpi_tmp_path / "shared.bin")
    fh = pc.file_create(path, comm)
    pc.file_write_at_all(fh, 2 * rank, np.full(2, 65 + rank, np.uint8))
    pc.file_close(fh)
    comm.Barrier()
    with open(path, "rb") as f:
        assert f.read() == b"".join(bytes([65 + r]) * 2 for r in range(size))


@pytest.mark.mpi
def test_raise_if_any_on_every_rank():
    MPI = pytest.importorskip("mpi4py.MPI")
    comm = MPI.COMM_WORLD
    bad = comm.size - 1
    err = QuestsInputError("rank-local problem") if comm.rank == bad else None
    with pytest.raises(QuestsInputError, match="rank-local problem"):
        pc.raise_if_any(err, comm)
    pc.raise_if_any(None, comm)  # and the communicator still works afterwards
    assert pc.allgather(comm.rank, comm) == list(range(comm.size))


@pytest.mark.mpi(min_size=2)
def test_gather_scatter_rows_and_a_shape_mismatch_raises_on_every_rank():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    rows = np.full((rank + 1, 3), float(rank))
    got = pc.gather_rows(rows, comm, root=0)
    if rank == 0:
        np.testing.assert_array_equal(got[:, 0], np.repeat(np.arange(size), np.arange(1, size + 1)))
    else:
        assert got is None
    n = 7 * size + 1
    whole = np.arange(2 * n, dtype=np.int64).reshape(n, 2) if rank == 0 else None
    part = pc.scatter_blocks(whole, n, comm)
    lo, hi = n * rank // size, n * (rank + 1) // size
    np.testing.assert_array_equal(part[:, 0], 2 * np.arange(lo, hi))
    bad = np.zeros((2, 3 if rank else 4))
    with pytest.raises(ValueError, match="different shapes"):
        pc.gather_rows(bad, comm)  # every rank raises: no rank is left in Gatherv
    comm.Barrier()


@pytest.mark.mpi(min_size=2)
def test_one_error_idiom_messages_types_and_failures_on_every_rank():
    """raise_if_any and collective_errors: the failing ranks raise their own error; the
    others a RankInputError (input) or RankFailedError naming the lowest failing rank."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size

    def outcome(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            return e
        return None

    # two failing ranks (1 and the last): both raise their own, the others rank 1's
    bad = {1, size - 1}
    mine = QuestsInputError(f"bad line on rank {rank}") if rank in bad else None
    e = outcome(lambda: pc.raise_if_any(mine, comm))
    if rank in bad:
        assert e is mine
    else:
        assert type(e) is pc.RankInputError and isinstance(e, QuestsInputError)
        assert str(e) == "(from rank 1) bad line on rank 1"
        assert e.rank == 1 and e.error_type == "QuestsInputError"
        assert e.failures == [(r, f"QuestsInputError: bad line on rank {r}") for r in sorted(bad)]
    # prefix=False: every rank raises the lowest failing rank's message unchanged
    e = outcome(lambda: pc.raise_if_any(mine, comm, prefix=False))
    assert str(e) == "bad line on rank 1" and isinstance(e, QuestsInputError)
    assert (e is mine) == (rank == 1)
    # a non-input failure inside collective_errors: RuntimeError with the type in the text
    def block():
        with pc.collective_errors(comm):
            if rank == size - 1:
                raise ZeroDivisionError("division by zero here")
    e = outcome(block)
    if rank == size - 1:
        assert type(e) is ZeroDivisionError
    else:
        assert type(e) is pc.RankFailedError and not isinstance(e, ValueError)
        assert str(e) == f"(from rank {size - 1}) ZeroDivisionError: division by zero here"
    # root=: only root's error counts, one bcast; keep=: that class is raised everywhere
    class DiskFull(RuntimeError):
        pass

    err = DiskFull("disk full") if rank in (0, 1) else None
    e = outcome(lambda: pc.raise_if_any(err, comm, prefix=False, root=1, keep=(DiskFull,)))
    assert type(e) is DiskFull and str(e) == "disk full" and (e is err) == (rank == 1)
    # the communicator is usable afterwards, on every rank
    assert pc.allgather(rank, comm) == list(range(size))


def test_the_mpi_layer_modules_import_in_one_direction():
    """comm imports no other module of parallel/; decomposition, halo, shared_reference and
    measures do not import runtime (the cycle decomposition <-> runtime is gone); runtime
    imports nothing above the parallel layer.  All imports count, also inside functions."""
    import ast
    import pathlib

    root = pathlib.Path(pc.__file__).parent

    def imports(name):
        tree = ast.parse((root / f"{name}.py").read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                dots = "." * node.level
                out.update(dots + node.module if node.module else dots + a.name for a in node.names)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    assert not {m for m in imports("comm") if m.startswith(".") and not m.startswith("..")}
    for name in ("decomposition", "halo", "shared_reference", "measures"):
        assert not {m for m in imports(name) if "runtime" in m}, name
    above = ("..results", "..campaign", "..analysis", "..cli", "..plotting", "..export",
             "..example", "quests_hpc.results", "quests_hpc.campaign")
    assert not [m for m in imports("runtime") if m.startswith(above)]
