"""quests-hpc: MPI-parallel QUESTS (information entropy and model-free uncertainty).

Public, upstream-compatible API::

    from quests_hpc import get_descriptors, entropy, delta_entropy, diversity
"""

__version__ = "0.1.0"
