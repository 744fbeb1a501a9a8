#!/usr/bin/env python
"""Benchmark of the serial core against upstream quests (not a test).

Runs upstream ``quests`` and ``quests_hpc`` on the same inputs and prints a table of
wall times (median of ``--repeat`` runs after a warm-up call), the ratio
upstream / ours, the peak resident memory of each, and the largest difference between
their results.  Every (case, implementation) runs in its own child process, so peak
memory (``ru_maxrss`` of the child: imports included, see the ``base`` column) is not
polluted by other cases.

Cases (``--only``):

a  desc     descriptors of a 108,000-atom FCC Cu cell (a = 3.61 A, 0.1 A Gaussian
            displacements), 1 thread and ``--threads`` threads
b  cluster  descriptors of a non-periodic Cu cluster of about 30,000 atoms; upstream is
            O(N^2) in time and memory, so it runs on a 16,384-atom cluster (stated in
            the table) unless ``--upstream-full-cluster``
c  dh       dH of 100,000 environments against 10,000 (h = 0.015)
f  novel    dH of 100,000 environments of random (ideal-gas-like) Cu positions at the
            FCC density against the 10,000 FCC ones: about half of the rows have
            S < 1e-250 (upstream: +inf), which ours sums on its log-space path
d  entropy  H of 20,000 environments (h = 0.015)
g  binary   several elements: multi-element descriptors (upstream's
            ``get_descriptors_multicomponent``, species Al and Ni: 189 values per atom) of a
            108,000-atom B2 NiAl crystal (a = 2.88 A, 30 x 30 x 60 cells, 0.1 A Gaussian
            displacements), then the same descriptors and dH against 10,000 reference
            environments of another displaced B2 cell (h = 0.015); ``--threads`` threads
e  matmul   this machine's float64 and float32 matrix-multiply rates, measured in the
            same run: the whole product of case c's shape (100,000 x 63 @ 63 x 10,000, as
            ``y @ x.T`` computes it) on 1 and ``--threads`` threads, and the kernel sums'
            block shape (128 x 63 @ 63 x 1024) on one thread; and the fraction of them
            that cases c and d reach, counting 2 * n_y * n_x * d flops for the distance
            product (n^2 d for H: half the pairs, as symmetry is used)

Implementations (columns): ``upstream`` (PyPI quests), ``ours`` (this tree, float64),
``f32`` (this tree, ``precision="float32"``: its speed-up over ``ours`` and its largest
error against ``ours`` beside the float32 bound), and with ``--old TREE`` ``old`` (the
same calls on the code of another checkout, e.g. ``git worktree add /tmp/old <commit>``:
the speed-up of this tree over it in the same run).

Usage::

    .venv/bin/python scripts/bench_core.py                 # everything, 2 threads
    .venv/bin/python scripts/bench_core.py --quick         # small sizes, smoke run
    .venv/bin/python scripts/bench_core.py --only dh --repeat 5
    .venv/bin/python scripts/bench_core.py --old /tmp/old --threads 2   # against a commit
"""

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

H = 0.015
FULL = dict(fcc_rep=30, cluster_n=30000, cluster_up_n=16384, n_test=100000, n_ref=10000,
            n_ent=20000, b2_test=(30, 30, 60), b2_ref=(10, 10, 50))
QUICK = dict(fcc_rep=8, cluster_n=3000, cluster_up_n=3000, n_test=10000, n_ref=2000,
             n_ent=4000, b2_test=(8, 8, 8), b2_ref=(5, 5, 5))


# ----------------------------------------------------------------------------- inputs


def fcc_atoms(rep, seed, stdev=0.1):
    from ase.build import bulk
    at = bulk("Cu", "fcc", a=3.61, cubic=True) * (rep, rep, rep)
    rng = np.random.default_rng(seed)
    at.positions += rng.normal(0.0, stdev, at.positions.shape)
    return at


def b2_atoms(rep, seed, stdev=0.1):
    """Displaced B2 NiAl, ``rep`` cells per axis (2 atoms each)."""
    from ase.build import bulk
    at = bulk("NiAl", "cesiumchloride", a=2.88).repeat(tuple(rep))
    at.positions += np.random.default_rng(seed).normal(0.0, stdev, at.positions.shape)
    return at


def _binary_case(spec, impl, repeat):
    """Case g: multi-element descriptors of the big B2 cell, then also dH (timed apart)."""
    if impl == "upstream":
        from quests.descriptor import get_descriptors_multicomponent as desc
        from quests.entropy import delta_entropy as dh
    else:
        from quests_hpc import get_descriptors_multicomponent as desc
        from quests_hpc.information import delta_entropy as dh
    desc([b2_atoms((2, 2, 2), 9)])  # compile / load
    x = desc([b2_atoms(spec["ref"], 2)], k=32, cutoff=5.0)
    atoms = b2_atoms(spec["rep"], 1)
    dh(x[:50], x[:50], H)
    base = _rss_mb()
    t_desc, ts_desc, y = _timed(lambda: desc([atoms], k=32, cutoff=5.0), repeat)
    cpu_desc = _timed.cpu
    kw = {} if impl == "upstream" else dict(blocks=(32, 3))  # as the pipeline calls it
    t_dh, ts_dh, out = _timed(lambda: dh(y, x, H, **kw), repeat)
    np.save(spec["out"] + ".desc.npy", y)
    _timed.cpu = [a + b for a, b in zip(cpu_desc, _timed.cpu)]
    res = dict(size=f"{len(atoms)} x {len(x)}", desc_time=t_desc, dh_time=t_dh,
               flops=2.0 * len(y) * len(x) * y.shape[1])
    return t_desc + t_dh, [a + b for a, b in zip(ts_desc, ts_dh)], out, base, res


def cluster_atoms(n, seed=3, stdev=0.1):
    """Non-periodic, roughly spherical FCC Cu cluster of exactly ``n`` atoms."""
    from ase import Atoms
    rep = int(np.ceil((n / 4 * 6 / np.pi) ** (1 / 3))) + 2
    at = fcc_atoms(rep, seed, stdev=0.0)
    pos = at.positions - at.positions.mean(axis=0)
    order = np.argsort(np.einsum("ij,ij->i", pos, pos), kind="stable")[:n]
    rng = np.random.default_rng(seed)
    pos = pos[order] + rng.normal(0.0, stdev, (n, 3))
    return Atoms(f"Cu{n}", positions=pos, pbc=False)


def ours_descriptors():
    try:
        from quests_hpc import get_descriptors
    except ImportError:
        return None
    return get_descriptors


# ----------------------------------------------------------------------------- child


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn, repeat):
    """Median wall time over ``repeat`` calls; CPU seconds (all threads) of each call go
    to ``_timed.cpu`` (a busy machine stretches wall time, much less CPU time)."""
    times, cpu = [], []
    out = None
    for _ in range(repeat):
        c = _cpu_s()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(_cpu_s() - c)
    _timed.cpu = [round(v, 3) for v in cpu]
    return float(np.median(times)), [round(v, 3) for v in times], out


def child(spec):
    """Run one (case, impl) in this process; print one JSON line."""
    import numba
    numba.set_num_threads(spec["threads"])
    impl, case, repeat = spec["impl"], spec["case"], spec["repeat"]
    if impl in ("ours", "old", "f32"):
        import quests_hpc.information as qi
        from quests_hpc import threads as qthreads
        qthreads.set_num_threads(spec["threads"])
    else:
        import quests.entropy as qe
        from quests.descriptor import get_descriptors as up_desc
    res = {}
    if case in ("desc", "cluster"):
        atoms = (fcc_atoms(spec["rep"], 1) if case == "desc" else cluster_atoms(spec["n"]))
        fn = up_desc if impl == "upstream" else ours_descriptors()
        fn([fcc_atoms(2, 9)] if case == "desc" else [cluster_atoms(200)])  # compile / load
        base = _rss_mb()
        t, ts, out = _timed(lambda: fn([atoms], k=32, cutoff=5.0), repeat)
        res.update(size=len(atoms))
    elif case in ("dh", "novel"):
        y = np.load(spec["y"])
        x = np.load(spec["x"])
        f = qe.delta_entropy if impl == "upstream" else qi.delta_entropy
        if impl == "f32":
            f = functools.partial(qi.delta_entropy, precision="float32")
        f(y[:50], x[:50], H)
        base = _rss_mb()
        with np.errstate(divide="ignore"):
            t, ts, out = _timed(lambda: f(y, x, H), repeat)
        res.update(size=f"{len(y)} x {len(x)}", flops=2.0 * len(y) * len(x) * y.shape[1])
    elif case == "entropy":
        x = np.load(spec["x"])
        f = qe.entropy if impl == "upstream" else qi.entropy
        if impl == "f32":
            f = functools.partial(qi.entropy, precision="float32")
        f(x[:50], H)
        base = _rss_mb()
        t, ts, out = _timed(lambda: np.atleast_1d(f(x, H)), repeat)
        res.update(size=len(x), flops=1.0 * len(x) * len(x) * x.shape[1])
    elif case == "binary":
        t, ts, out, base, more = _binary_case(spec, impl, repeat)
        res.update(more)
    else:
        raise SystemExit(f"unknown case {case}")
    np.save(spec["out"], np.asarray(out))
    res.update(time=t, times=ts, cpu=_timed.cpu, peak_mb=_rss_mb(), base_mb=base)
    print("RESULT " + json.dumps(res), flush=True)


def run_child(spec, threads):
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "QUESTS_HPC_NUM_THREADS"):
        env[var] = str(threads)
    spec = dict(spec, threads=threads)
    if spec["impl"] == "old":
        env["PYTHONPATH"] = spec["tree"]  # its quests_hpc first
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                       env=env, capture_output=True, text=True, check=False)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    sys.stderr.write(p.stdout[-2000:] + p.stderr[-4000:])
    return None


# ----------------------------------------------------------------------------- matmul


def matmul_rate(threads, n_test, n_ref, repeat=5):
    """GFLOP/s of float64 and float32 products measured now: the kernel sums' block shape
    on one thread, and the whole product of case c's shape (``y @ x.T``, 2 n_y n_x d
    flops) on 1 and ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    out = {}
    for dtype in ("float64", "float32"):
        shapes = {f"{dtype} block 128x63 @ 63x1024, 1 thread": (128, 1024, 1)}
        for t in sorted({1, threads}):
            shapes[f"{dtype} whole product, {t} thread(s)"] = (n_test, n_ref, t)
        for label, (m, n, nthr) in shapes.items():
            a, b = rng.random((m, 63)).astype(dtype), rng.random((n, 63)).astype(dtype)
            c = np.empty((m, n), dtype=dtype)
            with threadpool_limits(limits=nthr, user_api="blas"):
                out[label] = _gflops(lambda: np.matmul(a, b.T, out=c), m, n, repeat)
            del c
    ordered = ordered_block_rate(rng, repeat)
    if ordered:
        out["float32 block, in-order FMA (row_products), 1 thread"] = ordered
    return out


def _gflops(product, m, n, repeat):
    """GFLOP/s of ``product()``, an ``m x 63 @ 63 x n`` product: the median over ``repeat``
    timings of enough back-to-back calls for ~4 GFLOP, after one warm-up call."""
    product()
    inner = max(1, int(4e9 / (2 * m * n * 63)))
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            product()
        ts.append((time.perf_counter() - t0) / inner)
    return 2.0 * m * n * 63 / float(np.median(ts)) / 1e9


def ordered_block_rate(rng, repeat):
    """GFLOP/s of this tree's float32 in-order products (``row_products``, what the float32
    kernel sums multiply with) on the block shape, one thread; None without them."""
    try:
        from quests_hpc._ordered_products import aligned_empty, aligned_transpose, row_products
    except ImportError:
        return None
    y = rng.random((128, 63)).astype(np.float32)
    xt = aligned_transpose(rng.random((1024, 63)).astype(np.float32))
    g = aligned_empty((128, 1024), np.float32)
    return _gflops(lambda: row_products(y, xt, 0, g), 128, 1024, repeat)


# ----------------------------------------------------------------------------- main


def fmt(v, spec="{:.2f}"):
    return "-" if v is None else spec.format(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", action="append",
                    choices=["a", "b", "c", "d", "e", "f", "g", "desc", "cluster", "dh",
                             "entropy", "matmul", "novel", "binary"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--upstream-full-cluster", action="store_true",
                    help="run upstream on the full-size cluster too (O(N^2) memory)")
    ap.add_argument("--old", metavar="TREE", help="also run a checkout of another commit "
                    "(the same calls; the speed-up over it is printed)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))

    alias = dict(a="desc", b="cluster", c="dh", d="entropy", e="matmul", f="novel", g="binary")
    only = {alias.get(c, c) for c in (args.only or alias.values())}
    P = QUICK if args.quick else FULL
    nt = args.threads
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench_core_")
    get_desc = ours_descriptors()
    print(f"# bench_core: threads={nt} repeat={args.repeat} quick={args.quick} "
          f"python={sys.version.split()[0]} numpy={np.__version__}", flush=True)

    def impls(spec, f32=False):
        """The implementations a case runs: upstream, ours (+ f32) (+ old)."""
        out = dict(upstream=spec, ours=spec)
        if f32:
            out["f32"] = spec
        if args.old:
            out["old"] = dict(spec, tree=os.path.abspath(args.old))
        return out

    def compare(name, size, threads, specs, note=""):
        r = {}
        for impl, spec in specs.items():
            spec = dict(spec, impl=impl, repeat=args.repeat,
                        out=os.path.join(tmp, f"{name}_{impl}_{threads}.npy"))
            r[impl] = run_child(spec, threads)
        diff = None
        if r.get("ours") and r.get("upstream"):
            a = np.load(os.path.join(tmp, f"{name}_ours_{threads}.npy"))
            b = np.load(os.path.join(tmp, f"{name}_upstream_{threads}.npy"))
            if a.shape != b.shape:
                b = b.T
            # dH > 700 means S < 1e-304: upstream's plain sum is subnormal (few digits) or 0
            fin = np.isfinite(b) & ((b < 700) if name.startswith(("c", "f")) else True)
            diff = float(np.max(np.abs(a[fin] - b[fin]))) if a.shape == b.shape else None
        extra = {}
        for impl in ("f32", "old"):
            if r.get(impl) and r.get("ours"):
                a = np.load(os.path.join(tmp, f"{name}_ours_{threads}.npy"))
                b = np.load(os.path.join(tmp, f"{name}_{impl}_{threads}.npy"))
                extra[impl] = float(np.max(np.abs(a - b)))
        rows.append(dict(name=name, size=size, threads=threads, note=note, r=r, diff=diff,
                         extra=extra))
        u, o = r.get("upstream"), r.get("ours")
        print(f"  done {name} threads={threads}: upstream {fmt(u and u['time'])} s, "
              f"ours {fmt(o and o['time'])} s", flush=True)

    if "desc" in only:
        if get_desc is None:
            print("SKIP a (descriptors): quests_hpc.get_descriptors is not importable yet")
        else:
            spec = dict(case="desc", rep=P["fcc_rep"])
            for t in sorted({1, nt}):
                compare("a descriptors FCC", 4 * P["fcc_rep"] ** 3, t, impls(spec))
    if "cluster" in only:
        if get_desc is None:
            print("SKIP b (cluster): quests_hpc.get_descriptors is not importable yet")
        else:
            n_up = P["cluster_n"] if args.upstream_full_cluster else P["cluster_up_n"]
            ours = dict(case="cluster", n=P["cluster_n"])
            up = dict(case="cluster", n=n_up)
            r_up = run_child(dict(up, impl="upstream", repeat=1,
                                  out=os.path.join(tmp, "cl_up.npy")), nt)
            r_o = run_child(dict(ours, impl="ours", repeat=args.repeat,
                                 out=os.path.join(tmp, "cl_o.npy")), nt)
            r_os = run_child(dict(up, impl="ours", repeat=args.repeat,
                                  out=os.path.join(tmp, "cl_os.npy")), nt)
            diff = None
            if r_up and r_os:
                diff = float(np.abs(np.load(os.path.join(tmp, "cl_up.npy"))
                                    - np.load(os.path.join(tmp, "cl_os.npy"))).max())
            rows.append(dict(name="b cluster (same N)", size=n_up, threads=nt,
                             r=dict(upstream=r_up, ours=r_os), diff=diff, note=""))
            note = "" if n_up == P["cluster_n"] else f"upstream at N={n_up} (O(N^2))"
            rows.append(dict(name="b cluster", size=P["cluster_n"], threads=nt,
                             r=dict(upstream=r_up, ours=r_o), diff=None, note=note))
            print(f"  done cluster: upstream {fmt(r_up and r_up['time'])} s (N={n_up}), ours "
                  f"{fmt(r_o and r_o['time'])} s (N={P['cluster_n']})", flush=True)
    if only & {"dh", "entropy", "novel"}:
        t0 = time.perf_counter()
        if get_desc is None:
            from quests.descriptor import get_descriptors as get_desc
        rep_t = int(np.ceil((P["n_test"] / 4) ** (1 / 3)))
        rep_r = int(np.ceil((P["n_ref"] / 4) ** (1 / 3)))
        y = get_desc([fcc_atoms(rep_t, 11)])[:P["n_test"]]
        x = get_desc([fcc_atoms(rep_r, 12)])[:P["n_ref"]]
        np.save(os.path.join(tmp, "y.npy"), y)
        np.save(os.path.join(tmp, "x.npy"), x)
        np.save(os.path.join(tmp, "xe.npy"), y[:P["n_ent"]])
        if "novel" in only:
            from ase import Atoms
            n = P["n_test"]
            side = (n / (4 / 3.61**3)) ** (1 / 3)
            gas = Atoms(f"Cu{n}", positions=np.random.default_rng(13).random((n, 3)) * side,
                        cell=[side] * 3, pbc=True)
            np.save(os.path.join(tmp, "yb.npy"), get_desc([gas]))
        print(f"  inputs: FCC descriptors {y.shape} and {x.shape} "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
        if "dh" in only:
            spec = dict(case="dh", y=os.path.join(tmp, "y.npy"), x=os.path.join(tmp, "x.npy"))
            for t in sorted({1, nt}):
                compare("c dH", f"{len(y)} x {len(x)}", t, impls(spec, f32=True))
        if "entropy" in only:
            spec = dict(case="entropy", x=os.path.join(tmp, "xe.npy"))
            compare("d H", P["n_ent"], nt, impls(spec, f32=True))
        if "novel" in only:
            spec = dict(case="novel", y=os.path.join(tmp, "yb.npy"),
                        x=os.path.join(tmp, "x.npy"))
            compare("f dH gas vs FCC", f"{len(y)} x {len(x)}", nt, impls(spec, f32=True),
                    note="max|diff| over rows with upstream dH < 700")
    if "binary" in only:
        binary_rows(rows, P, nt, args.repeat, tmp)
    rates = matmul_rate(nt, P["n_test"], P["n_ref"]) if "matmul" in only else {}
    bounds = {}
    if only & {"dh", "novel"}:
        from quests_hpc.information import float32_error_bound
        for name, f in (("c dH", "y.npy"), ("f dH gas vs FCC", "yb.npy")):
            if os.path.exists(os.path.join(tmp, f)):
                bounds[name] = float(float32_error_bound(np.load(os.path.join(tmp, f)), x,
                                                         H).min())

    report(rows, rates, bounds, nt)


def binary_rows(rows, P, nt, repeat, tmp):
    """Case g: upstream and ours, descriptors alone and descriptors + dH, one child each."""
    spec = dict(case="binary", rep=P["b2_test"], ref=P["b2_ref"], repeat=repeat)
    r, out = {}, {}
    for impl in ("upstream", "ours"):
        out[impl] = os.path.join(tmp, f"g_{impl}.npy")
        r[impl] = run_child(dict(spec, impl=impl, out=out[impl]), nt)
    if not (r["upstream"] and r["ours"]):
        print("  g binary: a child failed", flush=True)
        return
    d_desc = float(np.abs(np.load(out["ours"] + ".desc.npy")
                          - np.load(out["upstream"] + ".desc.npy")).max())
    d_dh = float(np.abs(np.load(out["ours"]) - np.load(out["upstream"])).max())
    size = r["ours"]["size"]
    for name, key, diff in (("g binary descriptors", "desc_time", d_desc),
                            ("g binary desc + dH", None, d_dh)):
        rr = {impl: dict(v, time=v[key] if key else v["time"]) for impl, v in r.items()}
        rows.append(dict(name=name, size=size, threads=nt, r=rr, diff=diff,
                         note="target: up/ours >= 5 (issue 13)"))
    print(f"  done g binary: upstream desc {r['upstream']['desc_time']:.2f} s + dH "
          f"{r['upstream']['dh_time']:.2f} s, ours desc {r['ours']['desc_time']:.2f} s + dH "
          f"{r['ours']['dh_time']:.2f} s", flush=True)


def report(rows, rates, bounds, nt):
    """The table of every case and implementation, then the matmul fractions."""
    print()
    hdr = (f"{'case':22s} {'size':>16s} {'thr':>3s} {'upstream s':>10s} {'ours s':>8s} "
           f"{'up/ours':>7s} {'old s':>7s} {'old/ours':>8s} {'f32 s':>7s} {'ours/f32':>8s} "
           f"{'peak MB up/ours':>15s} {'max|diff|':>9s}  note")
    print(hdr)
    print("-" * len(hdr))
    for row in rows:
        r = row["r"]
        u, o, od, f = (r.get(k) for k in ("upstream", "ours", "old", "f32"))

        def ratio(a, b):
            return fmt(a["time"] / b["time"], "{:.2f}x") if a and b else "-"
        peaks = "/".join(fmt(v and v["peak_mb"], "{:.0f}") for v in (u, o))
        print(f"{row['name']:22s} {row['size']!s:>16s} {row['threads']:>3d} "
              f"{fmt(u and u['time']):>10s} {fmt(o and o['time']):>8s} {ratio(u, o):>7s} "
              f"{fmt(od and od['time']):>7s} {ratio(od, o):>8s} {fmt(f and f['time']):>7s} "
              f"{ratio(o, f):>8s} {peaks:>15s} {fmt(row['diff'], '{:.1e}'):>9s}  {row['note']}")
        for impl, d in row.get("extra", {}).items():
            note = (f" (float32 bound, smallest over rows: {bounds[row['name']]:.1e})"
                    if impl == "f32" and row["name"] in bounds else "")
            print(f"{'':22s}   max|{impl} - ours| = {d:.2e}{note}")
    print("(times: median of --repeat runs after a warm-up call; peak MB: ru_maxrss of the "
          "child process; max|diff|: ours against upstream)")
    if rates:
        matmul_fractions(rows, rates, nt)
    for row in rows:
        for impl, v in row["r"].items():
            if v:
                print(f"  raw {row['name']} {impl} t={row['threads']}: wall {v['times']} s, "
                      f"cpu {v['cpu']} s")


def matmul_fractions(rows, rates, nt):
    """Each dH / H row's distance-product rate against the same-run matmul rates."""
    print()
    for k, v in rates.items():
        print(f"e matmul {k:52s} {v:7.1f} GFLOP/s")
    for row in rows:
        for impl, dtype in (("ours", "float64"), ("f32", "float32"), ("old", "float64")):
            o = row["r"].get(impl)
            if not (o and "flops" in o):
                continue
            t = row["threads"]
            rate = o["flops"] / o["time"] / 1e9
            whole = rates.get(f"{dtype} whole product, {t} thread(s)")
            block = rates[f"{dtype} block 128x63 @ 63x1024, 1 thread"] * t
            print(f"e {row['name']:6s} {impl:4s} t={t}: {rate:6.1f} GFLOP/s (distance product) = "
                  + (f"{100 * rate / whole:.0f}% of the same-shape {dtype} product on {t} "
                     f"thread(s), " if whole else "")
                  + f"{100 * rate / block:.0f}% of {t} x the 1-thread {dtype} block product")
    print("(the whole product: y @ x.T of case c's shape, as a user would compute it; the "
          "block product: the shape the kernel sums multiply, in cache)")


if __name__ == "__main__":
    main()
