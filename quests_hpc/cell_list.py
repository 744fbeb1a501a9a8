"""Linear-cost spatial binning (cell lists) for a finite point cloud.

Points are binned on a Cartesian grid of bins at least ``cutoff`` wide over their
bounding box, so every neighbour within ``cutoff`` of a point lies in the 27 bins around
it.  Only occupied bins are stored (sorted 64-bit bin keys), so sparse clouds -- a
cluster with a far-away atom, a slab with vacuum -- cost memory linear in the number of
points, never in the volume of the bounding box.
"""

from dataclasses import dataclass

import numpy as np

# Bins per axis are capped so that the flattened key of a bin fits in an int64.
_MAX_BINS_PER_AXIS = 1 << 20


@dataclass
class CellList:
    """Points sorted by bin, with the extent of every occupied bin.

    Attributes
    ----------
    order : ndarray of int64, shape (N,)
        ``points[order]`` are the points sorted by bin key.
    sorted_points : ndarray, shape (N, 3)
        Contiguous copy of ``points[order]``.
    bin_of_point : ndarray of int64, shape (N,)
        Integer bin coordinates ``(ix, iy, iz)`` flattened per sorted point (row of
        ``bin_xyz``), i.e. the index into ``keys``.
    keys : ndarray of int64, shape (B,)
        Sorted flattened keys of the occupied bins.
    start, stop : ndarray of int64, shape (B,)
        Sorted-point range ``[start, stop)`` of each occupied bin.
    bin_xyz : ndarray of int64, shape (B, 3)
        Integer coordinates of each occupied bin.
    dims : ndarray of int64, shape (3,)
        Bins per axis.
    """

    order: np.ndarray
    sorted_points: np.ndarray
    bin_of_point: np.ndarray
    keys: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    bin_xyz: np.ndarray
    dims: np.ndarray


def build_cell_list(points, cutoff):
    """Bin ``points`` (shape (N, 3)) into bins at least ``cutoff`` wide.

    Parameters
    ----------
    points : ndarray, shape (N, 3), float64
    cutoff : float
        Minimum bin width (the neighbour cutoff).

    Returns
    -------
    CellList
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    lo = points.min(axis=0)
    extent = points.max(axis=0) - lo
    width = np.maximum(cutoff, extent / _MAX_BINS_PER_AXIS)
    dims = np.maximum(np.floor(extent / width).astype(np.int64), 0) + 1
    ijk = np.floor((points - lo) / width).astype(np.int64)
    np.clip(ijk, 0, dims - 1, out=ijk)
    key = (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
    order = np.argsort(key, kind="stable")
    skey = key[order]
    keys, start, counts = np.unique(skey, return_index=True, return_counts=True)
    bin_of_point = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    bin_xyz = ijk[order[start]]
    return CellList(
        order=order.astype(np.int64),
        sorted_points=np.ascontiguousarray(points[order]),
        bin_of_point=bin_of_point,
        keys=keys.astype(np.int64),
        start=start.astype(np.int64),
        stop=(start + counts).astype(np.int64),
        bin_xyz=np.ascontiguousarray(bin_xyz),
        dims=dims,
    )
