"""Results files written by N ranks (both back ends) hold the same data as a serial write.

Run: ``mpiexec -n N python -m pytest --with-mpi -m mpi tests/results`` for N = 1, 2, 3
(with the MPICH venv: gather back end; with .venv-phdf5 and Debian's mpirun: mpio too).
Every run compares with a file written serially by rank 0 in the same run, so files of
any two rank counts and back ends are identical to each other.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import helpers

from mpi_support import on_root

MPI = pytest.importorskip("mpi4py.MPI")


def _backends():
    from quests_hpc.results.writer import h5py_has_mpi

    return ["gather", "mpio"] if h5py_has_mpi() else ["gather"]


def _golden(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    golden = str(mpi_tmp_path / "golden.h5")
    on_root(comm, lambda: helpers.write_all(golden, MPI.COMM_SELF, backend="gather") and None)
    return golden


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["gather", "mpio"])
@pytest.mark.parametrize("chunk", [1 << 20, 40])
def test_parallel_write_equals_serial(mpi_tmp_path, backend, chunk):
    from quests_hpc.results import diff_results

    if backend not in _backends():
        pytest.skip("h5py has no MPI (h5py.get_config().mpi is False)")
    comm = MPI.COMM_WORLD
    golden = _golden(mpi_tmp_path)
    path = str(mpi_tmp_path / f"{backend}_{comm.size}_{chunk}.h5")
    helpers.write_all(path, comm, backend=backend, chunk_bytes=chunk)
    diff = on_root(comm, lambda: diff_results(golden, path))
    assert diff == []
    if comm.rank == 0:
        import h5py

        with h5py.File(path, "r") as f:
            assert f.attrs["writer"] == backend
            assert int(f["frames/in_000000"].attrs["mpi_size"]) == comm.size


@pytest.mark.mpi
@pytest.mark.parametrize("backend", ["gather", "mpio"])
def test_uneven_slabs_and_empty_ranks(mpi_tmp_path, backend):
    """Ranks own very different numbers of rows (some none) and write at given offsets."""
    from quests_hpc.results import ResultsWriter, diff_results
    from quests_hpc.results import layout as L

    if backend not in _backends():
        pytest.skip("h5py has no MPI")
    comm = MPI.COMM_WORLD
    golden = _golden(mpi_tmp_path)
    path = str(mpi_tmp_path / f"uneven_{backend}_{comm.size}.h5")
    p = helpers.plan()
    attrs = comm.bcast(dict(L.root_attributes(p, comm.size, backend), created="fixed"))
    with ResultsWriter.open(path, comm, backend=backend, mode="w", chunk_bytes=100) as w:
        w.create_structure(p, attrs)
        for i, fp in enumerate(p.frames):
            arrs = helpers.frame_arrays(i, fp.natoms)
            # everything on the last rank, except the first 3 rows on rank 0
            cut = [0] + [min(3, fp.natoms)] * (comm.size - 1) + [fp.natoms]
            lo, hi = cut[comm.rank], cut[comm.rank + 1]
            for name, a in arrs.items():
                w.write_slab(f"frames/{fp.name}/{name}", a[lo:hi], offset=lo)
            w.write_values([("summary/frames/natoms", i, fp.natoms),
                            ("summary/frames/dh_mean", i, np.full((2, 2), float(i)))])
            w.set_attrs(f"frames/{fp.name}", {"timestep": np.int64(10 * i),
                                              "cell": np.eye(3), "pbc": np.ones(3, bool),
                                              "wall_time": 1.0, "complete": True})
        w.set_attrs("/", {"complete": True})
    diff = on_root(comm, lambda: diff_results(golden, path))
    assert diff == []


@pytest.mark.mpi
def test_failure_on_root_raises_everywhere(mpi_tmp_path):
    """A write that fails on rank 0 (gather back end) raises ResultsIOError on every rank,
    after the other ranks' chunks were drained: no hang."""
    from quests_hpc.results import ResultsIOError, ResultsWriter

    comm = MPI.COMM_WORLD
    path = str(mpi_tmp_path / f"fail_{comm.size}.h5")
    helpers.write_all(path, comm, backend="gather")
    with ResultsWriter.open(path, comm, backend="gather", chunk_bytes=64) as w:
        if comm.rank == 0:
            w.file["frames/in_000002"].attrs.modify("complete", False)
            ds = w.file["frames/in_000002/descriptors"]

            def broken(*a, **k):
                raise OSError(28, "No space left on device")

            w.file = _BrokenFile(w.file, "frames/in_000002/descriptors", broken)
        n = 101
        lo, hi = n * comm.rank // comm.size, n * (comm.rank + 1) // comm.size
        with pytest.raises(ResultsIOError, match="No space left"):
            w.write_slab("frames/in_000002/descriptors", np.ones((hi - lo, 5))[:, :5])
        if comm.rank == 0:
            w.file = w.file.inner
            del ds
    comm.Barrier()


class _BrokenFile:
    """Wraps an h5py.File; one dataset's writes fail."""

    def __init__(self, inner, name, fail):
        self.inner, self.name, self.fail = inner, name, fail

    def __getitem__(self, key):
        ds = self.inner[key]
        if key == self.name:
            return _BrokenDataset(ds, self.fail)
        return ds

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


class _BrokenDataset:
    def __init__(self, ds, fail):
        self.ds, self.fail = ds, fail
        self.shape, self.dtype = ds.shape, ds.dtype

    def __setitem__(self, key, value):
        self.fail()
