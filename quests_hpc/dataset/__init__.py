"""The data-set side of QUESTS: compression, selection for labelling, bandwidth rules,
reports across active-learning generations (issue 12).

The application layer (like :mod:`quests_hpc.analysis`): it reads structures through
:mod:`quests_hpc.io`, distributes them with :mod:`quests_hpc.parallel` and computes with
:mod:`quests_hpc.descriptors` / :mod:`quests_hpc.information`.  It never imports
:mod:`quests_hpc.campaign` (a campaign section hands it plain values).  The commands are
in :mod:`quests_hpc.commands`.
"""
