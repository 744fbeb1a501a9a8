"""Campaigns under MPI: the results file equals a serial run's, for every rank count and
writer back end, also after a restart.  Run with ``mpiexec -n N python -m pytest
--with-mpi -m mpi tests/campaign`` (N = 1, 2, 3)."""

import os

import numpy as np
import pytest
from campaign_data import basic_campaign

from mpi_support import on_root

MPI = pytest.importorskip("mpi4py.MPI")


# Rank-count invariance of every per-atom and per-frame value (dH, H, D, overlap) and of
# the learning-curve entropies: each row's kernel sum is blocked differently on another
# rank count (about 1e-16 apart), the reductions over rows are exact (measures._fsum_all).
TOL = 1e-12
# The asymptote fit's parameters a, b, c are ill-conditioned (a few points, 3 parameters:
# 1e-12 in H moves b by up to ~1e-9, tests/campaign/test_learning.py), and so is the
# information gap a - H(N); they are not compared.  What is well conditioned is compared:
# the fitted curve at the fitted sizes is the least-squares projection of the mean
# entropies onto the model, whose first-order change is at most the change of the data in
# the 2-norm (a projection has norm 1): |df|_max <= sqrt(m) |dH|_max for m fitted points,
# doubled for the curvature of the model and the bisection's last bit; the rmse of the
# residual changes by at most |dH|_max (the residual is the complementary projection).
LC_IGNORED = frozenset({"fit", "information_gap"})


def _fit_tol(n_fitted):
    return 2.0 * np.sqrt(n_fitted) * TOL


def _learning_curve_diff(golden, out):
    """Differences of the well-conditioned learning-curve results (see LC_IGNORED)."""
    import h5py

    from campaign_data import asymptote

    bad = []
    with h5py.File(golden, "r") as fa, h5py.File(out, "r") as fb:
        ga, gb = fa["learning_curve"], fb["learning_curve"]
        sizes = ga["sizes"][()]
        lo, hi = (int(v) for v in ga.attrs["drop"])
        fitted = slice(lo, len(sizes) - hi)
        tol = _fit_tol(len(sizes[fitted]))
        for g in (ga, gb):  # each file's gap is its own fit's a - mean
            np.testing.assert_allclose(g["information_gap"][()], g["fit"][:, :1] - g["mean"][()],
                                       rtol=0, atol=1e-15 * max(1.0, float(np.abs(g["fit"][()]).max())))
        fa_ = np.array([asymptote(sizes, *p) for p in ga["fit"][()]])[:, fitted]
        fb_ = np.array([asymptote(sizes, *p) for p in gb["fit"][()]])[:, fitted]
        if not np.abs(fa_ - fb_).max() <= tol:
            bad.append(f"fitted curve differs by {np.abs(fa_ - fb_).max()} > {tol}")
        d_rmse = np.abs(ga["fit_rmse"][()] - gb["fit_rmse"][()]).max()
        if not d_rmse <= 2 * TOL:
            bad.append(f"fit rmse differs by {d_rmse} > {2 * TOL}")
    return bad


def _diff(golden, out):
    from quests_hpc.results import diff_results
    from quests_hpc.results.layout import VOLATILE_DATASETS

    return (diff_results(golden, out, atol=TOL, rtol=0,
                         ignore_datasets=VOLATILE_DATASETS | LC_IGNORED)
            + _learning_curve_diff(golden, out))


def _backends():
    from quests_hpc.results.writer import h5py_has_mpi

    return ["gather", "mpio"] if h5py_has_mpi() else ["gather"]


def _run(path, comm, **over):
    from quests_hpc.campaign.runner import run_campaign
    from quests_hpc.campaign.schema import load_campaign

    lines = []
    c = load_campaign(path, overrides=over or None)
    return run_campaign(c, comm, out=lines.append), lines


def _serial_golden(d):
    """Rank 0 runs the campaign alone (COMM_SELF); everyone gets the path."""
    comm = MPI.COMM_WORLD
    golden = os.path.join(d, "golden.h5")

    def run():
        if not os.path.exists(golden):
            _run(os.path.join(d, "campaign.yaml"), MPI.COMM_SELF,
                 output={"path": golden, "backend": "gather"})

    on_root(comm, run)
    return golden


@pytest.fixture
def cdir(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    d = str(mpi_tmp_path / f"c{comm.size}")

    def make():
        os.makedirs(d, exist_ok=True)
        basic_campaign(d, n_frames=3, extra="  learning_curve: {dataset: bulk, sizes: "
                                            "[20, 40, 80, 160, 320, 500], repeats: 2, "
                                            "drop: [1, 1]}")

    on_root(comm, make)
    return d


@pytest.mark.mpi
@pytest.mark.parametrize("backend, layout", [("gather", "auto"), ("mpio", "auto"),
                                             ("gather", "sharded")])
def test_campaign_equals_serial(cdir, backend, layout):
    """Also with the reference sharded over the ranks (ring pass, learning curve rows)."""
    if backend not in _backends():
        pytest.skip("h5py has no MPI (h5py.get_config().mpi is False)")
    comm = MPI.COMM_WORLD
    golden = _serial_golden(cdir)
    out = os.path.join(cdir, f"{backend}_{layout}.h5")
    res, lines = _run(os.path.join(cdir, "campaign.yaml"), comm,
                      output={"path": out, "backend": backend},
                      run={"reference_layout": layout})
    assert res["computed"] == 3
    diff = on_root(comm, lambda: _diff(golden, out))
    assert diff == []
    if comm.rank == 0:
        assert sum(ln.startswith("[") for ln in lines) == 3
        assert f"Stage times over {comm.size} rank(s)" in "\n".join(lines)
    else:
        assert lines == []  # only rank 0 prints


@pytest.mark.mpi
def test_campaign_restart_under_mpi(cdir):
    import h5py

    comm = MPI.COMM_WORLD
    golden = _serial_golden(cdir)
    out = os.path.join(cdir, "restart.h5")
    y = os.path.join(cdir, "campaign.yaml")
    _run(y, comm, output={"path": out})

    def interrupt():  # as if killed: two frames not marked complete, one with garbage
        with h5py.File(out, "a") as f:
            f["frames/md_000000"].attrs.modify("complete", False)
            f["frames/md_000000/delta_entropy"][...] = 0.0
            f["frames/md_000002"].attrs.modify("complete", False)
            f.attrs.modify("complete", False)

    on_root(comm, interrupt)
    res, _ = _run(y, comm, output={"path": out})
    assert (res["computed"], res["skipped"]) == (2, 1)
    diff = on_root(comm, lambda: _diff(golden, out))
    assert diff == []


@pytest.mark.mpi
def test_bad_campaign_raises_on_every_rank(cdir):
    from quests_hpc.campaign.schema import CampaignError

    comm = MPI.COMM_WORLD
    y = os.path.join(cdir, "campaign.yaml")
    with pytest.raises(CampaignError, match="does not exist"):
        _run(y, comm, output={"path": os.path.join(cdir, "nodir", "x.h5")})
    comm.Barrier()
