"""A small real results file (campaign runner on synthetic FCC Cu dumps) for the hooks."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "campaign"))

import campaign_data


def make_results(d, comm, dh=True, positions=False, n_frames=4, name="out.h5"):
    """Run a 500-atom, ``n_frames``-frame campaign in directory ``d``; returns the path.

    Thermal-like noise grows from frame to frame (0.05 A, 0.10 A, ...), so the fraction
    of atoms covered by the bundled FCC reference (dH <= 0) falls from most to few.
    """
    from quests_hpc.campaign.runner import run_campaign
    from quests_hpc.campaign.schema import load_campaign

    d = str(d)
    if comm.rank == 0:
        campaign_data.write_dump(os.path.join(d, "md.lammpstrj"), n_cells=(5, 5, 5),
                                 n_frames=n_frames, noise=0.05)
        refs = f"references:\n  - name: bulk\n    path: {campaign_data.REFERENCE}\n" if dh \
            else ""
        campaign_data.write_yaml(os.path.join(d, "c.yaml"), f"""\
name: hooks
{refs}inputs:
  - name: md
    path: md.lammpstrj
measures:
  descriptors: {str(not dh).lower()}
  positions: {str(positions).lower()}
  overlap: {str(dh).lower()}
output:
  path: {name}
run:
  threads: 1
  progress: off
""")
    comm.Barrier()
    c = load_campaign(os.path.join(d, "c.yaml"))
    run_campaign(c, comm, out=lambda *a: None)
    return os.path.join(d, name)


#: The material of the nucleation analysis (required): the paper's Mishin Cu values.
CU = {"t_melt": 1323.0, "dh_melt": 11.99, "gamma_sl": 0.177, "gamma_range": [0.177, 0.221],
      "atomic_volume": 12.893}


def analysis_section(raw, d):
    """``raw`` as the campaign validation normalises an ``analysis`` section (``d`` holds
    the ``md.lammpstrj`` of :func:`make_results`)."""
    from quests_hpc.campaign.schema import validate

    c = validate({"inputs": [{"path": "md.lammpstrj"}], "output": {"path": "unused.h5"},
                  "analysis": raw}, str(d))
    return c.analysis
