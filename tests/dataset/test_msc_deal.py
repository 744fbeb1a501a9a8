"""quests_hpc.dataset.msc_deal: msc's candidates dealt cyclically, rows intact."""

import numpy as np
import pytest
from compress_reference import FRAMES

from quests_hpc.dataset.msc_deal import deal_cyclic
from quests_hpc.dataset.structures import load_dataset

MPI = pytest.importorskip("mpi4py.MPI")


@pytest.mark.mpi
def test_structure_s_goes_to_rank_s_mod_p_whole_and_in_order():
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
