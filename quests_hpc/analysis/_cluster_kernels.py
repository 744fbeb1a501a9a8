"""Numba kernels for the cluster analysis: radius edges, union-find, biconnected parts.

Pure functions on arrays: no I/O, no Python objects.  Points come binned by
:func:`quests_hpc.cell_list.build_cell_list` (sorted by bin) with the 27-bin neighbour
table of :func:`quests_hpc._descriptor_kernels.neighbour_bins`.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def count_edges(pts, owned, bin_of_point, start, stop, neigh, r2, counts):
    """Count the edges of every sorted point (first pass of :func:`fill_edges`).

    An edge joins two points at squared distance ``<= r2`` of which at least one is
    owned.  Owned-owned edges are stored once, at the point of smaller sorted index;
    owned-ghost edges at the owned point; ghost-ghost pairs are skipped.

    Parameters
    ----------
    pts : ndarray, shape (n, 3)
        Points sorted by bin.
    owned : ndarray of bool, shape (n,)
        Whether each sorted point is owned (else a ghost).
    bin_of_point, start, stop, neigh : ndarray of int64
        Cell-list arrays (bin of each point, point range of each bin, 27-bin table).
    r2 : float
        Squared edge length.
    counts : ndarray of int64, shape (n,)
        Output: edges stored at each point.
    """
    n = pts.shape[0]
    for i in prange(n):
        c = 0
        if owned[i]:
            b = bin_of_point[i]
            for t in range(27):
                nb = neigh[b, t]
                if nb < 0:
                    break
                for j in range(start[nb], stop[nb]):
                    if owned[j] and j <= i:
                        continue
                    dx = pts[j, 0] - pts[i, 0]
                    dy = pts[j, 1] - pts[i, 1]
                    dz = pts[j, 2] - pts[i, 2]
                    if dx * dx + dy * dy + dz * dz <= r2:
                        c += 1
        counts[i] = c


@njit(parallel=True, cache=True)
def fill_edges(pts, owned, bin_of_point, start, stop, neigh, r2, offsets, ei, ej):
    """Write the edges counted by :func:`count_edges` (sorted-point indices).

    Edge ``e`` of point ``i`` goes to ``ei[offsets[i] + e] = i`` and ``ej[...] = j``;
    ``offsets`` is the exclusive prefix sum of the counts (length n + 1).
    """
    n = pts.shape[0]
    for i in prange(n):
        if not owned[i]:
            continue
        c = offsets[i]
        b = bin_of_point[i]
        for t in range(27):
            nb = neigh[b, t]
            if nb < 0:
                break
            for j in range(start[nb], stop[nb]):
                if owned[j] and j <= i:
                    continue
                dx = pts[j, 0] - pts[i, 0]
                dy = pts[j, 1] - pts[i, 1]
                dz = pts[j, 2] - pts[i, 2]
                if dx * dx + dy * dy + dz * dz <= r2:
                    ei[c] = i
                    ej[c] = j
                    c += 1


@njit(inline="always")
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@njit(cache=True)
def union_min_labels(keys, ei, ej, n):
    """Connected components of vertices ``0..n-1``; label = smallest key in each.

    Parameters
    ----------
    keys : ndarray of int64, shape (n,)
        Key of each vertex (an atom id); labels are the minimum key of a component.
    ei, ej : ndarray of int64, shape (m,)
        Edges; an edge with an endpoint ``>= n`` is ignored.
    n : int
        Number of vertices.

    Returns
    -------
    ndarray of int64, shape (n,)
        The label of each vertex.
    """
    parent = np.arange(n)
    for e in range(ei.shape[0]):
        a = ei[e]
        b = ej[e]
        if a >= n or b >= n:
            continue
        ra = _find(parent, a)
        rb = _find(parent, b)
        if ra != rb:
            # Attach the root with the larger key below the smaller: roots carry the
            # minimum key of their tree, so no second pass over keys is needed.
            if keys[ra] < keys[rb]:
                parent[rb] = ra
            else:
                parent[ra] = rb
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = keys[_find(parent, i)]
    return out


@njit(cache=True)
def csr_from_edges(n, ei, ej):
    """Symmetric CSR adjacency ``(indptr, indices)`` of an undirected edge list."""
    deg = np.zeros(n + 1, dtype=np.int64)
    for e in range(ei.shape[0]):
        deg[ei[e] + 1] += 1
        deg[ej[e] + 1] += 1
    for i in range(n):
        deg[i + 1] += deg[i]
    indptr = deg.copy()
    fill = deg[:-1].copy()
    indices = np.empty(2 * ei.shape[0], dtype=np.int64)
    for e in range(ei.shape[0]):
        a = ei[e]
        b = ej[e]
        indices[fill[a]] = b
        fill[a] += 1
        indices[fill[b]] = a
        fill[b] += 1
    return indptr, indices


@njit(cache=True)
def biconnected_sizes(n, indptr, indices):
    """Vertex counts of the biconnected components of a simple undirected graph.

    Iterative Hopcroft-Tarjan on an edge stack.  As in ``networkx`` a bridge is a
    component of two vertices and an isolated vertex belongs to none; an articulation
    point belongs to several components.

    Parameters
    ----------
    n : int
    indptr, indices : ndarray of int64
        CSR adjacency (no self-loops, no repeated edges).

    Returns
    -------
    ndarray of int64
        One entry per component, its number of distinct vertices.
    """
    disc = np.full(n, -1, dtype=np.int64)
    low = np.zeros(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    it = np.zeros(n, dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    es_a = np.empty(indices.shape[0], dtype=np.int64)
    es_b = np.empty(indices.shape[0], dtype=np.int64)
    mark = np.full(n, -1, dtype=np.int64)
    sizes = np.empty(max(indices.shape[0], 1), dtype=np.int64)
    nsizes = 0
    ne = 0
    time = 0
    for s in range(n):
        if disc[s] >= 0:
            continue
        disc[s] = time
        low[s] = time
        time += 1
        top = 0
        stack[0] = s
        it[s] = indptr[s]
        while top >= 0:
            v = stack[top]
            if it[v] < indptr[v + 1]:
                w = indices[it[v]]
                it[v] += 1
                if disc[w] < 0:
                    parent[w] = v
                    disc[w] = time
                    low[w] = time
                    time += 1
                    es_a[ne] = v
                    es_b[ne] = w
                    ne += 1
                    top += 1
                    stack[top] = w
                    it[w] = indptr[w]
                elif w != parent[v] and disc[w] < disc[v]:
                    es_a[ne] = v  # back edge
                    es_b[ne] = w
                    ne += 1
                    if disc[w] < low[v]:
                        low[v] = disc[w]
            else:
                top -= 1
                p = parent[v]
                if p >= 0:
                    if low[v] < low[p]:
                        low[p] = low[v]
                    if low[v] >= disc[p]:
                        # p separates v's subtree: pop the component's edges.
                        cnt = 0
                        while ne > 0:
                            ne -= 1
                            a = es_a[ne]
                            b = es_b[ne]
                            if mark[a] != nsizes:
                                mark[a] = nsizes
                                cnt += 1
                            if mark[b] != nsizes:
                                mark[b] = nsizes
                                cnt += 1
                            if a == p and b == v:
                                break
                        sizes[nsizes] = cnt
                        nsizes += 1
    return sizes[:nsizes].copy()


@njit(cache=True)
def group_bounds(sorted_keys):
    """Start of every run of equal values in a sorted array, plus the end (length g+1)."""
    n = sorted_keys.shape[0]
    cnt = 0
    for i in range(n):
        if i == 0 or sorted_keys[i] != sorted_keys[i - 1]:
            cnt += 1
    out = np.empty(cnt + 1, dtype=np.int64)
    c = 0
    for i in range(n):
        if i == 0 or sorted_keys[i] != sorted_keys[i - 1]:
            out[c] = i
            c += 1
    out[cnt] = n
    return out
