"""Kernel sums of multi-element descriptors by zero-block groups equal the dense sums."""

import numpy as np
import pytest
from alloys import b2_antisites

from quests_hpc import _block_groups as G
from quests_hpc.information import float32_error_bound, log_kernel_sum
from quests_hpc.multicomponent import get_descriptors_multicomponent

K = 8


def alloy(reps, seed, swap=6, lone=False):
    """Rattled B2 NiAl with antisites; ``lone`` adds an Al far from other Al atoms (an
    empty own block: a third row pattern)."""
    atoms = b2_antisites(reps, np.random.default_rng(seed), swap)
    if lone:
        atoms.set_chemical_symbols(["Ni"] * len(atoms))
        atoms.symbols[0] = "Al"
        atoms.symbols[1] = "Cu"
    atoms.rattle(0.1, seed=seed)
    return get_descriptors_multicomponent(atoms, k=K, cutoff=4.0,
                                          species=["Al", "Cu", "Ni"] if lone else None)


@pytest.fixture(scope="module")
def binary():
    return alloy((5, 5, 5), 1), alloy((4, 4, 4), 2)


@pytest.mark.parametrize("h", [0.015, [0.015, 0.3], 2.0])
def test_grouped_sums_equal_the_dense_sums(binary, h):
    y, x = binary
    dense = log_kernel_sum(y, x, h)
    grouped = log_kernel_sum(y, x, h, blocks=(K, 3))
    np.testing.assert_allclose(grouped, dense, rtol=1e-12, atol=1e-12)


def test_three_species_and_an_empty_own_block():
    y, x = alloy((4, 4, 4), 3, lone=True), alloy((3, 3, 3), 4, swap=4)
    w2 = 3 * K + 2 * (K - 1)
    x = np.concatenate([x[:, :2 * K], np.zeros((len(x), K)), x[:, 2 * K:w2], np.zeros((len(x),
                        K - 1)), x[:, w2:]], axis=1)  # x on the Al, Cu, Ni layout (no Cu)
    pats = G.patterns(y, G.block_index(K, 4))
    assert set(pats.tolist()) == {0, 4}  # the lone Al and Cu (empty own blocks), the Ni rows
    assert set(G.patterns(x, G.block_index(K, 4)).tolist()) == {1, 4}
    for h in (0.015, 0.5):
        np.testing.assert_allclose(log_kernel_sum(y, x, h, blocks=(K, 4)), log_kernel_sum(y, x, h),
                                   rtol=1e-12, atol=1e-12)


def test_a_row_does_not_depend_on_the_rows_called_with_it(binary):
    y, x = binary
    whole = log_kernel_sum(y, x, [0.015, 0.3], blocks=(K, 3))
    rng = np.random.default_rng(0)
    for part in np.array_split(rng.permutation(len(y)), 7):
        np.testing.assert_array_equal(log_kernel_sum(y[part], x, [0.015, 0.3], blocks=(K, 3)),
                                      whole[:, part])


def test_negligible_groups_are_skipped_at_small_bandwidth(binary, monkeypatch):
    y, x = binary
    pairs = []
    real = G.compact_pair
    monkeypatch.setattr(G, "compact_pair",
                        lambda yy, xx, b, p, q: pairs.append((len(yy), p, q)) or real(yy, xx, b,
                                                                                     p, q))
    log_kernel_sum(y, x, 0.015, blocks=(K, 3))
    assert {(p, q) for _, p, q in pairs} == {(1, 1), (2, 2)}  # cross-species: skipped
    pairs.clear()
    log_kernel_sum(y, x, 2.0, blocks=(K, 3))
    assert {(p, q) for _, p, q in pairs} == {(1, 1), (2, 2), (1, 2), (2, 1)}


def test_truncation_and_float32(binary):
    y, x = binary
    a, na = log_kernel_sum(y, x, 0.3, d_max=0.5, return_dropped=True)
    b, nb = log_kernel_sum(y, x, 0.3, d_max=0.5, return_dropped=True, blocks=(K, 3))
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(nb, na)
    f32 = log_kernel_sum(y, x, 0.3, precision="float32", blocks=(K, 3))
    assert (np.abs(f32 - log_kernel_sum(y, x, 0.3)) <= float32_error_bound(y, x, 0.3)).all()
