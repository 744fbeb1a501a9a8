"""Cell geometry: validation, fractional coordinates, wrapping and periodic images.

Conventions (as in ASE): ``cell`` is a 3x3 array whose *rows* are the cell vectors
a, b, c; ``pbc`` is three booleans.  Any right- or left-handed triclinic cell is
accepted.  Along a non-periodic axis the cell vector is irrelevant (it may be zero, as in
ASE's non-periodic ``Atoms``): internally it is replaced by a unit vector normal to the
periodic vectors, so fractional coordinates along periodic axes are always defined.

The descriptor of an atom depends only on the atoms within ``cutoff`` of it, so a
periodic structure is handled as a finite point cloud: the atoms of the cell plus every
periodic image that can lie within ``cutoff`` of the cell (:func:`periodic_images`).
The MPI halo exchange uses the same construction per subdomain.
"""

import numpy as np

from .errors import QuestsInputError


# Largest |fractional coordinate| along a periodic axis that is wrapped into the cell.
# Wrapping subtracts whole cell vectors; in float64 the wrapped coordinate keeps the
# absolute rounding error of the input, about |s| * L * 2**-53 for a fractional coordinate
# s in a cell of length L.  At |s| = 2**20 that is L * 2**-33 (2e-9 A in a 14 A cell): the
# descriptors w(r)/r change by ~1e-10 of themselves, dH by far less than any tolerance
# the tests use.  Much further out the position inside the cell is lost to rounding (at
# |s| >= 2**53 every atom lands on the cell origin: 1e18 A in a 14 A cell is s = 7e16).
# No genuine dump comes close: 2**20 is also the most periodic images LAMMPS itself can
# count (IMGMAX of a -DLAMMPS_BIGBIG build; 512 in the default build).
MAX_FRACTIONAL = 2.0**20


def as_pbc(pbc):
    """Return ``pbc`` as a length-3 boolean array (a scalar applies to every axis)."""
    arr = np.asarray(pbc, dtype=bool)
    if arr.ndim == 0:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,):
        raise QuestsInputError(f"pbc must be a bool or 3 bools, got {pbc!r}")
    return arr


def check_positions(positions, name="positions"):
    """Validate an ``(N, 3)`` array of finite coordinates and return it as float64.

    Raises
    ------
    QuestsInputError
        When the shape is wrong, the array is empty, or an entry is NaN or inf (the
        message gives the first bad atom index and its value).
    """
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise QuestsInputError(f"{name} must have shape (N, 3), got {pos.shape}")
    if pos.shape[0] == 0:
        raise QuestsInputError(f"{name} is empty: at least one atom is needed")
    bad = ~np.isfinite(pos).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise QuestsInputError(
            f"{name} has {int(bad.sum())} non-finite row(s); first at atom {i}: {pos[i].tolist()}"
        )
    return pos


def complete_cell(cell, pbc):
    """Validate ``cell`` and return a copy whose non-periodic vectors are unit normals.

    Parameters
    ----------
    cell : array_like, shape (3, 3)
        Rows are the cell vectors.
    pbc : array_like of 3 bool

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        An invertible cell: periodic rows as given, non-periodic rows replaced by unit
        vectors orthogonal to the periodic ones (and to each other).

    Raises
    ------
    QuestsInputError
        When an entry is not finite, or the periodic vectors are zero or linearly
        dependent (a singular cell with a periodic axis).
    """
    pbc = as_pbc(pbc)
    c = np.zeros((3, 3)) if cell is None else np.array(cell, dtype=np.float64)
    if c.shape == (3,):
        c = np.diag(c)
    if c.shape != (3, 3):
        raise QuestsInputError(f"cell must have shape (3, 3), got {c.shape}")
    if not np.isfinite(c).all():
        raise QuestsInputError(f"cell has non-finite entries: {c.tolist()}")
    periodic = c[pbc]
    if len(periodic):
        norms = np.linalg.norm(periodic, axis=1)
        s = np.linalg.svd(periodic, compute_uv=False)
        if norms.min() == 0 or s.min() <= 1e-10 * norms.max():
            raise QuestsInputError(
                f"cell is singular along its periodic axes (pbc={pbc.tolist()}): "
                f"cell={c.tolist()}; periodic cell vectors must be non-zero and independent"
            )
    out = c.copy()
    npbc = int(pbc.sum())
    if npbc == 3:
        return out
    if npbc == 2:
        (i, j), (m,) = np.flatnonzero(pbc), np.flatnonzero(~pbc)
        n = np.cross(c[i], c[j])
        out[m] = n / np.linalg.norm(n)
    elif npbc == 1:
        (i,) = np.flatnonzero(pbc)
        u = c[i] / np.linalg.norm(c[i])
        # Two unit vectors orthogonal to u and to each other, in a fixed order.
        trial = np.eye(3)[np.argmin(np.abs(u))]
        v = np.cross(u, trial)
        v /= np.linalg.norm(v)
        w = np.cross(u, v)
        m1, m2 = np.flatnonzero(~pbc)
        out[m1], out[m2] = v, w
    else:
        out = np.eye(3)
    return out


def perpendicular_widths(cell):
    """Distances between opposite faces of the cell (one per axis).

    For axis a this is ``V / |b x c|`` = ``1 / |row a of inv(cell).T|``; a cell narrower
    than ``2 * cutoff`` along an axis makes an atom's own images its neighbours.
    """
    inv = np.linalg.inv(np.asarray(cell, dtype=np.float64))
    return 1.0 / np.linalg.norm(inv, axis=0)


def fractional(positions, cell):
    """Fractional coordinates ``positions @ inv(cell)`` (``cell`` complete, rows a, b, c)."""
    return np.asarray(positions, dtype=np.float64) @ np.linalg.inv(cell)


def wrap_positions(positions, cell, pbc):
    """Wrap positions into the cell along periodic axes (fractional coords in [0, 1)).

    ``cell`` must be complete (see :func:`complete_cell`).  Non-periodic coordinates are
    left unchanged.  A position more than :data:`MAX_FRACTIONAL` cell lengths out along a
    periodic axis raises :class:`QuestsInputError` (naming the atom's row): its wrapped
    position would be rounding noise.
    """
    pbc = as_pbc(pbc)
    if not pbc.any():
        return np.array(positions, dtype=np.float64)
    frac = fractional(positions, cell)
    far = np.flatnonzero((np.abs(frac[:, pbc]) > MAX_FRACTIONAL).any(axis=1))
    if len(far):
        i = int(far[0])
        raise QuestsInputError(
            f"atom {i}: position {np.asarray(positions)[i].tolist()} lies more than 2**20 cell "
            f"lengths outside the periodic cell: wrapping it back would lose its position to "
            f"rounding ({len(far)} such atom(s))")
    shift = np.where(pbc, np.floor(frac), 0.0)
    # floor(1 - eps) may round back to 1.0 after subtraction; fix those to 0 exactly.
    frac -= shift
    frac[:, pbc] = np.where(frac[:, pbc] >= 1.0, frac[:, pbc] - 1.0, frac[:, pbc])
    return positions - shift @ cell


def periodic_images(positions, cell, pbc, cutoff):
    """Periodic images that can lie within ``cutoff`` of the home cell.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        Positions wrapped into the cell (:func:`wrap_positions`).
    cell : ndarray, shape (3, 3)
        Complete cell (:func:`complete_cell`).
    pbc : array_like of 3 bool
    cutoff : float

    Returns
    -------
    image_positions : ndarray, shape (M, 3)
    source : ndarray of int64, shape (M,)
        Index of the atom each image comes from.
    shifts : ndarray of int64, shape (M, 3)
        Integer cell translation of each image (``image = positions[source] + shifts @ cell``).

    Notes
    -----
    An image is kept when its fractional coordinate along every periodic axis a lies in
    ``[-cutoff / w_a, 1 + cutoff / w_a)``, w_a the perpendicular width: a superset of the
    images within ``cutoff`` of any atom of the cell.  Cells narrower than the cutoff
    get several images per atom and axis.
    """
    pbc = as_pbc(pbc)
    n = len(positions)
    if not pbc.any() or n == 0:
        return np.empty((0, 3)), np.empty(0, np.int64), np.empty((0, 3), np.int64)
    frac = positions @ np.linalg.inv(cell)
    margin = np.where(pbc, cutoff / perpendicular_widths(cell), 0.0)
    # Staged replication, one axis at a time (as in LAMMPS's ghost exchange): the images
    # made along axis a are themselves replicated along the later axes, which yields
    # exactly the box of fractional windows, scanning the points once per shift value.
    src = np.arange(n, dtype=np.int64)
    shifts = np.zeros((n, 3), dtype=np.int64)
    for a in np.flatnonzero(pbc):
        reach = int(np.ceil(margin[a]))
        fa = frac[src, a] + shifts[:, a]
        new_src, new_shift = [src], [shifts]
        for s in range(-reach, reach + 1):
            if s == 0:
                continue
            f = fa + s
            idx = np.flatnonzero((f >= -margin[a]) & (f < 1.0 + margin[a]))
            sh = shifts[idx].copy()
            sh[:, a] += s
            new_src.append(src[idx])
            new_shift.append(sh)
        src = np.concatenate(new_src)
        shifts = np.concatenate(new_shift)
    src, shifts = src[n:], shifts[n:]
    return positions[src] + shifts @ cell, src, shifts
