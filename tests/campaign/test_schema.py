"""Campaign YAML validation: every problem at once, did-you-mean, line numbers, exit 2."""

import dataclasses
import os

import pytest
from campaign_data import REFERENCE, write_dump, write_yaml

from quests_hpc.campaign.schema import (
    Campaign,
    CampaignError,
    Input,
    Parameters,
    Reference,
    load_campaign,
    schema_help,
    validate,
)
from quests_hpc.cli import main


def _problems(path):
    with pytest.raises(CampaignError) as ei:
        load_campaign(path)
    return ei.value.problems, str(ei.value)


def test_valid_campaign_is_normalised(tmp_path):
    write_dump(tmp_path / "a.lammpstrj", n_frames=2)
    p = write_yaml(tmp_path / "c.yaml", f"""
references: [{REFERENCE}]
inputs:
  - path: a.lammpstrj
    frames: "0:2"
output: {{path: out/../r.h5}}
""")
    c = load_campaign(p)
    assert isinstance(c, Campaign)
    assert c.name == "c"
    assert c.parameters == Parameters(k=32, cutoff=5.0, bandwidth=(0.015,), threshold=0.0)
    assert c.inputs == (Input(name="a", path=str(tmp_path / "a.lammpstrj"), frames="0:2"),)
    assert c.references[0].name == "cu_fcc_reference" and isinstance(c.references[0], Reference)
    assert c.output.path == str(tmp_path / "r.h5")
    assert c.measures.delta_entropy is True  # default with references
    assert c.measures.learning_curve is None
    assert c.run.progress == "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.output.path = "elsewhere.h5"


def test_every_problem_listed_with_suggestions_and_lines(tmp_path):
    write_dump(tmp_path / "a.lammpstrj", n_frames=1)
    p = write_yaml(tmp_path / "bad.yaml", """\
parameters:
  k: 32.5
  cutof: 5.0
  bandwidth: [0.015, -1]
references:
  - path: missing_ref.xyz
inputs:
  - path: a.lammpstrj
    frmes: all
  - path: nope_*.lammpstrj
    frames: "1:x"
measures:
  learning_curve: {dataset: bluk}
outptu: {path: r.h5}
""")
    problems, text = _problems(p)
    joined = "\n".join(problems)
    assert "parameters.k (line 2): must be an integer" in joined
    assert "parameters.cutof (line 3): unknown key (did you mean 'cutoff'?)" in joined
    assert "parameters.bandwidth (line 4): must be > 0, got -1" in joined
    assert "references[0].path (line 6): file not found" in joined and "missing_ref.xyz" in joined
    assert "inputs[0].frmes (line 9): unknown key (did you mean 'frames'?)" in joined
    assert "inputs[1].path (line 10): no file matches" in joined
    assert "inputs[1].frames (line 11)" in joined
    assert "no reference named 'bluk'" in joined
    assert "outptu (line 14): unknown key (did you mean 'output'?)" in joined
    assert "output: required key missing" in joined
    assert len(problems) >= 10
    assert text.startswith(f"{p}: {len(problems)} problems:")


def test_yaml_syntax_error_names_line(tmp_path):
    p = write_yaml(tmp_path / "syntax.yaml", "inputs:\n  - path: [a.dump\noutput: {path: x}\n")
    problems, _ = _problems(p)
    assert len(problems) == 1 and problems[0].startswith("invalid YAML: line")


def test_duplicate_keys_and_wrong_section_types(tmp_path):
    write_dump(tmp_path / "a.lammpstrj", n_frames=1)
    p = write_yaml(tmp_path / "dup.yaml", """\
inputs: [a.lammpstrj]
measures: 3
output: {path: r.h5}
output: {path: s.h5}
run: {threads: 0, progress: fancy, balance: atom}
""")
    problems, _ = _problems(p)
    joined = "\n".join(problems)
    assert "output (line 4): duplicate key" in joined
    assert "measures (line 2): must be a mapping" in joined
    assert "run.threads (line 5): must be >= 1, got 0" in joined
    assert "run.progress (line 5): must be one of auto, lines, tty, off" in joined
    assert ("run.balance (line 5): must be one of uniform, atoms; got 'atom' "
            "(did you mean 'atoms'?)") in joined


def test_cross_checks(tmp_path):
    write_dump(tmp_path / "a.lammpstrj", n_frames=1)
    raw = {"inputs": [{"path": "a.lammpstrj", "name": "x"}, {"path": "a.lammpstrj", "name": "x"},
                      {"path": REFERENCE, "format": "descriptors"}],
           "measures": {"delta_entropy": True, "learning_curve": {"dataset": "r", "num": 5}},
           "output": {"path": "o.h5"}}
    with pytest.raises(CampaignError) as ei:
        validate(raw, str(tmp_path))
    joined = "\n".join(ei.value.problems)
    assert "inputs[1].name: name 'x' is used twice" in joined
    assert "inputs[2].format: inputs need atoms" in joined
    assert "measures.delta_entropy: needs at least one entry in `references`" in joined
    assert "no reference named 'r'" in joined
    assert "the fit needs at least 3 points after dropping 3 + 3; got 5 sizes" in joined


def test_cli_exit_status_2_and_message(tmp_path, capsys):
    p = write_yaml(tmp_path / "c.yaml", "inputs: [nothere.dump]\noutput: {path: r.h5}\nfoo: 1\n")
    assert main(["run", p]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "file not found" in err and "foo (line 3): unknown key" in err
    assert not os.path.exists(tmp_path / "r.h5")


def test_cli_check_only(tmp_path, capsys):
    write_dump(tmp_path / "a.lammpstrj", n_frames=1)
    p = write_yaml(tmp_path / "c.yaml", "inputs: [a.lammpstrj]\noutput: {path: r.h5}\n")
    assert main(["run", p, "--check"]) == 0
    assert "valid" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "r.h5")


@pytest.mark.parametrize("frames, expected", [
    ("999", "inputs[0] (a): {dump}: frame index 999 out of range (1 frames)"),
    ("t=5000:6000", "selects no frame (the file holds 1 complete frames)"),
])
def test_cli_check_opens_the_inputs(tmp_path, capsys, frames, expected):
    """`run --check` says "valid" only if the inputs' frame selections hold frames: a frame
    out of range (or a dump that is not one) is refused as the run would refuse it, exit 2,
    nothing created."""
    dump = write_dump(tmp_path / "a.lammpstrj", n_frames=1)
    p = write_yaml(tmp_path / "c.yaml", f"inputs: [{{path: a.lammpstrj, frames: '{frames}'}}]\n"
                                        "output: {path: r.h5}\n")
    assert main(["run", p, "--check"]) == 2
    out, err = capsys.readouterr()
    assert "valid" not in out and "Traceback" not in err
    assert expected.format(dump=dump) in err, err
    assert sorted(os.listdir(tmp_path)) == ["a.lammpstrj", "c.yaml"]


def test_schema_help_lists_every_key_with_default():
    text = "\n".join(schema_help())
    for key in ("k: 32", "cutoff: 5.0", "bandwidth: [0.015]", "threshold: 0.0", "frames: all",
                "overwrite: false", "backend: auto", "repeats: 3", "drop: [3, 3]",
                "progress: auto", "reference_layout: auto", "path: (required)"):
        assert key in text, key


def test_yaml_numbers_and_selections(tmp_path):
    """`frames: 1:5:2` unquoted stays a selection (YAML 1.1 would read base 60: 3902);
    `1e-2` is a number; an unquoted `off` is the progress mode off."""
    write_dump(tmp_path / "a.lammpstrj", n_frames=1)
    p = write_yaml(tmp_path / "c.yaml", "inputs: [{path: a.lammpstrj, frames: 1:5:2}]\n"
                   "parameters: {bandwidth: 1e-2}\noutput: {path: r.h5}\nrun: {progress: off}\n")
    c = load_campaign(p)
    assert c.inputs[0].frames == "1:5:2"
    assert c.parameters.bandwidth == (0.01,)
    assert c.run.progress == "off"


BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
inputs: *i
output: {path: r.h5}
"""


def _sha(paths):
    import hashlib

    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


@pytest.mark.parametrize("text, what", [
    (BILLION_LAUGHS, "invalid YAML: the document expands to more than 100,000 nodes (aliases "
                     "of anchors repeated, line 6); a campaign has a few hundred"),
    ("x: &x [1, *x]\ninputs: [a.lammpstrj]\noutput: {path: r.h5}\n",
     "invalid YAML: recursive alias at line 1 (an anchor used inside itself)"),
])
def test_alias_bomb_refused_quickly(tmp_path, capsys, text, what):
    import time

    write_dump(tmp_path / "a.lammpstrj", n_frames=1)
    p = write_yaml(tmp_path / "bomb.yaml", text)
    before = _sha([p, tmp_path / "a.lammpstrj"])
    t0 = time.perf_counter()
    assert main(["run", p]) == 2
    assert time.perf_counter() - t0 < 2.0
    err = capsys.readouterr().err
    assert err.startswith(f"quests-hpc: error: {p}: 1 problem:") and what in err, err
    assert "Traceback" not in err
    assert _sha([p, tmp_path / "a.lammpstrj"]) == before
    assert sorted(os.listdir(tmp_path)) == ["a.lammpstrj", "bomb.yaml"]


def test_a_few_aliases_are_fine(tmp_path):
    write_dump(tmp_path / "a.lammpstrj", n_frames=2)
    p = write_yaml(tmp_path / "c.yaml", """\
inputs:
  - &md {path: a.lammpstrj, frames: "0:1"}
  - {<<: *md, name: again, frames: "1"}
references: [{path: a.lammpstrj, name: ref}]
output: {path: r.h5}
""")
    c = load_campaign(p)
    assert [i.frames for i in c.inputs] == ["0:1", "1"]
    assert c.inputs[1].name == "again"
