"""The most novel environments of the triggering step, carved for labelling.

The candidates are the owned atoms with dH > threshold; up to N of them that are also
novel to each other are chosen by the selection of ``quests-hpc select``
(:func:`quests_hpc.dataset.select.greedy`: msc_conditional over single environments,
coverage starting at exp(-dH), ties to the lowest atom id; the same choice on any number
of ranks), and the sphere of radius R around each becomes a cluster
(:func:`~quests_hpc.dataset.select.carve_pieces`, built with its periodic images) in an
extxyz file whose first atom is the centre (``quests_centre``), with ``quests_id``,
``quests_dh``, ``quests_novelty`` and the step in ``quests_timestep``.
"""

from types import SimpleNamespace

import numpy as np

from ..dataset import select
from ..geometry import complete_cell


def candidates(monitor, state, cell, pbc):
    """This rank's candidates of the step (descriptors recomputed; collective)."""
    dh, desc, ids, pos, types = monitor.dh_of_owned(state["nlocal"], keep=True)
    order = np.argsort(ids, kind="stable")
    dh, desc, ids, pos, types = dh[order], desc[order], ids[order], pos[order], types[order]
    keep = np.flatnonzero(dh > monitor.request.threshold)
    c = select.Candidates(desc=[desc[keep]], log_s=[-dh[keep]], frame=[np.zeros(len(keep),
                          np.int64)], ids=[ids[keep]], dh=[dh[keep]],
                          blocks=[(ids, pos, types.astype(np.int64), cell, pbc)])
    c.stack(desc.shape[1])
    return c


def write_picks(comm, monitor, state, path, max_picks, radius, cell, pbc, elements=None,
                script=""):
    """Choose, carve and write the picks of the triggering step (collective).

    Returns the number of structures written.
    """
    cell = complete_cell(np.asarray(cell, dtype=np.float64), pbc)
    c = candidates(monitor, state, cell, np.asarray(pbc, bool))
    h = monitor.request.bandwidths[0]
    picks = select.greedy(comm, c, h, int(max_picks), monitor.request.threshold)
    pieces = select.carve_pieces(comm, c, picks, "cluster", float(radius))
    structures = None
    if comm.rank == 0:
        plan = SimpleNamespace(types_are_numbers=False)
        frame = SimpleNamespace(source_index=0, timestep=int(state["step"]),
                                name=f"step {state['step']}", input=str(script))
        structures = select.build_structures(pieces, picks, plan, [frame], "cluster",
                                             float(radius), elements=elements)
    select.write_structures(comm, path, structures)
    return len(picks)
