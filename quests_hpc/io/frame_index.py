"""Frame index of a LAMMPS text dump: where every frame and its atom lines are.

The index is built by scanning for ``ITEM: TIMESTEP`` at the start of a line (no
assumption of a fixed frame length: the atom count may change between frames) and
parsing each frame's header.  Per frame it stores the byte offsets of the frame, of its
first atom line and of its end, the timestep, ``NUMBER OF ATOMS``, line numbers and the
number of atom lines actually present.

* Plain files can be scanned in shares: :func:`scan_share` scans share ``r`` of ``P`` of
  the file's bytes (counting newlines and parsing the headers that start in it) and
  :func:`assemble_plain` joins the summaries of all shares into the index.  Serially
  :func:`build_index` scans one share; :mod:`quests_hpc.parallel.dump_index` gives each
  rank its share and gathers the summaries (this module knows nothing of ranks).
* Compressed files are scanned in one pass while decompressing (:func:`scan_compressed`;
  offsets are positions in the decompressed stream).
* The index is cached (see :func:`cache_path`) and revalidated by file size,
  modification time and a content fingerprint (the file's first and last bytes and the
  headers of up to 64 indexed frames, :func:`fingerprint`), so a file rewritten with the
  same size and time stamp is rescanned; a file that only grew (a running simulation) is
  rescanned from its last indexed frame on.  A cache that cannot be read, or whose
  arrays do not describe a possible index of the file, is ignored.

A last frame with fewer atom lines than ``NUMBER OF ATOMS`` (or a header cut short) is
taken for a frame still being written: it is left out of the frame count and reported
by :attr:`FrameIndex.truncated_tail`; the frames before it stay readable.
"""

import hashlib
import json
import os
import warnings

import numpy as np

from ..errors import QuestsInputError
from .lammps_header import MARKER, HeaderError, HeaderIncomplete, parse_header, pre_item_start

INDEX_VERSION = 2
_FP_BYTES = 4096
_FP_FRAMES = 64
SCAN_CHUNK = 1 << 24
_BACK = 1024

# per-frame status
OK, SHORT, LONG, BAD_HEADER = 0, 1, 2, 3

_FIELDS = ("start", "data", "end", "timestep", "natoms", "line", "data_line", "nlines", "status")


class FrameIndex:
    """Offsets and sizes of the frames of one dump file.

    Attributes
    ----------
    path : str
    compressed : bool
    file_size, mtime_ns : int
        Of the file on disk when indexed (used to revalidate a cached index).
    start, data, end : ndarray of int64
        Byte offset of the frame's first line, of its first atom line, and of the end
        of its atom lines (decompressed offsets for compressed files).
    timestep, natoms : ndarray of int64
    line, data_line : ndarray of int64
        1-based line number of the frame's first line and of its first atom line.
    nlines : ndarray of int64
        Atom lines present (lines between ``data`` and ``end``).
    status : ndarray of int8
        ``OK``, ``SHORT`` (fewer lines than atoms), ``LONG`` or ``BAD_HEADER``.
    errors : dict
        Frame number -> message, for ``BAD_HEADER`` frames.
    truncated_tail : dict or None
        The frame being written at the end of the file (``start``, ``line``,
        ``timestep`` or None, ``natoms`` or None, ``nlines``), not counted in ``len``.
    units : str or None
        ``ITEM: UNITS`` of the file (LAMMPS writes it in the first frame only).
    fingerprint : str
        :func:`fingerprint` of the file when indexed.
    from_cache : bool
        Loaded (wholly or in part) from a cache file, not scanned now (not stored).
    """

    def __init__(self, path, compressed, file_size, mtime_ns, arrays, errors, truncated_tail,
                 data_size, head_hash="", units=None):
        self.path = path
        self.compressed = compressed
        self.file_size = int(file_size)
        self.mtime_ns = int(mtime_ns)
        self.data_size = int(data_size)
        self.head_hash = head_hash
        for f in _FIELDS:
            setattr(self, f, np.asarray(arrays[f], dtype=np.int8 if f == "status" else np.int64))
        self.errors = {int(k): v for k, v in errors.items()}
        self.truncated_tail = truncated_tail
        self.units = units
        self.fingerprint = ""
        self.from_cache = False

    def __len__(self):
        return len(self.start)

    def __repr__(self):
        tail = ", truncated tail" if self.truncated_tail else ""
        return f"FrameIndex({self.path!r}, {len(self)} frames{tail})"

    def where(self, i):
        """``"<path>, frame i (timestep t)"`` for messages."""
        ts = int(self.timestep[i])
        return f"{self.path}, frame {i} (timestep {ts if ts >= 0 else '?'})"

    def arrays(self):
        return {f: getattr(self, f) for f in _FIELDS}


# ----------------------------------------------------------------------------- scanning

def _scan_range(src, a, b, where):
    """Scan ``[a, b)``: markers starting there, their headers, newline counts.

    Returns a dict of lists plus ``nl`` (newlines in ``[a, b)``) and ``tail`` (a header
    cut by the end of the data, or None).
    """
    out = {k: [] for k in ("marker", "pre", "pre_lines", "nl_before", "hdr_bytes", "hdr_lines",
                           "timestep", "natoms", "error")}
    out["tail"] = None
    out["units"] = None
    nl = 0
    pos = a
    back = src.read_at(max(0, a - _BACK), a - max(0, a - _BACK)) if a > 0 else b""
    buf = b""
    m = len(MARKER)
    while pos < b:
        want = min(SCAN_CHUNK, b - pos)
        if len(buf) < want + m - 1:
            buf += src.read_at(pos + len(buf), want + m - 1 - len(buf))
        want = min(want, len(buf))
        if want == 0:
            break
        j = buf.find(MARKER, 0, want + m - 1)
        counted, nl_at = 0, nl  # newlines in buf[:counted] added to nl give nl_at
        while 0 <= j < want:
            at_line_start = buf[j - 1] == 10 if j > 0 else (pos == 0 or back[-1:] == b"\n")
            if at_line_start:
                hdr, err, buf = _header_at(src, buf, pos, j, where)
                win = (back + buf[:j])[-2 * _BACK:] if j < 2 * _BACK else buf[j - 2 * _BACK:j]
                p0, pre_lines = pre_item_start(win, len(win), at_bof=(pos + j - len(win) == 0))
                if pre_lines and out["units"] is None:
                    pre = win[p0:].split(b"\n")
                    for q in range(len(pre) - 1):
                        if pre[q].strip() == b"ITEM: UNITS":
                            out["units"] = pre[q + 1].decode("ascii", "replace").strip()
                nl_at += buf.count(b"\n", counted, j)  # incremental: linear in the chunk
                counted = j
                nlb = nl_at
                _record(out, pos + j, pos + j - (len(win) - p0), pre_lines, nlb, hdr, err)
            j = buf.find(MARKER, j + 1, want + m - 1)
        nl += buf.count(b"\n", 0, want)
        back = (back + buf[:want])[-_BACK:] if want < _BACK else buf[want - _BACK:want]
        buf = buf[want:]
        pos += want
    out["nl"] = nl
    out["last_byte"] = back[-1:]
    return out


def _header_at(src, buf, pos, j, where):
    """Parse the header at ``buf[j]`` (``buf`` starts at file offset ``pos``).

    Reads more of the file while the header is cut by the end of ``buf``.  Returns
    ``(header, error, buf)``: ``error`` is None, a :class:`HeaderError` or ``"incomplete"``
    (the data ends inside the header); ``buf`` is the possibly extended buffer.
    """
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hdr = parse_header(buf, where, start=j)
            return hdr, None, buf
        except HeaderIncomplete:
            more = src.read_at(pos + len(buf), 1 << 16)
            if not more:
                return None, "incomplete", buf
            buf += more
        except HeaderError as exc:
            return None, exc, buf


def _record(out, marker, pre, pre_lines, nlb, hdr, err):
    """Add the frame whose marker is at file offset ``marker`` to the scan result ``out``."""
    if err == "incomplete":
        out["tail"] = dict(marker=marker, pre=pre, pre_lines=pre_lines, nl_before=nlb)
        return
    out["marker"].append(marker)
    out["pre"].append(pre)
    out["pre_lines"].append(pre_lines)
    out["nl_before"].append(nlb)
    if err is None:
        if out["units"] is None and hdr.units is not None:
            out["units"] = hdr.units
        out["hdr_bytes"].append(hdr.header_bytes)
        out["hdr_lines"].append(hdr.header_lines)
        out["timestep"].append(hdr.timestep)
        out["natoms"].append(hdr.natoms)
        out["error"].append(None)
    else:
        out["hdr_bytes"].append(0)
        out["hdr_lines"].append(0)
        out["timestep"].append(-1 if err.timestep is None else err.timestep)
        out["natoms"].append(-1)
        out["error"].append((err.line, err.detail))


def _assemble(path, compressed, size, mtime_ns, parts, data_size, head_hash, base=None):
    """Global index from the per-range scan results (in file order)."""
    nl0 = 0 if base is None else base["nl0"]
    rec = {k: [] for k in ("marker", "pre", "pre_lines", "line_marker", "hdr_bytes", "hdr_lines",
                           "timestep", "natoms", "error")}
    tail = None
    for part in parts:
        for i in range(len(part["marker"])):
            rec["marker"].append(part["marker"][i])
            rec["pre"].append(part["pre"][i])
            rec["pre_lines"].append(part["pre_lines"][i])
            rec["line_marker"].append(nl0 + part["nl_before"][i] + 1)
            for k in ("hdr_bytes", "hdr_lines", "timestep", "natoms", "error"):
                rec[k].append(part[k][i])
        if part["tail"] is not None:
            t = part["tail"]
            tail = dict(start=int(t["pre"]), line=int(nl0 + t["nl_before"] + 1 - t["pre_lines"]),
                        timestep=None, natoms=None, nlines=0)
        nl0 += part["nl"]
    total_nl = nl0
    ends_with_nl = parts[-1]["last_byte"] == b"\n" if parts else True
    n = len(rec["marker"])
    arr = {f: np.zeros(n, dtype=np.int64) for f in _FIELDS}
    errors = {} if base is None else dict(base["errors"])
    off = 0 if base is None else len(base["arrays"]["start"])
    for i in range(n):
        start = rec["pre"][i]
        arr["start"][i] = start
        arr["line"][i] = rec["line_marker"][i] - rec["pre_lines"][i]
        arr["timestep"][i] = rec["timestep"][i]
        arr["natoms"][i] = rec["natoms"][i]
        if rec["error"][i] is not None:
            line, detail = rec["error"][i]
            errors[off + i] = f"line {rec['line_marker'][i] + line - 1}: {detail}"
            arr["data"][i] = rec["marker"][i]
            arr["data_line"][i] = rec["line_marker"][i]
            arr["status"][i] = BAD_HEADER
        else:
            arr["data"][i] = rec["marker"][i] + rec["hdr_bytes"][i]
            arr["data_line"][i] = rec["line_marker"][i] + rec["hdr_lines"][i]
    for i in range(n):
        if i + 1 < n:
            arr["end"][i] = arr["start"][i + 1]
            end_line = arr["line"][i + 1]
        elif tail is not None:
            arr["end"][i] = tail["start"]
            end_line = tail["line"]
        else:
            arr["end"][i] = data_size
            end_line = total_nl + 1 if ends_with_nl else total_nl + 2
            if arr["data"][i] >= data_size:
                end_line = arr["data_line"][i]
        if arr["status"][i] != BAD_HEADER:
            arr["nlines"][i] = end_line - arr["data_line"][i]
            if arr["nlines"][i] < arr["natoms"][i]:
                arr["status"][i] = SHORT
            elif arr["nlines"][i] > arr["natoms"][i]:
                arr["status"][i] = LONG
    if base is not None:
        arr = {f: np.concatenate([base["arrays"][f], arr[f]]) for f in _FIELDS}
    # a last frame with too few lines is a frame still being written
    if tail is None and len(arr["start"]) and arr["status"][-1] == SHORT:
        k = len(arr["start"]) - 1
        tail = dict(start=int(arr["start"][k]), line=int(arr["line"][k]),
                    timestep=int(arr["timestep"][k]), natoms=int(arr["natoms"][k]),
                    nlines=int(arr["nlines"][k]))
        arr = {f: v[:k] for f, v in arr.items()}
    units = base.get("units") if base is not None else None
    for part in parts:
        units = units or part["units"]
    return FrameIndex(path, compressed, size, mtime_ns, arr, errors, tail, data_size, head_hash,
                      units)


def _head_hash(src):
    return hashlib.sha1(src.read_at(0, 4096)).hexdigest()


def _raw_ends(path):
    """The first and last :data:`_FP_BYTES` bytes of the file on disk (compressed or not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, _FP_BYTES, 0)
        tail = os.pread(fd, _FP_BYTES, max(0, size - _FP_BYTES))
    finally:
        os.close(fd)
    return size, head, tail


def fingerprint(src, index):
    """A hash of what ``index`` says about the content of ``src``'s file.

    It covers the file's size, its first and last 4 KiB on disk and, for plain files, the
    header bytes (``ITEM: ...`` up to the first atom line, at most 4 KiB each) at the
    offsets of up to 64 frames evenly spread over the index (the first and last always):
    a rewrite that moves frame boundaries changes the bytes at the old offsets.  About 66
    small reads, whatever the file size.
    """
    size, head, tail = _raw_ends(src.path)
    h = hashlib.sha1(b"%d\n" % size)
    h.update(head)
    h.update(tail)
    n = len(index)
    if not src.compressed and n:
        for k in np.unique(np.linspace(0, n - 1, min(n, _FP_FRAMES)).astype(np.int64)):
            a, b = int(index.start[k]), int(index.data[k])
            h.update(b"%d:%d:" % (a, b))
            h.update(src.read_at(a, min(max(b - a, 64), _FP_BYTES)))
    return h.hexdigest()


def _plausible(index):
    """The arrays of a loaded index could describe a file (guards a corrupt cache)."""
    n = len(index)
    if any(len(getattr(index, f)) != n for f in _FIELDS):
        return False
    if not n:
        return True
    ok_end = index.end[-1] <= index.data_size
    if not index.compressed:
        ok_end = ok_end and index.data_size == index.file_size
    return bool(ok_end and np.all(index.start >= 0) and np.all(index.start <= index.data)
                and np.all(index.data <= index.end) and np.all(index.end[:-1] <= index.start[1:])
                and np.all(index.line >= 1) and np.all(index.data_line >= index.line)
                and np.all(np.isin(index.status, (OK, SHORT, LONG, BAD_HEADER))))


def scan_compressed(src):
    """The whole :class:`FrameIndex` of a compressed ``src``, in one decompression pass."""
    st = os.stat(src.path)
    part = _scan_range(src, 0, 1 << 62, src.path)
    data_size = src.size if src.size is not None else 0
    return _assemble(src.path, True, st.st_size, st.st_mtime_ns, [part], data_size, _head_hash(src))


def resume_base(resume):
    """``(a0, base)``: where a rescan of a file that only grew starts, and what is kept of
    its older index ``resume`` (``(0, None)`` for a full scan)."""
    if resume is None or not len(resume):
        return 0, None
    k = len(resume) - 1
    base = dict(arrays={f: v[:k] for f, v in resume.arrays().items()},
                errors={i: m for i, m in resume.errors.items() if i < k},
                nl0=int(resume.line[k]) - 1, units=resume.units)
    return int(resume.start[k]), base


def scan_share(src, a0, share, nshares):
    """Scan share ``share`` of ``nshares`` of the plain file's bytes ``[a0, size)``; the
    summary :func:`assemble_plain` joins."""
    data_size = src.size
    lo = a0 + (data_size - a0) * share // nshares
    hi = a0 + (data_size - a0) * (share + 1) // nshares
    return _scan_range(src, lo, hi, src.path)


def assemble_plain(src, st, parts, base=None):
    """The :class:`FrameIndex` of a plain file from ``st`` (its ``os.stat`` taken *before*
    the scan), the summaries of all its shares (in order) and the ``base`` of
    :func:`resume_base`."""
    return _assemble(src.path, False, st.st_size, st.st_mtime_ns, parts, src.size,
                     _head_hash(src), base)


def build_index(src, resume=None):
    """Scan ``src`` (a :mod:`.compressed` source) and return its :class:`FrameIndex`.

    ``resume`` is an older index of the same file that only grew: scanning restarts at
    its last frame.
    """
    if src.compressed:
        return scan_compressed(src)
    st = os.stat(src.path)
    a0, base = resume_base(resume)
    return assemble_plain(src, st, [scan_share(src, a0, 0, 1)], base)


# ------------------------------------------------------------------------------ caching

def cache_path(path, where="auto"):
    """Where the index of ``path`` is cached.

    ``where``: ``"beside"`` (a hidden ``.<name>.quests-index.npz`` next to the dump),
    ``"user"`` (``$QUESTS_HPC_CACHE_DIR``, else ``$XDG_CACHE_HOME/quests-hpc/index``,
    else ``~/.cache/quests-hpc/index``), or ``"auto"`` (beside when the directory is
    writable, else user).
    """
    path = os.path.abspath(str(path))
    d, name = os.path.split(path)
    beside = os.path.join(d, f".{name}.quests-index.npz")
    if where == "beside" or (where == "auto" and os.access(d, os.W_OK)):
        return beside
    root = os.environ.get("QUESTS_HPC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "quests-hpc", "index")
    key = hashlib.sha1(path.encode()).hexdigest()[:16]
    return os.path.join(root, f"{key}-{name}.npz")


def save_index(index, file):
    """Write ``index`` to ``file`` (npz; atomic rename).  Returns False if not writable."""
    meta = dict(version=INDEX_VERSION, path=index.path, compressed=index.compressed,
                file_size=index.file_size, mtime_ns=index.mtime_ns, data_size=index.data_size,
                head_hash=index.head_hash, errors={str(k): v for k, v in index.errors.items()},
                truncated_tail=index.truncated_tail, units=index.units,
                fingerprint=index.fingerprint)
    tmp = f"{file}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **index.arrays())
        os.replace(tmp, file)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def load_index(file):
    """Read an index written by :func:`save_index`; None if missing, unreadable, of another
    version or inconsistent (any damage to a cache file means a rescan, never an error)."""
    try:
        with np.load(file, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if not isinstance(meta, dict) or meta.get("version") != INDEX_VERSION:
                return None
            arrays = {f: z[f] for f in _FIELDS}
        idx = FrameIndex(meta["path"], meta["compressed"], meta["file_size"], meta["mtime_ns"],
                         arrays, meta["errors"], meta["truncated_tail"], meta["data_size"],
                         meta.get("head_hash", ""), meta.get("units"))
        idx.fingerprint = str(meta["fingerprint"])
        if any(getattr(idx, f).shape != idx.start.shape for f in _FIELDS) or idx.start.ndim != 1:
            return None
    except Exception:  # a damaged cache (zip, json, dtype, missing keys ...): rescan
        return None
    return idx


def cache_decision(src, cfile, rebuild=False):
    """What to do about the cached index ``cfile`` of ``src``: ``("use", index)``,
    ``("resume", older_index)`` (the file only grew) or ``("scan", None)``."""
    st = os.stat(src.path)
    old = load_index(cfile) if (cfile and not rebuild) else None
    if old is not None and old.path != os.path.abspath(src.path) and old.path != src.path:
        old = None
    if old is not None and not _plausible(old):
        old = None
    if old is None:
        return ("scan", None)
    if (old.file_size == st.st_size and old.mtime_ns == st.st_mtime_ns
            and old.fingerprint == _fingerprint_or_none(src, old)):
        return ("use", old)
    if (not old.compressed and st.st_size > old.file_size and len(old)
            and old.head_hash == _head_hash(src) and _frame_still_there(src, old)):
        return ("resume", old)
    return ("scan", None)


def use_cached(src, idx):
    """A cached index taken as it is (decision ``"use"``)."""
    idx.path = src.path
    idx.from_cache = True
    return idx


def finish_index(src, idx, decision, cfile, cache, write=True):
    """A freshly built index: marked, and (``write``) saved to ``cfile`` (falling back to
    the user cache directory when ``cache`` is ``"auto"`` and beside is not writable)."""
    idx.from_cache = decision[0] == "resume"
    if write and cfile:
        idx.fingerprint = fingerprint(src, idx)
        idx.path = os.path.abspath(src.path)
        if not save_index(idx, cfile) and cache == "auto":
            save_index(idx, cache_path(src.path, "user"))
    idx.path = src.path
    return idx


def get_index(src, cache="auto", rebuild=False):
    """The frame index of ``src``: from the cache when still valid, else scanned.

    Parameters
    ----------
    src : RawSource or StreamSource
    cache : {"auto", "beside", "user"} or False
        Where to cache (see :func:`cache_path`); False: neither read nor write a cache.
    rebuild : bool
        Ignore a cached index.

    See :func:`quests_hpc.parallel.dump_index.get_index` for the collective version (the
    same steps, the scan shared by the ranks).
    """
    cfile = cache_path(src.path, cache) if cache else None
    decision = cache_decision(src, cfile, rebuild)
    if decision[0] == "use":
        return use_cached(src, decision[1])
    idx = build_index(src, resume=decision[1])
    return finish_index(src, idx, decision, cfile, cache)


def _fingerprint_or_none(src, index):
    try:
        return fingerprint(src, index)
    except (OSError, QuestsInputError):
        return None


def _frame_still_there(src, old):
    """The last indexed frame still starts where it did (file appended, not rewritten)."""
    k = len(old) - 1
    head = src.read_at(int(old.start[k]), int(old.data[k] - old.start[k]))
    try:
        j = head.index(MARKER)
        hdr = parse_header(head + b"\n", start=j)
    except (ValueError, HeaderIncomplete, HeaderError):
        return False
    return hdr.timestep == int(old.timestep[k]) and hdr.natoms == int(old.natoms[k])
