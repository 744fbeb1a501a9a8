"""The ``quests-hpc`` command: help, every command serially and under mpiexec, bad input,
disk full, and kill -9 of a rank followed by a resume that equals an uninterrupted run."""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "campaign"))
from campaign_data import REFERENCE, write_dump, write_yaml

from quests_hpc.cli import build_parser, main
from quests_hpc.results import complete_frames, diff_results, read_frame

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
MPIEXEC = os.path.join(VENV_BIN, "mpiexec")
needs_mpiexec = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="no mpiexec in the venv")


def _mpi(n, *args, timeout=240, **kw):
    """Run ``quests-hpc ARGS`` under ``mpiexec -n n`` (the venv's launcher)."""
    env = dict(os.environ, QUESTS_HPC_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, "-m", "quests_hpc.cli",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env, **kw)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_dump(d / "md.lammpstrj", n_cells=(4, 4, 4), n_frames=4, seed=3)
    return d


# ------------------------------------------------------------------------ help


def test_help_explains_every_option_and_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"example", "run", "descriptors", "dh", "entropy", "overlap",
                                "info", "plot", "clusters", "export", "compress", "select",
                                "bandwidth", "generations", "monitor"}
    for name, p in sub.choices.items():
        for a in p._actions:
            if isinstance(a, argparse._HelpAction) or not a.option_strings:
                continue
            assert a.help and ("default" in a.help or "required" in a.help), (name, a.dest)
        text = p.format_help()
        assert p.description and len(text) > 200
    assert "frames: all" in sub.choices["run"].format_help()  # the YAML keys


def test_example_still_works(capsys):
    assert main(["example", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "quests-hpc example" in out and "novel (dH > 0)" in out


# ------------------------------------------------------------------------ serial commands


def test_descriptors_dh_info_and_descriptor_reference(data, tmp_path, capsys):
    from ase.io import read

    from quests_hpc import get_descriptors, information

    assert main(["descriptors", REFERENCE, "-o", tmp_path / "ref.h5", "--progress", "off"]) == 0
    assert main(["dh", data / "md.lammpstrj", "--reference", REFERENCE, "--frames", "1:",
                 "--bandwidth", "0.015", "0.04", "-o", tmp_path / "a.h5", "--positions",
                 "--threads", "1"]) == 0
    assert main(["dh", data / "md.lammpstrj", "--reference", tmp_path / "ref.h5", "--frames",
                 "1:", "--bandwidth", "0.015", "0.04", "-o", tmp_path / "b.h5",
                 "--positions"]) == 0
    capsys.readouterr()
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert diff_results(a, b, ignore={"references", "reference_sha256", "reference_names",
                                      "reference_paths", "campaign_fingerprint", "inputs",
                                      "inputs_fingerprint", "campaign_yaml", "source",
                                      "source_path", "created", "software", "writer",
                                      "mpi_size", "wall_time", "columns"}) == []
    x = get_descriptors(read(REFERENCE))
    with h5py.File(a, "r") as f:
        assert complete_frames(f) == ["md_000001", "md_000002", "md_000003"]
        assert "quests-hpc dh" in f.attrs["campaign_yaml"]
        fr = read_frame(f, "md_000002")
    from quests_hpc.descriptors import descriptors_from_arrays

    y = descriptors_from_arrays(fr["position"], fr["attrs"]["cell"], fr["attrs"]["pbc"])
    assert np.allclose(fr["delta_entropy"], information.delta_entropy(y, x, [0.015, 0.04]).T,
                       atol=1e-12)
    assert main(["info", str(a)]) == 0
    out = capsys.readouterr().out
    assert "frames complete: 3/3" in out and "overlap table" in out and "md_000003" in out


def test_precision_float32_through_dh_and_entropy(data, tmp_path, capsys):
    """--precision float32: dH within the float32 bound of the library's float64, stored
    with the campaign (so a float64 run never resumes into the file), H printed alike."""
    from ase.io import read

    from quests_hpc import get_descriptors, information
    from quests_hpc.descriptors import descriptors_from_arrays

    out = tmp_path / "f32.h5"
    assert main(["dh", data / "md.lammpstrj", "--reference", REFERENCE, "--frames", "2",
                 "--precision", "float32", "-o", out, "--positions", "--threads", "1"]) == 0
    x = get_descriptors(read(REFERENCE))
    with h5py.File(out, "r") as f:
        assert "precision: float32" in f.attrs["campaign_yaml"]
        fr = read_frame(f, "md_000002")
    y = descriptors_from_arrays(fr["position"], fr["attrs"]["cell"], fr["attrs"]["pbc"])
    err = np.abs(fr["delta_entropy"] - information.delta_entropy(y, x, 0.015))
    assert (err <= information.float32_error_bound(y, x, 0.015)).all() and err.max() > 1e-9
    capsys.readouterr()
    r = main(["dh", data / "md.lammpstrj", "--reference", REFERENCE, "--frames", "2",
              "-o", out, "--positions", "--threads", "1"])
    assert r == 2 and "different campaign" in capsys.readouterr().err
    assert main(["entropy", data / "md.lammpstrj", "--frames", "0", "--precision", "float32",
                 "--threads", "1"]) == 0
    h32 = float(re.search(r"H = ([0-9.]+) nats", capsys.readouterr().out).group(1))
    from quests_hpc.io import read_lammps_dump

    f0 = read_lammps_dump(str(data / "md.lammpstrj"), "0:1")[0]
    x0 = descriptors_from_arrays(f0.positions, f0.cell, f0.pbc)
    bound = information.float32_error_bound(x0, x0, 0.015, block_size=(384, 384)).mean()
    assert abs(h32 - information.entropy(x0, 0.015)) <= bound + 1e-6  # H printed to 1e-6


def test_entropy_and_overlap_match_library(data, capsys):
    from ase.io import read

    from quests_hpc import get_descriptors, information
    from quests_hpc.descriptors import descriptors_from_arrays
    from quests_hpc.io import read_lammps_dump

    frames = read_lammps_dump(str(data / "md.lammpstrj"), "1:3")
    y = np.concatenate([descriptors_from_arrays(f.positions, f.cell, f.pbc) for f in frames])
    x = get_descriptors(read(REFERENCE))
    assert main(["entropy", data / "md.lammpstrj", "--frames", "1:3", "--bandwidth", "0.015",
                 "0.05"]) == 0
    out = capsys.readouterr().out
    got = [float(v) for v in re.findall(r"H = ([-\d.]+) nats", out)]
    assert np.allclose(got, information.entropy(y, [0.015, 0.05]), atol=1e-6)
    assert main(["overlap", data / "md.lammpstrj", "--frames", "1:3", "--reference",
                 REFERENCE, "--threshold", "0.5"]) == 0
    out = capsys.readouterr().out
    ov = float(re.search(r"overlap = ([\d.]+)", out).group(1))
    dh = information.delta_entropy(y, x, 0.015)
    assert ov == pytest.approx(np.mean(dh <= 0.5), abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["dh", "{d}/md.lammpstrj", "--reference", "{d}/nothere.xyz", "-o", "{t}/o.h5"],
     "--reference: file not found"),
    (["dh", "{d}/md.lammpstrj", "--reference", REFERENCE, "--frames", "1:x", "-o",
      "{t}/o.h5"], "--frames: bad frame selection"),
    (["dh", "{d}/md.lammpstrj", "--reference", REFERENCE, "--frames", "9", "-o",
      "{t}/o.h5"], "frame index 9 out of range (4 frames)"),
    (["descriptors", "{d}/md.lammpstrj", "--cutoff", "-1", "-o", "{t}/o.h5"],
     "--cutoff: must be > 0"),
    (["entropy", "{d}/nothere.dump"], "INPUT: file not found"),
    (["overlap", "{d}/md.lammpstrj", "--reference", REFERENCE, "--bandwidth", "0"],
     "--bandwidth: must be > 0"),
    (["info", "{d}/md.lammpstrj"], "not a readable HDF5 file"),
    (["dh", "{d}/md.lammpstrj", "--reference", REFERENCE, "-o", "{t}/no/dir/o.h5"],
     "does not exist"),
])
def test_bad_input_exit_2(data, tmp_path, capsys, args, message):
    args = [a.format(d=data, t=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("quests-hpc: error:") and message in err, err


def test_disk_full_then_resume(data, tmp_path, capsys):
    """A real full disk (a tiny tmpfs; needs root): exit 1 with a clear message, finished
    frames intact; after making room, the same command resumes and completes."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or os.system(f"mount -t tmpfs -o size=300k tmpfs {mnt} 2>/dev/null"):
        pytest.skip("cannot mount a small tmpfs (tests/results has a simulated variant)")
    try:
        cmd = ["dh", data / "md.lammpstrj", "--reference", REFERENCE, "--descriptors",
               "-o", mnt / "o.h5", "--progress", "off"]
        assert main(cmd) == 1
        err = capsys.readouterr().err
        assert "No space left on device" in err and "rerun the same command to resume" in err
        with h5py.File(mnt / "o.h5", "r") as f:
            done = complete_frames(f)
        assert 0 < len(done) < 4
        os.system(f"mount -o remount,size=4m {mnt}")
        assert main(cmd) == 0
        assert main(["dh", data / "md.lammpstrj", "--reference", REFERENCE, "--descriptors",
                     "-o", tmp_path / "ok.h5", "--progress", "off"]) == 0
        assert diff_results(tmp_path / "ok.h5", mnt / "o.h5") == []
    finally:
        os.system(f"umount {mnt}")


# ------------------------------------------------------------------------ under mpiexec


@needs_mpiexec
def test_dh_and_entropy_under_mpiexec_equal_serial(data, tmp_path, capsys):
    ser = tmp_path / "s.h5"
    assert main(["dh", data / "md.lammpstrj", "--reference", REFERENCE, "--descriptors",
                 "-o", ser, "--progress", "off"]) == 0
    r = _mpi(2, "dh", data / "md.lammpstrj", "--reference", REFERENCE, "--descriptors", "-o",
             tmp_path / "p.h5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("[4/4] md_000003") == 1  # rank 0 prints, once
    assert "Stage times over 2 rank(s)" in r.stdout
    assert diff_results(ser, tmp_path / "p.h5", atol=1e-12) == []
    capsys.readouterr()
    assert main(["entropy", data / "md.lammpstrj", "--frames", "1:"]) == 0
    want = capsys.readouterr().out
    r = _mpi(2, "entropy", data / "md.lammpstrj", "--frames", "1:")
    assert r.returncode == 0, r.stderr
    grab = re.compile(r"H = ([-\d.]+) nats\s+D = ([-\d.]+)")
    assert grab.findall(r.stdout) == grab.findall(want) and grab.findall(want)


@needs_mpiexec
def test_overlap_and_descriptors_under_mpiexec_equal_serial(data, tmp_path, capsys):
    args = ["overlap", data / "md.lammpstrj", "--reference", REFERENCE, "--bandwidth",
            "0.015", "0.04"]
    assert main(args) == 0
    want = capsys.readouterr().out
    r = _mpi(2, *args)
    assert r.returncode == 0, r.stderr
    grab = re.compile(r"overlap = ([\d.]+)\s+novelty = ([\d.]+) \((\d+) novel\)")
    assert grab.findall(r.stdout) == grab.findall(want) and len(grab.findall(want)) == 2
    assert main(["descriptors", data / "md.lammpstrj", "--frames", "-1", "-o",
                 tmp_path / "s.h5", "--progress", "off"]) == 0
    r = _mpi(3, "descriptors", data / "md.lammpstrj", "--frames", "-1", "-o", tmp_path / "p.h5")
    assert r.returncode == 0, r.stderr
    assert diff_results(tmp_path / "s.h5", tmp_path / "p.h5") == []  # bitwise


@needs_mpiexec
def test_bad_input_under_mpiexec_exits_2_with_one_message(data, tmp_path):
    y = write_yaml(tmp_path / "c.yaml", "inputs: [md.lammpstrj]\noutptu: {path: x.h5}\n")
    r = _mpi(2, "run", y, timeout=120)
    assert r.returncode == 2
    assert r.stderr.count("did you mean 'output'?") == 1, r.stderr  # printed by rank 0 only


def _running(pid):
    """Whether process ``pid`` still runs: exists and is not a zombie whose threads have
    all ended (a thread-group leader shows Z while its other threads, which hold the
    process's files, are still exiting)."""
    from quests_hpc.results.lock import _exited

    return os.path.exists(f"/proc/{pid}") and not _exited(pid)


def _descendants(pid):
    """Process ids below ``pid`` (from /proc), children first."""
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@needs_mpiexec
@pytest.mark.slow
def test_kill_9_a_rank_then_resume_equals_uninterrupted(tmp_path):
    """``mpiexec -n 2 quests-hpc run``: SIGKILL one rank right after the first frame is
    reported; the job ends non-zero within seconds, finished frames are intact, and a
    rerun completes the campaign with results equal to an uninterrupted run."""
    from quests_hpc.campaign.runner import run_campaign
    from quests_hpc.campaign.schema import load_campaign

    write_dump(tmp_path / "md.lammpstrj", n_cells=(8, 8, 8), n_frames=8, seed=7)
    y = write_yaml(tmp_path / "c.yaml", f"""\
references: [{{name: bulk, path: {REFERENCE}}}]
inputs: [{{name: md, path: md.lammpstrj}}]
parameters: {{bandwidth: [0.015, 0.04]}}
measures: {{descriptors: true, entropy: true}}
output: {{path: killed.h5}}
run: {{progress: lines}}
""")
    from mpi4py import MPI

    lines = []
    c = load_campaign(y, overrides={"output": {"path": str(tmp_path / "golden.h5")}})
    run_campaign(c, MPI.COMM_SELF, out=lines.append)

    env = dict(os.environ, QUESTS_HPC_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "quests_hpc.cli", "run",
                             y], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith("[1/8]"):
                break
        else:
            pytest.fail("no progress line: " + proc.stderr.read())
        ranks = [p for p in _descendants(proc.pid) if "quests_hpc.cli" in _cmdline(p)
                 and "mpiexec" not in _cmdline(p)]
        assert ranks, "rank processes not found"
        os.kill(ranks[-1], signal.SIGKILL)
        t0 = time.monotonic()
        rc = proc.wait(timeout=60)
        assert time.monotonic() - t0 < 30
        assert rc != 0
        # Open MPI's mpirun returns while the surviving rank, orphaned, may still be
        # dying: a scheduler starts the rerun once the job's processes are gone.
        while any(_running(p) for p in ranks) and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        assert not any(_running(p) for p in ranks), "ranks still running 30 s after the kill"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
    with h5py.File(tmp_path / "killed.h5", "r") as f:  # readable, finished frames intact
        done = complete_frames(f)
        assert 1 <= len(done) < 8
        assert not f.attrs["complete"]
        with h5py.File(tmp_path / "golden.h5", "r") as g:
            for n in done:
                assert np.allclose(f["frames"][n]["delta_entropy"][()],
                                   g["frames"][n]["delta_entropy"][()], atol=1e-12)
    r = _mpi(2, "run", y)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {len(done)} of 8 frame(s) already complete" in r.stdout
    assert diff_results(tmp_path / "golden.h5", tmp_path / "killed.h5", atol=1e-12) == []


def _one_rank_fails(tmp_path, waiting):
    """Run 2 ranks: rank 1 fails alone through the CLI's error path while rank 0 sits in
    ``waiting`` (a collective of the application on COMM_WORLD)."""
    script = tmp_path / "one_rank.py"
    script.write_text(
        "import sys\n"
        "from mpi4py import MPI\n"
        "import quests_hpc.cli as cli\n"
        "from quests_hpc.errors import QuestsInputError\n"
        "cli.ERROR_SYNC_SECONDS = 2.0\n"
        "comm = MPI.COMM_WORLD\n"
        "from quests_hpc.parallel.comm import error_channel\n"
        "errors = error_channel(comm)\n"
        "if comm.rank == 1:\n"
        "    sys.exit(cli._fail(errors, QuestsInputError('only rank 1 saw this')))\n"
        f"{waiting}\n")
    t0 = time.monotonic()
    # env from os.environ (Python's start-up copy), not the C environment inherited by
    # default: after this pytest process initialised MPI as a singleton, Open MPI has put
    # its own job variables there, and an mpiexec started with them fails to launch.
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script)], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ))
    assert time.monotonic() - t0 < 30
    return r


@needs_mpiexec
@pytest.mark.parametrize("waiting", ["comm.Barrier()", "comm.Ibarrier().Wait()",
                                     "comm.allreduce(1)"])
def test_error_on_one_rank_only_aborts_all_within_seconds(tmp_path, waiting):
    """An error raised on rank 1 alone (rank 0 waits in a collective) ends the job with the
    error's exit status and a message naming the rank, instead of hanging.  The error
    sync runs on a communicator of its own: a collective of the application that rank 0
    waits in (a non-blocking barrier above all) can never complete it, which would leave
    rank 1 thinking every rank failed and the message unprinted."""
    r = _one_rank_fails(tmp_path, waiting)
    assert r.returncode == 2
    assert "[rank 1] quests-hpc: error: only rank 1 saw this" in r.stderr
    assert "other ranks did not fail with it: aborting all ranks" in r.stderr


def test_clusters_export_plot_commands_on_a_results_file(tmp_path, capsys):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "analysis"))
    from mpi4py import MPI
    from results_fixture import make_results

    from quests_hpc.analysis.clusters import find_clusters

    path = make_results(tmp_path, MPI.COMM_WORLD, positions=True, n_frames=2)
    assert main(["clusters", path, "--r-edge", "3.0"]) == 0
    with h5py.File(path, "r") as f:
        name = sorted(f["frames"])[0]
        g = f["frames"][name]
        labels, ids, dh = g["cluster"][()], g["id"][()], g["delta_entropy"][()]
        pos, cell, pbc = g["position"][()], g.attrs["cell"], g.attrs["pbc"]
    dh = dh if dh.ndim == 1 else dh[:, 0]
    direct = find_clusters(ids, pos, dh, cell, pbc, comm=MPI.COMM_SELF, threshold=0.0, r_edge=3.0)
    np.testing.assert_array_equal(labels, direct.labels)
    assert np.all((labels == 0) == (dh > 0))  # every covered atom is in a cluster
    out_dir = tmp_path / "ovito"
    assert main(["export", path, "-o", str(out_dir), "--no-gzip", "--elements", "Cu"]) == 0
    files = sorted(p for p in out_dir.iterdir() if not p.name.startswith("."))
    assert len(files) == 2 and (out_dir / ".quests-hpc-export.json").is_file()
    from ase.io import read

    atoms = read(files[0], format="lammps-dump-text")
    assert len(atoms) == len(ids)
    assert main(["plot", path, "-o", str(tmp_path / "pics")]) == 0
    pics = sorted(p.name for p in (tmp_path / "pics").iterdir())
    assert any(p.startswith("dh_histogram") for p in pics), pics
    assert all(os.path.getsize(tmp_path / "pics" / p) > 5000 for p in pics)
