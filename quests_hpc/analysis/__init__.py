"""Post-processing of dH results: clusters of covered atoms, nucleation, pictures, exports.

The application layer above the results file (it may use :mod:`quests_hpc.results`,
:mod:`quests_hpc.parallel`, :mod:`quests_hpc.plotting` and :mod:`quests_hpc.export`;
it never imports :mod:`quests_hpc.campaign`, whose ``analysis`` section --
:mod:`quests_hpc.campaign.analysis_section` -- hands it a normalised mapping).

Modules
-------
clusters
    Distributed clusters of atoms with dH <= threshold (labels = smallest atom id).
biconnected
    2-connected components of the clusters (the paper's Methods).
nucleation
    Classical nucleation theory: critical radius/size, fit of the cluster-size
    distribution (the material constants are always given, never assumed).
campaign_hooks
    The cluster and nucleation analyses of a results file and :func:`run_analyses`
    (a campaign's ``analysis`` section; used by the CLI and campaigns).
results_io
    Frames read from, and analysis tables written into, a results file.
figures
    :func:`~quests_hpc.analysis.figures.plot_results`: every picture of a results file.
frame_export
    One file per frame (dH, cluster) for OVITO.

Importing :mod:`quests_hpc.analysis.clusters` imports :mod:`mpi4py.MPI`; the nucleation
helpers do not.
"""
