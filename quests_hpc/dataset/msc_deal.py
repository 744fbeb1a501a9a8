"""The candidates of msc, dealt to the ranks cyclically: structure ``s`` to rank
``s mod P``.

A data set is loaded in contiguous blocks of structures (:mod:`.structures`: each rank
reads its own frames).  In a file written in time order, the structures that msc keeps
choosing often sit together (the melt of a heating run), so with contiguous blocks one
rank would do nearly all the refreshes while the others wait (measured: 981 of 1000
picks on rank 1 of 2).  Dealing the candidates cyclically spreads any such part of the
file over every rank.  One exchange of the rows (with their structure and row numbers),
before the first pick; the choice does not change (ties go to the lowest structure
index, whoever holds it).  Collective.
"""

from dataclasses import dataclass

import numpy as np

from ..parallel import comm as pcomm


@dataclass
class Candidates:
    """This rank's msc candidates: global structure ``ids`` (ascending), their rows
    ``x``, entropies ``entropies`` and, for msc_conditional, ``log_ref`` (``log S``
    against the reference, per structure), with the bandwidth ``h``."""
    ids: np.ndarray
    x: list
    entropies: np.ndarray
    log_ref: list
    h: float

    def slot(self, s):
        """Index of structure ``s`` in this rank's lists."""
        return int(np.searchsorted(self.ids, s))


def deal_cyclic(comm, data, log_ref=None):
    """:class:`Candidates` of this rank: the structures ``s`` with ``s mod P`` = rank
    (collective; the data set as loaded on one rank)."""
    ent = np.asarray(data.entropies, float)
    if comm.size == 1:
        return Candidates(np.arange(data.lo, data.hi, dtype=np.int64), list(data.x), ent,
                          log_ref, data.h)
    width = data.width
    counts = np.array([len(x) for x in data.x], dtype=np.int64)
    sid = np.repeat(np.arange(data.lo, data.hi, dtype=np.int64), counts)
    row = np.concatenate([np.arange(n) for n in counts]).astype(np.int64) if len(counts) \
        else np.empty(0, np.int64)
    arrays = [np.concatenate(data.x) if data.x else np.empty((0, width)), sid, row]
    if log_ref is not None:
        arrays.append(np.concatenate(log_ref) if log_ref else np.empty(0))
    x, sid, row, *ref = pcomm.redistribute(arrays, sid % comm.size, comm)
    order = np.lexsort((row, sid))
    x, sid = x[order], sid[order]
    ids, starts = np.unique(sid, return_index=True)
    cut = list(starts[1:])
    every = np.concatenate(pcomm.allgather(ent, comm))  # in structure order (blocks)
    return Candidates(ids.astype(np.int64), np.split(x, cut) if len(ids) else [],
                      every[ids], np.split(ref[0][order], cut) if ref and len(ids) else
                      ([] if ref else None), data.h)
