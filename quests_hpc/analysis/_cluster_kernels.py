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


@njit(cache=True)
def grid_sort(points, lo, width, dims, order, start):
    """Counting sort of points into a dense grid of cubic cells (linear time).

    The grid has an empty border layer: ``dims`` counts it (interior cells are
    ``1 .. dims[a] - 2`` along every axis), so the 27 neighbours of an occupied cell
    always exist and the edge kernels need no bounds checks.

    Parameters
    ----------
    points : ndarray, shape (n, 3)
    lo : ndarray, shape (3,)
        Lower corner of the interior cells.
    width : float
        Cell edge (>= the edge length r_edge).
    dims : ndarray of int64, shape (3,)
        Cells per axis, border included (interior points are clamped to the interior).
    order : ndarray of int64, shape (n,)
        Output: point indices sorted by cell.
    start : ndarray of int64, shape (prod(dims) + 1,)
        Output: sorted range ``[start[c], start[c + 1])`` of cell ``c``.
    """
    n = points.shape[0]
    nc = start.shape[0] - 1
    key = np.empty(n, dtype=np.int64)
    for c in range(nc + 1):
        start[c] = 0
    for i in range(n):
        ix = min(max(int((points[i, 0] - lo[0]) / width), 0), dims[0] - 3) + 1
        iy = min(max(int((points[i, 1] - lo[1]) / width), 0), dims[1] - 3) + 1
        iz = min(max(int((points[i, 2] - lo[2]) / width), 0), dims[2] - 3) + 1
        k = (ix * dims[1] + iy) * dims[2] + iz
        key[i] = k
        start[k + 1] += 1
    for c in range(nc):
        start[c + 1] += start[c]
    fill = start[:nc].copy()
    for i in range(n):
        k = key[i]
        order[fill[k]] = i
        fill[k] += 1


@njit(cache=True)
def stencil(dims):
    """Flat-index offsets of the 27 cells around a cell of a grid with ``dims``."""
    out = np.empty(27, dtype=np.int64)
    t = 0
    for dx in range(-1, 2):
        for dy in range(-1, 2):
            for dz in range(-1, 2):
                out[t] = (dx * dims[1] + dy) * dims[2] + dz
                t += 1
    return out


@njit(cache=True)
def wrap_fractional(pos, cell, inv, pbc, out_pos, out_frac):
    """Wrap positions into the cell; also return their fractional coordinates.

    Same rule as :func:`quests_hpc.geometry.wrap_positions` (subtract whole cell vectors
    along periodic axes), in one pass and without a BLAS call per row block (``(n, 3) @
    (3, 3)`` products are slow when BLAS threads compete with MPI ranks).

    Parameters
    ----------
    pos : ndarray, shape (n, 3)
    cell, inv : ndarray, shape (3, 3)
        Complete cell (rows are vectors) and its inverse.
    pbc : ndarray of bool, shape (3,)
    out_pos, out_frac : ndarray, shape (n, 3)
        Output: wrapped Cartesian and fractional coordinates.
    """
    for i in range(pos.shape[0]):
        for a in range(3):
            f = pos[i, 0] * inv[0, a] + pos[i, 1] * inv[1, a] + pos[i, 2] * inv[2, a]
            out_frac[i, a] = f
        for b in range(3):
            out_pos[i, b] = pos[i, b]
        for a in range(3):
            if pbc[a]:
                sh = np.floor(out_frac[i, a])
                out_frac[i, a] -= sh
                if out_frac[i, a] >= 1.0:
                    out_frac[i, a] -= 1.0
                    sh += 1.0
                if sh != 0.0:
                    for b in range(3):
                        out_pos[i, b] -= sh * cell[a, b]


@njit(parallel=True, cache=True)
def grid_edges(pts, owned, start, dims, r2, offsets, ei, ej, count_only):
    """Edges of the points sorted into a dense grid (:func:`grid_sort`), two passes.

    Same edge set as :func:`count_edges` / :func:`fill_edges`: pairs at squared distance
    ``<= r2`` with at least one owned point, owned-owned pairs once.  With
    ``count_only`` the per-point counts go to ``offsets[i + 1]``; otherwise ``offsets``
    holds the exclusive prefix sums and the edges (sorted indices) are written.
    """
    nc = start.shape[0] - 1
    st = stencil(dims)
    for c in prange(nc):
        if start[c] == start[c + 1]:
            continue
        for i in range(start[c], start[c + 1]):
            if not owned[i]:
                continue
            pos = 0 if count_only else offsets[i]
            for t in range(27):
                nb = c + st[t]
                for j in range(start[nb], start[nb + 1]):
                    if owned[j] and j <= i:
                        continue
                    ddx = pts[j, 0] - pts[i, 0]
                    ddy = pts[j, 1] - pts[i, 1]
                    ddz = pts[j, 2] - pts[i, 2]
                    if ddx * ddx + ddy * ddy + ddz * ddz <= r2:
                        if not count_only:
                            ei[pos] = i
                            ej[pos] = j
                        pos += 1
            if count_only:
                offsets[i + 1] = pos


@njit(cache=True)
def grid_union(pts, owned, keys, start, dims, r2, parent, cap):
    """One serial pass: union-find over owned-owned edges, list owned-ghost edges.

    The fused form of :func:`grid_edges` + :func:`union_min_labels` for when the edges
    themselves are not needed: one distance test per pair instead of two passes, no edge
    arrays.  Roots carry the smallest key of their tree.

    Parameters
    ----------
    pts : ndarray, shape (n, 3)
        Points sorted by cell (:func:`grid_sort`).
    owned : ndarray of bool, shape (n,)
    keys : ndarray of int64, shape (n,)
        Key (atom id) of every sorted point (only owned ones are used).
    start, dims : ndarray of int64
        Grid of :func:`grid_sort`.
    r2 : float
    parent : ndarray of int64, shape (n,)
        Output: union-find forest (call :func:`roots` for the labels).
    cap : int
        Initial capacity of the ghost-edge list (grown as needed).

    Returns
    -------
    gi, gj : ndarray of int64
        Owned-ghost edges (sorted indices).
    """
    n = pts.shape[0]
    for i in range(n):
        parent[i] = i
    gi = np.empty(max(cap, 16), dtype=np.int64)
    gj = np.empty(max(cap, 16), dtype=np.int64)
    m = 0
    nc = start.shape[0] - 1
    st = stencil(dims)
    for c in range(nc):
        if start[c] == start[c + 1]:
            continue
        for i in range(start[c], start[c + 1]):
            if not owned[i]:
                continue
            for t in range(27):
                nb = c + st[t]
                for j in range(start[nb], start[nb + 1]):
                    oj = owned[j]
                    if oj and j <= i:
                        continue
                    ddx = pts[j, 0] - pts[i, 0]
                    ddy = pts[j, 1] - pts[i, 1]
                    ddz = pts[j, 2] - pts[i, 2]
                    if ddx * ddx + ddy * ddy + ddz * ddz > r2:
                        continue
                    if oj:
                        ra = _find(parent, i)
                        rb = _find(parent, j)
                        if ra != rb:
                            if keys[ra] < keys[rb]:
                                parent[rb] = ra
                            else:
                                parent[ra] = rb
                    else:
                        if m == gi.shape[0]:
                            gi2 = np.empty(2 * m, dtype=np.int64)
                            gj2 = np.empty(2 * m, dtype=np.int64)
                            gi2[:m] = gi
                            gj2[:m] = gj
                            gi = gi2
                            gj = gj2
                        gi[m] = i
                        gj[m] = j
                        m += 1
    return gi[:m].copy(), gj[:m].copy()


@njit(cache=True)
def roots_min_keys(parent, keys, n):
    """Label of every vertex ``0..n-1`` of a union-find forest: its root's key."""
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = keys[_find(parent, i)]
    return out


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
