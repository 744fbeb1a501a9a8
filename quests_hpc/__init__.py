"""quests-hpc: MPI-parallel QUESTS (information entropy and model-free uncertainty).

Public, upstream-compatible API::

    from quests_hpc import get_descriptors, entropy, delta_entropy, diversity

Lower levels: :mod:`quests_hpc.descriptors` (arrays, point clouds),
:mod:`quests_hpc.information` (kernel sums, measures), :mod:`quests_hpc.threads`.
"""

from ._version import __version__

from .descriptors import descriptors_from_arrays, get_descriptors, local_descriptors
from .information import (
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

__all__ = [
    "__version__",
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
    "get_num_threads",
    "local_descriptors",
    "set_num_threads",
]
