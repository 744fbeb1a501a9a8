"""QUESTS descriptors: public functions over the Numba kernels.

Three levels, each usable alone:

* :func:`get_descriptors` -- drop-in for upstream ``quests.descriptor.get_descriptors``:
  ASE ``Atoms`` (or a list of them, stacked in order) to an ``(N, 2k-1)`` array.
* :func:`descriptors_from_arrays` -- positions, cell and pbc arrays; any boundary
  condition (fully, partly or non-periodic), any right- or left-handed triclinic cell,
  cells narrower than ``2 * cutoff``.
* :func:`local_descriptors` -- a finite point cloud whose first ``n_centres`` points are
  the centres; the rest (periodic images, or MPI ghost atoms) only act as neighbours.
  This is what the MPI pipeline calls on owned + ghost atoms.

Cost is linear in the number of atoms for every boundary condition (cell lists over
occupied bins only); threads follow :mod:`quests_hpc.threads`.
"""

import functools
import math

import numpy as np

from . import geometry
from ._descriptor_kernels import descriptor_kernel, neighbour_bins, sorting_network
from .cell_list import build_cell_list
from .errors import CoincidentAtomsError, QuestsInputError

DEFAULT_K = 32
DEFAULT_CUTOFF = 5.0


@functools.lru_cache(maxsize=16)
def _network(k):
    return sorting_network(k)


def check_parameters(k, cutoff):
    """Validate ``k`` (integer >= 1) and ``cutoff`` (finite, > 0); return them typed."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QuestsInputError(f"k must be an integer >= 1, got {k!r}")
    try:
        cutoff_f = float(cutoff)
    except (TypeError, ValueError):
        raise QuestsInputError(f"cutoff must be a positive number, got {cutoff!r}") from None
    if not math.isfinite(cutoff_f) or cutoff_f <= 0:
        raise QuestsInputError(f"cutoff must be a finite number > 0, got {cutoff!r}")
    return int(k), cutoff_f


class LocalEnvironments:
    """Neighbour search over a finite point cloud, for descriptors computed in chunks.

    The first ``n_centres`` points are the centres; the rest (periodic images, MPI ghost
    atoms) only act as neighbours.  The cell list is built once; :meth:`chunk` then gives
    the descriptors of successive chunks of centres (in bin order, which keeps the
    neighbour data of a chunk in cache), so a caller can use and drop each chunk's rows
    (e.g. kernel sums) without ever holding all ``n_centres x (2k-1)`` values.  Every
    centre's descriptor is the same, bit for bit, whatever the chunk size.

    Parameters
    ----------
    points : array_like, shape (N, 3)
    n_centres : int
    k, cutoff : int, float
    labels : array_like of int, shape (N,), optional
        Name of each point in error messages (default: its index).
    """

    def __init__(self, points, n_centres, k=DEFAULT_K, cutoff=DEFAULT_CUTOFF, labels=None):
        self.k, self.cutoff = check_parameters(k, cutoff)
        points = np.asarray(points, dtype=np.float64)
        if points.size or points.ndim != 2:  # no points at all: no centres, nothing to check
            points = geometry.check_positions(points, "points")
        n_centres = int(n_centres)
        if not 0 <= n_centres <= len(points):
            raise QuestsInputError(f"n_centres must be in [0, {len(points)}], got {n_centres}")
        self.n_centres = n_centres
        self.width = 2 * self.k - 1
        self._labels = labels
        self._slot = None
        if n_centres == 0:
            self._cl = None
            self.rows = np.empty(0, dtype=np.int64)
            return
        self._cl = build_cell_list(points, self.cutoff)
        self._neigh = neighbour_bins(self._cl.keys, self._cl.bin_xyz, self._cl.dims)
        # sorted-point index of every centre, in bin order; rows: its index among centres
        self._centres = np.flatnonzero(self._cl.order < n_centres).astype(np.int64)
        self.rows = self._cl.order[self._centres]

    def __len__(self):
        return self.n_centres

    def n_chunks(self, size):
        """Chunks of at most ``size`` centres."""
        return -(-self.n_centres // max(1, int(size)))

    def chunk(self, c, size, out=None):
        """``(rows, descriptors)`` of chunk ``c`` (centres ``c*size`` .. in bin order).

        ``rows`` are the centres' indices (0 .. n_centres-1); ``descriptors[t]`` is the
        descriptor of centre ``rows[t]``.  ``out`` (at least ``size`` rows) is reused when
        given.  Raises :class:`CoincidentAtomsError` for a centre with a point at r = 0.
        """
        size = max(1, int(size))
        sl = slice(c * size, min(self.n_centres, (c + 1) * size))
        if self._cl is None or sl.start >= sl.stop:
            return np.empty(0, dtype=np.int64), np.empty((0, self.width))
        centres = self._centres[sl]
        m = len(centres)
        desc = np.empty((m, self.width)) if out is None else out[:m]
        self._compute(centres, np.arange(m, dtype=np.int64), desc)
        return self.rows[sl], desc

    def all(self):
        """Descriptors of every centre, rows in the caller's order of the centres."""
        out = np.empty((self.n_centres, self.width))
        if self._cl is not None:
            self._compute(self._centres, self.rows, out)
        return out

    def descriptors_of(self, rows, out):
        """Descriptors of the centres ``rows`` (indices 0 .. n_centres-1, any order) into
        ``out[:len(rows)]``; the same bits as :meth:`chunk` gives them."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return out[:0]
        if self._slot is None:
            self._slot = np.empty(self.n_centres, dtype=np.int64)
            self._slot[self.rows] = self._centres
        centres = self._slot[rows]
        order = np.argsort(centres, kind="stable")  # bin order: one neighbour gather per bin
        self._compute(centres[order], order, out)
        return out[:len(rows)]

    def _compute(self, centres, dest, out):
        cl = self._cl
        clash = np.empty(len(centres), dtype=np.int64)
        descriptor_kernel(cl.sorted_points, centres, dest, cl.bin_of_point, cl.start, cl.stop,
                          self._neigh, _network(self.k), self.k, self.cutoff, out, clash)
        bad = np.flatnonzero(clash >= 0)
        if len(bad):
            t = bad[0]
            i, j = cl.order[centres[t]], cl.order[clash[t]]
            where = cl.sorted_points[centres[t]].tolist()
            if self._labels is not None:
                i, j = self._labels[i], self._labels[j]
            i, j = sorted((int(i), int(j)))
            raise CoincidentAtomsError(
                i, j, f"atoms {i} and {j} are at the same position (r = 0): "
                f"{where}; descriptors need distinct positions")


def local_descriptors(points, n_centres, k=DEFAULT_K, cutoff=DEFAULT_CUTOFF, labels=None):
    """Descriptors of the first ``n_centres`` points of a finite point cloud.

    Parameters
    ----------
    points : array_like, shape (N, 3)
        Centres first, then any further points that only act as neighbours (periodic
        images, ghost atoms).  No periodicity is applied.
    n_centres : int
        Number of leading points whose descriptors are returned.
    k : int
    cutoff : float
    labels : array_like of int, shape (N,), optional
        Name of each point in error messages (e.g. the atom a periodic image comes
        from, or an atom id).  Defaults to the point index.

    Returns
    -------
    ndarray, shape (n_centres, 2k-1), float64
        Rows in the order of the centres.

    Raises
    ------
    CoincidentAtomsError
        When a centre has a point at distance 0 (names both labels).

    See :class:`LocalEnvironments` for the same descriptors in chunks.
    """
    return LocalEnvironments(points, n_centres, k, cutoff, labels).all()


def descriptors_from_arrays(positions, cell=None, pbc=False, k=DEFAULT_K, cutoff=DEFAULT_CUTOFF):
    """Descriptors of every atom of one structure given as arrays.

    Parameters
    ----------
    positions : array_like, shape (N, 3)
        Cartesian positions in Å (need not be wrapped).
    cell : array_like, shape (3, 3), optional
        Rows are the cell vectors; only the periodic ones matter.
    pbc : bool or 3 bools
        Periodicity per axis; e.g. ``(True, True, False)`` for a slab: images along a
        and b only.
    k : int, default 32
    cutoff : float, default 5.0

    Returns
    -------
    ndarray, shape (N, 2k-1), float64
        ``[X1 | X2]`` per atom, in input order.
    """
    k, cutoff = check_parameters(k, cutoff)
    points, n, labels = point_cloud(positions, cell, pbc, cutoff)
    return local_descriptors(points, n, k, cutoff, labels=labels)


def point_cloud(positions, cell, pbc, cutoff):
    """The atoms of one structure and their periodic images within ``cutoff``.

    Returns ``(points, n, source)``: the ``n`` atoms (wrapped along periodic axes) first,
    then the images; ``source[j]`` is the atom point ``j`` is (an image of).
    """
    pos = geometry.check_positions(positions)
    pbc = geometry.as_pbc(pbc)
    n = len(pos)
    if not pbc.any():
        return pos, n, np.arange(n)
    full_cell = geometry.complete_cell(cell, pbc)
    wrapped = geometry.wrap_positions(pos, full_cell, pbc)
    images, source, _ = geometry.periodic_images(wrapped, full_cell, pbc, cutoff)
    points = np.concatenate([wrapped, images]) if len(images) else wrapped
    return points, n, np.concatenate([np.arange(n), source])


def get_descriptors(dset, k=DEFAULT_K, cutoff=DEFAULT_CUTOFF, concat=True, dtype="float64"):
    """Descriptors of an ASE ``Atoms`` or a list of them (drop-in for upstream quests).

    Parameters
    ----------
    dset : ase.Atoms or sequence of ase.Atoms
        Frames are stacked in order.  Each frame's own ``pbc`` and ``cell`` are honoured
        (partly periodic frames are treated as such, unlike upstream).
    k : int, default 32
        Neighbours per environment.
    cutoff : float, default 5.0
        Cutoff radius in Å.
    concat : bool, default True
        Return one ``(N, 2k-1)`` array; if False, the tuple ``(X1, X2)``.
    dtype : str or dtype, default "float64"

    Returns
    -------
    ndarray, shape (N, 2k-1), or tuple of (N, k) and (N, k-1) arrays
    """
    frames = [dset] if hasattr(dset, "get_positions") else list(dset)
    if not frames:
        raise QuestsInputError("dset is empty: give an ase.Atoms or a non-empty list of them")
    parts = []
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise QuestsInputError(f"dset frame {i} has no atoms")
        parts.append(
            descriptors_from_arrays(
                atoms.get_positions(), atoms.cell.array, atoms.pbc, k=k, cutoff=cutoff
            )
        )
    x = np.concatenate(parts).astype(dtype, copy=False)
    if concat:
        return x
    kk = int(k)
    return x[:, :kk].copy(), x[:, kk:].copy()
