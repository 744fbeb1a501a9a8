"""quests_hpc.dataset.msc_deal: msc's candidates dealt cyclically, rows intact."""

import numpy as np
import pytest
from compress_reference import FRAMES

from quests_hpc.dataset import msc_deal
from quests_hpc.dataset.msc_deal import deal_cyclic
from quests_hpc.dataset.structures import load_dataset

MPI = pytest.importorskip("mpi4py.MPI")


@pytest.mark.mpi
@pytest.mark.parametrize("rows", [1 << 18, 1, 500])  # one round; one per structure; several
def test_structure_s_goes_to_rank_s_mod_p_whole_and_in_order(monkeypatch, rows):
    monkeypatch.setattr(msc_deal, "DEAL_ROWS", rows)
    comm = MPI.COMM_WORLD
    data = load_dataset(comm, FRAMES)
    ref = [np.arange(len(x), dtype=float) + 1000.0 * s
           for s, x in zip(range(data.lo, data.hi), data.x)]
    cand = deal_cyclic(comm, data, ref)
    assert cand.ids.tolist() == list(range(comm.rank, 63, comm.size))
    whole = load_dataset(MPI.COMM_SELF, FRAMES)
    for i, s in enumerate(cand.ids):
        assert cand.slot(s) == i
        assert cand.x[i].tobytes() == whole.x[s].tobytes()
        assert cand.entropies[i] == whole.entropies[s]
        np.testing.assert_array_equal(cand.log_ref[i], np.arange(len(whole.x[s])) + 1000.0 * s)
    assert deal_cyclic(comm, data).log_ref is None


def test_rounds_cover_every_structure_within_the_row_budget():
    counts = np.array([3, 5, 2, 9, 1, 1, 4], dtype=np.int64)
    for rows in (1, 6, 10, 100):
        runs = list(msc_deal._rounds(counts, rows))
        assert [a for a, _ in runs] == [0] + [b for _, b in runs[:-1]]
        assert runs[-1][1] == len(counts)
        assert all(b - a == 1 or counts[a:b].sum() <= rows for a, b in runs)
