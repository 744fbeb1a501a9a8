#!/usr/bin/env python3
"""Benchmark: clusters of a ~1,000,000-atom frame with half the atoms as nodes.

quests-hpc's distributed cluster analysis under ``mpiexec -n 1`` and ``-n 2`` against
OVITO's ``ClusterAnalysisModifier`` (only selected, same cutoff) on the same selection, in
the same run.  Reports wall times, the speed-up over OVITO and checks that the labels are
identical for every rank count and that the cluster sizes equal OVITO's.

The frame: the bundled real Cu melt frame (examples/cu_nucleation, 2,048 atoms, a
growing crystal in the liquid) replicated 8 x 8 x 8 times (1,048,576 atoms) with its dH
(computed once, against the bundled FCC 400 K reference) tiled; the threshold is the
median dH, so exactly half the atoms are nodes.  Positions get 0.02 A of noise so that
replicas are not exact copies.

What is timed (best of ``--repeats`` after a warm-up): for quests-hpc, ``find_clusters``
from every rank holding an id-ordered share of the frame (as the parallel reader gives
it) to labels back in that order plus the global summary (size histogram, largest):
decomposition, halo of width r_edge, edges, union-find, merge across ranks, sizes, label
lookup.  For OVITO, ``pipeline.compute()`` of a selection already in memory
(``OVITO_THREAD_COUNT`` = the cores given, default all).

Usage::

    python scripts/bench_clusters.py [--ranks 1 2] [--repeats 3] [--replicate 8]
        [--frame 30] [--ovito-threads N] [--out bench_out/bench_clusters.json]
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "cu_nucleation")
R_EDGE = 3.0


def make_frame(path, frame_no, rep, seed=0):
    """Write the replicated frame (ids, positions, cell, dh, threshold) to ``path``."""
    sys.path.insert(0, ROOT)
    from quests_hpc import information
    from quests_hpc.descriptors import descriptors_from_arrays
    from quests_hpc.io import read_lammps_dump

    ref = read_lammps_dump(os.path.join(EXAMPLE, "cu_fcc_400K.lammpstrj.gz"), "all")
    x = np.concatenate([descriptors_from_arrays(f.positions, f.cell, f.pbc) for f in ref])
    f = read_lammps_dump(os.path.join(EXAMPLE, "cu_melt_600K.lammpstrj.gz"), frame_no)
    dh = information.delta_entropy(descriptors_from_arrays(f.positions, f.cell, f.pbc), x)
    shifts = np.stack(np.meshgrid(*[np.arange(rep)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = (f.positions[None, :, :] + (shifts @ f.cell)[:, None, :]).reshape(-1, 3)
    pos += np.random.default_rng(seed).normal(0, 0.02, pos.shape)
    cell = f.cell * rep
    frac = pos @ np.linalg.inv(cell)
    pos = (frac - np.floor(frac)) @ cell
    dh_all = np.tile(dh, len(shifts))
    ids = np.arange(1, len(pos) + 1, dtype=np.int64)
    thr = float(np.median(dh_all))
    np.savez(path, ids=ids, positions=pos, cell=cell, dh=dh_all, threshold=thr)
    return len(ids), thr, float((dh <= 0).mean())


def child(args):
    """One ``mpiexec`` run: time find_clusters; rank 0 prints a JSON line."""
    from mpi4py import MPI

    from quests_hpc.analysis.clusters import find_clusters
    from quests_hpc.parallel.comm import even_bounds
    from quests_hpc.parallel.runtime import configure_threads

    comm = MPI.COMM_WORLD
    threads = configure_threads(comm)
    z = np.load(args.child)
    n = len(z["ids"])
    b = even_bounds(n, comm.size)
    sl = slice(int(b[comm.rank]), int(b[comm.rank + 1]))
    ids, pos, dh = z["ids"][sl], z["positions"][sl], z["dh"][sl]
    cell, thr = z["cell"], float(z["threshold"])
    # Warm-up: compile every kernel on a small piece (not timed).
    m = min(len(ids), 5000)
    find_clusters(ids[:m], pos[:m], dh[:m], cell, True, threshold=thr, r_edge=R_EDGE,
                  comm=comm)
    times, res = [], None
    for _ in range(args.repeats):
        comm.Barrier()
        t0 = time.perf_counter()
        res = find_clusters(ids, pos, dh, cell, True, threshold=thr, r_edge=R_EDGE, comm=comm)
        comm.Barrier()
        times.append(time.perf_counter() - t0)
    stages = comm.gather(res.timings, root=0)
    labels = comm.gather(res.labels, root=0)
    if comm.rank == 0:
        lab = np.concatenate(labels)  # shares are id-ordered: this is the id order
        out = {"ranks": comm.size, "threads_per_rank": threads, "best_s": min(times),
               "median_s": float(np.median(times)), "times": times,
               "stages_max": {k: max(s.get(k, 0.0) for s in stages) for k in stages[0]},
               "n_nodes": res.n_nodes, "n_clusters": res.n_clusters, "largest": res.largest,
               "labels_sha256": hashlib.sha256(lab.tobytes()).hexdigest(),
               "sizes": res.sizes.tolist(), "counts": res.counts.tolist()}
        print("BENCH " + json.dumps(out), flush=True)


def ovito_run(args):
    """OVITO's cluster analysis of the same selection; prints a JSON line."""
    from ovito.data import DataCollection, Particles, SimulationCell
    from ovito.modifiers import ClusterAnalysisModifier
    from ovito.pipeline import Pipeline, StaticSource

    z = np.load(args.ovito)
    sel = (z["dh"] <= float(z["threshold"])).astype(np.int32)
    data = DataCollection()
    cell = SimulationCell(pbc=(True, True, True))
    m = np.zeros((3, 4))
    m[:, :3] = z["cell"].T
    cell[...] = m
    data.objects.append(cell)
    p = Particles()
    p.create_property("Position", data=z["positions"])
    p.create_property("Selection", data=sel)
    data.objects.append(p)
    times, d = [], None
    for _ in range(args.repeats + 1):  # the first run is a warm-up
        pipe = Pipeline(source=StaticSource(data=data))
        pipe.modifiers.append(ClusterAnalysisModifier(cutoff=R_EDGE, only_selected=True,
                                                      sort_by_size=True, output_table=True))
        t0 = time.perf_counter()
        d = pipe.compute()
        times.append(time.perf_counter() - t0)
    sizes = np.asarray(d.tables["clusters"]["Cluster Size"]).astype(np.int64)
    v, c = np.unique(sizes, return_counts=True)
    out = {"threads": int(os.environ.get("OVITO_THREAD_COUNT", "0")), "best_s": min(times[1:]),
           "median_s": float(np.median(times[1:])), "times": times[1:],
           "n_clusters": int(d.attributes["ClusterAnalysis.cluster_count"]),
           "largest": int(d.attributes["ClusterAnalysis.largest_size"]),
           "sizes": v.tolist(), "counts": c.tolist()}
    print("BENCH " + json.dumps(out), flush=True)


def _bench_line(proc):
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--replicate", type=int, default=8)
    p.add_argument("--frame", type=int, default=30, help="melt frame to replicate")
    p.add_argument("--ovito-threads", type=int, nargs="+", default=None,
                   help="OVITO_THREAD_COUNT values (default: all cores, and 1)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench_out", "bench_clusters.json"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--ovito", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    if args.ovito:
        return ovito_run(args)

    bindir = os.path.dirname(sys.executable)
    mpiexec = os.path.join(bindir, "mpiexec")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench_clusters_") as tmp:
        frame = os.path.join(tmp, "frame.npz")
        t0 = time.perf_counter()
        n, thr, cov = make_frame(frame, args.frame, args.replicate)
        print(f"frame: melt frame {args.frame} x {args.replicate}^3 = {n:,} atoms "
              f"(base frame: {100 * cov:.1f}% with dH <= 0); threshold = median dH = "
              f"{thr:.4f} -> {n // 2:,} nodes; r_edge = {R_EDGE} A; built in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        results = {"atoms": n, "threshold": thr, "r_edge": R_EDGE, "ours": [], "ovito": []}
        for r in args.ranks:
            cmd = [mpiexec, "-n", str(r), sys.executable, os.path.abspath(__file__),
                   "--child", frame, "--repeats", str(args.repeats)]
            res = _bench_line(subprocess.run(cmd, capture_output=True, text=True, check=False))
            results["ours"].append(res)
            st = ", ".join(f"{k} {v:.3f}" for k, v in res["stages_max"].items())
            print(f"quests-hpc, {r} rank(s) x {res['threads_per_rank']} thread(s): best "
                  f"{res['best_s']:.3f} s, median {res['median_s']:.3f} s; "
                  f"{res['n_clusters']:,} clusters, largest {res['largest']:,}\n"
                  f"    stages (max over ranks, last run): {st}", flush=True)
        for t in args.ovito_threads or sorted({cores, 1}, reverse=True):
            env = dict(os.environ, OVITO_THREAD_COUNT=str(t))
            cmd = [sys.executable, os.path.abspath(__file__), "--ovito", frame, "--repeats",
                   str(args.repeats)]
            res = _bench_line(subprocess.run(cmd, capture_output=True, text=True, env=env,
                                             check=False))
            results["ovito"].append(res)
            print(f"OVITO ClusterAnalysisModifier, {t} thread(s): best {res['best_s']:.3f} s, "
                  f"median {res['median_s']:.3f} s; {res['n_clusters']:,} clusters, "
                  f"largest {res['largest']:,}", flush=True)
    ours, ov = results["ours"], results["ovito"]
    same_labels = len({o["labels_sha256"] for o in ours}) == 1
    same_sizes = all(o["sizes"] == v["sizes"] and o["counts"] == v["counts"]
                     for o in ours for v in ov)
    ref = min(v["best_s"] for v in ov)
    print(f"labels identical for {args.ranks} rank(s): {same_labels}; cluster sizes equal "
          f"OVITO's: {same_sizes}")
    for o in ours:
        print(f"speed vs the fastest OVITO run ({ref:.3f} s): {o['ranks']} rank(s) "
              f"{ref / o['best_s']:.2f}x")
    results.update(same_labels=same_labels, same_sizes_as_ovito=same_sizes)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"written {args.out}")
    return 0 if same_labels and same_sizes else 1


if __name__ == "__main__":
    sys.exit(main())
