"""Frame headers of LAMMPS text dumps: items, simulation box, column plan.

A frame of a ``dump atom`` / ``dump custom`` text file looks like::

    ITEM: UNITS              (optional; first frame only, dump_modify units yes)
    metal
    ITEM: TIME               (optional; dump_modify time yes)
    0.1
    ITEM: TIMESTEP
    100
    ITEM: NUMBER OF ATOMS
    4000
    ITEM: BOX BOUNDS xy xz yz pp pp fs      (labels and boundary flags vary)
    xlo_bound xhi_bound xy
    ylo_bound yhi_bound xz
    zlo_bound zhi_bound yz
    ITEM: ATOMS id type x y z ...
    <NUMBER OF ATOMS lines>

Box conversions follow the LAMMPS "Triclinic (non-orthogonal) simulation boxes" howto:
the *bounding box* written for a restricted triclinic cell is turned back into
``xlo = xlo_bound - min(0, xy, xz, xy + xz)`` etc., and the cell rows are
``a = (xhi - xlo, 0, 0)``, ``b = (xy, yhi - ylo, 0)``, ``c = (xz, yz, zhi - zlo)``.  A
general triclinic box (``BOX BOUNDS abc origin``, ``dump_modify triclinic/general yes``)
gives the rows ``A``, ``B``, ``C`` and the origin directly.
"""

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import QuestsInputError
from . import _kernels as K

MARKER = b"ITEM: TIMESTEP"

# Items that may precede ITEM: TIMESTEP in a frame (each followed by one value line).
PRE_ITEMS = (b"ITEM: UNITS", b"ITEM: TIME")

# Coordinate styles in order of preference, with (scaled, unwrapped).
COORD_STYLES = (
    (("x", "y", "z"), False),
    (("xs", "ys", "zs"), True),
    (("xu", "yu", "zu"), False),
    (("xsu", "ysu", "zsu"), True),
)

INT_COLUMNS = {"id", "type", "mol", "proc", "procp1", "ix", "iy", "iz"}
STR_COLUMNS = {"element", "typelabel"}

# Column names of old dumps whose ATOMS item carries no names (dump atom).
_OLD_ATOM_COLUMNS = {5: ("id", "type", "xs", "ys", "zs"),
                     8: ("id", "type", "xs", "ys", "zs", "ix", "iy", "iz")}


class DumpWarning(UserWarning):
    """Something in a dump was skipped (truncated last frame, unknown section, ...)."""


class HeaderIncomplete(Exception):
    """The bytes given end before the ``ITEM: ATOMS`` line (more data are needed)."""


class HeaderError(QuestsInputError):
    """A malformed frame header; ``line`` is the line number, ``detail`` the problem."""

    def __init__(self, where, line, detail):
        self.where, self.line, self.detail = where, line, detail
        self.timestep = None  # the frame's timestep, when read before the problem
        loc = where if line is None else f"{where}, line {line}"
        super().__init__(f"{loc}: {detail}")


@dataclass
class FrameHeader:
    """Everything a frame's header says, plus where its atom lines start.

    Attributes
    ----------
    timestep : int
    natoms : int
    cell : ndarray (3, 3)
        Rows are the cell vectors (ASE convention).
    origin : ndarray (3,)
        Lower corner of the cell (``xlo ylo zlo``, or the general triclinic origin).
    pbc : ndarray (3,) of bool
    boundary : tuple of str
        LAMMPS boundary flags per axis, e.g. ``("pp", "pp", "fs")``.
    box_style : str
        ``"orthogonal"``, ``"restricted"`` (``xy xz yz``) or ``"general"`` (``abc origin``).
    columns : tuple of str
        Names of the per-atom columns.
    units, time : str or None, float or None
    header_bytes, header_lines : int
        Size of the header from ``ITEM: TIMESTEP`` to the end of the ``ITEM: ATOMS`` line.
    """

    timestep: int
    natoms: int
    cell: np.ndarray
    origin: np.ndarray
    pbc: np.ndarray
    boundary: tuple
    box_style: str
    columns: tuple
    units: str = None
    time: float = None
    header_bytes: int = 0
    header_lines: int = 0
    skipped_items: tuple = field(default=())


def _fail(where, line_no, msg):
    raise HeaderError(where, line_no, msg)


def box_from_bounds(labels, rows, where="", line_no=None):
    """Cell, origin and box style from the ``BOX BOUNDS`` item.

    Parameters
    ----------
    labels : list of str
        Words after ``ITEM: BOX BOUNDS`` without the boundary flags (``[]``,
        ``["xy", "xz", "yz"]`` or ``["abc", "origin"]``).
    rows : ndarray (3, 2), (3, 3) or (3, 4)
        The three numeric lines.
    line_no : int, optional
        Line number of the ``ITEM: BOX BOUNDS`` line (the numbers are on the 3 next).

    Returns
    -------
    cell, origin, style

    Raises
    ------
    HeaderError
        A box LAMMPS never writes: a non-finite number, ``hi <= lo`` along an axis (a
        zero-volume or inverted, left-handed box), or general triclinic edge vectors
        ``A, B, C`` that are not a right-handed basis (LAMMPS requires one).
    """
    rows = np.asarray(rows, dtype=float)
    for a in range(min(3, len(rows))):
        if not np.isfinite(rows[a]).all():
            _fail(where, None if line_no is None else line_no + 1 + a,
                  f"BOX BOUNDS line {a + 1} has a non-finite number: {rows[a].tolist()}")
    if labels[:2] == ["abc", "origin"]:
        if rows.shape != (3, 4):
            _fail(where, line_no, "BOX BOUNDS abc origin needs 3 lines of 4 numbers")
        cell = rows[:, :3].copy()
        vol = float(np.linalg.det(cell))
        scale = float(np.prod(np.linalg.norm(cell, axis=1)))
        if not vol > 1e-12 * scale:
            _fail(where, line_no, f"BOX BOUNDS abc origin: edge vectors A, B, C = {cell.tolist()} "
                  f"span {'zero volume' if abs(vol) <= 1e-12 * scale else 'a left-handed cell'} "
                  f"(A x B . C = {vol:.6g}); LAMMPS writes a right-handed A, B, C")
        return cell, rows[:, 3].copy(), "general"
    if rows.shape == (3, 2):
        lo, hi = rows[:, 0], rows[:, 1]
        _check_extent(lo, hi, where, line_no)
        return np.diag(hi - lo), lo.copy(), "orthogonal"
    if rows.shape != (3, 3):
        _fail(where, line_no, f"BOX BOUNDS lines must have 2 or 3 numbers, got {rows.shape[1]}")
    tilt = rows[:, 2]
    if len(labels) >= 3:
        try:
            xy, xz, yz = (tilt[labels.index(t)] for t in ("xy", "xz", "yz"))
        except ValueError:
            _fail(where, line_no, f"BOX BOUNDS tilt labels {labels} are not xy xz yz")
    else:
        xy, xz, yz = tilt
    xlo = rows[0, 0] - min(0.0, xy, xz, xy + xz)
    xhi = rows[0, 1] - max(0.0, xy, xz, xy + xz)
    ylo = rows[1, 0] - min(0.0, yz)
    yhi = rows[1, 1] - max(0.0, yz)
    zlo, zhi = rows[2, 0], rows[2, 1]
    _check_extent(np.array([xlo, ylo, zlo]), np.array([xhi, yhi, zhi]), where, line_no,
                  tilted=True)
    cell = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])
    return cell, np.array([xlo, ylo, zlo]), "restricted"


def _check_extent(lo, hi, where, line_no, tilted=False):
    """``hi > lo`` along every axis: LAMMPS never writes an empty or inverted box."""
    for a in range(3):
        if not hi[a] > lo[a]:
            ax = "xyz"[a]
            what = "zero length (a zero-volume box)" if hi[a] == lo[a] else \
                "hi < lo (an inverted, left-handed box)"
            extra = " after removing the tilt factors from the bounding box" if tilted else ""
            _fail(where, None if line_no is None else line_no + 1 + a,
                  f"BOX BOUNDS {ax}: {ax}lo = {float(lo[a])!r}, {ax}hi = {float(hi[a])!r}{extra}: {what}; "
                  f"expected {ax}hi > {ax}lo")


# LAMMPS stores timesteps and atom counts as bigint (int64).
_INT64_MAX = 2**63 - 1
_INT_RE = re.compile(r"[+-]?[0-9]+")


def _int_value(text, item, where, line_no):
    """The integer of an ``ITEM: TIMESTEP`` / ``NUMBER OF ATOMS`` value line, in [0, 2**63)."""
    tok = text.split()[0]
    if not _INT_RE.fullmatch(tok):
        _fail(where, line_no, f"{item} is not an integer: {text!r}")
    v = int(tok)
    if v < 0:
        _fail(where, line_no, f"{item} is negative: {text!r} (expected an integer >= 0)")
    if v > _INT64_MAX:
        _fail(where, line_no, f"{item} {tok[:30]}{'...' if len(tok) > 30 else ''} is out of range "
              f"({len(tok)} digits; LAMMPS writes at most 2**63 - 1)")
    return v


def _is_flag(word):
    return 1 <= len(word) <= 2 and all(c in "pfsm" for c in word)


def parse_header(data, where="", first_line=None, start=0):
    """Parse a frame header starting at ``ITEM: TIMESTEP`` (or a pre-item).

    Parameters
    ----------
    data : bytes
        ``data[start:]`` starts at the frame's first ``ITEM:`` line and must extend past
        the ``ITEM: ATOMS`` line, otherwise :class:`HeaderIncomplete` is raised.
    where : str
        File (and frame) for error messages.
    first_line : int, optional
        1-based line number of ``data[start]`` in the file, for error messages.
    start : int
        Offset of the header in ``data``.

    Returns
    -------
    FrameHeader
        ``header_bytes``/``header_lines`` count from ``data[start]``.

    Raises
    ------
    HeaderError
        A malformed header (a :class:`~quests_hpc.errors.QuestsInputError`); its ``line``
        attribute is the line number (relative to ``first_line``, or to 1).
    """
    lines = _HeaderLines(data, start, first_line, where)
    items = {}
    skipped = []
    try:
        while True:
            text = lines.next_line()
            if not text:
                continue
            if not text.startswith("ITEM:"):
                _fail(where, lines.line_no(),
                      f"expected an ITEM: line in the frame header, got {text[:60]!r}")
            item = text[5:].strip()
            if item.startswith("ATOMS"):
                items["columns"] = _atoms_columns(item, items, where, lines.line_no())
                break
            if not _read_item(lines, item, items):
                skipped.append(item)
                warnings.warn(f"{where}: skipping unknown section ITEM: {item}", DumpWarning,
                              stacklevel=3)
                lines.skip_section()
    except HeaderError as exc:  # keep what was read: the timestep names the frame
        exc.timestep = items.get("timestep")
        raise
    cell, origin, style, boundary = items["box"]
    return FrameHeader(
        timestep=items["timestep"], natoms=items["natoms"], cell=cell, origin=origin,
        pbc=np.array([b == "pp" for b in boundary]), boundary=boundary, box_style=style,
        columns=items["columns"], units=items.get("units"), time=items.get("time"),
        header_bytes=lines.pos - start, header_lines=lines.nline, skipped_items=tuple(skipped))


class _HeaderLines:
    """Cursor over the lines of a frame header: offset ``pos``, lines read ``nline``."""

    __slots__ = ("data", "pos", "nline", "first_line", "where")

    def __init__(self, data, start, first_line, where):
        self.data = data
        self.pos = start
        self.nline = 0
        self.first_line = first_line
        self.where = where

    def line_no(self):
        """File line number of the line read last (for error messages)."""
        return (1 if self.first_line is None else self.first_line) + self.nline - 1

    def next_line(self):
        """The next line, stripped; :class:`HeaderIncomplete` where the data ends first."""
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise HeaderIncomplete()
        text = self.data[self.pos:end].decode("ascii", "replace").strip()
        self.pos = end + 1
        self.nline += 1
        return text

    def value_line(self, item):
        """The value line of ``ITEM: item`` (an error if it is empty or another item)."""
        text = self.next_line()
        if not text or text.startswith("ITEM:"):
            _fail(self.where, self.line_no(), f"missing value after ITEM: {item}")
        return text

    def skip_section(self):
        """Skip the lines of an unknown section up to the next ``ITEM:`` line."""
        data = self.data
        while True:
            nxt = data.find(b"\n", self.pos)
            if nxt < 0:
                raise HeaderIncomplete()
            if data.startswith(b"ITEM:", self.pos):
                break
            self.pos = nxt + 1
            self.nline += 1


def _read_item(lines, item, items):
    """Read the value lines of a known header ``item`` into ``items``; False if unknown."""
    where = lines.where
    if item == "TIMESTEP":
        v = lines.value_line(item)
        items["timestep"] = _int_value(v, "TIMESTEP", where, lines.line_no())
    elif item == "UNITS":
        items["units"] = lines.value_line(item)
    elif item == "TIME":
        v = lines.value_line(item)
        try:
            items["time"] = float(v.split()[0])
        except ValueError:
            _fail(where, lines.line_no(), f"TIME is not a number: {v!r}")
    elif item == "NUMBER OF ATOMS":
        v = lines.value_line(item)
        items["natoms"] = _int_value(v, "NUMBER OF ATOMS", where, lines.line_no())
    elif item.startswith("BOX BOUNDS"):
        items["box"] = _box_item(lines, item)
    else:
        return False
    return True


def _box_item(lines, item):
    """``(cell, origin, style, boundary)`` of ``ITEM: BOX BOUNDS ...`` and its 3 lines."""
    where = lines.where
    words = item.split()[2:]
    flags = [w for w in words if _is_flag(w)]
    labels = [w for w in words if not _is_flag(w)]
    box_line = lines.line_no()
    rows = []
    for _ in range(3):
        v = lines.value_line("BOX BOUNDS")
        try:
            rows.append([float(t) for t in v.split()])
        except ValueError:
            _fail(where, lines.line_no(), f"BOX BOUNDS line is not numeric: {v!r}")
    if len({len(r) for r in rows}) != 1:
        _fail(where, lines.line_no(), "BOX BOUNDS lines have different lengths")
    if len(flags) == 3:
        boundary = tuple(f if len(f) == 2 else f * 2 for f in flags)
    elif not flags:
        # stacklevel 5: _box_item < _read_item < parse_header < its caller < that one's caller
        # (the frame parse_header's own stacklevel=3 names)
        warnings.warn(f"{where}: BOX BOUNDS without boundary flags; assuming periodic "
                      "(pp pp pp)", DumpWarning, stacklevel=5)
        boundary = ("pp", "pp", "pp")
    else:
        _fail(where, box_line, f"BOX BOUNDS needs 3 boundary flags, got {flags}")
    cell, origin, style = box_from_bounds(labels, np.array(rows), where, box_line)
    return cell, origin, style, boundary


def _atoms_columns(item, items, where, line_no):
    """Column names of ``ITEM: ATOMS ...`` (None if it names none), after the checks that
    TIMESTEP, NUMBER OF ATOMS and BOX BOUNDS came before it."""
    cols = tuple(item.split()[1:])
    if "natoms" not in items or "box" not in items or "timestep" not in items:
        missing = [k for k, n in (("timestep", "TIMESTEP"), ("natoms", "NUMBER OF ATOMS"),
                                  ("box", "BOX BOUNDS")) if k not in items]
        _fail(where, line_no, "frame header lacks ITEM: " + ", ".join(
            {"timestep": "TIMESTEP", "natoms": "NUMBER OF ATOMS", "box": "BOX BOUNDS"}[m]
            for m in missing))
    if not cols:
        cols = None
    return cols


def pre_item_start(data, marker, at_bof=True):
    """Offset where the frame whose ``ITEM: TIMESTEP`` is at ``data[marker]`` begins.

    ``ITEM: UNITS`` and ``ITEM: TIME`` (each with one value line) written just before
    ``ITEM: TIMESTEP`` belong to that frame.  ``at_bof`` says whether ``data[0]`` is the
    start of a line (else the first, possibly partial, line of ``data`` is never used).
    Returns ``(start, nlines)``: the offset in ``data`` and the number of lines added.
    """
    start = marker
    nlines = 0
    while start >= 2 and data[start - 1] == 10:
        v0 = data.rfind(b"\n", 0, start - 1) + 1  # start of the value line
        if v0 == 0:
            break
        i0 = data.rfind(b"\n", 0, v0 - 1) + 1  # start of the item line before it
        if i0 == 0 and not at_bof:
            break
        if data[i0:v0 - 1].rstrip() not in PRE_ITEMS:
            break
        start = i0
        nlines += 2
    return start, nlines


@dataclass
class ColumnPlan:
    """How to parse the ``ITEM: ATOMS`` columns of a frame.

    Attributes
    ----------
    columns : tuple of str
    kinds, slots : ndarray of int64
        Per column: kind code (see :mod:`._kernels`) and output slot.
    coords : tuple of str
        The three coordinate columns used (``x y z``, ``xs ys zs``, ...).
    scaled : bool
    float_names, int_names, str_names : list of str
        Extra columns, in slot order.
    has_id, has_type : bool
    element_slot : int
        Slot of ``element`` among the string columns, or -1.
    min_line_bytes : int
        Lower bound of the bytes of one atom line (for capacity estimates).
    """

    columns: tuple
    kinds: np.ndarray
    slots: np.ndarray
    coords: tuple
    scaled: bool
    float_names: list
    int_names: list
    str_names: list
    has_id: bool
    has_type: bool
    element_slot: int
    min_line_bytes: int


def column_plan(columns, extra=(), where="", line_no=None):
    """Decide how to parse each column.

    Parameters
    ----------
    columns : tuple of str or None
        Names from the ``ITEM: ATOMS`` line (None: an old dump without names; 5 or 8
        columns are taken as ``id type xs ys zs [ix iy iz]`` once the width is known,
        see :func:`old_style_columns`).
    extra : sequence of str or "all"
        Further columns to return (``"all"``: every column not otherwise used).
    """
    columns = tuple(columns)
    if len(set(columns)) != len(columns):
        _fail(where, line_no, f"duplicate column names in ITEM: ATOMS {' '.join(columns)}")
    coords, scaled = None, False
    for names, sc in COORD_STYLES:
        present = [n in columns for n in names]
        if all(present):
            coords, scaled = names, sc
            break
        if any(present):
            missing = [n for n, p in zip(names, present) if not p]
            _fail(where, line_no, f"coordinate column(s) {' '.join(missing)} missing "
                  f"(ITEM: ATOMS {' '.join(columns)})")
    if coords is None:
        _fail(where, line_no, "no coordinate columns (x y z, xs ys zs, xu yu zu or xsu ysu zsu) "
              f"in ITEM: ATOMS {' '.join(columns)}")
    used = {"id", "type", "element", *coords}
    if isinstance(extra, str):
        extra = [c for c in columns if c not in used] if extra == "all" else [extra]
    extra = [c for c in extra if c not in ("id", "type", *coords)]
    for c in extra:
        if c not in columns:
            _fail(where, line_no, f"requested column {c!r} is not in ITEM: ATOMS {' '.join(columns)}")
    kinds = np.zeros(len(columns), dtype=np.int64)
    slots = np.zeros(len(columns), dtype=np.int64)
    float_names, int_names, str_names = [], [], []
    for i, c in enumerate(columns):
        if c == "id":
            kinds[i] = K.ID
        elif c == "type":
            kinds[i] = K.TYPE
        elif c in coords:
            kinds[i], slots[i] = K.POS, coords.index(c)
        elif c == "element" or (c in extra and c in STR_COLUMNS):
            kinds[i], slots[i] = K.STR, len(str_names)
            str_names.append(c)
        elif c in extra:
            if c in INT_COLUMNS or c.startswith(("i_", "i2_")):
                kinds[i], slots[i] = K.INT, len(int_names)
                int_names.append(c)
            else:
                kinds[i], slots[i] = K.FLOAT, len(float_names)
                float_names.append(c)
    return ColumnPlan(
        columns=columns, kinds=kinds, slots=slots, coords=coords, scaled=scaled,
        float_names=float_names, int_names=int_names, str_names=str_names,
        has_id="id" in columns, has_type="type" in columns,
        element_slot=str_names.index("element") if "element" in str_names else -1,
        min_line_bytes=2 * len(columns))


def old_style_columns(first_line, where="", line_no=None):
    """Column names of a ``dump atom`` frame written without names (LAMMPS before 2009)."""
    n = len(first_line.split())
    if n not in _OLD_ATOM_COLUMNS:
        _fail(where, line_no, f"ITEM: ATOMS has no column names and {n} columns "
              "(only 5 or 8, the old dump atom layout, can be guessed)")
    return _OLD_ATOM_COLUMNS[n]
