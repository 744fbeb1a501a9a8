"""Write the small bundled example of `quests-hpc example` into quests_hpc/data/.

reference: 500-atom FCC Cu (a = 3.61 A) with 0.08 A Gaussian displacements (about the
           thermal amplitude of Cu near 400 K).
test:      a 4x4x6 FCC Cu slab with periodic x, y and vacuum along z (pbc = T T F),
           one vacancy and one interstitial, with the same displacement amplitude: bulk
           atoms are covered by the reference (dH <= 0), surface and defect atoms are not.

This is a synthetic stand-in; the LAMMPS-made Cu example replaces it (issue 6).
Run:  .venv/bin/python scripts/make_example_data.py
"""

from pathlib import Path

import numpy as np
from ase.build import bulk, fcc100
from ase.io import write

out = Path(__file__).resolve().parents[1] / "quests_hpc" / "data"
out.mkdir(exist_ok=True)
rng = np.random.default_rng(2026)

ref = bulk("Cu", "fcc", a=3.61, cubic=True) * (5, 5, 5)
ref.positions += rng.normal(0, 0.08, ref.positions.shape)
write(out / "cu_fcc_reference.xyz", ref, format="extxyz")

slab = fcc100("Cu", size=(4, 4, 10), a=3.61, vacuum=6.0, periodic=False)
slab.pbc = (True, True, False)
del slab[72]  # a vacancy inside the slab
slab.append("Cu")
slab.positions[-1] = slab.positions[88] + [0.9, 0.9, 0.0]  # a crowded interstitial
slab.positions += rng.normal(0, 0.08, slab.positions.shape)
write(out / "cu_slab_test.xyz", slab, format="extxyz")
print(f"wrote {out}/cu_fcc_reference.xyz ({len(ref)} atoms), cu_slab_test.xyz ({len(slab)} atoms)")
