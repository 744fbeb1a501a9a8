"""Test frames for the MPI pipeline (every rank builds the same frame from a seed).

Randomly displaced crystals only: perfect crystals make descriptors depend on how ties
between equal distances are broken.  Each builder returns a dict with ``positions``,
``cell``, ``pbc``, ``ids`` (LAMMPS-style, from 1) and, where the test needs them, ``dims``
and ``balance``.
"""

import numpy as np

A_TA = 3.30


def bcc(n, a=A_TA):
    """Positions of an ``n[0] x n[1] x n[2]`` BCC supercell (perfect; callers displace)."""
    g = np.stack(np.meshgrid(*[np.arange(m) for m in n], indexing="ij"), -1).reshape(-1, 3)
    basis = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    return ((g[:, None, :] + basis[None]).reshape(-1, 3)) * a


def _frame(positions, cell, pbc, seed, noise=0.1, wrap=True, **extra):
    rng = np.random.default_rng(seed)
    pos = positions + rng.normal(0.0, noise, positions.shape)
    cell = np.asarray(cell, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if wrap and pbc.any():  # positions inside the cell, as a LAMMPS dump has them
        frac = pos @ np.linalg.inv(cell)
        frac[:, pbc] -= np.floor(frac[:, pbc])
        pos = frac @ cell
    ids = np.arange(1, len(pos) + 1, dtype=np.int64)
    return dict(positions=pos, cell=cell, pbc=pbc, ids=ids, **extra)


def orthogonal(seed=11):
    """BCC Ta 6x6x6 (432 atoms), fully periodic, orthogonal cell."""
    return _frame(bcc((6, 6, 6)), np.eye(3) * 6 * A_TA, True, seed)


def triclinic(seed=12, left_handed=False):
    """A sheared cell (all off-diagonal terms non-zero) of a displaced lattice, 343 atoms."""
    cell = np.array([[20.0, 0.0, 0.0], [6.0, 19.0, 0.0], [-5.0, 4.0, 18.0]])
    if left_handed:
        cell = cell[[1, 0, 2]]
    g = np.stack(np.meshgrid(*[np.arange(7)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return _frame((g + 0.25) / 7.0 @ cell, cell, True, seed)


def slab(seed=13):
    """BCC Ta slab, pbc = (p, p, f): 6x6x4 cells, vacuum above and below."""
    pos = bcc((6, 6, 4)) + [0.0, 0.0, 8.0]
    cell = np.diag([6 * A_TA, 6 * A_TA, 4 * A_TA + 16.0])
    return _frame(pos, cell, (True, True, False), seed)


def narrow(seed=14, size=4):
    """Cell 6.6 A wide along x (< 2 r_c), cut into ``size`` subdomains along x only."""
    return _frame(bcc((2, 6, 6)), np.diag([2 * A_TA, 6 * A_TA, 6 * A_TA]), True, seed,
                  dims=(size, 1, 1))


def clustered(seed=15, balance="uniform"):
    """A 4x4x4 BCC cluster in one corner of a 40 A periodic cell, plus a sparse gas."""
    rng = np.random.default_rng(seed + 100)
    dense = bcc((4, 4, 4)) + 0.5
    gas = rng.uniform(16.0, 40.0, (60, 3))
    return _frame(np.concatenate([dense, gas]), np.eye(3) * 40.0, True, seed,
                  balance=balance)


def cluster_nonperiodic(seed=16):
    """A free BCC cluster, no periodicity (cell all zeros, as ASE has it)."""
    return _frame(bcc((4, 4, 3)), np.zeros((3, 3)), False, seed)


def reference_descriptors(k=32, cutoff=5.0, seed=21):
    """Reference: descriptors of a differently displaced (thermalised-like) BCC Ta cell."""
    from quests_hpc.descriptors import descriptors_from_arrays

    f = _frame(bcc((3, 3, 3), a=3.32), np.eye(3) * 3 * 3.32, True, seed, noise=0.12)
    return descriptors_from_arrays(f["positions"], f["cell"], f["pbc"], k, cutoff)


def split_for_rank(frame, rank, size, seed=0):
    """This rank's share of the frame: a random (shuffled) subset, like any reader split."""
    perm = np.random.default_rng(seed).permutation(len(frame["ids"]))
    mine = np.array_split(perm, size)[rank]
    return frame["ids"][mine], frame["positions"][mine]
