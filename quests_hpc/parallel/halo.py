"""Halo exchange: every rank receives the ghost atoms within the cutoff of its subdomain.

The halo of a subdomain is every atom, or periodic image of an atom, within ``cutoff``
(r_c, SPEC.md) of it.  A point within distance r_c of a point of the subdomain has, along
every axis ``a``, a fractional coordinate within ``r_c / w_a`` of the subdomain's range
(``w_a`` the perpendicular width of the cell), so each rank receives the images whose
fractional coordinates fall in its range widened by that margin: a superset of the exact
halo (points beyond r_c are never neighbours, so the surplus changes nothing).

Images are shifted by integer combinations of the cell vectors with the serial core's
expression (:func:`quests_hpc.geometry.periodic_images`: ``position + s @ cell``), so owned
atoms see the same neighbour coordinates as in the serial whole-frame computation.
Images of a rank's own atoms are ghosts too, when its subdomain spans the whole cell along
a periodic axis or the cell is narrower than 2 r_c; subdomains narrower than r_c receive
ghosts from non-adjacent ranks.  All of this falls out of the same per-atom test.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import QuestsInputError
from ._halo_kernel import halo_targets
from . import comm as pcomm

# Relative and absolute slack on the fractional margin: rounding of fractional
# coordinates must never drop a neighbour (extra ghosts are harmless).
_REL_SLACK = 1e-9
_ABS_SLACK = 1e-12


@dataclass
class Ghosts:
    """Ghost atoms received by one rank.

    Attributes
    ----------
    ids : ndarray of int64, shape (g,)
        Atom id of each ghost (an atom may appear as several periodic images).
    positions : ndarray, shape (g, 3)
        Cartesian positions of the images.
    n_sent : int
        Ghost rows this rank sent (including images of its own atoms kept locally).
    species : ndarray of int32, shape (g,), or None
        Species code of each ghost, when the owned atoms carry species.
    """

    ids: np.ndarray
    positions: np.ndarray
    n_sent: int = 0
    species: np.ndarray = None

    def __len__(self):
        return len(self.ids)


def halo_margins(grid, cutoff):
    """Fractional halo margin per axis, ``cutoff / w_a`` plus rounding slack."""
    cutoff = float(cutoff)
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise QuestsInputError(f"cutoff must be a finite number > 0, got {cutoff!r}")
    m = cutoff / grid.widths
    return m * (1.0 + _REL_SLACK) + _ABS_SLACK


def expanded_intervals(grid, margins):
    """Every subdomain's range widened by the margin, per axis (see :class:`Grid` cuts).

    Returns
    -------
    list of 3 (elo, ehi) pairs
        Shapes ``(d0,)``, ``(d0, d1)``, ``(d0, d1, d2)``.  Along non-periodic axes the
        outer subdomains are open-ended (they own every atom beyond the outer cuts).
    """
    out = []
    for a in range(3):
        c = grid.cuts[a]
        elo = c[..., :-1] - margins[a]
        ehi = c[..., 1:] + margins[a]
        if not grid.pbc[a]:
            elo[..., 0] = -np.inf
            ehi[..., -1] = np.inf
        out.append((np.ascontiguousarray(elo), np.ascontiguousarray(ehi)))
    return out


def ghost_targets(grid, frac, rank, cutoff):
    """Destinations of the ghost copies of a rank's owned atoms (no communication).

    Parameters
    ----------
    grid : Grid
    frac : ndarray, shape (n, 3)
        Fractional coordinates of the owned atoms.
    rank : int
        The owning rank (its own atoms at zero shift are not ghosts).
    cutoff : float

    Returns
    -------
    atom : ndarray of int64, shape (m,)
        Index of the owned atom of each ghost copy.
    dest : ndarray of int64, shape (m,)
        Rank receiving it.
    shift : ndarray of int64, shape (m, 3)
        Integer cell translation of the copy.
    Rows are sorted by destination rank.
    """
    margins = halo_margins(grid, cutoff)
    (elo0, ehi0), (elo1, ehi1), (elo2, ehi2) = expanded_intervals(grid, margins)
    n = len(frac)
    per_axis = np.where(grid.pbc, np.ceil(1.0 + 2.0 * margins) + 3, 1).astype(np.int64)
    max_pairs = int(per_axis.max() * grid.dims.max())
    frac = np.ascontiguousarray(frac, dtype=np.float64)
    pbc = np.ascontiguousarray(grid.pbc, dtype=np.bool_)
    offsets = np.zeros(n + 1, dtype=np.int64)
    e_i = np.empty(0, np.int64)
    e_s = np.empty((0, 3), np.int64)
    args = (frac, pbc, elo0, ehi0, elo1, ehi1, elo2, ehi2, int(rank), max_pairs)
    halo_targets(*args, True, offsets, e_i, e_i, e_s)
    np.cumsum(offsets, out=offsets)
    m = int(offsets[-1])
    atom = np.empty(m, np.int64)
    dest = np.empty(m, np.int64)
    shift = np.empty((m, 3), np.int64)
    halo_targets(*args, False, offsets, atom, dest, shift)
    order = np.argsort(dest, kind="stable")
    return atom[order], dest[order], shift[order]


def shifted_positions(positions, cell, atom, shift):
    """Images ``positions[atom] + shift @ cell`` (``shift`` int64, as the serial core).

    The same expression as :func:`quests_hpc.geometry.periodic_images`, so ghost images
    match the serial core's to the last bit in practice (orthogonal cells: exactly).
    """
    if len(shift) == 0 or not shift.any():
        return positions[atom]
    return positions[atom] + shift @ cell


def exchange_halo(comm, grid, owned, cutoff):
    """Send every owned atom's ghost copies to the ranks that need them (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    grid : Grid
    owned : OwnedAtoms
        This rank's atoms (positions wrapped, as from :func:`distribute`).  When they
        carry species codes (on every rank alike: a multi-element run), so do the ghosts.
    cutoff : float
        Halo width r_c (Å).

    Returns
    -------
    Ghosts
    """
    frac = grid.fractional(owned.positions) if len(owned) else np.empty((0, 3))
    atom, dest, shift = ghost_targets(grid, frac, comm.rank, cutoff)
    counts = np.bincount(dest, minlength=comm.size).astype(np.int64)
    send_pos = shifted_positions(owned.positions, grid.cell, atom, shift)
    recv_counts = np.empty_like(counts)
    comm.Alltoall(counts, recv_counts)
    r_ids, _ = pcomm.alltoallv_rows(owned.ids[atom], counts, comm, recv_counts)
    r_pos, _ = pcomm.alltoallv_rows(send_pos, counts, comm, recv_counts)
    r_species = None
    if owned.species is not None:
        r_species, _ = pcomm.alltoallv_rows(owned.species[atom], counts, comm, recv_counts)
    return Ghosts(ids=r_ids, positions=r_pos, n_sent=len(atom), species=r_species)
