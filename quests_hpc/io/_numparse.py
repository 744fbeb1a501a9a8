"""Exact decimal -> double conversion for the row parser (Numba, inlined into it).

Floats are converted exactly (correctly rounded, as Python's ``float``):

* Clinger's fast path (mantissa <= 2**53, ``|exponent| <= 22``): one exactly rounded
  multiplication or division of exact operands;
* longer mantissas (up to 19 digits) and exponents down to -44: double-double division,
  with a check that the result is not within rounding noise of a half-way point;
* anything else (more than 19 significant digits, huge exponents, ``nan``, ``inf``, ...)
  is reported as not converted (``ok`` False); the caller converts the token in Python.
"""

import math

import numpy as np
from numba import njit

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
