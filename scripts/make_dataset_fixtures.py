#!/usr/bin/env python3
"""Produce the small data-set fixtures in tests/data/dataset/ with real LAMMPS.

``cu_frames_small.lammpstrj`` and ``cu_frames_small.extxyz``: 63 frames of 32 Cu atoms
(2 x 2 x 2 FCC cells, Mishin EAM) from :mod:`make_cu_frames` -- 9 frames from each of its
7 segments (300, 600, 900, 1200, 1500 K solid, 2000 K liquid, 600 K with 3 % uniaxial
strain), one frame every 50 MD steps (100 fs), so the frames differ in entropy.  The
extxyz holds the same frames (via ASE) with ``info`` = frame, segment, temperature,
strain_x, timestep.  MANIFEST.json records the files, the LAMMPS version, the segments
with their frame ranges and the options.  Both readers are checked on the result:
``quests_hpc.io.lammps_dump.LammpsDump`` and ASE's ``lammps-dump-text`` give the same
frames as the extxyz.

Needs LAMMPS (see :mod:`make_cu_frames`: ``/work/venv-lammps/bin/lmp`` by default)::

    .venv/bin/python scripts/make_dataset_fixtures.py
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_cu_frames import SEGMENTS, make_frames  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "dataset")
OPTIONS = dict(frames=9 * len(SEGMENTS), atoms=32, every=50, equil=2500, seed=2024)


def check_readers(dump, extxyz, frames, atoms):
    """LammpsDump, ASE's dump reader and the extxyz agree on every frame (positions, cell)."""
    import ase.io
    from quests_hpc.io.lammps_dump import LammpsDump

    with LammpsDump(dump) as d:
        ours = [d.read(i) for i in range(len(d))]
    theirs = ase.io.read(dump, ":", format="lammps-dump-text")
    xyz = ase.io.read(extxyz, ":")
    assert len(ours) == len(theirs) == len(xyz) == frames, (len(ours), len(theirs), len(xyz))
    for f, a, x in zip(ours, theirs, xyz):
        assert f.natoms == len(a) == len(x) == atoms
        assert np.allclose(f.cell, a.cell.array) and np.allclose(x.cell.array, a.cell.array)
        # LAMMPS writes atoms that left the box since the last re-neighbouring as they
        # are; our reader wraps them into the box, ASE does not: equal up to a lattice vector
        frac = np.linalg.solve(a.cell.array.T, (f.positions - a.positions).T).T
        assert np.allclose(frac, np.round(frac), atol=1e-9)
        assert np.allclose(x.positions, a.positions, atol=1e-9)
        assert set(a.get_chemical_symbols()) == {"Cu"} and list(f.elements) == ["Cu"] * atoms


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lmp", help="LAMMPS executable (default /work/venv-lammps/bin/lmp)")
    ap.add_argument("--potentials", help="directory with Cu_mishin1.eam.alloy")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    dump = os.path.join(a.out, "cu_frames_small.lammpstrj")
    extxyz = os.path.join(a.out, "cu_frames_small.extxyz")
    meta = make_frames(dump, lmp=a.lmp, potentials=a.potentials, extxyz=extxyz, jobs=2,
                       **OPTIONS)
    check_readers(dump, extxyz, OPTIONS["frames"], OPTIONS["atoms"])
    for seg in meta["segments"]:
        seg.pop("seconds")
    meta.pop("seconds_lammps")
    manifest = dict(
        generator="scripts/make_dataset_fixtures.py (calls scripts/make_cu_frames.py)",
        lammps=meta.pop("lammps"), potential=meta.pop("potential"),
        files={
            "cu_frames_small.lammpstrj": "LAMMPS text dump written by LAMMPS: "
            f"{OPTIONS['frames']} frames x {OPTIONS['atoms']} Cu atoms, id type element x y z, "
            "orthogonal periodic box varying per frame (NPT); each frame a structure",
            "cu_frames_small.extxyz": "the same frames via ASE, info: frame, segment, "
            "temperature, strain_x, timestep",
        },
        sizes_bytes={os.path.basename(p): os.path.getsize(p) for p in (dump, extxyz)},
        options=OPTIONS, run=meta)
    with open(os.path.join(a.out, "MANIFEST.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    print(f"wrote {dump} ({os.path.getsize(dump) / 1e3:.0f} kB), {extxyz} "
          f"({os.path.getsize(extxyz) / 1e3:.0f} kB), MANIFEST.json; readers agree")


if __name__ == "__main__":
    main()
