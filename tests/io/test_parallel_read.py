"""MPI reads (:mod:`quests_hpc.parallel.dump_reader`, run with mpiexec -n 1..4): every rank's
share, gathered, equals the serial read (:mod:`quests_hpc.io`).

Run: ``mpiexec -n 3 python -m pytest --with-mpi -m mpi tests/io``.
"""

import numpy as np
import pytest
from iohelpers import data, small_dump, write_text

from quests_hpc.errors import QuestsInputError
from quests_hpc.io import read_lammps_dump
from quests_hpc.io.compressed import open_source
from quests_hpc.io.frame_index import get_index
from quests_hpc.parallel.comm import even_bounds
from quests_hpc.parallel.dump_index import get_index as pget_index
from quests_hpc.parallel.dump_reader import ParallelDump
from quests_hpc.parallel.dump_reader import read_lammps_dump as pread_lammps_dump

MPI = pytest.importorskip("mpi4py.MPI")

FILES = ["cu_unsorted.lammpstrj", "cu_unsorted.lammpstrj.gz", "cu_unsorted.lammpstrj.zst",
         "cu_sorted_17g.lammpstrj", "cu_atom.lammpstrj", "cu_element.lammpstrj",
         "cu_thresh.lammpstrj", "tri_restricted.lammpstrj", "tri_general.lammpstrj",
         "slab_ppf.lammpstrj", "cluster_fsfm.lammpstrj", "seq/dump.*.lammpstrj"]


def gathered(comm, a):
    return np.concatenate(comm.allgather(a))


def assert_same(comm, serial, share):
    assert share.natoms == serial.natoms and share.timestep == serial.timestep
    assert np.array_equal(share.cell, serial.cell) and np.array_equal(share.pbc, serial.pbc)
    n = len(share.ids)
    b = even_bounds(serial.natoms, comm.size)
    assert n == b[comm.rank + 1] - b[comm.rank] and share.first == b[comm.rank]
    assert np.array_equal(gathered(comm, share.ids), serial.ids)
    assert np.array_equal(gathered(comm, share.positions), serial.positions)
    if serial.types is not None:
        assert np.array_equal(gathered(comm, share.types), serial.types)
    if serial.elements is not None:
        assert np.array_equal(gathered(comm, share.elements), serial.elements)
    for k, v in serial.arrays.items():
        assert np.array_equal(gathered(comm, share.arrays[k]), v)


@pytest.mark.mpi
@pytest.mark.parametrize("name", FILES)
def test_shares_equal_serial(name):
    comm = MPI.COMM_WORLD
    path = data(name)
    serial = read_lammps_dump(path, ":", columns="all")
    par = pread_lammps_dump(path, ":", columns="all", comm=comm)
    assert len(par) == len(serial)
    for s, p in zip(serial, par):
        assert_same(comm, s, p)


@pytest.mark.mpi
@pytest.mark.parametrize("name", ["cu_sorted_17g.lammpstrj", "cu_thresh.lammpstrj",
                                  "cu_unsorted.lammpstrj.bz2"])
def test_tiny_chunks(name):
    comm = MPI.COMM_WORLD
    serial = read_lammps_dump(data(name), ":", columns="all")
    par = pread_lammps_dump(data(name), ":", columns="all", comm=comm, chunk_bytes=211)
    for s, p in zip(serial, par):
        assert_same(comm, s, p)


@pytest.mark.mpi
def test_parallel_index_equals_serial():
    comm = MPI.COMM_WORLD
    for name in ("cu_unsorted.lammpstrj", "cu_thresh.lammpstrj"):
        src = open_source(data(name))
        a = pget_index(src, comm, cache=False)
        b = get_index(src, cache=False)
        for f in ("start", "data", "end", "timestep", "natoms", "line", "data_line", "nlines"):
            assert np.array_equal(getattr(a, f), getattr(b, f))


@pytest.mark.mpi
def test_custom_owner():
    comm = MPI.COMM_WORLD
    path = data("tri_restricted.lammpstrj")
    serial = read_lammps_dump(path, -1)

    def owner(header, ids, positions):
        frac = (positions - header.origin) @ np.linalg.inv(header.cell)
        return np.minimum((frac[:, 0] * comm.size).astype(np.int64), comm.size - 1)

    with ParallelDump(path, comm) as d:
        f = d.read(-1, owner=owner)
    frac = (f.positions - f.origin) @ np.linalg.inv(f.cell)
    assert np.all(np.minimum((frac[:, 0] * comm.size).astype(int), comm.size - 1) == comm.rank)
    assert np.all(np.diff(f.ids) > 0)
    ids = gathered(comm, f.ids)
    order = np.argsort(ids)
    assert np.array_equal(ids[order], serial.ids)
    assert np.array_equal(gathered(comm, f.positions)[order], serial.positions)


@pytest.mark.mpi
def test_errors_reach_every_rank(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    rows = [f"{i} 1 {i * 0.01} 0.5 0.5" for i in range(1, 401)]
    bad = list(rows)
    bad[350] = "351 1 0.1 oops 0.5"  # near the end: parsed by the last rank
    dup = list(rows)
    dup[390] = "5 1 0.1 0.2 0.5"
    sparse_dup = [f"{3 * i} 1 0.1 0.2 0.5" for i in range(1, 401)]
    sparse_dup[399] = "3 1 0.1 0.2 0.5"
    cases = [
        ([(0, rows), (10, bad)], 1, r"frame 1 \(timestep 10\), line 769: column 4 \(y\): 'oops'"),
        ([(0, dup)], 0, r"duplicate atom id 5|ids are not unique"),
        ([(0, sparse_dup)], 0, r"duplicate atom id 3|ids are not unique"),
        ([(0, rows), (10, rows[:300])], 1, None),  # count mismatch, not the last frame
    ]
    for k, (frames, i, pattern) in enumerate(cases):
        path = str(mpi_tmp_path / f"e{k}.lammpstrj")
        if comm.rank == 0:
            text = small_dump(frames)
            if pattern is None:
                text = text.replace("NUMBER OF ATOMS\n300", "NUMBER OF ATOMS\n400")
                text += small_dump([(20, rows)])
            write_text(path, text)
        comm.Barrier()
        with pytest.raises(QuestsInputError, match=pattern or r"frame 1 \(timestep 10\): truncated"):
            pread_lammps_dump(path, i, comm=comm, cache=False)
    # corrupt compressed stream
    raw = open(data("cu_unsorted.lammpstrj.gz"), "rb").read()
    path = str(mpi_tmp_path / "bad.lammpstrj.gz")
    if comm.rank == 0:
        with open(path, "wb") as fh:
            fh.write(raw[:200] + bytes(range(256)) * 4 + raw[1224:])
    comm.Barrier()
    with pytest.raises(QuestsInputError, match="bad.lammpstrj.gz: unreadable gz stream"):
        pread_lammps_dump(path, ":", comm=comm, cache=False)
    with pytest.raises(QuestsInputError, match="out of range"):
        pread_lammps_dump(data("cu_unsorted.lammpstrj"), 7, comm=comm)
    with pytest.raises(QuestsInputError, match="no such file"):
        pread_lammps_dump(str(mpi_tmp_path / "missing.lammpstrj"), -1, comm=comm)

    def bad_owner(header, ids, positions):
        if comm.rank == comm.size - 1:
            raise ZeroDivisionError("owner hook bug")
        return np.zeros(len(ids), dtype=np.int64)

    with pytest.raises((ZeroDivisionError, RuntimeError), match="owner hook bug"):
        with ParallelDump(data("cu_unsorted.lammpstrj"), comm) as d:
            d.read(0, owner=bad_owner if comm.size > 1 else None)
            if comm.size == 1:
                raise ZeroDivisionError("owner hook bug")


@pytest.mark.mpi
def test_more_ranks_than_atoms(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    path = str(mpi_tmp_path / "tiny.lammpstrj")
    if comm.rank == 0:
        write_text(path, small_dump([(0, ["7 1 1 1 1", "3 2 2 2 2"]),
                                     (1, ["9 1 1 1 1", "2 2 2 2 2", "20 1 3 3 3"]), (2, []),
                                     (3, ["1 1 1 1 1"])]))
    comm.Barrier()
    frames = pread_lammps_dump(path, ":", comm=comm, cache=False)
    for f, ids in zip(frames, ([3, 7], [2, 9, 20], [], [1])):
        b = even_bounds(len(ids), comm.size)
        assert f.ids.tolist() == ids[b[comm.rank]:b[comm.rank + 1]]


@pytest.mark.mpi
def test_cache_written_once(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    path = str(mpi_tmp_path / "big.lammpstrj")
    if comm.rank == 0:
        rows = [f"{i} 1 {i % 97 * 0.1} {i % 89 * 0.1} {i % 83 * 0.1}" for i in range(1, 3001)]
        write_text(path, small_dump([(t, rows) for t in range(0, 1000, 100)]))
    comm.Barrier()
    a = pget_index(open_source(path), comm, cache="beside")
    b = pget_index(open_source(path), comm, cache="beside")
    assert len(a) == len(b) == 10 and np.array_equal(a.start, b.start)


@pytest.mark.mpi
def test_placement_used_for_dense_ids_only():
    comm = MPI.COMM_WORLD
    with ParallelDump(data("cu_unsorted.lammpstrj"), comm) as d:
        d.read(0)
        assert d.timings["placed"]
    with ParallelDump(data("cu_thresh.lammpstrj"), comm) as d:
        d.read(0)
        assert not d.timings["placed"]
        d.read(1)
        assert not d.timings["placed"] and d._place == {0: False}
