"""Edges between nodes within ``r_edge``: the local step of the cluster analysis.

A subdomain's nodes fill its box, so a dense grid of cells ``r_edge`` wide with an empty
border layer (no bounds checks), filled by a linear-time counting sort, is the fast
path.  Sparse clouds (a grid of more than ``8 n`` cells, e.g. a few atoms far out along a
non-periodic axis) use the sort-based sparse cell list of :mod:`quests_hpc.cell_list`.
"""

import numpy as np

from .._descriptor_kernels import neighbour_bins
from ..cell_list import build_cell_list
from . import _cluster_kernels as K


def _grid(points, r_edge):
    """``(lo, dims)`` of the padded dense grid, or None when it would be too sparse."""
    lo = points.min(axis=0)
    dims = np.floor((points.max(axis=0) - lo) / r_edge).astype(np.int64) + 3
    if float(np.prod(dims.astype(np.float64))) > max(8.0 * len(points), 8192.0):
        return None
    return lo, dims


def _sorted(points, lo, dims, r_edge):
    order = np.empty(len(points), dtype=np.int64)
    start = np.empty(int(np.prod(dims)) + 1, dtype=np.int64)
    K.grid_sort(points, lo, r_edge, dims, order, start)
    return order, start, np.ascontiguousarray(points[order])


def local_edges(points, n_owned, r_edge):
    """Edges (point indices) with at least one of the first ``n_owned`` points.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Owned points first, then ghosts (a finite point cloud, no periodicity).
    n_owned : int
    r_edge : float
        Points at distance ``<= r_edge`` are joined.

    Returns
    -------
    ei, ej : ndarray of int64
        Endpoints; ``ei`` is always owned.  Owned-owned edges appear once.

    """
    n = len(points)
    if n == 0 or n_owned == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    points = np.ascontiguousarray(points, dtype=np.float64)
    r_edge = float(r_edge)
    r2 = r_edge * r_edge
    g = _grid(points, r_edge)
    if g is None:
        return _sparse_edges(points, n_owned, r_edge)
    lo, dims = g
    order, start, pts = _sorted(points, lo, dims, r_edge)
    owned = order < n_owned
    offsets = np.zeros(n + 1, dtype=np.int64)
    empty = np.empty(0, np.int64)
    K.grid_edges(pts, owned, start, dims, r2, offsets, empty, empty, True)
    np.cumsum(offsets, out=offsets)
    m = int(offsets[-1])
    ei = np.empty(m, dtype=np.int64)
    ej = np.empty(m, dtype=np.int64)
    K.grid_edges(pts, owned, start, dims, r2, offsets, ei, ej, False)
    return order[ei], order[ej]


def local_components(points, n_owned, keys, r_edge):
    """Local components of the owned points and their edges to ghosts, in one pass.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
        Owned points first, then ghosts.
    n_owned : int
    keys : ndarray of int64, shape (n_owned,)
        Atom ids of the owned points.
    r_edge : float

    Returns
    -------
    rep : ndarray of int64, shape (n_owned,)
        Smallest key of each owned point's component over owned-owned edges.
    gi, gj : ndarray of int64
        Owned-ghost edges (point indices; ``gi`` owned, ``gj >= n_owned``).

    Notes
    -----
    Same result as :func:`local_edges` followed by a union-find over its owned-owned
    edges, without storing them (used when the biconnected parts are not asked for).
    """
    n = len(points)
    if n == 0 or n_owned == 0:
        e = np.empty(0, np.int64)
        return np.empty(n_owned, np.int64), e, e.copy()
    points = np.ascontiguousarray(points, dtype=np.float64)
    r_edge = float(r_edge)
    g = _grid(points, r_edge)
    if g is None:
        ei, ej = _sparse_edges(points, n_owned, r_edge)
        rep = K.union_min_labels(keys, ei, ej, n_owned)
        cross = ej >= n_owned
        return rep, ei[cross], ej[cross]
    lo, dims = g
    order, start, pts = _sorted(points, lo, dims, r_edge)
    owned = order < n_owned
    skeys = np.zeros(n, dtype=np.int64)
    skeys[owned] = keys[order[owned]]
    parent = np.empty(n, dtype=np.int64)
    gi, gj = K.grid_union(pts, owned, skeys, start, dims, r_edge * r_edge, parent,
                          4 * (n - n_owned) + 16)
    lab = K.roots_min_keys(parent, skeys, n)
    rep = np.empty(n_owned, dtype=np.int64)
    rep[order[owned]] = lab[owned]
    return rep, order[gi], order[gj]


def _sparse_edges(points, n_owned, r_edge):
    """:func:`local_edges` on the sparse cell list (occupied bins only)."""
    cl = build_cell_list(points, r_edge)
    neigh = neighbour_bins(cl.keys, cl.bin_xyz, cl.dims)
    owned = cl.order < n_owned
    counts = np.empty(len(points), dtype=np.int64)
    r2 = float(r_edge) ** 2
    K.count_edges(cl.sorted_points, owned, cl.bin_of_point, cl.start, cl.stop, neigh, r2, counts)
    offsets = np.zeros(len(points) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    m = int(offsets[-1])
    ei = np.empty(m, dtype=np.int64)
    ej = np.empty(m, dtype=np.int64)
    K.fill_edges(cl.sorted_points, owned, cl.bin_of_point, cl.start, cl.stop, neigh, r2,
                 offsets, ei, ej)
    return cl.order[ei], cl.order[ej]
