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
    # flattened bin key, one axis at a time (temporaries of 8 bytes per point)
    key = np.zeros(len(points), dtype=np.int64)
    for a in range(3):
        ia = np.floor((points[:, a] - lo[a]) / width[a]).astype(np.int64)
        np.clip(ia, 0, dims[a] - 1, out=ia)
        key *= dims[a]
        key += ia
        del ia
    order = np.argsort(key, kind="stable")
    skey = key[order]
    del key
    # occupied bins of the sorted keys (what np.unique gives, without its second sort)
    first = np.empty(len(skey), dtype=bool)
    if len(skey):
        first[0] = True
        np.not_equal(skey[1:], skey[:-1], out=first[1:])
    start = np.flatnonzero(first)
    del first
    keys = skey[start]
    counts = np.diff(np.append(start, len(skey)))
    del skey
    bin_of_point = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
    bin_xyz = np.stack([keys // (dims[1] * dims[2]), (keys // dims[2]) % dims[1],
                        keys % dims[2]], axis=1)
    return CellList(
        order=order.astype(np.int64, copy=False),
        sorted_points=np.ascontiguousarray(points[order]),
        bin_of_point=bin_of_point,
        keys=keys.astype(np.int64, copy=False),
        start=start.astype(np.int64, copy=False),
        stop=(start + counts).astype(np.int64),
        bin_xyz=np.ascontiguousarray(bin_xyz),
        dims=dims,
    )
