"""The MPI layer of quests-hpc: the only modules that call collectives.

Every function taking a communicator requires one (``MPI.COMM_SELF`` for a serial run;
``None`` is refused with a ``TypeError``) and is collective over it.  Errors found on some
ranks reach all of them through one idiom: :func:`comm.raise_if_any` and the context
manager :func:`comm.collective_errors` built on it.

Modules (lower ones first; none imports one listed after it)
-------------------------------------------------------------
comm
    Rank helpers, collective errors, numpy rows over MPI (``Alltoallv``, gather, scatter,
    chunked broadcast, in-place redistribution).
decomposition, halo, _halo_kernel
    Cartesian (or atom-balanced) grid of subdomains; ghost atoms within the cutoff.
shared_reference, measures
    Reference descriptors once per node (MPI-3 shared memory) or sharded + ring passes;
    distributed dH, H, diversity, novelty/overlap with exact reductions.
runtime
    Threads per rank, Numba compile-cache warm-up, abort on an unexpected exception.
dump_index, dump_stream, routing, dump_reader
    Collective reading of LAMMPS dumps (index, compressed streams, rows to their owners).
frame_pipeline
    One frame: read -> distribute -> halo -> descriptors -> kernel sums -> reductions.

Importing this package imports nothing; its modules import :mod:`mpi4py.MPI` (which
initialises MPI) where they need it.
"""
