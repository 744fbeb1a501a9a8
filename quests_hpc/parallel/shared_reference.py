"""Reference descriptors shared by all ranks: one copy per node, or shards on a ring.

Two layouts, chosen by the size of the reference against a memory budget:

``"shared"``
    The whole ``(n_ref, d)`` array lives once per node in an MPI-3 shared-memory window
    (``MPI.Win.Allocate_shared`` on the node communicator from ``Split_type``); every rank
    of the node reads it in place.  It is filled by broadcasting from world rank 0 to the
    first rank of each node only, so a 10-million-environment reference (5 GB) costs 5 GB
    per node, not per rank.
``"sharded"``
    When ``n_ref * d * 8`` bytes exceed ``memory_budget`` (bytes per node), the rows are
    split evenly over all ranks and every kernel sum is a ring pass
    (:func:`ring_log_kernel_sum`): each rank sums its test rows against the shard it holds,
    passes the shard to the next rank and receives the previous rank's, ``size`` times, and
    combines the partial ``log S`` with ``np.logaddexp`` -- the same result to rounding.

All methods are collective unless stated otherwise.
"""

import numpy as np
from mpi4py import MPI

from .. import information
from ..errors import QuestsInputError
from .comm import (alltoallv_rows, bcast_into, collective_errors, even_bounds, raise_if_any,
                   row_type)

LAYOUTS = ("auto", "shared", "sharded")
_RING_TAG = 7


def _empty_log_sums(n_y, h):
    hs = np.atleast_1d(np.asarray(h, dtype=np.float64))
    shape = (n_y,) if np.ndim(h) == 0 else (hs.size, n_y)
    return np.full(shape, -np.inf)


def _log_sum_block(y, x, h, **kwargs):
    """``log_kernel_sum`` tolerating empty ``y`` or ``x`` (an empty sum is ``-inf``)."""
    if len(y) == 0 or len(x) == 0:
        return _empty_log_sums(len(y), h)
    return information.log_kernel_sum(y, x, h, **kwargs)


def _check_block(a, name):
    if a.ndim != 2 or (len(a) and a.shape[1] == 0):
        raise QuestsInputError(f"{name} must be a 2-D (n, d) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise QuestsInputError(f"{name} has non-finite entries")


def _check_ring_inputs(comm, y, x_local, h):
    """Validate the inputs of a ring pass on every rank (collective; errors reach all).

    Returns ``(y, x_local, rows, d)``: float64 C-contiguous arrays, every rank's row count
    and the common width.
    """
    with collective_errors(comm):  # bad input fails every rank before any message is posted
        x_local = np.ascontiguousarray(x_local, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        _check_block(y, "y")
        _check_block(x_local, "x_local")
        hs = np.atleast_1d(np.asarray(h, dtype=np.float64))
        if hs.ndim != 1 or hs.size == 0 or not (np.isfinite(hs) & (hs > 0)).all():
            raise QuestsInputError(f"h must be a bandwidth > 0 or a list of them, got {h!r}")
    d = x_local.shape[1]
    info = comm.allgather((len(x_local), d if len(x_local) else None))
    rows = [r for r, _ in info]
    widths = {w for _, w in info} - {None}
    with collective_errors(comm):
        if len(widths) > 1:
            raise QuestsInputError(
                f"reference blocks have different widths on different ranks: {sorted(widths)}")
        if len(y) and widths and y.shape[1] not in widths:
            raise QuestsInputError(
                f"test rows have width {y.shape[1]}, the reference {min(widths)}")
    d = widths.pop() if widths else max(d, 1)
    if x_local.shape[1] != d:  # an empty block of another width
        x_local = np.empty((0, d))
    return y, x_local, rows, d


def _ring(comm, y, cur, rows, h, *, spare, home=False, owned=True, **kwargs):
    """The ring pass proper: ``cur[:rows[rank]]`` is this rank's block (collective).

    Step ``s`` sums ``y`` against the block of rank ``rank - s`` while that block goes on
    to ``rank + 1`` and the next arrives from ``rank - 1`` (non-blocking, overlapped with
    the sum); a message carries exactly the block's rows (one MPI row datatype).
    ``spare()`` gives a receive buffer of ``(max(rows), d)``: asked for once when ``cur``
    is ``owned`` (it is received into after being sent), twice otherwise (``cur`` is the
    caller's and only read).  With ``home=True`` the last step passes the blocks once more,
    so every block is back on its rank at the end.

    Returns
    -------
    acc : ndarray
        ``log S`` combined over all blocks with ``np.logaddexp``.
    buffer : ndarray
        The buffer holding this rank's own block at the end (with ``home=True``).
    """
    size, rank = comm.size, comm.rank
    acc = _empty_log_sums(len(y), h)
    if size == 1:
        return np.logaddexp(acc, _log_sum_block(y, cur[: rows[0]], h, **kwargs)), cur
    nxt = None
    t = row_type(np.float64, (cur.shape[1],))
    src = rank
    error = None
    try:
        for step in range(size):
            shift = step < size - 1 or home
            reqs = []
            if shift:
                nxt = spare() if nxt is None else nxt
                prev = (src - 1) % size  # the block the previous rank holds now
                reqs = [comm.Irecv([nxt, rows[prev], t], source=(rank - 1) % size, tag=_RING_TAG),
                        comm.Isend([cur, rows[src], t], dest=(rank + 1) % size, tag=_RING_TAG)]
            try:
                if error is None:  # after a failure the blocks still travel, unused
                    acc = np.logaddexp(acc, _log_sum_block(y, cur[: rows[src]], h, **kwargs))
            except Exception as exc:  # noqa: BLE001 -- raised on every rank after the ring
                error = exc
            finally:
                if reqs:
                    MPI.Request.Waitall(reqs)
            if shift:
                cur, nxt = nxt, (cur if owned else None)
                owned = True
                src = (src - 1) % size
    finally:
        t.Free()
    # a block that fails on one rank (e.g. a bandwidth too small for its rows) fails every
    # rank here, once every message of the ring has been matched
    raise_if_any(error, comm)
    return acc, cur


def ring_log_kernel_sum(comm, y, x_local, h, **kwargs):
    """``log S`` of local test rows against the union of every rank's ``x_local`` rows.

    Each rank's block of ``x`` travels once around the ring (``size - 1`` non-blocking
    sends to ``rank + 1`` / receives from ``rank - 1``, overlapped with the kernel sums);
    the full ``x`` is never held anywhere.  Memory beyond ``x_local`` (which is only
    read): two buffers of the largest block (one on two ranks).  Collective.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    y : ndarray, shape (n_y, d)
        This rank's test rows (may be empty).
    x_local : ndarray, shape (n_x_local, d)
        This rank's block of the reference (may be empty).
    h : float or sequence of float
    **kwargs
        Passed to :func:`quests_hpc.information.log_kernel_sum` (``block_size``, ``d_max``).

    Returns
    -------
    ndarray, shape (n_y,) or (n_h, n_y)
        Partial sums combined with ``np.logaddexp``: equal to the serial
        ``log_kernel_sum(y, concatenate(all x_local), h)`` to rounding.
    """
    y, x_local, rows, d = _check_ring_inputs(comm, y, x_local, h)
    cap = max(rows)
    acc, _ = _ring(comm, y, x_local, rows, h, spare=lambda: np.empty((cap, d)), owned=False,
                   **kwargs)
    return acc


def _overlaps(lo, hi, bounds):
    """Rows of ``[lo, hi)`` inside each part ``[bounds[r], bounds[r+1])`` (int64 array)."""
    bounds = np.asarray(bounds, dtype=np.int64)
    return np.clip(np.minimum(bounds[1:], hi) - np.maximum(bounds[:-1], lo), 0, None)


class SharedReference:
    """Reference descriptors available to every rank (see the module docstring).

    Build with :meth:`from_root` (array on world rank 0, e.g. computed or loaded there)
    or :meth:`from_shards` (each rank already holds a slice, e.g. read in parallel).
    Call :meth:`free` (or use as a context manager) before ``MPI.Finalize``.

    Memory of the ``"sharded"`` layout: rank ``r`` holds the rows
    ``[shard_offsets[r], shard_offsets[r+1])`` of an even split, in a buffer of the
    largest shard (at most one row more), plus, during a kernel sum, one ring buffer of
    that size; no rank ever holds more, and the whole reference is never on one rank.

    Attributes
    ----------
    layout : {"shared", "sharded"}
    n : int
        Reference rows in total.
    dim : int
        Descriptor length.
    local : ndarray
        ``"shared"``: the whole reference (a view of the node's shared window, read only
        by convention); ``"sharded"``: this rank's rows.
    shard_offsets : ndarray of int64, shape (size + 1,)
        ``"sharded"``: first global row of every rank's shard (and ``n``); ``"shared"``:
        ``[0, n, n, ...]`` (rank 0's "shard" is everything; see :meth:`local_rows`).
    """

    def __init__(self, comm, layout, n, dim, local, win=None, node=None, buffer=None,
                 offsets=None):
        self.comm = comm
        self.layout = layout
        self.n = int(n)
        self.dim = int(dim)
        self.local = local
        self._win = win
        self._node = node
        self._buf = buffer  # "sharded": local is self._buf[:rows]
        if offsets is None:
            offsets = np.full(comm.size + 1, self.n, dtype=np.int64)
            offsets[0] = 0
        self.shard_offsets = np.asarray(offsets, dtype=np.int64)

    def local_rows(self):
        """Global rows held in :attr:`local`: a ``slice`` (all of them when shared)."""
        if self.layout == "sharded":
            r = self.comm.rank
            return slice(int(self.shard_offsets[r]), int(self.shard_offsets[r + 1]))
        return slice(0, self.n)

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _choose(layout, nbytes, memory_budget):
        if layout not in LAYOUTS:
            raise QuestsInputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if layout != "auto":
            return layout
        if memory_budget is None or nbytes <= memory_budget:
            return "shared"
        return "sharded"

    @classmethod
    def _sharded(cls, comm, n, d, fill):
        """An even split: allocate this rank's shard buffer and ``fill(rows_view)`` it."""
        bounds = even_bounds(n, comm.size)
        counts = np.diff(bounds)
        buf = np.empty((int(counts.max()) if len(counts) else 0, d))
        local = buf[: int(counts[comm.rank])]
        fill(local, bounds)
        return cls(comm, "sharded", n, d, local, buffer=buf, offsets=bounds)

    @classmethod
    def from_root(cls, comm, x=None, root=0, layout="auto", memory_budget=None):
        """Share the array ``x`` given on rank ``root`` (ignored elsewhere).

        Parameters
        ----------
        comm : mpi4py.MPI.Comm
        x : ndarray, shape (n, d), on ``root``
        root : int
        layout : {"auto", "shared", "sharded"}
        memory_budget : int, optional
            Bytes per node the reference may take; above it, ``"auto"`` shards.
        """
        meta, err = None, None
        if comm.rank == root:
            try:
                x = np.ascontiguousarray(x, dtype=np.float64)
                if x.ndim != 2:
                    raise QuestsInputError(f"reference must be a 2-D (n, d) array, got shape "
                                           f"{x.shape}")
                meta = x.shape
            except Exception as exc:  # noqa: BLE001 -- raised on every rank below
                err = exc
        raise_if_any(err, comm, prefix=False, root=root)
        n, d = comm.bcast(meta, root=root)
        chosen = cls._choose(layout, n * d * 8, memory_budget)
        if chosen == "sharded":
            def scatter(local, bounds):
                counts = np.diff(bounds)
                t = row_type(np.float64, (d,))
                try:
                    send = [x, (counts, bounds[:-1]), t] if comm.rank == root else None
                    comm.Scatterv(send, [local, len(local), t], root=root)
                finally:
                    t.Free()

            return cls._sharded(comm, n, d, scatter)
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
        # Root's data must reach the first rank of every node: broadcast over leaders.
        is_leader = node.rank == 0
        leaders = comm.Split(0 if is_leader else MPI.UNDEFINED, key=0 if comm.rank == root else 1 + comm.rank)
        nbytes = n * d * 8 if is_leader else 0
        win = MPI.Win.Allocate_shared(nbytes, 8, comm=node)
        buf, _ = win.Shared_query(0)
        arr = np.ndarray(buffer=buf, dtype=np.float64, shape=(n, d))
        win.Fence()
        root_on_leader = comm.bcast(is_leader if comm.rank == root else None, root=root)
        if not root_on_leader:
            # Root is not first on its node: hand the array to world rank 0's leader path.
            if comm.rank == root:
                comm.Send([x, MPI.DOUBLE], dest=0, tag=11)
            if comm.rank == 0:
                comm.Recv([arr, MPI.DOUBLE], source=root, tag=11)
        elif comm.rank == root:
            arr[...] = x
        if is_leader:
            bcast_into(arr, leaders, root=0)
            leaders.Free()
        win.Fence()
        return cls(comm, "shared", n, d, arr, win=win, node=node)

    @classmethod
    def from_shards(cls, comm, x_local, layout="auto", memory_budget=None):
        """Build from row slices already spread over the ranks (in rank order; any sizes,
        some may be empty).  Collective.

        ``"sharded"``: the rows are moved to an even split by one ``Alltoallv``, straight
        into each rank's shard buffer -- never gathered on one rank; this rank then holds
        ``x_local`` (the caller's, not kept) and its new shard only.  ``"shared"``: gathered
        on rank 0 and put in every node's window (:meth:`from_root`).
        """
        with collective_errors(comm):
            x_local = np.ascontiguousarray(x_local, dtype=np.float64)
            if x_local.ndim != 2:
                raise QuestsInputError(f"reference shard must be 2-D, got shape {x_local.shape}")
        rows = comm.allgather(x_local.shape)
        widths = sorted({r[1] for r in rows if r[0]})
        if len(widths) > 1:
            raise QuestsInputError(
                f"reference shards have different widths on different ranks: {widths}")
        n = sum(r[0] for r in rows)
        d = widths[0] if widths else max(r[1] for r in rows)
        if x_local.shape[1] != d:  # an empty shard of another width
            x_local = np.empty((0, d))
        chosen = cls._choose(layout, n * d * 8, memory_budget)
        if chosen == "sharded":
            src = np.concatenate([[0], np.cumsum([r[0] for r in rows])]).astype(np.int64)

            def move(local, bounds):
                rank = comm.rank
                send = _overlaps(src[rank], src[rank + 1], bounds)
                recv = _overlaps(bounds[rank], bounds[rank + 1], src)
                alltoallv_rows(x_local, send, comm, recv_counts=recv, out=local)

            return cls._sharded(comm, n, d, move)
        from .comm import gather_rows

        full = gather_rows(x_local, comm, root=0)
        return cls.from_root(comm, full, root=0, layout="shared")

    # ------------------------------------------------------------------ use

    def log_kernel_sum(self, y, h, **kwargs):
        """``log S`` of the local test rows ``y`` against the whole reference (collective).

        ``"shared"``: a local computation on the node's copy; ``"sharded"``: a ring pass
        through this rank's shard buffer and one ring buffer of the same size, after which
        every shard is back on its rank.  Every rank must call it (with its own, possibly
        empty, ``y``); bad ``y`` or ``h`` on any rank raises on every rank.
        """
        if self.layout != "sharded":
            return _log_sum_block(np.ascontiguousarray(y, dtype=np.float64), self.local, h,
                                  **kwargs)
        y, _, rows, d = _check_ring_inputs(self.comm, y, self.local, h)
        acc, self._buf = _ring(self.comm, y, self._buf, rows, h, home=True,
                               spare=lambda: np.empty_like(self._buf), **kwargs)
        self.local = self._buf[: rows[self.comm.rank]]
        return acc

    def local_nbytes(self):
        """Bytes of reference this rank holds at most (its node's window counts once, on
        node rank 0; a shard counts its buffer and the ring buffer of a kernel sum)."""
        if self.layout == "sharded":
            return 2 * int(self._buf.nbytes)
        return int(self.local.nbytes) if self._node.rank == 0 else 0

    def free(self):
        """Release the shared window and node communicator (collective)."""
        if self._win is not None:
            self.local = None
            self._win.Free()
            self._win = None
        if self._node is not None:
            self._node.Free()
            self._node = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()
        return False
