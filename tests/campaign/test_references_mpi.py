"""Reference sets built for a campaign: rank-independent rows, and a sharded reference that
never meets on one rank.

Run serially and with ``mpiexec -n N python -m pytest --with-mpi -m mpi tests/campaign``.
A reference of two LAMMPS frames (the pipeline path) and an extended-XYZ file of small
frames (the blocks-of-frames path) are loaded in the shared layout (one copy, in (frame,
atom id) order) and in the sharded layout under a memory budget smaller than the
reference (rank ``r`` holds rows ``[r n/P, (r+1) n/P)`` of that order).
"""

import os

import numpy as np
import pytest

from quests_hpc import information
from quests_hpc.campaign.model import Reference
from quests_hpc.descriptors import descriptors_from_arrays
from quests_hpc.parallel.frame_pipeline import FrameRequest

MPI = pytest.importorskip("mpi4py.MPI")

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "lammps")
PARAMS = FrameRequest(k=32, cutoff=5.0, bandwidths=())
SPECS = [
    # frames 1-4 (frame 0 is a perfect lattice: equal distances, ties broken by order)
    Reference(name="cu", path=os.path.join(DATA, "cu_unsorted.lammpstrj"), frames="1:"),
    Reference(name="mixed", path=os.path.join(DATA, "reference_mixed.extxyz")),
]


def _serial_rows(spec):
    """The reference's descriptors, frame after frame, atoms by id (serial core)."""
    from ase.io import read

    from quests_hpc.io import read_lammps_dump

    if spec.path.endswith(".lammpstrj"):
        frames = read_lammps_dump(spec.path, spec.frames)
        return np.concatenate([descriptors_from_arrays(f.positions, f.cell, f.pbc) for f in frames])
    return np.concatenate([descriptors_from_arrays(a.get_positions(), a.cell.array, a.pbc)
                           for a in read(spec.path, ":")])


@pytest.mark.mpi
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_sharded_reference_is_a_contiguous_block_and_never_gathered(spec, monkeypatch):
    from quests_hpc.campaign import references
    from quests_hpc.parallel import comm as pcomm

    comm = MPI.COMM_WORLD
    want = _serial_rows(spec)
    n, d = want.shape
    budget_gb = n * d * 8 / 4 / 1e9  # a quarter of the reference: "auto" must shard

    def refuse(*args, **kwargs):
        raise AssertionError("the sharded layout gathered reference rows")

    with monkeypatch.context() as m:
        m.setattr(references, "_gather_in_order", refuse)
        m.setattr(pcomm, "gather_rows", refuse)
        ref, info = references.load_reference(comm, spec, PARAMS, "auto", budget_gb)
    try:  # every collective first, the assertions after them (no rank left in a ring)
        y = want[::7]
        dh = -ref.log_kernel_sum(y, [0.015, 0.4])  # a ring pass over the shards
    finally:
        ref.free()
    lo, hi = (int(v) for v in pcomm.even_bounds(n, comm.size)[comm.rank:comm.rank + 2])
    assert ref.layout == "sharded" and ref.n == n and info["n_environments"] == n
    assert ref.local.shape == (hi - lo, d)
    np.testing.assert_allclose(ref.local, want[lo:hi], rtol=0, atol=1e-12)
    np.testing.assert_allclose(dh, information.delta_entropy(y, want, [0.015, 0.4]),
                               rtol=0, atol=1e-12)


@pytest.mark.mpi
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_shared_reference_rows_in_frame_and_id_order(spec):
    from quests_hpc.campaign.references import load_reference

    comm = MPI.COMM_WORLD
    want = _serial_rows(spec)
    ref, info = load_reference(comm, spec, PARAMS, "shared")
    rows, layout = np.array(ref.local), ref.layout
    ref.free()
    assert layout == "shared" and info["n_environments"] == len(want)
    np.testing.assert_allclose(rows, want, rtol=0, atol=1e-12)


@pytest.mark.mpi
def test_sharded_descriptor_file_is_read_in_slices(mpi_tmp_path, monkeypatch):
    """A descriptor file over the memory budget: each rank reads only its rows."""
    from quests_hpc.campaign import references
    from quests_hpc.parallel import comm as pcomm
    from quests_hpc.results import reader

    comm = MPI.COMM_WORLD
    spec = SPECS[0]
    want = _serial_rows(spec)
    path = str(mpi_tmp_path / "ref_desc.h5")
    if comm.rank == 0:
        from quests_hpc.io.reference import write_descriptors

        write_descriptors(path, want, k=32, cutoff=5.0)
    comm.Barrier()
    reads = []
    real = reader.load_descriptors
    import quests_hpc.io.reference as ioref
    real_io = ioref.read_descriptors

    def sliced(p, k=None, cutoff=None, rows=None, **kw):
        reads.append(rows)
        return real_io(p, k, cutoff, rows=rows, **kw)

    with monkeypatch.context() as m:
        m.setattr(ioref, "read_descriptors", sliced)
        m.setattr(reader, "load_descriptors", real)
        dspec = Reference(name="desc", path=path)
        ref, info = references.load_reference(comm, dspec, PARAMS, "auto",
                                              want.nbytes / 4 / 1e9)
    ref.free()
    lo, hi = (int(v) for v in pcomm.even_bounds(len(want), comm.size)[comm.rank:comm.rank + 2])
    assert ref.layout == "sharded" and info["n_environments"] == len(want)
    assert all(r is not None and r.stop - r.start <= hi - lo for r in reads), reads
    np.testing.assert_array_equal(ref.local, want[lo:hi])


@pytest.mark.mpi
def test_an_unexpected_failure_reading_a_descriptor_reference_ends_every_rank(mpi_tmp_path,
                                                                                monkeypatch):
    """Not only bad input: any exception on the reading rank reaches the others (no hang)."""
    from quests_hpc.campaign import references

    comm = MPI.COMM_WORLD
    path = str(mpi_tmp_path / "ref_fail.h5")
    if comm.rank == 0:
        from quests_hpc.io.reference import write_descriptors

        write_descriptors(path, np.zeros((4, 63)), k=32, cutoff=5.0)
    comm.Barrier()

    def broken(*a, **kw):
        raise OSError("disk went away")

    monkeypatch.setattr(references, "descriptor_rows", broken)
    with pytest.raises(Exception, match="disk went away"):
        references.load_reference(comm, Reference(name="desc", path=path), PARAMS)
    comm.Barrier()
