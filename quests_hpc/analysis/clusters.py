"""Clusters of covered atoms (dH <= threshold), distributed over MPI ranks.

Nodes are the atoms whose dH against a reference is at most ``threshold`` (default 0:
covered by, e.g., a low-temperature crystal); edges join nodes at most ``r_edge`` apart
(default 3.0 A, periodic images included); clusters are the connected components
(SPEC.md, "Nucleation clusters").  Every cluster is labelled by the smallest atom id it
contains -- as LAMMPS ``compute cluster/atom`` does -- so labels do not depend on how the
frame is split over ranks.  Atoms that are not nodes get label 0.

Algorithm (all collective over ``comm``):

1. The nodes are sent to the owners of their subdomains
   (:func:`quests_hpc.parallel.decomposition.distribute`, grid built on the nodes).
2. Halo of width ``r_edge``: each rank receives the nodes within ``r_edge`` of its
   subdomain, periodic images included (:func:`quests_hpc.parallel.halo.ghost_targets`,
   the same halo as the descriptors with the cutoff replaced by ``r_edge``).
3. Edges with at least one owned endpoint from a cell list
   (:func:`quests_hpc.cell_list.build_cell_list`); union-find over the owned-owned edges
   gives local components labelled by their smallest owned id.
4. The ghosts' local labels come from their owners (one more exchange, aligned with the
   halo); every owned-ghost edge links two local components.  The de-duplicated links
   (a graph of components, far smaller than the atoms) are merged by one union-find on
   the root, which returns the smallest id of every merged set.
5. Cluster sizes are summed on the rank ``label % size``; labels are returned in the
   caller's atom order through a directory keyed by ``id % size``.

Optionally the biconnected (2-connected) components of every cluster of at most
``biconnected_max_size`` atoms are found, as in the paper's Methods (see
:mod:`quests_hpc.analysis.biconnected`).
"""

import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI

from .. import geometry
from .._descriptor_kernels import neighbour_bins
from ..cell_list import build_cell_list
from ..errors import QuestsInputError
from ..parallel.decomposition import build_grid, distribute
from ..parallel.exchange import alltoallv_rows, gather_rows
from ..parallel.halo import ghost_targets, shifted_positions
from ..parallel.runtime import collective_errors
from . import _cluster_kernels as K
from .biconnected import BiconnectedSummary, biconnected_summary
from .common import check_cluster_parameters, check_r_edge_cell, lookup_by_id, size_histogram

DEFAULT_THRESHOLD = 0.0
DEFAULT_R_EDGE = 3.0


@dataclass
class ClusterResult:
    """Clusters of one frame (the summary is the same on every rank).

    Attributes
    ----------
    labels : ndarray of int64, shape (n_local,)
        Cluster label of each of this rank's input atoms, in input order: the smallest
        atom id of its cluster, 0 for atoms that are not nodes.
    n_atoms, n_nodes : int
        Atoms and nodes (dH <= threshold) in the whole frame.
    n_clusters : int
        Connected components (an isolated node is a cluster of size 1).
    largest : int
        Size of the largest cluster (0 without nodes).
    largest_label : int
        Its label (the smallest label among equally large clusters; 0 without nodes).
    sizes, counts : ndarray of int64
        Size histogram: ``counts[i]`` clusters have ``sizes[i]`` atoms (sizes ascending).
    threshold, r_edge : float
    biconnected : BiconnectedSummary or None
        Biconnected components, when asked for.
    timings : dict
        Wall seconds of each stage on this rank.
    """

    labels: np.ndarray
    n_atoms: int
    n_nodes: int
    n_clusters: int
    largest: int
    largest_label: int
    sizes: np.ndarray
    counts: np.ndarray
    threshold: float
    r_edge: float
    biconnected: BiconnectedSummary = None
    timings: dict = field(default_factory=dict)

    def summary(self):
        """The per-frame numbers as a plain dict (no per-atom arrays)."""
        out = {
            "n_atoms": self.n_atoms, "n_nodes": self.n_nodes, "n_clusters": self.n_clusters,
            "largest": self.largest, "largest_label": self.largest_label,
            "threshold": self.threshold, "r_edge": self.r_edge,
        }
        if self.biconnected is not None:
            out.update(self.biconnected.summary())
        return out


class _Clock:
    def __init__(self):
        self.times, self._t = {}, time.perf_counter()

    def done(self, name):
        t = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + t - self._t
        self._t = t


def _check_arrays(ids, positions, dh):
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    pos = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
    dh = np.asarray(dh, dtype=np.float64)
    if dh.ndim != 1:
        raise QuestsInputError(
            f"dH must be one value per atom (shape (n,)), got shape {dh.shape}; "
            "with several bandwidths pick one row")
    if not len(ids) == len(pos) == len(dh):
        raise QuestsInputError(
            f"ids ({len(ids)}), positions ({len(pos)}) and dH ({len(dh)}) differ in length")
    if np.isnan(dh).any():
        i = int(np.flatnonzero(np.isnan(dh))[0])
        raise QuestsInputError(f"dH is NaN for atom id {int(ids[i])}")
    if len(ids) and ids.min() < 1:
        raise QuestsInputError(
            f"atom ids must be >= 1 (label 0 means 'not in a cluster'), got {int(ids.min())}")
    if len(pos):
        geometry.check_positions(pos)
    return ids, pos, dh


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
    if len(points) == 0 or n_owned == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
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


def _merge_components(comm, pairs, root=0):
    """Merge linked local components on ``root``; final label of each pair's first entry.

    ``pairs`` (m, 2) holds links between local-component labels (smallest owned ids).
    Every rank's links name its own component first, so the returned labels -- the
    smallest label of each merged set -- are exactly what the rank needs.
    """
    counts = np.array(comm.allgather(len(pairs)), dtype=np.int64)
    allp = gather_rows(comm, pairs, root)
    final = None
    if comm.rank == root:
        keys, inv = np.unique(allp.reshape(-1), return_inverse=True)
        inv = inv.reshape(-1, 2).astype(np.int64)
        lab = K.union_min_labels(keys.astype(np.int64), inv[:, 0].copy(), inv[:, 1].copy(),
                                 len(keys))
        final = np.ascontiguousarray(lab[inv[:, 0]])
    recv_counts = np.zeros(comm.size, dtype=np.int64)
    send_counts = counts if comm.rank == root else np.zeros(comm.size, dtype=np.int64)
    recv_counts[root] = counts[comm.rank]
    src = final if comm.rank == root else np.empty(0, np.int64)
    out, _ = alltoallv_rows(comm, src, send_counts, recv_counts)
    return out


def _empty_result(n_local, n_atoms, threshold, r_edge, bicon, clock):
    return ClusterResult(
        labels=np.zeros(n_local, np.int64), n_atoms=n_atoms, n_nodes=0, n_clusters=0,
        largest=0, largest_label=0, sizes=np.empty(0, np.int64), counts=np.empty(0, np.int64),
        threshold=threshold, r_edge=r_edge,
        biconnected=BiconnectedSummary.empty(bicon) if bicon is not None else None,
        timings=clock.times)


def find_clusters(ids, positions, dh, cell, pbc, *, threshold=DEFAULT_THRESHOLD,
                  r_edge=DEFAULT_R_EDGE, comm=None, dims=None, balance="uniform",
                  biconnected_max_size=None):
    """Clusters of the atoms with dH <= ``threshold`` in one frame (collective).

    Parameters
    ----------
    ids : array_like of int, shape (n_local,)
        Unique atom ids (>= 1) of this rank's share of the frame (any split).
    positions : array_like, shape (n_local, 3)
        Cartesian positions.
    dh : array_like, shape (n_local,)
        dH of each atom against the reference.
    cell : array_like, shape (3, 3)
        Rows are the cell vectors (same on every rank).
    pbc : bool or 3 bools
    threshold : float
        Atoms with ``dh <= threshold`` are nodes.
    r_edge : float
        Nodes at most ``r_edge`` apart (A) are joined; ``0 < r_edge <= w / 2`` for the
        perpendicular width ``w`` of the cell along every periodic axis.
    comm : mpi4py.MPI.Comm, optional
        Communicator (default: a serial run on ``MPI.COMM_SELF``).
    dims : sequence of 3 int, optional
        Subdomains per axis (0 = choose).
    balance : {"uniform", "atoms"}
        Cut planes of the grid (see :func:`~quests_hpc.parallel.decomposition.build_grid`).
    biconnected_max_size : int, optional
        Also find the biconnected components of every cluster of at most this many
        atoms (None: skip).

    Returns
    -------
    ClusterResult

    Raises
    ------
    QuestsInputError
        On every rank, for a threshold or ``r_edge`` that is not a finite number, an
        ``r_edge`` <= 0 or larger than half the cell, NaN dH, ids < 1, mismatched arrays.
        A frame without nodes is not an error (zero clusters).
    """
    comm = MPI.COMM_SELF if comm is None else comm
    clock = _Clock()
    threshold, r_edge, bicon = check_cluster_parameters(threshold, r_edge, biconnected_max_size)
    pbc = geometry.as_pbc(pbc)
    check_r_edge_cell(r_edge, cell, pbc)
    with collective_errors(comm):
        ids, pos, dh = _check_arrays(ids, positions, dh)
    node = dh <= threshold
    n_atoms = comm.allreduce(len(ids))
    n_nodes = comm.allreduce(int(node.sum()))
    if n_nodes == 0:
        return _empty_result(len(ids), n_atoms, threshold, r_edge, bicon, clock)
    node_ids = ids[node]

    grid = build_grid(comm, pos[node], cell, pbc, dims=dims, balance=balance)
    owned = distribute(comm, grid, node_ids, pos[node])
    n_own = len(owned)
    clock.done("distribute")

    frac = grid.fractional(owned.positions) if n_own else np.empty((0, 3))
    atom, dest, shift = ghost_targets(grid, frac, comm.rank, r_edge)
    counts = np.bincount(dest, minlength=comm.size).astype(np.int64)
    g_ids, g_counts = alltoallv_rows(comm, owned.ids[atom], counts)
    g_pos, _ = alltoallv_rows(comm, shifted_positions(owned.positions, grid.cell, atom, shift),
                              counts, g_counts)
    clock.done("halo")

    ei, ej = local_edges(np.concatenate([owned.positions, g_pos]), n_own, r_edge)
    clock.done("edges")

    rep = K.union_min_labels(owned.ids, ei, ej, n_own)
    g_rep, _ = alltoallv_rows(comm, rep[atom], counts, g_counts)
    cross = ej >= n_own
    pairs = np.stack([rep[ei[cross]], g_rep[ej[cross] - n_own]], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if len(pairs):
        pairs = np.unique(pairs, axis=0)
    clock.done("local_components")

    final = _merge_components(comm, np.ascontiguousarray(pairs, dtype=np.int64))
    labels = rep.copy()
    if len(pairs):
        firsts, idx = np.unique(pairs[:, 0], return_index=True)
        where = np.searchsorted(firsts, rep)
        hit = where < len(firsts)
        hit[hit] = firsts[where[hit]] == rep[hit]
        labels[hit] = final[idx[where[hit]]]
    clock.done("merge")

    uniq, local_counts = np.unique(labels, return_counts=True)
    home = uniq % comm.size
    order = np.argsort(home, kind="stable")
    h_counts = np.bincount(home, minlength=comm.size).astype(np.int64)
    r_lab, r_counts = alltoallv_rows(comm, uniq[order], h_counts)
    r_cnt, _ = alltoallv_rows(comm, local_counts[order], h_counts, r_counts)
    c_labels, inv = np.unique(r_lab, return_inverse=True)
    c_sizes = np.bincount(inv.reshape(-1), weights=r_cnt, minlength=len(c_labels)).astype(np.int64)
    n_clusters = comm.allreduce(len(c_labels))
    largest = comm.allreduce(int(c_sizes.max()) if len(c_sizes) else 0, op=MPI.MAX)
    cand = c_labels[c_sizes == largest]
    largest_label = comm.allreduce(int(cand.min()) if len(cand) else np.iinfo(np.int64).max,
                                   op=MPI.MIN)
    sizes, size_counts = size_histogram(comm, c_sizes)
    clock.done("sizes")

    bic = None
    if bicon is not None:
        # Size of each owned node's cluster, from the label's home rank.
        back = c_sizes[inv.reshape(-1)]
        sz_sorted, _ = alltoallv_rows(comm, back, r_counts, h_counts)
        sz_uniq = np.empty_like(sz_sorted)
        sz_uniq[order] = sz_sorted
        node_size = sz_uniq[np.searchsorted(uniq, labels)]
        all_ids = np.concatenate([owned.ids, g_ids])
        bic = biconnected_summary(comm, labels[ei], node_size[ei], all_ids[ei], all_ids[ej],
                                  bicon, c_sizes)
        clock.done("biconnected")

    out = np.zeros(len(ids), dtype=np.int64)
    out[node] = lookup_by_id(comm, owned.ids, labels, node_ids)
    clock.done("labels")
    return ClusterResult(
        labels=out, n_atoms=n_atoms, n_nodes=n_nodes, n_clusters=int(n_clusters),
        largest=int(largest), largest_label=int(largest_label), sizes=sizes,
        counts=size_counts, threshold=threshold, r_edge=r_edge, biconnected=bic,
        timings=clock.times)


__all__ = ["DEFAULT_R_EDGE", "DEFAULT_THRESHOLD", "ClusterResult", "find_clusters",
           "local_edges"]
