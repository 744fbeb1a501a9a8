"""The output lock (``OUT.h5.lock``): one run per output, the holder named, stale locks of
dead processes taken over safely, other hosts' locks refused (issue 9, parts 2.3 and 4)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "campaign"))
from campaign_data import REFERENCE, write_dump, write_yaml

from quests_hpc.results import lock as K

QUESTS = os.path.join(os.path.dirname(sys.executable), "quests-hpc")


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(path, **info):
    base = {"host": socket.gethostname(), "pid": os.getpid(), "started": "2026-01-01T00:00:00",
            "command": "quests-hpc run old.yaml", "token": "t"}
    base.update(info)
    with open(K.lock_path(path), "w") as f:
        json.dump(base, f)
    return base


def test_acquire_names_holder_and_release(tmp_path):
    out = str(tmp_path / "o.h5")
    info = K.acquire(out, command="quests-hpc run a.yaml")
    on_disk = json.load(open(K.lock_path(out)))
    assert on_disk["host"] == socket.gethostname() and on_disk["pid"] == os.getpid()
    assert on_disk["command"] == "quests-hpc run a.yaml" and on_disk["started"]
    with pytest.raises(K.OutputLockedError) as e:
        K.acquire(out)
    msg = str(e.value)
    assert f"output {out} is in use by another run" in msg
    assert f"host {socket.gethostname()}, pid {os.getpid()}" in msg and "run a.yaml" in msg
    K.release(out, info)
    assert not os.path.exists(K.lock_path(out))
    K.release(K.acquire(out), {"token": "someone else"})  # not ours: left in place
    assert os.path.exists(K.lock_path(out))


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = str(tmp_path / "o.h5")
    _write_lock(out, pid=_dead_pid())
    info = K.acquire(out)
    assert json.load(open(K.lock_path(out)))["token"] == info["token"]
    assert not os.path.exists(K.lock_path(out) + ".takeover")


def test_reused_pid_is_stale(tmp_path):
    """A live pid whose process started at another time than the holder's: reused."""
    out = str(tmp_path / "o.h5")
    start = K._proc_start(os.getpid())
    if start is None:
        pytest.skip("no /proc")
    _write_lock(out, proc_start=start + 12345)
    K.acquire(out)
    _write_lock(str(tmp_path / "p.h5"), proc_start=start)
    with pytest.raises(K.OutputLockedError):
        K.acquire(str(tmp_path / "p.h5"))


def test_lock_of_a_zombie_is_stale(tmp_path):
    """A holder that has exited but is not yet reaped (state Z) is dead: Open MPI's
    ``mpirun`` returns after a rank is killed while the other ranks, orphaned, are still
    dying or are zombies, and a rerun at once must not be refused by a dead rank 0."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while K._proc_state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert K._proc_state(child.pid) == "Z"
        out = str(tmp_path / "o.h5")
        _write_lock(out, pid=child.pid, proc_start=K._proc_start(child.pid))
        info = K.acquire(out)
        assert info["pid"] == os.getpid()
        assert json.load(open(K.lock_path(out)))["pid"] == os.getpid()
        K.release(out, info)
    finally:
        child.wait()


def test_lock_of_another_host_is_refused_with_advice(tmp_path):
    out = str(tmp_path / "o.h5")
    _write_lock(out, host="node-17.cluster", pid=_dead_pid())
    with pytest.raises(K.OutputLockedError) as e:
        K.acquire(out)
    msg = str(e.value)
    assert "host node-17.cluster" in msg and "another host" in msg
    assert f"delete {K.lock_path(out)}" in msg


def test_unreadable_lock_is_refused_while_young_and_stale_when_old(tmp_path):
    out = str(tmp_path / "o.h5")
    with open(K.lock_path(out), "w") as f:
        f.write("")
    with pytest.raises(K.OutputLockedError, match="not a readable quests-hpc lock"):
        K.acquire(out)
    old = time.time() - 2 * K.UNREADABLE_STALE_S
    os.utime(K.lock_path(out), (old, old))
    K.acquire(out)


_RACER = r"""
import os, sys, time
from quests_hpc.results import lock as K
out, go = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.0002)
try:
    K.acquire(out)
    print("won", flush=True)
    time.sleep(1.5)
except K.OutputLockedError:
    print("refused", flush=True)
"""


def test_racing_takeovers_of_a_stale_lock_have_one_winner(tmp_path):
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    for trial in range(2):
        out, go = str(tmp_path / f"o{trial}.h5"), str(tmp_path / f"go{trial}")
        _write_lock(out, pid=_dead_pid())
        procs = [subprocess.Popen([sys.executable, str(script), out, go],
                                  stdout=subprocess.PIPE, text=True) for _ in range(4)]
        assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 4
        open(go, "w").close()  # all spinning: go
        res = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert sorted(res) == ["refused"] * 3 + ["won"], res


_HOLDER = r"""
import sys, time
from quests_hpc.results import lock as K
K.acquire(sys.argv[1], command="holder of the test")
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def work(tmp_path):
    write_dump(tmp_path / "md.lammpstrj", n_cells=(3, 3, 3), n_frames=2, seed=1)
    return tmp_path


def test_second_run_refused_at_once_naming_holder(work, capsys):
    from quests_hpc.cli import main

    out = work / "race.h5"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        rc = main(["dh", work / "md.lammpstrj", "--reference", REFERENCE, "-o", out,
                   "--progress", "off", "--overwrite"])
        assert rc == 2 and time.monotonic() - t0 < 10
        err = capsys.readouterr().err
        assert err.startswith(f"quests-hpc: error: output {out} is in use by another run")
        assert f"pid {holder.pid}" in err and socket.gethostname() in err
        assert "holder of the test" in err and "not a readable HDF5" not in err
        assert not out.exists() and not os.path.exists(str(out) + ".partial")
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed (SIGKILL: its lock is left behind): taken over
    assert os.path.exists(K.lock_path(out))
    assert main(["dh", work / "md.lammpstrj", "--reference", REFERENCE, "-o", out,
                 "--progress", "off"]) == 0
    assert not os.path.exists(K.lock_path(out))


def test_two_runs_on_one_output_one_is_refused(work):
    """The issue's race: `run a.yaml & sleep 0.2; run b.yaml`.  The one that comes second
    to the lock is refused (exit 2, holder named); the file holds the other's results.
    Run a is stopped (SIGSTOP) once its lock names it, and continued after b has ended, so
    that a still holds the lock whatever the machine's load (timing alone failed in CI:
    a finished before b had imported, even with 60 bandwidths)."""
    slow = [0.015, 0.03]
    for name in ("a", "b"):
        write_yaml(work / f"{name}.yaml", f"name: {name}\n"
                   f"references: [{{name: bulk, path: {REFERENCE}}}]\n"
                   "inputs: [{name: md, path: md.lammpstrj}]\n"
                   f"parameters: {{bandwidth: {slow if name == 'a' else [0.03]}}}\n"
                   "output: {path: race.h5, overwrite: true}\nrun: {threads: 1}\n")
    env = dict(os.environ, QUESTS_HPC_NUM_THREADS="1")
    a = subprocess.Popen([QUESTS, "run", "a.yaml"], cwd=work, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while (K.read_lock(K.lock_path(work / "race.h5")) or {}).get("pid") != a.pid:
        assert a.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(a.pid, signal.SIGSTOP)
    try:
        b = subprocess.run([QUESTS, "run", "b.yaml"], cwd=work, env=env, text=True,
                           capture_output=True, timeout=120)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    out_a, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a
    assert b.returncode == 2, b.stderr
    assert "is in use by another run" in b.stderr and f"pid {a.pid}" in b.stderr
    assert "a.yaml" in b.stderr and "done" not in b.stdout
    with h5py.File(work / "race.h5", "r") as f:
        assert f.attrs["campaign_name"] == "a" and f.attrs["complete"]
    assert not os.path.exists(K.lock_path(work / "race.h5"))


def test_sigterm_releases_the_lock(work):
    """SIGTERM while a run holds the lock: the lock is released on the way out."""
    import signal

    y = write_yaml(work / "c.yaml", f"references: [{{name: bulk, path: {REFERENCE}}}]\n"
                   "inputs: [{name: md, path: md.lammpstrj}]\n"
                   "output: {path: t.h5}\nrun: {threads: 1}\n")
    env = dict(os.environ, QUESTS_HPC_NUM_THREADS="1")
    p = subprocess.Popen([QUESTS, "run", y], cwd=work, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not os.path.exists(K.lock_path(work / "t.h5")):
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and not os.path.exists(K.lock_path(work / "t.h5"))


def test_clusters_on_a_locked_results_file_is_refused(work, capsys):
    """`quests-hpc clusters` writes into the results file: it takes the lock too."""
    from quests_hpc.cli import main

    out = work / "r.h5"
    assert main(["dh", work / "md.lammpstrj", "--reference", REFERENCE, "-o", out,
                 "--positions", "--progress", "off"]) == 0
    with open(out, "rb") as f:
        before = f.read()
    info = K.acquire(str(out), command="quests-hpc run other.yaml")
    try:
        capsys.readouterr()
        assert main(["clusters", out]) == 2
        err = capsys.readouterr().err
        assert f"output {out} is in use by another run" in err and "other.yaml" in err
        with open(out, "rb") as f:
            assert f.read() == before
    finally:
        K.release(str(out), info)
    assert main(["clusters", out]) == 0
    with h5py.File(out, "r") as f:
        assert "cluster" in f["frames/md_000000"]


def test_symlink_to_a_locked_output_is_refused(work, capsys):
    from quests_hpc.cli import main

    out = work / "real.h5"
    os.symlink(out, work / "alias.h5")
    info = K.acquire(str(out), command="holder")
    try:
        assert main(["dh", work / "md.lammpstrj", "--reference", REFERENCE, "-o",
                     work / "alias.h5", "--progress", "off"]) == 2
        assert "is in use by another run" in capsys.readouterr().err
    finally:
        K.release(str(out), info)


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(sys.executable),
                                                    "mpiexec")), reason="no mpiexec")
def test_locked_output_under_mpiexec_one_message_exit_2(work):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    out = work / "o.h5"
    info = K.acquire(str(out), command="holder")
    try:
        env = dict(os.environ, QUESTS_HPC_NUM_THREADS="1")
        r = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "quests_hpc.cli", "dh",
                            str(work / "md.lammpstrj"), "--reference", REFERENCE, "-o",
                            str(out), "--progress", "off"], capture_output=True, text=True,
                           timeout=120, env=env)
    finally:
        K.release(str(out), info)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("quests-hpc: error:") == 1 and f"pid {os.getpid()}" in r.stderr
    assert not out.exists()


def test_info_names_the_run_that_holds_the_file(work, capsys):
    from quests_hpc.cli import main

    out = work / "o.h5"
    assert main(["dh", work / "md.lammpstrj", "--reference", REFERENCE, "-o", out,
                 "--progress", "off"]) == 0
    assert "in use by a run" not in capsys.readouterr().out  # its own lock: not shown
    _write_lock(str(out), pid=os.getppid(), command="quests-hpc run big.yaml")
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    assert f"in use by a run now (host {socket.gethostname()}, pid {os.getppid()}" in text
    assert "big.yaml" in text
