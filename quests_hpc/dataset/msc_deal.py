"""The candidates of msc, dealt to the ranks cyclically: structure ``s`` to rank
``s mod P``.

A data set is loaded in contiguous blocks of structures (:mod:`.structures`: each rank
reads its own frames).  In a file written in time order, the structures that msc keeps
choosing often sit together (the melt of a heating run), so with contiguous blocks one
rank would do nearly all the refreshes while the others wait (measured: 981 of 1000
picks on rank 1 of 2).  Dealing the candidates cyclically spreads any such part of the
file over every rank.  One exchange of the rows before the first pick, in rounds of
bounded size; the choice does not change (ties go to the lowest structure index,
whoever holds it).  Collective.
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


#: Rows (of every rank together) exchanged per round of the deal: the send buffer stays
#: below this many rows (32 MB at 63 values), whatever the data set's size.
DEAL_ROWS = 1 << 16


def deal_cyclic(comm, data, log_ref=None):
    """:class:`Candidates` of this rank: the structures ``s`` with ``s mod P`` = rank
    (collective; the data set as loaded: contiguous blocks of structures in rank order).

    The rows are exchanged in rounds of at most :data:`DEAL_ROWS` rows (whole structures
    of consecutive ids), each received straight into its place in one array of this
    rank's candidates in id order: the peak is the loaded rows, the dealt rows and one
    round's send buffer.
    """
    ent = np.asarray(data.entropies, float)
    if comm.size == 1:
        return Candidates(np.arange(data.lo, data.hi, dtype=np.int64), list(data.x), ent,
                          log_ref, data.h)
    size, me = comm.size, comm.rank
    counts = np.concatenate(pcomm.allgather(
        np.array([len(x) for x in data.x], dtype=np.int64), comm))
    ids = np.arange(me, len(counts), size, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts[ids])]).astype(np.int64)
    x = np.empty((int(starts[-1]), data.width))
    ref = None if log_ref is None else np.empty(len(x))
    at = 0
    for a, b in _rounds(counts, DEAL_ROWS):
        mine = np.arange(max(a, data.lo), min(b, data.hi), dtype=np.int64)
        mine = mine[np.argsort(mine % size, kind="stable")]  # by destination, ids ascending
        send = np.bincount(mine % size, weights=counts[mine], minlength=size).astype(np.int64)
        n = int(counts[a:b][np.arange(a, b) % size == me].sum())
        pcomm.alltoallv_rows(_rows(data.x, mine - data.lo, data.width), send, comm,
                             out=x[at:at + n])
        if ref is not None:
            pcomm.alltoallv_rows(_rows(log_ref, mine - data.lo, None), send, comm,
                                 out=ref[at:at + n])
        at += n
    every = np.concatenate(pcomm.allgather(ent, comm))  # in structure order (blocks)
    pieces = list(zip(starts[:-1], starts[1:]))
    return Candidates(ids, [x[i:j] for i, j in pieces], every[ids],
                      None if ref is None else [ref[i:j] for i, j in pieces], data.h)


def _rounds(counts, rows):
    """Runs ``[a, b)`` of structure ids of at most ``rows`` rows together (at least one
    structure each), covering every structure."""
    a, total = 0, 0
    for s, n in enumerate(counts.tolist()):
        if total and total + n > rows:
            yield a, s
            a, total = s, 0
        total += n
    if a < len(counts):
        yield a, len(counts)


def _rows(parts, which, width):
    """The arrays ``parts[i]`` for ``i`` in ``which``, one after another (2-D with
    ``width`` columns, or 1-D for ``width`` None)."""
    if len(which):
        return np.concatenate([parts[i] for i in which])
    return np.empty((0, width)) if width is not None else np.empty(0)
