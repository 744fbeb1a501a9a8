"""Reference sets: structures in ASE formats and dumps; descriptor HDF5 files."""

import os

import ase.io
import h5py
import numpy as np
import pytest
from iohelpers import data

from quests_hpc.errors import QuestsInputError
from quests_hpc.io.reference import (descriptor_info, is_descriptor_file, is_lammps_dump,
                                     load_reference, read_descriptors, read_structures,
                                     write_descriptors)


def test_extxyz_with_per_frame_cell_and_pbc():
    frames = read_structures(data("reference_mixed.extxyz"))
    atoms = ase.io.read(data("reference_mixed.extxyz"), ":")
    assert [f.pbc.tolist() for f in frames] == [a.pbc.tolist() for a in atoms]
    assert frames[1].pbc.tolist() == [True, True, False]
    for f, a in zip(frames, atoms):
        np.testing.assert_array_equal(f.cell, a.cell[:])
        assert list(f.elements) == a.get_chemical_symbols()
        d = (f.positions - a.positions) @ np.linalg.inv(f.cell)
        np.testing.assert_allclose(d, np.round(d), atol=1e-12)


def test_lammps_data_poscar_and_dump():
    dat = read_structures(data("cu_bulk.data"), type_map="Cu Ag")[0]
    assert dat.natoms == 256 and set(dat.elements) == {"Cu", "Ag"}
    assert np.array_equal(dat.types, read_lammps_dump_types())
    pos = read_structures(data("reference_POSCAR"))[0]
    assert pos.natoms == 256 and pos.pbc.all()
    dumps = read_structures(data("cu_unsorted.lammpstrj.gz"), "0,2", type_map="Cu Ag")
    assert [f.timestep for f in dumps] == [0, 100] and dumps[0].elements[0] == "Cu"
    assert is_lammps_dump(data("cu_unsorted.lammpstrj.gz")) and not is_lammps_dump(data("cu_bulk.data"))


def read_lammps_dump_types():
    from quests_hpc.io import read_lammps_dump

    return read_lammps_dump(data("cu_unsorted.lammpstrj"), -1).types


def test_unreadable_structures(tmp_path):
    with pytest.raises(QuestsInputError, match="no such file"):
        read_structures(str(tmp_path / "missing.xyz"))
    bad = tmp_path / "bad.extxyz"
    bad.write_text("3\nnot a header\nH 0 0\n")
    with pytest.raises(QuestsInputError, match="bad.extxyz: cannot read"):
        read_structures(str(bad))


def test_descriptor_file_round_trip_and_checks(tmp_path):
    x = np.random.default_rng(0).random((50, 7))
    path = str(tmp_path / "ref.h5")
    write_descriptors(path, x, k=4, cutoff=4.5, structure=np.repeat([0, 1], 25),
                      species=["Cu"] * 50, sources=["a.xyz"])
    assert is_descriptor_file(path)
    info = descriptor_info(path)
    assert info["k"] == 4 and info["cutoff"] == 4.5 and info["shape"] == (50, 7)
    assert info["software"] == "quests-hpc" and info["sources"] == ["a.xyz"] and info["software_version"]
    y, inf = read_descriptors(path, k=4, cutoff=4.5)
    assert np.array_equal(x, y) and inf["species"][0] == "Cu" and inf["structure"][-1] == 1
    part, _ = read_descriptors(path, rows=slice(10, 20))
    assert np.array_equal(part, x[10:20])
    with pytest.raises(QuestsInputError, match="computed with k=4, cutoff=4.5; this run uses k=32"):
        read_descriptors(path, k=32, cutoff=4.5)
    with pytest.raises(QuestsInputError, match="this run uses cutoff=5.0"):
        read_descriptors(path, k=4, cutoff=5.0)
    with pytest.raises(QuestsInputError, match="exists"):
        write_descriptors(path, x, k=4, cutoff=4.5)
    with pytest.raises(QuestsInputError, match=r"shape \(n, 9\)"):
        write_descriptors(str(tmp_path / "x.h5"), x, k=5, cutoff=4.5)
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(QuestsInputError, match="not a quests-hpc descriptor file"):
        read_descriptors(str(tmp_path / "other.h5"))
    with pytest.raises(QuestsInputError, match="not an HDF5 descriptor file"):
        read_descriptors(data("cu_bulk.data"))


def test_load_reference_computes_once_and_reuses(tmp_path):
    from quests_hpc.descriptors import descriptors_from_arrays

    save = str(tmp_path / "ref.h5")
    x, info = load_reference(data("reference_mixed.extxyz"), k=8, cutoff=4.0, save=save)
    frames = read_structures(data("reference_mixed.extxyz"))
    ref = np.concatenate([descriptors_from_arrays(f.positions, f.cell, f.pbc, k=8, cutoff=4.0)
                          for f in frames])
    assert np.array_equal(x, ref) and x.shape == (669, 15)
    y, inf = load_reference(save, k=8, cutoff=4.0)
    assert np.array_equal(x, y) and inf["sources"] == [data("reference_mixed.extxyz")]
    with pytest.raises(QuestsInputError, match="recompute the reference"):
        load_reference(save, k=32, cutoff=4.0)


def test_descriptor_file_of_several_species_records_and_checks_them(tmp_path):
    from quests_hpc.multicomponent import get_descriptors_multicomponent

    nial = os.path.join(os.path.dirname(data("cu_bulk.data")), "nial", "b2_reference.extxyz")
    save = str(tmp_path / "nial.h5")
    x, info = load_reference(nial, k=8, cutoff=4.0, save=save, species=("Al", "Ni"))
    from ase.io import read

    want = get_descriptors_multicomponent(read(nial, ":"), k=8, cutoff=4.0)
    assert x.shape == (500, 45) and np.array_equal(x, want)
    y, inf = read_descriptors(save, k=8, cutoff=4.0, species=("Al", "Ni"))
    assert np.array_equal(x, y) and inf["species_list"] == ["Al", "Ni"]
    assert inf["descriptor_layout"] == "X1[8] x [all,Al,Ni], X2[7] x [all,Al,Ni]"
    for other, what in ((("Al", "Cu", "Ni"), r"this run uses species \['Al', 'Cu', 'Ni'\]"),
                        (None, r"this run uses one element \(plain descriptor\)")):
        with pytest.raises(QuestsInputError, match=r"nial\.h5: descriptors were computed for "
                                                   r"species \['Al', 'Ni'\]; " + what):
            read_descriptors(save, k=8, cutoff=4.0, species=other)
    with pytest.raises(QuestsInputError, match=r"structure 0: the input holds several "
                                               r"elements \['Al', 'Ni'\] but no species"):
        load_reference(nial, k=8, cutoff=4.0)
    with pytest.raises(QuestsInputError, match="exists"):  # never replaces a file
        load_reference(nial, k=8, cutoff=4.0, save=save, species=("Al", "Ni"))
