"""The ``compile`` stage and the set-up's cache warm-up (issue 11, time to the first result).

* A campaign run compiles (or loads from Numba's cache) every kernel it uses in its
  ``compile`` stage: no later stage compiles or loads a kernel (counted with Numba's
  ``numba:compile`` event and its cache loads, per stage, on every rank).
* ``python -m quests_hpc.campaign.warmup`` (what ``scripts/setup.sh`` runs) fills a cold
  cache with every kernel of a run: a campaign run after it (2 ranks, clusters and
  export) compiles nothing and writes no cache file.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "campaign"))
from campaign_data import basic_campaign  # noqa: E402

VENV_BIN = os.path.dirname(sys.executable)
MPIEXEC = os.path.join(VENV_BIN, "mpiexec")
needs_mpiexec = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="no mpiexec in the venv")

ANALYSIS = """\
analysis:
  clusters:
    threshold: 1.0
    r_edge: 3.0
    biconnected_max_size: 500
  plots:
    enabled: false
  export:
    format: lammps-dump
"""

#: ``quests-hpc ARGS`` with a log of every kernel compiled or loaded from the cache, and
#: the innermost stage it happened in; rank 0 prints one line ``EVENTS [...]`` per rank.
TRACER = """
    import contextlib, json, sys
    from numba.core import event as ev
    from numba.core.caching import Cache
    import quests_hpc.timing as T

    stage, log = ["(no stage)"], []
    timed = T.StageTimer.__call__

    @contextlib.contextmanager
    def traced(self, name):
        prev, stage[0] = stage[0], name
        try:
            with timed(self, name) as t:
                yield t
        finally:
            stage[0] = prev

    T.StageTimer.__call__ = traced

    class Compiles(ev.Listener):
        def on_start(self, e):
            pass

        def on_end(self, e):
            d = e.data["dispatcher"]
            log.append(["compile", stage[0], d.py_func.__module__ + "." + d.__name__])

    ev.register("numba:compile", Compiles())
    load = Cache.load_overload

    def loaded(self, sig, ctx):
        res = load(self, sig, ctx)
        if res is not None:
            log.append(["load", stage[0], self._name])
        return res

    Cache.load_overload = loaded
    from mpi4py import MPI
    from quests_hpc.cli import main

    rc = main(sys.argv[1:])
    # rank 0 prints every rank's line: a line printed by another rank at exit can reach
    # the launcher's stdout glued to rank 0's output (seen once in CI under MPICH)
    logs = MPI.COMM_WORLD.gather(log)
    if MPI.COMM_WORLD.rank == 0:
        for one in logs:
            print()
            print("EVENTS " + json.dumps(one), flush=True)
    sys.exit(rc)
"""


def _traced(tmp_path, argv, env=None, n=2, cwd=None):
    """``mpiexec -n n quests-hpc ARGV`` under the tracer; returns (stdout, [events of
    each rank])."""
    tracer = tmp_path / "tracer.py"
    tracer.write_text(textwrap.dedent(TRACER))
    p = subprocess.run(["timeout", "400", MPIEXEC, "-n", str(n), sys.executable, str(tracer),
                        *argv], capture_output=True, text=True, cwd=cwd, timeout=430,
                       env={**os.environ, **(env or {})})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    events = [json.loads(line.split(" ", 1)[1]) for line in p.stdout.splitlines()
              if line.startswith("EVENTS ")]
    assert len(events) == n
    return p.stdout, events


def _traced_run(tmp_path, env=None, n=2):
    """``mpiexec -n n quests-hpc run`` of a small campaign with clusters and export;
    returns (stdout, [events of each rank])."""
    d = tmp_path / "job"
    d.mkdir()
    y = basic_campaign(str(d), n_frames=2, extra=ANALYSIS)
    return _traced(tmp_path, ["run", y], env, n, cwd=d)


def _traced_compress(tmp_path, env, n=2):
    """``mpiexec -n n quests-hpc compress`` (msc) of six small FCC structures; returns
    [events of each rank]."""
    from ase.build import bulk
    from ase.io import write

    rng = np.random.default_rng(1)
    frames = []
    for _ in range(6):
        a = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2)
        a.positions += rng.normal(0, 0.1, a.positions.shape)
        frames.append(a)
    data = tmp_path / "set.extxyz"
    write(data, frames, parallel=False)
    return _traced(tmp_path, ["compress", str(data), "-s", "3", "-o",
                              str(tmp_path / "sub.extxyz")], env, n)[1]


def _stage_rows(stdout):
    table = stdout.split("Stage times over", 1)[1].splitlines()[2:]
    return [line.split()[0] for line in table if line and not line.startswith("total")]


@needs_mpiexec
@pytest.mark.slow
def test_run_compiles_every_kernel_in_its_compile_stage_only(tmp_path):
    """Whatever the cache holds: the stage table starts with ``compile``, and on every
    rank no kernel is compiled or loaded in any other stage (before: the reader's
    kernels in ``read``/``reference``, the cluster and export kernels in ``analysis``)."""
    stdout, events = _traced_run(tmp_path)
    rows = _stage_rows(stdout)
    assert rows[0] == "compile" and {"setup", "reference", "analysis"} <= set(rows)
    for rank, log in enumerate(events):
        elsewhere = [e for e in log if e[1] not in ("compile", "(no stage)")]
        assert elsewhere == [], f"rank {rank}: kernels outside the compile stage: {elsewhere}"
        # a new process compiles or loads every kernel it uses: the analyses' are there
        reached = " ".join(e[2] for e in log if e[1] == "compile")
        for kernel in ("descriptor_kernel", "parse_rows", "grid_edges", "format_rows"):
            assert kernel in reached, f"rank {rank}: {kernel} not warmed"

def _cache_files(root):
    return {os.path.relpath(os.path.join(dp, f), root): os.stat(os.path.join(dp, f)).st_mtime_ns
            for dp, _, fs in os.walk(root) for f in fs}


@needs_mpiexec
@pytest.mark.slow
def test_setup_warm_up_covers_every_kernel_of_a_run(tmp_path):
    """Cold private cache -> the set-up's warm-up command -> a 2-rank run with clusters
    and export: the run compiles nothing (every kernel is a cache load) and writes no
    cache file; the warm-up prints its one line.  Then ``compress`` (msc) on 2 ranks: no
    compile either (its ordered products and folds are warmed too)."""
    cache = tmp_path / "numba-cache"
    env = {"NUMBA_CACHE_DIR": str(cache)}
    p = subprocess.run([sys.executable, "-m", "quests_hpc.campaign.warmup", "setup"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert p.returncode == 0, p.stderr[-3000:]
    line = p.stdout.strip().splitlines()[-1]
    assert line.startswith("setup: compiled Numba kernels in ") and line.endswith(" s")
    before = _cache_files(cache)
    assert sum(f.endswith(".nbc") for f in before) >= 20
    stdout, events = _traced_run(tmp_path, env=env)
    for rank, log in enumerate(events):
        compiled = [e for e in log if e[0] == "compile" and e[2].startswith("quests_hpc")]
        assert compiled == [], f"rank {rank} compiled after the warm-up: {compiled}"
        assert any(e[0] == "load" for e in log)
    assert _cache_files(cache) == before  # no new or rewritten cache entry
    assert _stage_rows(stdout)[0] == "compile"
    for rank, log in enumerate(_traced_compress(tmp_path, env)):  # a data-set command
        compiled = [e for e in log if e[0] == "compile" and e[2].startswith("quests_hpc")]
        assert compiled == [], f"compress, rank {rank}, compiled after the warm-up: {compiled}"
        assert any("row_products" in e[2] for e in log if e[0] == "load")
    assert _cache_files(cache) == before
