"""Cluster labels and sizes do not depend on the rank count (run under mpiexec -n 1, 2, 3).

Each rank holds an arbitrary share of the frame; the labels, gathered by atom id, must
equal the brute-force labels of the whole frame, and the summary must be the same.
Every rank asserts on the broadcast comparison, after the last collective of the test.
"""

import cluster_frames
import numpy as np
import pytest
from cluster_reference import brute_edges, brute_labels

from quests_hpc.analysis.biconnected import biconnected_component_sizes
from quests_hpc.analysis.clusters import find_clusters

MPI = pytest.importorskip("mpi4py.MPI")


def _gather_labels(comm, sel, labels, n):
    parts = comm.allgather((np.flatnonzero(sel), labels))
    out = np.zeros(n, dtype=np.int64)
    for idx, lab in parts:
        out[idx] = lab
    return out


@pytest.mark.mpi
@pytest.mark.parametrize("pbc, balance", [
    ((True, True, True), "uniform"), ((True, False, True), "atoms"),
    ((False, False, False), "uniform")])
def test_labels_equal_brute_force_any_rank_count(pbc, balance):
    comm = MPI.COMM_WORLD
    f = cluster_frames.random_frame(n=700, seed=4, pbc=pbc)
    ids, pos, dh, sel = cluster_frames.split(f, comm.rank, comm.size)
    r = find_clusters(ids, pos, dh, f["cell"], pbc, r_edge=2.0, comm=comm, balance=balance,
                      biconnected_max_size=60)
    labels = _gather_labels(comm, sel, r.labels, len(f["ids"]))
    ref = brute_labels(f["ids"], f["positions"], f["dh"], f["cell"], pbc, 0.0, 2.0)
    np.testing.assert_array_equal(labels, ref)
    u, sizes = np.unique(ref[ref > 0], return_counts=True)
    assert (r.n_clusters, r.largest) == (len(u), sizes.max())
    assert r.largest_label == u[sizes == sizes.max()].min()
    v, c = np.unique(sizes, return_counts=True)
    np.testing.assert_array_equal(r.sizes, v)
    np.testing.assert_array_equal(r.counts, c)
    node = np.flatnonzero(f["dh"] <= 0)
    i, j = brute_edges(f["positions"][node], f["cell"], pbc, 2.0)
    size_of = dict(zip(u, sizes))
    keep = np.array([size_of[x] <= 60 for x in ref[node][i]], dtype=bool)
    comp = biconnected_component_sizes(i[keep], j[keep])
    v, c = np.unique(comp, return_counts=True)
    np.testing.assert_array_equal(r.biconnected.sizes, v)
    np.testing.assert_array_equal(r.biconnected.counts, c)
    assert r.biconnected.n_skipped == int((sizes > 60).sum())


@pytest.mark.mpi
def test_empty_ranks_and_no_nodes():
    comm = MPI.COMM_WORLD
    f = cluster_frames.random_frame(n=40, seed=9)
    keep = comm.rank == 0  # all atoms on rank 0, none elsewhere
    ids = f["ids"] if keep else f["ids"][:0]
    pos = f["positions"] if keep else f["positions"][:0]
    r = find_clusters(ids, pos, np.ones(len(ids)), f["cell"], True, comm=comm)
    assert r.n_clusters == 0 and r.n_atoms == 40 and (r.labels == 0).all()
    dh = f["dh"] if keep else f["dh"][:0]
    r = find_clusters(ids, pos, dh, f["cell"], True, r_edge=2.5, comm=comm)
    full = comm.allgather(r.labels)[0]
    ref = brute_labels(f["ids"], f["positions"], f["dh"], f["cell"], True, 0.0, 2.5)
    np.testing.assert_array_equal(full, ref)
