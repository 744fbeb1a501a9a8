"""Numba kernels for the QUESTS descriptor (SPEC.md, "Descriptor of atom i").

Pure functions on arrays: no I/O, no Python objects.  The point cloud is given as a
:class:`~quests_hpc.cell_list.CellList` (points sorted by bin), and the descriptor of
each requested centre is computed from its k nearest points within the cutoff.
"""

import numpy as np
from numba import njit, prange

from ._sort_network32 import _sort_columns_32

# Centres handled per scratch allocation inside a parallel loop.
_CHUNK = 64


@njit(parallel=True, cache=True)
def neighbour_bins(keys, bin_xyz, dims):
    """Indices (into ``keys``) of the occupied bins among the 27 around each bin.

    Returns an ``(B, 27)`` int64 array, -1 where the neighbour bin is empty or outside
    the grid.
    """
    nb = keys.shape[0]
    out = np.full((nb, 27), -1, dtype=np.int64)
    for b in prange(nb):
        t = 0
        for dx in range(-1, 2):
            x = bin_xyz[b, 0] + dx
            for dy in range(-1, 2):
                y = bin_xyz[b, 1] + dy
                for dz in range(-1, 2):
                    z = bin_xyz[b, 2] + dz
                    if 0 <= x < dims[0] and 0 <= y < dims[1] and 0 <= z < dims[2]:
                        key = (x * dims[1] + y) * dims[2] + z
                        pos = np.searchsorted(keys, key)
                        if pos < nb and keys[pos] == key:
                            out[b, t] = pos
                            t += 1
    return out


@njit(inline="always")
def _insert_nearest(best_d2, best_j, count, k, d2, j):
    """Insert (d2, j) into the ascending list of the k nearest; stable for ties."""
    if count == k:
        if d2 >= best_d2[k - 1]:
            return count
        pos = k - 1
    else:
        pos = count
        count += 1
    while pos > 0 and best_d2[pos - 1] > d2:
        best_d2[pos] = best_d2[pos - 1]
        best_j[pos] = best_j[pos - 1]
        pos -= 1
    best_d2[pos] = d2
    best_j[pos] = j
    return count


@njit(cache=True)
def _Hood(cap):
    """Scratch of a bin's neighbourhood: coordinates, sorted indices, squared distances,
    the candidates' distances and indices, the point count."""
    return (np.empty(cap), np.empty(cap), np.empty(cap), np.empty(cap, dtype=np.int64),
            np.empty(cap), np.empty(cap), np.empty(cap, dtype=np.int64), np.zeros(1, np.int64))


@njit(cache=True)
def _gather_hood(hood, points, neigh_b, start, stop):
    """Copy the points of the (up to) 27 bins ``neigh_b`` into ``hood`` (contiguous, in
    the scan order: bins as listed, points in bin order); grows it when needed."""
    total = 0
    for s in range(27):
        nb = neigh_b[s]
        if nb < 0:
            break
        total += stop[nb] - start[nb]
    if total + 1 > hood[0].shape[0]:
        hood = _Hood(2 * total + 1)
    hx, hy, hz, hj = hood[0], hood[1], hood[2], hood[3]
    m = 0
    for s in range(27):
        nb = neigh_b[s]
        if nb < 0:
            break
        for j in range(start[nb], stop[nb]):
            hx[m] = points[j, 0]
            hy[m] = points[j, 1]
            hz[m] = points[j, 2]
            hj[m] = j
            m += 1
    hood[7][0] = m
    return hood


@njit(cache=True)
def _nearest(hood, px, py, pz, p, rc2, k, best_d2, best_j):
    """The k nearest points of ``hood`` within ``sqrt(rc2)`` of (px, py, pz), point ``p``
    excluded, ascending; ties keep the scan order.  Returns (count, clash): ``clash`` is
    the last point in scan order at distance 0 (-1 if none).

    Branch-free where it counts: all distances in one vectorised loop, the candidates
    compacted with a conditional increment; then each of the m candidates placed at its
    rank (the number before it in the stable order: an O(m^2) count in two vectorised
    loops, 2026-12-03 on AVX-512 faster than insertion into the sorted k nearest, whose
    exits mispredict), or, for m > 4k (large cutoffs), inserted as before.
    """
    hx, hy, hz, hj, hd2, cd2, cj = hood[0], hood[1], hood[2], hood[3], hood[4], hood[5], hood[6]
    n = hood[7][0]
    for q in range(n):
        dx = hx[q] - px
        dy = hy[q] - py
        dz = hz[q] - pz
        hd2[q] = dx * dx + dy * dy + dz * dz
    m = 0
    for q in range(n):
        cd2[m] = hd2[q]
        cj[m] = hj[q]
        m += 1 if (hd2[q] <= rc2 and hj[q] != p) else 0
    clash = -1
    for a in range(m):
        if cd2[a] == 0.0:
            clash = cj[a]
    if m > 4 * k:
        count = 0
        for a in range(m):
            count = _insert_nearest(best_d2, best_j, count, k, cd2[a], cj[a])
        return count, clash
    for a in range(m):
        da = cd2[a]
        rank = 0
        for b in range(a):  # before a in scan order: ties rank first
            rank += 1 if cd2[b] <= da else 0
        for b in range(a + 1, m):
            rank += 1 if cd2[b] < da else 0
        if rank < k:
            best_d2[rank] = da
            best_j[rank] = cj[a]
    return min(m, k), clash


#: The usual k (SPEC: 32): its column sort is unrolled (quests_hpc._sort_network32).
_K_FIXED = 32


@njit(inline="always", cache=True)
def _compare_rows(lo_row, hi_row, n):
    """One comparator on ``n`` columns: ``lo, hi = min, max`` element by element."""
    for r in range(n):
        x = lo_row[r]
        y = hi_row[r]
        lo_row[r] = x if x < y else y
        hi_row[r] = y if x < y else x


def sorting_network(n):
    """Comparators ``(i, j)``, i < j, of Batcher's odd-even merge sort for n values.

    Applying ``a[i], a[j] = min, max`` for every pair in order sorts any ``a`` of length
    n ascending.  Built for the next power of two; comparators that touch a slot >= n
    are dropped (equivalent to padding with +inf, which never moves).
    """
    m = 1
    while m < n:
        m *= 2
    pairs = []
    p = 1
    while p < m:
        step = p
        while step >= 1:
            for j in range(step % p, m - step, 2 * step):
                for i in range(min(step, m - j - step)):
                    if (i + j) // (2 * p) == (i + j + step) // (2 * p):
                        pairs.append((i + j, i + j + step))
            step //= 2
        p *= 2
    return np.array([(i, j) for i, j in pairs if j < n], dtype=np.int64).reshape(-1, 2)


@njit(parallel=True, cache=True, error_model="numpy")
def descriptor_kernel(
    points, centres, dest, bin_of_point, start, stop, neigh, network, k, cutoff, out, clash
):
    """Descriptors of the points ``centres`` (indices into the sorted ``points``).

    Parameters
    ----------
    points : float64 (N, 3)
        Points sorted by bin (``CellList.sorted_points``).
    centres : int64 (C,)
        Sorted-point indices whose descriptors are wanted.
    dest : int64 (C,)
        Row of ``out`` that receives the descriptor of ``centres[t]`` (so the caller's
        order is written directly, without a temporary copy).
    bin_of_point, start, stop : int64 arrays
        From the cell list.
    neigh : int64 (B, 27)
        From :func:`neighbour_bins`.
    network : int64 (P, 2)
        Comparators of a sorting network for k values (:func:`sorting_network`).
    k : int
        Neighbours per environment.
    cutoff : float
    out : float64 (R, 2k-1)
        Written: row ``dest[t]`` is the descriptor of centre ``centres[t]``.
    clash : int64 (C,)
        Written: -1, or the sorted index of a point at distance 0 from the centre.
    """
    nc = centres.shape[0]
    rc2 = cutoff * cutoff
    nchunks = (nc + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        best_d2 = np.empty(k)
        best_j = np.empty(k, dtype=np.int64)
        dxs = np.empty(k)
        dys = np.empty(k)
        dzs = np.empty(k)
        sw = np.empty(k)
        mat = np.zeros((k, k))
        hood = _Hood(512)
        cur_bin = -1
        for t in range(c * _CHUNK, min(nc, (c + 1) * _CHUNK)):
            p = centres[t]
            row = dest[t]
            b = bin_of_point[p]
            if b != cur_bin:  # centres come in bin order: one gather per bin
                hood = _gather_hood(hood, points, neigh[b], start, stop)
                cur_bin = b
            count, clash[t] = _nearest(hood, points[p, 0], points[p, 1], points[p, 2], p,
                                       rc2, k, best_d2, best_j)
            px, py, pz = points[p, 0], points[p, 1], points[p, 2]
            # Radial part X1 (descending w(r)/r), zero-padded to k.
            for a in range(count):
                j = best_j[a]
                dxs[a] = points[j, 0] - px
                dys[a] = points[j, 1] - py
                dzs[a] = points[j, 2] - pz
                r = np.sqrt(best_d2[a])
                u = 1.0 - best_d2[a] / rc2
                w = u * u
                out[row, a] = w / r if r > 0.0 else 0.0
                sw[a] = np.sqrt(w)
            for a in range(count, k):
                out[row, a] = 0.0
            # Cross part X2: M_jl = sqrt(w_j w_l) / r_jl with zero diagonal, zero rows and
            # columns for missing neighbours.  Every row is sorted (ascending) as a column
            # -- M is symmetric, so row j is column j -- by one sorting network applied to
            # all columns at once (min/max over contiguous memory, which vectorises; for
            # k = 32 unrolled, each column's values in registers).  The smallest entry (a
            # zero) is dropped and row n of the descending order is averaged over columns.
            if count < k:  # rows and columns of missing neighbours stay 0
                for a in range(k):
                    for b2 in range(k):
                        mat[a, b2] = 0.0
            else:  # every entry is written below but the diagonal
                for a in range(k):
                    mat[a, a] = 0.0
            # Row a: the lower triangle copied from the rows above (strided loads), the
            # upper computed in one vectorised loop; r = 0 (two neighbours at one place)
            # gives 0.  Bitwise what both triangles computed in full give (x_a - x_b =
            # -(x_b - x_a) exactly), with half the square roots and divisions.
            for a in range(count):
                xa, ya, za, swa = dxs[a], dys[a], dzs[a], sw[a]
                mrow = mat[a]
                for b2 in range(a):
                    mrow[b2] = mat[b2, a]
                for b2 in range(a + 1, count):
                    ex = xa - dxs[b2]
                    ey = ya - dys[b2]
                    ez = za - dzs[b2]
                    rjl = np.sqrt(ex * ex + ey * ey + ez * ez)
                    v = swa * sw[b2] / rjl
                    mrow[b2] = v if rjl > 0.0 else 0.0
            if k == _K_FIXED and count > 1:  # columns >= count are zeros: unchanged
                _sort_columns_32(mat, count)
            elif count > 1:
                for c2 in range(network.shape[0]):
                    _compare_rows(mat[network[c2, 0]], mat[network[c2, 1]], count)
            for n in range(k - 1):
                srow = mat[k - 1 - n]
                total = 0.0
                for r in range(count):
                    total += srow[r]
                out[row, k + n] = total / k
    return out
