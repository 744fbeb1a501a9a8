"""No run may delete, replace or corrupt an input, a reference or earlier results (issue 9,
part 2): ``--overwrite`` validates first and replaces the old file only when the new one is
finished; an output that is an input, a reference, the campaign file or an index cache is
refused before anything is touched.  Serial, through the ``quests-hpc`` entry point."""

import hashlib
import os
import sys

import h5py
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "campaign"))
from campaign_data import REFERENCE, write_dump, write_yaml

from quests_hpc.cli import main
from quests_hpc.results import complete_frames
from quests_hpc.results.restart import partial_path

pytest.importorskip("mpi4py.MPI")


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _snapshot(d):
    """sha256 of every file under ``d`` (relative name -> digest)."""
    out = {}
    for root, _, files in os.walk(d):
        for name in files:
            p = os.path.join(root, name)
            out[os.path.relpath(p, d)] = _sha(p)
    return out


@pytest.fixture
def work(tmp_path):
    write_dump(tmp_path / "md.lammpstrj", n_cells=(3, 3, 3), n_frames=2, seed=1)
    return tmp_path


def _dh(work, out, *extra):
    return main(["dh", work / "md.lammpstrj", "--reference", REFERENCE, "-o", out,
                 "--progress", "off", *extra])


def _err(capsys):
    err = capsys.readouterr().err
    assert err.startswith("quests-hpc: error:") and "Traceback" not in err, err
    return err


def _no_partial(path):
    assert not os.path.exists(partial_path(path))
    assert not os.path.exists(str(path) + ".lock")


# ------------------------------------------------------------------------ 2.1 overwrite


def test_overwrite_with_bad_frames_keeps_old_results(work, capsys):
    old = work / "old.h5"
    assert _dh(work, old) == 0
    before = _sha(old)
    capsys.readouterr()
    assert _dh(work, old, "--frames", "999", "--overwrite") == 2
    err = _err(capsys)
    assert "md.lammpstrj: frame index 999 out of range (2 frames)" in err
    assert _sha(old) == before
    _no_partial(old)


def test_overwrite_with_empty_reference_keeps_old_results(work, capsys):
    old = work / "old.h5"
    assert _dh(work, old) == 0
    before = _snapshot(work)
    (work / "empty.xyz").write_text("")
    capsys.readouterr()
    assert main(["dh", work / "md.lammpstrj", "--reference", work / "empty.xyz", "-o", old,
                 "--overwrite", "--progress", "off"]) == 2
    err = _err(capsys)
    assert "empty.xyz" in err
    assert {k: v for k, v in _snapshot(work).items() if k != "empty.xyz"} == before
    _no_partial(old)


def test_interrupted_overwrite_keeps_old_results_then_completes(work, capsys, monkeypatch):
    """A different command with --overwrite killed after its first frame: the old results
    are untouched (the new ones are built aside, under OUT.h5.partial, which does not look
    complete); rerunning the same command finishes and only then replaces OUT.h5."""
    from quests_hpc.campaign import runner

    old = work / "old.h5"
    assert _dh(work, old) == 0
    before = _sha(old)
    real, calls = runner._do_frame, []

    def dying(*a, **k):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(runner, "_do_frame", dying)
    assert _dh(work, old, "--bandwidth", "0.03", "--overwrite") == 130
    assert _sha(old) == before
    with h5py.File(partial_path(old), "r") as f:
        assert not f.attrs["complete"] and complete_frames(f) == ["md_000000"]
    assert not os.path.exists(str(old) + ".lock")
    monkeypatch.setattr(runner, "_do_frame", real)
    capsys.readouterr()
    assert _dh(work, old, "--bandwidth", "0.03", "--overwrite") == 0
    assert "resuming: 1 of 2" in capsys.readouterr().out
    with h5py.File(old, "r") as f:
        assert f.attrs["complete"] and list(f.attrs["bandwidths"]) == [0.03]
    _no_partial(old)


def test_overwrite_of_a_foreign_file_replaces_it_only_at_the_end(work, capsys):
    old = work / "old.h5"
    old.write_text("some notes, not results")
    assert _dh(work, old) == 2
    err = _err(capsys)
    assert "exists but is not a readable HDF5 file" in err and "--overwrite" in err
    assert old.read_text() == "some notes, not results"
    assert _dh(work, old, "--overwrite") == 0
    with h5py.File(old, "r") as f:
        assert f.attrs["complete"]
    _no_partial(old)


# ------------------------------------------------------------------------ 2.2 output = input


def _link(kind, src, dst):
    if kind == "symlink":
        os.symlink(src, dst)
    else:
        os.link(src, dst)
    return dst


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "relative"])
def test_output_that_is_the_input_is_refused(work, capsys, how, monkeypatch):
    dump = work / "md.lammpstrj"
    out = {"same": dump, "relative": "md.lammpstrj"}.get(how)
    if out is None:
        out = _link(how, dump, work / "alias.lammpstrj")
    monkeypatch.chdir(work)
    before = _snapshot(work)
    assert _dh(work, out, "--overwrite") == 2
    err = _err(capsys)
    assert "is the input md" in err and "md.lammpstrj" in err and "--overwrite" not in err
    assert _snapshot(work) == before


def test_output_that_is_the_reference_is_refused(work, capsys):
    ref = work / "ref.xyz"
    ref.write_bytes(open(REFERENCE, "rb").read())
    before = _snapshot(work)
    for out in (ref, _link("symlink", ref, work / "ref_link.h5")):
        assert main(["dh", work / "md.lammpstrj", "--reference", ref, "-o", out,
                     "--overwrite", "--progress", "off"]) == 2
        err = _err(capsys)
        assert "is the reference" in err and "ref.xyz" in err and "--overwrite" not in err
        assert {k: v for k, v in _snapshot(work).items() if k != "ref_link.h5"} == before


def test_output_that_is_the_campaign_file_or_an_index_cache_is_refused(work, capsys):
    from quests_hpc.io.frame_index import cache_path

    y = write_yaml(work / "c.yaml", f"references: [{{name: bulk, path: {REFERENCE}}}]\n"
                                    "inputs: [{name: md, path: md.lammpstrj}]\n"
                                    "output: {path: c.yaml, overwrite: true}\n")
    before = _snapshot(work)
    assert main(["run", y]) == 2
    err = _err(capsys)
    assert "c.yaml is the campaign file" in err and "--overwrite" not in err
    assert _snapshot(work) == before
    cache = cache_path(work / "md.lammpstrj", "beside")  # not there: the dump is small
    assert main(["run", y, "-o", cache, "--overwrite"]) == 2
    err = _err(capsys)
    assert "frame index cache of" in err and "md.lammpstrj" in err
    assert _snapshot(work) == before and not os.path.exists(cache)


def test_output_companions_may_not_be_inputs(work):
    """OUT.h5.partial and OUT.h5.lock are written by the run: they are protected too."""
    from quests_hpc.results.restart import output_conflicts

    dump = str(work / "md.lammpstrj")
    assert output_conflicts(str(work / "x.h5"), [(dump, "the input md")]) == []
    os.symlink(dump, work / "x.h5.partial")
    probs = output_conflicts(str(work / "x.h5"), [(dump, "the input md")])
    assert len(probs) == 1 and "x.h5.partial" in probs[0] and "the input md" in probs[0]


# ------------------------------------------------------------------------ delta_entropy off


def test_reference_without_delta_entropy_finishes(work, capsys):
    """``measures: {delta_entropy: false}`` with a reference: every frame, no KeyError
    'n_novel' at the end; a rerun has nothing to do."""
    y = write_yaml(work / "c.yaml", f"references: [{{name: bulk, path: {REFERENCE}}}]\n"
                                    "inputs: [{name: md, path: md.lammpstrj}]\n"
                                    "measures: {delta_entropy: false, descriptors: true}\n"
                                    "output: {path: r.h5}\nrun: {threads: 1}\n")
    assert main(["run", y]) == 0, capsys.readouterr().err
    with h5py.File(work / "r.h5", "r") as f:
        assert f.attrs["complete"] and complete_frames(f) == ["md_000000", "md_000001"]
        assert "n_novel" not in f["summary/frames"] and "summary/overlap" not in f
    capsys.readouterr()
    assert main(["run", y]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_overwrite_finished_aside_but_not_renamed_is_put_in_place(work, capsys):
    """Killed between the end of an overwrite run and its rename: the rerun has nothing
    to compute and renames the finished results over the old file."""
    import shutil

    old, new = work / "old.h5", work / "new.h5"
    assert _dh(work, old) == 0
    assert _dh(work, new, "--bandwidth", "0.03") == 0
    shutil.copy(new, partial_path(old))  # the finished aside file of `-o old.h5 --bw 0.03`
    before = _sha(old)
    capsys.readouterr()
    assert _dh(work, old, "--bandwidth", "0.03") == 2  # without --overwrite: refused
    assert _sha(old) == before
    assert _dh(work, old, "--bandwidth", "0.03", "--overwrite") == 0
    assert "nothing to do" in capsys.readouterr().out
    with h5py.File(old, "r") as f:
        assert list(f.attrs["bandwidths"]) == [0.03] and f.attrs["complete"]
    _no_partial(old)


_OPEN_IN_H5PY = r"""
import sys, time, h5py
f = h5py.File(sys.argv[1], "a")
print("open", flush=True)
time.sleep(60)
"""


def test_results_open_for_writing_elsewhere_is_named(work, capsys):
    """Not a quests-hpc run but, e.g., an h5py session holding the file open for writing:
    the message says so instead of "not a readable HDF5 file; rerun with --overwrite"."""
    import subprocess

    old = work / "old.h5"
    assert _dh(work, old) == 0
    p = subprocess.Popen([sys.executable, "-c", _OPEN_IN_H5PY, str(old)],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "open"
        before = _sha(old)
        capsys.readouterr()
        for extra in ([], ["--overwrite"]):
            assert _dh(work, old, "--bandwidth", "0.03", *extra) == 2
            err = _err(capsys)
            assert f"output {old} is open for writing in another program" in err
            assert "--overwrite" not in err
        assert _sha(old) == before
    finally:
        p.kill()
        p.wait()
    _no_partial(old)


def test_write_probe_is_removed_when_the_disk_is_full(tmp_path, monkeypatch):
    """A full disk: the probe file is created but writing it fails (ENOSPC); it must not be
    left behind as a stray ``.quests-hpc-write-test-PID`` beside the user's files."""
    import builtins
    import errno

    from quests_hpc.results import restart

    class _Full:
        def __init__(self, path):
            self.fh = builtins.open(path, "wb")

        def __enter__(self):
            return self

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(restart, "open", lambda p, mode="r": _Full(p), raising=False)
    problems = restart.check_output_dir(str(tmp_path / "out.h5"))
    assert problems == [f"output directory {tmp_path} is not writable (No space left on device)"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["export", "info"])
def test_reading_results_that_a_run_is_writing_names_the_run(work, capsys, command):
    """`export` / `info` of an output that a live run holds (its lock and HDF5's file lock):
    the message names the run, not "not a readable HDF5 file"; the file and the lock are
    untouched and nothing is exported."""
    import subprocess

    from quests_hpc.results import lock

    old = work / "old.h5"
    assert _dh(work, old) == 0
    p = subprocess.Popen([sys.executable, "-c", _OPEN_IN_H5PY, str(old)],
                         stdout=subprocess.PIPE, text=True)
    info = lock.acquire(str(old), command="quests-hpc run campaign.yaml")
    try:
        assert p.stdout.readline().strip() == "open"
        before = _snapshot(work)
        capsys.readouterr()
        args = [command, str(old)] + (["-o", str(work / "exported")] if command == "export" else [])
        assert main(args) == 2
        err = _err(capsys)
        assert f"{old} is being written by another run (host {info['host']}, pid {os.getpid()}" in err
        assert "quests-hpc run campaign.yaml" in err and "not a readable HDF5 file" not in err
        assert _snapshot(work) == before
        assert not os.path.exists(work / "exported")
    finally:
        lock.release(str(old), info)
        p.kill()
        p.wait()


def test_export_into_an_existing_file_is_refused(work, capsys):
    """`export -o DIR` where DIR is an existing file (here the input dump): exit 2, one line
    naming it, no traceback, the file untouched."""
    old = work / "old.h5"
    assert _dh(work, old) == 0
    before = _snapshot(work)
    capsys.readouterr()
    dump = work / "md.lammpstrj"
    assert main(["export", str(old), "-o", str(dump)]) == 2
    err = _err(capsys)
    assert f"export directory {dump} exists and is not a directory" in err
    assert err.count("\n") == 1
    assert _snapshot(work) == before


def test_export_never_replaces_another_results_files_export(work, capsys):
    """`export` into a directory of earlier exports: exporting the same results again
    replaces its own files; another results file's export (same frame names), or any
    other file under an exported name, is kept and the export refused before writing."""
    a, b = work / "a.h5", work / "b.h5"
    assert _dh(work, a) == 0 and _dh(work, b, "--bandwidth", "0.03") == 0
    frames = work / "frames"
    assert main(["export", str(a), "-o", str(frames)]) == 0
    exported = sorted(p for p in os.listdir(frames) if not p.startswith("."))
    assert exported
    assert main(["export", str(a), "-o", str(frames)]) == 0  # its own files: replaced
    before = _snapshot(work)
    capsys.readouterr()
    assert main(["export", str(b), "-o", str(frames)]) == 2
    err = _err(capsys)
    assert (f"export directory {frames}: {len(exported)} file(s) to write already exist and "
            f"were not exported from {b}") in err
    assert f"exported from {os.path.realpath(a)}" in err and err.count("\n") == 1
    assert _snapshot(work) == before
    other = work / "mine"
    other.mkdir()
    (other / exported[0]).write_bytes(b"a user's own file\n")
    before = _snapshot(work)
    assert main(["export", str(a), "-o", str(other)]) == 2
    assert "1 file(s) to write already exist and were not exported from" in _err(capsys)
    assert _snapshot(work) == before
