"""Clusters of covered atoms (dH <= threshold), distributed over MPI ranks.

Nodes are the atoms whose dH against a reference is at most ``threshold`` (default 0:
covered by, e.g., a low-temperature crystal); edges join nodes at most ``r_edge`` apart
(default 3.0 A, periodic images included); clusters are the connected components
(SPEC.md, "Nucleation clusters").  Every cluster is labelled by the smallest atom id it
contains -- as LAMMPS ``compute cluster/atom`` does -- so labels do not depend on how the
frame is split over ranks.  Atoms that are not nodes get label 0.

Algorithm (all collective over ``comm``):

1. The nodes are sent to the owners of their subdomains (the grid of
   :func:`quests_hpc.parallel.decomposition.build_grid`, built on the nodes; ownership
   as in ``distribute``), remembering the route back.
2. Halo of width ``r_edge``: each rank receives the nodes within ``r_edge`` of its
   subdomain, periodic images included (:func:`quests_hpc.parallel.halo.ghost_targets`,
   the same halo as the descriptors with the cutoff replaced by ``r_edge``).
3. Edges with at least one owned endpoint from a dense grid of cells (counting sort), or
   the sparse cell list of :mod:`quests_hpc.cell_list` for sparse clouds; union-find over
   the owned-owned edges gives local components labelled by their smallest owned id.
4. The ghosts' local labels come from their owners (one more exchange, aligned with the
   halo); every owned-ghost edge links two local components.  The de-duplicated links
   (a graph of components, far smaller than the atoms) are merged by one union-find on
   the root, which returns the smallest id of every merged set.
5. Cluster sizes are summed on the rank ``label % size``; labels go back to the caller's
   atom order along the route of step 1 (one reverse exchange).

Collectives are few and batched (ids travel with positions in one message; counts,
errors and statistics in one gather each), which matters on busy or high-latency
networks.

Optionally the biconnected (2-connected) components of every cluster of at most
``biconnected_max_size`` atoms are found, as in the paper's Methods (see
:mod:`quests_hpc.analysis.biconnected`).
"""

import time
from dataclasses import dataclass, field

import numpy as np

from .. import geometry
from ..errors import QuestsInputError
from ..parallel.comm import allgather, alltoallv_rows, gather_rows, raise_if_any, require_comm
from ..parallel.decomposition import build_grid
from ..parallel.halo import ghost_targets, shifted_positions
from . import _cluster_kernels as K
from .biconnected import BiconnectedSummary, biconnected_summary
from .common import check_cluster_parameters, check_r_edge_cell, unique_rows
from .edges import local_components, local_edges

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


def _merge_components(comm, pairs, root=0):
    """Merge linked local components on ``root``; final label of each pair's first entry.

    ``pairs`` (m, 2) holds links between local-component labels (smallest owned ids).
    Every rank's links name its own component first, so the returned labels -- the
    smallest label of each merged set -- are exactly what the rank needs.
    """
    counts = np.array(allgather(len(pairs), comm), dtype=np.int64)
    allp = gather_rows(pairs, comm, root)
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
    out, _ = alltoallv_rows(src, send_counts, comm, recv_counts)
    return out


def _empty_result(n_local, n_atoms, threshold, r_edge, bicon, clock):
    return ClusterResult(
        labels=np.zeros(n_local, np.int64), n_atoms=n_atoms, n_nodes=0, n_clusters=0,
        largest=0, largest_label=0, sizes=np.empty(0, np.int64), counts=np.empty(0, np.int64),
        threshold=threshold, r_edge=r_edge,
        biconnected=BiconnectedSummary.empty(bicon) if bicon is not None else None,
        timings=clock.times)


def find_clusters(ids, positions, dh, cell, pbc, *, comm, threshold=DEFAULT_THRESHOLD,
                  r_edge=DEFAULT_R_EDGE, dims=None, balance="uniform", biconnected_max_size=None):
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
    comm : mpi4py.MPI.Comm
        Communicator (required; ``MPI.COMM_SELF`` for a serial run).
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
    require_comm(comm, "find_clusters")
    clock = _Clock()
    threshold, r_edge, bicon = check_cluster_parameters(threshold, r_edge, biconnected_max_size)
    pbc = geometry.as_pbc(pbc)
    check_r_edge_cell(r_edge, cell, pbc)
    ids, pos, node, n_atoms, n_nodes = _checked_nodes(comm, ids, positions, dh, threshold)
    if n_nodes == 0:
        return _empty_result(len(ids), n_atoms, threshold, r_edge, bicon, clock)

    # A uniform grid over a fully periodic cell does not depend on the atoms: skip
    # build_grid's pass over them (its extent is only needed along non-periodic axes).
    uniform = pbc.all() and balance == "uniform"
    grid = build_grid(comm, np.empty((0, 3)) if uniform else pos[node], cell, pbc, dims=dims,
                      balance=balance)
    own_ids, own_pos, route = _to_owners(comm, grid, ids[node], pos[node])
    clock.done("distribute")
    halo = _Halo(comm, grid, own_ids, own_pos, r_edge)
    clock.done("halo")
    rep, pairs, edges = _local_components(comm, halo, r_edge, bicon is not None, clock)
    labels = _merged_labels(comm, rep, pairs)
    clock.done("merge")
    sz = _ClusterSizes(comm, labels, own_ids)
    clock.done("sizes")
    bic = None
    if bicon is not None:
        ei, ej = edges
        all_ids = np.concatenate([own_ids, halo.ids])
        node_size = sz.size_of_each(comm, labels)
        bic = biconnected_summary(comm, labels[ei], node_size[ei], all_ids[ei], all_ids[ej],
                                  bicon, sz.sizes_here)
        clock.done("biconnected")
    out = np.zeros(len(ids), dtype=np.int64)
    out[node] = _from_owners(comm, labels, route)
    clock.done("labels")
    return ClusterResult(
        labels=out, n_atoms=n_atoms, n_nodes=n_nodes, n_clusters=sz.n_clusters,
        largest=sz.largest, largest_label=sz.largest_label, sizes=sz.sizes, counts=sz.counts,
        threshold=threshold, r_edge=r_edge, biconnected=bic, timings=clock.times)


def _checked_nodes(comm, ids, positions, dh, threshold):
    """Checked arrays, the node mask and the global atom and node counts (collective:
    the input check, shared by every rank, then one allgather of the counts)."""
    err, node = None, None
    try:
        ids, positions, dh = _check_arrays(ids, positions, dh)
        node = dh <= threshold
    except QuestsInputError as exc:
        err = exc
    raise_if_any(err, comm)
    info = allgather((len(ids), int(node.sum())), comm)
    return ids, positions, node, sum(i[0] for i in info), sum(i[1] for i in info)


class _Halo:
    """The owned nodes and their ghosts within ``r_edge`` (collective: one exchange).

    ``atom``, ``counts``: the owned row each ghost sent was made from, and how many went
    to each rank; ``recv_counts``: how many ghosts came from each rank.
    """

    def __init__(self, comm, grid, own_ids, own_pos, r_edge):
        frac, _ = _fractional(own_pos, grid)
        self.atom, dest, shift = ghost_targets(grid, frac, comm.rank, r_edge)
        self.counts = np.bincount(dest, minlength=comm.size).astype(np.int64)
        packed, self.recv_counts = alltoallv_rows(
            _pack(own_ids[self.atom], shifted_positions(own_pos, grid.cell, self.atom, shift)),
            self.counts, comm)
        self.ids, ghost_pos = _unpack(packed)
        self.own_ids, self.n_own = own_ids, len(own_ids)
        self.cloud = np.concatenate([own_pos, ghost_pos])

    def to_ghosts(self, comm, values):
        """``values`` of the owned rows as the ghosts' copies receive them (collective)."""
        out, _ = alltoallv_rows(values[self.atom], self.counts, comm, self.recv_counts)
        return out


def _local_components(comm, halo, r_edge, with_edges, clock):
    """Local components (smallest owned id) of the owned nodes and the de-duplicated links
    ``(own component, ghost's component)`` between them; the edges when ``with_edges``."""
    n_own, edges = halo.n_own, None
    if not with_edges:  # one fused pass: no edge arrays
        rep, ci, cj = local_components(halo.cloud, n_own, halo.own_ids, r_edge)
        clock.done("edges")
    else:  # the biconnected parts need every edge
        ei, ej = local_edges(halo.cloud, n_own, r_edge)
        clock.done("edges")
        rep = K.union_min_labels(halo.own_ids, ei, ej, n_own)
        cross = ej >= n_own
        ci, cj, edges = ei[cross], ej[cross], (ei, ej)
    g_rep = halo.to_ghosts(comm, rep)
    pairs = np.stack([rep[ci], g_rep[cj - n_own]], axis=1)
    pairs = unique_rows(pairs[pairs[:, 0] != pairs[:, 1]])
    clock.done("local_components")
    return rep, pairs, edges


def _merged_labels(comm, rep, pairs):
    """Final label of every owned node: its local component merged over ranks."""
    final = _merge_components(comm, np.ascontiguousarray(pairs, dtype=np.int64))
    labels = rep.copy()
    if len(pairs):
        firsts, idx = np.unique(pairs[:, 0], return_index=True)
        where = np.searchsorted(firsts, rep)
        hit = where < len(firsts)
        hit[hit] = firsts[where[hit]] == rep[hit]
        labels[hit] = final[idx[where[hit]]]
    return labels


class _ClusterSizes:
    """Cluster sizes: every label's counts summed on rank ``label % size``; duplicate
    atom ids refused on every rank, then one gather of the statistics (collective)."""

    def __init__(self, comm, labels, own_ids):
        self.uniq, local_counts = np.unique(labels, return_counts=True)
        home = self.uniq % comm.size
        self.order = np.argsort(home, kind="stable")
        self.h_counts = np.bincount(home, minlength=comm.size).astype(np.int64)
        recv, self.r_counts = alltoallv_rows(
            np.stack([self.uniq[self.order], local_counts[self.order]], 1), self.h_counts, comm)
        c_labels, inv = np.unique(recv[:, 0], return_inverse=True)
        self.inv = inv.reshape(-1)
        self.sizes_here = np.bincount(self.inv, weights=recv[:, 1],
                                      minlength=len(c_labels)).astype(np.int64)
        srt = np.sort(own_ids)
        dup = srt[1:][srt[1:] == srt[:-1]]
        err = QuestsInputError(f"atom id {int(dup[0])} appears more than once in the frame") \
            if len(dup) else None
        c_sizes = self.sizes_here
        big = int(c_sizes.max()) if len(c_sizes) else 0
        v, c = np.unique(c_sizes, return_counts=True)
        raise_if_any(err, comm)
        stats = allgather((len(c_labels), big, int(c_labels[c_sizes == big].min()) if big else 0,
                           v, c), comm)
        self.n_clusters = int(sum(st[0] for st in stats))
        self.largest = int(max(st[1] for st in stats))
        self.largest_label = int(min(st[2] for st in stats if st[1] == self.largest))
        self.sizes, self.counts = _merge_histograms([(st[3], st[4]) for st in stats])

    def size_of_each(self, comm, labels):
        """Size of each owned node's cluster, from the label's home rank (collective)."""
        sz_sorted, _ = alltoallv_rows(self.sizes_here[self.inv], self.r_counts, comm,
                                      self.h_counts)
        sz_uniq = np.empty_like(sz_sorted)
        sz_uniq[self.order] = sz_sorted
        return sz_uniq[np.searchsorted(self.uniq, labels)]


def _merge_histograms(parts):
    allv = np.concatenate([p[0] for p in parts] + [np.empty(0, np.int64)]).astype(np.int64)
    allc = np.concatenate([p[1] for p in parts] + [np.empty(0, np.int64)]).astype(np.int64)
    values, inv = np.unique(allv, return_inverse=True)
    return values, np.bincount(inv.reshape(-1), weights=allc,
                               minlength=len(values)).astype(np.int64)


def _pack(ids, positions):
    """ids (bit patterns) and positions in one (n, 4) float64 array: one message."""
    out = np.empty((len(ids), 4), dtype=np.float64)
    out[:, 0] = np.ascontiguousarray(ids, dtype=np.int64).view(np.float64)
    out[:, 1:] = positions
    return out


def _unpack(packed):
    return np.ascontiguousarray(packed[:, 0]).view(np.int64), np.ascontiguousarray(packed[:, 1:])


def _to_owners(comm, grid, ids, positions):
    """Send nodes to their subdomain's rank, keeping the route back (collective).

    The same ownership as :func:`quests_hpc.parallel.decomposition.distribute`
    (positions wrapped in one Numba pass, then ``grid.owner``), in one
    message per rank pair, remembering where every row came from so that the labels go
    back with one reverse exchange.
    """
    n = len(positions)
    pos = np.empty((n, 3))
    frac = np.empty((n, 3))
    K.wrap_fractional(np.ascontiguousarray(positions, dtype=np.float64), grid.cell,
                      grid.inv_cell, np.ascontiguousarray(grid.pbc), pos, frac)
    owner = grid.owner(frac) if n else np.empty(0, np.int64)
    order = np.argsort(owner, kind="stable")
    send = np.bincount(owner, minlength=comm.size).astype(np.int64)
    packed, recv = alltoallv_rows(_pack(ids[order], pos[order]), send, comm)
    own_ids, own_pos = _unpack(packed)
    return own_ids, own_pos, (order, send, recv)


def _fractional(positions, grid):
    """Fractional coordinates (and positions) without a BLAS call (see wrap_fractional)."""
    n = len(positions)
    frac, pos = np.empty((n, 3)), np.empty((n, 3))
    K.wrap_fractional(np.ascontiguousarray(positions, dtype=np.float64), grid.cell,
                      grid.inv_cell, np.zeros(3, dtype=np.bool_), pos, frac)
    return frac, pos


def _from_owners(comm, values, route):
    """Reverse of :func:`_to_owners`: owners' ``values`` back in the caller's order."""
    order, send, recv = route
    back, _ = alltoallv_rows(np.ascontiguousarray(values), recv, comm, send)
    out = np.empty_like(back)
    out[order] = back
    return out


__all__ = ["DEFAULT_R_EDGE", "DEFAULT_THRESHOLD", "ClusterResult", "find_clusters"]
