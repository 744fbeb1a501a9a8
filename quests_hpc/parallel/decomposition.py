"""Spatial domain decomposition of one frame over MPI ranks.

The cell is cut into a Cartesian grid of ``dims[0] x dims[1] x dims[2]`` subdomains in
*fractional* coordinates of the complete cell (:func:`quests_hpc.geometry.complete_cell`),
so any right- or left-handed triclinic cell is handled like an orthogonal one.  Along a
periodic axis the grid spans ``[0, 1)``; along a non-periodic axis it spans the extent of
the atoms (a global min/max).  Rank ``r`` has grid coordinates in row-major order, as in
``MPI_Cart_create``: ``r = (i * dims[1] + j) * dims[2] + l``.

Cut planes are uniform by default (``balance="uniform"``); ``balance="atoms"`` places the
cuts of every axis at quantiles of the atoms' marginal distribution along that axis, which
evens out clustered frames while keeping a Cartesian grid.

All functions taking ``comm`` are collective.
"""

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .. import geometry
from ..errors import QuestsInputError
from .exchange import alltoallv_rows
from .runtime import collective_errors

BALANCE_MODES = ("uniform", "atoms")
_HIST_BINS = 4096


@dataclass
class Grid:
    """A Cartesian grid of subdomains over a cell.

    Attributes
    ----------
    cell : ndarray, shape (3, 3)
        Complete cell (rows are vectors; non-periodic rows are unit normals).
    inv_cell : ndarray, shape (3, 3)
        Its inverse: ``frac = positions @ inv_cell``.
    pbc : ndarray of bool, shape (3,)
    dims : ndarray of int64, shape (3,)
        Subdomains per axis; ``prod(dims) == comm.size``.
    cuts : tuple of 3 ndarrays
        ``cuts[a]`` has ``dims[a] + 1`` increasing fractional coordinates; subdomain
        ``i`` along axis ``a`` is ``[cuts[a][i], cuts[a][i + 1])``.  Along a non-periodic
        axis the outer cuts are the atoms' extent and are open-ended for ownership.
    widths : ndarray, shape (3,)
        Perpendicular widths of the complete cell (Å).
    """

    cell: np.ndarray
    inv_cell: np.ndarray
    pbc: np.ndarray
    dims: np.ndarray
    cuts: tuple
    widths: np.ndarray

    @property
    def size(self):
        """Number of subdomains (ranks)."""
        return int(np.prod(self.dims))

    def fractional(self, positions):
        """Fractional coordinates of ``positions`` (shape (N, 3))."""
        return np.asarray(positions, dtype=np.float64) @ self.inv_cell

    def coords_of(self, frac):
        """Grid coordinates ``(N, 3)`` of the subdomains owning fractional points ``frac``."""
        frac = np.atleast_2d(frac)
        out = np.empty((len(frac), 3), dtype=np.int64)
        for a in range(3):
            out[:, a] = np.searchsorted(self.cuts[a][1:-1], frac[:, a], side="right")
        return out

    def rank_of_coords(self, coords):
        """Rank of grid coordinates (row-major, as ``MPI_Cart_create``)."""
        coords = np.asarray(coords, dtype=np.int64)
        return (coords[..., 0] * self.dims[1] + coords[..., 1]) * self.dims[2] + coords[..., 2]

    def coords_of_rank(self, rank):
        """Grid coordinates of ``rank``."""
        d1, d2 = int(self.dims[1]), int(self.dims[2])
        return np.array([rank // (d1 * d2), (rank // d2) % d1, rank % d2], dtype=np.int64)

    def owner(self, frac):
        """Owner rank of each fractional point."""
        return self.rank_of_coords(self.coords_of(frac))

    def bounds(self, rank):
        """Fractional ``(lo, hi)`` of the subdomain of ``rank`` (shape (3,) each)."""
        c = self.coords_of_rank(rank)
        lo = np.array([self.cuts[a][c[a]] for a in range(3)])
        hi = np.array([self.cuts[a][c[a] + 1] for a in range(3)])
        return lo, hi


def choose_dims(size, lengths, dims=None):
    """Subdomains per axis for ``size`` ranks.

    ``MPI.Compute_dims`` gives the factorisation; its factors go to the axes in order of
    decreasing length, so the longest axis gets the most cuts.  Entries of ``dims`` that
    are non-zero are kept (as in ``MPI_Dims_create``); zero entries are filled.

    Parameters
    ----------
    size : int
    lengths : array_like, shape (3,)
        Length of the region to cut along each axis (Å); a zero length gets factor 1 where
        possible.
    dims : sequence of 3 int, optional

    Returns
    -------
    ndarray of int64, shape (3,)
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    given = np.zeros(3, dtype=np.int64) if dims is None else np.asarray(dims, dtype=np.int64)
    if given.shape != (3,) or (given < 0).any():
        raise QuestsInputError(f"dims must be 3 non-negative integers, got {dims!r}")
    fixed = int(np.prod(given[given > 0])) if (given > 0).any() else 1
    if size % fixed:
        raise QuestsInputError(f"dims {given.tolist()} do not divide {size} ranks")
    free = np.flatnonzero(given == 0)
    out = given.copy()
    if len(free):
        factors = sorted(MPI.Compute_dims(size // fixed, len(free)), reverse=True)
        order = free[np.argsort(-lengths[free], kind="stable")]
        out[order] = factors
    elif fixed != size:
        raise QuestsInputError(f"dims {given.tolist()} give {fixed} subdomains, not {size}")
    return out


def _global_extent(comm, frac, pbc):
    """Global min/max of fractional coordinates along non-periodic axes ([0, 1] if periodic)."""
    lo = np.where(pbc, 0.0, np.inf)
    hi = np.where(pbc, 1.0, -np.inf)
    if len(frac):
        lo = np.where(pbc, 0.0, frac.min(axis=0))
        hi = np.where(pbc, 1.0, frac.max(axis=0))
    glo, ghi = np.empty(3), np.empty(3)
    comm.Allreduce(lo, glo, op=MPI.MIN)
    comm.Allreduce(hi, ghi, op=MPI.MAX)
    if not np.isfinite(glo).all():
        raise QuestsInputError("the frame has no atoms on any rank")
    return glo, ghi


def _quantile_cuts(comm, values, lo, hi, n):
    """``n + 1`` cuts in ``[lo, hi]`` at the global quantiles of ``values`` (collective)."""
    if n == 1 or hi <= lo:
        return np.linspace(lo, hi, n + 1)
    hist, _ = np.histogram(np.clip(values, lo, hi), bins=_HIST_BINS, range=(lo, hi))
    ghist = np.empty_like(hist)
    comm.Allreduce(hist, ghist, op=MPI.SUM)
    cum = np.concatenate([[0], np.cumsum(ghist)]).astype(np.float64)
    total = cum[-1]
    edges = np.linspace(lo, hi, _HIST_BINS + 1)
    targets = total * np.arange(1, n) / n
    inner = np.interp(targets, cum, edges)  # piecewise-linear CDF inverse
    cuts = np.concatenate([[lo], inner, [hi]])
    return np.maximum.accumulate(cuts)


def build_grid(comm, positions, cell, pbc, dims=None, balance="uniform"):
    """Build the subdomain grid for the atoms held on all ranks (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    positions : ndarray, shape (n_local, 3)
        This rank's atoms (any subset; may be empty).  Only their fractional extent and
        distribution are used.
    cell : array_like, shape (3, 3)
    pbc : bool or 3 bools
    dims : sequence of 3 int, optional
        Fix subdomains per axis (0 = choose, as in ``MPI_Dims_create``).
    balance : {"uniform", "atoms"}
        Uniform cuts, or cuts at the atoms' quantiles along each axis.

    Returns
    -------
    Grid
    """
    if balance not in BALANCE_MODES:
        raise QuestsInputError(f"balance must be one of {BALANCE_MODES}, got {balance!r}")
    pbc = geometry.as_pbc(pbc)
    full = geometry.complete_cell(cell, pbc)
    inv = np.linalg.inv(full)
    with collective_errors(comm):
        pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        if len(pos):
            geometry.check_positions(pos)
        frac = pos @ inv
    lo, hi = _global_extent(comm, frac, pbc)
    widths = geometry.perpendicular_widths(full)
    lengths = np.where(pbc, widths, (hi - lo) * widths)
    d = choose_dims(comm.size, lengths, dims)
    cuts = []
    for a in range(3):
        if balance == "atoms":
            f = frac[:, a] - np.floor(frac[:, a]) if pbc[a] else frac[:, a]
            c = _quantile_cuts(comm, f, lo[a], hi[a], int(d[a]))
        elif pbc[a]:
            c = np.arange(d[a] + 1) / d[a]
        else:
            c = np.linspace(lo[a], hi[a], int(d[a]) + 1)
        cuts.append(np.asarray(c, dtype=np.float64))
    return Grid(cell=full, inv_cell=inv, pbc=pbc, dims=d, cuts=tuple(cuts), widths=widths)


@dataclass
class OwnedAtoms:
    """The atoms a rank owns after :func:`distribute`, sorted by id.

    Attributes
    ----------
    ids : ndarray of int64, shape (n,)
    positions : ndarray, shape (n, 3)
        Wrapped into the cell along periodic axes.
    types : ndarray or None
    """

    ids: np.ndarray
    positions: np.ndarray
    types: np.ndarray = None

    def __len__(self):
        return len(self.ids)


def distribute(comm, grid, ids, positions, types=None):
    """Send every atom to the rank owning its subdomain (collective ``Alltoallv``).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    grid : Grid
    ids : array_like of int, shape (n_local,)
        Unique atom ids (e.g. LAMMPS ids).
    positions : array_like, shape (n_local, 3)
        Cartesian positions (wrapped here along periodic axes, as the serial core does).
    types : array_like, shape (n_local,), optional
        Carried along (any numeric dtype).

    Returns
    -------
    OwnedAtoms
        This rank's atoms, sorted by id.
    """
    with collective_errors(comm):  # bad input on one rank fails every rank, no hang
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        pos = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
        if len(ids) != len(pos):
            raise QuestsInputError(
                f"ids ({len(ids)}) and positions ({len(pos)}) differ in length")
        if types is not None and len(types) != len(ids):
            raise QuestsInputError(f"types ({len(types)}) and ids ({len(ids)}) differ in length")
        if len(pos):
            pos = geometry.check_positions(pos)
            pos = geometry.wrap_positions(pos, grid.cell, grid.pbc)
        owner = grid.owner(grid.fractional(pos)) if len(pos) else np.empty(0, np.int64)
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=comm.size).astype(np.int64)
    r_ids, recv_counts = alltoallv_rows(comm, ids[order], counts)
    r_pos, _ = alltoallv_rows(comm, pos[order], counts, recv_counts)
    has_types = comm.allreduce(types is not None, op=MPI.LAND)
    r_types = None
    if has_types:
        t = np.ascontiguousarray(types).reshape(-1)
        r_types, _ = alltoallv_rows(comm, t[order], counts, recv_counts)
    srt = np.argsort(r_ids, kind="stable")
    return OwnedAtoms(
        ids=r_ids[srt], positions=np.ascontiguousarray(r_pos[srt]),
        types=None if r_types is None else r_types[srt],
    )


def imbalance(comm, n_local):
    """Per-rank counts (on every rank) and the imbalance ``max / mean`` (collective)."""
    counts = np.array(comm.allgather(int(n_local)), dtype=np.int64)
    mean = counts.mean()
    return counts, (float(counts.max() / mean) if mean > 0 else 1.0)
