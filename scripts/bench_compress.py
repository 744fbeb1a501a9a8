#!/usr/bin/env python3
"""msc compression side by side: upstream ``quests`` against quests-hpc, in one run.

Input: a LAMMPS dump of many small frames from a real MD run (``scripts/make_cu_frames.py``:
10,000 frames of 108-atom FCC Cu from 300 K to a melt = 1,080,000 environments), each
frame a structure, compressed to ``--frac`` (10 %).

* upstream at ``--upstream-frames`` (subsets spread evenly over the run: every
  (total / n)-th frame), through :func:`bench_compress_upstream.upstream_msc`: the
  selection time, and the choice;
* quests-hpc on the same subsets, and on ``--ours-frames`` (by default the whole run), under
  ``mpiexec -n R`` for each R of ``--ranks``: read + descriptors, the choice, the report
  (curve, novelty, overlap), the peak memory per rank;
* the ratio of the selection times where both ran, whether the choices are identical,
  upstream's scaling exponent fitted over its sizes and its time extrapolated to the
  sizes it did not run (a stated estimate, not a measurement).

    .venv/bin/python scripts/bench_compress.py                      # the full comparison
    .venv/bin/python scripts/bench_compress.py --upstream-frames 250 500 --ours-frames 1000

Absolute times differ from machine to machine: the ratios are the figures.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def subset_dump(path, n, out):
    """Frames 0, every, 2 every, ... (n of them, every = total // n) of a dump into ``out``;
    returns ``every``."""
    from quests_hpc.io.lammps_dump import LammpsDump

    with LammpsDump(path) as d:
        total = len(d)
        every = max(1, total // n)
        with open(path, "rb") as f, open(out, "wb") as g:
            for i in range(0, every * n, every):
                _, a, b = d.byte_range(i)
                f.seek(a)
                g.write(f.read(b - a))
    return every


def worker(path, frac, threads, overlap):
    """Run inside mpiexec: our msc on ``path``; rank 0 prints one JSON line."""
    from mpi4py import MPI

    from quests_hpc.dataset.compress import compress
    from quests_hpc.dataset.structures import load_dataset
    from quests_hpc.parallel.runtime import configure_threads

    comm = MPI.COMM_WORLD
    configure_threads(comm, threads)
    comm.Barrier()
    t = time.perf_counter()
    data = load_dataset(comm, path)
    t_load = time.perf_counter() - t
    r = compress(comm, data, "msc", frac, overlap=bool(overlap))
    rss = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, root=0)
    held = comm.gather(int(data.counts[data.lo:data.hi].sum()), root=0)
    if comm.rank == 0:
        print("RESULT " + json.dumps(dict(
            ranks=comm.size, threads=threads, n_frames=data.n_structures,
            n_envs=data.n_environments, size=len(r.indices), selected=r.indices,
            seconds_load=t_load, seconds_select=r.seconds["choose"],
            seconds_report=r.seconds["report"], environment_folds=r.environment_folds,
            eager_folds=_eager_folds(data.counts, r.indices), msc_stats=r.msc_stats,
            H=r.H, D=r.D, overlap=r.overlap, peak_mib=rss, envs_held=held)), flush=True)


def _eager_folds(counts, order):
    """Environment-folds of eager msc: after each pick but the last, every candidate's
    environments fold the new pick."""
    kept = np.cumsum(np.asarray(counts)[np.asarray(order)])
    return int((int(np.sum(counts)) - kept[:-1]).sum())


def ours(path, frac, config, overlap=True):
    ranks, threads = (int(v) for v in config.split("x"))
    cmd = [os.path.join(ROOT, ".venv", "bin", "mpiexec"), "-n", str(ranks), sys.executable,
           os.path.abspath(__file__), "--worker", path, "--frac", str(frac),
           "--threads", str(threads), "--overlap", str(int(overlap))]
    if not os.path.exists(cmd[0]):
        cmd[0] = "mpiexec"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames-path", default="/work/bench/cu_frames.lammpstrj")
    p.add_argument("--upstream-frames", type=int, nargs="*", default=[250, 500, 1000])
    p.add_argument("--ours-frames", type=int, nargs="*", default=[10000])
    p.add_argument("--configs", nargs="+", default=["1x2", "2x1"],
                   help="ours: RANKSxTHREADS per rank (default: 1x2 2x1, both 2 cores)")
    p.add_argument("--overlap-max-frames", type=int, default=2000,
                   help="ours computes the report's overlap (a pass of every environment "
                        "against the subset) up to this many frames (default: 2000)")
    p.add_argument("--frac", type=float, default=0.1)
    p.add_argument("--upstream-threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the rows here (a new file)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--overlap", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.json and os.path.exists(a.json):
        p.error(f"--json {a.json}: the file exists; name a new one")
    if a.worker:
        return worker(a.worker, a.frac, a.threads, a.overlap)
    from bench_compress_upstream import upstream_msc

    rows = {"upstream": [], "ours": []}
    tmp = tempfile.mkdtemp(prefix="bench_compress_")
    for i, n in enumerate(a.upstream_frames):
        sub = os.path.join(tmp, f"cu_{n}.lammpstrj")
        every = subset_dump(a.frames_path, n, sub)
        up = upstream_msc(sub, n, a.frac, a.upstream_threads, warmup=(i == 0))
        up["every"] = every
        rows["upstream"].append(up)
        for c in a.configs[:1]:
            rows["ours"].append(dict(ours(sub, a.frac, c), every=every))
        print(f"{n} frames (every {every}-th): upstream select {up['seconds_select']:.1f} s, "
              f"ours {rows['ours'][-1]['seconds_select']:.2f} s; identical choice: "
              f"{up['selected'] == rows['ours'][-1]['selected']}", flush=True)
    for n in a.ours_frames:
        sub = os.path.join(tmp, f"cu_{n}.lammpstrj")
        every = subset_dump(a.frames_path, n, sub)
        for c in a.configs:
            rows["ours"].append(dict(ours(sub, a.frac, c, n <= a.overlap_max_frames),
                                     every=every))
            o = rows["ours"][-1]
            print(f"{n} frames, {c}: ours load {o['seconds_load']:.1f} s, select "
                  f"{o['seconds_select']:.1f} s, report {o['seconds_report']:.1f} s, peak "
                  f"{max(o['peak_mib']):.0f} MiB/rank", flush=True)
    report(rows, a)
    if a.json:
        with open(a.json, "x") as f:  # never over earlier results
            json.dump(rows, f, indent=1)
    return 0


def report(rows, a):
    """The table of figures and ratios."""
    from bench_compress_upstream import scaling_exponent

    up = {r["n_frames"]: r for r in rows["upstream"]}
    print(f"\n# msc to {100 * a.frac:g} %; upstream {a.upstream_threads} threads")
    print(f"{'frames':>7} {'envs':>9} {'RxT':>5} {'upstream s':>11} {'ours s':>8} "
          f"{'ratio':>7} {'same':>5} {'folds/eager':>11} {'peak MiB':>9} {'report s':>9}")
    ns = sorted(up)
    expo = scaling_exponent(ns, [up[n]["seconds_select"] for n in ns]) if len(ns) > 1 else None
    for o in rows["ours"]:
        n = o["n_frames"]
        if n in up:
            u, tag = up[n]["seconds_select"], ""
        elif expo is not None:
            u, tag = up[ns[-1]]["seconds_select"] * (n / ns[-1]) ** expo, "~"
        else:
            u, tag = float("nan"), ""
        same = (up[n]["selected"] == o["selected"]) if n in up else "-"
        print(f"{n:7d} {o['n_envs']:9d} {str(o['ranks']) + 'x' + str(o['threads']):>5} {tag + format(u, '.1f'):>11} "
              f"{o['seconds_select']:8.2f} {tag + format(u / o['seconds_select'], '.0f'):>7} "
              f"{str(same):>5} {o['environment_folds'] / max(o['eager_folds'], 1):11.3f} "
              f"{max(o['peak_mib']):9.0f} {o['seconds_report']:9.1f}")
    if expo is not None:
        print(f"upstream's selection time grows as frames^{expo:.2f} over {ns}; '~' rows are "
              f"extrapolated from {ns[-1]} frames with it (an estimate, not a measurement)")
    for o in rows["ours"]:  # where each rank's selection time went
        st = o.get("msc_stats")
        if st:
            print(f"  {o['n_frames']} frames {o['ranks']}x{o['threads']}: {st[0]['rounds']} "
                  f"rounds; per rank: environment-folds {[s['folds'] for s in st]}, refresh "
                  f"{[round(s['refresh_s'], 1) for s in st]} s, in collectives "
                  f"{[round(s['collective_s'], 1) for s in st]} s")


if __name__ == "__main__":
    sys.exit(main())
