"""The report across generations on 1 .. N ranks equals the serial report (issue 12,
point 5): ``mpiexec -n N python -m pytest --with-mpi -m mpi tests/dataset/test_generations_mpi.py``.

Every rank count from 1 to the world size runs on a sub-communicator of the first ranks;
novel counts are equal exactly, every H, D and mean dH within 1e-12 of the serial
(COMM_SELF) values, and the serial values equal upstream's measures.  The data set is
read by the distributed loader (each structure whole on one rank), so with 3 structures
per generation and 4 ranks some ranks hold nothing of a generation.
"""

import os
import tempfile

import numpy as np
import pytest
from generations_data import (HS, assert_rows_equal, default_generations, read_back,
                              upstream_blocks, upstream_report, write_dump, write_extxyz)

from quests_hpc.dataset import generations as G

MPI = pytest.importorskip("mpi4py.MPI")
TOL = 1e-12


@pytest.fixture(scope="module", params=["dumps", "mixed"])
def inputs(request):
    """The generations in a directory every rank sees (rank 0 writes): as LAMMPS dumps
    (every rank reads its own frames), or mixed: extxyz (rank 0 reads with ASE and sends
    each rank its structures), a dump, and a glob of two extxyz files."""
    comm = MPI.COMM_WORLD
    d = comm.bcast(tempfile.mkdtemp(prefix="gens-mpi-") if comm.rank == 0 else None)
    gens = default_generations()
    if request.param == "dumps":
        paths = [os.path.join(d, f"gen{g}.lammpstrj") for g in range(3)]
        if comm.rank == 0:
            for p, atoms in zip(paths, gens):
                write_dump(p, atoms)
    else:
        paths = [os.path.join(d, "gen0.extxyz"), os.path.join(d, "gen1.lammpstrj"),
                 os.path.join(d, "gen2_*.extxyz")]
        if comm.rank == 0:
            write_extxyz(paths[0], gens[0])
            write_dump(paths[1], gens[1])
            write_extxyz(os.path.join(d, "gen2_a.extxyz"), gens[2][:1])
            write_extxyz(os.path.join(d, "gen2_b.extxyz"), gens[2][1:])
    comm.Barrier()
    return paths


def _first_ranks(comm, k):
    sub = comm.Split(0 if comm.rank < k else MPI.UNDEFINED, key=comm.rank)
    return None if sub == MPI.COMM_NULL else sub


@pytest.mark.mpi
def test_report_is_the_same_on_every_rank_count(inputs):
    comm = MPI.COMM_WORLD
    serial, _ = G.generations_report(MPI.COMM_SELF, inputs, h=HS, threshold=0.0)
    if comm.rank == 0:  # the serial report is upstream's
        back = read_back(inputs)
        assert_rows_equal(serial, upstream_report(upstream_blocks(back, ours=True), HS), 1e-11)
    for k in range(1, comm.size + 1):
        sub = _first_ranks(comm, k)
        if sub is None:
            continue
        rows, datasets = G.generations_report(sub, inputs, h=HS, threshold=0.0)
        assert_rows_equal(rows, serial, TOL)
        assert [r.n_structures for r in rows] == [3, 3, 2]
        held = sub.allgather(sum(len(x) for x in datasets[0].x))
        assert sum(held) == serial[0].n_environments  # spread, never duplicated
        if k > 1:
            assert max(held) < serial[0].n_environments
        sub.Free()


@pytest.mark.mpi
def test_measures_of_unevenly_spread_rows_equal_serial():
    """Rows of each generation spread unevenly (some ranks empty) give the serial rows."""
    comm = MPI.COMM_WORLD
    blocks = upstream_blocks(default_generations(), ours=True)
    serial = G.generation_measures(MPI.COMM_SELF, blocks, HS, threshold=0.2)
    mine = []
    for g, x in enumerate(blocks):
        w = (np.arange(comm.size) + g) % 3  # rank r gets a share of weight w[r]
        w = w if w.sum() else np.ones(comm.size)
        b = np.concatenate([[0], np.cumsum(np.floor(len(x) * w / w.sum()).astype(int))])
        b[-1] = len(x)
        mine.append(x[b[comm.rank]:b[comm.rank + 1]])
    rows = G.generation_measures(comm, mine, HS, threshold=0.2)
    assert_rows_equal(rows, serial, TOL)
