"""Brute-force references for the cluster tests (small frames only)."""

import itertools

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def brute_edges(positions, cell, pbc, r_edge):
    """All pairs (i < j) within r_edge over the images within two cells (O(N^2))."""
    pos = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    ranges = [(-2, -1, 0, 1, 2) if p else (0,) for p in pbc]
    shifts = np.array(list(itertools.product(*ranges))) @ cell
    d = pos[None, :, None, :] - pos[:, None, None, :] + shifts[None, None, :, :]
    d2 = (d ** 2).sum(-1).min(-1)
    i, j = np.nonzero(np.triu(d2 <= r_edge ** 2, k=1))
    return i, j


def brute_labels(ids, positions, dh, cell, pbc, threshold, r_edge):
    """Cluster label (smallest id, 0 for non-nodes) of every atom."""
    ids = np.asarray(ids)
    node = np.flatnonzero(np.asarray(dh) <= threshold)
    out = np.zeros(len(ids), dtype=np.int64)
    if len(node) == 0:
        return out
    i, j = brute_edges(np.asarray(positions)[node], cell, pbc, r_edge)
    g = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(node), len(node)))
    _, comp = connected_components(g, directed=False)
    lab = np.full(comp.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(lab, comp, ids[node])
    out[node] = lab[comp]
    return out


def tarjan_bcc_sizes(n, edges):
    """Biconnected component vertex counts, recursive textbook version (tiny graphs)."""
    import sys

    sys.setrecursionlimit(10000)
    adj = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    disc, low, stack, out = [-1] * n, [0] * n, [], []
    t = [0]

    def dfs(v, parent):
        disc[v] = low[v] = t[0]
        t[0] += 1
        for w in adj[v]:
            if disc[w] == -1:
                stack.append((v, w))
                dfs(w, v)
                low[v] = min(low[v], low[w])
                if low[w] >= disc[v]:
                    comp = set()
                    while True:
                        e = stack.pop()
                        comp.update(e)
                        if e == (v, w):
                            break
                    out.append(len(comp))
            elif w != parent and disc[w] < disc[v]:
                stack.append((v, w))
                low[v] = min(low[v], disc[w])

    for v in range(n):
        if disc[v] == -1:
            dfs(v, -1)
    return sorted(out)
