"""Input: LAMMPS dumps (serial and MPI-parallel), reference sets, descriptor files.

Modules
-------
lammps_dump
    :func:`read_lammps_dump`, :func:`iread_lammps_dump`, :class:`LammpsDump`.
frame
    :class:`Frame`, the per-frame result (this rank's share in an MPI read).
selection
    Frame selections: ``"all"``, ``-1``, ``"0:100:5"``, ``"3,5,8"``, ``"t=1000:5000"``.
frame_index
    Byte offsets of every frame, cached beside the dump.
compressed
    Plain and compressed (gz, bz2, xz, zst) byte sources.
reference
    Reference / training sets (anything ASE reads, LAMMPS dumps) and descriptor HDF5 files.
lammps_header, atoms_block, ownership, _kernels
    Header/box parsing, the chunked row parser, id order and owner ranks, Numba kernels.
"""

from .frame import Frame
from .lammps_dump import DumpWarning, LammpsDump, iread_lammps_dump, read_lammps_dump
from .reference import (load_reference, read_descriptors, read_structures,
                        write_descriptors)
from .selection import select_frames

__all__ = ["Frame", "DumpWarning", "LammpsDump", "read_lammps_dump", "iread_lammps_dump",
           "select_frames", "read_structures", "load_reference", "read_descriptors",
           "write_descriptors"]
