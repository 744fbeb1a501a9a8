"""Campaign runs (serial): results vs the serial core, restart, refusal, progress output."""

import os

import h5py
import numpy as np
import pytest
from campaign_data import REFERENCE, basic_campaign, write_dump

from quests_hpc import information
from quests_hpc.campaign.schema import CampaignError, load_campaign
from quests_hpc.descriptors import descriptors_from_arrays
from quests_hpc.io import read_lammps_dump
from quests_hpc.results import complete_frames, diff_results, read_frame, read_table
from quests_hpc.results.restart import partial_path

MPI = pytest.importorskip("mpi4py.MPI")
H = [0.015, 0.04]


def _run(path, lines=None, overwrite=False, **over):
    from quests_hpc.campaign.runner import run_campaign

    c = load_campaign(path, overrides=over or None)
    out = lines if lines is not None else []
    return run_campaign(c, MPI.COMM_SELF, overwrite=overwrite, out=out.append)


@pytest.fixture(scope="module")
def reference_descriptors():
    from ase.io import read

    from quests_hpc import get_descriptors

    return get_descriptors(read(REFERENCE))


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One complete campaign run (3 frames), shared by the read-only tests."""
    d = tmp_path_factory.mktemp("basic")
    y = basic_campaign(str(d), extra="  learning_curve: {dataset: bulk, num: 9, min_size: 20, "
                                     "repeats: 2}")
    lines = []
    res = _run(y, lines)
    return d, y, lines, res


def test_results_equal_serial_core(done, reference_descriptors):
    d, _, _, res = done
    assert res == {"path": str(d / "out.h5"), "frames": 3, "computed": 3, "skipped": 0}
    frames = read_lammps_dump(str(d / "md.lammpstrj"), "all")
    with h5py.File(d / "out.h5", "r") as f:
        assert f.attrs["complete"] and f.attrs["layout_complete"]
        assert complete_frames(f) == ["md_000000", "md_000001", "md_000002"]
        assert list(f.attrs["bandwidths"]) == H and f.attrs["k"] == 32
        assert "md.lammpstrj" in f.attrs["campaign_yaml"]
        t = read_table(f, "summary/frames")
        for i, fr in enumerate(frames):
            got = read_frame(f, f"md_{i:06d}")
            x = descriptors_from_arrays(fr.positions, fr.cell, fr.pbc)
            dh = information.delta_entropy(x, reference_descriptors, H)
            assert np.array_equal(got["id"], np.arange(1, 257))
            assert np.array_equal(got["descriptors"], x)
            assert np.allclose(got["delta_entropy"], dh.T, atol=1e-12)
            assert np.allclose(got["position"], fr.positions, atol=0)
            a = got["attrs"]
            assert a["complete"] and a["natoms"] == 256 and a["timestep"] == 100 * i
            assert np.allclose(a["cell"], fr.cell) and list(a["pbc"]) == [True] * 3
            assert a["source"].endswith(f"md.lammpstrj#{i}")
            assert t["natoms"][i] == 256 and t["timestep"][i] == 100 * i
            assert np.allclose(t["dh_mean"][i, 0], dh.mean(axis=1), atol=1e-12)
            assert np.allclose(t["dh_max"][i, 0], dh.max(axis=1))
            assert np.array_equal(t["n_novel"][i, 0], (dh > 0).sum(axis=1))
            assert np.allclose(t["entropy"][i], information.entropy(x, H), atol=1e-12)
            assert np.allclose(t["diversity"][i], information.diversity(x, H), atol=1e-10)
        o = read_table(f, "summary/overlap")
        assert o["attrs"]["complete"] and o["n_atoms"][0, 0, 0] == 768
        assert np.allclose(o["novelty"][0, 0], t["n_novel"][:, 0].sum(axis=0) / 768)
        lc = read_table(f, "learning_curve")
        assert lc["attrs"]["complete"] and lc["entropy"].shape == (2, 9, 2)
        assert np.all(lc["entropy"] <= np.log(lc["sizes"])[None, :, None] + 1e-12)
        assert np.isfinite(lc["fit"]).all() and (lc["fit"] >= 0).all()


def test_progress_lines_and_timing_table(done):
    _, _, lines, _ = done
    prog = [ln for ln in lines if ln.startswith("[")]
    assert [p.split("]")[0] for p in prog] == ["[1/3", "[2/3", "[3/3"]
    assert all("atoms/s" in p and "ETA" in p and "\r" not in p for p in prog)
    text = "\n".join(lines)
    assert "min (s)" in text and "max/avg" in text and "descriptors" in text
    assert "atoms per rank, max/mean" in text and "learning curve of bulk" in text
    # one row per stage with its time and the busiest rank's peak memory (MiB)
    table = text.splitlines()
    head = next(i for i, ln in enumerate(table) if ln.startswith("stage "))
    assert table[head].split()[-3:] == ["max", "peak", "MiB"]
    rows = {ln.split()[0]: ln.split() for ln in table[head + 1:] if ln and ln[0].isalpha()
            and not ln.startswith(("total", "atoms"))}
    assert {"setup", "reference", "read", "descriptors", "kernel_sums", "write",
            "learning_curve"} <= set(rows)
    for row in rows.values():
        assert len(row) == 7 and float(row[3]) >= 0 and float(row[6]) > 50, row  # MiB


def test_rerun_skips_finished_frames(done):
    d, y, _, _ = done
    lines = []
    res = _run(y, lines)
    assert res["computed"] == 0 and res["skipped"] == 3
    assert any("nothing to do" in ln for ln in lines)
    assert any(ln.startswith("done: 0 frame(s) computed, 3 skipped") for ln in lines)
    assert "\nsetup " in "\n".join(lines)  # the stage table, also here


def test_restart_recomputes_only_incomplete_and_matches(done, tmp_path):
    d, y, _, _ = done
    work = tmp_path / "w"
    work.mkdir()
    y2 = basic_campaign(str(work), extra="  learning_curve: {dataset: bulk, num: 9, "
                                         "min_size: 20, repeats: 2}")
    # an interrupted run: frame 1 written but not marked, garbage in its data, no summaries
    import shutil

    shutil.copy(d / "out.h5", work / "out.h5")
    with h5py.File(work / "out.h5", "a") as f:
        g = f["frames/md_000001"]
        g.attrs.modify("complete", False)
        g["delta_entropy"][...] = -1.0
        f["frames/md_000002"].attrs.modify("complete", False)
        f["learning_curve"].attrs.modify("complete", False)
        f["learning_curve/entropy"][...] = 0
        f.attrs.modify("complete", False)
    lines = []
    res = _run(y2, lines)
    assert res["computed"] == 2 and res["skipped"] == 1
    assert any("resuming: 1 of 3" in ln for ln in lines)
    assert diff_results(d / "out.h5", work / "out.h5", atol=1e-12) == []


def test_changed_yaml_or_input_is_refused_unless_overwrite(tmp_path):
    y = basic_campaign(str(tmp_path), n_frames=2)
    _run(y)
    text = open(y).read()
    with open(y, "w") as f:
        f.write(text.replace("[0.015, 0.04]", "[0.015, 0.05]"))
    with pytest.raises(CampaignError, match="different campaign.*--overwrite"):
        _run(y)
    with open(y, "w") as f:  # run-time settings may change
        f.write(text.replace("threads: 1", "threads: 2").replace("progress: lines",
                                                                    "progress: off"))
    assert _run(y)["computed"] == 0
    with open(y, "w") as f:
        f.write(text)
    write_dump(tmp_path / "md.lammpstrj", n_frames=2, seed=5)  # same size, new content
    with pytest.raises(CampaignError, match="inputs changed.*md.lammpstrj changed"):
        _run(y)
    assert _run(y, overwrite=True)["computed"] == 2
    assert _run(y)["computed"] == 0


def test_foreign_file_refused_and_partial_replaced(tmp_path):
    y = basic_campaign(str(tmp_path), n_frames=1)
    with open(tmp_path / "out.h5", "w") as f:
        f.write("not hdf5")
    with open(partial_path(tmp_path / "out.h5"), "w") as f:
        f.write("leftover of a killed set-up")
    with pytest.raises(CampaignError, match="not a readable HDF5 file"):
        _run(y)
    assert _run(y, overwrite=True)["computed"] == 1
    assert not os.path.exists(partial_path(tmp_path / "out.h5"))


def test_unwritable_output_directory(tmp_path):
    y = basic_campaign(str(tmp_path), n_frames=1, out="no/such/dir/out.h5")
    with pytest.raises(CampaignError, match="output directory .* does not exist"):
        _run(y)
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root ignores permissions: use a read-only mount if we may
        if os.system(f"mount -t tmpfs -o ro,size=64k tmpfs {ro} 2>/dev/null") != 0:
            pytest.skip("root without mount: cannot make a read-only directory")
    else:
        ro.chmod(0o500)
    try:
        with pytest.raises(CampaignError, match="is not writable"):
            _run(y, output={"path": str(ro / "out.h5")})
    finally:
        if os.geteuid() == 0:
            os.system(f"umount {ro}")
        else:
            ro.chmod(0o700)


def test_multi_file_sequence_and_timestep_selection(tmp_path):
    seq = os.path.join(os.path.dirname(__file__), "..", "data", "lammps", "seq",
                       "dump.*.lammpstrj")
    with open(tmp_path / "c.yaml", "w") as f:
        f.write(f"inputs: [{{path: '{seq}', frames: 't=50:150', name: seq}}]\n"
                f"measures: {{descriptors: true}}\noutput: {{path: r.h5}}\nrun: {{threads: 1}}\n")
    res = _run(str(tmp_path / "c.yaml"))
    assert res["frames"] == 3
    with h5py.File(tmp_path / "r.h5", "r") as f:
        names = complete_frames(f)
        assert [int(f["frames"][n].attrs["timestep"]) for n in names] == [50, 100, 150]
        assert "delta_entropy" not in f["frames"][names[0]]
        assert f["frames"][names[0]]["descriptors"].shape[1] == 63


def test_progress_modes():
    import io

    from quests_hpc.campaign.progress import Progress, timing_table

    class Tty(io.StringIO):
        def isatty(self):
            return True

    s = io.StringIO()
    p = Progress(4, 400, done_frames=1, done_atoms=100, mode="auto", stream=s)
    p.frame_done("a_000001", 100, 0.5)
    p.frame_done("a_000002", 100, 0.5)
    p.close()
    assert "\r" not in s.getvalue() and s.getvalue().count("\n") == 2
    assert s.getvalue().startswith("[2/4] a_000001: 100 atoms in 0.50 s")
    t = Tty()
    p = Progress(2, 200, mode="auto", stream=t)
    p.frame_done("a", 100, 0.1)
    p.frame_done("b", 100, 0.1)
    p.close()
    assert t.getvalue().count("\r") == 2 and t.getvalue().endswith("\n")
    s = io.StringIO()
    Progress(2, 200, mode="lines", stream=s, active=False).frame_done("a", 1, 1.0)
    assert s.getvalue() == ""
    records = [{"seconds": {"read": 1.0, "write": 0.5}, "cpu": {},
                "peak_memory": {"read": 100 << 20, "write": 50 << 20}},
               {"seconds": {"read": 3.0, "write": 0.5}, "cpu": {},
                "peak_memory": {"read": 300 << 20, "write": 60 << 20}}]
    table = timing_table(records, 5.0, [1.2, 1.0])
    read = next(ln for ln in table.splitlines() if ln.startswith("read"))
    # min 1, avg 2, max 3 s, 40% of 5 s, max/avg 1.5, the busiest rank's peak 300 MiB
    assert read.split() == ["read", "1.000", "2.000", "3.000", "40.0%", "1.50", "300.0"]
    write = next(ln for ln in table.splitlines() if ln.startswith("write"))
    assert write.split()[-1] == "60.0"
    assert "worst frame 1.200" in table
