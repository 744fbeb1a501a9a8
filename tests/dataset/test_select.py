"""``quests-hpc select`` serially: carving keeps the centre's descriptor, the choice equals a
brute-force greedy, bad input is refused with exit status 2.

Data: the real LAMMPS Cu dumps of tests/data/lammps (MANIFEST.json): a 14.46 A cubic cell
(256 atoms, 2400 K) and a restricted triclinic one; the dH results file is written in the
test by ``quests-hpc dh`` against the first frame of a dump of the same run.
"""

import shutil

import ase.io
import numpy as np
import pytest
from mpi4py import MPI
from select_reference import (DATA, brute_selection, brute_sphere, dump_frame, frame_descriptors,
                              results_frames)

from quests_hpc.cli import main
from quests_hpc.dataset import carve
from quests_hpc.dataset.select import select_environments
from quests_hpc.descriptors import descriptors_from_arrays

CU = DATA / "cu_unsorted.lammpstrj"
CU_REF = DATA / "cu_sorted_17g.lammpstrj"
TRI = DATA / "tri_restricted.lammpstrj"


def _dh(tmp, dump, ref, name, extra=()):
    out = tmp / name
    assert main(["dh", str(dump), "--reference", str(ref), "--reference-frames", "0",
                 "--frames", "1:", "-o", str(out), "--progress", "off", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def cu(tmp_path_factory):
    return _dh(tmp_path_factory.mktemp("cu"), CU, CU_REF, "cu.h5", ["--bandwidth", "0.015",
                                                                   "0.03"])


@pytest.fixture(scope="module")
def tri(tmp_path_factory):
    return _dh(tmp_path_factory.mktemp("tri"), TRI, TRI, "tri.h5")


def _centre_descriptors_kept(path, dump, timesteps):
    """Every carved structure's centre descriptor against the original frame's."""
    frames = {}
    worst = 0.0
    structures = ase.io.read(str(path), ":")
    for a in structures:
        assert a.arrays["quests_centre"][0] and a.arrays["quests_centre"].sum() == 1
        assert a.arrays["quests_id"][0] == a.info["quests_id"]
        ts = timesteps[a.info["quests_results_frame"]]
        if ts not in frames:
            frames[ts] = frame_descriptors(dump, ts)
        got = descriptors_from_arrays(a.positions, a.cell.array, a.pbc)[0]
        worst = max(worst, float(np.abs(got - frames[ts][int(a.info["quests_id"])]).max()))
    return structures, worst


def _timesteps(results):
    return {n: ts for n, ts, _, _ in results_frames(results)}


@pytest.mark.parametrize("radius", [5.0, 8.0])  # 8 A > half the 14.46 A cell: images
def test_cluster_keeps_the_centre_descriptor(cu, tmp_path, radius, capsys):
    out = tmp_path / "picks.extxyz"
    assert main(["select", str(cu), "--max", "6", "--radius", str(radius), "-o", str(out),
                 "--elements", "Cu", "Ag"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("time: total ") and "on 1 rank(s); peak memory " in last, last
    structures, worst = _centre_descriptors_kept(out, CU, _timesteps(cu))
    assert len(structures) == 6 and worst <= 1e-12
    assert not structures[0].pbc.any()
    assert set(structures[0].get_chemical_symbols()) <= {"Cu", "Ag"}
    if radius == 8.0:  # an atom seen through two images is two atoms of the cluster
        ids = structures[0].arrays["quests_id"]
        assert len(np.unique(ids)) < len(ids)


def test_triclinic_cluster_keeps_the_centre_descriptor(tri, tmp_path):
    out = tmp_path / "tri.extxyz"
    assert main(["select", str(tri), "--max", "4", "--radius", "7.5", "-o", str(out)]) == 0
    structures, worst = _centre_descriptors_kept(out, TRI, _timesteps(tri))
    assert len(structures) == 4 and worst <= 1e-12


@pytest.mark.parametrize("side", [10.5, 17.0])  # 17 A > the cell: several images
def test_box_keeps_the_centre_descriptor(cu, tmp_path, side):
    out = tmp_path / "box.extxyz"
    assert main(["select", str(cu), "--max", "4", "--box", str(side), "-o", str(out)]) == 0
    structures, worst = _centre_descriptors_kept(out, CU, _timesteps(cu))
    assert worst <= 1e-12
    for a in structures:
        assert a.pbc.all() and np.allclose(a.cell.array, np.eye(3) * side)
        assert ((a.positions >= 0) & (a.positions < side)).all()
        np.testing.assert_allclose(a.positions[0], [side / 2] * 3)


@pytest.mark.parametrize("dump, radius", [(CU, 8.0), (TRI, 9.0)])
def test_sphere_is_every_image_within_r(dump, radius):
    ids, pos, cell, pbc = dump_frame(dump, 50)
    for row in (0, 77, 200):
        rows, shifts, offsets = carve.sphere(pos, cell, pbc, pos[row], radius)
        got = sorted((int(ids[r]), tuple(int(v) for v in s)) for r, s in zip(rows, shifts))
        assert got == brute_sphere(ids, pos, cell, pbc, pos[row], radius)
        np.testing.assert_allclose(offsets, pos[rows] + shifts @ cell - pos[row], atol=0)


def test_choice_equals_brute_force(cu):
    res = select_environments(MPI.COMM_SELF, str(cu), 12, 5.0, None)
    ref = brute_selection(cu, CU, 12)
    assert [(p["frame"], p["id"]) for p in res["picks"]] == [(f, i) for f, i, _ in ref]
    np.testing.assert_allclose([p["novelty"] for p in res["picks"]], [r[2] for r in ref],
                               rtol=1e-10)
    n_novel = sum(int((dh > 0).sum()) for _, _, _, dh in results_frames(cu))
    assert res["n_candidates"] == n_novel > 12


def test_second_bandwidth_and_threshold_stop(cu):
    res = select_environments(MPI.COMM_SELF, str(cu), 50, 5.0, None, bandwidth=0.03,
                              threshold=15.0)
    ref = brute_selection(cu, CU, 50, h=0.03, threshold=15.0, column=1)
    assert [(p["frame"], p["id"]) for p in res["picks"]] == [(f, i) for f, i, _ in ref]
    assert 0 < len(ref) < 50  # stopped by the threshold, not by --max
    assert min(p["novelty"] for p in res["picks"]) > 15.0


def _fails(capsys, argv, *words):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    for w in words:
        assert w in err, err
    return err


def test_radius_below_cutoff_and_small_box_refused(cu, tmp_path, capsys):
    out = str(tmp_path / "x.extxyz")
    _fails(capsys, ["select", str(cu), "--max", "3", "--radius", "4.9", "-o", out],
           "--radius 4.9", "cutoff 5", "change its descriptor")
    _fails(capsys, ["select", str(cu), "--max", "3", "--box", "10", "-o", out],
           "--box 10", "twice the descriptor cutoff")
    _fails(capsys, ["select", str(cu), "--max", "0", "--radius", "6", "-o", out], "--max")
    _fails(capsys, ["select", str(cu), "--max", "2", "--radius", "6", "--bandwidth", "0.02",
                    "-o", out], "--bandwidth 0.02", "0.015")
    assert not (tmp_path / "x.extxyz").exists()


def test_results_without_dh_refused(tmp_path, capsys):
    r = tmp_path / "desc.h5"
    assert main(["descriptors", str(CU), "--frames", "1", "-o", str(r), "--progress",
                 "off"]) == 0
    _fails(capsys, ["select", str(r), "--max", "2", "--radius", "6", "-o",
                    str(tmp_path / "x.extxyz")], str(r), "no dH")


def test_missing_input_then_input_option(tmp_path, capsys):
    dump = tmp_path / "moved.lammpstrj"
    shutil.copy(CU, dump)
    r = _dh(tmp_path, dump, CU_REF, "r.h5")
    dump.unlink()
    out = tmp_path / "x.extxyz"
    _fails(capsys, ["select", str(r), "--max", "2", "--radius", "6", "-o", str(out)],
           str(dump), "no such file", "--input")
    assert main(["select", str(r), "--max", "2", "--radius", "6", "-o", str(out),
                 "--input", str(CU)]) == 0
    assert len(ase.io.read(str(out), ":")) == 2


def test_mismatched_input_refused(cu, tmp_path, capsys):
    out = str(tmp_path / "x.extxyz")
    # same run, same atoms and timesteps, other bytes (%.17g): the content hash differs
    _fails(capsys, ["select", str(cu), "--max", "2", "--radius", "6", "-o", out, "--input",
                    str(CU_REF)], str(CU_REF), "does not match", "cu_unsorted_000001")
    _fails(capsys, ["select", str(cu), "--max", "2", "--radius", "6", "-o", out, "--input",
                    str(DATA / "cluster_fsfm.lammpstrj")], "cluster_fsfm", "177 atoms",
           "256")


def test_existing_output_is_never_replaced(cu, tmp_path, capsys):
    out = tmp_path / "picks.extxyz"
    out.write_text("keep me\n")
    _fails(capsys, ["select", str(cu), "--max", "2", "--radius", "6", "-o", str(out)],
           str(out), "exists")
    assert out.read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir()] == ["picks.extxyz"]  # no partial file left
