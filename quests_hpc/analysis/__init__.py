"""Post-processing of dH results: clusters of covered atoms and nucleation helpers.

Modules
-------
clusters
    Distributed clusters of atoms with dH <= threshold (labels = smallest atom id).
biconnected
    2-connected components of the clusters (the paper's Methods).
nucleation
    Classical nucleation theory: critical radius/size, fit of the cluster-size distribution.
campaign_hooks
    The cluster and nucleation analyses of a results file (used by the CLI and campaigns).

Importing :mod:`quests_hpc.analysis.clusters` imports :mod:`mpi4py.MPI`; the nucleation
helpers do not.
"""
