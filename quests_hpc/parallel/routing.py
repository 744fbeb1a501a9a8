"""Route parsed atoms to their owner ranks (collective; the reader's ownership step).

The parsed columns of a rank are a dict ``{"ids": (n,), "pos": (n, 3), ...}`` of
C-contiguous arrays (see :meth:`quests_hpc.io.atoms_block.Rows.columns`).  Memory is
kept to a small multiple of the positions a rank holds: rows are grouped by destination
in place and exchanged one array at a time (:func:`.comm.alltoallv_rows`,
:func:`.comm.redistribute`), and the final order by id is made one array at a time
(:mod:`quests_hpc.io.id_order`, the serial half).

* :func:`even_split_by_id` -- rank ``r`` gets the atoms at positions
  ``[r*N//P, (r+1)*N//P)`` of the frame sorted by id, whatever the rank count (owners
  found arithmetically for dense ids, else by a collective bisection over id values);
* :func:`exchange_placed` -- after a placement parse (ids ``1..N``), the rows parsed for
  other ranks go to them and are scattered into place;
* :func:`send_to_owners` -- any other owner map (the MPI pipeline's spatial
  decomposition), in one exchange, then a local sort by id.

Every function takes a real communicator (``MPI.COMM_SELF`` for a serial run).
Duplicate ids are detected in every path and reported on every rank.
"""

import time

import numpy as np

from ..errors import QuestsInputError
from ..io import _kernels as K
from ..io.id_order import dup_message, local_id_range, order_dense, order_sparse, row_view
from . import comm as pcomm

__all__ = ["even_split_by_id", "exchange_placed", "send_to_owners", "global_id_range"]


def _sparse_splitters(sorted_ids, natoms, gmin, gmax, comm):
    """Smallest id of the shares of ranks 1..P-1, by a collective bisection on values."""
    _, size = pcomm.rank_size(comm)
    bounds = pcomm.even_bounds(natoms, size)[1:-1]  # sorted position of each share start
    lo = np.full(size - 1, gmin, dtype=np.int64)
    hi = np.full(size - 1, gmax + 1, dtype=np.int64)
    # smallest v with count(ids <= v) >= bound + 1 (gmax + 1 when the share is empty)
    while True:
        active = lo < hi
        mid = lo + (hi - lo) // 2
        c = np.searchsorted(sorted_ids, mid, side="right").astype(np.int64)
        c = np.append(c, np.int64(active.any()))
        c = pcomm.allreduce(c, "sum", comm)
        if c[-1] == 0:
            break
        ok = c[:-1] >= bounds + 1
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)
    return lo


def global_id_range(ids, comm):
    """``(min, max)`` id over all ranks (collective)."""
    mn, mx = local_id_range(ids)
    ext = pcomm.allreduce(np.array([mn, -mx], dtype=np.int64), "min", comm)
    return int(ext[0]), -int(ext[1])


_EMPTY = {"types": np.zeros(0, np.int32), "fext": np.zeros((0, 0)),
          "iext": np.zeros((0, 0), np.int64), "sext": np.zeros((0, 0), np.int64)}


def _partition(cols, mode, gmin, natoms, split, size):
    """Group all columns by owner in place (one pass); counts per rank."""
    t, f, i, s = (cols.get(k, _EMPTY[k]) for k in ("types", "fext", "iext", "sext"))
    return K.partition_columns(cols["ids"], t, cols["pos"], f, i, s, mode, gmin, natoms, split,
                               size)


def even_split_by_id(cols, natoms, comm, where="", timings=None, id_range=None):
    """MPI: give rank ``r`` the atoms ``[r*N//P, (r+1)*N//P)`` of the id-sorted frame.

    Collective.  ``cols`` is consumed.  ``timings`` (a dict) receives the time of each
    step.  ``id_range``: the global ``(min, max)`` id when the caller already knows it
    (saves a collective).

    Returns
    -------
    cols : dict
        This rank's share, sorted by id.
    first : int
        Position of the share's first atom in the id-sorted frame.
    """
    clock = [time.perf_counter()]

    def lap(name):
        clock.append(time.perf_counter())
        if timings is not None:
            timings[name] = clock[-1] - clock[-2]

    rank, size = pcomm.rank_size(comm)
    ids = cols["ids"]
    if id_range is not None:
        gmin, gmax = (int(v) for v in id_range)
    else:
        gmin, gmax = global_id_range(ids, comm)
    bounds = pcomm.even_bounds(natoms, size)
    dense = natoms > 0 and gmax - gmin + 1 == natoms
    lap("id_range")
    if dense:
        # owner by comparison with the first id of every share (no integer division)
        mode, split = 1, (gmin + bounds[1:-1]).astype(np.int64)
    else:
        s = np.sort(ids)
        split = _sparse_splitters(s, natoms, gmin, gmax, comm)
        mode = 1
        del s
    del ids
    lap("splitters")
    counts = _partition(cols, mode, gmin, natoms, split, size)
    lap("partition")
    recv_counts = np.empty_like(counts)
    if size > 1:
        comm.Alltoall(counts, recv_counts)
    else:
        recv_counts[:] = counts
    lap("counts")
    out = {}
    for name in ("pos", "ids", "types", "fext", "iext", "sext"):
        if name in cols:
            a = cols.pop(name)
            out[name], _ = pcomm.alltoallv_rows(a, counts, comm, recv_counts)
            del a
    lap("exchange")
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    dup = False
    if dense:
        bad = int(K.dense_check(out["ids"], gmin + lo, hi - lo))
        if bad == -1:
            order_dense(out, gmin + lo)
        else:
            dup = bad if bad != gmin + lo - 1 else None
    else:
        d = order_sparse(out)
        if d is not None or len(out["ids"]) != hi - lo:
            dup = d
    lap("order")
    # one integer allreduce in the common case; messages only gathered on failure
    if pcomm.allreduce(np.int64(dup is not False), "max", comm):
        err = None if dup is False else QuestsInputError(dup_message(where, dup))
        pcomm.raise_if_any(err, comm)
    lap("final_check")
    return out, lo


def exchange_placed(own, out, own_lo, natoms, comm, where="", timings=None):
    """MPI, after a placement parse: send the outgoing rows to their owners.

    ``own`` holds this rank's share with rows already at ``id - own_lo`` (ids of the
    empty rows are 0); ``out`` the rows parsed here for other ranks (dense ids
    ``1 .. natoms``, even split).  Received rows are scattered into ``own``.  Collective;
    ``out`` is consumed.  Raises (on every rank) on a duplicate id.
    """
    t0 = time.perf_counter()
    rank, size = pcomm.rank_size(comm)
    split = (1 + pcomm.even_bounds(natoms, size)[1:-1]).astype(np.int64)
    counts = _partition(out, 1, 1, natoms, split, size)
    recv_counts = np.empty_like(counts)
    comm.Alltoall(counts, recv_counts)
    t1 = time.perf_counter()
    a = out.pop("ids")
    rids, _ = pcomm.alltoallv_rows(a, counts, comm, recv_counts)
    del a
    bad = int(K.place_ids(rids, own_lo, own["ids"]))
    for name in ("pos", "types", "fext", "iext", "sext"):
        if name in out:
            a = out.pop(name)
            r, _ = pcomm.alltoallv_rows(a, counts, comm, recv_counts)
            del a
            if bad == -1 and len(r) and r.size:
                K.scatter_rows(row_view(r), rids, own_lo, row_view(own[name]))
            del r
    t2 = time.perf_counter()
    if pcomm.allreduce(np.int64(bad != -1), "max", comm):
        err = None if bad == -1 else QuestsInputError(dup_message(where, bad))
        pcomm.raise_if_any(err, comm)
    if timings is not None:
        timings.update(partition=t1 - t0, exchange=t2 - t1, final_check=time.perf_counter() - t2)


def send_to_owners(cols, dest, comm, where=""):
    """MPI: send every atom to rank ``dest[i]``, then sort each rank's atoms by id.

    Collective.  ``cols`` is consumed.  Returns this rank's columns.
    """
    names = list(cols)
    arrays = [cols.pop(k) for k in names]
    received = pcomm.redistribute(arrays, dest, comm)
    out = dict(zip(names, received))
    del received
    dup = order_sparse(out)
    err = None if dup is None else QuestsInputError(dup_message(where, dup))
    pcomm.raise_if_any(err, comm)
    return out
