"""Biconnected (2-connected) components of the clusters, as in the paper's Methods.

"Clusters are defined as 2-connected subgraphs of the larger graph" (Schwalbe-Koda et
al. 2025, Methods): a biconnected component stays connected when any one atom is
removed, so two compact nuclei joined through a single atom (or a chain) count as two.
Conventions follow ``networkx.biconnected_components``: a bridge (one edge) is a component
of two atoms, an isolated node belongs to none, an articulation atom belongs to several.

Biconnectivity needs the whole cluster in one place: the edges of every cluster of at
most ``max_size`` atoms are sent to the rank ``label % size`` and analysed there with an
iterative Hopcroft-Tarjan kernel.  Larger clusters (e.g. the crystal after growth) are
skipped and counted as such, so the cost stays bounded.
"""

from dataclasses import dataclass

import numpy as np
from ..parallel.comm import allreduce
from . import _cluster_kernels as K
from .common import route_by_key, size_histogram, unique_rows


@dataclass
class BiconnectedSummary:
    """Biconnected components of the clusters of one frame (same on every rank).

    Attributes
    ----------
    max_size : int
        Clusters of more atoms were not analysed.
    largest : int
        Atoms in the largest biconnected component found (0 if none).
    n_components : int
        Biconnected components found (bridges included).
    sizes, counts : ndarray of int64
        Histogram of the components' sizes.
    n_skipped : int
        Clusters larger than ``max_size`` (not analysed).
    largest_skipped : int
        Size of the largest skipped cluster (0 if none).
    """

    max_size: int
    largest: int
    n_components: int
    sizes: np.ndarray
    counts: np.ndarray
    n_skipped: int
    largest_skipped: int

    @property
    def complete(self):
        """True when every cluster was analysed."""
        return self.n_skipped == 0

    @classmethod
    def empty(cls, max_size):
        """The summary of a frame without nodes."""
        e = np.empty(0, np.int64)
        return cls(max_size=int(max_size), largest=0, n_components=0, sizes=e, counts=e.copy(),
                   n_skipped=0, largest_skipped=0)

    def summary(self):
        """Per-frame numbers as a dict (keys prefixed ``biconnected_``)."""
        return {
            "biconnected_max_size": self.max_size, "biconnected_largest": self.largest,
            "biconnected_count": self.n_components, "biconnected_skipped": self.n_skipped,
            "biconnected_largest_skipped": self.largest_skipped,
        }


def biconnected_component_sizes(a, b):
    """Vertex counts of the biconnected components of an undirected graph (serial).

    Parameters
    ----------
    a, b : array_like of int
        Edge endpoints (any integer vertex names; repeated edges and self-loops are
        dropped).

    Returns
    -------
    ndarray of int64
        One entry per component, in no particular order.
    """
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    b = np.asarray(b, dtype=np.int64).reshape(-1)
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    if len(lo) == 0:
        return np.empty(0, np.int64)
    e = unique_rows(np.stack([lo, hi], axis=1))
    names, inv = np.unique(e.reshape(-1), return_inverse=True)
    inv = inv.reshape(-1, 2).astype(np.int64)
    indptr, indices = K.csr_from_edges(len(names), inv[:, 0].copy(), inv[:, 1].copy())
    return K.biconnected_sizes(len(names), indptr, indices)


def biconnected_summary(comm, edge_label, edge_cluster_size, a_ids, b_ids, max_size,
                        cluster_sizes):
    """Biconnected components of every cluster of at most ``max_size`` atoms (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    edge_label : ndarray of int64, shape (m,)
        Cluster label of each local edge.
    edge_cluster_size : ndarray of int64, shape (m,)
        Size of that cluster.
    a_ids, b_ids : ndarray of int64, shape (m,)
        Atom ids of the endpoints (an edge seen by two ranks is de-duplicated).
    max_size : int
    cluster_sizes : ndarray of int64
        Sizes of the clusters whose home is this rank (to count the skipped ones).

    Returns
    -------
    BiconnectedSummary
    """
    keep = edge_cluster_size <= max_size
    lab = np.ascontiguousarray(edge_label[keep])
    lo = np.minimum(a_ids[keep], b_ids[keep])
    hi = np.maximum(a_ids[keep], b_ids[keep])
    (_, r_lo, r_hi), _, _, _ = route_by_key(comm, lab, lo, hi)
    comp = biconnected_component_sizes(r_lo, r_hi)  # clusters are disjoint: one pass
    skipped = cluster_sizes[cluster_sizes > max_size]
    n_comp, n_skipped = allreduce(np.array([len(comp), len(skipped)], np.int64), "sum", comm)
    largest, largest_skipped = allreduce(np.array([comp.max() if len(comp) else 0,
                                                   skipped.max() if len(skipped) else 0],
                                                  np.int64), "max", comm)
    sizes, counts = size_histogram(comm, comp)
    return BiconnectedSummary(
        max_size=int(max_size), largest=int(largest), n_components=int(n_comp), sizes=sizes,
        counts=counts, n_skipped=int(n_skipped), largest_skipped=int(largest_skipped))
