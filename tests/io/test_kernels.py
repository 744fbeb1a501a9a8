"""Numba kernels: exact float parsing, row parsing status codes, grouping and scatter."""

import struct

import numpy as np
import pytest
from numba import njit

from quests_hpc.io import _kernels as K
from quests_hpc.parallel.comm import even_bounds


@njit(cache=False)
def _parse_tokens(buf, starts, ends, out, ok):
    for t in range(starts.shape[0]):
        v, j, o = K._parse_float(buf, starts[t], ends[t])
        out[t] = v
        ok[t] = o and j == ends[t]


def parse_tokens(tokens):
    text = " ".join(tokens).encode()
    starts, ends, p = [], [], 0
    for t in tokens:
        starts.append(p)
        ends.append(p + len(t))
        p += len(t) + 1
    out = np.empty(len(tokens))
    ok = np.zeros(len(tokens), dtype=np.bool_)
    _parse_tokens(np.frombuffer(text, np.uint8), np.array(starts), np.array(ends), out, ok)
    return out, ok


def bits(x):
    return struct.pack("<d", x)


@pytest.mark.parametrize("fmt", ["%g", "%.6f", "%.10g", "%.15g", "%.16g", "%.17g", "%.17e",
                                 "%.18e", "%.19g", "%20.15g", "%.3e"])
def test_floats_are_correctly_rounded(fmt):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(20000) * 10.0 ** rng.integers(-30, 12, 20000)
    toks = [(fmt % v).strip() for v in x]
    out, ok = parse_tokens(toks)
    assert ok.mean() > 0.5  # most take the kernel's exact paths
    for t, v, o in zip(toks, out, ok):
        if o:
            assert bits(v) == bits(float(t)), t


def test_half_way_cases():
    """Decimal strings at, and just below, the midpoint between two doubles."""
    from decimal import Decimal

    rng = np.random.default_rng(3)
    toks = []
    for e in range(44, 52):
        for _ in range(300):
            a = float(rng.integers(2**e, 2**(e + 1))) + float(rng.integers(0, 2**(52 - e))) * 2.0**(e - 52)
            b = np.nextafter(a, np.inf)
            mid = (Decimal(a) + Decimal(b)) / 2
            toks.append(format(mid, "f"))
            toks.append(format(mid - Decimal(b - a) * Decimal("1e-9"), ".19g"))
    out, ok = parse_tokens(toks)
    for t, v, o in zip(toks, out, ok):
        if o:
            assert bits(v) == bits(float(t)), t


def test_special_tokens_go_to_python():
    toks = ["nan", "-nan", "inf", "1e400", "1e-400", "1.5e", "-", "0x10", "1.0d0",
            "123456789012345678901234", "+.5", "-0", "0e999"]
    out, ok = parse_tokens(toks)
    assert not ok[:9].any()
    assert ok[-3] and out[-3] == 0.5
    assert ok[-2] and np.signbit(out[-2]) and out[-2] == 0
    assert ok[-1] and out[-1] == 0.0


def _rows(text, kinds, cap=10, final=True):
    buf = np.frombuffer(text.encode(), np.uint8)
    ids = np.zeros(cap, np.int64)
    types = np.zeros(cap, np.int32)
    pos = np.zeros((cap, 3))
    fext = np.zeros((cap, 1))
    iext = np.zeros((cap, 1), np.int64)
    sext = np.zeros((cap, 1), np.int64)
    fix = np.zeros((64, 5), np.int64)
    slots = np.array([0, 0, 0, 1, 2, 0][:len(kinds)])
    none = (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, 3)), np.zeros((0, 1)),
            np.zeros((0, 1), np.int64), np.zeros((0, 1), np.int64))
    res = K.parse_rows(buf, 0, len(buf), final, 1 << 30, np.array(kinds), slots, 0, cap, 0, False,
                       ids, types, pos, fext, iext, sext, fix, np.zeros(4, np.int64), *none,
                       np.zeros(1, np.int64))
    return res, ids, types, pos


def test_parse_rows_placement():
    text = "5 1 0.5 0 0\n2 2 1 0 0\n4 1 2 0 0\n9 2 3 0 0\n"
    buf = np.frombuffer(text.encode(), np.uint8)
    own = (np.zeros(3, np.int64), np.zeros(3, np.int32), np.zeros((3, 3)), np.zeros((3, 0)),
           np.zeros((3, 0), np.int64), np.zeros((3, 0), np.int64))
    out = (np.zeros(4, np.int64), np.zeros(4, np.int32), np.zeros((4, 3)), np.zeros((4, 0)),
           np.zeros((4, 0), np.int64), np.zeros((4, 0), np.int64))
    out_n = np.zeros(1, np.int64)
    kinds, slots = np.array(KINDS), np.array([0, 0, 0, 1, 2])
    fix = np.zeros((64, 5), np.int64)
    res = K.parse_rows(buf, 0, len(buf), True, 10, kinds, slots, 0, 0, 0, False, *own, fix,
                       np.array([3, 6, 1, 11]), *out, out_n)
    assert res[0] == 4 and res[3] == K.OK and out_n[0] == 2
    assert own[0].tolist() == [0, 4, 5] and own[2][:, 0].tolist() == [0, 2.0, 0.5]
    assert out[0][:2].tolist() == [2, 9] and out[1][:2].tolist() == [2, 2]
    own[0][:] = 0
    out_n[0] = 0
    res = K.parse_rows(buf, 0, len(buf), True, 10, kinds, slots, 0, 0, 0, False, *own, fix,
                       np.array([3, 6, 1, 8]), *out, out_n)
    assert res[3] == K.PLACE_FAIL and res[0] == 3  # id 9 is outside 1..7


KINDS = [K.ID, K.TYPE, K.POS, K.POS, K.POS]


def test_parse_rows_statuses():
    (rows, nxt, lines, st, col, nfix), ids, types, pos = _rows("1 2 0.5 1 2\n\n 3  4 1e1 -2 +3 \n", KINDS)
    assert (rows, lines, st, nfix) == (2, 3, K.OK, 0)
    assert ids[:2].tolist() == [1, 3] and types[:2].tolist() == [2, 4]
    assert pos[1].tolist() == [10.0, -2.0, 3.0]
    # partial last line is left for the next call unless final
    (rows, nxt, lines, st, _, _), *_ = _rows("1 2 0.5 1 2\n3 4 1", KINDS, final=False)
    assert rows == 1 and nxt == 12 and st == K.OK
    assert _rows("1 2 0.5 1\n", KINDS)[0][3] == K.ERR_FEW_COLUMNS
    assert _rows("1 2 0.5 1 2 9\n", KINDS)[0][3] == K.ERR_MANY_COLUMNS
    assert _rows("1 2.5 0.5 1 2\n", KINDS)[0][3:5] == (K.ERR_BAD_INT, 1)
    assert _rows("1 99999999999 0 0 0\n", KINDS)[0][3] == K.ERR_TYPE_RANGE
    assert _rows("1 2 0 0 0\n" * 3, KINDS, cap=2)[0][3] == K.CAPACITY
    (rows, _, _, st, _, nfix), *_ = _rows("1 2 nan 0 0\n", KINDS)
    assert st == K.OK and nfix == 1
    (res, *_) = _rows("1 Cu 0 0 0\n2 Abcdefghi 0 0 0\n", [K.ID, K.STR, K.POS, K.POS, K.POS])
    assert res[3] == K.ERR_LONG_STRING and res[0] == 1


def test_dense_dest_is_the_even_split():
    for n in (1, 2, 7, 100, 1001):
        for p in (1, 2, 3, 4, 7, 16):
            ids = np.arange(5, 5 + n, dtype=np.int64)
            dest = K.dense_dest(ids, 5, n, p, np.empty(n, np.int32))
            b = even_bounds(n, p)
            assert np.array_equal(dest, np.searchsorted(b, np.arange(n), side="right") - 1)


def test_splitter_dest_and_partition():
    rng = np.random.default_rng(1)
    ids = rng.permutation(10000).astype(np.int64) * 3
    split = np.array([3000, 3000, 15000, 29000], dtype=np.int64)
    dest = K.splitter_dest(ids, split, np.empty(len(ids), np.int16))
    assert np.array_equal(dest, np.searchsorted(split, ids, side="right"))
    a = np.stack([ids, ids * 2], axis=1).astype(np.float64).view(np.uint64)
    d = dest.copy()
    counts = K.partition_rows(d, a, 5)
    assert counts.tolist() == np.bincount(dest, minlength=5).tolist()
    got = a.view(np.float64)
    assert np.array_equal(np.sort(got[:, 0]), np.sort(ids.astype(np.float64)))
    assert np.array_equal(got[:, 1], 2 * got[:, 0])
    assert np.all(np.diff(d) >= 0)
    # same destinations -> same permutation
    b = ids.copy().reshape(-1, 1)
    K.partition_rows(dest.copy(), b.view(np.uint64), 5)
    assert np.array_equal(b[:, 0], got[:, 0].astype(np.int64))


def test_dense_check_and_scatter():
    ids = np.array([4, 2, 3, 5], dtype=np.int64)
    assert K.dense_check(ids, 2, 4) == -1
    assert K.dense_check(np.array([2, 2, 3, 5]), 2, 4) == 2
    assert K.dense_check(np.array([2, 3]), 2, 3) == 1
    src = np.arange(8, dtype=np.uint64).reshape(4, 2)
    out = np.zeros_like(src)
    K.scatter_rows(src, ids, 2, out)
    assert out[:, 0].tolist() == [2, 4, 0, 6]


def test_wrap_kernels():
    cell = np.array([[10.0, 0, 0], [2.0, 10.0, 0], [-1.5, 1.0, 10.0]])
    inv = np.linalg.inv(cell)
    rng = np.random.default_rng(0)
    f = rng.uniform(-2, 3, (1000, 3))
    f[:10] = rng.uniform(0, 1, (10, 3))
    pos = f @ cell
    keep = pos.copy()
    pbc = np.array([True, True, False])
    K.wrap_inplace(pos, np.zeros(3), cell, inv, pbc)
    g = pos @ inv
    assert np.all(g[:, :2] >= 0) and np.all(g[:, :2] < 1)
    np.testing.assert_allclose(g[:, 2], f[:, 2], atol=1e-12)
    k = np.round((keep - pos) @ inv)
    np.testing.assert_allclose((keep - pos) @ inv, k, atol=1e-12)
    assert np.array_equal(pos[:10], keep[:10])
    o = np.array([1.0, -2.0, 0.5])
    L = np.array([3.0, 4.0, 5.0])
    p = rng.uniform(-10, 10, (1000, 3))
    q = p.copy()
    K.wrap_ortho_inplace(q, o, L, np.array([True, False, True]))
    u = (q - o) / L
    assert np.all(u[:, [0, 2]] >= 0) and np.all(u[:, [0, 2]] < 1) and np.array_equal(q[:, 1], p[:, 1])
    edge = np.array([[1.0 - 1e-17, 0.0, 0.5]])
    K.wrap_ortho_inplace(edge, o, L, np.array([True, True, True]))
    assert edge[0, 0] == 1.0 - 1e-17 or 0 <= (edge[0, 0] - 1.0) / 3.0 < 1


def test_row_parser_grows_and_counts():
    from quests_hpc.io.atoms_block import RowParser, Rows
    from quests_hpc.io.lammps_header import column_plan

    plan = column_plan(("id", "type", "x", "y", "z"))
    rows = Rows(plan, 2)
    parser = RowParser(plan, rows, 5000, growable=True)
    text = "".join(f"{i} 1 {i}.5 0 0\n" for i in range(1, 3001)).encode()
    buf = np.frombuffer(text, np.uint8)
    assert parser.feed(buf, 0, len(buf), True) == len(buf)
    assert parser.error is None and rows.n == 3000 and rows.cap >= 3000
    assert rows.ids[:rows.n].tolist() == list(range(1, 3001)) and rows.pos[2999, 0] == 3000.5
    full = RowParser(plan, Rows(plan, 2), 2)
    full.feed(buf, 0, len(buf), True)
    assert full.error == (2, "more atom lines than NUMBER OF ATOMS (2)")
