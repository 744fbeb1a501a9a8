"""Campaigns under MPI: the results file equals a serial run's, for every rank count and
writer back end, also after a restart.  Run with ``mpiexec -n N python -m pytest
--with-mpi -m mpi tests/campaign`` (N = 1, 2, 3)."""

import os

import pytest
from campaign_data import basic_campaign

MPI = pytest.importorskip("mpi4py.MPI")


def on_root(comm, fn):
    """``fn()`` on rank 0, its result (or its failure) on every rank: a failing check on
    rank 0 must not leave the other ranks waiting in a collective."""
    out, err = None, None
    if comm.rank == 0:
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank
            err = f"{type(exc).__name__}: {exc}"
    out, err = comm.bcast((out, err), root=0)
    assert err is None, f"rank 0: {err}"
    return out
TOL = 1e-12  # rank-count invariance of dH: the kernel sums are blocked per rank
RTOL = 1e-8  # the learning-curve fit amplifies 1e-16 differences of H (ill-conditioned)


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
    from quests_hpc.results import diff_results

    if backend not in _backends():
        pytest.skip("h5py has no MPI (h5py.get_config().mpi is False)")
    comm = MPI.COMM_WORLD
    golden = _serial_golden(cdir)
    out = os.path.join(cdir, f"{backend}_{layout}.h5")
    res, lines = _run(os.path.join(cdir, "campaign.yaml"), comm,
                      output={"path": out, "backend": backend},
                      run={"reference_layout": layout})
    assert res["computed"] == 3
    diff = on_root(comm, lambda: diff_results(golden, out, atol=TOL, rtol=RTOL))
    assert diff == []
    if comm.rank == 0:
        assert sum(ln.startswith("[") for ln in lines) == 3
        assert f"Stage times over {comm.size} rank(s)" in "\n".join(lines)
    else:
        assert lines == []  # only rank 0 prints


@pytest.mark.mpi
def test_campaign_restart_under_mpi(cdir):
    import h5py

    from quests_hpc.results import diff_results

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
    diff = on_root(comm, lambda: diff_results(golden, out, atol=TOL, rtol=RTOL))
    assert diff == []


@pytest.mark.mpi
def test_bad_campaign_raises_on_every_rank(cdir):
    from quests_hpc.campaign.schema import CampaignError

    comm = MPI.COMM_WORLD
    y = os.path.join(cdir, "campaign.yaml")
    with pytest.raises(CampaignError, match="does not exist"):
        _run(y, comm, output={"path": os.path.join(cdir, "nodir", "x.h5")})
    comm.Barrier()
