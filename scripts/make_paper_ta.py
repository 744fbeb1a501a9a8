#!/usr/bin/env python
"""Write the paper's headline workload: a displaced BCC Ta dump and a thermal Ta reference.

The paper (Schwalbe-Koda et al. 2025) computes dH of a 32.5-million-atom Ta snapshot
against 4,224 training environments.  This script writes the same kind of input:

* ``DUMP``: a LAMMPS ``dump custom id type x y z`` frame of a ``cells^3``-cell BCC Ta
  crystal (a = 3.30 A, 0.1 A Gaussian displacements, fully periodic).  The default
  ``--cells 253`` gives 2 * 253^3 = 32,388,554 atoms, about 1.45 GB of text;
  ``--cells 126`` gives the 4,000,752-atom frame of ``scripts/bench_pipeline.py``.
  Atoms are written in id order in chunks of 2^20, so memory stays ~100 MB.
* ``REF``: an extended-XYZ file of a different, "thermal" Ta cell: 11 x 12 x 16 BCC
  cells = 4,224 atoms, a = 3.32 A, 0.15 A displacements (4,224 environments).

The frame is the one :func:`bench_pipeline.bcc_share` generates (same seed: the same
atoms), so dumps and in-memory benchmarks agree.

Usage::

    .venv/bin/python scripts/make_paper_ta.py /tmp/ta32m.lammpstrj /tmp/ta_ref.xyz
    .venv/bin/python scripts/make_paper_ta.py --cells 126 /tmp/ta4m.lammpstrj /tmp/ta_ref.xyz
    .venv/bin/mpiexec -n 2 .venv/bin/quests-hpc dh /tmp/ta32m.lammpstrj \
        --reference /tmp/ta_ref.xyz -o /tmp/ta32m_dh.h5
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_pipeline import A_TA, bcc_share  # noqa: E402

REF_CELLS = (11, 12, 16)
REF_A = 3.32
REF_NOISE = 0.15


def write_dump(path, cells, seed=1, chunk=1 << 20):
    """Write the ``cells^3`` displaced BCC frame as one LAMMPS dump; returns atom count.

    Never replaces a file: an existing ``path`` (or another run's ``path.partial``) is
    refused with :class:`FileExistsError`; the dump is written aside and renamed."""
    total = 2 * cells ** 3
    length = cells * A_TA
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; refusing to replace it")
    tmp = path + ".partial"
    with open(tmp, "x") as f:
        f.write(f"ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n{total}\n")
        f.write("ITEM: BOX BOUNDS pp pp pp\n" + f"0 {length!r}\n" * 3)
        f.write("ITEM: ATOMS id type x y z\n")
        for lo in range(0, total, chunk):
            ids, pos, _ = bcc_share(cells, lo, min(total, lo + chunk), seed)
            np.savetxt(f, np.column_stack([ids, np.ones(len(ids)), pos]),
                       fmt="%d %d %.10g %.10g %.10g")
    os.link(tmp, path)  # fails if path appeared meanwhile: never replaces it
    os.unlink(tmp)
    return total


def write_reference(path, seed=7):
    """Write the 4,224-atom thermal Ta cell as extended XYZ; returns atom count."""
    from ase import Atoms
    from ase.io import write

    g = np.stack(np.meshgrid(*[np.arange(m) for m in REF_CELLS], indexing="ij"), -1)
    g = g.reshape(-1, 3)
    pos = (g[:, None, :] + np.array([[0, 0, 0], [0.5, 0.5, 0.5]])[None]).reshape(-1, 3) * REF_A
    pos += np.random.default_rng(seed).normal(0.0, REF_NOISE, pos.shape)
    atoms = Atoms("Ta" * len(pos), positions=pos, cell=np.diag(np.array(REF_CELLS) * REF_A),
                  pbc=True)
    atoms.wrap()
    write(path, atoms, format="extxyz")
    return len(atoms)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", help="output LAMMPS dump")
    ap.add_argument("reference", help="output extended-XYZ reference")
    ap.add_argument("--cells", type=int, default=253, help="BCC cells per edge (default 253)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    for p in (args.dump, args.reference):
        if os.path.exists(p):
            sys.exit(f"make_paper_ta: {p} exists; refusing to replace it")
    t = time.perf_counter()
    n = write_dump(args.dump, args.cells, args.seed)
    print(f"{args.dump}: {n:,} atoms, {os.path.getsize(args.dump) / 1e9:.2f} GB "
          f"({time.perf_counter() - t:.0f} s)")
    m = write_reference(args.reference)
    print(f"{args.reference}: {m:,} atoms (environments)")


if __name__ == "__main__":
    main()
