"""Spatial domain decomposition of one frame over MPI ranks.

The cell is cut into a Cartesian grid of ``dims[0] x dims[1] x dims[2]`` subdomains in
*fractional* coordinates of the complete cell (:func:`quests_hpc.geometry.complete_cell`),
so any right- or left-handed triclinic cell is handled like an orthogonal one.  Along a
periodic axis the grid spans ``[0, 1)``; along a non-periodic axis it spans the extent of
the atoms (a global min/max).  Rank ``r`` has grid coordinates in row-major order, as in
``MPI_Cart_create``: ``r = (i * dims[1] + j) * dims[2] + l``.

Cut planes are uniform by default (``balance="uniform"``): a Cartesian grid.
``balance="atoms"`` staggers them as in recursive coordinate bisection: axis 0 is cut at
quantiles of the atoms' distribution, then every slab along axis 1 at the quantiles of its
own atoms, then every column along axis 2; every subdomain stays a box (in fractional
coordinates) and gets about the same number of atoms, also for clustered frames.

All functions taking ``comm`` are collective.
"""

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .. import geometry
from ..errors import QuestsInputError
from . import comm as pcomm
from .comm import collective_errors

BALANCE_MODES = ("uniform", "atoms")
_HIST_BINS = 4096


@dataclass
class Grid:
    """A grid of ``dims[0] x dims[1] x dims[2]`` box-shaped subdomains over a cell.

    The cuts are staggered (as in recursive coordinate bisection): axis 0 is cut into
    slabs; each slab ``i`` is cut along axis 1 at its own positions ``cuts[1][i]``; each
    column ``(i, j)`` is cut along axis 2 at ``cuts[2][i, j]``.  With uniform cuts every
    row is the same and the grid is an ordinary Cartesian one.

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
        Shapes ``(d0 + 1,)``, ``(d0, d1 + 1)``, ``(d0, d1, d2 + 1)``: increasing fractional
        coordinates; subdomain ``(i, j, l)`` is ``[cuts[0][i], cuts[0][i+1]) x
        [cuts[1][i, j], cuts[1][i, j+1]) x [cuts[2][i, j, l], cuts[2][i, j, l+1])``.
        Along a non-periodic axis the outer cuts are the atoms' extent and are open-ended
        for ownership.
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
        out[:, 0] = np.searchsorted(self.cuts[0][1:-1], frac[:, 0], side="right")
        inner1 = self.cuts[1][out[:, 0], 1:-1]
        out[:, 1] = (frac[:, 1:2] >= inner1).sum(axis=1)
        inner2 = self.cuts[2][out[:, 0], out[:, 1], 1:-1]
        out[:, 2] = (frac[:, 2:3] >= inner2).sum(axis=1)
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
        i, j, l_ = self.coords_of_rank(rank)
        rows = (self.cuts[0], self.cuts[1][i], self.cuts[2][i, j])
        lo = np.array([rows[0][i], rows[1][j], rows[2][l_]])
        hi = np.array([rows[0][i + 1], rows[1][j + 1], rows[2][l_ + 1]])
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


def _uniform_cuts(lo, hi, n, periodic):
    if periodic:
        return np.arange(n + 1, dtype=np.float64) / n
    return np.linspace(lo, hi, n + 1)


def _quantile_cuts(comm, values, lo, hi, n, group, n_groups):
    """Cuts in ``[lo, hi]`` at the global quantiles of ``values``, per group (collective).

    Parameters
    ----------
    values : ndarray, shape (m,)
        This rank's coordinates along the axis.
    group : ndarray of int, shape (m,)
        Group (e.g. slab) of every value; quantiles are taken within each group.

    Returns
    -------
    ndarray, shape (n_groups, n + 1)
        Increasing cuts per group, from ``lo`` to ``hi``.
    """
    if n == 1 or hi <= lo:
        return np.tile(np.linspace(lo, hi, n + 1), (n_groups, 1))
    scaled = (np.clip(values, lo, hi) - lo) / (hi - lo) * _HIST_BINS
    b = np.minimum(scaled.astype(np.int64), _HIST_BINS - 1)
    hist = np.bincount(group * _HIST_BINS + b, minlength=n_groups * _HIST_BINS)
    hist = hist.astype(np.int64).reshape(n_groups, _HIST_BINS)
    ghist = np.empty_like(hist)
    comm.Allreduce(hist, ghist, op=MPI.SUM)
    edges = np.linspace(lo, hi, _HIST_BINS + 1)
    out = np.empty((n_groups, n + 1))
    for g in range(n_groups):
        cum = np.concatenate([[0.0], np.cumsum(ghist[g]).astype(np.float64)])
        if cum[-1] == 0:  # an empty slab or column: cut it evenly
            out[g] = np.linspace(lo, hi, n + 1)
            continue
        targets = cum[-1] * np.arange(1, n) / n
        # Inverse of the piecewise-linear CDF; of a run of empty bins only the last edge
        # is kept, so every cut lands inside a bin that holds atoms.
        keep = np.concatenate([np.diff(cum) > 0, [True]])
        inner = np.interp(targets, cum[keep], edges[keep])
        out[g] = np.maximum.accumulate(np.concatenate([[lo], inner, [hi]]))
    return out


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
        Uniform cuts (a Cartesian grid), or staggered cuts at the atoms' quantiles (about
        equal atoms per subdomain; see the module docstring).

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
    d0, d1, d2 = (int(v) for v in d)
    if balance == "uniform":
        c = [_uniform_cuts(lo[a], hi[a], int(d[a]), pbc[a]) for a in range(3)]
        cuts = (c[0], np.tile(c[1], (d0, 1)), np.tile(c[2], (d0, d1, 1)))
    else:
        f = np.where(pbc, frac - np.floor(frac), frac)
        c0 = _quantile_cuts(comm, f[:, 0], lo[0], hi[0], d0, np.zeros(len(f), np.int64), 1)[0]
        i0 = np.searchsorted(c0[1:-1], f[:, 0], side="right")
        c1 = _quantile_cuts(comm, f[:, 1], lo[1], hi[1], d1, i0, d0)
        i1 = (f[:, 1:2] >= c1[i0, 1:-1]).sum(axis=1)
        c2 = _quantile_cuts(comm, f[:, 2], lo[2], hi[2], d2, i0 * d1 + i1, d0 * d1)
        cuts = (c0, c1, c2.reshape(d0, d1, d2 + 1))
    return Grid(cell=full, inv_cell=inv, pbc=pbc, dims=d, cuts=cuts, widths=widths)


@dataclass
class OwnedAtoms:
    """The atoms a rank owns after :func:`distribute`, sorted by id.

    Attributes
    ----------
    ids : ndarray of int64, shape (n,)
    positions : ndarray, shape (n, 3)
        Wrapped into the cell along periodic axes.
    types : ndarray or None
    species : ndarray of int32 or None
        Species code of each atom (:mod:`quests_hpc.species`) in a multi-element run.
    """

    ids: np.ndarray
    positions: np.ndarray
    types: np.ndarray = None
    species: np.ndarray = None

    def __len__(self):
        return len(self.ids)


def distribute(comm, grid, ids, positions, types=None, species=None):
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
    species : array_like of int32, shape (n_local,), optional
        Species codes, carried along.

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
        pos = geometry.wrap_positions(pos, grid.cell, grid.pbc) if len(pos) else pos.copy()
        owner = grid.owner(grid.fractional(pos)) if len(pos) else np.empty(0, np.int64)
    has_types = comm.allreduce(types is not None, op=MPI.LAND)
    has_species = comm.allreduce(species is not None, op=MPI.LAND)
    arrays = [ids.copy(), pos]
    if has_types:
        arrays.append(np.array(types).reshape(-1))
    if has_species:
        arrays.append(np.asarray(species, dtype=np.int32).reshape(-1))
    del pos
    received = pcomm.redistribute(arrays, owner, comm)  # grouped in place, one array at a time
    r_ids, r_pos = received[0], received[1]
    r_types = received[2] if has_types else None
    r_species = received[-1] if has_species else None
    srt = np.argsort(r_ids, kind="stable")
    return OwnedAtoms(
        ids=r_ids[srt], positions=np.ascontiguousarray(r_pos[srt]),
        types=None if r_types is None else r_types[srt],
        species=None if r_species is None else r_species[srt],
    )


def imbalance(comm, n_local):
    """Per-rank counts (on every rank) and the imbalance ``max / mean`` (collective)."""
    counts = np.array(comm.allgather(int(n_local)), dtype=np.int64)
    mean = counts.mean()
    return counts, (float(counts.max() / mean) if mean > 0 else 1.0)
