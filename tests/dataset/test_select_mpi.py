"""``quests-hpc select`` under MPI (mpiexec -n 1, 2, 3, 4): the same picks, in the same
order, as the brute-force greedy and as a serial run, and the same extxyz bytes; bad input
refused on every rank.

The results file is written by ``quests-hpc dh`` on all ranks (collective); rank 0 then
computes the serial references on ``MPI.COMM_SELF`` and in numpy.
"""

import pytest
from mpi_support import on_root
from select_reference import DATA, brute_selection

from quests_hpc.cli import main
from quests_hpc.dataset.select import select_environments
from quests_hpc.errors import QuestsInputError

MPI = pytest.importorskip("mpi4py.MPI")

CU = DATA / "cu_unsorted.lammpstrj"
CU_REF = DATA / "cu_sorted_17g.lammpstrj"
TRI = DATA / "tri_restricted.lammpstrj"


@pytest.fixture
def results(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    d = mpi_tmp_path / f"n{comm.size}"
    if comm.rank == 0:
        d.mkdir(exist_ok=True)
    comm.barrier()
    out = {}
    for name, dump, ref in (("cu", CU, CU_REF), ("tri", TRI, TRI)):
        path = d / f"{name}.h5"
        assert main(["dh", str(dump), "--reference", str(ref), "--reference-frames", "0",
                     "--frames", "1:", "-o", str(path), "--progress", "off"]) == 0
        out[name] = (path, dump)
    return d, out


@pytest.mark.mpi
@pytest.mark.parametrize("name, kind, size", [("cu", "radius", 6.0), ("cu", "box", 11.0),
                                              ("tri", "radius", 8.0)])
def test_picks_and_file_independent_of_rank_count(results, name, kind, size):
    comm = MPI.COMM_WORLD
    d, files = results
    path, dump = files[name]
    out = d / f"{name}_{kind}.extxyz"
    opts = {"box": size} if kind == "box" else {}
    res = select_environments(comm, str(path), 10, None if opts else size, str(out), **opts)
    picks = [(p["frame"], p["id"]) for p in res["picks"]]
    assert comm.allgather(picks) == [picks] * comm.size

    def serial():
        one = d / f"{name}_{kind}_serial.extxyz"
        s = select_environments(MPI.COMM_SELF, str(path), 10, None if opts else size,
                                str(one), **opts)
        brute = [(f, i) for f, i, _ in brute_selection(path, dump, 10)]
        return ([(p["frame"], p["id"]) for p in s["picks"]], brute,
                out.read_bytes() == one.read_bytes())

    one, brute, same_bytes = on_root(comm, serial)
    assert picks == one == brute and len(picks) == 10
    assert same_bytes


@pytest.mark.mpi
def test_bad_input_refused_on_every_rank(results):
    comm = MPI.COMM_WORLD
    d, files = results
    path, _ = files["cu"]
    with pytest.raises(QuestsInputError, match="cutoff"):
        select_environments(comm, str(path), 3, 4.0, None)
    with pytest.raises(QuestsInputError, match="does not match"):
        select_environments(comm, str(path), 3, 6.0, None, input_path=str(CU_REF))
    with pytest.raises(QuestsInputError, match="--max"):
        select_environments(comm, str(path), 0, 6.0, None)
