"""Every example campaign in configs/ runs on its small data (serially, output in tmp)."""

import glob
import os

import h5py
import numpy as np
import pytest

from quests_hpc.campaign.schema import load_campaign
from quests_hpc.results import complete_frames, read_table

MPI = pytest.importorskip("mpi4py.MPI")
CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                                        "*.yaml")))


def test_there_are_examples():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_runs(path, tmp_path):
    from quests_hpc.campaign.runner import run_campaign

    out = str(tmp_path / "out.h5")
    c = load_campaign(path, overrides={"output": {"path": out}, "run": {"threads": 1,
                                                                        "progress": "off"}})
    lines = []
    res = run_campaign(c, MPI.COMM_SELF, out=lines.append)
    assert res["computed"] == res["frames"] > 0
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"]
        assert len(complete_frames(f)) == res["frames"]
        assert f.attrs["campaign_name"] == c.name
        t = read_table(f, "summary/frames")
        assert (t["natoms"] > 0).all()
        if c.references:
            assert np.isfinite(t["dh_mean"]).all()
            o = read_table(f, "summary/overlap")
            assert o["attrs"]["complete"] and ((o["overlap"] >= 0) & (o["overlap"] <= 1)).all()
        if c.measures.learning_curve:
            lc = read_table(f, "learning_curve")
            assert lc["attrs"]["complete"] and np.isfinite(lc["fit"]).all()
