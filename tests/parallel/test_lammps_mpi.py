"""Real LAMMPS dumps (tests/data/lammps, written by LAMMPS) through the MPI pipeline.

Two routes, both compared with the serial core on the serially read frame (sorted by id):
the reader sends atoms straight to their owners (:class:`~quests_hpc.parallel.frame_pipeline.
DumpSource`), or the reader's even split by id is handed to the pipeline as arrays
(:class:`~quests_hpc.parallel.frame_pipeline.ArraySource`), which sends them to their owners.
"""

import os

import mpi_frames
import numpy as np
import pytest

from quests_hpc import information
from quests_hpc.descriptors import descriptors_from_arrays

MPI = pytest.importorskip("mpi4py.MPI")

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "lammps")
H = [0.015, 0.4]
TOL = 1e-12
FIXTURES = ["cu_unsorted.lammpstrj", "tri_restricted.lammpstrj", "tri_general.lammpstrj",
            "slab_ppf.lammpstrj", "cluster_fsfm.lammpstrj"]


def _serial(path, ref):
    from quests_hpc.io import read_lammps_dump

    f = read_lammps_dump(path, -1)
    x = descriptors_from_arrays(f.positions, f.cell, f.pbc)
    return f, x, information.delta_entropy(x, ref, H)


@pytest.mark.mpi
@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("route", ["reader_owner", "even_split"])
def test_lammps_dump_matches_serial(name, route):
    from quests_hpc.parallel.comm import gather_rows
    from quests_hpc.parallel.dump_reader import ParallelDump
    from quests_hpc.parallel.frame_pipeline import (ArraySource, DumpSource, FrameRequest,
                                                    run_frame)
    from quests_hpc.parallel.shared_reference import SharedReference

    path = os.path.join(DATA, name)
    if not os.path.exists(path):
        pytest.skip(f"fixture {name} not present")
    comm = MPI.COMM_WORLD
    ref = mpi_frames.reference_descriptors()
    req = FrameRequest(k=32, cutoff=5.0, bandwidths=tuple(H), descriptors=True, chunk_atoms=100)
    with SharedReference.from_root(comm, ref if comm.rank == 0 else None) as R:
        with ParallelDump(path, comm) as dump:
            if route == "reader_owner":
                res = run_frame(comm, DumpSource(dump), -1, [R], req)
            else:
                fr = dump.read(-1)
                src = ArraySource(fr.ids, fr.positions, fr.cell, fr.pbc, types=fr.types)
                res = run_frame(comm, src, 0, [R], req)
            n_frames = len(dump)
            last_timestep = int(dump.timesteps[-1])
    out = {"ids": gather_rows(res.ids, comm, 0),
           "descriptors": gather_rows(res.descriptors, comm, 0),
           "dh": gather_rows(res.dh, comm, 0)}
    err = None
    if comm.rank == 0:
        f, x, dh = _serial(path, ref)
        err = (bool(np.array_equal(out["ids"], f.ids)),
               float(np.abs(out["descriptors"] - x).max()),
               float(np.abs(out["dh"] - dh.T).max()))
    ids_ok, d_err, dh_err = comm.bcast(err)
    assert n_frames >= 1 and ids_ok
    assert d_err <= TOL and dh_err <= TOL
    if route == "reader_owner":
        assert res.timestep == last_timestep and "read" in res.timings


@pytest.mark.mpi
def test_atoms_are_exchanged_once_in_and_once_out(monkeypatch):
    """A dump frame: the reader sends the parsed rows straight to their spatial owners (one
    ``redistribute``), the results go back to id order (one more); the reader's even split
    by id (a third exchange in the old pipeline) is never used."""
    from quests_hpc.parallel import comm as pcomm
    from quests_hpc.parallel import routing
    from quests_hpc.parallel.dump_reader import ParallelDump
    from quests_hpc.parallel.frame_pipeline import DumpSource, FrameRequest, run_frame
    from quests_hpc.parallel.shared_reference import SharedReference

    comm = MPI.COMM_WORLD
    calls = []
    real = pcomm.redistribute

    def counted(arrays, dest, c):
        calls.append(len(arrays))
        return real(arrays, dest, c)

    def refuse(*args, **kwargs):
        raise AssertionError("the even split by id is not part of the frame pipeline")

    ref = mpi_frames.reference_descriptors()
    req = FrameRequest(k=32, cutoff=5.0, bandwidths=tuple(H), positions=True)
    with SharedReference.from_root(comm, ref if comm.rank == 0 else None) as R:
        with ParallelDump(os.path.join(DATA, "cu_unsorted.lammpstrj"), comm) as dump:
            with monkeypatch.context() as m:
                m.setattr(pcomm, "redistribute", counted)
                m.setattr(routing, "even_split_by_id", refuse)
                m.setattr(routing, "exchange_placed", refuse)
                out = run_frame(comm, DumpSource(dump), -1, [R], req)
    n = 256
    lo, hi = n * comm.rank // comm.size, n * (comm.rank + 1) // comm.size
    assert np.array_equal(out.ids, np.arange(lo + 1, hi + 1))
    if comm.size > 1:
        assert len(calls) == 2, calls  # in: ids, positions, types; out: ids, dh, positions, types
    else:
        assert len(calls) == 1  # one rank: the reader keeps its rows; the way out is local
