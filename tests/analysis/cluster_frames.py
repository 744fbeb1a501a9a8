"""Small test frames for the cluster analysis (every rank builds the same from a seed)."""

import numpy as np

TRICLINIC = np.array([[15.0, 0.0, 0.0], [3.0, 14.0, 0.0], [-2.0, 1.5, 13.0]])


def random_frame(n=600, seed=1, cell=TRICLINIC, pbc=(True, True, True)):
    """Random points in a cell, shuffled ids (multiples of 3), normal dH."""
    rng = np.random.default_rng(seed)
    cell = np.asarray(cell, dtype=float)
    pos = rng.random((n, 3)) @ cell
    ids = rng.permutation(np.arange(1, n + 1) * 3).astype(np.int64)
    dh = rng.normal(size=n)
    return dict(ids=ids, positions=pos, dh=dh, cell=cell, pbc=np.asarray(pbc, dtype=bool))


def split(frame, rank, size, seed=7):
    """An arbitrary (non-spatial) split of the frame over ranks: random owner per atom."""
    owner = np.random.default_rng(seed).integers(0, size, len(frame["ids"]))
    sel = owner == rank
    return frame["ids"][sel], frame["positions"][sel], frame["dh"][sel], sel
