"""Slow, obviously-correct reference implementations used only by the tests.

Written straight from SPEC.md with plain NumPy: every periodic image in a generous box,
all pairwise distances, full sorts.  Quadratic, for structures of at most a few hundred
atoms.
"""

import itertools

import numpy as np


def brute_force_descriptors(positions, cell, pbc, k=32, cutoff=5.0):
    """Descriptors by enumerating every periodic image within reach (SPEC.md)."""
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    ranges = []
    for a in range(3):
        if pbc[a]:
            inv = np.linalg.inv(cell)
            width = 1.0 / np.linalg.norm(inv[:, a])
            # positions may be unwrapped by up to one cell: +2 covers that.
            ranges.append(range(-int(np.ceil(cutoff / width)) - 2, int(np.ceil(cutoff / width)) + 3))
        else:
            ranges.append(range(0, 1))
    shifts = np.array(list(itertools.product(*ranges)), dtype=float) @ cell
    n = len(positions)
    out = np.zeros((n, 2 * k - 1))
    for i in range(n):
        disp = (positions[None, :, :] + shifts[:, None, :] - positions[i]).reshape(-1, 3)
        d = np.linalg.norm(disp, axis=1)
        keep = (d <= cutoff) & (d > 0)
        disp, d = disp[keep], d[keep]
        order = np.argsort(d, kind="stable")[:k]
        disp, d = disp[order], d[order]
        w = (1 - (d / cutoff) ** 2) ** 2
        m = len(d)
        out[i, :m] = w / d
        mat = np.zeros((k, k))
        for j in range(m):
            for q in range(m):
                if j != q:
                    mat[j, q] = np.sqrt(w[j] * w[q]) / np.linalg.norm(disp[j] - disp[q])
        rows = -np.sort(-mat, axis=1)[:, :-1]
        out[i, k:] = rows.sum(axis=0) / k
    return out


def brute_force_log_kernel_sum(y, x, h):
    """log sum_j exp(-|y_i - x_j|^2 / (2 h^2)) with a max-shift log-sum-exp."""
    d2 = ((y[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    z = -d2 / (2 * h * h)
    zmax = z.max(axis=1, keepdims=True)
    return (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)))[:, 0]


def brute_force_multicomponent(positions, symbols, cell, pbc, k=32, cutoff=5.0):
    """SPEC.md "Several elements", block by block: the plain descriptor, then for each
    species (sorted) the descriptor of the sub-structure of that species, zero elsewhere;
    X1 blocks first, then X2 blocks."""
    positions = np.asarray(positions, dtype=float)
    symbols = np.asarray(symbols)
    species = sorted(set(symbols.tolist()))
    blocks = [brute_force_descriptors(positions, cell, pbc, k, cutoff)]
    if len(species) == 1:
        return blocks[0]
    for sp in species:
        mine = symbols == sp
        b = np.zeros((len(positions), 2 * k - 1))
        b[mine] = brute_force_descriptors(positions[mine], cell, pbc, k, cutoff)
        blocks.append(b)
    return np.concatenate([b[:, :k] for b in blocks] + [b[:, k:] for b in blocks], axis=1)
