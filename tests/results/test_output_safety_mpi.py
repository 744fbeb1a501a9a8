"""Output safety under MPI (``mpiexec -n 2 python -m pytest --with-mpi -m mpi``): the lock
is taken by rank 0 and its refusal raised on every rank; a refused or interrupted
``--overwrite`` leaves the old results intact on every rank count; an output that is an
input is refused everywhere."""

import hashlib
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "campaign"))
from campaign_data import basic_campaign

from mpi_support import on_root

MPI = pytest.importorskip("mpi4py.MPI")


def _run(y, comm, overwrite=False, **over):
    from quests_hpc.campaign.runner import run_campaign
    from quests_hpc.campaign.schema import load_campaign

    return run_campaign(load_campaign(y, overrides=over or None), comm, overwrite=overwrite,
                        out=lambda t: None)


def _sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def cdir(mpi_tmp_path):
    comm = MPI.COMM_WORLD
    d = str(mpi_tmp_path / f"s{comm.size}")

    def make():
        os.makedirs(d, exist_ok=True)
        return basic_campaign(d, n_frames=3, n_cells=(3, 3, 3))

    y = on_root(comm, make)
    return d, y


@pytest.mark.mpi
def test_locked_output_refused_on_every_rank(cdir):
    import json
    import socket

    from quests_hpc.results.lock import OutputLockedError, lock_path

    comm = MPI.COMM_WORLD
    d, y = cdir
    out = os.path.join(d, "out.h5")

    def lock():  # held by a live process of this host: our launcher
        with open(lock_path(out), "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getppid(), "started": "now",
                       "command": "another run", "token": "x"}, f)

    on_root(comm, lock)
    with pytest.raises(OutputLockedError, match=f"pid {on_root(comm, os.getppid)}"):
        _run(y, comm)
    comm.Barrier()
    assert on_root(comm, lambda: sorted(os.listdir(d))) == ["campaign.yaml", "md.lammpstrj",
                                                            "out.h5.lock"]
    on_root(comm, lambda: os.remove(lock_path(out)))
    assert _run(y, comm)["computed"] == 3
    assert not on_root(comm, lambda: os.path.exists(lock_path(out)))


@pytest.mark.mpi
def test_interrupted_and_refused_overwrite_keep_old_results(cdir, monkeypatch):
    import h5py

    from quests_hpc.campaign import runner
    from quests_hpc.campaign.schema import CampaignError
    from quests_hpc.results.restart import partial_path

    comm = MPI.COMM_WORLD
    d, y = cdir
    out = os.path.join(d, "out.h5")
    _run(y, comm)
    before = on_root(comm, lambda: _sha(out))
    with pytest.raises(CampaignError, match="frame index 99 out of range"):
        _run_frames(y, comm, "99")
    assert on_root(comm, lambda: _sha(out)) == before
    real, calls = runner._do_frame, []

    def dying(*a, **k):
        if len(calls) == 2:
            raise RuntimeError("killed")
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(runner, "_do_frame", dying)
    with pytest.raises(RuntimeError, match="killed"):
        _run(y, comm, overwrite=True, parameters={"bandwidth": [0.02]})
    comm.Barrier()
    assert on_root(comm, lambda: _sha(out)) == before
    assert not on_root(comm, lambda: os.path.exists(out + ".lock"))
    monkeypatch.setattr(runner, "_do_frame", real)
    res = _run(y, comm, overwrite=True, parameters={"bandwidth": [0.02]})
    assert (res["computed"], res["skipped"]) == (1, 2)

    def check():
        with h5py.File(out, "r") as f:
            return bool(f.attrs["complete"]), list(f.attrs["bandwidths"])

    assert on_root(comm, check) == (True, [0.02])
    assert not on_root(comm, lambda: os.path.exists(partial_path(out)))


def _run_frames(y, comm, frames):
    """The campaign with the input's frame selection replaced, with overwrite."""
    from quests_hpc.campaign.runner import run_campaign
    from quests_hpc.campaign.schema import load_campaign

    import yaml

    def edit():
        with open(y) as f:
            raw = yaml.safe_load(f)
        raw["inputs"][0]["frames"] = frames
        edited = os.path.join(os.path.dirname(y), f"frames_{frames}.yaml")
        with open(edited, "w") as f:
            yaml.safe_dump(raw, f)
        return edited

    c = load_campaign(on_root(comm, edit))
    return run_campaign(c, comm, overwrite=True, out=lambda t: None)


@pytest.mark.mpi
def test_output_that_is_the_input_refused_on_every_rank(cdir):
    from quests_hpc.campaign.schema import CampaignError

    comm = MPI.COMM_WORLD
    d, y = cdir
    dump = os.path.join(d, "md.lammpstrj")
    before = on_root(comm, lambda: _sha(dump))
    with pytest.raises(CampaignError, match="is the input md"):
        _run(y, comm, overwrite=True, output={"path": dump})
    comm.Barrier()
    assert on_root(comm, lambda: _sha(dump)) == before


@pytest.mark.mpi
def test_frame_hash_does_not_depend_on_the_rank_count(mpi_tmp_path):
    from quests_hpc.results.restart import FRAME_HASH_BLOCK, frame_hash

    comm = MPI.COMM_WORLD
    p = str(mpi_tmp_path / "blob.bin")

    def make():
        with open(p, "wb") as f:
            f.write(os.urandom(5 * FRAME_HASH_BLOCK + 999))

    on_root(comm, make)
    a, b = 17, 5 * FRAME_HASH_BLOCK + 900
    serial = on_root(comm, lambda: frame_hash(MPI.COMM_SELF, p, a, b))
    assert frame_hash(comm, p, a, b) == serial
