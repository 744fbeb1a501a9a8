"""The campaign's ``compress`` section: the same choice as ``run_compression``, every bad
value named by its key (exit status 2, before any work), a rerun skipping a finished
compression and refusing a mismatching one, compress-only campaigns, the example, and
the same picks under MPI as serially (``mpiexec -n 2 python -m pytest --with-mpi -m mpi``).
"""

import json
import os

import h5py
import pytest
import yaml
from campaign_data import REFERENCE, basic_campaign, write_yaml

from mpi_support import on_root
from quests_hpc.campaign.schema import CampaignError, load_campaign, validate
from quests_hpc.cli import main

MPI = pytest.importorskip("mpi4py.MPI")

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "dataset")
DUMP = os.path.abspath(os.path.join(DATA, "cu_frames_small.lammpstrj"))  # 63 x 32 atoms
EXTXYZ = os.path.abspath(os.path.join(DATA, "cu_frames_small.extxyz"))
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "compress_cu",
                       "campaign.yaml")

COMPRESS_ONLY = f"""\
parameters: {{bandwidth: [0.03, 0.015]}}   # compression uses the first
compress:
  - name: msc6
    dataset: {DUMP}
    size: 6
    output: msc6.extxyz
  - dataset: [{DUMP}]
    size: 3
    reference: {REFERENCE}     # -> msc_conditional
    output: cond.extxyz
    plot: none
run: {{threads: 1, progress: off}}
"""


def _run(path, comm=None, **over):
    from quests_hpc.campaign.runner import run_campaign

    lines = []
    c = load_campaign(path, overrides=over or None)
    return run_campaign(c, comm or MPI.COMM_SELF, out=lines.append), lines


def _chosen(report):
    with h5py.File(report, "r") as f:
        g = f["compression"]
        return ([int(i) for i in g["chosen/index"][()]], g["chosen/novelty"][()],
                json.loads(g.attrs["options"]), list(f.attrs["bandwidths"]))


def _extxyz_indices(path):
    from ase.io import read

    frames = read(path, index=":", format="extxyz", parallel=False)
    return [a.info["quests_index"] for a in frames]


def _direct(d, name, **kw):
    from quests_hpc.dataset.compress_run import run_compression

    out = os.path.join(d, name)
    result, _, _ = run_compression(MPI.COMM_SELF, [DUMP], out, plot="none",
                                   log=lambda line: None, **kw)
    return result


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A compress-only campaign run once (two entries), and the direct compressions."""
    d = tmp_path_factory.mktemp("compress_only")
    y = write_yaml(d / "c.yaml", COMPRESS_ONLY)
    res, lines = _run(y)
    direct = {"msc": _direct(str(d), "direct_msc.extxyz", method="msc", size=6, h=0.03),
              "cond": _direct(str(d), "direct_cond.extxyz", method="msc_conditional",
                              size=3, reference=REFERENCE, h=0.03)}
    return d, y, res, lines, direct


def test_campaign_chooses_as_run_compression(finished):
    d, _, res, lines, direct = finished
    assert res["compress"] == ["computed", "computed"] and res["path"] is None
    idx, nov, opts, bws = _chosen(d / "msc6.h5")
    assert idx == direct["msc"].indices and len(idx) == 6
    assert list(nov) == list(direct["msc"].novelty)
    assert _extxyz_indices(d / "msc6.extxyz") == idx
    assert bws == [0.03] and opts["bandwidth"] == 0.03 and opts["method"] == "msc"
    assert os.path.exists(d / "msc6_curve.png")
    idx, _, opts, _ = _chosen(d / "cond.h5")
    assert idx == direct["cond"].indices and len(idx) == 3
    assert opts["method"] == "msc_conditional" and opts["reference"] == REFERENCE
    assert not os.path.exists(d / "cond_curve.png")  # plot: none
    text = "\n".join(lines)
    assert "compress msc6: msc, 6 of 63 structures" in text
    assert "compress compress_1: msc_conditional, 3 of 63 structures" in text


def test_rerun_skips_finished(finished):
    d, y, _, _, _ = finished
    before = {p: os.stat(d / p).st_mtime_ns for p in ("msc6.extxyz", "msc6.h5", "cond.h5")}
    res, lines = _run(y)
    assert res["compress"] == ["done", "done"]
    assert "compress msc6: done (msc, 6 of 63 structures" in "\n".join(lines)
    assert before == {p: os.stat(d / p).st_mtime_ns for p in before}


def _edited(d, y, old, new, name):
    text = open(y).read()
    assert old in text
    return write_yaml(d / name, text.replace(old, new))


def test_rerun_refuses_other_settings(finished, capsys):
    d, y, _, _, _ = finished
    before = open(d / "msc6.extxyz").read()
    other = _edited(d, y, "size: 6", "size: 7", "other.yaml")
    assert main(["run", other]) == 2
    err = capsys.readouterr().err
    assert "compress[0]: " in err and "msc6.h5 holds a compression with other settings " \
        "(size: 6 there, 7 here)" in err and "never replaced" in err
    assert "compress[1]" not in err  # the other entry is finished and matches
    assert open(d / "msc6.extxyz").read() == before
    seeded = _edited(d, y, "bandwidth: [0.03, 0.015]", "bandwidth: [0.015, 0.03]", "bw.yaml")
    with pytest.raises(CampaignError, match=r"bandwidth: 0.03 there, 0.015 here"):
        _run(seeded)


def test_rerun_refuses_partial_or_unverifiable(tmp_path, finished):
    d = finished[0]
    for p in ("msc6.extxyz", "msc6.h5"):  # as if killed before the picture was written
        with open(d / p, "rb") as src, open(tmp_path / p, "wb") as dst:
            dst.write(src.read())
    y = write_yaml(tmp_path / "c.yaml", COMPRESS_ONLY.replace(
        "    output: cond.extxyz\n", "    output: cond.extxyz\n    report: none\n"))
    with open(tmp_path / "cond.extxyz", "w") as f:
        f.write("")
    with pytest.raises(CampaignError) as ei:
        _run(y)
    joined = "\n".join(ei.value.problems)
    assert "compress[0]: " in joined and "msc6_curve.png not (an interrupted run?)" in joined
    assert "compress[1]: " in joined and "with report: none it cannot be recognised" in joined
    assert not os.path.exists(tmp_path / "msc6_curve.png")


def test_rerun_refuses_a_foreign_extxyz(tmp_path, finished):
    d = finished[0]
    for src_name, dst_name in (("msc6.h5", "msc6.h5"), ("msc6_curve.png", "msc6_curve.png"),
                               ("direct_cond.extxyz", "msc6.extxyz")):
        with open(d / src_name, "rb") as src, open(tmp_path / dst_name, "wb") as dst:
            dst.write(src.read())
    y = write_yaml(tmp_path / "c.yaml", COMPRESS_ONLY.split("  - dataset:")[0]
                   + "run: {threads: 1}\n")
    with pytest.raises(CampaignError, match="does not hold the structures its report"):
        _run(y)


BAD = f"""\
parameters: {{k: 16}}
compress:
  - dataset: {DUMP}
    method: msx
    size: 0
    output: a.extxyz
  - dataset: {DUMP}
    size: 1.5
    method: msc
    reference: {REFERENCE}
    output: b.extxyz
    start: 2
  - dataset: {DUMP}
    method: msc_conditional
    size: 3
    output: a.extxyz
    colour: red
  - dataset: nothere_*.lammpstrj
    size: 3
    name: compress_0
output: {{path: r.h5}}
"""


def test_bad_values_named_by_key(tmp_path):
    y = write_yaml(tmp_path / "bad.yaml", BAD)
    with pytest.raises(CampaignError) as ei:
        load_campaign(y)
    joined = "\n".join(ei.value.problems)
    assert ("compress[0].method (line 4): must be one of msc, msc_conditional, fps, "
            "mean_fps, k_means, random; got 'msx' (did you mean 'msc'?)") in joined
    assert ("compress[0].size (line 5): must be a number of structures >= 1 or a fraction "
            "in (0, 1), got 0") in joined
    assert "compress[1].size (line 8): a size >= 1 is a number of structures and must be " \
        "whole, got 1.5" in joined
    assert "compress[1].reference (line 10): the method msc does not use a reference " \
        "set" in joined
    assert "compress[1].start (line 12): only mean_fps has a first structure" in joined
    assert "compress[2].colour (line 17): unknown key" in joined
    assert "compress[2].reference: msc_conditional needs a reference set" in joined
    assert f"compress[2].output (line 16): {tmp_path / 'a.extxyz'} is also written by " \
        "compress[0].output" in joined
    assert f"compress[2].report: {tmp_path / 'a.h5'} is also written by " \
        "compress[0].report" in joined  # and the picture beside it
    assert "compress[3].dataset (line 18): no file matches" in joined
    assert "compress[3].output: required key missing" in joined
    assert "compress[3].name (line 20): name 'compress_0' is used twice" in joined
    assert "output (line 21): a campaign without inputs runs only its compress " \
        "section" in joined
    assert "compress[0].start" not in joined  # an unknown method is not defaulted to msc
    assert len(ei.value.problems) == 14


def test_data_checked_before_any_work(tmp_path, capsys):
    """What needs the data set (its size, start, a descriptor reference's k) is refused
    with the campaign's other problems, before any frame or compression runs."""
    basic_campaign(str(tmp_path), n_frames=1, extra=f"""\
compress:
  - dataset: {DUMP}
    size: 64
    output: big.extxyz
  - dataset: {DUMP}
    method: mean_fps
    start: 63
    size: 0.5
    output: nodir/x.extxyz
  - dataset: {DUMP}
    size: 2
    output: {DUMP}
    report: none
    plot: none
""")
    y = str(tmp_path / "campaign.yaml")
    for argv in (["run", y, "--check"], ["run", y]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "compress[0].size: 64 structures asked for, but the data set holds only " \
            "63" in err
        assert "compress[1].start: structure 63 does not exist (the data set holds 63" in err
        assert "compress[1].output" in err and "nodir does not exist" in err
        assert f"compress[2].output {DUMP}: is one of the inputs" in err
    assert sorted(p for p in os.listdir(tmp_path) if not p.startswith(".")) == [
        "campaign.yaml", "md.lammpstrj"]


def test_descriptor_reference_of_other_k(tmp_path):
    ref = str(tmp_path / "ref.h5")
    assert main(["descriptors", EXTXYZ, "-o", ref, "-k", "16", "--threads", "1"]) == 0
    y = write_yaml(tmp_path / "c.yaml", f"""\
compress:
  - {{dataset: {DUMP}, size: 3, reference: ref.h5, output: o.extxyz}}
""")
    with pytest.raises(CampaignError, match=r"compress\[0\]\.reference: .*k"):
        _run(y)
    assert not os.path.exists(tmp_path / "o.extxyz")


def test_compress_only_needs_a_section(tmp_path):
    with pytest.raises(CampaignError) as ei:
        validate({"parameters": {"k": 8}}, str(tmp_path))
    assert ei.value.problems == ["inputs: required key missing"]
    with pytest.raises(CampaignError) as ei:
        validate({"inputs": [DUMP], "compress": [{"dataset": DUMP, "size": 2,
                                                  "output": "o.extxyz"}]}, str(tmp_path))
    assert ei.value.problems == ["output: required key missing"]
    c = validate({"compress": [{"dataset": DUMP, "size": 0.5, "output": "o.extxyz",
                                "report": False}]}, str(tmp_path))
    e = c.compress[0]
    assert (e.name, e.method, e.size, e.report, e.output) == (
        "compress_0", "msc", 0.5, "none", str(tmp_path / "o.extxyz"))
    assert c.output.path is None and c.inputs == ()


def test_with_inputs_after_the_frames_and_resume(tmp_path):
    """Frames first, then the compression; a campaign finished without a compress section
    resumes with one added (the section is not fingerprinted), and a rerun skips both."""
    y = basic_campaign(str(tmp_path), n_frames=1, n_cells=(3, 3, 3))
    res, _ = _run(y)
    assert res["computed"] == 1 and "compress" not in res
    text = open(y).read().replace("output:\n  path: out.h5", f"""\
compress:
  - dataset: {DUMP}
    method: k_means
    seed: 3
    size: 4
    output: km.extxyz
output:
  path: out.h5""")
    write_yaml(y, text)
    res, lines = _run(y)
    assert (res["computed"], res["skipped"], res["compress"]) == (0, 1, ["computed"])
    assert "nothing to do: the campaign is complete" in "\n".join(lines)
    direct = _direct(str(tmp_path), "direct_km.extxyz", method="k_means", size=4, seed=3,
                     h=0.015)
    assert _chosen(tmp_path / "km.h5")[0] == direct.indices
    res, lines = _run(y)
    assert res["compress"] == ["done"]
    assert any(ln.startswith("compress ") and "skipped" in ln for ln in lines)


def test_example_campaign(tmp_path):
    """examples/compress_cu/campaign.yaml, its outputs redirected to tmp."""
    with open(EXAMPLE) as f:
        raw = yaml.safe_load(f)
    for e in raw["compress"]:
        e["output"] = str(tmp_path / os.path.basename(e["output"]))
    raw["run"] = {"threads": 1, "progress": "off"}
    from quests_hpc.campaign.runner import run_campaign

    c = validate(raw, os.path.dirname(os.path.abspath(EXAMPLE)), source=EXAMPLE)
    res = run_campaign(c, MPI.COMM_SELF, out=lambda line: None)
    assert res["compress"] == ["computed"] * len(raw["compress"])
    for e in c.compress:
        idx = _chosen(os.path.splitext(e.output)[0] + ".h5")[0]
        assert _extxyz_indices(e.output) == idx and len(set(idx)) == len(idx) > 0


@pytest.mark.mpi
def test_mpi_picks_as_serial(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    d = str(mpi_tmp_path / f"n{comm.size}")
    text = COMPRESS_ONLY.replace("    plot: none\n", "    plot: none\n  - dataset: "
                                 f"{EXTXYZ}\n    method: fps\n    size: 0.1\n"
                                 "    output: fps.extxyz\n")

    def make():
        os.makedirs(os.path.join(d, "serial"), exist_ok=True)
        os.makedirs(os.path.join(d, "mpi"), exist_ok=True)
        for sub in ("serial", "mpi"):
            write_yaml(os.path.join(d, sub, "c.yaml"), text)
        _run(os.path.join(d, "serial", "c.yaml"), MPI.COMM_SELF)

    on_root(comm, make)
    res, lines = _run(os.path.join(d, "mpi", "c.yaml"), comm)
    assert res["compress"] == ["computed"] * 3
    assert (lines != []) == (comm.rank == 0)  # only rank 0 prints

    def compare():
        for name in ("msc6", "cond", "fps"):
            a = _chosen(os.path.join(d, "serial", name + ".h5"))
            b = _chosen(os.path.join(d, "mpi", name + ".h5"))
            assert a[0] == b[0] and list(a[1]) == list(b[1]), name
            with open(os.path.join(d, "serial", name + ".extxyz")) as fa, \
                    open(os.path.join(d, "mpi", name + ".extxyz")) as fb:
                assert fa.read() == fb.read(), name
        return True

    assert on_root(comm, compare)
    res, _ = _run(os.path.join(d, "mpi", "c.yaml"), comm)  # the rerun, collectively
    assert res["compress"] == ["done"] * 3
