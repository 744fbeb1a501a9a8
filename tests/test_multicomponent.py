"""Multi-element descriptors against upstream's multicomponent function and a brute force."""

import numpy as np
import pytest
from ase.build import bulk
from quests.descriptor import get_descriptors_multicomponent as upstream_multicomponent
from reference_impl import brute_force_multicomponent

import quests_hpc
from quests_hpc.descriptors import descriptors_from_arrays
from quests_hpc.errors import QuestsInputError
from quests_hpc.multicomponent import SpeciesEnvironments, multicomponent_from_arrays
from quests_hpc.species import descriptor_width, layout_text, species_codes, species_list


def b2_nial(reps=3, stdev=0.08, seed=1):
    atoms = bulk("NiAl", "cesiumchloride", a=2.88).repeat((reps,) * 3)
    atoms.rattle(stdev, seed=seed)
    return atoms


def ternary(seed=2):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(atoms))
    atoms.symbols[pick[:30]] = "Ni"
    atoms.symbols[pick[30:50]] = "Al"
    atoms.rattle(0.1, seed=seed)
    return atoms


@pytest.mark.parametrize("make", [b2_nial, ternary], ids=["binary_b2", "ternary_fcc"])
@pytest.mark.parametrize("k", [4, 32])
def test_equals_upstream_on_periodic_cells(make, k):
    atoms = make()
    ref = upstream_multicomponent([atoms], k=k, cutoff=5.0)
    got = quests_hpc.get_descriptors_multicomponent([atoms], k=k, cutoff=5.0)
    n = len(set(atoms.get_chemical_symbols()))
    assert got.shape == ref.shape == (len(atoms), (2 * k - 1) * (n + 1))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    # the species blocks are not trivially zero: every atom has its own species' block
    assert np.count_nonzero(got[:, k:2 * k]) > 0


def test_split_x1_x2_equals_upstream_and_several_frames_stack():
    frames = [b2_nial(seed=3), b2_nial(seed=4)]
    r1, r2 = upstream_multicomponent(frames, k=6, cutoff=4.5, concat=False)
    g1, g2 = quests_hpc.get_descriptors_multicomponent(frames, k=6, cutoff=4.5, concat=False)
    assert g1.shape == (108, 18) and g2.shape == (108, 15)
    np.testing.assert_allclose(g1, r1, rtol=0, atol=1e-10)
    np.testing.assert_allclose(g2, r2, rtol=0, atol=1e-10)


def test_one_species_is_the_plain_descriptor():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=5)
    got = quests_hpc.get_descriptors_multicomponent(atoms, k=8)
    np.testing.assert_array_equal(got, descriptors_from_arrays(atoms.positions, atoms.cell.array,
                                                               True, k=8))


def test_a_species_absent_from_a_frame_gives_zero_blocks():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=6)
    got = quests_hpc.get_descriptors_multicomponent(atoms, k=4, species=["Ni", "Cu"])
    ref = upstream_multicomponent([atoms], k=4, species=["Ni", "Cu"])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    assert not got[:, 8:12].any()  # X1_Ni: no Ni atom


def test_slab_against_brute_force():
    atoms = b2_nial(reps=3, seed=7)
    bulk_cell = atoms.cell.array.copy()
    atoms.pbc = (True, True, False)
    atoms.cell[2] *= 3  # vacuum: irrelevant along a non-periodic axis
    got = multicomponent_from_arrays(atoms.positions, atoms.get_chemical_symbols(), ["Ni", "Al"],
                                     atoms.cell.array, atoms.pbc, k=10, cutoff=4.5)
    ref = brute_force_multicomponent(atoms.positions, atoms.get_chemical_symbols(),
                                     atoms.cell.array, atoms.pbc, k=10, cutoff=4.5)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert not np.allclose(got, multicomponent_from_arrays(
        atoms.positions, atoms.get_chemical_symbols(), ["Ni", "Al"], bulk_cell, True,
        k=10, cutoff=4.5))  # the surfaces are seen


def test_nonperiodic_cluster_against_brute_force():
    atoms = ternary(seed=8)[:60]
    atoms.pbc = False
    got = quests_hpc.get_descriptors_multicomponent(atoms, k=12, cutoff=5.0)
    ref = brute_force_multicomponent(atoms.positions, atoms.get_chemical_symbols(),
                                     np.zeros((3, 3)), False, k=12, cutoff=5.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_left_handed_narrow_cell_against_brute_force():
    atoms = bulk("NiAl", "cesiumchloride", a=2.88).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=9)
    cell = atoms.cell.array[[1, 0, 2]]  # left-handed and far narrower than 2 r_c
    assert np.linalg.det(cell) < 0
    got = multicomponent_from_arrays(atoms.positions, atoms.get_chemical_symbols(), ["Al", "Ni"],
                                     cell, True, k=16, cutoff=5.0)
    ref = brute_force_multicomponent(atoms.positions, atoms.get_chemical_symbols(), cell, True,
                                     k=16, cutoff=5.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_chunks_give_the_same_bits_as_all():
    atoms = ternary(seed=10)
    species = species_list(atoms.get_chemical_symbols())
    codes = species_codes(atoms.get_chemical_symbols(), species)
    from quests_hpc.descriptors import point_cloud

    pts, n, src = point_cloud(atoms.positions, atoms.cell.array, True, 5.0)
    env = SpeciesEnvironments(pts, n, codes[src], len(species), k=8, cutoff=5.0, labels=src)
    whole = env.all()
    assert whole.shape == (n, descriptor_width(8, species))
    pieced = np.full_like(whole, np.nan)
    for c in range(env.n_chunks(7)):
        rows, d = env.chunk(c, 7)
        pieced[rows] = d
    np.testing.assert_array_equal(pieced, whole)


def test_species_bookkeeping():
    assert species_list("Ni, Al Ni") == ("Al", "Ni")
    assert descriptor_width(32, ("Al", "Ni")) == 63 * 3 and descriptor_width(32, ("Cu",)) == 63
    assert layout_text(4, ("Al", "Ni")) == "X1[4] x [all,Al,Ni], X2[3] x [all,Al,Ni]"
    np.testing.assert_array_equal(species_codes(["Ni", "Al", "Ni"], ("Al", "Ni")), [1, 0, 1])


def test_bad_species_are_refused_by_name():
    with pytest.raises(QuestsInputError, match=r"unknown element\(s\) \['Qq'\]"):
        species_list(["Ni", "Qq"])
    with pytest.raises(QuestsInputError, match=r"element\(s\) \['O'\] not in the species list"):
        species_codes(["Ni", "O"], ("Al", "Ni"), "f.xyz")
    atoms = b2_nial(reps=2)
    with pytest.raises(QuestsInputError, match=r"frame 0: element\(s\) \['Al'\] not in"):
        quests_hpc.get_descriptors_multicomponent(atoms, k=4, species=["Ni", "Cu"])


def test_same_bits_on_one_and_two_threads():
    from quests_hpc.threads import get_num_threads, set_num_threads

    atoms = ternary(seed=11)
    before = get_num_threads()
    try:
        set_num_threads(1)
        one = quests_hpc.get_descriptors_multicomponent(atoms, k=16)
        set_num_threads(2)
        two = quests_hpc.get_descriptors_multicomponent(atoms, k=16)
    finally:
        set_num_threads(before)
    np.testing.assert_array_equal(one, two)
