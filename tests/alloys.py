"""Multi-element test structures (``tests/`` is on ``sys.path``, see conftest)."""

import numpy as np
from ase.build import bulk


def b2_antisites(reps, rng, swap):
    """B2 NiAl (a = 2.88 A) repeated ``reps`` with ``swap`` Ni-Al antisite pairs drawn by
    ``rng``: a partly disordered crystal (not yet rattled)."""
    atoms = bulk("NiAl", "cesiumchloride", a=2.88).repeat(reps)
    sym = np.array(atoms.get_chemical_symbols())
    ni, al = np.flatnonzero(sym == "Ni"), np.flatnonzero(sym == "Al")
    a, b = rng.choice(ni, swap, replace=False), rng.choice(al, swap, replace=False)
    sym[a], sym[b] = "Al", "Ni"
    atoms.set_chemical_symbols(list(sym))
    return atoms
