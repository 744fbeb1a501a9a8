"""Helpers shared by the MPI test modules (``tests/`` is on ``sys.path``, see conftest)."""


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
