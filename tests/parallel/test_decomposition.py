"""Serial checks of the grid and the halo rule (no MPI job needed).

The halo test simulates every rank of a grid in one process: each "rank" computes the
ghost copies of its atoms; then every rank must have received every periodic image of
every atom within r_c of any atom it owns (found by brute force).
"""

import itertools

import numpy as np
import pytest

from quests_hpc import geometry
from quests_hpc.errors import QuestsInputError

MPI = pytest.importorskip("mpi4py.MPI")


def _grid(cell, pbc, dims, positions, rng, staggered):
    from quests_hpc.parallel.decomposition import Grid

    pbc = geometry.as_pbc(pbc)
    full = geometry.complete_cell(cell, pbc)
    inv = np.linalg.inv(full)
    frac = positions @ inv
    d0, d1, d2 = dims
    lo = np.where(pbc, 0.0, frac.min(axis=0))
    hi = np.where(pbc, 1.0, frac.max(axis=0))

    def cuts(a, shape):
        n = dims[a]
        if not staggered:
            base = np.linspace(lo[a], hi[a], n + 1)
            return np.broadcast_to(base, shape + (n + 1,)).copy()
        inner = np.sort(rng.uniform(lo[a], hi[a], shape + (n - 1,)), axis=-1)
        lo_ = np.full(shape + (1,), lo[a])
        hi_ = np.full(shape + (1,), hi[a])
        return np.concatenate([lo_, inner, hi_], axis=-1)

    c = (cuts(0, ())[...], cuts(1, (d0,)), cuts(2, (d0, d1)))
    return Grid(cell=full, inv_cell=inv, pbc=pbc, dims=np.array(dims), cuts=c,
                widths=geometry.perpendicular_widths(full))


CASES = {
    "orthogonal_222": (np.eye(3) * 14.0, True, (2, 2, 2), 150),
    "narrow_x_4": (np.diag([6.0, 12.0, 12.0]), True, (4, 1, 1), 80),
    "very_narrow_x_3": (np.diag([3.1, 11.0, 11.0]), True, (3, 1, 1), 40),
    "triclinic_221": (np.array([[13.0, 0, 0], [5.0, 12.0, 0], [-4.0, 3.0, 12.0]]), True,
                      (2, 2, 1), 150),
    "left_handed_131": (np.array([[5.0, 12.0, 0], [13.0, 0, 0], [-4.0, 3.0, 12.0]]), True,
                        (1, 3, 1), 150),
    "slab_ppf_222": (np.diag([12.0, 12.0, 30.0]), (True, True, False), (2, 2, 2), 120),
    "cluster_fff_311": (np.zeros((3, 3)), False, (3, 1, 1), 100),
}


@pytest.mark.parametrize("staggered", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_neighbour_image_reaches_the_owner(name, staggered):
    from quests_hpc.parallel.halo import ghost_targets, shifted_positions

    cell, pbc, dims, n = CASES[name]
    cutoff = 5.0
    rng = np.random.default_rng(abs(hash((name, staggered))) % 2**32)
    pbc_a = geometry.as_pbc(pbc)
    full = geometry.complete_cell(cell, pbc_a)
    if pbc_a.all():
        pos = rng.random((n, 3)) @ full
    else:
        pos = rng.random((n, 3)) * np.where(pbc_a, 1.0, 18.0) @ full
    pos = geometry.wrap_positions(pos, full, pbc_a)
    grid = _grid(cell, pbc, dims, pos, rng, staggered)
    owner = grid.owner(grid.fractional(pos))
    size = int(np.prod(dims))
    # ghosts each rank receives: set of (atom, shift)
    received = {r: set() for r in range(size)}
    for r in range(size):
        mine = np.flatnonzero(owner == r)
        atom, dest, shift = ghost_targets(grid, grid.fractional(pos[mine]), r, cutoff)
        assert np.all(np.diff(dest) >= 0)
        img = shifted_positions(pos[mine], grid.cell, atom, shift)
        np.testing.assert_array_equal(img, pos[mine][atom] + shift @ grid.cell)
        for a, d, s in zip(mine[atom], dest, map(tuple, shift)):
            assert (a, s) not in received[d]  # no duplicate ghost
            received[d].add((int(a), s))
    # brute force: every image within cutoff of an owned atom must be there
    reach = [range(-3, 4) if p else range(0, 1) for p in pbc_a]
    for s in itertools.product(*reach):
        img = pos + np.array(s) @ full
        d = np.linalg.norm(pos[:, None, :] - img[None, :, :], axis=-1)
        for i, j in zip(*np.nonzero(d <= cutoff)):
            if s == (0, 0, 0) and owner[i] == owner[j]:
                continue  # owned atom, not a ghost
            assert (int(j), s) in received[int(owner[i])], (name, i, j, s)


def test_choose_dims():
    from quests_hpc.parallel.decomposition import choose_dims

    assert choose_dims(4, [10.0, 30.0, 20.0]).tolist() == [1, 2, 2]
    assert choose_dims(2, [10.0, 30.0, 20.0]).tolist() == [1, 2, 1]
    assert choose_dims(8, [1.0, 1.0, 1.0]).tolist() == [2, 2, 2]
    assert choose_dims(4, [1.0, 1.0, 1.0], dims=(4, 0, 0)).tolist() == [4, 1, 1]
    assert choose_dims(6, [5.0, 1.0, 1.0], dims=(0, 1, 0)).tolist() == [3, 1, 2]
    assert choose_dims(3, [5.0, 1.0, 1.0], dims=(1, 3, 1)).tolist() == [1, 3, 1]
    with pytest.raises(QuestsInputError, match="dims"):
        choose_dims(4, [1.0, 1.0, 1.0], dims=(3, 0, 0))
    with pytest.raises(QuestsInputError, match="dims"):
        choose_dims(4, [1.0, 1.0, 1.0], dims=(2, 1, 1))


def test_grid_on_one_rank_and_bad_balance():
    from quests_hpc.parallel.decomposition import build_grid

    rng = np.random.default_rng(0)
    pos = rng.random((50, 3)) * 10.0
    for balance in ("uniform", "atoms"):
        g = build_grid(MPI.COMM_SELF, pos, np.eye(3) * 10.0, True, balance=balance)
        assert g.dims.tolist() == [1, 1, 1]
        assert np.all(g.owner(g.fractional(pos)) == 0)
        lo, hi = g.bounds(0)
        assert lo.tolist() == [0, 0, 0] and hi.tolist() == [1, 1, 1]
    with pytest.raises(QuestsInputError, match="balance"):
        build_grid(MPI.COMM_SELF, pos, np.eye(3) * 10.0, True, balance="magic")
