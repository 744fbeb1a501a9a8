"""Input: LAMMPS dumps, reference sets, descriptor files -- serial; no ranks, no MPI.

Modules
-------
lammps_dump
    :func:`read_lammps_dump`, :func:`iread_lammps_dump`, :class:`LammpsDump`.
frame
    :class:`Frame`, the per-frame result.
selection
    Frame selections: ``"all"``, ``-1``, ``"0:100:5"``, ``"3,5,8"``, ``"t=1000:5000"``.
frame_index
    Byte offsets of every frame, cached beside the dump.
compressed
    Plain and compressed (gz, bz2, xz, zst) byte sources.
reference
    Reference / training sets (anything ASE reads, LAMMPS dumps) and descriptor HDF5 files.
lammps_header, atoms_block, id_order, _kernels
    Header/box parsing, the chunked row parser, order by id, Numba kernels.

The MPI-parallel reader built on these (byte-range parse per rank, atoms routed to their
owner ranks) is :class:`quests_hpc.parallel.dump_reader.ParallelDump`.
"""

from .frame import Frame
from .lammps_dump import DumpWarning, LammpsDump, iread_lammps_dump, read_lammps_dump
from .reference import (load_reference, read_descriptors, read_structures,
                        write_descriptors)
from .selection import select_frames

__all__ = ["Frame", "DumpWarning", "LammpsDump", "read_lammps_dump", "iread_lammps_dump",
           "select_frames", "read_structures", "load_reference", "read_descriptors",
           "write_descriptors"]
