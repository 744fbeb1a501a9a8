"""The validated campaign as frozen dataclasses: fingerprint unchanged, typed one-off
commands, the communicator required."""

import dataclasses
import os

import pytest
from campaign_data import LAMMPS_DATA, REFERENCE, basic_campaign

from quests_hpc.campaign.model import Input, LearningCurve, Measures, Parameters, Reference
from quests_hpc.campaign.plan import campaign_fingerprint
from quests_hpc.campaign.schema import load_campaign, validate, validate_parameters, validate_source
from quests_hpc.parallel.frame_pipeline import FrameRequest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
D = os.path.abspath(LAMMPS_DATA)

# Fingerprints computed by the dict-based schema before the dataclasses (commit 290a420):
# results files written then carry them, and a resume must still recognise them.
GOLDEN_FILES = {
    "configs/cu_campaign.yaml": "7fe6eafe14a61136fcb62e1a8d3a2014c4b0605e6cc41563413a4b1fbfc33f5f",
    "configs/dh_cu_dump.yaml": "7f456a33467d110c02fc64623e664dcc7fa410051024ef9083e21ecf0bb3db85",
    "configs/training_descriptors.yaml":
        "503c53b1b991c793e565785dfe9ce54f59ab291b2b451138aeb27cbdb7004331",
    "examples/cu_nucleation/campaign.yaml":
        "a281169118b2c86a315e8b973cf93f38323632b1fb725dffd55eb34563352c2f",
}

GOLDEN_RAW = [
    ({"references": [{"path": REFERENCE, "name": "bulk", "type_map": {1: "Cu", 2: "Ni"}}],
      "inputs": [{"path": [D + "/cu_atom.lammpstrj", D + "/cu_element.lammpstrj"],
                  "frames": [0, 1]}],
      "output": {"path": "o.h5"}},
     "3b5bf0473ba5cde6fb68235dd48414ca7ff6d715b63f2f6d64e83a131ee93b1d"),
    ({"inputs": [{"path": D + "/cu_atom.lammpstrj", "type_map": "Cu, Ni", "frames": -1,
                  "format": "lammps-dump", "ase_format": "extxyz"}],
      "measures": {"descriptors": True, "positions": True}, "output": {"path": "o.h5"}},
     "d5ad4dc5e3b29f0e59cab78b081d2c95ec68deb8bb82415110096cc7e5f803c9"),
    ({"references": [REFERENCE], "inputs": D + "/cu_atom.lammpstrj",
      "parameters": {"k": 16, "cutoff": 4.5, "bandwidth": 0.02, "threshold": -1},
      "measures": {"learning_curve": {"dataset": "cu_fcc_reference", "repeats": 2},
                   "entropy": True},
      "output": {"path": "o.h5"}},
     "3cbc284be2368e2daac176103440930b7146f4566ffd72207318186204f7dc54"),
    ({"references": [REFERENCE], "inputs": [D + "/cu_atom.lammpstrj"],
      "measures": {"learning_curve": False, "overlap": False, "delta_entropy": True},
      "output": {"path": "o.h5"}},
     "fbd7d8aaf93cff46179ea738d1154c37e7bbc0f9ee253c5792ffb6676126d3d4"),
]


@pytest.mark.parametrize("name", sorted(GOLDEN_FILES))
def test_fingerprint_of_the_bundled_campaigns_is_unchanged(name):
    c = load_campaign(os.path.join(ROOT, name))
    assert campaign_fingerprint(c) == GOLDEN_FILES[name]


@pytest.mark.parametrize("raw, fp", GOLDEN_RAW, ids=["type_map_dict", "type_map_str",
                                                     "learning_curve", "no_learning_curve"])
def test_fingerprint_of_every_kind_of_entry_is_unchanged(tmp_path, raw, fp):
    c = validate(raw, str(tmp_path))
    assert campaign_fingerprint(c) == fp


def test_fingerprint_ignores_run_output_and_directory(tmp_path):
    raw, fp = GOLDEN_RAW[0]
    moved = dict(raw, output={"path": "elsewhere/x.h5", "backend": "gather", "fsync": False},
                 run={"threads": 3, "progress": "off"}, name="other", description="text")
    assert campaign_fingerprint(validate(moved, "/")) == fp
    changed = dict(raw, parameters={"k": 31})
    assert campaign_fingerprint(validate(changed, "/")) != fp


def test_the_campaign_is_typed_frozen_and_round_trips(tmp_path):
    raw, _ = GOLDEN_RAW[0]
    c = validate(raw, str(tmp_path), source="s.yaml", yaml="text")
    ref = c.references[0]
    assert isinstance(ref, Reference) and ref.type_map == {1: "Cu", 2: "Ni"}
    with pytest.raises(TypeError):
        ref.type_map[3] = "Al"  # read-only mapping
    inp = c.inputs[0]
    assert isinstance(inp, Input) and inp.frames == "0,1"
    assert inp.path == (D + "/cu_atom.lammpstrj", D + "/cu_element.lammpstrj") == inp.paths
    assert inp.type_map_plain() is None and ref.type_map_plain() == {1: "Cu", 2: "Ni"}
    assert type(ref.type_map_plain()) is dict  # what the readers take
    assert c.references[0].paths == (REFERENCE,)
    assert c.measures == Measures(delta_entropy=True, overlap=True)
    assert (c.source, c.base_dir, c.yaml) == ("s.yaml", str(tmp_path), "text")
    assert c.frame_request() == FrameRequest(k=32, cutoff=5.0, bandwidths=(0.015,),
                                             threshold=0.0, balance="uniform")
    d = c.as_dict()
    assert d["inputs"][0]["path"] == list(inp.path) and d["references"][0]["type_map"] == {
        1: "Cu", 2: "Ni"}
    assert d["output"]["path"] == str(tmp_path / "o.h5") and d["run"]["balance"] == "uniform"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.measures.entropy = True
    lc = validate(GOLDEN_RAW[2][0], str(tmp_path)).measures.learning_curve
    assert lc == LearningCurve(dataset="cu_fcc_reference", repeats=2)
    assert lc.drop == (3, 3) and lc.sizes is None


def test_one_off_entries_are_the_same_objects(tmp_path):
    r = validate_source({"path": REFERENCE, "frames": "0"}, str(tmp_path), "--reference",
                        kind=Reference)
    assert r == Reference(name="cu_fcc_reference", path=REFERENCE, frames="0")
    i = validate_source(os.path.join(D, "cu_atom.lammpstrj"), str(tmp_path), "INPUT")
    assert isinstance(i, Input) and i.name == "cu_atom"
    p = validate_parameters({"k": 8, "bandwidth": [0.01, 0.02]})
    assert p == Parameters(k=8, bandwidth=(0.01, 0.02))
    assert p.request() == FrameRequest(k=8, cutoff=5.0, bandwidths=(0.01, 0.02))


def test_run_and_check_require_a_communicator(tmp_path):
    from quests_hpc.campaign.plan import check_inputs
    from quests_hpc.campaign.runner import run_campaign

    c = load_campaign(basic_campaign(str(tmp_path), n_frames=1))
    with pytest.raises(TypeError, match="pass MPI.COMM_SELF for a serial run"):
        run_campaign(c, None)
    with pytest.raises(TypeError, match="pass MPI.COMM_SELF"):
        check_inputs(c, None)
    assert sorted(os.listdir(tmp_path)) == ["campaign.yaml", "md.lammpstrj"]


def test_precision_enters_the_fingerprint_and_the_request_only_when_not_float64(tmp_path):
    raw, fp = GOLDEN_RAW[0]
    params = dict(raw.get("parameters", {}))
    same = validate(dict(raw, parameters=dict(params, precision="float64")), str(tmp_path))
    f32 = validate(dict(raw, parameters=dict(params, precision="float32")), str(tmp_path))
    assert campaign_fingerprint(same) == fp
    assert campaign_fingerprint(f32) != fp
    assert f32.parameters.precision == "float32" and same.parameters.precision == "float64"
    assert f32.parameters.request().precision == "float32"


def test_a_bad_precision_is_named_with_its_key(tmp_path):
    from quests_hpc.campaign.schema import CampaignError

    raw, _ = GOLDEN_RAW[0]
    with pytest.raises(CampaignError) as ei:
        validate(dict(raw, parameters={"precision": "float16"}), str(tmp_path))
    assert "parameters.precision" in str(ei.value) and "float64, float32" in str(ei.value)
