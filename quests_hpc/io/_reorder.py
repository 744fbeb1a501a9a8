"""Numba kernels that move parsed rows: owner ranks, grouping, placement, wrapping.

Pure functions on arrays (``cache=True``): id statistics and checks, the owner rank of
an id (even split of dense ids, or splitters), in-place grouping of rows by owner
(two-pointer partition for 2 ranks, American flag sort otherwise), scatter by id, and
wrapping / scaled-to-Cartesian conversion of positions.
"""

import math

import numpy as np
from numba import njit

@njit(cache=True, nogil=True)
def id_stats(ids):
    """``(min, max, strictly_increasing)`` of an id array in one pass (n >= 1)."""
    lo = ids[0]
    hi = ids[0]
    inc = True
    for i in range(1, ids.shape[0]):
        v = ids[i]
        if v <= ids[i - 1]:
            inc = False
        if v < lo:
            lo = v
        elif v > hi:
            hi = v
    return lo, hi, inc


@njit(cache=True, nogil=True)
def dense_check(ids, base, n):
    """Check that ``ids`` are exactly ``base .. base+n-1``, each once.

    Returns -1 when they are; otherwise the first id out of range or repeated, or
    ``base - 1`` when the count differs but no id repeats (impossible unless some
    other rank holds a duplicate).
    """
    seen = np.zeros(n, dtype=np.uint8)
    for i in range(ids.shape[0]):
        j = ids[i] - base
        if j < 0 or j >= n or seen[j]:
            return ids[i]
        seen[j] = 1
    if ids.shape[0] != n:
        return base - 1
    return -1


@njit(cache=True, nogil=True)
def first_duplicate_sorted(ids):
    """Index of the first entry equal to its predecessor in a sorted array, or -1."""
    for i in range(1, ids.shape[0]):
        if ids[i] == ids[i - 1]:
            return i
    return -1


@njit(cache=True, nogil=True)
def count_placed(ids):
    """Number of non-empty (non-zero id) rows."""
    c = 0
    for j in range(ids.shape[0]):
        if ids[j] != 0:
            c += 1
    return c


@njit(cache=True, nogil=True)
def place_ids(src_ids, base, own_ids):
    """Store received ids at their slots ``id - base``; first id out of range or taken, or -1."""
    n = own_ids.shape[0]
    for i in range(src_ids.shape[0]):
        j = src_ids[i] - base
        if j < 0 or j >= n or own_ids[j] != 0:
            return src_ids[i]
        own_ids[j] = src_ids[i]
    return -1


@njit(cache=True, nogil=True)
def scatter_rows(src, ids, base, out):
    """``out[ids[i] - base] = src[i]`` row by row (ids checked by :func:`dense_check`)."""
    w = src.shape[1]
    for i in range(src.shape[0]):
        j = ids[i] - base
        for c in range(w):
            out[j, c] = src[i, c]


@njit(cache=True, nogil=True)
def dense_dest(ids, gmin, natoms, nparts, out):
    """Owner rank of each id for ids ``gmin .. gmin+natoms-1`` split evenly, into ``out``.

    Rank ``r`` owns sorted positions ``[r*N//P, (r+1)*N//P)``; the position of id ``i``
    is ``i - gmin`` and its owner is ``((pos + 1) * P - 1) // N``.
    """
    for i in range(ids.shape[0]):
        out[i] = ((ids[i] - gmin + 1) * nparts - 1) // natoms
    return out


@njit(cache=True, nogil=True)
def splitter_dest(ids, split, out):
    """Owner of each id, the number of splitters <= id, into ``out``."""
    m = split.shape[0]
    for i in range(ids.shape[0]):
        lo, hi = 0, m
        v = ids[i]
        while lo < hi:
            mid = (lo + hi) >> 1
            if split[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        out[i] = lo
    return out


@njit(cache=True, nogil=True)
def partition_rows(d, a, nparts):
    """Group the rows of ``a`` by ``d`` in place (American flag sort); ``d`` is permuted too.

    Not stable, but deterministic: the same ``d`` gives the same permutation, so several
    arrays are grouped consistently from copies of one destination array.  Each row is
    moved at most once into its final bucket, with one sequential write stream per
    bucket (cache friendly, unlike cycle-following).  Returns the bucket counts.
    """
    n = d.shape[0]
    counts = np.zeros(nparts, dtype=np.int64)
    for i in range(n):
        counts[d[i]] += 1
    nxt = np.zeros(nparts, dtype=np.int64)
    end = np.zeros(nparts, dtype=np.int64)
    acc = 0
    for p in range(nparts):
        nxt[p] = acc
        acc += counts[p]
        end[p] = acc
    w = a.shape[1]
    if nparts == 2:
        # two pointers from both ends (Hoare): two sequential streams
        i, j = 0, n - 1
        while True:
            while i < j and d[i] == 0:
                i += 1
            while i < j and d[j] != 0:
                j -= 1
            if i >= j:
                break
            d[i], d[j] = d[j], d[i]
            for c in range(w):
                t = a[i, c]
                a[i, c] = a[j, c]
                a[j, c] = t
        return counts
    for p in range(nparts):
        while nxt[p] < end[p]:
            i = nxt[p]
            q = d[i]
            if q == p:
                nxt[p] += 1
                continue
            j = nxt[q]
            while d[j] == q:
                j += 1
            nxt[q] = j + 1
            d[i], d[j] = d[j], q
            for c in range(w):
                t = a[i, c]
                a[i, c] = a[j, c]
                a[j, c] = t
    return counts


@njit(cache=True, inline="always")
def _owner(v, mode, gmin, natoms, split, nparts):
    if mode == 0:
        return ((v - gmin + 1) * nparts - 1) // natoms
    lo, hi = 0, split.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if split[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _swap_rows(i, j, ids, types, pos, fext, iext, sext, has_t, has_f, has_i, has_s):
    t = ids[i]
    ids[i] = ids[j]
    ids[j] = t
    if has_t:
        t2 = types[i]
        types[i] = types[j]
        types[j] = t2
    for c in range(3):
        t3 = pos[i, c]
        pos[i, c] = pos[j, c]
        pos[j, c] = t3
    if has_f:
        for c in range(fext.shape[1]):
            t3 = fext[i, c]
            fext[i, c] = fext[j, c]
            fext[j, c] = t3
    if has_i:
        for c in range(iext.shape[1]):
            t = iext[i, c]
            iext[i, c] = iext[j, c]
            iext[j, c] = t
    if has_s:
        for c in range(sext.shape[1]):
            t = sext[i, c]
            sext[i, c] = sext[j, c]
            sext[j, c] = t


@njit(cache=True, nogil=True)
def partition_columns(ids, types, pos, fext, iext, sext, mode, gmin, natoms, split, nparts):
    """Group the parsed rows (all columns at once) by owner rank, in place.

    The owner of a row follows from its id: ``mode`` 0 is the even split of dense ids
    ``gmin .. gmin+natoms-1`` (see :func:`dense_dest`), mode 1 the splitters ``split``
    (see :func:`splitter_dest`).  Arrays with zero rows are absent columns.  Two ranks:
    a two-pointer partition; more: an American flag sort.  Returns the counts per rank.
    """
    n = ids.shape[0]
    has_t = types.shape[0] == n and n > 0
    has_f = fext.shape[0] == n and fext.shape[1] > 0 and n > 0
    has_i = iext.shape[0] == n and iext.shape[1] > 0 and n > 0
    has_s = sext.shape[0] == n and sext.shape[1] > 0 and n > 0
    counts = np.zeros(nparts, dtype=np.int64)
    for i in range(n):
        counts[_owner(ids[i], mode, gmin, natoms, split, nparts)] += 1
    if nparts == 1:
        return counts
    if nparts == 2:
        i, j = 0, n - 1
        while True:
            while i < j and _owner(ids[i], mode, gmin, natoms, split, 2) == 0:
                i += 1
            while i < j and _owner(ids[j], mode, gmin, natoms, split, 2) != 0:
                j -= 1
            if i >= j:
                break
            _swap_rows(i, j, ids, types, pos, fext, iext, sext, has_t, has_f, has_i, has_s)
        return counts
    nxt = np.zeros(nparts, dtype=np.int64)
    end = np.zeros(nparts, dtype=np.int64)
    acc = 0
    for p in range(nparts):
        nxt[p] = acc
        acc += counts[p]
        end[p] = acc
    for p in range(nparts):
        while nxt[p] < end[p]:
            i = nxt[p]
            q = _owner(ids[i], mode, gmin, natoms, split, nparts)
            if q == p:
                nxt[p] += 1
                continue
            j = nxt[q]
            while _owner(ids[j], mode, gmin, natoms, split, nparts) == q:
                j += 1
            nxt[q] = j + 1
            _swap_rows(i, j, ids, types, pos, fext, iext, sext, has_t, has_f, has_i, has_s)
    return counts


@njit(cache=True, nogil=True)
def wrap_ortho_inplace(pos, origin, lengths, pbc):
    """:func:`wrap_inplace` for an orthogonal cell with edge ``lengths``."""
    nshift = 0
    for i in range(pos.shape[0]):
        moved = False
        for a in range(3):
            if not pbc[a]:
                continue
            L = lengths[a]
            x = pos[i, a]
            u = x - origin[a]
            if 0.0 <= u < L:
                continue
            s = math.floor(u / L)
            w = (x - s * L) - origin[a]
            if w >= L:
                s += 1.0
            elif w < 0.0:
                s -= 1.0
            if s == 0.0:
                continue  # within rounding of a face: keep the file's coordinate
            v = x - s * L
            w = v - origin[a]
            if 0.0 <= w < L:
                pos[i, a] = v
                moved = True
        if moved:
            nshift += 1
    return nshift


@njit(cache=True, inline="always")
def _frac(p, origin, inv, a):
    return ((p[0] - origin[0]) * inv[0, a] + (p[1] - origin[1]) * inv[1, a]
            + (p[2] - origin[2]) * inv[2, a])


@njit(cache=True, nogil=True)
def wrap_inplace(pos, origin, cell, inv, pbc):
    """Wrap positions into the cell along periodic axes, in place.

    Atoms already inside (fractional coordinate in [0, 1)) are left bit-for-bit
    untouched; others are shifted by whole cell vectors.  An atom within rounding error
    of a face, for which no shift lands inside, keeps its coordinates (its fractional
    coordinate is then ``-1e-16``-ish).  Returns the number of atoms shifted.
    """
    nshift = 0
    p = np.empty(3)
    q = np.empty(3)
    for i in range(pos.shape[0]):
        for b in range(3):
            p[b] = pos[i, b]
        moved = False
        for a in range(3):
            if not pbc[a]:
                continue
            f = _frac(p, origin, inv, a)
            if 0.0 <= f < 1.0:
                continue
            s = math.floor(f)
            for b in range(3):
                q[b] = p[b] - s * cell[a, b]
            g = _frac(q, origin, inv, a)
            if g >= 1.0:
                s += 1.0
            elif g < 0.0:
                s -= 1.0
            if s == 0.0:
                continue  # within rounding of a face: keep the file's coordinates
            for b in range(3):
                q[b] = p[b] - s * cell[a, b]
            g = _frac(q, origin, inv, a)
            if 0.0 <= g < 1.0:
                for b in range(3):
                    p[b] = q[b]
                moved = True
        if moved:
            nshift += 1
            for b in range(3):
                pos[i, b] = p[b]
    return nshift


@njit(cache=True, nogil=True)
def scaled_to_cartesian_inplace(pos, origin, cell, pbc):
    """Replace fractional coordinates by Cartesian ones, wrapping periodic axes first."""
    f = np.empty(3)
    for i in range(pos.shape[0]):
        for a in range(3):
            v = pos[i, a]
            if pbc[a] and (v < 0.0 or v >= 1.0):
                v = v - math.floor(v)
                if v >= 1.0:
                    v = 0.0
            f[a] = v
        for b in range(3):
            pos[i, b] = origin[b] + f[0] * cell[0, b] + f[1] * cell[1, b] + f[2] * cell[2, b]


@njit(cache=True, nogil=True)
def first_far_atom(pos, origin, inv, pbc, scaled, limit):
    """First row with ``|fractional coordinate| > limit`` along a periodic axis.

    ``pos`` holds fractional coordinates when ``scaled``, else Cartesian ones (made
    fractional with ``origin`` and ``inv``, the inverse cell).  Returns ``(row, axis,
    fractional value)``, or ``(-1, -1, 0.0)`` when every row is within the limit.
    """
    for i in range(pos.shape[0]):
        for a in range(3):
            if not pbc[a]:
                continue
            f = pos[i, a] if scaled else _frac(pos[i], origin, inv, a)
            if not abs(f) <= limit:
                return i, a, f
    return -1, -1, 0.0
