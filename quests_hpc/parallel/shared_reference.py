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
from .comm import bcast_into, collective_errors

LAYOUTS = ("auto", "shared", "sharded")


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


def ring_log_kernel_sum(comm, y, x_local, h, **kwargs):
    """``log S`` of local test rows against the union of every rank's ``x_local`` rows.

    Each rank's block of ``x`` travels once around the ring (``size - 1`` non-blocking
    sends to ``rank + 1`` / receives from ``rank - 1``, overlapped with the kernel sums);
    the full ``x`` is never held anywhere.  Collective.

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
    with collective_errors(comm):  # bad input fails every rank before any message is posted
        x_local = np.ascontiguousarray(x_local, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        _check_block(y, "y")
        _check_block(x_local, "x_local")
        hs = np.atleast_1d(np.asarray(h, dtype=np.float64))
        if hs.ndim != 1 or hs.size == 0 or not (np.isfinite(hs) & (hs > 0)).all():
            raise QuestsInputError(f"h must be a bandwidth > 0 or a list of them, got {h!r}")
    d = x_local.shape[1]
    rows = comm.allgather(len(x_local))
    widths = set(comm.allgather(d if len(x_local) else None)) - {None}
    with collective_errors(comm):
        if len(widths) > 1:
            raise QuestsInputError(
                f"reference blocks have different widths on different ranks: {sorted(widths)}")
        if len(y) and widths and y.shape[1] not in widths:
            raise QuestsInputError(
                f"test rows have width {y.shape[1]}, the reference {min(widths)}")
    d = widths.pop() if widths else max(d, 1)
    cap = max(rows)
    size, rank = comm.size, comm.rank
    cur = np.zeros((cap, d))
    cur[: len(x_local)] = x_local
    nxt = np.empty_like(cur)
    acc = _empty_log_sums(len(y), h)
    src = rank
    for step in range(size):
        reqs = []
        if step < size - 1:
            reqs = [comm.Irecv(nxt, source=(rank - 1) % size, tag=7),
                    comm.Isend(cur, dest=(rank + 1) % size, tag=7)]
        part = _log_sum_block(y, cur[: rows[src]], h, **kwargs)
        acc = np.logaddexp(acc, part)
        if reqs:
            MPI.Request.Waitall(reqs)
            cur, nxt = nxt, cur
            src = (src - 1) % size
    return acc


class SharedReference:
    """Reference descriptors available to every rank (see the module docstring).

    Build with :meth:`from_root` (array on world rank 0, e.g. computed or loaded there)
    or :meth:`from_shards` (each rank already holds a slice, e.g. read in parallel).
    Call :meth:`free` (or use as a context manager) before ``MPI.Finalize``.

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
    """

    def __init__(self, comm, layout, n, dim, local, win=None, node=None):
        self.comm = comm
        self.layout = layout
        self.n = int(n)
        self.dim = int(dim)
        self.local = local
        self._win = win
        self._node = node

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
        meta = None
        if comm.rank == root:
            x = np.ascontiguousarray(x, dtype=np.float64)
            meta = x.shape if x.ndim == 2 else ("bad", x.shape)
        meta = comm.bcast(meta, root=root)
        if meta[0] == "bad":
            raise QuestsInputError(f"reference must be a 2-D (n, d) array, got shape {meta[1]}")
        n, d = meta
        chosen = cls._choose(layout, n * d * 8, memory_budget)
        if chosen == "sharded":
            counts = np.array([(n * (r + 1)) // comm.size - (n * r) // comm.size
                               for r in range(comm.size)], dtype=np.int64)
            local = np.empty((counts[comm.rank], d))
            displ = np.concatenate([[0], np.cumsum(counts)[:-1]])
            t = MPI.DOUBLE.Create_contiguous(d).Commit()
            try:
                send = [x, (counts, displ), t] if comm.rank == root else None
                comm.Scatterv(send, [local, len(local), t], root=root)
            finally:
                t.Free()
            return cls(comm, "sharded", n, d, local)
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
        """Build from row slices already spread over the ranks (in rank order)."""
        x_local = np.ascontiguousarray(x_local, dtype=np.float64)
        if x_local.ndim != 2:
            raise QuestsInputError(f"reference shard must be 2-D, got shape {x_local.shape}")
        rows = comm.allgather(x_local.shape)
        n = sum(r[0] for r in rows)
        d = max(r[1] for r in rows)
        chosen = cls._choose(layout, n * d * 8, memory_budget)
        if chosen == "sharded":
            return cls(comm, "sharded", n, d, x_local)
        from .comm import gather_rows

        full = gather_rows(x_local, comm, root=0)
        return cls.from_root(comm, full, root=0, layout="shared")

    # ------------------------------------------------------------------ use

    def log_kernel_sum(self, y, h, **kwargs):
        """``log S`` of the local test rows ``y`` against the whole reference (collective).

        ``"shared"``: a local computation on the node's copy; ``"sharded"``: a ring pass.
        Every rank must call it (with its own, possibly empty, ``y``).
        """
        if self.layout == "sharded":
            return ring_log_kernel_sum(self.comm, y, self.local, h, **kwargs)
        return _log_sum_block(np.ascontiguousarray(y, dtype=np.float64), self.local, h, **kwargs)

    def local_nbytes(self):
        """Bytes of reference this rank holds (its node's window counts once, on node rank 0)."""
        if self.layout == "sharded":
            return int(self.local.nbytes) * 2  # own shard + ring receive buffer
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
