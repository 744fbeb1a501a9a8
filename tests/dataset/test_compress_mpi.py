"""``quests-hpc compress`` under MPI (mpiexec -n 1, 2, 3, 4): every method chooses the same
structures, in the same order, with bitwise the same report as a serial run; the data
set is spread (no rank holds every structure); bad input is refused on every rank.

Rank 0 computes the serial reference on ``MPI.COMM_SELF``.
"""

import numpy as np
import pytest
from compress_reference import FRAMES, FRAMES_XYZ
from mpi_support import on_root

from quests_hpc.dataset.compress import METHODS, compress
from quests_hpc.dataset.compress_run import reference_chunks, run_compression
from quests_hpc.dataset.structures import load_dataset
from quests_hpc.errors import QuestsInputError

MPI = pytest.importorskip("mpi4py.MPI")


def _summary(r):
    return (r.indices, r.novelty.tobytes(), r.curve_entropy.tobytes(),
            r.curve_diversity.tobytes(), r.overlap, r.kept_environments)


@pytest.mark.mpi
def test_every_method_chooses_alike_on_any_rank_count():
    comm = MPI.COMM_WORLD
    data = load_dataset(comm, FRAMES)
    held = comm.allgather(data.hi - data.lo)
    assert sum(held) == 63 and (comm.size == 1 or max(held) < 63)
    got = {}
    for method in METHODS:
        chunks = reference_chunks(comm, str(FRAMES_XYZ), 32, 5.0, 0.015)[0] \
            if method == "msc_conditional" else None
        got[method] = _summary(compress(comm, data, method, 9, reference_chunks=chunks,
                                        seed=4))
    assert comm.allgather(got) == [got] * comm.size

    def serial():
        one = load_dataset(MPI.COMM_SELF, FRAMES)
        out = {}
        for method in METHODS:
            chunks = reference_chunks(MPI.COMM_SELF, str(FRAMES_XYZ), 32, 5.0, 0.015)[0] \
                if method == "msc_conditional" else None
            out[method] = _summary(compress(MPI.COMM_SELF, one, method, 9,
                                            reference_chunks=chunks, seed=4))
        return out
    assert on_root(comm, serial) == got
    assert len(set(got["msc"][0])) == 9


@pytest.mark.mpi
def test_outputs_alike_and_bad_input_refused_on_every_rank(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    d = mpi_tmp_path / f"n{comm.size}"
    if comm.rank == 0:
        d.mkdir(exist_ok=True)
    comm.barrier()
    r, _, _ = run_compression(comm, [str(FRAMES)], d / "a.extxyz", size=7,
                              log=lambda s: None)
    text = on_root(comm, lambda: (d / "a.extxyz").read_text())
    assert text.count("quests_index=") == 7
    assert [int(t.split("quests_index=")[1].split()[0]) for t in text.split("\n")
            if "quests_index=" in t] == r.indices
    with pytest.raises(QuestsInputError, match="holds only 63"):
        run_compression(comm, [str(FRAMES)], d / "b.extxyz", size=64, log=lambda s: None)
    with pytest.raises(QuestsInputError, match="exists"):
        run_compression(comm, [str(FRAMES)], d / "a.extxyz", size=2, log=lambda s: None)
    assert np.isinf(r.novelty[0])
