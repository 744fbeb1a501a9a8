"""Frame headers, boxes and column plans."""

import numpy as np
import pytest

from quests_hpc.errors import QuestsInputError
from quests_hpc.io import _kernels as K
from quests_hpc.io.lammps_header import (DumpWarning, HeaderIncomplete, box_from_bounds,
                                         column_plan, parse_header, pre_item_start)


def test_orthogonal_box():
    cell, origin, style = box_from_bounds([], [[-1, 4], [0, 2], [1, 4]])
    assert style == "orthogonal"
    assert np.array_equal(cell, np.diag([5.0, 2.0, 3.0])) and np.array_equal(origin, [-1, 0, 1])


@pytest.mark.parametrize("xy,xz,yz", [(2.0, -1.5, 1.0), (-2.0, 1.5, -1.0), (1.0, 1.0, 1.0),
                                      (-1.0, -2.0, 0.5), (0.0, 0.0, 0.0)])
def test_restricted_triclinic_bounding_box(xy, xz, yz):
    """The bounding box LAMMPS writes converts back to the cell (LAMMPS Howto triclinic)."""
    xlo, xhi, ylo, yhi, zlo, zhi = -1.0, 9.0, 0.5, 7.5, 2.0, 8.0
    rows = [[xlo + min(0, xy, xz, xy + xz), xhi + max(0, xy, xz, xy + xz), xy],
            [ylo + min(0, yz), yhi + max(0, yz), xz], [zlo, zhi, yz]]
    cell, origin, style = box_from_bounds(["xy", "xz", "yz"], rows)
    assert style == "restricted"
    np.testing.assert_allclose(cell, [[10, 0, 0], [xy, 7, 0], [xz, yz, 6]], atol=1e-14)
    np.testing.assert_allclose(origin, [xlo, ylo, zlo], atol=1e-14)
    # tilt labels in another order
    perm = [rows[0][:2] + [xz], rows[1][:2] + [yz], rows[2][:2] + [xy]]
    cell2, _, _ = box_from_bounds(["xz", "yz", "xy"], perm)
    np.testing.assert_allclose(cell2, cell, atol=1e-14)


def test_general_triclinic_box():
    rows = [[7.0, 7.0, 0.0, 1.0], [0.0, 7.0, 7.0, 2.0], [7.0, 0.0, 7.0, 3.0]]
    cell, origin, style = box_from_bounds(["abc", "origin"], rows)
    assert style == "general"
    assert np.array_equal(cell, np.array(rows)[:, :3]) and np.array_equal(origin, [1, 2, 3])


HEADER = b"""ITEM: TIMESTEP
1000
ITEM: NUMBER OF ATOMS
2
ITEM: BOX BOUNDS xy xz yz pp ss fm
0 10 0
0 10 0
0 10 0
ITEM: ATOMS id type xs ys zs
1 1 0 0 0
"""


def test_parse_header():
    h = parse_header(HEADER, "f")
    assert (h.timestep, h.natoms, h.boundary, h.box_style) == (1000, 2, ("pp", "ss", "fm"), "restricted")
    assert h.pbc.tolist() == [True, False, False] and h.columns == ("id", "type", "xs", "ys", "zs")
    assert h.header_lines == 9 and HEADER[h.header_bytes:] == b"1 1 0 0 0\n"
    with pytest.raises(HeaderIncomplete):
        parse_header(HEADER[:-20], "f")


@pytest.mark.parametrize("old,new,pattern", [
    (b"1000\n", b"10x0\n", "line 2: TIMESTEP is not an integer"),
    (b"ITEM: NUMBER OF ATOMS\n2\n", b"", "lacks ITEM: NUMBER OF ATOMS"),
    (b"0 10 0\n0 10 0\n0 10 0\n", b"0 10 0\n0 10\n0 10 0\n", "different lengths"),
    (b"pp ss fm", b"pp ss", "needs 3 boundary flags"),
    (b"0 10 0\n0 10 0\n0 10 0\n", b"0 1a 0\n0 10 0\n0 10 0\n", "line 6: BOX BOUNDS line is not numeric"),
    (b"ITEM: TIMESTEP\n", b"junk\n", "line 1: expected an ITEM: line"),
])
def test_header_errors(old, new, pattern):
    with pytest.raises(QuestsInputError, match=pattern):
        parse_header(HEADER.replace(old, new), "f", first_line=1)


def test_missing_boundary_flags_warn():
    text = HEADER.replace(b" pp ss fm", b"")
    with pytest.warns(DumpWarning, match="assuming periodic"):
        assert parse_header(text, "f").pbc.all()


def test_pre_items():
    data = b"1 1 0 0 0\nITEM: UNITS\nmetal\nITEM: TIME\n0.5\nITEM: TIMESTEP\n"
    m = data.index(b"ITEM: TIMESTEP")
    start, n = pre_item_start(data, m)
    assert data[start:].startswith(b"ITEM: UNITS") and n == 4
    assert pre_item_start(data[10:], m - 10, at_bof=True) == (0, 4)
    assert pre_item_start(b"x\nITEM: TIMESTEP\n", 2) == (2, 0)
    h = parse_header(data[start:] + HEADER[15:], "f")
    assert h.units == "metal" and h.time == 0.5 and h.timestep == 1000


def test_column_plan():
    p = column_plan(("id", "type", "xu", "yu", "zu", "x", "y", "z", "vx", "ix", "element"), ["vx", "ix"])
    assert p.coords == ("x", "y", "z") and not p.scaled
    assert p.float_names == ["vx"] and p.int_names == ["ix"] and p.str_names == ["element"]
    assert list(p.kinds) == [K.ID, K.TYPE, 0, 0, 0, K.POS, K.POS, K.POS, K.FLOAT, K.INT, K.STR]
    assert column_plan(("xs", "ys", "zs", "xsu", "ysu", "zsu")).scaled
    assert column_plan(("xsu", "ysu", "zsu")).coords == ("xsu", "ysu", "zsu")
    allp = column_plan(("id", "x", "y", "z", "c_pe", "i_flag", "typelabel"), "all")
    assert allp.float_names == ["c_pe"] and allp.int_names == ["i_flag"] and allp.str_names == ["typelabel"]
    with pytest.raises(QuestsInputError, match="requested column 'vx' is not in"):
        column_plan(("id", "x", "y", "z"), ["vx"])
    with pytest.raises(QuestsInputError, match="duplicate column names"):
        column_plan(("id", "x", "x", "y", "z"))
