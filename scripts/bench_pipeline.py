#!/usr/bin/env python
"""Benchmark of the MPI pipeline on a large BCC Ta frame (not a test).

Frame: ``--atoms`` atoms (default 4,000,000: a 126^3-cell BCC Ta crystal, a = 3.30 A,
0.1 A Gaussian displacements, fully periodic).  Each rank generates only its even share
by id (what the parallel LAMMPS reader hands it), so no rank holds the whole frame; with
``--dump`` a LAMMPS dump is read in parallel instead (``--write-dump`` writes the
synthetic frame as ``id type x y z`` first).  Reference: descriptors of a different,
"thermalised" Ta cell (11 x 12 x 16 BCC cells = 4,224 atoms, a = 3.32 A, 0.15 A
displacements), computed on rank 0 and shared once per node.

The frame goes through the product's pipeline
(:func:`quests_hpc.parallel.frame_pipeline.run_frame`, what ``quests-hpc dh`` runs).
Stages reported (max over ranks, median over ``--repeat`` runs and ``--rounds``, which
repeat the configurations interleaved, so changing load hits them alike; the per-round
speed-ups are printed too): ``read`` (atoms to their owners; with ``--dump`` the
parallel dump read), ``halo``, ``descriptors``, ``kernel_sums`` (dH of every atom
against the reference, chunk by chunk), ``id_order`` (results back to id order); also
the peak memory of each rank and the speed-up against the first configuration.

A configuration ``RANKSxTHREADS`` may carry a tag: ``:f32`` runs it with
``precision="float32"``, ``:old`` runs the checkout given by ``--old`` (e.g. ``git worktree
add /tmp/old <commit>``) instead of this tree, so one invocation measures the change side
by side, in interleaved rounds.  Every job also times, on all ranks at once and after the
frame, the matrix products of the kernel sums' shapes in the job's precision (the block,
128 x 63 @ 63 x 1024 on one thread, and 8192 x 63 @ 63 x n_ref on the rank's threads),
and the report gives the kernel sums' distance-product rate as a fraction of both.

Usage (the driver launches one ``mpiexec`` per configuration, RANKSxTHREADS)::

    .venv/bin/python scripts/bench_pipeline.py                        # 4 M atoms, 1x1 1x2 2x1
    .venv/bin/python scripts/bench_pipeline.py --atoms 500000 --repeat 3
    .venv/bin/python scripts/bench_pipeline.py --configs 2x1 --json out.json
    .venv/bin/python scripts/bench_pipeline.py --configs 2x1:old 2x1 2x1:f32 --rounds 3 --old /tmp/old
    .venv/bin/python scripts/bench_pipeline.py --write-dump /tmp/ta4m.lammpstrj --dump /tmp/ta4m.lammpstrj
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

A_TA = 3.30
NOISE = 0.1
BLOCK = 1 << 16  # atoms per noise block: the frame does not depend on the rank count
STAGES = ("read", "halo", "descriptors", "kernel_sums", "id_order")
PAPER = dict(atoms=32_500_000, ref=4224, seconds=255.0, threads=56)


# ----------------------------------------------------------------------------- frame


def cells_for(n_atoms):
    """Cells per edge of the cubic BCC crystal with about ``n_atoms`` atoms."""
    return max(1, round((n_atoms / 2) ** (1 / 3)))


def bcc_share(n, lo, hi, seed, a=A_TA, noise=NOISE):
    """Atoms ``lo .. hi-1`` (0-based) of an ``n^3``-cell displaced BCC crystal.

    Returns ids (1-based), positions wrapped into the cell, the cell.
    """
    idx = np.arange(lo, hi, dtype=np.int64)
    c, b = np.divmod(idx, 2)
    ix, rem = np.divmod(c, n * n)
    iy, iz = np.divmod(rem, n)
    pos = np.stack([ix, iy, iz], axis=1).astype(np.float64) + 0.5 * b[:, None]
    pos *= a
    # noise from per-block generators: identical whatever the split
    first, last = lo // BLOCK, (hi - 1) // BLOCK if hi > lo else lo // BLOCK - 1
    for blk in range(first, last + 1):
        r = np.random.default_rng([seed, blk]).normal(0.0, noise, (BLOCK, 3))
        s, e = max(lo, blk * BLOCK), min(hi, (blk + 1) * BLOCK)
        pos[s - lo:e - lo] += r[s - blk * BLOCK:e - blk * BLOCK]
    length = n * a
    np.mod(pos, length, out=pos)
    pos[pos >= length] = 0.0
    return idx + 1, pos, np.eye(3) * length


def reference_descriptors(n_ref=4224, seed=7):
    """Descriptors of a thermalised-like Ta cell (11x12x16 BCC cells = 4,224 atoms)."""
    from quests_hpc.descriptors import descriptors_from_arrays

    dims = (11, 12, 16)
    a = 3.32
    g = np.stack(np.meshgrid(*[np.arange(m) for m in dims], indexing="ij"), -1).reshape(-1, 3)
    pos = ((g[:, None, :] + np.array([[0, 0, 0], [0.5, 0.5, 0.5]])[None]).reshape(-1, 3)) * a
    pos += np.random.default_rng(seed).normal(0.0, 0.15, pos.shape)
    x = descriptors_from_arrays(pos, np.diag(np.array(dims) * a), True)
    if n_ref < len(x):
        x = x[np.random.default_rng(seed + 1).choice(len(x), n_ref, replace=False)]
    return x


def write_dump(path, n_atoms, seed, chunk=1 << 20):
    """Write the synthetic frame as a LAMMPS ``dump custom id type x y z`` (serially)."""
    from make_paper_ta import write_dump as write  # the one dump writer of these frames

    return write(path, cells_for(n_atoms), seed, chunk)


# ----------------------------------------------------------------------------- worker


def worker(args):
    from mpi4py import MPI

    from quests_hpc.parallel.frame_pipeline import (ArraySource, DumpSource, FrameRequest,
                                                    frame_summary, run_frame)
    from quests_hpc.parallel.runtime import configure_threads, install_excepthook, warm_up
    from quests_hpc.timing import peak_memory_bytes
    from quests_hpc.parallel.shared_reference import SharedReference

    install_excepthook()
    comm = MPI.COMM_WORLD
    threads = configure_threads(comm, args.threads)
    t0 = time.perf_counter()
    warm_up(comm)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reference_descriptors(args.ref) if comm.rank == 0 else None
    R = SharedReference.from_root(comm, ref, layout=args.layout,
                                  memory_budget=args.memory_budget)
    del ref
    t_ref = time.perf_counter() - t0
    runs = []
    extra = {} if args.precision == "float64" else {"precision": args.precision}
    request = FrameRequest(k=32, cutoff=5.0, bandwidths=(args.h,), dims=args.dims,
                           balance=args.balance, **extra)
    gen = None
    if args.dump is None:
        t0 = time.perf_counter()
        n = cells_for(args.atoms)
        total = 2 * n ** 3
        lo, hi = total * comm.rank // comm.size, total * (comm.rank + 1) // comm.size
        gen = bcc_share(n, lo, hi, args.seed)
        comm.Barrier()
        t_gen = time.perf_counter() - t0
    for _rep in range(args.repeat):
        if args.dump is None:
            ids, pos, cell = gen
            res = run_frame(comm, ArraySource(ids, pos, cell, True), 0, [R], request)
            res.timings["generate"] = t_gen
        else:
            from quests_hpc.parallel.dump_reader import ParallelDump

            with ParallelDump(args.dump, comm) as dump:
                res = run_frame(comm, DumpSource(dump), -1, [R], request)
        summary = frame_summary(comm, res)
        cpu = comm.gather(dict(res.cpu), root=0)
        if comm.rank == 0:
            summary.update(cpu=cpu, dh=res.dh_summary[0])
        runs.append(summary)
        del res
        comm.Barrier()
    peak = comm.gather(peak_memory_bytes())
    rates = comm.gather(matmul_rates(comm, threads, R.n, args.precision))
    R.free()
    if comm.rank == 0:
        out = dict(ranks=comm.size, threads=threads, atoms=runs[0]["n_atoms"], ref=R.n,
                   layout=R.layout, warm_up_s=t_warm, reference_s=t_ref, peak_memory=peak,
                   matmul=rates, precision=args.precision,
                   runs=[{k: r[k] for k in ("timings_max", "timings_min", "cpu", "atoms", "ghosts",
                                            "imbalance", "dims", "peak_memory", "dh")}
                         for r in runs])
        print("BENCH-JSON " + json.dumps(out, default=float), flush=True)


def matmul_rates(comm, threads, n_ref, precision, repeat=5):
    """GFLOP/s of this rank's products of the kernel sums' shapes, timed while every rank
    runs them (collective): ``block`` 128 x 63 @ 63 x 1024 on one BLAS thread (times the
    rank's threads: the kernel sums run that many blocks at once), ``whole`` 8192 x 63 @
    63 x n_ref on the rank's threads."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    dt = np.float32 if precision == "float32" else np.float64
    rng = np.random.default_rng(comm.rank)
    out = {}
    for label, (m, n, nthr) in {"block": (128, 1024, 1), "whole": (8192, n_ref, threads)}.items():
        a, b = rng.random((m, 63)).astype(dt), rng.random((n, 63)).astype(dt)
        inner = max(1, int(2e9 / (2 * m * n * 63)))
        copies = threads if label == "block" else 1

        def loop(_, a=a, b=b, m=m, n=n, inner=inner):
            c = np.empty((m, n), dtype=dt)
            for _ in range(inner):
                np.matmul(a, b.T, out=c)

        with threadpool_limits(limits=nthr, user_api="blas"), \
                ThreadPoolExecutor(max_workers=copies) as ex:
            list(ex.map(loop, range(copies)))  # warm
            ts = []
            for _ in range(repeat):
                comm.Barrier()
                t0 = time.perf_counter()
                list(ex.map(loop, range(copies)))
                ts.append(time.perf_counter() - t0)
        out[label] = copies * inner * 2.0 * m * n * 63 / float(np.median(ts)) / 1e9
    return out


# ----------------------------------------------------------------------------- driver


def run_config(args, ranks, threads, tag=""):
    here = os.path.abspath(__file__)
    venv_bin = os.path.dirname(sys.executable)
    mpiexec = os.path.join(venv_bin, "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = "mpiexec"
    cmd = ["timeout", str(args.timeout), mpiexec, "-n", str(ranks), sys.executable, here,
           "--worker", "--threads", str(threads), "--atoms", str(args.atoms), "--ref",
           str(args.ref), "--h", str(args.h), "--repeat", str(args.repeat), "--seed",
           str(args.seed), "--balance", args.balance, "--layout", args.layout,
           "--precision", "float32" if tag == "f32" else args.precision]
    if args.dims:
        cmd += ["--dims", *map(str, args.dims)]
    if args.dump:
        cmd += ["--dump", args.dump]
    if args.memory_budget is not None:
        cmd += ["--memory-budget", str(args.memory_budget)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    if tag == "old":
        if not args.old:
            raise SystemExit("configuration tag :old needs --old TREE")
        env["PYTHONPATH"] = os.path.abspath(args.old)  # its quests_hpc first
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("BENCH-JSON ")]
    if p.returncode != 0 or not lines:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"configuration {ranks}x{threads}{tag and ':' + tag} failed "
                         f"(exit {p.returncode})")
    out = json.loads(lines[-1][len("BENCH-JSON "):])
    out["tag"] = tag
    out["job_wall_s"] = wall
    return out


def median_stage(res, stage):
    vals = [r["timings_max"].get(stage) for r in res["runs"]]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def median_cpu(res, stage):
    """Median over runs of the largest per-rank CPU seconds of ``stage``."""
    vals = [max(c.get(stage, 0.0) for c in r["cpu"]) for r in res["runs"] if "cpu" in r]
    return statistics.median(vals) if vals else None


def job_total(res, stat=median_stage):
    """Sum of the stage times but ``read`` (median over the job's runs)."""
    return sum(stat(res, s) or 0.0 for s in STAGES[1:])


def config_name(job):
    """``RANKSxTHREADS`` with the job's tag (``:f32``, ``:old``)."""
    tag = job.get("tag", "")
    return f"{job['ranks']}x{job['threads']}" + (f":{tag}" if tag else "")


def merge_rounds(jobs):
    """Group jobs by configuration (first-seen order); runs and rounds pooled."""
    groups = {}
    for job in jobs:
        name = config_name(job)
        g = groups.setdefault(name, dict(job, runs=[], jobs=[], peak_memory=None))
        g["runs"] += job["runs"]
        g["jobs"].append(job)
        pm = job["peak_memory"]
        g["peak_memory"] = pm if g["peak_memory"] is None else \
            [max(a, b) for a, b in zip(g["peak_memory"], pm)]
    return groups


def report(results):
    """Print stage tables, per-round speed-ups and the extrapolation (``results``: jobs)."""
    gib = 1 << 30
    groups = merge_rounds(results)
    names = list(groups)
    base = groups[names[0]]
    rounds = sorted({j.get("round", 0) for j in results})
    print(f"\nBCC Ta frame: {base['atoms']:,} atoms; reference {base['ref']:,} environments "
          f"({base['layout']}); stage times = max over ranks, median over "
          f"{len(base['runs'])} run(s) in {len(rounds)} round(s)\n")
    head = f"{'config':>8} " + " ".join(f"{s:>11}" for s in STAGES) + \
        f" {'total':>9} {'speed-up':>8} {'imbal':>6}  peak memory per rank (GiB)"
    print(head)
    print("-" * len(head))
    for name in names:
        g = groups[name]
        t = {s: median_stage(g, s) for s in STAGES}
        speed = job_total(base) / job_total(g)
        cells = " ".join(f"{v:11.2f}" if v is not None else f"{'-':>11}" for v in t.values())
        mem = ", ".join(f"{m / gib:.2f}" for m in g["peak_memory"])
        print(f"{name:>8} {cells} {job_total(g):9.2f} {speed:8.2f} "
              f"{g['runs'][0]['imbalance']:6.3f}  [{mem}]")
    print(f"\n(total = all stages but read; speed-up = total of {names[0]} / total)")
    if len(rounds) > 1:
        print("\nSpeed-up per round (each configuration against the first one of the same "
              "round;\nrounds interleave the configurations, so load changes hit all alike):")
        for name in names[1:]:
            ratios = []
            for r in rounds:
                b = [j for j in results if j.get("round", 0) == r and
                     config_name(j) == names[0]]
                c = [j for j in results if j.get("round", 0) == r and config_name(j) == name]
                if b and c:
                    ratios.append(job_total(b[0]) / job_total(c[0]))
            print(f"  {name}: " + ", ".join(f"{x:.2f}" for x in ratios) +
                  f"   median {statistics.median(ratios):.2f}")
            for stage in ("descriptors", "kernel_sums"):
                per = stage_ratios(results, names[0], name, rounds, stage)
                if per:
                    print(f"    {stage}: " + ", ".join(f"{x:.2f}" for x in per) +
                          f"   median {statistics.median(per):.2f}")
    print("\nCPU seconds per stage (largest rank; all threads of a rank summed; median).  "
          "Wall times\nstretch on a loaded machine, CPU seconds less so.\n")
    print(f"{'config':>8} " + " ".join(f"{s:>11}" for s in STAGES[1:]) + f" {'total':>9}")
    for name in names:
        c = {s: median_cpu(groups[name], s) for s in STAGES[1:]}
        cells = " ".join(f"{v:11.2f}" if v is not None else f"{'-':>11}" for v in c.values())
        print(f"{name:>8} {cells} {sum(v or 0.0 for v in c.values()):9.2f}")
    print()
    for name in names:
        g = groups[name]
        d = g["runs"][0]["dh"][0]
        same = all(r["dh"][0]["mean"] == d["mean"] and r["dh"][0]["n_novel"] == d["n_novel"]
                   for r in g["runs"])
        print(f"{name}: dH mean {d['mean']:.12f}, novel {d['n_novel']:,} of {d['n']:,} "
              f"({100 * d['novelty']:.2f} %){'' if same else ' (varies between runs!)'}, "
              f"ghosts {g['runs'][0]['ghosts']}, dims {g['runs'][0]['dims']}")
    matmul_fractions(groups)
    best = min(groups.values(), key=job_total)
    extrapolate(best, "wall", median_stage)
    extrapolate(best, "CPU", lambda r, s: median_cpu_sum(r, s) / (r["ranks"] * r["threads"]))


def stage_ratios(results, base, name, rounds, stage):
    """Per round: the base configuration's max-over-ranks time of ``stage`` over ``name``'s
    (medians over each job's runs)."""
    out = []
    for r in rounds:
        b = [j for j in results if j.get("round", 0) == r and config_name(j) == base]
        c = [j for j in results if j.get("round", 0) == r and config_name(j) == name]
        if b and c and median_stage(b[0], stage) and median_stage(c[0], stage):
            out.append(median_stage(b[0], stage) / median_stage(c[0], stage))
    return out


def matmul_fractions(groups):
    """Kernel sums' distance-product rate per core against the same job's matmul rates."""
    print("\nKernel sums against the matrix products timed in the same job (per core, "
          "median over ranks):")
    for name, g in groups.items():
        rates = [r for j in g["jobs"] for r in j.get("matmul") or []]
        ks = median_stage(g, "kernel_sums")
        if not rates or not ks:
            continue
        cores = g["ranks"] * g["threads"]
        rate = 2 * 63 * g["atoms"] * g["ref"] / ks / cores / 1e9
        block = statistics.median(r["block"] for r in rates) / g["threads"]
        whole = statistics.median(r["whole"] for r in rates) / g["threads"]
        print(f"  {name}: {rate:.1f} GFLOP/s per core = {100 * rate / block:.0f}% of the "
              f"block product ({block:.1f}), {100 * rate / whole:.0f}% of the 8192-row "
              f"product ({whole:.1f}) [{g.get('precision', 'float64')}]")


def median_cpu_sum(res, stage):
    """Median over runs of the CPU seconds of ``stage`` summed over ranks."""
    vals = [sum(c.get(stage, 0.0) for c in r["cpu"]) for r in res["runs"] if "cpu" in r]
    return statistics.median(vals) if vals else 0.0


def extrapolate(res, label, stage_time):
    """Per-core rates of ``res`` and the paper's 32.5 M x 4,224 workload at those rates.

    ``stage_time(res, stage)``: wall seconds, or CPU seconds per core (CPU summed over
    ranks / cores), which a loaded machine does not inflate.
    """
    cores = res["ranks"] * res["threads"]
    ks, de = stage_time(res, "kernel_sums"), stage_time(res, "descriptors")
    rest = sum(stage_time(res, s) or 0.0 for s in ("distribute", "halo", "reductions"))
    n, m = res["atoms"], res["ref"]
    pair_rate = n * m / ks / cores
    desc_rate = n / de / cores
    est = PAPER["atoms"] / n * (ks * PAPER["ref"] / m + de + rest)
    print(f"\nFrom {label} times of {config_name(res)}: kernel sums "
          f"{pair_rate:.3g} test-reference pairs/s per core ({2 * 63 * pair_rate / 1e9:.1f} "
          f"GFLOP/s per core in the distance product), descriptors {desc_rate:,.0f} atoms/s "
          f"per core.  Paper's workload (dH of {PAPER['atoms']:,} atoms against "
          f"{PAPER['ref']:,}: {PAPER['seconds']:.0f} s on {PAPER['threads']} threads): about "
          f"{est:,.0f} s on {cores} core(s) here, {est * cores / PAPER['threads']:,.1f} s at "
          f"{PAPER['threads']} cores at these per-core rates (descriptors, distribution and "
          f"halo included, reading excluded).")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atoms", type=int, default=4_000_000)
    p.add_argument("--ref", type=int, default=4224)
    p.add_argument("--h", type=float, default=0.015)
    p.add_argument("--repeat", type=int, default=1, help="runs per job (same frame)")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole list of configurations, interleaved")
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--configs", nargs="+", default=["1x1", "1x2", "2x1"],
                   help="RANKSxTHREADS per configuration; the first is the speed-up base")
    p.add_argument("--dims", type=int, nargs=3)
    p.add_argument("--balance", default="uniform", choices=["uniform", "atoms"])
    p.add_argument("--layout", default="auto", choices=["auto", "shared", "sharded"])
    p.add_argument("--memory-budget", type=int)
    p.add_argument("--dump", help="read this LAMMPS dump (last frame) instead of generating")
    p.add_argument("--write-dump", help="write the synthetic frame to this dump first")
    p.add_argument("--timeout", type=int, default=3000, help="seconds per configuration")
    p.add_argument("--precision", default="float64", choices=["float64", "float32"],
                   help="precision of the untagged configurations")
    p.add_argument("--old", metavar="TREE", help="checkout run by the configurations "
                   "tagged :old")
    p.add_argument("--json", help="write all results to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.worker:
        return worker(args)
    if args.write_dump and os.path.exists(args.write_dump):
        print(f"{args.write_dump} exists: read as it is (never replaced)")
    elif args.write_dump:
        t0 = time.perf_counter()
        n = write_dump(args.write_dump, args.atoms, args.seed)
        print(f"wrote {n:,} atoms to {args.write_dump} in {time.perf_counter() - t0:.1f} s")
    results = []
    for rnd in range(args.rounds):
        for cfg in args.configs:
            shape, _, tag = cfg.lower().partition(":")
            ranks, threads = (int(v) for v in shape.split("x"))
            print(f"round {rnd + 1}/{args.rounds}: {ranks} rank(s) x {threads} thread(s) "
                  f"{tag} ...", flush=True)
            job = run_config(args, ranks, threads, tag)
            job["round"] = rnd
            results.append(job)
            if args.json:  # keep what is done if a later configuration fails
                with open(args.json, "w") as f:
                    json.dump(results, f, indent=1, default=float)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
