"""Distributed H, diversity, novelty/overlap and the reference layouts equal serial."""

import mpi_frames
import numpy as np
import pytest

from quests_hpc import information
from quests_hpc.descriptors import descriptors_from_arrays

MPI = pytest.importorskip("mpi4py.MPI")

H = [0.015, 0.4]
TOL = 1e-12


def _data():
    """(frame descriptors, reference descriptors), the same on every rank."""
    f = mpi_frames.orthogonal(seed=31)
    x = descriptors_from_arrays(f["positions"], f["cell"], f["pbc"])
    return x, mpi_frames.reference_descriptors()


def _uneven_rows(n, comm):
    """Row slices of an uneven split (rank r gets a share growing with r; some may be empty)."""
    w = np.arange(comm.size) ** 2 + (0 if comm.size > 2 else 1)
    b = np.concatenate([[0], np.cumsum(np.floor(n * w / w.sum()).astype(int))])
    b[-1] = n
    return slice(int(b[comm.rank]), int(b[comm.rank + 1]))


@pytest.mark.mpi
def test_entropy_and_diversity_of_distributed_rows_equal_serial():
    from quests_hpc.parallel import measures

    comm = MPI.COMM_WORLD
    x, _ = _data()
    mine = x[_uneven_rows(len(x), comm)]
    h_par, d_par = measures.entropy_and_diversity(comm, mine, H)
    h1 = measures.entropy(comm, mine, 0.4)
    d1 = measures.diversity(comm, mine, 0.4)
    np.testing.assert_allclose(h_par, information.entropy(x, H), rtol=0, atol=TOL)
    np.testing.assert_allclose(d_par, information.diversity(x, H), rtol=0, atol=TOL)
    assert isinstance(h1, float) and abs(h1 - information.entropy(x, 0.4)) <= TOL
    assert isinstance(d1, float) and abs(d1 - information.diversity(x, 0.4)) <= TOL


def _first_ranks(comm, k):
    """Communicator of world ranks ``0 .. k-1`` (``None`` on the others)."""
    sub = comm.Split(0 if comm.rank < k else MPI.UNDEFINED, key=comm.rank)
    return None if sub == MPI.COMM_NULL else sub


def _on_every_rank_count(comm, fn):
    """``{k: fn(sub)}`` for sub-communicators of k = 1 .. size ranks, on every rank
    (computed where rank 0 takes part, i.e. in every one of them)."""
    out = {}
    for k in range(1, comm.size + 1):
        sub = _first_ranks(comm, k)
        if sub is not None:
            out[k] = fn(sub)
            sub.Free()
    return comm.bcast(out if comm.rank == 0 else None, root=0)


@pytest.mark.mpi
def test_h_and_d_do_not_depend_on_the_rank_count():
    """H and D of one data set split unevenly over 1, 2, .. size ranks: all within 1e-12 of
    serial and of each other (each row's kernel sum is blocked differently per split, to
    about 1e-16; the reductions over rows are exact)."""
    from quests_hpc.parallel import measures

    comm = MPI.COMM_WORLD
    x, ref = _data()
    x = np.concatenate([x, ref])

    def run(sub):
        h, d = measures.entropy_and_diversity(sub, x[_uneven_rows(len(x), sub)], H)
        return np.asarray(h), np.asarray(d)

    res = _on_every_rank_count(comm, run)
    assert sorted(res) == list(range(1, comm.size + 1))
    h_serial, d_serial = information.entropy(x, H), information.diversity(x, H)
    for k, (h, d) in res.items():
        np.testing.assert_allclose(h, h_serial, rtol=0, atol=TOL, err_msg=f"H on {k} ranks")
        np.testing.assert_allclose(d, d_serial, rtol=0, atol=TOL, err_msg=f"D on {k} ranks")
        np.testing.assert_allclose(h, res[1][0], rtol=0, atol=TOL, err_msg=f"H on {k} vs 1")
        np.testing.assert_allclose(d, res[1][1], rtol=0, atol=TOL, err_msg=f"D on {k} vs 1")


@pytest.mark.mpi
def test_reductions_over_rows_are_exact_for_every_split():
    """Given the same per-row log S, H is the same bits however the rows are split (exact
    sum, rounded once: math.fsum of all rows), and D too (an exact sum of exp(v - max))."""
    import math

    from quests_hpc.parallel import measures

    comm = MPI.COMM_WORLD
    x, _ = _data()
    # the same values on every rank: rank 0's (self_log_kernel_sum on several threads is not
    # bitwise reproducible from run to run; the reductions are what is tested here)
    log_s = comm.bcast(information.self_log_kernel_sum(x, H) if comm.rank == 0 else None)
    log_s[:, ::7] *= 1e6  # spread the magnitudes: a plain or pairwise sum would round
    n = log_s.shape[1]

    def run(sub):
        mine = log_s[:, _uneven_rows(n, sub)]
        return (np.asarray(measures.entropy_from_log_sums(sub, mine, H)),
                np.asarray(measures.diversity_from_log_sums(sub, -np.abs(mine), H)))

    res = _on_every_rank_count(comm, run)
    exact_h = np.array([math.log(n) - math.fsum(row) / n for row in log_s])
    for k, (h, d) in res.items():
        assert np.array_equal(h, exact_h), k
        assert np.array_equal(d, res[1][1]), k
    np.testing.assert_allclose(res[1][1], information.diversity_from_log_sums(-np.abs(log_s)),
                               rtol=1e-15, atol=0)


@pytest.mark.mpi
@pytest.mark.parametrize("layout", ["distributed", "shared", "sharded"])
def test_overlap_novelty_and_dh_equal_serial(layout):
    """Test rows and reference both spread over ranks, or a shared / sharded reference."""
    from quests_hpc.parallel import measures
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    x, ref = _data()
    mine = x[np.array_split(np.arange(len(x)), comm.size)[comm.rank]]
    if layout == "distributed":
        reference = ref[_uneven_rows(len(ref), comm)]
    else:
        reference = SharedReference.from_root(comm, ref if comm.rank == 0 else None,
                                              layout=layout)
    for h in (0.4, 2.0):
        dh = measures.delta_entropy(comm, mine, reference, h)
        ov = measures.overlap(comm, mine, reference, h)
        nv = measures.novelty(comm, mine, reference, h)
        serial_dh = information.delta_entropy(mine, ref, h)
        assert np.abs(dh - serial_dh).max() <= TOL
        assert abs(ov - information.overlap(x, ref, h)) <= TOL
        assert abs(nv - information.novelty(x, ref, h)) <= TOL
        assert abs(ov + nv - 1.0) <= TOL
    if layout != "distributed":
        reference.free()


@pytest.mark.mpi
def test_shared_reference_is_one_copy_per_node():
    from quests_hpc.parallel.runtime import node_comm
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    _, ref = _data()
    with SharedReference.from_root(comm, ref if comm.rank == 0 else None) as R:
        same = bool(np.array_equal(R.local, ref))
        held = comm.allgather(R.local_nbytes())
        nc = node_comm(comm)
        nodes = comm.allreduce(1 if nc.rank == 0 else 0)
        nc.Free()
        layout = R.layout
    assert layout == "shared" and same
    assert sum(held) == nodes * ref.nbytes  # the node's first rank holds the window


@pytest.mark.mpi
def test_memory_budget_shards_the_reference():
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    _, ref = _data()
    R = SharedReference.from_root(comm, ref if comm.rank == 0 else None,
                                  memory_budget=ref.nbytes - 1)
    rows = comm.allgather(len(R.local))
    firsts = comm.allgather(R.local[:1].copy())
    R.free()
    assert R.layout == "sharded" and sum(rows) == len(ref)
    assert max(rows) - min(rows) <= 1
    got = np.concatenate([f for f, r in zip(firsts, rows) if r])
    starts = np.concatenate([[0], np.cumsum(rows)[:-1]])[np.array(rows) > 0]
    np.testing.assert_array_equal(got, ref[starts])


@pytest.mark.mpi
def test_from_shards_and_empty_ranks():
    """A reference read in slices (some ranks empty) and test rows absent on some ranks."""
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    x, ref = _data()
    shard = ref[_uneven_rows(len(ref), comm)]
    y = x[:5] if comm.rank == comm.size - 1 else x[:0]
    out = {}
    for layout in ("shared", "sharded"):
        with SharedReference.from_shards(comm, shard, layout=layout) as R:
            out[layout] = -R.log_kernel_sum(y, H)
    serial = information.delta_entropy(y, ref, H) if len(y) else np.empty((2, 0))
    for layout in out:
        assert out[layout].shape == (2, len(y))
        assert np.abs(out[layout] - serial).max(initial=0.0) <= TOL


@pytest.mark.mpi
def test_bad_rows_on_one_rank_fail_the_ring_on_every_rank():
    """A wrong width or a NaN on the last rank raises everywhere before any ring message."""
    from quests_hpc.errors import QuestsInputError
    from quests_hpc.parallel.shared_reference import ring_log_kernel_sum

    comm = MPI.COMM_WORLD
    x, ref = _data()
    last = comm.rank == comm.size - 1
    shard = ref[_uneven_rows(len(ref), comm)]
    y_wide = np.ones((3, 70)) if last else x[:3]
    with pytest.raises(QuestsInputError, match="width"):
        ring_log_kernel_sum(comm, y_wide, shard, 0.4)
    y_nan = x[:3].copy()
    if last:
        y_nan[1, 2] = np.nan
    with pytest.raises(QuestsInputError, match="non-finite"):
        ring_log_kernel_sum(comm, y_nan, shard, 0.4)
    with pytest.raises(QuestsInputError, match="bandwidth"):
        ring_log_kernel_sum(comm, x[:3], shard, -1.0)
    # the ring still works afterwards (no message was left in flight)
    got = ring_log_kernel_sum(comm, x[:3], shard, 0.4)
    assert np.abs(got - information.log_kernel_sum(x[:3], ref, 0.4)).max() <= TOL


def _rss_pss_mb():
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            p = line.split()
            if p[0] in ("Rss:", "Pss:"):
                out[p[0][:-1]] = int(p[1]) / 1024.0
    return out


@pytest.mark.mpi(min_size=2)
@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/smaps_rollup"),
                    reason="needs Linux /proc/self/smaps_rollup")
def test_shared_window_pages_are_shared_between_ranks():
    """Every rank reads the whole reference, but its proportional memory (PSS) grows by
    only its share of one copy: the pages are the node's, not the rank's."""
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    n, d = 80_000, 63  # 38 MiB
    x = np.random.default_rng(3).random((n, d)) if comm.rank == 0 else None
    mib = n * d * 8 / 2**20
    comm.Barrier()
    before = _rss_pss_mb()
    R = SharedReference.from_root(comm, x, layout="shared")
    total = float(R.local.sum())  # touch every page on every rank
    after = _rss_pss_mb()
    ok_sum = comm.allreduce(abs(total - float(np.sum(x)) if comm.rank == 0 else 0.0), op=MPI.MAX)
    R.free()
    grow = {k: after[k] - before[k] for k in after}
    if comm.rank != 0:
        assert grow["Rss"] > 0.8 * mib  # the pages are mapped and read here ...
        assert grow["Pss"] < mib / comm.size + 0.25 * mib  # ... but counted as a share
    assert ok_sum < 1e-6 * n * d


def _gather_rows_in_order(comm, a):
    """``a`` of every rank, concatenated along the last axis, on every rank."""
    return np.concatenate(comm.allgather(a), axis=-1)


@pytest.mark.mpi
def test_sharded_dh_equals_the_shared_layout_for_every_rank_count():
    """dH of test rows split unevenly against a reference given in uneven slices, on 1, 2,
    .. size ranks: the sharded layout (rows moved to an even split, ring passes) equals the
    shared layout and serial within 1e-12 for every rank count, and a second pass (after
    every shard came home) gives the same bits."""
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    x, ref = _data()
    y = x[:40]

    def run(sub):
        shard = ref[_uneven_rows(len(ref), sub)]
        mine = y[_uneven_rows(len(y), sub)]
        out = {}
        for layout in ("shared", "sharded"):
            with SharedReference.from_shards(sub, shard, layout=layout) as R:
                first = -R.log_kernel_sum(mine, H)
                again = -R.log_kernel_sum(mine, H)
                held = R.local.copy() if layout == "sharded" else None
                rows = R.local_rows()
            out[layout] = _gather_rows_in_order(sub, first)
            out[layout + " again"] = bool(sub.allreduce(int(np.array_equal(first, again)),
                                                        op=MPI.MIN))
            if held is not None:
                out["home"] = bool(sub.allreduce(int(np.array_equal(held, ref[rows])), op=MPI.MIN))
        return out

    got = _on_every_rank_count(comm, run)
    serial = information.delta_entropy(y, ref, H)
    assert sorted(got) == list(range(1, comm.size + 1))
    for k, out in got.items():
        assert out["sharded again"] and out["shared again"] and out["home"], k
        for layout in ("shared", "sharded"):
            assert out[layout].shape == serial.shape
            assert np.abs(out[layout] - serial).max() <= TOL, (k, layout)
            assert np.abs(out[layout] - got[1][layout]).max() <= TOL, (k, layout)
        assert np.abs(out["sharded"] - out["shared"]).max() <= TOL, k


@pytest.mark.mpi
def test_sharded_reference_never_holds_more_than_a_shard_and_one_ring_buffer():
    """from_shards(layout="sharded") of very uneven slices (rank 0 holds half, some ranks
    none): every rank ends with its even shard only (local.nbytes), building it allocated
    no more than that shard (never the whole reference on one rank), and a ring pass adds
    one ring buffer to what the kernel sum of one block allocates by itself."""
    import tracemalloc

    from quests_hpc.parallel.comm import even_bounds
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    size, rank = comm.size, comm.rank
    n, d = 5000 * size + 3, 30
    ref = np.random.default_rng(5).random((n, d))
    cuts = np.array([0] + [n // 2 + (n - n // 2) * r // max(size - 1, 1) for r in range(size)])
    cuts[-1] = n
    if size > 2:
        cuts[2] = cuts[1]  # rank 1 holds nothing
    mine = ref[cuts[rank]:cuts[rank + 1]].copy()
    del ref
    bounds = even_bounds(n, size)
    shard_bytes = int(np.diff(bounds).max()) * d * 8
    slack = 256 << 10
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        R = SharedReference.from_shards(comm, mine, layout="sharded")
        built_peak = tracemalloc.get_traced_memory()[1] - base
        held = tracemalloc.get_traced_memory()[0] - base
        y = np.random.default_rng(rank).random((2, d))
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        dh = -R.log_kernel_sum(y, 0.4)
        ring_peak = tracemalloc.get_traced_memory()[1] - base
        # what the kernel sum itself allocates for one block (its centred copy, ...)
        block = np.random.default_rng(7).random((int(np.diff(bounds).max()), d))
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        information.log_kernel_sum(y, block, 0.4)
        kernel_peak = tracemalloc.get_traced_memory()[1] - base
        del block
    finally:
        tracemalloc.stop()
    assert R.layout == "sharded" and R.n == n and R.shard_offsets.tolist() == bounds.tolist()
    assert R.local_rows() == slice(int(bounds[rank]), int(bounds[rank + 1]))
    assert R.local.nbytes == (bounds[rank + 1] - bounds[rank]) * d * 8
    assert R.local_nbytes() == 2 * shard_bytes
    assert built_peak <= shard_bytes + slack, (built_peak, shard_bytes)
    assert held <= shard_bytes + slack, (held, shard_bytes)
    assert ring_peak <= shard_bytes + kernel_peak + slack, (ring_peak, shard_bytes, kernel_peak)
    # and the shards are the even split of the rows given
    full = np.random.default_rng(5).random((n, d))
    assert np.array_equal(R.local, full[R.local_rows()])
    np.testing.assert_allclose(dh, information.delta_entropy(y, full, 0.4), rtol=0, atol=TOL)
    R.free()


@pytest.mark.mpi
def test_bad_reference_on_root_or_one_shard_fails_every_rank():
    """A 1-D array on the root, or a 3-D shard on the last rank: the same input error on
    every rank (the others' message is the failing rank's), no rank left in a collective."""
    from quests_hpc.errors import QuestsInputError
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    with pytest.raises(QuestsInputError, match=r"^reference must be a 2-D \(n, d\) array, got shape \(5,\)$"):
        SharedReference.from_root(comm, np.zeros(5) if comm.rank == 0 else None)
    last = comm.rank == comm.size - 1
    shard = np.zeros((2, 3, 4)) if last else np.zeros((2, 3))
    with pytest.raises(QuestsInputError, match=r"reference shard must be 2-D, got shape \(2, 3, 4\)"):
        SharedReference.from_shards(comm, shard, layout="sharded")
    wide = np.zeros((2, 4)) if last else np.zeros((2, 3))
    if comm.size > 1:
        with pytest.raises(QuestsInputError, match=r"different widths on different ranks: \[3, 4\]"):
            SharedReference.from_shards(comm, wide, layout="sharded")
    with SharedReference.from_shards(comm, np.ones((2, 3)), layout="sharded") as R:  # still fine
        assert R.n == 2 * comm.size and R.local.shape == (2, 3)


@pytest.mark.mpi
def test_a_ring_pass_failing_on_one_rank_fails_every_rank():
    """The last rank's test rows are far from a tiny reference: for h = 1e-152 their
    exponents overflow there only.  Every rank must raise after the ring, none may hang."""
    from quests_hpc.errors import QuestsInputError
    from quests_hpc.parallel.shared_reference import ring_log_kernel_sum

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.rank)
    x = rng.random((5, 3)) * 1e-4
    y = x.copy() if comm.rank < comm.size - 1 else rng.random((4, 3))
    with pytest.raises(QuestsInputError, match="too small for these descriptors"):
        ring_log_kernel_sum(comm, y, x, 1e-152)
    comm.Barrier()  # every rank got here: nobody is left inside the ring
