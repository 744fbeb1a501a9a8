"""Pictures: every figure function draws and saves; plot_results on a real results file."""

import os

import matplotlib
import numpy as np
import pytest

from quests_hpc import plotting as P
from quests_hpc.analysis import nucleation as N
from quests_hpc.analysis.figures import plot_results


def _png_ok(path, min_bytes=8_000):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > min_bytes


def test_import_keeps_the_global_backend():
    before = matplotlib.get_backend()
    import importlib

    importlib.reload(P)
    assert matplotlib.get_backend() == before


def test_each_figure_saves(tmp_path):
    rng = np.random.default_rng(0)
    fit = N.fit_size_distribution([1, 2, 3, 5, 8], [200, 80, 30, 9, 2], 700.0, 12.9, n_frames=4)
    figs = {
        "hist": P.dh_histogram({"a": rng.normal(2, 3, 5000), "b": np.r_[rng.normal(-2, 1, 900),
                                                                         [1e4, np.inf]]}),
        "hist1": P.dh_histogram(rng.normal(0, 1, 100), threshold=0.5, title="one"),
        "timeline": P.cluster_timeline(np.arange(10), rng.random(10), np.arange(1, 11) * 20,
                                       n_star_band=(np.full(10, 40.0), np.full(10, 90.0)),
                                       biconnected_largest=np.arange(10) * 15, n_nodes=[5] * 10),
        "novelty": P.cluster_timeline(np.arange(5), rng.random(5)),
        "lc": P.learning_curve([10, 30, 100, 300, 1000], [[2.0, 2.8, 3.3, 3.5, 3.6]],
                               std=[[0.1] * 5], fit=[[3.7, 2.0, 0.05]], label=["h = 0.015"]),
        "lc_off": P.learning_curve([10, 100, 1000], [1.0, 1.5, 1.7], fit=[900.0, 898.0, 1e-6]),
        "overlap": P.overlap_matrix([[0.9, 0.1], [np.nan, 0.5]], ["cold", "melt"], ["r1", "r2"]),
        "sizes": P.cluster_size_distribution(
            [1, 2, 3, 5, 8], [200, 80, 30, 9, 2], n_frames=4,
            model=([1, 4, 8], N.fitted_distribution(fit, [1, 4, 8], 12.9)), model_label="CNT"),
    }
    for name, fig in figs.items():
        files = P.save(fig, tmp_path / name, formats=("png", "pdf"))
        assert [os.path.splitext(f)[1] for f in files] == [".png", ".pdf"]
        assert _png_ok(files[0]), name
        w, h = fig.get_size_inches()
        assert 3 <= w <= 12 and 2 <= h <= 10  # readable as it comes out


def test_plot_results_on_the_example(tmp_path):
    """The bundled example's results (made here on 2 frames) give every picture."""
    pytest.importorskip("mpi4py")
    from mpi4py import MPI

    from quests_hpc.analysis.campaign_hooks import run_analyses
    from quests_hpc.campaign.runner import run_campaign
    from quests_hpc.campaign.schema import validate

    ex = os.path.join(os.path.dirname(__file__), "..", "examples", "cu_nucleation")
    raw = {
        "name": "plots", "references": [{"name": "fcc", "path": "cu_fcc_400K.lammpstrj.gz",
                                         "frames": "0,5"}],
        "inputs": [{"name": "melt", "path": "cu_melt_600K.lammpstrj.gz", "frames": "8,30"}],
        "measures": {"overlap": True, "positions": True},
        "output": {"path": str(tmp_path / "r.h5")}, "run": {"progress": "off", "threads": 1},
    }
    raw["analysis"] = {"clusters": {}, "plots": {"directory": str(tmp_path / "pics")},
                       "nucleation": {"temperature": 600.0, "t_melt": 1323.0, "dh_melt": 11.99,
                                      "gamma_sl": 0.177, "gamma_range": [0.177, 0.221],
                                      "atomic_volume": 12.893}}
    c = validate(raw, os.path.abspath(ex), yaml=repr(raw))
    run_campaign(c, MPI.COMM_SELF, out=lambda *a: None)
    res = run_analyses(str(tmp_path / "r.h5"), c.analysis, MPI.COMM_SELF)
    names = sorted(os.path.basename(f) for f in res["plots"])
    assert {"dh_histogram.png", "timeline.png", "overlap.png"} <= set(names)
    assert all(_png_ok(f) for f in res["plots"])
    again = plot_results(str(tmp_path / "r.h5"), str(tmp_path / "again"))
    assert sorted(os.path.basename(f) for f in again) == names


def test_figures_know_nothing_of_files_or_analyses():
    import ast

    tree = ast.parse(open(P.__file__).read())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "." for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"os", "numpy", "matplotlib", "matplotlib.backends.backend_agg",
                        "matplotlib.figure"}
