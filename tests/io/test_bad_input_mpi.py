"""Bad input in an MPI read (run with mpiexec -n 2..4): the same clear error on every rank.

Run: ``mpiexec -n 2 python -m pytest --with-mpi -m mpi tests/io/test_bad_input_mpi.py``.
A defect in the part of a frame that only the last rank parses (or owns) must raise the
same :class:`QuestsInputError` on every rank -- never a hang, never an abort.
"""

import os
import shutil

import pytest
from iohelpers import data, edited_text, write_text
from iohelpers import set_field as field

from quests_hpc.errors import QuestsInputError
from quests_hpc.io import frame_index, read_lammps_dump
from quests_hpc.io.compressed import open_source
from quests_hpc.parallel.dump_reader import ParallelDump
from quests_hpc.parallel.dump_reader import read_lammps_dump as pread_lammps_dump

MPI = pytest.importorskip("mpi4py.MPI")

TS2 = 539
LAST = TS2 + 263  # line 802, near the end of frame 2: parsed by the last rank


def edited(folder, edits, name):
    comm = MPI.COMM_WORLD
    path = os.path.join(str(folder), name)
    if comm.rank == 0:
        write_text(path, edited_text(edits))
    comm.Barrier()
    return path


def same_error_everywhere(call, pattern):
    """``call()`` raises QuestsInputError matching ``pattern`` with one message on all ranks."""
    import re

    comm = MPI.COMM_WORLD
    msg = None
    try:
        call()
    except QuestsInputError as exc:
        msg = str(exc)
    msgs = comm.allgather(msg)
    assert all(m is not None for m in msgs), msgs
    assert len(set(msgs)) == 1, msgs
    assert re.search(pattern, msgs[0]), msgs[0]


@pytest.mark.mpi
@pytest.mark.parametrize("case", ["atom-line", "nan", "far", "header"])
def test_same_error_on_every_rank(mpi_tmp_path, case):
    comm = MPI.COMM_WORLD
    atom = open(data("cu_unsorted.lammpstrj")).read().split("\n")[LAST - 1].split()[0]
    edits, pattern = {
        "atom-line": ({LAST: "5 1 2.0 2.0 oops"}, r"line 802: column 5 \(z\): 'oops' is not a number"),
        "nan": ({LAST: field(3, "nan")}, rf"line 802: atom id {atom}: column 4 \(y\): coordinate "
                                         r"'nan' is not finite"),
        "far": ({LAST: field(4, "-3e9")}, rf"line 802: atom id {atom}: .*z = -3000000000.0 is "
                                          r"2.07e\+08 box lengths out along the periodic axis z"),
        "header": ({TS2 + 5: "5.0 1.0"}, r"line 544: BOX BOUNDS x: xlo = 5.0, xhi = 1.0: hi < lo"),
    }[case]
    path = edited(mpi_tmp_path, edits, f"{case}.lammpstrj")
    where = r"\.lammpstrj, frame 2 \(timestep 100\)[,:] "
    for chunk in (1 << 22, 211):
        same_error_everywhere(lambda c=chunk: pread_lammps_dump(path, 2, comm=comm, chunk_bytes=c,
                                                             cache=False), where + pattern)
    same_error_everywhere(lambda: pread_lammps_dump(path, ":", comm=comm, cache=False),
                          where + pattern)
    assert pread_lammps_dump(path, 3, comm=comm, cache=False).timestep == 150


@pytest.mark.mpi
def test_not_a_dump_on_every_rank(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    path = os.path.join(str(mpi_tmp_path), "notes.lammpstrj")
    if comm.rank == 0:
        write_text(path, "some notes\n")
    comm.Barrier()
    same_error_everywhere(lambda: ParallelDump(path, comm, cache=False),
                          r"notes.lammpstrj: not a LAMMPS text dump: line 1 is 'some notes'")


@pytest.mark.mpi
def test_type_missing_from_the_type_map_on_one_rank_only(mpi_tmp_path):
    """Only the rank owning the highest id meets type 2: every rank reports it."""
    comm = MPI.COMM_WORLD
    lines = open(data("cu_unsorted.lammpstrj")).read().split("\n")
    block = range(TS2 + 8, TS2 + 8 + 256)
    top = max(block, key=lambda k: int(lines[k].split()[0]))
    edits = {k + 1: field(1, "1") for k in block}
    edits[top + 1] = field(1, "2")
    path = edited(mpi_tmp_path, edits, "types.lammpstrj")
    same_error_everywhere(lambda: pread_lammps_dump(path, 2, comm=comm, type_map=["Cu"], cache=False),
                          r"types.lammpstrj, frame 2 \(timestep 100\): atom type\(s\) \[2\] not in the "
                          r"type map")


@pytest.mark.mpi
def test_stale_cache_revalidated_on_every_rank(mpi_tmp_path, monkeypatch):
    from quests_hpc.io import lammps_dump

    comm = MPI.COMM_WORLD
    monkeypatch.setattr(lammps_dump, "_SMALL_FILE", 0)
    path = os.path.join(str(mpi_tmp_path), "stale.lammpstrj")
    if comm.rank == 0:
        shutil.copy(data("cu_unsorted.lammpstrj"), path)
        stale = frame_index.get_index(open_source(path), cache="beside")
        st = os.stat(path)
        text = open(path).read()
        lines = text.split("\n")
        lines[9] = lines[9].replace("0.0000000000000000e+00", "0.0", 1)
        k = [i for i, x in enumerate(lines) if x.startswith("ITEM: BOX BOUNDS")][4] + 1
        lines[k] = lines[k].replace("0.0000000000000000e+00", "0." + "0" * 35 + "e+00", 1)
        write_text(path, "\n".join(lines))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        stale.fingerprint = frame_index.fingerprint(open_source(path), stale)  # slips past it
        stale.path = os.path.abspath(path)
        frame_index.save_index(stale, frame_index.cache_path(path))
    comm.Barrier()
    d = ParallelDump(path, comm)
    assert d.indices[0].from_cache
    f = d.read(2)
    ref = read_lammps_dump(path, 2, cache=False)
    import numpy as np

    got = np.concatenate(comm.allgather(f.positions))
    assert f.timestep == 100 and np.array_equal(got, ref.positions)
