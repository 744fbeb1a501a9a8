"""Numba kernels for text dumps: row parser, exact float parsing, in-place permutation, wrap.

The row parser reads the ``ITEM: ATOMS`` lines of a byte buffer column by column; each
column has a *kind* (skip, id, type, position, float, int, string) and a *slot* (the column
of the output array it goes to).  Floats are converted exactly (correctly rounded, as
Python's ``float``):

* Clinger's fast path (mantissa <= 2**53, ``|exponent| <= 22``): one exactly rounded
  multiplication or division of exact operands;
* longer mantissas (up to 19 digits) and exponents down to -44: double-double division, with a
  check that the result is not within rounding noise of a half-way point;
* anything else (more than 19 significant digits, huge exponents, ``nan``, ``inf``, ...) is
  handed back to the caller as a *fix-up* (row, column, byte range) and converted there
  with Python's ``float``.

The other kernels group rows by destination rank in place, scatter rows by id, and wrap
or convert positions.  All kernels are pure functions on arrays (``cache=True``).
"""

import math

import numpy as np
from numba import njit

# Column kinds.
SKIP, ID, TYPE, POS, FLOAT, INT, STR = 0, 1, 2, 3, 4, 5, 6

# Status codes returned by parse_rows (errors are negative).
OK = 0
FIX_FULL = 1
CAPACITY = 2
PLACE_FAIL = 3
ERR_FEW_COLUMNS = -1
ERR_MANY_COLUMNS = -2
ERR_BAD_INT = -3
ERR_LONG_STRING = -4
ERR_TYPE_RANGE = -5

_POW10 = np.array([10.0**i for i in range(23)])
_TWO53 = np.uint64(1) << np.uint64(53)
_SPLITTER = 134217729.0  # 2**27 + 1


@njit(cache=True, inline="always")
def _two_prod(a, b):
    """Exact product ``a * b = p + e`` (Dekker, no FMA needed)."""
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLITTER * b
    bh = c - (c - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@njit(cache=True, inline="always")
def _dd_div(xh, xl, d):
    """Double-double ``(xh + xl) / d`` for an exact double ``d``; normalised result."""
    q1 = xh / d
    ph, pl = _two_prod(q1, d)
    r = ((xh - ph) - pl) + xl
    q2 = r / d
    s = q1 + q2
    t = q2 - (s - q1)
    return s, t


@njit(cache=True)
def _dd_to_double(m, k):
    """Correctly rounded ``m / 10**k`` for ``0 < m < 10**19``, ``1 <= k <= 44``.

    Returns ``(value, ok)``; ``ok`` is False when the double-double result lies within
    rounding noise of a half-way point between two doubles (the caller then falls back).
    """
    mh = float(m)
    mu = np.uint64(mh)  # m < 10**19 < 2**64: no overflow
    if m >= mu:
        ml = float(m - mu)
    else:
        ml = -float(mu - m)
    k1 = min(k, 22)
    s, t = _dd_div(mh, ml, _POW10[k1])
    if k > 22:
        s, t = _dd_div(s, t, _POW10[k - 22])
    # s = fl(s + t) exactly (normalised): s is the correctly rounded value of the
    # double-double unless s + t sits at a half-way point within the error bound.
    f, ex = math.frexp(s)
    ulp = math.ldexp(1.0, ex - 53)
    half = 0.5 * ulp
    if f == 0.5 and t < 0.0:
        half = 0.25 * ulp
    if abs(abs(t) - half) <= ulp * 1e-9:
        return s, False
    return s, True


@njit(cache=True)
def _parse_float_careful(buf, b, e):
    """Parse the number starting at ``buf[b]`` (not beyond ``e``), any digit count.

    Returns ``(value, end, ok)``: ``end`` is the first byte after the digits, exponent
    included; ``ok`` is False when the caller must convert the token in Python.
    """
    j = b
    neg = False
    c = buf[j]
    if c == 45:
        neg = True
        j += 1
    elif c == 43:
        j += 1
    m = np.uint64(0)
    nd = 0
    ndig = 0
    dexp = 0
    trunc = False
    while j < e:
        d = np.int64(buf[j]) - 48
        if d < 0 or d > 9:
            break
        ndig += 1
        if nd < 19:
            if m != 0 or d != 0:
                m = m * np.uint64(10) + np.uint64(d)
                nd += 1
        else:
            dexp += 1
            if d != 0:
                trunc = True
        j += 1
    if j < e and buf[j] == 46:
        j += 1
        while j < e:
            d = np.int64(buf[j]) - 48
            if d < 0 or d > 9:
                break
            ndig += 1
            if nd < 19:
                if m != 0 or d != 0:
                    m = m * np.uint64(10) + np.uint64(d)
                    nd += 1
                dexp -= 1
            elif d != 0:
                trunc = True
            j += 1
    if ndig == 0:
        return 0.0, j, False
    if j < e and (buf[j] == 101 or buf[j] == 69):
        j += 1
        eneg = False
        if j < e and buf[j] == 45:
            eneg = True
            j += 1
        elif j < e and buf[j] == 43:
            j += 1
        ev = 0
        nexp = 0
        while j < e:
            d = np.int64(buf[j]) - 48
            if d < 0 or d > 9:
                break
            if ev < 100000:
                ev = ev * 10 + d
            nexp += 1
            j += 1
        if nexp == 0:
            return 0.0, j, False
        dexp += -ev if eneg else ev
    if m == 0:
        return (-0.0 if neg else 0.0), j, True
    if trunc:
        return 0.0, j, False
    v = 0.0
    if m <= _TWO53 and -22 <= dexp <= 22:
        if dexp >= 0:
            v = float(m) * _POW10[dexp]
        else:
            v = float(m) / _POW10[-dexp]
    elif dexp == 0:
        v = float(m)  # uint64 -> double conversion is correctly rounded
    elif -44 <= dexp < 0:
        v, ok = _dd_to_double(m, -dexp)
        if not ok:
            return 0.0, j, False
    elif m <= _TWO53 and 22 < dexp <= 37:
        # m * 10**(dexp-22) is still an exact integer below 2**53: one rounding.
        mm = m
        for _ in range(dexp - 22):
            mm = mm * np.uint64(10)
            if mm > _TWO53:
                return 0.0, j, False
        v = float(mm) * _POW10[22]
    else:
        return 0.0, j, False
    return (-v if neg else v), j, True


@njit(cache=True, inline="always")
def _parse_float(buf, b, e):
    """Parse the number starting at ``buf[b]`` (not beyond ``e``).

    Returns ``(value, end, ok)``: ``end`` is the first byte after the digits, exponent
    included; ``ok`` is False when the caller must convert the token in Python.  The
    common case (at most 19 digits) takes a branch-light loop; longer mantissas go to
    :func:`_parse_float_careful`.
    """
    j = b
    neg = False
    c = buf[j]
    if c == 45:
        neg = True
        j += 1
    elif c == 43:
        j += 1
    d0 = j
    m = np.uint64(0)
    while j < e:
        d = np.uint64(buf[j]) - np.uint64(48)
        if d > 9:
            break
        m = m * np.uint64(10) + d
        j += 1
    ndig = j - d0
    dexp = 0
    if j < e and buf[j] == 46:
        j += 1
        f0 = j
        while j < e:
            d = np.uint64(buf[j]) - np.uint64(48)
            if d > 9:
                break
            m = m * np.uint64(10) + d
            j += 1
        dexp = f0 - j
        ndig += j - f0
    if ndig == 0 or ndig > 19:
        return _parse_float_careful(buf, b, e)
    if j < e and (buf[j] == 101 or buf[j] == 69):
        j += 1
        eneg = False
        if j < e and buf[j] == 45:
            eneg = True
            j += 1
        elif j < e and buf[j] == 43:
            j += 1
        x0 = j
        ev = 0
        while j < e:
            d = np.int64(buf[j]) - 48
            if d < 0 or d > 9:
                break
            if ev < 100000:
                ev = ev * 10 + d
            j += 1
        if j == x0:
            return 0.0, j, False
        dexp += -ev if eneg else ev
    if m == 0:
        return (-0.0 if neg else 0.0), j, True
    v = 0.0
    if m <= _TWO53 and -22 <= dexp <= 22:
        fm = float(np.int64(m))  # exact (m <= 2**53); signed conversion is one instruction
        if dexp >= 0:
            v = fm * _POW10[dexp]
        else:
            v = fm / _POW10[-dexp]
    else:
        return _parse_float_careful(buf, b, e)
    return (-v if neg else v), j, True


@njit(cache=True, inline="always")
def _parse_int(buf, b, e):
    """Parse the signed decimal integer at ``buf[b]`` (at most 18 digits, not beyond ``e``).

    Returns ``(value, end, ok)``.
    """
    j = b
    neg = False
    if buf[j] == 45:
        neg = True
        j += 1
    elif buf[j] == 43:
        j += 1
    j0 = j
    v = 0
    while j < e:
        d = np.int64(buf[j]) - 48
        if d < 0 or d > 9:
            break
        v = v * 10 + d
        j += 1
    if j == j0 or j - j0 > 18:
        return 0, j, False
    return (-v if neg else v), j, True


@njit(cache=True, nogil=True)
def parse_rows(buf, start, stop, final, max_rows, kinds, slots, row0, cap, line0, auto_id,
               ids, types, pos, fext, iext, sext, fix, place,
               ids2, types2, pos2, fext2, iext2, sext2, out_n):
    """Parse whole lines of ``buf[start:stop]`` into the output arrays.

    Parameters
    ----------
    buf : uint8 array
    start, stop : int
        Byte range.  Unless ``final``, only lines ending with ``\\n`` before ``stop`` are
        parsed (the rest is left for the next call).
    final : bool
        ``stop`` is the end of the data: a last line without ``\\n`` is parsed.
    max_rows : int
        Stop after this many (non-blank) rows.
    kinds, slots : int64 arrays, one entry per column
    row0, cap : int
        File-order mode: first output row and capacity (rows) of the output arrays.
    line0 : int
        Line index (0-based, in the caller's numbering) of the line at ``start``.
    auto_id : bool
        No id column: store the line index (``line0`` + lines before the row) as id.
    ids, types, pos, fext, iext, sext : arrays
        Outputs: int64 ``(cap,)``, int32 ``(cap,)``, float64 ``(cap, 3)``, float64
        ``(cap, nf)``, int64 ``(cap, ni)``, int64 ``(cap, ns)`` (strings packed 8 bytes
        little-endian).  Unused ones may have zero rows.
    fix : int64 array ``(F, 5)``
        Receives ``(row, column, begin, end, set)`` of tokens to convert in Python
        (``set`` 1: a row of the second array set).
    place : int64 array ``(4,)``
        ``(own_lo, own_hi, valid_lo, valid_hi)``; ``own_lo == 0``: file-order mode.
        Otherwise (id column first, ``ids`` zero-filled) the row of an id ``i`` in
        ``[own_lo, own_hi)`` is stored at row ``i - own_lo`` of the first set (rows come
        out sorted), the row of any other id in ``[valid_lo, valid_hi)`` is appended to
        the second set (``ids2`` ...) at row ``out_n[0]``.  An id outside stops with
        status ``PLACE_FAIL``; an id placed twice overwrites: compare :func:`count_placed`
        with the rows placed.
    ids2, types2, pos2, fext2, iext2, sext2 : arrays
        The second set (placement mode only).
    out_n : int64 array ``(1,)``
        Rows in the second set (updated).

    Returns
    -------
    tuple
        ``(rows, next, lines, status, err_col, nfix)``: rows parsed, byte offset where
        parsing stopped (start of the unparsed line), lines consumed (blank lines
        included), status code, the offending column on error, fix-ups written.
    """
    ncols = kinds.shape[0]
    own_lo, own_hi, valid_lo, valid_hi = place[0], place[1], place[2], place[3]
    placing = own_lo != 0
    limit = stop
    if not final:
        while limit > start and buf[limit - 1] != 10:
            limit -= 1
    nfixmax = fix.shape[0]
    nfix = 0
    rows = 0
    lines = 0
    i = start
    while i < limit:
        if rows >= max_rows:
            return rows, i, lines, OK, -1, nfix
        line_start = i
        # skip blank space; a blank line is consumed and not counted as a row
        while i < limit and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
            i += 1
        if i >= limit:
            break
        if buf[i] == 10:
            i += 1
            lines += 1
            continue
        if not placing and row0 + rows >= cap:
            return rows, line_start, lines, CAPACITY, -1, nfix
        if nfix + ncols > nfixmax:
            return rows, line_start, lines, FIX_FULL, -1, nfix
        r = row0 + rows
        tset = 0
        if auto_id:
            ids[r] = line0 + lines
        for c in range(ncols):
            while i < limit and (buf[i] == 32 or buf[i] == 9):
                i += 1
            if i >= limit or buf[i] == 10 or buf[i] == 13:
                return rows, line_start, lines, ERR_FEW_COLUMNS, c, nfix
            b = i
            k = kinds[c]
            if k == POS or k == FLOAT:
                v, j, ok = _parse_float(buf, b, limit)
                if ok and (j >= limit or buf[j] <= 32):
                    i = j
                else:
                    i = b
                    while i < limit and buf[i] > 32:
                        i += 1
                    fix[nfix, 0] = r
                    fix[nfix, 1] = c
                    fix[nfix, 2] = b
                    fix[nfix, 3] = i
                    fix[nfix, 4] = tset
                    nfix += 1
                    v = np.nan
                if k == POS:
                    if tset == 0:
                        pos[r, slots[c]] = v
                    else:
                        pos2[r, slots[c]] = v
                elif tset == 0:
                    fext[r, slots[c]] = v
                else:
                    fext2[r, slots[c]] = v
                continue
            if k == ID or k == TYPE or k == INT:
                iv, j, ok = _parse_int(buf, b, limit)
                if not ok or (j < limit and buf[j] > 32):
                    return rows, line_start, lines, ERR_BAD_INT, c, nfix
                i = j
                if k == ID:
                    if placing:
                        if own_lo <= iv < own_hi:
                            # no read of ids[r] here (a dependent cache miss per row):
                            # duplicates are found afterwards by check_placed
                            r = iv - own_lo
                        elif valid_lo <= iv < valid_hi and out_n[0] < ids2.shape[0]:
                            r = out_n[0]
                            out_n[0] += 1
                            tset = 1
                        else:
                            return rows, line_start, lines, PLACE_FAIL, c, nfix
                    if tset == 0:
                        ids[r] = iv
                    else:
                        ids2[r] = iv
                elif k == TYPE:
                    if iv < -2147483648 or iv > 2147483647:
                        return rows, line_start, lines, ERR_TYPE_RANGE, c, nfix
                    if tset == 0:
                        types[r] = iv
                    else:
                        types2[r] = iv
                elif tset == 0:
                    iext[r, slots[c]] = iv
                else:
                    iext2[r, slots[c]] = iv
                continue
            while i < limit and buf[i] > 32:
                i += 1
            if k == STR:
                if i - b > 8:
                    return rows, line_start, lines, ERR_LONG_STRING, c, nfix
                code = 0
                for q in range(i - b):
                    code |= np.int64(buf[b + q]) << (8 * q)
                if tset == 0:
                    sext[r, slots[c]] = code
                else:
                    sext2[r, slots[c]] = code
        while i < limit and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13):
            i += 1
        if i < limit:
            if buf[i] != 10:
                return rows, line_start, lines, ERR_MANY_COLUMNS, ncols, nfix
            i += 1
        lines += 1
        rows += 1
    return rows, i, lines, OK, -1, nfix


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
