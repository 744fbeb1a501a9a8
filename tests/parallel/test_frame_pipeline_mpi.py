"""The frame pipeline equals the serial core on the whole frame, for every rank count.

Run serially and with ``mpiexec -n N python -m pytest --with-mpi -m mpi tests/parallel``
(N = 1..4).  Each rank starts from a random subset of the frame (any reader split), runs
:func:`quests_hpc.parallel.frame_pipeline.run_frame` and gets back its block of the
id-sorted frame; rank 0 gathers the blocks in rank order and compares them with
:func:`quests_hpc.descriptors.descriptors_from_arrays` and
:func:`quests_hpc.information.delta_entropy` on the whole frame.  Every rank asserts on
the broadcast comparison, after the last collective of the test.
"""

import mpi_frames
import numpy as np
import pytest

from quests_hpc import information
from quests_hpc.descriptors import descriptors_from_arrays

MPI = pytest.importorskip("mpi4py.MPI")

H = (0.015, 0.4)
TOL = 1e-12


def _run(frame, ref, layout="auto", ids=None, **request):
    """Run the pipeline on ``frame`` (optionally relabelled ``ids``): results gathered in
    rank order on rank 0, the summary, and this rank's output."""
    from quests_hpc.parallel.comm import gather_rows
    from quests_hpc.parallel.frame_pipeline import (ArraySource, FrameRequest, frame_summary,
                                                    run_frame)
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    frame = dict(frame, ids=frame["ids"] if ids is None else ids)
    mine_ids, mine_pos = mpi_frames.split_for_rank(frame, comm.rank, comm.size)
    kw = dict(k=32, cutoff=5.0, bandwidths=H, dims=frame.get("dims"),
              balance=frame.get("balance", "uniform"), descriptors=True)
    kw.update(request)
    req = FrameRequest(**kw)
    src = ArraySource(mine_ids, mine_pos, frame["cell"], frame["pbc"])
    refs = []
    if ref is not None:
        refs = [SharedReference.from_root(comm, ref if comm.rank == 0 else None, layout=layout)]
    try:
        out = run_frame(comm, src, 0, refs, req)
    finally:
        for r in refs:
            r.free()
    got = {"ids": gather_rows(out.ids, comm, 0),
           "blocks": comm.gather(len(out.ids), root=0)}
    if out.descriptors is not None:
        got["descriptors"] = gather_rows(out.descriptors, comm, 0)
    if out.dh is not None:
        got["dh"] = gather_rows(out.dh, comm, 0)
    return got, frame_summary(comm, out), out


def _compare(frame, layout="auto", ref=None, **request):
    comm = MPI.COMM_WORLD
    ref = mpi_frames.reference_descriptors() if ref is None else ref
    got, summary, _ = _run(frame, ref, layout, **request)
    errors = None
    if comm.rank == 0:
        serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
        dh = information.delta_entropy(serial, ref, list(H),  # (n_h, n)
                                       precision=request.get("precision", "float64"))
        n = len(frame["ids"])
        even = [(n * (r + 1)) // comm.size - (n * r) // comm.size for r in range(comm.size)]
        errors = {
            "ids": bool(np.array_equal(got["ids"], frame["ids"])),
            "blocks": got["blocks"] == even,
            "descriptors": float(np.abs(got["descriptors"] - serial).max()),
            "dh": float(np.abs(got["dh"] - dh.T).max()),
            "bitwise": bool(np.array_equal(got["descriptors"], serial)
                            and np.array_equal(got["dh"], dh.T)),
        }
    return comm.bcast(errors, root=0), comm.bcast(summary, root=0)


def _check(errors):
    assert errors["ids"], "the ranks' blocks, in rank order, must be the id-sorted frame"
    assert errors["blocks"], "rank r must hold the even split [r N/P, (r+1) N/P)"
    assert errors["descriptors"] <= TOL
    assert errors["dh"] <= TOL


@pytest.mark.mpi
@pytest.mark.parametrize("name", ["orthogonal", "triclinic", "slab", "cluster_nonperiodic"])
def test_frame_matches_serial(name):
    frame = getattr(mpi_frames, name)()
    errors, summary = _compare(frame)
    _check(errors)
    assert summary["n_atoms"] == len(frame["ids"])


@pytest.mark.mpi
def test_orthogonal_frame_is_bitwise_identical_in_any_chunking():
    """Orthogonal cell: descriptors and dH bitwise the serial ones, chunks of 37 atoms too."""
    frame = mpi_frames.orthogonal(seed=3)
    for chunk in (37, 1 << 16):
        errors, _ = _compare(frame, chunk_atoms=chunk)
        _check(errors)
        assert errors["bitwise"], chunk


@pytest.mark.mpi
def test_float32_frame_is_bitwise_the_serial_float32_in_any_chunking():
    """precision float32, shared reference: dH bitwise the serial float32 one on any rank
    count (rows are summed alike in any batch), and within the float32 bound of float64."""
    frame = mpi_frames.orthogonal(seed=5)
    for chunk in (37, 1 << 16):
        errors, _ = _compare(frame, layout="shared", precision="float32", chunk_atoms=chunk)
        _check(errors)
        assert errors["bitwise"], chunk
    ref = mpi_frames.reference_descriptors()
    got, _, _ = _run(frame, ref, "shared")
    got32, _, _ = _run(frame, ref, "shared", precision="float32")
    ok = None
    if MPI.COMM_WORLD.rank == 0:
        serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
        bound = information.float32_error_bound(serial, ref, list(H)).T
        err = np.abs(got32["dh"] - got["dh"])
        ok = bool((err <= bound).all() and err.max() > 1e-9)
    assert MPI.COMM_WORLD.bcast(ok, root=0)


@pytest.mark.mpi
def test_float32_sharded_reference_within_the_bound_of_each_shard():
    """A sharded reference: every shard is centred on its own mean, so float32 dH is
    within the largest of the shards' bounds of float64 (not bitwise across rank counts)."""
    from quests_hpc.parallel.comm import even_bounds

    comm = MPI.COMM_WORLD
    frame = mpi_frames.orthogonal(seed=6)
    ref = mpi_frames.reference_descriptors()
    got, _, _ = _run(frame, ref, "sharded", precision="float32")
    ok = None
    if comm.rank == 0:
        serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
        dh = information.delta_entropy(serial, ref, list(H)).T
        cuts = even_bounds(len(ref), comm.size)
        bound = np.max([information.float32_error_bound(serial, ref[a:b], list(H)).T
                        for a, b in zip(cuts[:-1], cuts[1:]) if b > a], axis=0)
        ok = bool((np.abs(got["dh"] - dh) <= bound).all())
    assert comm.bcast(ok, root=0)


@pytest.mark.mpi
@pytest.mark.parametrize("balance", ["uniform", "atoms"])
def test_slab_cut_along_its_non_periodic_axis(balance):
    size = MPI.COMM_WORLD.size
    frame = dict(mpi_frames.slab(seed=17), dims=(1, 1, size), balance=balance)
    errors, summary = _compare(frame, chunk_atoms=50)
    _check(errors)
    assert summary["dims"] == [1, 1, size]


@pytest.mark.mpi
def test_left_handed_triclinic_matches_serial():
    errors, _ = _compare(mpi_frames.triclinic(left_handed=True))
    _check(errors)


@pytest.mark.mpi
def test_narrow_cell_all_ranks_along_the_narrow_axis():
    """Cell 6.6 A < 2 r_c along x, every rank a slab along x (4 ranks: 1.65 A each)."""
    size = MPI.COMM_WORLD.size
    frame = mpi_frames.narrow(size=size)
    errors, summary = _compare(frame)
    _check(errors)
    assert summary["dims"] == [size, 1, 1]


@pytest.mark.mpi
def test_clustered_frame_reports_imbalance():
    size = MPI.COMM_WORLD.size
    imb = {}
    for balance in ("uniform", "atoms"):
        frame = mpi_frames.clustered(balance=balance)
        errors, summary = _compare(frame)
        _check(errors)
        counts = np.array(summary["atoms"])
        assert counts.sum() == len(frame["ids"]) and len(counts) == size
        assert summary["imbalance"] == pytest.approx(counts.max() / counts.mean())
        imb[balance] = summary["imbalance"]
    if size == 1:
        assert imb == {"uniform": 1.0, "atoms": 1.0}
    else:
        assert imb["uniform"] > 1.3
        assert imb["atoms"] < imb["uniform"] and imb["atoms"] < 1.3


@pytest.mark.mpi
def test_sharded_reference_in_chunks_matches_serial():
    """A sharded reference: one ring pass per chunk, every rank the same chunk count."""
    errors, _ = _compare(mpi_frames.orthogonal(seed=5), layout="sharded", chunk_atoms=29)
    _check(errors)


@pytest.mark.mpi
def test_sparse_unsorted_ids_come_back_in_id_order():
    """Ids 7 i + 1000 in a shuffled order: blocks of the id-sorted frame after the exchange."""
    comm = MPI.COMM_WORLD
    frame = mpi_frames.triclinic(seed=8)
    n = len(frame["ids"])
    ids = 7 * np.random.default_rng(4).permutation(n).astype(np.int64) + 1000
    got, _, out = _run(frame, mpi_frames.reference_descriptors(), ids=ids, positions=True)
    ok = None
    if comm.rank == 0:
        order = np.argsort(ids)
        serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
        ok = (np.array_equal(got["ids"], ids[order])
              and float(np.abs(got["descriptors"] - serial[order]).max()) <= TOL)
    assert np.all(np.diff(out.ids) > 0)
    assert out.positions.shape == (len(out.ids), 3) and out.types.shape == (len(out.ids),)
    assert comm.bcast(ok, root=0)


@pytest.mark.mpi
def test_descriptors_dropped_unless_asked_and_stages_reported():
    comm = MPI.COMM_WORLD
    frame = mpi_frames.orthogonal(seed=7)
    ref = mpi_frames.reference_descriptors()
    _, summary, out = _run(frame, ref, descriptors=False, chunk_atoms=64)
    assert out.descriptors is None and out.dh.shape == (len(out.ids), len(H))
    for stage in ("read", "halo", "descriptors", "kernel_sums", "id_order"):
        assert out.timings[stage] >= 0.0 and out.memory.get(stage, 1) > 0
    summary = comm.bcast(summary, root=0)
    assert len(summary["peak_memory"]) == comm.size and min(summary["peak_memory"]) > 0
    serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
    dh = information.delta_entropy(serial, ref, list(H))
    s = comm.bcast(out.dh_summary, root=0)
    for b in range(len(H)):
        assert s[0][b]["n"] == len(serial)
        assert s[0][b]["n_novel"] == int((dh[b] > 0).sum())
        assert s[0][b]["mean"] == pytest.approx(dh[b].mean(), abs=1e-12)


@pytest.mark.mpi
def test_frame_entropy_matches_serial():
    comm = MPI.COMM_WORLD
    frame = mpi_frames.orthogonal(seed=9)
    _, _, out = _run(frame, None, descriptors=False, delta_entropy=False, entropy=True,
                     chunk_atoms=100)
    serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
    assert out.dh is None
    np.testing.assert_allclose(out.entropy, information.entropy(serial, list(H)), rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(out.diversity, information.diversity(serial, list(H)), rtol=0,
                               atol=1e-12)


@pytest.mark.mpi
def test_coincident_atoms_fail_every_rank_naming_ids():
    from quests_hpc.errors import QuestsInputError

    frame = mpi_frames.orthogonal(seed=10)
    pos = frame["positions"].copy()
    pos[100] = pos[7]
    with pytest.raises(QuestsInputError, match="atom ids 8 and 101 are at the same position"):
        _run(dict(frame, positions=pos), mpi_frames.reference_descriptors(), chunk_atoms=16)
