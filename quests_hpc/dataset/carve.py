"""Carving a labellable structure around one atom of a big frame: pure functions on arrays.

For a chosen atom (the *centre*) of a periodic or partly periodic frame, the structure a
DFT code can label is either

* a **cluster**: every atom, and every periodic image of an atom, within ``radius`` of the
  centre, as a non-periodic structure (:func:`sphere`); or
* a **box**: every atom and image inside the cube of side ``side`` centred on the centre
  (axis-aligned, half-open ``[-side/2, side/2)`` along x, y, z), as a periodic cubic cell
  (:func:`box`).

A cell narrower than the carved region along a periodic axis contributes several images
of the same atom (each one an atom of the carved structure), exactly as the descriptor
counts them (SPEC.md: every periodic image within r_c is a neighbour).  The centre's
descriptor depends only on the atoms within the cutoff r_c of it, so it is unchanged by
the carving when ``radius >= r_c`` (cluster) or ``side > 2 r_c`` (box: no image of the box
comes within r_c of the centre); :func:`check_radius` and :func:`check_box` refuse the
others.

The functions see any subset of the frame's atoms (an MPI rank's own block): the union of
the pieces of the subsets is the piece of the whole frame, so each rank carves its own
atoms and only the small pieces travel.
"""

import math

import numpy as np

from .. import geometry
from ..errors import QuestsInputError

#: Empty space (Angstrom) between a cluster and the faces of the cubic cell it is written in.
DEFAULT_VACUUM = 6.0


def check_radius(radius, cutoff):
    """Refuse a cluster radius that is not a finite number >= the descriptor cutoff."""
    r = _finite(radius, "--radius")
    if r < float(cutoff):
        raise QuestsInputError(
            f"--radius {r:g} A is smaller than the descriptor cutoff {float(cutoff):g} A: "
            "the carved cluster would lose neighbours of the centre and "
            "change its descriptor (and dH); use --radius >= the cutoff")
    return r


def check_box(side, cutoff):
    """Refuse a box side that is not a finite number > twice the descriptor cutoff."""
    s = _finite(side, "--box")
    if s <= 2.0 * float(cutoff):
        raise QuestsInputError(
            f"--box {s:g} A is not larger than twice the descriptor cutoff "
            f"(2 x {float(cutoff):g} A): a periodic image of the box would come within the "
            "cutoff of the centre and change its descriptor; use --box > 2 x cutoff")
    return s


def _finite(value, name):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise QuestsInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise QuestsInputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def images_near(positions, cell, pbc, centre, reach):
    """Every atom or periodic image that may lie within ``reach`` of ``centre``.

    Parameters
    ----------
    positions : ndarray (n, 3)
        The atoms (any subset of the frame), wrapped into the cell.
    cell : ndarray (3, 3)
        Complete cell (:func:`quests_hpc.geometry.complete_cell`).
    pbc : array_like of 3 bool
    centre : ndarray (3,)
    reach : float

    Returns
    -------
    rows : ndarray of int64 (m,)
        Row of ``positions`` of each image.
    shifts : ndarray of int64 (m, 3)
        Its cell translation: the image is ``positions[rows] + shifts @ cell``.

    Notes
    -----
    A superset of the images within ``reach``: along every axis ``a`` the fractional
    offset from the centre is at most ``reach / w_a`` (``w_a`` the perpendicular width),
    a bound on the fractional part of any vector of length ``reach``.  The test costs a
    few operations per atom; only atoms passing it are looked at further.
    """
    pbc = geometry.as_pbc(pbc)
    margin = reach / geometry.perpendicular_widths(cell)
    f = (np.asarray(positions, dtype=np.float64) - centre) @ np.linalg.inv(cell)
    base = np.where(pbc, -np.rint(f), 0.0)
    g = f + base  # along periodic axes in [-1/2, 1/2]
    cand = np.flatnonzero((np.abs(g) <= margin + 1e-9).all(axis=1))
    g, base = g[cand], base[cand].astype(np.int64)
    # |g + n| <= margin with |g| <= 1/2 leaves |n| <= floor(margin + 1/2)
    reach_n = [int(math.floor(m + 0.5)) if p else 0 for m, p in zip(margin, pbc)]
    rows, shifts = [], []
    for n in np.ndindex(*(2 * r + 1 for r in reach_n)):
        n = np.asarray(n, dtype=np.int64) - reach_n
        ok = np.flatnonzero((np.abs(g + n) <= margin + 1e-9).all(axis=1))
        rows.append(cand[ok])
        shifts.append(base[ok] + n)
    return np.concatenate(rows), np.concatenate(shifts).reshape(-1, 3)


def sphere(positions, cell, pbc, centre, radius):
    """Atoms and images within ``radius`` of ``centre`` (distance ``<= radius``).

    Returns ``(rows, shifts, offsets)``: as :func:`images_near`, and each image's vector
    from the centre, ``positions[rows] + shifts @ cell - centre``.
    """
    rows, shifts = images_near(positions, cell, pbc, centre, radius)
    d = positions[rows] + shifts @ cell - centre
    keep = np.einsum("ij,ij->i", d, d) <= float(radius) ** 2
    return rows[keep], shifts[keep], d[keep]


def box(positions, cell, pbc, centre, side):
    """Atoms and images in the cube ``centre + [-side/2, side/2)^3`` (axis-aligned).

    Returns ``(rows, shifts, offsets)`` as :func:`sphere`.
    """
    half = 0.5 * float(side)
    rows, shifts = images_near(positions, cell, pbc, centre, half * math.sqrt(3.0))
    d = positions[rows] + shifts @ cell - centre
    keep = ((d >= -half) & (d < half)).all(axis=1)
    return rows[keep], shifts[keep], d[keep]


def structure_order(offsets, ids, shifts):
    """Order of a carved structure's atoms: by distance from the centre (the centre, at
    distance 0, first), then atom id, then cell translation -- the same whatever ranks
    the pieces came from."""
    dist = np.sqrt(np.einsum("ij,ij->i", offsets, offsets))
    return np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], ids, dist))


def carved_cell(kind, size, vacuum=DEFAULT_VACUUM):
    """Cell, pbc and the translation of the centre of a carved structure.

    ``kind="cluster"`` (``size`` the radius): a cube of side ``2 (radius + vacuum)``,
    not periodic, the centre in its middle.  ``kind="box"`` (``size`` the side): the
    periodic cube of that side, the centre in its middle.
    """
    if kind == "cluster":
        side = 2.0 * (float(size) + float(vacuum))
        return np.eye(3) * side, np.zeros(3, dtype=bool), np.full(3, 0.5 * side)
    side = float(size)
    return np.eye(3) * side, np.ones(3, dtype=bool), np.full(3, 0.5 * side)
