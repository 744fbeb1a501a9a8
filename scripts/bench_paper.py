#!/usr/bin/env python
"""The paper's workload end to end: ``mpiexec -n P quests-hpc dh`` on a LAMMPS dump.

Runs the product's command (the same frame pipeline every command uses) on a dump and a
reference written by ``scripts/make_paper_ta.py``, and reports for each run its wall time,
the peak resident memory of every rank (``/usr/bin/time``), that peak against the memory
target of issue 10 (512 MiB + 250 bytes per owned atom), and the stage table the command
prints.  With ``--old TREE`` (a checkout of an earlier commit, e.g. ``git worktree add
/tmp/old <commit>``) the same command runs on that code too, side by side in one
invocation, and the ratios old / new are printed.  Runs go one after the other, never
together.

Usage::

    .venv/bin/python scripts/make_paper_ta.py --cells 126 /tmp/ta4m.lammpstrj /tmp/ta_ref.xyz
    .venv/bin/python scripts/bench_paper.py /tmp/ta4m.lammpstrj /tmp/ta_ref.xyz --old /tmp/old
    .venv/bin/python scripts/bench_paper.py /tmp/ta32m.lammpstrj /tmp/ta_ref.xyz   # 32.4 M
    .venv/bin/python scripts/bench_paper.py /tmp/ta32m.lammpstrj /tmp/ta_ref.xyz --precision float64 float32
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MIB = 1 << 20
TARGET_BASE = 512 * MIB
TARGET_PER_ATOM = 250


def natoms_of(dump):
    """Atoms of the dump's first frame (its header)."""
    with open(dump, "rb") as f:
        head = f.read(4096).decode("ascii", "replace").split("\n")
    return int(head[head.index("ITEM: NUMBER OF ATOMS") + 1])


def run(tree, dump, ref, ranks, out_dir, label, timeout, precision="float64"):
    """One ``quests-hpc dh`` run on the code in ``tree``; returns its figures."""
    venv_bin = os.path.dirname(sys.executable)
    mpiexec = os.path.join(venv_bin, "mpiexec")
    out = os.path.join(out_dir, f"{label}.h5")
    cmd = ["timeout", str(timeout), mpiexec, "-n", str(ranks), "/usr/bin/time", "-f",
           "BENCH-RSS %M", sys.executable, "-m", "quests_hpc.cli", "dh", dump, "--reference",
           ref, "-o", out, "--progress", "lines"]
    if precision != "float64":
        cmd += ["--precision", precision]
    env = dict(os.environ, PYTHONPATH=tree, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out_dir)
    wall = time.perf_counter() - t0
    text = p.stdout + p.stderr
    with open(os.path.join(out_dir, f"{label}.log"), "w") as f:  # the whole output, kept
        f.write(text)
    if p.returncode != 0:
        sys.stderr.write(text[-4000:])
        raise SystemExit(f"{label}: exit status {p.returncode}")
    rss = [int(v) * 1024 for v in re.findall(r"BENCH-RSS (\d+)", text)]
    table = text[text.find("Stage times"):text.find("atoms per rank")] if "Stage times" in text \
        else text[text.find("stage "):]
    return {"label": label, "wall": wall, "rss": rss, "table": table.rstrip(),
            "command": " ".join(cmd[2:])}


def report(res, n_atoms, ranks):
    owned = n_atoms / ranks
    limit = TARGET_BASE + TARGET_PER_ATOM * owned
    print(f"\n== {res['label']}: {res['command']}")
    if len(res["rss"]) != ranks:  # the launcher lost a rank's /usr/bin/time line
        print(f"wall {res['wall']:.1f} s; peak RSS lines of {len(res['rss'])} of {ranks} "
              "ranks came back: see the stage table's peak column")
        res["rss"] = res["rss"] or [0]
    print(f"wall {res['wall']:.1f} s;  peak RSS per rank: "
          + ", ".join(f"{r / MIB:.0f} MiB" for r in res["rss"])
          + f";  target 512 MiB + 250 B x {owned:,.0f} atoms = {limit / MIB:.0f} MiB per rank"
          + f" -> {'within' if max(res['rss']) <= limit else 'OVER'}")
    over = [(r - TARGET_BASE) / owned for r in res["rss"]]
    print("bytes per owned atom above 512 MiB: " + ", ".join(f"{b:.0f}" for b in over)
          + f";  whole peak per owned atom: {max(res['rss']) / owned:.0f} B")
    print(res["table"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump")
    ap.add_argument("reference")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--old", metavar="TREE", help="also run the code of this checkout")
    ap.add_argument("--out-dir", default=None, help="directory for the results (a new "
                    "temporary directory by default)")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--precision", nargs="+", default=["float64"],
                    choices=["float64", "float32"], help="run this tree once per precision")
    args = ap.parse_args(argv)
    dump, ref = os.path.abspath(args.dump), os.path.abspath(args.reference)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="bench_paper_")
    os.makedirs(out_dir, exist_ok=True)
    n = natoms_of(dump)
    print(f"dump {dump}: {n:,} atoms, {os.path.getsize(dump) / 1e9:.2f} GB; reference {ref}; "
          f"{args.ranks} ranks; results in {out_dir}")
    runs = []
    if args.old:
        runs.append(run(os.path.abspath(args.old), dump, ref, args.ranks, out_dir, "old",
                        args.timeout))
        report(runs[-1], n, args.ranks)
    for prec in args.precision:
        label = "new" if prec == "float64" else f"new-{prec}"
        runs.append(run(REPO, dump, ref, args.ranks, out_dir, label, args.timeout, prec))
        report(runs[-1], n, args.ranks)
    if args.old:
        old, new = runs[:2]
        print(f"\nold / new: wall {old['wall'] / new['wall']:.2f}x, peak RSS per rank "
              f"{max(old['rss']) / max(new['rss']):.2f}x")


if __name__ == "__main__":
    main()
