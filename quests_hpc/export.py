"""Per-frame files for visual inspection: LAMMPS dumps or extended XYZ with dH and clusters.

Colour atoms by ``dH`` (or select a ``cluster``) in OVITO, as in the paper's Fig. 5a:
OVITO opens both formats directly (``ovito.io.import_file`` or File > Load File), and
so does ASE (``ase.io.read``).

Writing is parallel (every function taking ``comm`` is collective): each rank formats
its own atoms with a Numba kernel, an exclusive scan of the byte counts gives every rank
its offset, and all ranks write their bytes at once with MPI-IO (``MPI.File.Write_at_all``)
after rank 0's header.  With a ``.gz`` name every rank deflates its own part; the parts
form one gzip member (as ``pigz`` does: sync-flushed deflate pieces, CRC-32s combined),
so every gzip reader -- OVITO's, which stops after a first member, included -- reads it
whole.  No rank ever holds more than its own atoms.  Every file is written under a
hidden temporary name beside it and renamed when complete, so a failure (a full disk)
never leaves a truncated file that looks finished, nor removes an earlier one.

OVITO names: the dump column ``cluster`` becomes OVITO's standard ``Cluster`` property
and ``dH`` appears as ``dh`` (extended XYZ keeps ``dH``).

>>> export_frame("frame.lammpstrj.gz", ids, positions, cell, True,        # doctest: +SKIP
...              comm=comm, columns={"dH": dh, "cluster": labels}, types=types)
"""

import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from mpi4py import MPI

from . import geometry
from ._export_kernels import FLOAT, INT, MAX_INT_WIDTH, STRING, compact_rows, format_rows
from .errors import QuestsInputError
from .parallel import comm as pcomm
from .parallel.comm import require_comm
from .results.writer import ResultsIOError
from .threads import get_num_threads

FORMATS = ("lammps-dump", "extxyz")
_BLOCK_ROWS = 1 << 18
_MAX_WRITE = 1 << 30  # bytes per MPI-IO call (counts are 32-bit)
DEFAULT_DECIMALS = {"position": 5, "float": 6}


def format_of(path, fmt=None):
    """Output format from ``fmt`` or the file name (``.xyz``/``.extxyz`` -> extxyz)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise QuestsInputError(f"export format must be one of {FORMATS}, got {fmt!r}")
        return fmt
    name = os.fspath(path).lower()
    name = name.removesuffix(".gz")
    return "extxyz" if name.endswith((".xyz", ".extxyz")) else "lammps-dump"


def _string_table(names):
    names = [str(s).encode() for s in names]
    w = max([len(s) for s in names] + [1])
    table = np.zeros((max(len(names), 1), w), dtype=np.uint8)
    length = np.zeros(max(len(names), 1), dtype=np.int64)
    for i, s in enumerate(names):
        table[i, :len(s)] = np.frombuffer(s, dtype=np.uint8)
        length[i] = len(s)
    return table, length


def format_table(columns, table=None):
    """Text of the rows of a table, one line per row, as a uint8 array.

    Parameters
    ----------
    columns : list of (kind, array, decimals)
        ``kind`` is ``"int"``, ``"float"`` or ``"str"`` (then ``array`` holds indices
        into ``table``); ``decimals`` is used for floats.
    table : list of str, optional
        Strings of ``"str"`` columns.

    Returns
    -------
    ndarray of uint8
    """
    if not columns:
        return np.empty(0, np.uint8)
    n = len(columns[0][1])
    kinds = np.array([{"int": INT, "float": FLOAT, "str": STRING}[k] for k, _, _ in columns])
    ints = [np.asarray(a, dtype=np.int64) for k, a, _ in columns if k != "float"]
    floats = [np.asarray(a, dtype=np.float64) for k, a, _ in columns if k == "float"]
    index = np.zeros(len(columns), dtype=np.int64)
    ci = cf = 0
    for c, (k, _, _) in enumerate(columns):
        if k == "float":
            index[c], cf = cf, cf + 1
        else:
            index[c], ci = ci, ci + 1
    dec = np.array([int(d or 0) for _, _, d in columns], dtype=np.int64)
    tab, tlen = _string_table(table or [])
    width = int(sum(MAX_INT_WIDTH + 1 if k != FLOAT else 22 + d
                    for k, d in zip(kinds, dec)) + tab.shape[1] + 2)
    ints = np.stack(ints, axis=1) if ints else np.zeros((n, 0), np.int64)
    floats = np.stack(floats, axis=1) if floats else np.zeros((n, 0), np.float64)
    parts = []
    for a in range(0, n, _BLOCK_ROWS):
        b = min(n, a + _BLOCK_ROWS)
        slots = np.empty((b - a) * width, dtype=np.uint8)
        lengths = np.empty(b - a, dtype=np.int64)
        format_rows(np.ascontiguousarray(ints[a:b]), np.ascontiguousarray(floats[a:b]), kinds,
                    index, dec, tab, tlen, width, slots, lengths)
        for i in np.flatnonzero(lengths < 0):  # floats too large for fixed point
            row = []
            for c, k in enumerate(kinds):
                if k == FLOAT:
                    row.append(f"{floats[a + i, index[c]]:.{dec[c]}e}")
                elif k == INT:
                    row.append(str(int(ints[a + i, index[c]])))
                else:
                    row.append(str((table or [])[ints[a + i, index[c]]]))
            text = (" ".join(row) + "\n").encode()
            slots[i * width:i * width + len(text)] = np.frombuffer(text, dtype=np.uint8)
            lengths[i] = len(text)
        offsets = np.zeros(b - a, dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        dest = np.empty(int(lengths.sum()), dtype=np.uint8)
        compact_rows(slots, width, lengths, offsets, dest)
        parts.append(dest)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def lammps_box(cell, pbc, origin=None):
    """LAMMPS restricted-triclinic box of a right-handed cell, and the rotation to it.

    Returns
    -------
    header : str
        The ``ITEM: BOX BOUNDS`` block.
    rotation : ndarray, shape (3, 3) or None
        Multiply positions (relative to ``origin``) by it to get LAMMPS coordinates;
        None when the cell is already in LAMMPS form.
    """
    c = np.asarray(cell, dtype=np.float64)
    o = np.zeros(3) if origin is None else np.asarray(origin, dtype=np.float64)
    if np.linalg.det(c) <= 0:
        raise QuestsInputError("a LAMMPS dump needs a right-handed cell (det > 0); export "
                               "this frame as extended XYZ (.xyz) instead")
    a, b, cc = c
    lx = np.linalg.norm(a)
    xy = b @ a / lx
    ly = np.sqrt(b @ b - xy ** 2)
    xz = cc @ a / lx
    yz = (b @ cc - xy * xz) / ly
    lz = np.sqrt(cc @ cc - xz ** 2 - yz ** 2)
    lam = np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]])
    rot = None if np.allclose(lam, c, rtol=0, atol=1e-12 * lx) else np.linalg.solve(c, lam)
    flags = " ".join("pp" if p else "ff" for p in geometry.as_pbc(pbc))
    lo = o if rot is None else np.zeros(3)
    hi = lo + [lx, ly, lz]
    if abs(xy) + abs(xz) + abs(yz) == 0:
        rows = [f"{lo[i]:.10g} {hi[i]:.10g}" for i in range(3)]
        return f"ITEM: BOX BOUNDS {flags}\n" + "\n".join(rows) + "\n", rot
    xlb = lo[0] + min(0.0, xy, xz, xy + xz)
    xhb = hi[0] + max(0.0, xy, xz, xy + xz)
    ylb, yhb = lo[1] + min(0.0, yz), hi[1] + max(0.0, yz)
    return (f"ITEM: BOX BOUNDS xy xz yz {flags}\n{xlb:.10g} {xhb:.10g} {xy:.10g}\n"
            f"{ylb:.10g} {yhb:.10g} {xz:.10g}\n{lo[2]:.10g} {hi[2]:.10g} {yz:.10g}\n"), rot


def _comm_sizes(comm, n):
    counts = pcomm.allgather(int(n), comm)
    return comm.rank, comm.size, int(sum(counts)), int(sum(counts[:comm.rank]))


def _complete_cell_global(cell, pbc, positions, comm):
    """Cell with zero non-periodic vectors replaced by the atoms' extent (collective)."""
    c = np.array(cell, dtype=np.float64).reshape(3, 3)
    pbc = geometry.as_pbc(pbc)
    lo = positions.min(axis=0) if len(positions) else np.full(3, np.inf)
    hi = positions.max(axis=0) if len(positions) else np.full(3, -np.inf)
    lo = pcomm.allreduce(np.asarray(lo, dtype=np.float64), "min", comm)
    hi = pcomm.allreduce(np.asarray(hi, dtype=np.float64), "max", comm)
    origin = np.zeros(3)
    for a in range(3):
        if not pbc[a] and np.linalg.norm(c[a]) == 0:
            c[a] = 0.0
            c[a, a] = max(float(hi[a] - lo[a]), 1.0) + 1.0
            origin[a] = lo[a] - 0.5
    return c, origin


def export_frame(path, ids, positions, cell, pbc, *, comm, columns=None, types=None,
                 elements=None, timestep=0, origin=None, fmt=None, decimals=None):
    """Write one frame (every rank's atoms) as a LAMMPS dump or an extended XYZ file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; ``.gz`` compresses; ``.xyz`` / ``.extxyz`` selects extended XYZ.
    ids : array_like of int, shape (n_local,)
    positions : array_like, shape (n_local, 3)
    cell : array_like, shape (3, 3)
        Rows are the cell vectors.
    pbc : bool or 3 bools
    columns : dict of str -> array_like, optional
        Extra per-atom columns (e.g. ``{"dH": dh, "cluster": labels}``): integer arrays
        are written as integers, others as fixed-point floats.
    types : array_like of int, optional
        LAMMPS atom types (default 1).
    elements : sequence of str, optional
        Symbol of each type (``elements[t - 1]``); extended XYZ needs symbols (default
        ``"X"``), LAMMPS dumps get an ``element`` column when given.
    timestep : int
    origin : array_like, shape (3,), optional
        Lower corner of the cell.
    fmt : {"lammps-dump", "extxyz"}, optional
        Default: from the file name.
    comm : mpi4py communicator
        Collective over ``comm`` (required; ``MPI.COMM_SELF`` for a serial export);
        atoms are written in rank order.
    decimals : dict, optional
        Decimals per column name (default 5 for positions, 6 for float columns).

    Returns
    -------
    int
        Bytes written (before compression).
    """
    require_comm(comm, "export_frame")
    fmt = format_of(path, fmt)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = len(ids)
    columns = dict(columns or {})
    for k, v in columns.items():
        if len(v) != n:
            raise QuestsInputError(f"column {k!r} has {len(v)} rows, expected {n}")
        if not k or any(ch.isspace() or ch in ':"=' for ch in k):
            raise QuestsInputError(f"column name {k!r} must be one word without : \" =")
    dec = dict(DEFAULT_DECIMALS, **(decimals or {}))
    pbc = geometry.as_pbc(pbc)
    cell, auto_origin = _complete_cell_global(cell, pbc, pos, comm)
    origin = auto_origin if origin is None else np.asarray(origin, dtype=np.float64)
    t = np.ones(n, dtype=np.int64) if types is None else np.asarray(types, dtype=np.int64)
    rank, _, natoms, _ = _comm_sizes(comm, n)

    extra = [(("int", np.asarray(v), None) if np.issubdtype(np.asarray(v).dtype, np.integer)
              else ("float", np.asarray(v, dtype=np.float64), dec.get(k, dec["float"])))
             for k, v in columns.items()]
    layout = _lammps_layout if fmt == "lammps-dump" else _extxyz_layout
    header, cols = layout(ids, pos, t, cell, pbc, origin, elements, timestep, natoms,
                          dec["position"], list(columns), extra)
    if elements is not None and n and (t.min() < 1 or t.max() > len(elements)):
        raise QuestsInputError(f"types must be in 1..{len(elements)} to use elements "
                               f"{list(elements)}, got {int(t.min())}..{int(t.max())}")
    body = format_table(cols, list(elements) if elements is not None else ["X"])
    head_bytes = np.frombuffer(header.encode(), dtype=np.uint8) if rank == 0 else None
    write_parts(path, head_bytes, body, comm, compress=os.fspath(path).endswith(".gz"))
    return len(body) + (len(header) if rank == 0 else 0)


def _lammps_layout(ids, pos, t, cell, pbc, origin, elements, timestep, natoms, decimals,
                   names, extra):
    """Header text and table columns of a LAMMPS dump frame."""
    box, rot = lammps_box(cell, pbc, origin)
    p = pos if rot is None else (pos - origin) @ rot
    cols = [("int", ids, None), ("int", t, None)]
    head = ["id", "type"]
    if elements is not None:
        cols.append(("str", t - 1, None))
        head.append("element")
    cols += [("float", p[:, i], decimals) for i in range(3)] + extra
    header = (f"ITEM: TIMESTEP\n{int(timestep)}\nITEM: NUMBER OF ATOMS\n{natoms}\n{box}"
              f"ITEM: ATOMS {' '.join(head + ['x', 'y', 'z'] + names)}\n")
    return header, cols


def _extxyz_layout(ids, pos, t, cell, pbc, origin, elements, timestep, natoms, decimals,
                   names, extra):
    """Header text and table columns of an extended XYZ frame."""
    props = ["species:S:1", "pos:R:3", "id:I:1"] + [
        f"{k}:{'I' if c[0] == 'int' else 'R'}:1" for k, c in zip(names, extra)]
    lat = " ".join(f"{x:.10g}" for x in cell.reshape(-1))
    flags = " ".join("T" if x else "F" for x in pbc)
    header = (f'{natoms}\nLattice="{lat}" Properties={":".join(props)} pbc="{flags}" '
              f"Timestep={int(timestep)}\n")
    cols = ([("str", t - 1 if elements is not None else np.zeros(len(ids), np.int64), None)]
            + [("float", pos[:, i], decimals) for i in range(3)]
            + [("int", ids, None)] + extra)
    return header, cols


def _gf2_times(mat, vec):
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat):
    return [_gf2_times(mat, mat[i]) for i in range(32)]


def crc32_combine(crc1, crc2, len2):
    """CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's method)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << i for i in range(31)]  # operator for one zero bit
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


_GZIP_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255])
#: zlib level of ``.gz`` exports: level 1 deflates numeric text ~6x faster than the
#: default 6 for ~10 % larger files.
GZIP_LEVEL = 1
_GZIP_CHUNK = 4 << 20


def _deflate_chunks(raw, last, level, threads):
    """Raw deflate of ``raw`` in independent sync-flushed chunks, compressed in threads.

    zlib releases the GIL, so chunks compress in parallel; every chunk ends byte-aligned
    (``Z_SYNC_FLUSH``), the very last one with the final block (``Z_FINISH``) when
    ``last``.  The concatenation is one valid deflate stream.
    """
    size = max(_GZIP_CHUNK, -(-len(raw) // max(1, threads)))
    bounds = list(range(0, len(raw), size)) or [0]

    def one(k):
        a = bounds[k]
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        end = last and k == len(bounds) - 1
        return c.compress(raw[a:a + size]) + c.flush(zlib.Z_FINISH if end else zlib.Z_SYNC_FLUSH)

    if len(bounds) == 1 or threads <= 1:
        return b"".join(one(k) for k in range(len(bounds)))
    with ThreadPoolExecutor(max_workers=threads) as ex:
        return b"".join(ex.map(one, range(len(bounds))))


def _gzip_piece(data, first, last, comm, level=GZIP_LEVEL):
    """This rank's piece of one gzip member compressed in parallel (as pigz does).

    Every rank deflates its bytes independently (in threads, :func:`_deflate_chunks`)
    and ends with a byte-aligned sync flush; the concatenation of the pieces is one valid
    deflate stream.  Rank 0 adds the gzip header, the last rank the final block and the
    trailer (the CRC-32 of the whole text, combined from every rank's CRC and length).
    Readers that stop after the first member of a multi-member gzip file (OVITO) read it
    whole.
    """
    raw = memoryview(np.ascontiguousarray(data)).cast("B")
    out = _deflate_chunks(raw, last, level, get_num_threads())
    crc = zlib.crc32(raw)
    crcs = pcomm.allgather((crc, len(raw)), comm)
    if first:
        out = _GZIP_HEADER + out
    if last:
        total_crc, total = 0, 0
        for cr, ln in crcs:
            total_crc = crc32_combine(total_crc, cr, ln)
            total += ln
        out += (int(total_crc).to_bytes(4, "little")
                + int(total & 0xFFFFFFFF).to_bytes(4, "little"))
    return np.frombuffer(out, dtype=np.uint8)


def _temp_name(path):
    """Hidden name beside ``path`` for writing it aside (unique per process)."""
    d, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.join(d, f".{name}.{os.getpid()}.partial")


def _write_file(f, data):
    """Write ``data`` to the open file ``f`` (a seam for tests: a full disk)."""
    f.write(data)


def _write_at(fh, offset, buf):
    """``MPI.File.Write_at_all`` (a seam for tests: a full disk)."""
    pcomm.file_write_at_all(fh, offset, buf)


def _discard(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _write_failed(path, why):
    return ResultsIOError(f"writing {os.fspath(path)} failed: {why}; no partial file was put "
                          "under that name (an earlier file of that name is unchanged; files "
                          "written before it are complete) -- free space (or fix the file "
                          "system) and rerun the export")


def _why(exc):
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    get = getattr(exc, "Get_error_string", None)
    return get() if get is not None else str(exc)


def write_parts(path, header, body, comm, compress=False):
    """Write rank 0's ``header`` then every rank's ``body`` in rank order (collective).

    Offsets come from an exclusive scan of the byte counts; all ranks write at once with
    ``MPI.File.Write_at_all`` (plain file I/O on one rank).  With ``compress`` the
    file is one gzip member deflated in parallel (:func:`_gzip_piece`).

    The bytes go to a hidden temporary name beside ``path`` (``.<name>.<pid>.partial``),
    renamed to ``path`` once all are written: a failure (a full disk) removes the
    temporary file, leaves an earlier ``path`` as it was and raises
    :class:`~quests_hpc.results.writer.ResultsIOError` naming the file on every rank.
    """
    data = np.concatenate([header, body]) if header is not None else np.ascontiguousarray(body)
    serial = require_comm(comm, "write_parts").size == 1
    if compress:
        data = _gzip_piece(data, comm.rank == 0, comm.rank == comm.size - 1, comm)
    if serial:
        tmp = _temp_name(path)
        try:
            with open(tmp, "wb") as f:
                _write_file(f, data.tobytes())
            os.replace(tmp, path)
        except OSError as exc:
            _discard(tmp)
            raise _write_failed(path, _why(exc)) from None
        return
    _write_parts_mpi(path, data, comm)


def _write_parts_mpi(path, data, comm):
    sizes = pcomm.allgather(len(data), comm)
    offset = int(sum(sizes[:comm.rank]))
    calls = max(1, max(-(-s // _MAX_WRITE) for s in sizes))
    tmp = None
    if comm.rank == 0:
        tmp = _temp_name(path)
        _discard(tmp)  # MODE_CREATE does not truncate
    tmp = pcomm.bcast(tmp, comm, root=0)
    err, fh = None, None
    try:
        fh = pcomm.file_create(tmp, comm)
    except (MPI.Exception, OSError) as exc:
        err = _why(exc)
    if fh is not None:
        for c in range(calls):  # the same number of collective calls on every rank
            a = min(len(data), c * _MAX_WRITE) if err is None else len(data)
            b = min(len(data), a + _MAX_WRITE)
            try:
                _write_at(fh, offset + a, data[a:b])
            except (MPI.Exception, OSError) as exc:
                err = err or _why(exc)
        try:
            pcomm.file_close(fh)
        except (MPI.Exception, OSError) as exc:
            err = err or _why(exc)
    try:
        pcomm.raise_if_any(None if err is None else _write_failed(path, err), comm,
                           prefix=False, keep=(ResultsIOError,))
    except ResultsIOError:
        if comm.rank == 0:
            _discard(tmp)
        raise
    err = None
    if comm.rank == 0:
        try:
            os.replace(tmp, path)
        except OSError as exc:
            _discard(tmp)
            err = _write_failed(path, _why(exc))
    pcomm.raise_if_any(err, comm, prefix=False, root=0, keep=(ResultsIOError,))
