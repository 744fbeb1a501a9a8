"""Dump reader against ASE, frame by frame, on dumps written by LAMMPS (tests/data/lammps)."""

import warnings

import ase.io
import numpy as np
import pytest
from iohelpers import assert_matches_ase, data

from quests_hpc.io import Frame, LammpsDump, iread_lammps_dump, read_lammps_dump

ASE_CASES = [
    # (file, scaled coordinates)
    ("cu_unsorted.lammpstrj", False),
    ("cu_unsorted.lammpstrj.gz", False),
    ("cu_sorted_17g.lammpstrj", False),
    ("cu_atom.lammpstrj", True),
    ("cu_unwrapped.lammpstrj", False),
    ("cu_xsu.lammpstrj", True),
    ("cu_element.lammpstrj", False),
    ("cu_thresh.lammpstrj", False),
    ("tri_restricted.lammpstrj", False),
    ("tri_restricted_atom.lammpstrj", True),
    ("tri_general.lammpstrj", False),
    ("tri_general_scaled.lammpstrj", True),
    ("slab_ppf.lammpstrj", False),
    ("cluster_fsfm.lammpstrj", False),
]


@pytest.mark.parametrize("name,scaled", ASE_CASES)
def test_frames_match_ase(name, scaled):
    path = data(name)
    ours = read_lammps_dump(path, "all")
    theirs = ase.io.read(path, index=":", format="lammps-dump-text")
    assert len(ours) == len(theirs) > 1
    for f, a in zip(ours, theirs):
        assert isinstance(f, Frame)
        assert f.timestep == a.info["timestep"]
        assert f.natoms == len(a) == len(f.ids)
        assert f.positions.dtype == np.float64 and f.positions.flags.c_contiguous
        assert_matches_ase(f, a, scaled=scaled)


def test_wrapping_moves_atoms_outside_and_keeps_the_rest():
    path = data("cu_unsorted.lammpstrj")
    theirs = ase.io.read(path, index=":", format="lammps-dump-text")
    moved = [assert_matches_ase(f, a) for f, a in zip(read_lammps_dump(path, ":"), theirs)]
    assert sum(moved) > 0  # the hot run leaves atoms outside the box between re-neighbourings
    raw = read_lammps_dump(path, ":", wrap=False)
    for f, a in zip(raw, theirs):
        assert np.array_equal(f.positions, a.positions)


def test_box_styles_and_boundaries():
    assert read_lammps_dump(data("cu_unsorted.lammpstrj")).box_style == "orthogonal"
    tri = read_lammps_dump(data("tri_restricted.lammpstrj"))
    assert tri.box_style == "restricted"
    # change_box xy 2.0 xz -1.5 yz 1.0 on a 14.46 A cube
    np.testing.assert_allclose(tri.cell, [[14.46, 0, 0], [2.0, 14.46, 0], [-1.5, 1.0, 14.46]],
                               atol=1e-12)
    gen = read_lammps_dump(data("tri_general.lammpstrj"))
    assert gen.box_style == "general"
    np.testing.assert_allclose(gen.cell, 3.615 * 5 * np.array([[.5, .5, 0], [0, .5, .5], [.5, 0, .5]]),
                               atol=1e-12)
    slab = read_lammps_dump(data("slab_ppf.lammpstrj"))
    assert slab.boundary == ("pp", "pp", "ff") and slab.pbc.tolist() == [True, True, False]
    cl = read_lammps_dump(data("cluster_fsfm.lammpstrj"))
    assert cl.boundary == ("ff", "ss", "fm") and not cl.pbc.any()


def test_coordinate_styles_agree():
    """x, xs, xu and xsu dumps of the same run give the same wrapped positions."""
    x = read_lammps_dump(data("cu_unsorted.lammpstrj"), ":")
    for name in ("cu_atom.lammpstrj", "cu_unwrapped.lammpstrj", "cu_xsu.lammpstrj"):
        other = read_lammps_dump(data(name), ":")
        for a, b in zip(x, other):
            assert np.array_equal(a.ids, b.ids)
            d = (a.positions - b.positions) @ np.linalg.inv(a.cell)
            d -= np.round(d)  # an atom on the boundary may wrap to either side
            assert np.abs(d @ a.cell).max() < 2e-4  # %g keeps 6 significant digits


def test_preference_x_over_xs():
    f = read_lammps_dump(data("tri_restricted.lammpstrj"), columns=["xs", "ys", "zs"])
    assert f.columns == ("id", "type", "x", "y", "z", "xs", "ys", "zs")
    s = np.stack([f.arrays[c] for c in ("xs", "ys", "zs")], axis=1)
    d = (f.positions - f.origin) @ np.linalg.inv(f.cell) - s
    d -= np.round(d)
    assert np.abs(d).max() < 1e-5


def test_unsorted_and_sorted_dumps_agree():
    a = read_lammps_dump(data("cu_unsorted.lammpstrj"), ":")
    b = read_lammps_dump(data("cu_sorted_17g.lammpstrj"), ":", columns=["vx", "c_pe"])
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.ids, np.arange(1, 257)) and np.array_equal(fa.ids, fb.ids)
        assert np.array_equal(fa.types, fb.types)
        d = (fa.positions - fb.positions) @ np.linalg.inv(fa.cell)
        d -= np.round(d)
        assert np.abs(d).max() < 1e-5
        assert fb.arrays["vx"].shape == (256,) and fb.arrays["c_pe"].shape == (256,)


def test_extra_columns_exact():
    """17-digit floats are converted exactly (bitwise equal to Python's float)."""
    path = data("cu_sorted_17g.lammpstrj")
    f = read_lammps_dump(path, 0, columns="all")
    assert set(f.arrays) == {"vx", "vy", "vz", "c_pe"}
    with open(path) as fh:
        lines = fh.read().split("ITEM: ATOMS")[1].splitlines()[1:257]
    ref = np.array([[float(t) for t in ln.split()] for ln in lines])
    ref = ref[np.argsort(ref[:, 0])]
    for j, c in enumerate(("vx", "vy", "vz", "c_pe")):
        assert np.array_equal(f.arrays[c], ref[:, 5 + j])
    assert np.array_equal(read_lammps_dump(path, 0, wrap=False).positions, ref[:, 2:5])


def test_types_elements_and_type_map():
    e = read_lammps_dump(data("cu_element.lammpstrj"), -1)
    t = read_lammps_dump(data("cu_unsorted.lammpstrj"), -1, type_map="Cu Ag")
    assert e.types is None and set(e.elements) == {"Cu", "Ag"}
    assert np.array_equal(e.elements, t.elements)
    assert np.array_equal(t.symbols(), e.symbols())
    assert np.array_equal(read_lammps_dump(data("cu_unsorted.lammpstrj"), -1,
                                           type_map={1: "Cu", 2: "Ag"}).elements, t.elements)
    a = t.to_ase()
    assert a.get_chemical_symbols() == list(t.elements)
    assert np.array_equal(a.arrays["id"], t.ids)


def test_compressed_equal_plain():
    plain = read_lammps_dump(data("cu_unsorted.lammpstrj"), ":")
    for suffix in (".gz", ".bz2", ".zst"):
        comp = read_lammps_dump(data("cu_unsorted.lammpstrj" + suffix), ":")
        assert len(comp) == len(plain)
        for a, b in zip(plain, comp):
            assert a.timestep == b.timestep and a.time == b.time and b.units == "metal"
            assert np.array_equal(a.ids, b.ids) and np.array_equal(a.positions, b.positions)


def test_multi_file_sequence():
    seq = read_lammps_dump(data("seq") + "/dump.*.lammpstrj", "all")
    plain = read_lammps_dump(data("cu_unsorted.lammpstrj"), "all")
    assert [f.timestep for f in seq] == [0, 50, 100, 150, 200]  # natural order, not 0, 100, ...
    for a, b in zip(plain, seq):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.types, b.types)
    assert seq[2].source.endswith("dump.100.lammpstrj")


def test_changing_atom_count_and_sparse_ids():
    path = data("cu_thresh.lammpstrj")
    frames = read_lammps_dump(path, ":")
    counts = [f.natoms for f in frames]
    assert len(set(counts)) > 1
    for f in frames:
        assert np.all(np.diff(f.ids) > 0) and f.ids[-1] - f.ids[0] + 1 > f.natoms


def test_selection_forms():
    path = data("cu_unsorted.lammpstrj")
    ts = [f.timestep for f in read_lammps_dump(path, "all")]
    assert ts == [0, 50, 100, 150, 200]
    assert read_lammps_dump(path).timestep == 200
    assert read_lammps_dump(path, -2).timestep == 150
    assert [f.timestep for f in read_lammps_dump(path, "0:5:2")] == [0, 100, 200]
    assert [f.timestep for f in read_lammps_dump(path, "3,1")] == [150, 50]
    assert [f.timestep for f in read_lammps_dump(path, "t=50:150")] == [50, 100, 150]
    assert read_lammps_dump(path, "t=100").timestep == 100
    assert [f.timestep for f in read_lammps_dump(path, "0:200:100", by="timestep")] == [0, 100, 200]
    assert [f.timestep for f in iread_lammps_dump(path, slice(None, None, -2))] == [200, 100, 0]


def test_lammps_dump_object():
    with LammpsDump(data("cu_unsorted.lammpstrj")) as d:
        assert len(d) == 5 and list(d.timesteps) == [0, 50, 100, 150, 200]
        assert list(d.natoms) == [256] * 5
        f = d.read(1)
        assert f.index == 1 and f.first == 0 and f.time == pytest.approx(0.1)
        assert set(d.timings) >= {"parse", "ownership", "total"}
        assert [g.timestep for g in d] == [0, 50, 100, 150, 200]


def test_small_chunks_give_the_same_frame():
    path = data("cu_sorted_17g.lammpstrj")
    a = read_lammps_dump(path, ":", columns="all")
    b = read_lammps_dump(path, ":", columns="all", chunk_bytes=97)
    for x, y in zip(a, b):
        assert np.array_equal(x.positions, y.positions)
        for k in x.arrays:
            assert np.array_equal(x.arrays[k], y.arrays[k])


def test_no_warning_on_clean_files():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_lammps_dump(data("cu_unsorted.lammpstrj"), ":")


def test_shuffled_lines_read_in_file_order(tmp_path):
    """Scattered ids are not placed while parsing (random stores); same frame either way."""
    text = open(data("cu_sorted_17g.lammpstrj")).read()
    frames = text.split("ITEM: TIMESTEP")[1:]
    head, body = frames[0].split("ITEM: ATOMS", 1)
    cols, *rows = body.rstrip("\n").split("\n")
    order = np.random.default_rng(1).permutation(len(rows))
    path = tmp_path / "shuffled.lammpstrj"
    path.write_text("ITEM: TIMESTEP" + head + "ITEM: ATOMS" + cols + "\n"
                    + "\n".join(rows[i] for i in order) + "\n")
    with LammpsDump(str(path)) as d:
        f = d.read(0)
        assert not d.timings["placed"]
    with LammpsDump(data("cu_sorted_17g.lammpstrj")) as d:
        g = d.read(0)
        assert d.timings["placed"]
    assert np.array_equal(f.ids, g.ids) and np.array_equal(f.positions, g.positions)
