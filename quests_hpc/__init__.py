"""quests-hpc: MPI-parallel QUESTS (information entropy and model-free uncertainty).

Public, upstream-compatible API::

    from quests_hpc import get_descriptors, entropy, delta_entropy, diversity

Lower levels: :mod:`quests_hpc.descriptors` (arrays, point clouds),
:mod:`quests_hpc.information` (kernel sums, measures), :mod:`quests_hpc.threads`.
"""

from ._version import __version__

from .descriptors import descriptors_from_arrays, get_descriptors, local_descriptors
from .multicomponent import get_descriptors_multicomponent
from .information import (
    DEFAULT_BANDWIDTH,
    delta_entropy,
    diversity,
    diversity_from_log_sums,
    entropy,
    entropy_from_log_sums,
    log_kernel_sum,
    novelty,
    overlap,
    self_log_kernel_sum,
)
from .threads import get_num_threads, set_num_threads


def compress(dataset, method="msc", size=0.5, *, reference=None, output=None, k=32,
             cutoff=5.0, bandwidth=DEFAULT_BANDWIDTH, seed=0, start=None, comm=None,
             species=None, type_map=None):
    """Choose the structures of a data set that keep most of its information.

    ``dataset``: files or globs of structures (LAMMPS dumps, or anything ASE reads; every
    frame a structure).  ``method``: msc (default), msc_conditional (needs
    ``reference``), fps, mean_fps, k_means, random.  ``size``: a number of structures or
    a fraction in (0, 1).  With ``output`` (an extxyz path) the chosen structures, the
    HDF5 report ``OUT.h5`` and the curve ``OUT_curve.png`` are written (new files only).
    ``comm``: an mpi4py communicator (default ``MPI.COMM_SELF``); collective.
    ``species``: the elements (e.g. ``["Ni", "Al"]``: multi-element descriptors),
    ``"ignore"``, or None (a data set naming several elements is refused); ``type_map``
    names the types of dumps without an ``element`` column.

    Returns a :class:`quests_hpc.dataset.compress.Compression`: ``indices`` (choice
    order), ``novelty``, ``entropy``, ``H``, ``D``, ``overlap``, the curve.
    See docs/datasets.md.
    """
    from .dataset.compress import compress as _compress
    from .dataset.compress_run import reference_chunks, run_compression
    from .dataset.structures import load_dataset

    if comm is None:
        from mpi4py import MPI

        comm = MPI.COMM_SELF
    if method == "msc" and reference is not None:
        method = "msc_conditional"
    if output is not None:
        return run_compression(comm, [dataset] if isinstance(dataset, str) else dataset,
                               output, method=method, size=size, reference=reference, k=k,
                               cutoff=cutoff, h=bandwidth, seed=seed, start=start,
                               log=lambda line: None, species=species, type_map=type_map)[0]
    data = load_dataset(comm, dataset, k=k, cutoff=cutoff, h=bandwidth, species=species,
                        type_map=type_map)
    chunks = None if reference is None else reference_chunks(comm, reference, k, cutoff,
                                                             bandwidth, species, type_map)[0]
    return _compress(comm, data, method, size, reference_chunks=chunks, seed=seed,
                     start=start)

__all__ = [
    "__version__",
    "compress",
    "delta_entropy",
    "descriptors_from_arrays",
    "diversity",
    "diversity_from_log_sums",
    "entropy",
    "entropy_from_log_sums",
    "log_kernel_sum",
    "novelty",
    "overlap",
    "self_log_kernel_sum",
    "get_descriptors",
    "get_descriptors_multicomponent",
    "get_num_threads",
    "local_descriptors",
    "set_num_threads",
]
