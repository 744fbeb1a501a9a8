"""MPI-parallel QUESTS: one frame split in space across ranks.

Modules
-------
decomposition
    Cartesian grid of subdomains in fractional coordinates; atoms sent to their owners.
halo
    Ghost atoms (incl. periodic images) within the cutoff of every subdomain.
shared_reference
    Reference descriptors once per node (MPI-3 shared memory) or sharded + ring pass.
measures
    Distributed dH, H, diversity, novelty/overlap by ring passes; reductions to rank 0.
runtime
    Threads per rank, Numba compile-cache warm-up, abort-on-exception.
frame_pipeline
    The one frame pipeline of every command: read (rows straight to their owners) ->
    halo -> descriptors and kernel sums in chunks -> results back to id order.
comm
    Thin numpy layer over mpi4py (owned by the I/O work).
dump_reader, dump_index, dump_stream, routing
    The collective LAMMPS dump reader (:class:`ParallelDump`, built on the serial
    :mod:`quests_hpc.io`): frame index scan, compressed line dealing, atoms to owners.

Importing this package imports :mod:`mpi4py.MPI` (initialises MPI).
"""

from .dump_reader import ParallelDump

__all__ = ["ParallelDump"]
