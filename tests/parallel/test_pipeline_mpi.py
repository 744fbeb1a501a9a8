"""The MPI pipeline equals the serial core on the whole frame, for every rank count.

Run with ``mpiexec -n N python -m pytest --with-mpi -m mpi tests/parallel`` (N = 1..4).
Each test gathers the owned atoms' descriptors and dH to rank 0, sorts them by atom id and
compares with :func:`quests_hpc.descriptors.descriptors_from_arrays` and
:func:`quests_hpc.information.delta_entropy` on the whole frame.  Every rank asserts on
the broadcast comparison, after the last collective of the test.
"""

import mpi_frames
import numpy as np
import pytest

from quests_hpc import information
from quests_hpc.descriptors import descriptors_from_arrays

MPI = pytest.importorskip("mpi4py.MPI")

H = [0.015, 0.4]
TOL = 1e-12


def _compare_with_serial(frame, reference_array=None, layout="auto", **kwargs):
    """Run the pipeline on ``frame`` and return (errors dict, result summary) on all ranks."""
    from quests_hpc.parallel.pipeline import gather_by_id, run_frame
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    ids, pos = mpi_frames.split_for_rank(frame, comm.rank, comm.size)
    ref = mpi_frames.reference_descriptors() if reference_array is None else reference_array
    with SharedReference.from_root(comm, ref if comm.rank == 0 else None, layout=layout) as R:
        res = run_frame(comm, ids, pos, frame["cell"], frame["pbc"], R, h=H,
                        dims=frame.get("dims"), balance=frame.get("balance", "uniform"),
                        **kwargs)
    out = gather_by_id(comm, res)
    errors = None
    if comm.rank == 0:
        serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
        dh = information.delta_entropy(serial, ref, H)
        errors = {
            "ids": bool(np.array_equal(out["ids"], frame["ids"])),
            "descriptors": float(np.abs(out["descriptors"] - serial).max()),
            "dh": float(np.abs(out["dh"] - dh).max()),
            "dh_shape": out["dh"].shape == dh.shape,
            "bitwise": bool(np.array_equal(out["descriptors"], serial)),
        }
    return comm.bcast(errors, root=0), comm.bcast(res.summary, root=0)


def _check(errors):
    assert errors["ids"], "every atom must be owned by exactly one rank"
    assert errors["dh_shape"]
    assert errors["descriptors"] <= TOL
    assert errors["dh"] <= TOL


@pytest.mark.mpi
@pytest.mark.parametrize("name", ["orthogonal", "triclinic", "slab", "cluster_nonperiodic"])
def test_frame_matches_serial(name):
    frame = getattr(mpi_frames, name)()
    errors, summary = _compare_with_serial(frame)
    _check(errors)
    assert summary["n_atoms"] == len(frame["ids"])


@pytest.mark.mpi
@pytest.mark.parametrize("balance", ["uniform", "atoms"])
def test_slab_cut_along_its_non_periodic_axis(balance):
    """Subdomains stacked along z (p p f): outer ones open-ended, cuts at the atoms' extent."""
    size = MPI.COMM_WORLD.size
    frame = dict(mpi_frames.slab(seed=17), dims=(1, 1, size), balance=balance)
    errors, summary = _compare_with_serial(frame)
    _check(errors)
    assert summary["dims"] == [1, 1, size]


@pytest.mark.mpi
def test_left_handed_triclinic_matches_serial():
    errors, _ = _compare_with_serial(mpi_frames.triclinic(left_handed=True))
    _check(errors)


@pytest.mark.mpi
def test_orthogonal_frame_is_bitwise_identical():
    """Orthogonal cell: ghost images are exact, so descriptors are bitwise the serial ones."""
    errors, _ = _compare_with_serial(mpi_frames.orthogonal(seed=3))
    _check(errors)
    assert errors["bitwise"]


@pytest.mark.mpi
def test_narrow_cell_all_ranks_along_the_narrow_axis():
    """Cell 6.6 A < 2 r_c along x, every rank a slab along x (4 ranks: 1.65 A each)."""
    size = MPI.COMM_WORLD.size
    frame = mpi_frames.narrow(size=size)
    errors, summary = _compare_with_serial(frame)
    _check(errors)
    assert summary["dims"] == [size, 1, 1]


@pytest.mark.mpi
def test_clustered_frame_matches_serial_and_reports_imbalance():
    """Atoms in one corner: uniform cuts are imbalanced, quantile cuts ("atoms") less so."""
    size = MPI.COMM_WORLD.size
    imb = {}
    for balance in ("uniform", "atoms"):
        frame = mpi_frames.clustered(balance=balance)
        errors, summary = _compare_with_serial(frame)
        _check(errors)
        counts = np.array(summary["atoms"])
        assert counts.sum() == len(frame["ids"]) and len(counts) == size
        assert summary["imbalance"] == pytest.approx(counts.max() / counts.mean())
        imb[balance] = summary["imbalance"]
    if size == 1:
        assert imb == {"uniform": 1.0, "atoms": 1.0}
    else:
        assert imb["uniform"] > 1.3  # the corner cluster sits in one subdomain
        assert imb["atoms"] < imb["uniform"] and imb["atoms"] < 1.3


@pytest.mark.mpi
def test_sharded_reference_ring_matches_serial():
    """A reference over the memory budget is sharded over ranks and passed on a ring."""
    errors, _ = _compare_with_serial(mpi_frames.orthogonal(seed=5), layout="sharded")
    _check(errors)


@pytest.mark.mpi
def test_summary_reports_stages_memory_and_dh():
    frame = mpi_frames.orthogonal(seed=7)
    ref = mpi_frames.reference_descriptors()
    _, summary = _compare_with_serial(frame, ref)
    size = MPI.COMM_WORLD.size
    for stage in ("distribute", "halo", "descriptors", "kernel_sums", "reductions"):
        assert summary["timings_max"][stage] >= 0.0
    assert len(summary["peak_memory"]) == size and min(summary["peak_memory"]) > 0
    assert len(summary["ghosts"]) == size
    serial = descriptors_from_arrays(frame["positions"], frame["cell"], frame["pbc"])
    dh = information.delta_entropy(serial, ref, H)
    for b in range(len(H)):
        s = summary["dh"][b]
        assert s["n"] == len(serial)
        assert s["n_novel"] == int((dh[b] > 0).sum())
        assert s["mean"] == pytest.approx(dh[b].mean(), abs=1e-12)
        assert s["max"] == pytest.approx(dh[b].max(), abs=1e-12)
