"""Serial cluster analysis: labels equal a brute-force reference; bad input is refused."""

import cluster_frames
import numpy as np
import pytest
from cluster_reference import brute_edges, brute_labels, tarjan_bcc_sizes

from quests_hpc.analysis import _cluster_kernels as K
from quests_hpc.analysis.biconnected import biconnected_component_sizes
from quests_hpc.analysis.clusters import find_clusters
from quests_hpc.errors import QuestsInputError

MPI = pytest.importorskip("mpi4py.MPI")
SELF = MPI.COMM_SELF  # a serial run


def test_the_communicator_is_required():
    f = cluster_frames.random_frame()
    with pytest.raises(TypeError, match="find_clusters.*pass MPI.COMM_SELF for a serial run"):
        find_clusters(f["ids"], f["positions"], f["dh"], f["cell"], True, comm=None)


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False), (False, False, False)])
def test_labels_equal_brute_force(pbc):
    f = cluster_frames.random_frame(pbc=pbc)
    r = find_clusters(f["ids"], f["positions"], f["dh"], f["cell"], pbc, r_edge=2.0, comm=SELF)
    ref = brute_labels(f["ids"], f["positions"], f["dh"], f["cell"], pbc, 0.0, 2.0)
    np.testing.assert_array_equal(r.labels, ref)
    sizes = np.unique(ref[ref > 0], return_counts=True)[1]
    assert r.n_clusters == len(sizes)
    assert r.largest == sizes.max()
    assert r.n_nodes == int((f["dh"] <= 0).sum())
    v, c = np.unique(sizes, return_counts=True)
    np.testing.assert_array_equal(r.sizes, v)
    np.testing.assert_array_equal(r.counts, c)
    big = np.unique(ref[ref > 0], return_counts=True)
    assert r.largest_label == big[0][big[1] == sizes.max()].min()


def test_threshold_and_input_order():
    f = cluster_frames.random_frame(seed=3)
    perm = np.random.default_rng(0).permutation(len(f["ids"]))
    a = find_clusters(f["ids"], f["positions"], f["dh"], f["cell"], True, threshold=0.5,
                      r_edge=1.8, comm=SELF)
    b = find_clusters(f["ids"][perm], f["positions"][perm], f["dh"][perm], f["cell"], True,
                      threshold=0.5, r_edge=1.8, comm=SELF)
    np.testing.assert_array_equal(a.labels[perm], b.labels)
    ref = brute_labels(f["ids"], f["positions"], f["dh"], f["cell"], True, 0.5, 1.8)
    np.testing.assert_array_equal(a.labels, ref)


def test_periodic_wraparound_cluster():
    """A chain across the periodic boundary is one cluster labelled by its smallest id."""
    cell = np.eye(3) * 10.0
    pos = np.array([[9.0, 5, 5], [0.5, 5, 5], [2.0, 5, 5], [5.0, 5, 5]])
    ids = np.array([7, 3, 9, 1])
    r = find_clusters(ids, pos, np.zeros(4), cell, True, r_edge=1.6, comm=SELF)
    np.testing.assert_array_equal(r.labels, [3, 3, 3, 1])
    r = find_clusters(ids, pos, np.zeros(4), cell, [False, True, True], r_edge=1.6, comm=SELF)
    np.testing.assert_array_equal(r.labels, [7, 3, 3, 1])


def test_frame_without_nodes_gives_zero_clusters():
    f = cluster_frames.random_frame(n=50)
    r = find_clusters(f["ids"], f["positions"], np.ones(50), f["cell"], True, comm=SELF)
    assert r.n_clusters == 0 and r.largest == 0 and r.n_nodes == 0
    assert (r.labels == 0).all() and len(r.sizes) == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(threshold=float("nan")), "threshold must be a finite number"),
    (dict(threshold="low"), "threshold must be a finite number"),
    (dict(r_edge=float("inf")), "r_edge must be a finite number"),
    (dict(r_edge=0.0), "r_edge must be > 0"),
    (dict(r_edge=-1.0), "r_edge must be > 0"),
    (dict(r_edge=7.0), "larger than half the cell"),
    (dict(biconnected_max_size=1), "biconnected_max_size"),
])
def test_bad_parameters(kwargs, match):
    f = cluster_frames.random_frame(n=20)
    with pytest.raises(QuestsInputError, match=match):
        find_clusters(f["ids"], f["positions"], f["dh"], f["cell"], True, **kwargs, comm=SELF)


def test_bad_arrays():
    f = cluster_frames.random_frame(n=20)
    dh = f["dh"].copy()
    dh[4] = np.nan
    with pytest.raises(QuestsInputError, match="dH is NaN"):
        find_clusters(f["ids"], f["positions"], dh, f["cell"], True, comm=SELF)
    with pytest.raises(QuestsInputError, match="ids must be >= 1"):
        find_clusters(f["ids"] - 3, f["positions"], f["dh"], f["cell"], True, comm=SELF)
    with pytest.raises(QuestsInputError, match="one value per atom"):
        find_clusters(f["ids"], f["positions"], np.stack([f["dh"]] * 2), f["cell"], True, comm=SELF)
    ids = f["ids"].copy()
    ids[1] = ids[0]
    with pytest.raises(QuestsInputError, match="more than once"):
        find_clusters(ids, f["positions"], np.full(20, -1.0), f["cell"], True, comm=SELF)


def test_biconnected_handmade_graphs():
    # Two triangles sharing vertex 2 (a bowtie) plus a pendant edge 4-5.
    a = [0, 1, 2, 2, 3, 4, 4]
    b = [1, 2, 0, 3, 4, 2, 5]
    assert sorted(biconnected_component_sizes(a, b)) == [2, 3, 3]
    # A chain of 5 vertices: 4 bridges.
    assert sorted(biconnected_component_sizes([0, 1, 2, 3], [1, 2, 3, 4])) == [2] * 4
    # A 6-ring with a chord is one component; duplicates and self-loops are ignored.
    a = [0, 1, 2, 3, 4, 5, 0, 1, 3]
    b = [1, 2, 3, 4, 5, 0, 3, 1, 0]
    assert list(biconnected_component_sizes(a, b)) == [6]
    assert len(biconnected_component_sizes([], [])) == 0


def test_biconnected_random_graphs_vs_textbook():
    rng = np.random.default_rng(5)
    for trial in range(30):
        n = int(rng.integers(2, 40))
        m = int(rng.integers(0, 2 * n))
        e = rng.integers(0, n, size=(m, 2))
        e = np.unique(np.sort(e[e[:, 0] != e[:, 1]], axis=1), axis=0)
        got = sorted(biconnected_component_sizes(e[:, 0], e[:, 1]).tolist())
        names = np.unique(e)
        inv = np.searchsorted(names, e)
        assert got == tarjan_bcc_sizes(len(names), [tuple(x) for x in inv]), trial


def test_biconnected_in_frame_matches_serial_graph():
    f = cluster_frames.random_frame(seed=2)
    r = find_clusters(f["ids"], f["positions"], f["dh"], f["cell"], True, r_edge=2.0,
                      biconnected_max_size=100, comm=SELF)
    node = np.flatnonzero(f["dh"] <= 0)
    i, j = brute_edges(f["positions"][node], f["cell"], (True,) * 3, 2.0)
    lab = r.labels[node]
    size = dict(zip(*np.unique(lab, return_counts=True)))
    keep = np.array([size[x] <= 100 for x in lab[i]], dtype=bool)
    comp = biconnected_component_sizes(i[keep], j[keep])
    bic = r.biconnected
    assert bic.n_components == len(comp) and bic.largest == comp.max()
    assert bic.n_skipped == sum(1 for s in size.values() if s > 100)
    assert bic.largest_skipped == max([s for s in size.values() if s > 100], default=0)


def test_union_min_labels_kernel():
    keys = np.array([50, 40, 30, 20, 10], dtype=np.int64)
    ei = np.array([0, 2, 3], dtype=np.int64)
    ej = np.array([1, 1, 9], dtype=np.int64)  # the last edge leaves the vertex set: ignored
    np.testing.assert_array_equal(K.union_min_labels(keys, ei, ej, 5), [30, 30, 30, 20, 10])


def _edge_set(a, b):
    return set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))


@pytest.mark.parametrize("far", [False, True])
def test_edge_paths_agree(far):
    """Dense grid, sparse cell list and the fused pass give the same graph."""
    from quests_hpc.analysis.edges import _sparse_edges, local_components, local_edges

    rng = np.random.default_rng(11)
    pts = rng.random((900, 3)) * 12.0
    if far:  # one point far away makes the dense grid too sparse: sparse path
        pts[-1] = [1e4, -3e3, 5e3]
    n_own = 700
    keys = rng.permutation(np.arange(1, n_own + 1) * 7)
    a, b = local_edges(pts, n_own, 1.7)
    a2, b2 = _sparse_edges(pts, n_own, 1.7)
    assert _edge_set(a, b) == _edge_set(a2, b2)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    i, j = np.nonzero(np.triu(d <= 1.7, 1))
    keep = i < n_own  # at least one owned endpoint (i < j)
    assert _edge_set(a, b) == _edge_set(i[keep], j[keep])
    rep, gi, gj = local_components(pts, n_own, keys, 1.7)
    np.testing.assert_array_equal(rep, K.union_min_labels(keys, a, b, n_own))
    cross = b >= n_own
    assert _edge_set(gi, gj) == _edge_set(a[cross], b[cross])

