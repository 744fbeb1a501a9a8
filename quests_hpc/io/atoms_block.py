"""Parse the atom lines of a byte range (or of text chunks) into per-atom arrays.

The driver around :func:`._kernels.parse_rows`: it reads a byte range in bounded chunks
(so a rank never holds more text than one chunk), carries a partial last line over to
the next chunk, converts the rare floats the kernel hands back (``nan``, huge
exponents, > 19 digits) with Python's ``float``, and turns kernel status codes into
error descriptions.

Errors are *returned*, not raised, as ``(line, message)`` with ``line`` counted from the
first line of the range (0-based): in an MPI read the absolute line number is only known
once the ranks have exchanged their line counts.
"""

import numpy as np

from . import _kernels as K

DEFAULT_CHUNK = 1 << 22
_FIX_ROWS = 4096


class Rows:
    """Per-atom output arrays with a capacity; the first ``n`` rows are filled.

    Attributes
    ----------
    ids : int64 (cap,)
    types : int32 (cap,) or (0,) without a type column
    pos : float64 (cap, 3)
    fext, iext, sext : (cap, k) float64 / int64 / int64 (packed strings)
    n : int
    """

    def __init__(self, plan, cap, zero_ids=False):
        self.plan = plan
        self.cap = int(cap)
        c = self.cap
        self.ids = (np.zeros if zero_ids else np.empty)(c, dtype=np.int64)
        self.types = np.empty(c if plan.has_type else 0, dtype=np.int32)
        self.pos = np.empty((c, 3), dtype=np.float64)
        self.fext = np.empty((c, len(plan.float_names)), dtype=np.float64)
        self.iext = np.empty((c, len(plan.int_names)), dtype=np.int64)
        self.sext = np.empty((c, len(plan.str_names)), dtype=np.int64)
        self.n = 0

    def grow(self, cap):
        """Enlarge the capacity to ``cap`` rows (copies the filled rows)."""
        for name in ("ids", "types", "pos", "fext", "iext", "sext"):
            a = getattr(self, name)
            if name == "types" and not self.plan.has_type:
                continue
            b = np.empty((cap,) + a.shape[1:], dtype=a.dtype)
            b[:self.n] = a[:self.n]
            setattr(self, name, b)
        self.cap = int(cap)

    def columns(self):
        """``{name: filled rows}`` of every array in use (views, row-major contiguous)."""
        n = self.n
        out = {"ids": self.ids[:n], "pos": self.pos[:n]}
        if self.plan.has_type:
            out["types"] = self.types[:n]
        if self.fext.shape[1]:
            out["fext"] = self.fext[:n]
        if self.iext.shape[1]:
            out["iext"] = self.iext[:n]
        if self.sext.shape[1]:
            out["sext"] = self.sext[:n]
        return out


def _line_text(buf, b, end):
    e = b
    while e < end and buf[e] != 10 and e - b < 200:
        e += 1
    return bytes(buf[b:e]).decode("ascii", "replace").rstrip()


def _describe(status, col, plan, text):
    ncols = len(plan.columns)
    name = plan.columns[col] if 0 <= col < ncols else None
    if status == K.ERR_FEW_COLUMNS:
        return f"{len(text.split())} fields, ITEM: ATOMS names {ncols} columns: {text!r}"
    if status == K.ERR_MANY_COLUMNS:
        return f"{len(text.split())} fields, ITEM: ATOMS names {ncols} columns: {text!r}"
    tok = text.split()[col] if 0 <= col < len(text.split()) else "?"
    if status == K.ERR_BAD_INT:
        digits = tok.lstrip("+-")
        if digits.isdigit() and len(digits) > 18 and digits.isascii():
            return (f"column {col + 1} ({name}): {tok!r} is out of range ({len(digits)} digits; "
                    "expected at most 18)")
        return f"column {col + 1} ({name}): {tok!r} is not an integer"
    if status == K.ERR_LONG_STRING:
        return f"column {col + 1} ({name}): {tok!r} is longer than 8 characters"
    if status == K.ERR_TYPE_RANGE:
        return f"column {col + 1} ({name}): type {tok} out of range"
    return f"parse error {status} in column {col + 1}: {text!r}"


def _not_finite(buf, b, col, tok, plan):
    """Message for a NaN/inf coordinate token at ``buf[b]`` (column ``col``)."""
    s = b
    while s > 0 and buf[s - 1] != 10:
        s -= 1
    fields = _line_text(buf, s, len(buf)).split()
    who = ""
    if plan.has_id:
        c_id = int(np.flatnonzero(np.asarray(plan.kinds) == K.ID)[0])
        if c_id < len(fields):
            who = f"atom id {fields[c_id]}: "
    return (f"{who}column {col + 1} ({plan.columns[col]}): coordinate "
            f"{tok.decode('ascii', 'replace')!r} is not finite; expected a finite number")


def locate_atom_line(src, d0, d1, plan, atom_id, chunk=1 << 22):
    """Line (0-based, counted from byte ``d0``) of atom ``atom_id`` in ``[d0, d1)``.

    Error paths only (a Python scan of the frame's lines): the line of the atom with that
    id, or without an id column the ``atom_id``-th non-blank line (atoms are numbered in
    file order).  None when not found.
    """
    c_id = int(np.flatnonzero(np.asarray(plan.kinds) == K.ID)[0]) if plan.has_id else -1
    target = b"%d" % int(atom_id)
    line, seen, off, carry = 0, 0, d0, b""
    while off < d1 or carry:
        block = src.read_at(off, min(chunk, d1 - off)) if off < d1 else b""
        off += len(block)
        text = carry + block
        if off >= d1 or not block:
            parts, carry = text.split(b"\n"), b""
        else:
            cut = text.rfind(b"\n") + 1
            parts, carry = text[:cut].split(b"\n")[:-1], text[cut:]
        for ln in parts:
            fields = ln.split()
            if fields:
                seen += 1
                if c_id < 0 and seen == atom_id:
                    return line
                if 0 <= c_id < len(fields) and target in ln and fields[c_id].lstrip(b"+0") == \
                        target.lstrip(b"0"):
                    return line
            line += 1
        if not block:
            break
    return None


_NO_PLACE = np.zeros(4, dtype=np.int64)


class RowParser:
    """Feeds byte buffers to the kernel and accumulates rows.

    Parameters
    ----------
    plan : ColumnPlan
    rows : Rows
        File-order mode: rows are appended.  Placement mode: rows of owned ids go to
        row ``id - own_lo`` (``rows`` made with ``zero_ids=True``, ``rows.n`` is then the
        whole capacity).
    max_rows : int
        Rows allowed in total (more is an error: more lines than ``NUMBER OF ATOMS``).
    growable : bool
        File-order mode: enlarge ``rows`` when full (up to ``max_rows``).
    place : tuple of 4 int, optional
        ``(own_lo, own_hi, valid_lo, valid_hi)``: placement mode (see
        :func:`._kernels.parse_rows`), the other rows going to ``out``.
    out : Rows, optional
        Rows of ids outside ``[own_lo, own_hi)`` (placement mode).
    """

    def __init__(self, plan, rows, max_rows, growable=False, place=None, out=None):
        self.plan = plan
        self.rows = rows
        self.max_rows = int(max_rows)
        self.growable = growable
        self.place = _NO_PLACE if place is None else np.asarray(place, dtype=np.int64)
        self.placing = place is not None
        self.out = out if out is not None else Rows(plan, 0)
        self.out_n = np.zeros(1, dtype=np.int64)
        self.place_failed = False
        self.count = 0
        self.fix = np.empty((_FIX_ROWS, 5), dtype=np.int64)
        self.lines = 0
        self.error = None

    def feed(self, buf, start, end, final, line0=None):
        """Parse the lines of ``buf[start:end]``; return the offset where parsing stopped.

        Unless ``final``, a last line without newline is left unparsed.  ``line0`` is
        the line index of ``buf[start]`` (default: lines consumed so far).  On error,
        :attr:`error` is set to ``(line, message)`` and the rest is ignored.
        """
        if self.error is not None or self.place_failed:
            return end
        plan, rows, out = self.plan, self.rows, self.out
        if line0 is None:
            line0 = self.lines
        p = start
        consumed = 0
        while True:
            r, nxt, ln, st, col, nfix = K.parse_rows(
                buf, p, end, final, self.max_rows - self.count, plan.kinds, plan.slots, rows.n,
                rows.cap, line0 + consumed, not plan.has_id, rows.ids, rows.types, rows.pos,
                rows.fext, rows.iext, rows.sext, self.fix, self.place, out.ids, out.types,
                out.pos, out.fext, out.iext, out.sext, self.out_n)
            for q in range(nfix):
                rr, c, b, e, which = (int(v) for v in self.fix[q])
                tok = bytes(buf[b:e])
                try:
                    v = float(tok)
                except ValueError:
                    line = line0 + consumed + int(np.count_nonzero(buf[p:b] == 10))
                    name = plan.columns[c]
                    self.error = (line, f"column {c + 1} ({name}): "
                                        f"{tok.decode('ascii', 'replace')!r} is not a number")
                    return end
                target = out if which else rows
                if plan.kinds[c] == K.POS and not np.isfinite(v):
                    # NaN or inf (e.g. a blown-up run): no position, refused here where
                    # the line is known (the kernel's own conversions are always finite)
                    line = line0 + consumed + int(np.count_nonzero(buf[p:b] == 10))
                    self.error = (line, _not_finite(buf, b, c, tok, plan))
                    return end
                if plan.kinds[c] == K.POS:
                    target.pos[rr, plan.slots[c]] = v
                else:
                    target.fext[rr, plan.slots[c]] = v
            self.count += r
            if not self.placing:
                rows.n += r
            out.n = int(self.out_n[0])
            consumed += ln
            p = nxt
            if st == K.FIX_FULL:
                continue
            if st == K.PLACE_FAIL:
                self.place_failed = True
                return end
            if st == K.CAPACITY:
                if self.growable and rows.cap < self.max_rows:
                    rows.grow(min(self.max_rows, max(rows.cap * 3 // 2, rows.cap + 1024)))
                    continue
                self.error = (line0 + consumed, f"more atom lines than NUMBER OF ATOMS "
                                                f"({self.max_rows}) allows")
                return end
            if st < 0:
                self.error = (line0 + consumed, _describe(st, col, plan, _line_text(buf, p, end)))
                return end
            break
        if self.count >= self.max_rows and p < end:
            # rows complete: anything but blank space left is one line too many
            rest = buf[p:end]
            nonblank = np.nonzero((rest != 32) & (rest != 10) & (rest != 9) & (rest != 13))[0]
            if len(nonblank):
                b = p + int(nonblank[0])
                line = line0 + consumed + int(np.count_nonzero(buf[p:b] == 10))
                self.error = (line, f"more atom lines than NUMBER OF ATOMS ({self.max_rows})")
                return end
            p = end
        self.lines = max(self.lines, line0 + consumed)
        return p


def parse_range(src, start, stop, plan, rows, max_rows, chunk_bytes=DEFAULT_CHUNK,
                growable=False, place=None, out=None):
    """Parse the atom lines in bytes ``[start, stop)`` of ``src`` into ``rows``.

    Reads at most ``chunk_bytes`` (plus one line) at a time.  With ``place`` (and
    ``out``), rows are placed by id (see :class:`RowParser`); parsing stops at the first
    id that cannot be placed, and ``placed`` is then False (the caller parses again in
    file order, which also reports a repeated id with its lines).

    Returns
    -------
    lines : int
        Lines consumed (blank lines included).
    error : tuple or None
        ``(line, message)``, the line counted from ``start`` (0-based).
    placed : bool
        Placement mode succeeded.
    """
    parser = RowParser(plan, rows, max_rows, growable, place, out)
    size = stop - start
    buf = np.empty(max(min(chunk_bytes, size), 1 << 12), dtype=np.uint8)
    carry = 0
    off = start
    while True:
        want = min(len(buf) - carry, stop - off)
        got = src.readinto_at(off, buf[carry:carry + want]) if want > 0 else 0
        off += got
        final = off >= stop or got < want
        end = carry + got
        p = parser.feed(buf, 0, end, final)
        if parser.error is not None or parser.place_failed or final:
            break
        rem = end - p
        if rem >= len(buf) // 2:
            nb = np.empty(2 * len(buf), dtype=np.uint8)
            nb[:rem] = buf[p:end]
            buf = nb
        else:
            buf[:rem] = buf[p:end]
        carry = rem
    placed = place is not None and not parser.place_failed
    if placed and parser.error is None:
        # a repeated id overwrote a row: fewer filled rows than rows placed
        if int(K.count_placed(rows.ids)) != parser.count - out.n:
            placed = False
    return parser.lines, parser.error, placed, parser.count


def id_locality(src, lo, hi, plan, nbytes=1 << 16, window=64):
    """How ordered the ids at the start of ``[lo, hi)`` are: the fraction of consecutive
    lines whose ids differ by at most ``window`` (1.0 when unknown).

    Placing rows by id while parsing writes each row where its id says; that is fast when
    consecutive lines have nearby ids (LAMMPS writes atoms processor by processor, in
    spatially sorted order) and slow when they are scattered (random stores).
    """
    n = min(nbytes, hi - lo)
    if n <= 0 or not plan.has_id:
        return 1.0
    buf = np.frombuffer(src.read_at(lo, n), dtype=np.uint8)
    kinds = np.zeros_like(plan.kinds)
    kinds[np.asarray(plan.kinds) == K.ID] = K.ID
    cap = len(buf) // plan.min_line_bytes + 1
    ids = np.empty(cap, dtype=np.int64)
    e_i, e_t, e_f = np.empty(0, np.int64), np.empty(0, np.int32), np.empty((0, 3))
    e_2 = np.empty((0, 0))
    e_2i = np.empty((0, 0), np.int64)
    fix = np.empty((_FIX_ROWS, 5), dtype=np.int64)
    r, _, _, _, _, _ = K.parse_rows(buf, 0, len(buf), len(buf) == hi - lo, cap, kinds, plan.slots,
                                    0, cap, 0, False, ids, e_t, e_f, e_2, e_2i, e_2i, fix,
                                    _NO_PLACE, e_i, e_t, e_f, e_2, e_2i, e_2i,
                                    np.zeros(1, np.int64))
    if r < 2:
        return 1.0
    return float(np.mean(np.abs(np.diff(ids[:r])) <= window))


def line_start_after(src, s, d0, d1):
    """First line start at or after byte ``s`` within ``[d0, d1]``."""
    if s <= d0:
        return d0
    if s >= d1:
        return d1
    off = s - 1
    while off < d1:
        blk = src.read_at(off, min(1 << 14, d1 - off))
        if not blk:
            return d1
        j = blk.find(b"\n")
        if j >= 0:
            return min(off + j + 1, d1)
        off += len(blk)
    return d1
