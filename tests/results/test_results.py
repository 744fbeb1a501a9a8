"""Results files (serial): layout, round trip, comparison, restart decisions, crash safety."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest
from mpi4py import MPI

sys.path.insert(0, os.path.dirname(__file__))
import helpers

SELF = MPI.COMM_SELF

from quests_hpc.results import (
    ResultsIOError,
    complete_frames,
    describe,
    diff_results,
    inspect_output,
    load_descriptors,
    read_frame,
    read_table,
)
from quests_hpc.results.restart import file_identity, partial_path
from quests_hpc.results.writer import choose_backend, h5py_has_mpi


def test_layout_and_round_trip(tmp_path):
    p = helpers.write_all(tmp_path / "r.h5", SELF)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["format"] == "quests-hpc-results" and f.attrs["format_version"] == 1
        assert f.attrs["layout_complete"] and f.attrs["complete"]
        assert complete_frames(f) == [fp.name for fp in p.frames]
        for i, fp in enumerate(p.frames):
            got = read_frame(f, fp.name)
            want = helpers.frame_arrays(i, fp.natoms)
            for k, v in want.items():
                assert np.array_equal(got[k], v), k
            assert got["attrs"]["timestep"] == 10 * i and got["attrs"]["natoms"] == fp.natoms
            assert got["attrs"]["source"] == f"md.dump#{i}"
            ds = f["frames"][fp.name]["delta_entropy"]
            assert [c.decode() if isinstance(c, bytes) else c for c in ds.attrs["columns"]] == \
                ["r1@h=0.015", "r1@h=0.1", "r2@h=0.015", "r2@h=0.1"]
            assert ds.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
        t = read_table(f, "summary/frames")
        assert list(t["natoms"]) == list(helpers.NATOMS)
        assert t["novelty"].shape == (4, 2, 2) and np.isnan(t["novelty"]).all()
        assert t["entropy"].shape == (4, 2)
        assert [v.decode() for v in t["frame"]] == [fp.name for fp in p.frames]
        assert read_table(f, "learning_curve")["sizes"].tolist() == [2, 3, 4]
    text = describe(tmp_path / "r.h5")
    assert "frames complete: 4/4" in text and "reference r2" in text and "in_000002" in text


def test_chunked_transfer_and_comparison(tmp_path):
    helpers.write_all(tmp_path / "a.h5", SELF, chunk_bytes=1 << 20)
    helpers.write_all(tmp_path / "b.h5", SELF, chunk_bytes=7)  # one row per piece
    assert diff_results(tmp_path / "a.h5", tmp_path / "b.h5") == []
    with h5py.File(tmp_path / "b.h5", "a") as f:
        f["frames/in_000002/delta_entropy"][5, 1] += 1e-9
        f["frames/in_000003"].attrs.modify("timestep", 99)
    d = diff_results(tmp_path / "a.h5", tmp_path / "b.h5")
    assert len(d) == 2 and "delta_entropy: values differ" in d[0] and "timestep" in d[1]
    assert diff_results(tmp_path / "a.h5", tmp_path / "b.h5", atol=1e-8, ignore={"timestep"}) == []


def test_backend_choice():
    assert choose_backend("gather") == "gather"
    assert choose_backend("auto") == ("mpio" if h5py_has_mpi() else "gather")
    if not h5py_has_mpi():
        with pytest.raises(ValueError, match="needs h5py built with MPI"):
            choose_backend("mpio")


def test_descriptor_file_as_reference(tmp_path):
    helpers.write_all(tmp_path / "r.h5", SELF)
    x, meta = load_descriptors(tmp_path / "r.h5", k=3, cutoff=4.0)
    assert x.shape == (sum(helpers.NATOMS), 5)
    assert np.array_equal(x[:37], helpers.frame_arrays(0, 37)["descriptors"])
    from quests_hpc.errors import QuestsInputError

    with pytest.raises(QuestsInputError, match="computed with k=3, this run uses k=32"):
        load_descriptors(tmp_path / "r.h5", k=32, cutoff=4.0)
    with pytest.raises(QuestsInputError, match="cutoff=4.0, this run uses cutoff=5.0"):
        load_descriptors(tmp_path / "r.h5", k=3, cutoff=5.0)


def test_inspect_output_decisions(tmp_path):
    path = str(tmp_path / "r.h5")
    expect = {"campaign_fingerprint": "c", "inputs_fingerprint": "i",
              "inputs": [{"path": "md.dump", "size": 1, "sha256": "x"}]}
    assert inspect_output(path, expect).status == "new"
    helpers.write_all(path, SELF)
    with h5py.File(path, "a") as f:
        f.attrs["campaign_fingerprint"] = "c"
        f.attrs["inputs_fingerprint"] = "i"
        f.attrs["inputs"] = '[{"path": "md.dump", "size": 1, "sha256": "y"}]'
        f["frames/in_000001"].attrs.modify("complete", False)
    r = inspect_output(path, expect)
    assert r.status == "resume" and r.total == 4
    assert r.complete == ["in_000000", "in_000002", "in_000003"]
    r = inspect_output(path, dict(expect, campaign_fingerprint="other", inputs_fingerprint="j"))
    assert r.status == "refuse" and "campaign (YAML" in r.reason
    assert "md.dump changed (size 1 -> 1 bytes)" in r.reason
    with h5py.File(path, "a") as f:
        f.attrs.modify("layout_complete", False)
    assert inspect_output(path, expect).status == "new"


def test_file_identity_sampled_and_full(tmp_path):
    p = tmp_path / "big.bin"
    data = np.random.default_rng(0).integers(0, 255, 3_000_000, dtype=np.uint8)
    p.write_bytes(data.tobytes())
    a, b = file_identity(p), file_identity(p, full=True)
    assert a["hashed"] == "sampled" and b["hashed"] == "full" and a["size"] == 3_000_000
    data[-1] ^= 1  # the last block is always hashed
    p.write_bytes(data.tobytes())
    assert file_identity(p)["sha256"] != a["sha256"]


KILL_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {helpers_dir!r})
    import numpy as np
    import helpers
    from mpi4py import MPI
    from quests_hpc.results import ResultsWriter
    from quests_hpc.results import layout as L
    p = helpers.plan(natoms=[5000] * 40, descriptors=False)
    path = sys.argv[1]
    w = ResultsWriter.open(path + ".partial", MPI.COMM_SELF, mode="w")
    w.create_structure(p, {{"format": L.FORMAT, "format_version": 1}})  # no heavy imports
    w.close()
    import os
    os.replace(path + ".partial", path)
    w = ResultsWriter.open(path, MPI.COMM_SELF, mode="a")
    print("ready", flush=True)
    for i, fp in enumerate(p.frames):
        a = helpers.frame_arrays(i, fp.natoms)
        for k in ("id", "delta_entropy", "position", "type"):
            w.write_slab(f"frames/{{fp.name}}/{{k}}", a[k])
        w.write_values([("summary/frames/natoms", i, fp.natoms)])
        w.flush()
        w.set_attrs(f"frames/{{fp.name}}", {{"timestep": np.int64(i), "wall_time": 1.0}})
        w.flush()
        w.set_attrs(f"frames/{{fp.name}}", {{"complete": True}})
        w.flush()
""")


@pytest.mark.slow
def test_kill_at_random_moments_leaves_readable_consistent_file(tmp_path):
    """kill -9 a writer at random moments: the file always opens, and every frame marked
    complete holds exactly its data (never 'complete' before the data are written)."""
    script = tmp_path / "writer.py"
    script.write_text(KILL_WRITER.format(helpers_dir=os.path.dirname(__file__)))
    rng = np.random.default_rng(1)
    seen_partial = 0
    for trial in range(3):
        path = str(tmp_path / f"k{trial}.h5")
        proc = subprocess.Popen([sys.executable, str(script), path], stdout=subprocess.PIPE,
                                text=True, env=dict(os.environ))  # not MPI singleton vars
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with h5py.File(path, "r") as f:  # must open, whatever the moment of the kill
            names = complete_frames(f)
            for n in names:
                i = int(n.split("_")[1])
                g = f["frames"][n]
                want = helpers.frame_arrays(i, 5000)
                assert np.array_equal(g["id"][()], want["id"])
                assert np.array_equal(g["delta_entropy"][()], want["delta_entropy"])
                assert g.attrs["timestep"] == i
            seen_partial += len(names) < 40
    assert seen_partial, "no kill landed before the end"
    assert not any(os.path.exists(partial_path(str(tmp_path / f"k{t}.h5"))) for t in range(3))


def _tiny_fs(path, kb):
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size={kb}k tmpfs {path} "
                                      "2>/dev/null") != 0:
        return False
    return True


def _check_after_failure(path, n_total):
    with h5py.File(path, "r") as f:
        names = complete_frames(f)
        assert 0 < len(names) < n_total
        for n in names:
            i = int(n.split("_")[1])
            assert np.array_equal(f["frames"][n]["descriptors"][()],
                                  helpers.frame_arrays(i, 600)["descriptors"])


def test_disk_full_raises_clear_error_and_keeps_finished_frames(tmp_path):
    """A real full file system (a 400 kB tmpfs; needs root): the structure (~140 kB of
    metadata and allocated, unwritten datasets) fits, the frames' data (~65 kB each) do
    not."""
    d = tmp_path / "fs"
    d.mkdir()
    if not _tiny_fs(d, 400):
        pytest.skip("cannot mount a small tmpfs here (see the simulated variant below)")
    try:
        with pytest.raises(ResultsIOError) as ei:
            helpers.write_all(d / "r.h5", SELF, natoms=[600] * 12)
        msg = str(ei.value)
        assert "No space left on device" in msg and f"writing {d / 'r.h5'} failed" in msg
        assert "frames marked complete before this one are intact" in msg
        _check_after_failure(d / "r.h5", 12)
    finally:
        os.system(f"umount {d}")


def test_failing_write_simulated(tmp_path, monkeypatch):
    """The same with a write that fails (ENOSPC) after a few frames, on any machine."""
    import errno

    from quests_hpc.results import writer as W

    calls = {"n": 0}
    real = W.ResultsWriter._write_gather

    def failing(self, dset, local, *args):
        calls["n"] += 1
        if calls["n"] > 20:  # 5 datasets per frame: the 5th frame fails
            self._check(OSError(errno.ENOSPC, "No space left on device"), mode="root")
        return real(self, dset, local, *args)

    monkeypatch.setattr(W.ResultsWriter, "_write_gather", failing)
    with pytest.raises(ResultsIOError, match="No space left on device.*intact"):
        helpers.write_all(tmp_path / "r.h5", SELF, natoms=[600] * 12)
    _check_after_failure(tmp_path / "r.h5", 12)


def test_write_errors_are_results_io_errors(tmp_path):
    from quests_hpc.results import ResultsWriter

    helpers.write_all(tmp_path / "r.h5", SELF)
    with ResultsWriter.open(tmp_path / "r.h5", SELF) as w:
        with pytest.raises(ResultsIOError, match="rows have shape"):
            w.write_slab("frames/in_000000/descriptors", np.zeros((3, 4)))
        with pytest.raises(ResultsIOError, match="exceed"):
            w.write_slab("frames/in_000000/id", np.zeros(38, dtype=np.int64))
    with pytest.raises(ResultsIOError, match="writing .*nodir"):
        ResultsWriter.open(tmp_path / "nodir" / "x.h5", SELF, mode="w")


def test_a_missing_communicator_is_refused_and_nothing_is_written(tmp_path):
    """comm=None no longer means serial: every collective entry point of results/ says to
    pass MPI.COMM_SELF, before touching any file."""
    from quests_hpc.results import ResultsWriter
    from quests_hpc.results.lock import lock_path, output_lock
    from quests_hpc.results.restart import frame_hash

    p = tmp_path / "r.h5"
    with pytest.raises(TypeError, match=r"^ResultsWriter\.open\(\): comm is None; pass MPI\.COMM_SELF"):
        ResultsWriter.open(p, None, mode="w")
    with pytest.raises(TypeError, match=r"^output_lock\(\): comm is None; pass MPI\.COMM_SELF"):
        with output_lock(p, None):
            pass
    src = tmp_path / "src.txt"
    src.write_bytes(b"abc" * 1000)
    with pytest.raises(TypeError, match=r"^frame_hash\(\): comm is None; pass MPI\.COMM_SELF"):
        frame_hash(None, str(src), 0, 10)
    assert sorted(os.listdir(tmp_path)) == ["src.txt"] and not os.path.exists(lock_path(p))
    # and COMM_SELF is the serial run: same hash, lock taken and released
    assert frame_hash(SELF, str(src), 0, 3000) == frame_hash(SELF, str(src), 0, 3000)
    with output_lock(p, SELF) as info:
        assert os.path.exists(lock_path(os.path.realpath(p))) and info["pid"] == os.getpid()
    assert not os.path.exists(lock_path(os.path.realpath(p)))
