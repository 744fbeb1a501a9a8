"""Small generations of displaced FCC Cu for the ``generations`` tests, and the upstream
oracle of their report (``quests.entropy.entropy / diversity / delta_entropy`` on
upstream's descriptors)."""

import ase.io
import numpy as np
from ase.build import bulk

A_CU = 3.61
HS = [0.015, 0.05]


def structures(n, noise, seed, rep=(2, 2, 2)):
    """``n`` FCC Cu supercells, each displaced by ``noise`` A (seeded)."""
    out = []
    for i in range(n):
        at = bulk("Cu", "fcc", a=A_CU, cubic=True) * rep
        at.rattle(noise, seed=seed + i)
        out.append(at)
    return out


def write_extxyz(path, atoms):
    ase.io.write(str(path), atoms, format="extxyz", parallel=False)  # ASE must not bcast
    return str(path)


def write_dump(path, atoms):
    """A LAMMPS ``dump custom id type x y z`` (orthogonal boxes), one frame per structure,
    ids in reversed order (the reader sorts them)."""
    with open(path, "w") as f:
        for t, at in enumerate(atoms):
            box = np.diag(at.cell[:])
            pos = at.get_positions(wrap=True)
            f.write(f"ITEM: TIMESTEP\n{t}\nITEM: NUMBER OF ATOMS\n{len(at)}\n"
                    "ITEM: BOX BOUNDS pp pp pp\n")
            for b in box:
                f.write(f"0.0 {b:.12f}\n")
            f.write("ITEM: ATOMS id type x y z\n")
            for i in range(len(at) - 1, -1, -1):
                f.write(f"{i + 1} 1 {pos[i, 0]:.12f} {pos[i, 1]:.12f} {pos[i, 2]:.12f}\n")
    return str(path)


def default_generations():
    """Three generations: gentle, warmer and hot displacements (the last has 2 structures,
    for a glob of two files)."""
    return [structures(3, 0.05, 0), structures(3, 0.10, 10), structures(2, 0.20, 20)]


def upstream_blocks(gens, ours=False):
    """Upstream's descriptors of every generation (a list of ``Atoms`` each); ``ours``:
    this package's (they differ from upstream's by ~1e-12, which H at h = 0.015 amplifies
    by ~1/h^2)."""
    if ours:
        from quests_hpc.descriptors import get_descriptors
    else:
        from quests.descriptor import get_descriptors

    return [get_descriptors(g, k=32, cutoff=5.0) for g in gens]


def read_back(paths):
    """The structures of every generation as written to ``paths`` (files or globs), read
    with the package's reader (positions as stored, not as generated)."""
    import glob

    from quests_hpc.io.reference import read_structures

    out = []
    for p in paths:
        files = sorted(glob.glob(p)) if "*" in p else [p]
        kw = {"index": ":"} if p.endswith(".lammpstrj") else {"parallel": False}
        out.append([fr.to_ase() for f in files for fr in read_structures(f, **kw)])
    return out


def upstream_report(blocks, hs=HS, threshold=0.0):
    """Per generation and bandwidth: H, D, novel fraction, mean dH, H and D of the union."""
    from quests.entropy import delta_entropy, diversity, entropy

    rows = []
    for g, x in enumerate(blocks):
        u = np.concatenate(blocks[:g + 1])
        row = {"n": len(x), "union_n": len(u), "entropy": [], "diversity": [],
               "novelty": [], "dh_mean": [], "n_novel": [], "union_entropy": [],
               "union_diversity": []}
        for h in hs:
            row["entropy"].append(entropy(x, h))
            row["diversity"].append(diversity(x, h))
            row["union_entropy"].append(entropy(u, h))
            row["union_diversity"].append(diversity(u, h))
            if g:
                dh = delta_entropy(x, np.concatenate(blocks[:g]), h=h)
                assert np.min(np.abs(dh - threshold)) > 1e-8  # no count hangs on rounding
                row["n_novel"].append(int((dh > threshold).sum()))
                row["novelty"].append(float(np.mean(dh > threshold)))
                row["dh_mean"].append(float(dh.mean()))
            else:
                row["n_novel"].append(-1)
                row["novelty"].append(np.nan)
                row["dh_mean"].append(np.nan)
        rows.append({k: np.array(v) if isinstance(v, list) else v for k, v in row.items()})
    return rows


def assert_rows_equal(rows, ref, atol):
    """Our :class:`GenerationRow` list against ``upstream_report`` (or another row list)."""
    assert len(rows) == len(ref)
    for r, e in zip(rows, ref):
        e = e if isinstance(e, dict) else vars(e)
        assert r.n_environments == e.get("n", e.get("n_environments"))
        assert r.union_environments == e.get("union_n", e.get("union_environments"))
        np.testing.assert_array_equal(r.n_novel, e["n_novel"])
        for c in ("entropy", "diversity", "novelty", "dh_mean", "union_entropy",
                  "union_diversity"):
            np.testing.assert_allclose(r.__dict__[c], e[c], rtol=0, atol=atol, err_msg=c)
