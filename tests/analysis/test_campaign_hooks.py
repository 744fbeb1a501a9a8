"""Cluster / nucleation analyses of a results file, the analysis section, bad input."""

import hashlib
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from cluster_reference import brute_labels
from results_fixture import CU, analysis_section, make_results

from quests_hpc.analysis import campaign_hooks as H
from quests_hpc.analysis import nucleation as N
from quests_hpc.analysis import results_io as rio
from quests_hpc.campaign.schema import CampaignError
from quests_hpc.errors import QuestsInputError
from quests_hpc.io import read_lammps_dump

MPI = pytest.importorskip("mpi4py.MPI")
ANALYSIS = {"clusters": {"r_edge": 3.0, "biconnected_max_size": 60},
            "nucleation": dict(CU, temperature=600.0),
            "export": {"elements": ["Cu"]}, "plots": {"formats": ["png"]}}


def _check_against_brute_force(path, res):
    with h5py.File(path, "r") as f:
        names = list(res["clusters"]["frame"])
        dump = os.path.join(os.path.dirname(path), "md.lammpstrj")
        for i, name in enumerate(names):
            g = f["frames"][name]
            fr = read_lammps_dump(dump, index=i)
            np.testing.assert_array_equal(fr.ids, g["id"][()])
            dh = g["delta_entropy"][()]
            ref = brute_labels(fr.ids, fr.positions, dh, fr.cell, fr.pbc, 0.0, 3.0)
            np.testing.assert_array_equal(g["cluster"][()], ref)
            t = res["clusters"]
            assert t["n_nodes"][i] == int((dh <= 0).sum())
            sizes = np.unique(ref[ref > 0], return_counts=True)[1]
            assert t["n_clusters"][i] == len(sizes)
            assert t["largest"][i] == (sizes.max() if len(sizes) else 0)
            assert t["novelty"][i] == pytest.approx((dh > 0).mean())
        a = f["analysis/clusters"].attrs
        assert a["complete"] and a["r_edge"] == 3.0 and a["column"] == "bulk@h=0.015"
        if res.get("nucleation") is not None:
            assert f["analysis/nucleation"].attrs["complete"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    d = tmp_path_factory.mktemp("hooks")
    path = make_results(d, MPI.COMM_SELF)
    lines = []
    res = H.run_analyses(path, analysis_section(ANALYSIS, d), MPI.COMM_SELF, out=lines.append)
    return path, res, lines


def test_clusters_in_file_equal_brute_force(analysed):
    path, res, lines = analysed
    _check_against_brute_force(path, res)
    assert any(line.startswith("clusters md_000000") for line in lines)
    t = res["clusters"]
    assert t["n_nodes"][0] > t["n_nodes"][-1]  # more noise, fewer covered atoms
    assert (t["biconnected_largest"] >= 0).all()


def test_nucleation_outputs(analysed):
    path, res, _ = analysed
    nuc = res["nucleation"]
    lo, hi = N.critical_size_band(600.0, [0.177, 0.221], 1323.0, 11.99, 12.893)
    np.testing.assert_allclose(nuc["n_star_lo"], lo[0])
    np.testing.assert_allclose(nuc["n_star_hi"], hi[0])
    np.testing.assert_allclose(nuc["r_star"], N.critical_radius(1323.0 - 600.0, 0.177, 1323.0,
                                                                11.99, 12.893))
    tab = rio.read_analysis_table(path, "nucleation")
    assert tab["attrs"]["t_melt"] == 1323.0 and tab["attrs"]["atomic_volume"] == 12.893
    np.testing.assert_allclose(tab["n_star"], nuc["n_star"])
    assert list(tab["frame"]) == list(res["clusters"]["frame"])


def test_pictures_and_exports_written(analysed):
    _, res, _ = analysed
    names = sorted(os.path.basename(p) for p in res["plots"])
    assert names == ["cluster_sizes.png", "dh_histogram.png", "overlap.png", "timeline.png"] \
        or {"dh_histogram.png", "timeline.png"} <= set(names)
    assert all(os.path.getsize(p) > 10_000 for p in res["plots"])
    assert len(res["exports"]) == 4
    fr = read_lammps_dump(res["exports"][1], columns=["dH", "cluster"])
    assert fr.natoms == 500 and "cluster" in fr.arrays


def test_frame_temperatures_from_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("frame,step,temperature_K\n0,0,900\n1,1000,800\n")
    np.testing.assert_allclose(H.frame_temperatures([0, 500, 1000], temperature_file=str(p)),
                               [900, 850, 800])
    np.testing.assert_allclose(H.frame_temperatures([0, 1], temperature=[700, 650]), [700, 650])
    with pytest.raises(QuestsInputError, match="3 frames"):
        H.frame_temperatures([0, 1, 2], temperature=[700, 650])
    with pytest.raises(QuestsInputError, match="temperature"):
        H.frame_temperatures([0])


def test_results_without_dh_is_refused(tmp_path):
    path = make_results(tmp_path, MPI.COMM_SELF, dh=False, n_frames=1)
    with pytest.raises(QuestsInputError, match="no dH"):
        H.cluster_analysis(path, comm=MPI.COMM_SELF)
    with pytest.raises(QuestsInputError, match="no cluster analysis"):
        H.nucleation_analysis(path, comm=MPI.COMM_SELF, temperature=600.0, **CU)
    # A campaign without dH and without an analysis section: nothing to draw, no error.
    assert H.run_analyses(path, {}, MPI.COMM_SELF) == {
        "clusters": None, "nucleation": None, "plots": [], "exports": []}


def test_bad_files_and_parameters(tmp_path, analysed):
    path, _, _ = analysed
    with pytest.raises(QuestsInputError, match="no such file"):
        H.cluster_analysis(str(tmp_path / "missing.h5"), comm=MPI.COMM_SELF)
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    with pytest.raises(QuestsInputError, match="not a readable HDF5"):
        H.cluster_analysis(str(tmp_path / "x.h5"), comm=MPI.COMM_SELF)
    with pytest.raises(QuestsInputError, match="larger than half the cell"):
        H.cluster_analysis(path, comm=MPI.COMM_SELF, r_edge=20.0)
    with pytest.raises(QuestsInputError, match="r_edge must be a finite number"):
        H.cluster_analysis(path, comm=MPI.COMM_SELF, r_edge=float("nan"))
    with pytest.raises(QuestsInputError, match="no dH column"):
        H.cluster_analysis(path, comm=MPI.COMM_SELF, column="nope")


def test_analysis_section(analysed):
    d = os.path.dirname(analysed[0])
    a = analysis_section({"clusters": {}, "plots": {"formats": "pdf"}}, d)
    assert a["clusters"] == {"threshold": 0.0, "r_edge": 3.0, "column": None,
                             "biconnected_max_size": None}
    assert a["nucleation"] is None and a["export"] is None
    assert a["plots"]["formats"] == ["pdf"] and a["plots"]["enabled"] is True
    with pytest.raises(CampaignError) as e:
        analysis_section({"cluster": {}, "clusters": {"r_edg": 2, "threshold": "x"},
                          "nucleation": CU}, d)
    msg = str(e.value)
    for part in ("did you mean 'clusters'", "did you mean 'r_edge'", "threshold (line",
                 "must be a number", "give temperature"):
        assert part in msg or part.replace(" (line", ":") in msg, part
    with pytest.raises(CampaignError, match="needs analysis.clusters"):
        analysis_section({"nucleation": dict(CU, temperature=500)}, d)


@pytest.mark.parametrize("key", list(CU))
def test_missing_material_constant_is_refused(analysed, key):
    d = os.path.dirname(analysed[0])
    nuc = {k: v for k, v in CU.items() if k != key}
    with pytest.raises(CampaignError) as e:
        analysis_section({"clusters": {}, "nucleation": dict(nuc, temperature=600.0)}, d)
    what, value = MATERIAL[key]
    assert e.value.problems == [
        f"analysis: analysis.nucleation.{key}: required key missing: the material's {what}; "
        f"no material is assumed (the paper's Mishin Cu: {key}: {value})"]


MATERIAL = {
    "t_melt": ("melting temperature (K)", "1323.0"),
    "dh_melt": ("latent heat of melting (kJ/mol)", "11.99"),
    "gamma_sl": ("solid-liquid interfacial energy (J/m^2)", "0.177"),
    "gamma_range": ("interfacial energies [low, high] spanning the critical-size band (J/m^2)",
                    "[0.177, 0.221]"),
    "atomic_volume": ("volume per atom (Angstrom^3), which turns radii into atom counts",
                      "12.893"),
}


def _digests(d):
    return {p: hashlib.sha256(open(os.path.join(d, p), "rb").read()).hexdigest()
            for p in sorted(os.listdir(d))}


def test_campaign_without_the_material_exits_2(tmp_path):
    """The command line refuses it before any work: one line naming the key, exit 2."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "cu_nucleation",
                           "campaign.yaml")) as f:
        text = f.read()
    ex = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                                      "cu_nucleation"))
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("t_melt:")]
    text = "\n".join(lines).replace("cu_fcc_400K.lammpstrj.gz", f"{ex}/cu_fcc_400K.lammpstrj.gz")
    text = text.replace("cu_melt_600K.lammpstrj.gz", f"{ex}/cu_melt_600K.lammpstrj.gz")
    text = text.replace("melt_thermo.csv", f"{ex}/melt_thermo.csv")
    text = text.replace("../../results/cu_nucleation.h5", "out.h5")
    (tmp_path / "c.yaml").write_text(text)
    before, ex_before = _digests(tmp_path), _digests(ex)
    r = subprocess.run([sys.executable, "-m", "quests_hpc.cli", "run", str(tmp_path / "c.yaml")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "analysis.nucleation.t_melt: required key missing" in r.stderr
    assert "melting temperature (K)" in r.stderr and "t_melt: 1323.0" in r.stderr
    assert "Traceback" not in r.stderr
    assert _digests(tmp_path) == before and _digests(ex) == ex_before  # nothing written


@pytest.mark.mpi
def test_analyses_under_mpi_equal_brute_force(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    path = make_results(mpi_tmp_path, comm, positions=comm.size % 2 == 1)
    raw = {"clusters": {"biconnected_max_size": 60}, "plots": {"enabled": False}}
    res = H.run_analyses(path, analysis_section(raw, mpi_tmp_path), comm)
    comm.Barrier()
    err = None
    if comm.rank == 0:
        try:
            _check_against_brute_force(path, res)
        except AssertionError as exc:
            err = exc
    err = comm.bcast(err, root=0)
    if err is not None:
        raise err
