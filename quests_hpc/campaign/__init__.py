"""Campaigns: one YAML file describing references, inputs, measures and outputs.

Modules
-------
schema
    The YAML schema; validation listing every problem (did-you-mean for unknown keys).
model
    The validated campaign as frozen dataclasses (Campaign, Input, Reference, ...).
fields
    The schema's field checkers.
analysis_section
    The ``analysis`` section's schema table (checked with the rest of the campaign).
plan
    Before any work: inputs and frames, fingerprints, output guard, resume decision.
output
    The results file's structure, the overlap table / learning curve, the final rename.
budget
    Memory estimate of a frame per rank, checked before any work.
sources
    Inputs (LAMMPS dumps / ASE files) opened for the frame pipeline
    (:mod:`quests_hpc.parallel.frame_pipeline`).
references
    Reference descriptors computed or loaded once, shared across ranks.
learning
    Learning curve (H of random subsets) and the asymptote fit.
progress
    Progress lines and the end-of-run stage table.
runner
    :func:`run_campaign`: plan, references, frames, summaries, analyses, report.
oneoff
    Dataset-level ``entropy`` and ``overlap`` commands (no results file).
"""

__all__ = ["CampaignError", "Campaign", "load_campaign", "validate", "run_campaign"]


def run_campaign(*args, **kwargs):
    """See :func:`quests_hpc.campaign.runner.run_campaign` (imports MPI on first use)."""
    from .runner import run_campaign as _run

    return _run(*args, **kwargs)


def __getattr__(name):
    # Lazy (PEP 562): the schema includes the analysis section, whose checkers come from
    # quests_hpc.campaign.fields; importing the schema here eagerly would make
    # `import quests_hpc.analysis.schema` circular.
    if name in ("CampaignError", "Campaign", "load_campaign", "validate"):
        from . import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
