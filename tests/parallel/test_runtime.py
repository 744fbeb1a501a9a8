"""Threads per rank, collective errors, abort on exception, Numba compile cache under MPI.

The abort and compile-cache tests are serial tests that launch ``mpiexec`` in a
subprocess (with a timeout), since they need a fresh MPI job.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import numba
import pytest

MPI = pytest.importorskip("mpi4py.MPI")

VENV_BIN = os.path.dirname(sys.executable)
MPIEXEC = os.path.join(VENV_BIN, "mpiexec")
if not os.path.exists(MPIEXEC):
    MPIEXEC = "mpiexec"


def _mpiexec(n, script, tmp_path, env=None, timeout=120):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(script))
    cmd = ["timeout", str(timeout), MPIEXEC, "-n", str(n), sys.executable, str(path)]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})},
                       timeout=timeout + 30)
    return p, time.monotonic() - t0


@pytest.mark.mpi
def test_threads_default_to_cores_per_rank_on_the_node():
    from quests_hpc.parallel.runtime import configure_threads, cores_available, node_comm

    comm = MPI.COMM_WORLD
    before = numba.get_num_threads()
    nc = node_comm(comm)
    per_node = nc.size
    nc.Free()
    n = configure_threads(comm) if not os.environ.get("QUESTS_HPC_NUM_THREADS") else None
    expected = max(1, cores_available() // per_node)
    forced = configure_threads(comm, n=1)
    got_forced = numba.get_num_threads()
    configure_threads(comm, n=before)
    if n is not None:
        assert n == min(expected, numba.config.NUMBA_NUM_THREADS)
    assert forced == 1 and got_forced == 1


def test_default_threads_rule():
    from quests_hpc.parallel.runtime import default_threads

    cores = os.cpu_count()
    assert default_threads(1, cores) == cores
    assert default_threads(cores, cores) == 1
    assert default_threads(4 * cores, cores) == 1  # oversubscribed: at least 1
    if cores > 1:
        assert default_threads(1, 1) == 1  # bound to one core by the launcher


@pytest.mark.mpi
def test_collective_errors_raise_on_every_rank():
    from quests_hpc.errors import QuestsInputError
    from quests_hpc.parallel.comm import RankFailedError, RankInputError, collective_errors

    comm = MPI.COMM_WORLD
    bad = comm.size - 1
    caught = None
    try:
        with collective_errors(comm):
            if comm.rank == bad:
                raise QuestsInputError("bad frame on this rank")
    except (QuestsInputError, RankFailedError) as e:
        caught = e
    kinds = comm.allgather(type(caught).__name__)
    assert kinds[bad] == "QuestsInputError"
    assert isinstance(caught, QuestsInputError)  # every rank sees an input error
    if comm.rank != bad:
        assert isinstance(caught, RankInputError) and isinstance(caught, RankFailedError)
        assert f"rank {bad}" in str(caught) and "bad frame on this rank" in str(caught)
    # a non-input failure is a RankFailedError (not a ValueError) on the other ranks
    try:
        with collective_errors(comm):
            if comm.rank == bad:
                raise ZeroDivisionError("oops")
    except (ZeroDivisionError, RankFailedError) as e:
        caught = e
    if comm.rank != bad:
        assert type(caught) is RankFailedError and not isinstance(caught, ValueError)


@pytest.mark.mpi
def test_bad_positions_on_one_rank_fail_every_rank_without_hanging():
    import mpi_frames

    from quests_hpc.parallel.frame_pipeline import ArraySource, FrameRequest, run_frame

    comm = MPI.COMM_WORLD
    f = mpi_frames.orthogonal()
    ids, pos = mpi_frames.split_for_rank(f, comm.rank, comm.size)
    if comm.rank == comm.size - 1:
        pos = pos.copy()
        pos[0, 1] = float("nan")
    with pytest.raises(ValueError):
        run_frame(comm, ArraySource(ids, pos, f["cell"], f["pbc"]), 0, [],
                  FrameRequest(k=32, cutoff=5.0, bandwidths=()))


def test_exception_on_rank_1_aborts_the_job(tmp_path):
    script = """
        from mpi4py import MPI
        from quests_hpc.parallel.runtime import abort_on_error
        comm = MPI.COMM_WORLD
        with abort_on_error(MPI.COMM_WORLD):
            if comm.rank == 1:
                raise RuntimeError("boom on purpose")
            comm.Barrier()  # rank 0 waits here forever unless the job is aborted
    """
    p, elapsed = _mpiexec(2, script, tmp_path, timeout=60)
    assert p.returncode != 0 and p.returncode != 124, (p.returncode, p.stderr[-2000:])
    assert elapsed < 30
    assert "[rank 1]" in p.stderr and "RuntimeError: boom on purpose" in p.stderr


def test_uncaught_exception_with_excepthook_aborts(tmp_path):
    script = """
        from mpi4py import MPI
        from quests_hpc.parallel.runtime import install_excepthook
        install_excepthook()
        comm = MPI.COMM_WORLD
        if comm.rank == 1:
            raise KeyError("missing on purpose")
        comm.Barrier()
    """
    p, elapsed = _mpiexec(2, script, tmp_path, timeout=60)
    assert p.returncode not in (0, 124) and elapsed < 30
    assert "[rank 1]" in p.stderr and "KeyError" in p.stderr


def test_compile_cache_is_written_once_and_loaded_by_other_ranks(tmp_path):
    """Cold cache, 3 ranks start at once: rank 0 compiles, the others only load."""
    script = """
        import json, sys
        from mpi4py import MPI
        from numba.core.registry import CPUDispatcher
        from quests_hpc.parallel.runtime import warm_up
        from quests_hpc import _descriptor_kernels
        from quests_hpc.parallel import _halo_kernel
        warm_up(MPI.COMM_WORLD)
        stats = {"misses": 0, "hits": 0, "entry_misses": 0}
        for mod in (_descriptor_kernels, _halo_kernel):
            for name, obj in vars(mod).items():
                if isinstance(obj, CPUDispatcher) and obj._cache is not None:
                    stats["misses"] += sum(obj.stats.cache_misses.values())
                    stats["hits"] += sum(obj.stats.cache_hits.values())
                    if not name.startswith("_"):  # entry points: helpers are compiled
                        # into their callers, and loading a caller does not load them
                        stats["entry_misses"] += sum(obj.stats.cache_misses.values())
        allst = MPI.COMM_WORLD.gather(stats)
        if MPI.COMM_WORLD.rank == 0:
            print("STATS" + json.dumps(allst))
    """
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    p, _ = _mpiexec(3, script, tmp_path, env=env, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    stats = json.loads(p.stdout.split("STATS", 1)[1].splitlines()[0])
    assert stats[0]["misses"] > 0  # rank 0 compiled (cold cache)
    for s in stats[1:]:
        assert s["misses"] == 0 and s["hits"] >= stats[0]["entry_misses"] > 0


def test_a_named_warm_up_runs_once_per_process():
    from quests_hpc.parallel.runtime import warm_up

    calls = []
    assert warm_up(MPI.COMM_SELF, [lambda: calls.append(1)], name="test-once")
    assert not warm_up(MPI.COMM_SELF, [lambda: calls.append(2)], name="test-once")
    # a tuple: skipped only when every group in it has run
    assert warm_up(MPI.COMM_SELF, [lambda: calls.append(3)], name=("test-once", "test-two"))
    assert calls == [1, 3]


@pytest.mark.mpi(min_size=2)
def test_a_group_warmed_on_one_rank_only_runs_again_on_all():
    """Rank 0 warmed a group on COMM_SELF; the same group over COMM_WORLD must run on every
    rank (a rank skipping alone left the others waiting in the waves' barriers: the MPI
    suite hung)."""
    from quests_hpc.parallel.runtime import warm_up

    comm = MPI.COMM_WORLD
    calls = []
    if comm.rank == 0:
        warm_up(MPI.COMM_SELF, [lambda: calls.append("self")], name="test-one-rank")
    assert warm_up(comm, [lambda: calls.append("world")], name="test-one-rank")
    assert calls[-1] == "world"
    assert not warm_up(comm, [lambda: calls.append("again")], name="test-one-rank")


# ---------------------------------------------------------------------- the stage timer


def test_stage_timer_records_wall_cpu_and_the_peak_memory_of_each_stage():
    import numpy as np

    from quests_hpc.timing import StageTimer, current_memory_bytes, peak_memory_bytes

    assert 0 < current_memory_bytes() <= peak_memory_bytes() + (64 << 20)
    calls = []
    t = StageTimer(sync=lambda: calls.append(1))
    with t("sleep"):
        time.sleep(0.05)
    # enough that this stage raises the process's high-water mark, whatever ran before
    big = max(400 << 20, peak_memory_bytes() - current_memory_bytes() + (200 << 20))
    with t("allocate"):
        a = np.ones(big // 8)
        a[::512] = 2.0
        del a
    t.done("nothing")
    with t("sleep"):  # repeated use accumulates
        time.sleep(0.02)
    assert list(t.seconds) == ["sleep", "allocate", "nothing"] and len(calls) == 4
    assert 0.07 <= t.seconds["sleep"] < 1.0 and t.cpu["sleep"] < 0.05
    assert t.cpu["allocate"] > 0.0
    # the 400 MiB array was freed before the stage ended, yet its peak is recorded
    assert t.peak_memory["allocate"] >= big and t.memory["allocate"] < t.peak_memory["allocate"] - big // 2
    assert t.peak_memory["nothing"] < t.peak_memory["allocate"] - big // 2
    rec = t.record()
    assert rec["seconds"] == t.seconds and rec["peak_memory"]["allocate"] >= big
    text = t.table()
    assert text.splitlines()[0].split() == ["stage", "time", "(s)", "%total", "cpu", "(s)", "peak", "MiB"]
    assert "allocate" in text and "other" in text and "total wall" in text


def test_stage_timer_table_over_ranks_min_avg_max_and_peak_memory():
    from quests_hpc.timing import StageTimer

    recs = [{"seconds": {"read": 1.0, "halo": 0.5}, "cpu": {}, "peak_memory": {"read": 100 << 20}},
            {"seconds": {"read": 3.0}, "cpu": {}, "peak_memory": {"read": 300 << 20}}]
    rows = {ln.split()[0]: ln.split() for ln in StageTimer().table(recs, total=8.0).splitlines()}
    assert rows["read"][1:] == ["1.000", "2.000", "3.000", "25.0%", "1.50", "300.0"]
    assert rows["halo"][1:] == ["0.000", "0.250", "0.500", "3.1%", "2.00", "-"]
    assert rows["total"][-1] == "8.000"
    # the old form: plain {stage: seconds} per rank
    old = StageTimer().table([{"read": 1.0}, {"read": 3.0}], total=8.0)
    assert "2.000" in old and "1.50" in old and "max/avg" in old
    t = StageTimer()
    t.add({"read": 2.0}, cpu={"read": 1.0}, peak_memory={"read": 5})
    t.add({"read": 1.0}, peak_memory={"read": 3})
    assert t.seconds == {"read": 3.0} and t.cpu == {"read": 1.0} and t.peak_memory == {"read": 5}
