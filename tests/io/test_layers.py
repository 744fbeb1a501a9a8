"""The reader's two layers (issue 10): ``quests_hpc.io`` is serial and knows nothing of
ranks; ``quests_hpc.parallel.dump_reader`` is the collective reader built on it."""

import subprocess
import sys

import numpy as np
import pytest
from iohelpers import data

from quests_hpc.io import LammpsDump, read_lammps_dump

IO_MODULES = ["quests_hpc.io", "quests_hpc.io.lammps_dump", "quests_hpc.io.frame_index",
              "quests_hpc.io.atoms_block", "quests_hpc.io.id_order", "quests_hpc.io.compressed",
              "quests_hpc.io.reference", "quests_hpc.io.selection", "quests_hpc.io.frame"]


def test_io_imports_neither_mpi_nor_parallel():
    """Importing every io module, and reading a dump serially, loads no MPI."""
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in IO_MODULES)
            + f"quests_hpc.io.read_lammps_dump({data('cu_unsorted.lammpstrj.gz')!r}, ':')\n"
            + "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'mpi4py'"
            + " or m.startswith('quests_hpc.parallel'))\n"
            + "print(repr(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_serial_reader_takes_no_communicator():
    with pytest.raises(TypeError, match="comm"):
        LammpsDump(data("cu_unsorted.lammpstrj"), comm=None)
    with pytest.raises(TypeError, match="comm"):
        read_lammps_dump(data("cu_unsorted.lammpstrj"), -1, comm=None)


def test_parallel_reader_requires_a_communicator():
    from quests_hpc.parallel.dump_reader import ParallelDump
    from quests_hpc.parallel.dump_reader import read_lammps_dump as pread

    path = data("cu_unsorted.lammpstrj")
    for call in (lambda: ParallelDump(path, None), lambda: pread(path, -1, None),
                 lambda: list(__import__("quests_hpc.parallel.dump_reader", fromlist=["x"])
                              .iread_lammps_dump(path, ":", None))):
        with pytest.raises(TypeError, match=r"\(\): comm is None; pass MPI.COMM_SELF for a serial run"):
            call()


@pytest.mark.parametrize("name", ["cu_unsorted.lammpstrj", "cu_unsorted.lammpstrj.gz",
                                  "cu_thresh.lammpstrj", "tri_general.lammpstrj"])
def test_parallel_reader_on_comm_self_equals_serial(name):
    """One rank (MPI.COMM_SELF): the same frames, the same surface, the owner hook unused."""
    from mpi4py import MPI

    from quests_hpc.parallel.dump_reader import ParallelDump

    path = data(name)
    calls = []
    with LammpsDump(path, columns="all") as s, ParallelDump(path, MPI.COMM_SELF, columns="all") as p:
        assert len(p) == len(s) and np.array_equal(p.timesteps, s.timesteps)
        assert np.array_equal(p.natoms, s.natoms) and p.files == s.files
        assert p.where(1) == s.where(1) and p.byte_range(1) == s.byte_range(1)
        assert list(p.select("t=50:150")) == list(s.select("t=50:150"))
        assert p.header(1).timestep == s.header(1).timestep
        assert repr(p).startswith("ParallelDump(") and repr(s).startswith("LammpsDump(")
        for i in range(len(s)):
            a = s.read(i)
            b = p.read(i, owner=lambda *args: calls.append(1))
            assert b.first == a.first == 0 and b.index == a.index == i
            assert np.array_equal(a.ids, b.ids) and np.array_equal(a.positions, b.positions)
            for k, v in a.arrays.items():
                assert np.array_equal(v, b.arrays[k])
        assert set(p.timings) >= {"parse", "ownership", "total"}
    assert calls == []
