"""quests_hpc.dataset.lazy_msc: the lazy msc chooses what eager msc chooses, with the
same bits whatever the threads and blocks, and skips the work that cannot matter."""

import numpy as np
import pytest
from compress_reference import FRAMES

from quests_hpc import threads
from quests_hpc.dataset import lazy_msc as L
from quests_hpc.dataset.structures import load_dataset
from quests_hpc.information import log_kernel_sum

MPI = pytest.importorskip("mpi4py.MPI")
SELF = MPI.COMM_SELF
SIZE = 30  # of 63 structures: many steps, many pending segments per refresh


@pytest.fixture(scope="module")
def data():
    return load_dataset(SELF, FRAMES)


def _run(data, nt=1, **constants):
    before = threads.get_num_threads()
    saved = {k: getattr(L, k) for k in constants}
    try:
        threads.set_num_threads(nt)
        for k, v in constants.items():
            setattr(L, k, v)
        order, novelty, work, stats = L.lazy_msc(SELF, data, SIZE)
    finally:
        threads.set_num_threads(before)
        for k, v in saved.items():
            setattr(L, k, v)
    return order, novelty, work


def test_eager_msc_makes_the_same_choices(data):
    order, novelty, _ = _run(data)
    chosen, left = [order[0]], set(range(len(data.x))) - {order[0]}
    for m in range(1, SIZE):
        sub = np.concatenate([data.x[s] for s in chosen])
        nov = {s: -log_kernel_sum(data.x[s], sub).min() for s in left}
        best = max(sorted(left), key=lambda s: nov[s] + data.entropies[s])
        assert best == order[m]
        assert novelty[m] == pytest.approx(nov[best], rel=1e-12)
        chosen.append(best)
        left.remove(best)


@pytest.mark.parametrize("nt, constants", [
    (2, {}),
    (2, {"ROW_BLOCK": 8, "MAX_COLUMNS": 100}),   # many blocks, column runs split
    (1, {"REFRESH_BATCH": 1, "PROBE_ROWS": 1}),
    (1, {"REFRESH_BATCH": 63, "PROBE_ROWS": 64}),
])
def test_same_bits_whatever_threads_blocks_and_batches(data, nt, constants):
    order, novelty, _ = _run(data)
    o2, n2, _ = _run(data, nt, **constants)
    assert o2 == order
    assert n2.tobytes() == novelty.tobytes()


def test_only_environments_that_could_win_are_folded(data):
    """Eager msc folds every candidate environment with every pick; lazy msc, with its
    probe and floor, a part (62 % here, 78 % when the probe covers whole structures)."""
    order, _, work = _run(data)
    kept = np.cumsum(data.counts[order])
    eager = int((int(data.counts.sum()) - kept[:-1]).sum())
    whole, _, work_whole = _run(data, PROBE_ROWS=64)  # the probe covers whole structures
    assert whole == order
    assert work < 0.8 * eager
    assert work < work_whole <= eager


def test_where_the_time_went_is_counted(data):
    from quests_hpc.dataset import lazy_msc as L

    order, _, work, stats = L.lazy_msc(SELF, data, SIZE)
    assert stats["folds"] == work > 0
    # one allgather round per pick at least (the first pick, by entropy, needs none)
    assert stats["rounds"] >= SIZE - 1
    assert stats["refresh_s"] > 0 and stats["collective_s"] >= 0
