"""One frame through the MPI pipeline, with per-stage wall times and memory.

Stages (names as in the timings): ``read`` (when a reader is used), ``distribute`` (grid +
atoms to their owners), ``halo`` (ghost exchange), ``descriptors`` (owned atoms, with
ghosts as neighbours), ``kernel_sums`` (dH of owned atoms against the reference) and
``reductions`` (counts, imbalance, dH summary, timings and memory to rank 0).

Input is what the parallel LAMMPS reader gives each rank: any subset of the frame's atoms
(``ids``, ``positions``, optionally ``types``) plus the frame's ``cell`` and ``pbc``, the
same on every rank.  No rank ever holds the whole frame.

Every function here is collective over ``comm``.
"""

import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from .. import geometry
from ..descriptors import DEFAULT_CUTOFF, DEFAULT_K, check_parameters, local_descriptors
from ..information import DEFAULT_BANDWIDTH
from . import measures
from .decomposition import OwnedAtoms, build_grid, distribute, imbalance
from .comm import gather_rows
from .halo import exchange_halo
from .runtime import collective_errors, current_memory_bytes, peak_memory_bytes

STAGES = ("read", "distribute", "halo", "descriptors", "kernel_sums", "reductions")


@dataclass
class FrameResult:
    """Per-rank result of :func:`run_frame`.

    Attributes
    ----------
    ids : ndarray of int64, shape (n_owned,)
        Owned atom ids, ascending.
    types : ndarray or None
    descriptors : ndarray, shape (n_owned, 2k-1), or None
        Kept when ``keep_descriptors``.
    dh : ndarray, shape (n_owned,) or (n_h, n_owned), or None
        dH of the owned atoms against the reference (None without one).
    n_ghosts : int
    timings : dict
        Wall seconds of each stage on this rank.
    grid : Grid
    summary : dict or None
        On ``root``: ``n_atoms``, ``dims``, per-rank ``atoms``/``ghosts``/``peak_memory``,
        ``imbalance`` (max/mean of owned atoms), per-stage ``timings_max``/``timings_min``
        over ranks, per-rank ``timings`` and ``cpu`` (process CPU seconds of each stage,
        all threads, waiting in the closing barrier excluded), and ``dh`` (from
        :func:`~quests_hpc.parallel.measures.summarize_dh`).
    """

    ids: np.ndarray
    types: np.ndarray
    descriptors: np.ndarray
    dh: np.ndarray
    n_ghosts: int
    timings: dict
    grid: object
    summary: dict = None
    memory: dict = field(default_factory=dict)
    timestep: int = None


class _Stages:
    """Wall time of successive stages (optionally closed by a barrier) and memory."""

    def __init__(self, comm, sync):
        self.comm, self.sync = comm, sync
        self.times, self.cpu, self.memory = {}, {}, {}
        self._t = time.perf_counter()
        self._c = time.process_time()

    def done(self, name):
        c = time.process_time()  # before the barrier: CPU of the work, not of the wait
        if self.sync:
            self.comm.Barrier()
        t = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + t - self._t
        self.cpu[name] = self.cpu.get(name, 0.0) + c - self._c
        self.memory[name] = current_memory_bytes()
        self._t = t
        self._c = time.process_time()


def compute_descriptors(comm, owned, ghosts, k, cutoff):
    """Descriptors of the owned atoms with the ghosts as extra neighbours (collective).

    A failure on one rank (e.g. two coincident atoms) raises on every rank.
    """
    with collective_errors(comm):
        if len(owned) == 0:
            return np.empty((0, 2 * k - 1))
        points = np.concatenate([owned.positions, ghosts.positions])
        labels = np.concatenate([owned.ids, ghosts.ids])
        return local_descriptors(points, len(owned), k, cutoff, labels=labels)


def run_frame(comm, ids, positions, cell, pbc, reference=None, *, types=None, k=DEFAULT_K,
              cutoff=DEFAULT_CUTOFF, h=DEFAULT_BANDWIDTH, dims=None, balance="uniform",
              keep_descriptors=True, threshold=0.0, sync_timings=True, root=0,
              timings=None, **sum_kwargs):
    """Descriptors and dH of every atom of one frame, distributed in space (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    ids : array_like of int, shape (n_local,)
        Unique atom ids of this rank's share of the frame (any split of the frame).
    positions : array_like, shape (n_local, 3)
    cell : array_like, shape (3, 3)
        Rows are the cell vectors (same on every rank).
    pbc : bool or 3 bools
    reference : SharedReference, optional
        Reference descriptors; without one, only descriptors are computed.  Give it on
        every rank or on none.
    types : array_like, optional
        Carried along with the atoms.
    k, cutoff : int, float
        Descriptor parameters (SPEC.md).
    h : float or sequence of float
        Bandwidth(s) for dH.
    dims : sequence of 3 int, optional
        Subdomains per axis (0 = choose).
    balance : {"uniform", "atoms"}
        Cut planes uniform in fractional coordinates, or at the atoms' quantiles.
    keep_descriptors : bool
        Keep the owned descriptors in the result (else dropped after the kernel sums).
    threshold : float
        dH above which an atom counts as novel in the summary.
    sync_timings : bool
        Close every stage with a barrier, so each stage's time includes its waiting.
    root : int
        Rank receiving the summary.
    timings : dict, optional
        Earlier stage times to include (e.g. ``{"read": t}`` from the reader).
    **sum_kwargs
        Passed to the kernel sums (``block_size``, ``d_max``).

    Returns
    -------
    FrameResult
    """
    k, cutoff = check_parameters(k, cutoff)
    stages = _Stages(comm, sync_timings)
    if timings:
        stages.times.update(timings)
    grid = build_grid(comm, positions, cell, pbc, dims=dims, balance=balance)
    owned = distribute(comm, grid, ids, positions, types)
    stages.done("distribute")
    return _finish(comm, grid, owned, reference, stages, k=k, cutoff=cutoff, h=h,
                   keep_descriptors=keep_descriptors, threshold=threshold, root=root,
                   **sum_kwargs)


def run_dump_frame(comm, dump, index=-1, reference=None, *, k=DEFAULT_K, cutoff=DEFAULT_CUTOFF,
                   h=DEFAULT_BANDWIDTH, dims=None, balance="uniform", keep_descriptors=True,
                   threshold=0.0, sync_timings=True, root=0, **sum_kwargs):
    """Read frame ``index`` of a LAMMPS dump in parallel and run the pipeline on it.

    The parallel reader (:class:`quests_hpc.parallel.dump_reader.ParallelDump` on ``comm``) parses a
    byte range per rank and sends every atom straight to its owner in the decomposition
    (its ``owner`` hook builds the grid from the parsed atoms), so the stage ``read``
    covers parsing and distribution; ``distribute`` is not reported separately.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    dump : quests_hpc.parallel.dump_reader.ParallelDump
        Opened with the same ``comm`` (and ``wrap=True``, the default).
    index : int
        Frame number (negative counts from the end).
    reference, k, cutoff, h, dims, balance, keep_descriptors, threshold, sync_timings, root
        As in :func:`run_frame`.

    Returns
    -------
    FrameResult
        With ``timestep`` set from the dump.
    """
    k, cutoff = check_parameters(k, cutoff)
    stages = _Stages(comm, sync_timings)
    holder = {}

    def owner(header, ids, positions):
        grid = build_grid(comm, positions, header.cell, header.pbc, dims=dims, balance=balance)
        holder["grid"] = grid
        if len(positions) == 0:
            return np.empty(0, dtype=np.int64)
        wrapped = geometry.wrap_positions(positions, grid.cell, grid.pbc)
        return grid.owner(grid.fractional(wrapped))

    frame = dump.read(index, owner=owner if comm.size > 1 else None)
    grid = holder.get("grid")
    if grid is None:  # one rank: the reader does not ask for owners
        grid = build_grid(comm, frame.positions, frame.cell, frame.pbc, dims=dims,
                          balance=balance)
    pos = frame.positions
    if len(pos):  # the serial core wraps the same way (idempotent on wrapped input)
        pos = geometry.wrap_positions(pos, grid.cell, grid.pbc)
    owned = OwnedAtoms(ids=frame.ids, positions=np.ascontiguousarray(pos), types=frame.types)
    del frame, pos
    stages.done("read")
    res = _finish(comm, grid, owned, reference, stages, k=k, cutoff=cutoff, h=h,
                  keep_descriptors=keep_descriptors, threshold=threshold, root=root,
                  **sum_kwargs)
    res.timestep = int(dump.timesteps[index])
    return res


def _finish(comm, grid, owned, reference, stages, *, k, cutoff, h, keep_descriptors,
            threshold, root, **sum_kwargs):
    """Halo, descriptors, kernel sums and reductions of distributed owned atoms."""
    ghosts = exchange_halo(comm, grid, owned, cutoff)
    stages.done("halo")

    desc = compute_descriptors(comm, owned, ghosts, k, cutoff)
    n_ghosts = len(ghosts)
    del ghosts
    stages.done("descriptors")

    dh = None
    if reference is not None:
        if reference.layout == "sharded":
            dh = -reference.log_kernel_sum(desc, h, **sum_kwargs)
        else:
            with collective_errors(comm):
                dh = -reference.log_kernel_sum(desc, h, **sum_kwargs)
        stages.done("kernel_sums")

    summary = _summarize(comm, grid, owned, n_ghosts, dh, threshold, stages, root)
    stages.done("reductions")
    if summary is not None:
        summary["timings_max"]["reductions"] = stages.times["reductions"]
    return FrameResult(
        ids=owned.ids, types=owned.types, descriptors=desc if keep_descriptors else None,
        dh=dh, n_ghosts=n_ghosts, timings=dict(stages.times), grid=grid, summary=summary,
        memory=dict(stages.memory),
    )


def _summarize(comm, grid, owned, n_ghosts, dh, threshold, stages, root):
    counts, imb = imbalance(comm, len(owned))
    ghosts = comm.gather(int(n_ghosts), root=root)
    peak = comm.gather(peak_memory_bytes(), root=root)
    times = comm.gather(dict(stages.times), root=root)
    cpu = comm.gather(dict(stages.cpu), root=root)
    dh_summary = measures.summarize_dh(comm, dh, threshold, root) if dh is not None else None
    if comm.rank != root:
        return None
    names = [s for s in STAGES if s in times[0]]
    return {
        "n_atoms": int(counts.sum()),
        "ranks": comm.size,
        "dims": grid.dims.tolist(),
        "atoms": counts.tolist(),
        "ghosts": ghosts,
        "imbalance": imb,
        "peak_memory": peak,
        "timings_max": {s: max(t[s] for t in times) for s in names},
        "timings_min": {s: min(t[s] for t in times) for s in names},
        "timings": times,
        "cpu": cpu,
        "dh": dh_summary,
    }


def gather_by_id(comm, result, root=0):
    """Gather ids, descriptors and dH of every atom to ``root``, sorted by id (collective).

    For tests and small frames only (the root holds the whole frame's results).

    Returns
    -------
    dict or None
        On ``root``: ``ids``, and ``descriptors`` / ``dh`` where the result has them.
    """
    out = {"ids": gather_rows(result.ids, comm, root)}
    if comm.allreduce(result.descriptors is not None, op=MPI.LAND):
        out["descriptors"] = gather_rows(result.descriptors, comm, root)
    if comm.allreduce(result.dh is not None, op=MPI.LAND):
        out["dh"] = gather_rows(np.atleast_2d(result.dh).T, comm, root)
    if comm.rank != root:
        return None
    order = np.argsort(out["ids"], kind="stable")
    res = {"ids": out["ids"][order]}
    if "descriptors" in out:
        res["descriptors"] = out["descriptors"][order]
    if "dh" in out:
        d = out["dh"][order].T
        res["dh"] = d[0] if np.ndim(result.dh) == 1 else d
    return res
