"""Byte sources for dump files: plain files (random access) and compressed streams.

Every reader in :mod:`quests_hpc.io` reads through a *source* with one method,
``readinto_at(offset, buffer)``, so that the same code parses a plain file and a
compressed one.

* :class:`RawSource` -- an uncompressed file, read with ``os.pread`` (no shared file
  position; any rank may read any byte range).  This is what the parallel reader needs.
* :class:`StreamSource` -- ``.gz`` (gzip, multi-member included), ``.bz2``, ``.xz`` and
  ``.zst`` (needs the ``zstandard`` package).  Offsets are positions in the
  *decompressed* stream.  A stream cut short (still being written) reads up to the cut
  with a warning; corrupt data raise an error naming the file.  Reading forward is sequential
  decompression; reading backward
  reopens the file and decompresses again from the start, so frames should be read in
  increasing order.  Decompression is serial: in an MPI run one rank decompresses and the
  others receive text (see :mod:`quests_hpc.io.lammps_dump`).
"""

import bz2
import lzma
import os
import stat
import warnings
import zlib

from ..errors import QuestsInputError

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


def compression_of(path):
    """Compression named by the file suffix: ``"gz"``, ``"bz2"``, ``"xz"``, ``"zst"`` or None."""
    p = str(path).lower()
    for suf in COMPRESSED_SUFFIXES:
        if p.endswith(suf):
            return suf[1:]
    return None


def _decoder(kind, path):
    """A fresh streaming decompressor for one gzip member / bz2, xz or zstd stream."""
    if kind == "gz":
        return zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor()
    if kind == "zst":
        try:
            import zstandard
        except ImportError:  # pragma: no cover - zstandard is a dependency
            raise QuestsInputError(f"{path}: reading .zst files needs the 'zstandard' package "
                                   "(pip install zstandard)") from None
        return zstandard.ZstdDecompressor().decompressobj()
    raise ValueError(kind)


def _decode_errors():
    errs = [OSError, EOFError, zlib.error, lzma.LZMAError, ValueError]
    try:
        import zstandard

        errs.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errs)


def regular_file_problem(path):
    """Why ``path`` cannot be read as a dump file, or None when it is a regular file.

    A directory, a FIFO (opening it would wait for a writer), a socket or a device
    (``/dev/zero`` never ends) is refused by name; a missing file too.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot access it ({exc.strerror})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device"
            if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return (f"is {kind}, not a regular file; expected a dump file (frames are read by byte "
            "offset, so a pipe or device cannot be read: write it to a file first)")


def _check_regular(path):
    problem = regular_file_problem(path)
    if problem:
        raise QuestsInputError(f"{path}: {problem}")


class _Source:
    """What both sources share: ``read_at`` over ``readinto_at``, and a context manager."""

    def read_at(self, offset, n):
        """Up to ``n`` bytes (decompressed, for a stream) at ``offset`` as ``bytes``."""
        buf = bytearray(n)
        got = self.readinto_at(offset, buf)
        return bytes(buf[:got])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class RawSource(_Source):
    """An uncompressed file read with ``os.pread``.

    Parameters
    ----------
    path : str or os.PathLike
    """

    compressed = False

    def __init__(self, path):
        self.path = str(path)
        self._fd = None
        _check_regular(self.path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise QuestsInputError(f"{self.path}: cannot open ({exc.strerror})") from None
        st = os.fstat(self._fd)
        self.size = st.st_size

    def readinto_at(self, offset, buf):
        """Read up to ``len(buf)`` bytes at ``offset`` into ``buf``; return the count."""
        mv = memoryview(buf).cast("B")
        total = 0
        while total < len(mv):
            try:
                n = os.preadv(self._fd, [mv[total:]], offset + total)
            except OSError as exc:
                raise QuestsInputError(f"{self.path}: read error at byte {offset + total} "
                                       f"({exc.strerror})") from None
            if n == 0:
                break
            total += n
        return total

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StreamSource(_Source):
    """A compressed file read as a forward stream (offsets in decompressed bytes).

    Decompression uses the streaming decompressor objects of :mod:`zlib`, :mod:`bz2`,
    :mod:`lzma` and ``zstandard`` directly, so that a stream cut short (a dump still
    being written through ``gzip``) yields all the data before the cut: the source then
    ends there, :attr:`truncated` is set and a :class:`DumpWarning` is issued.  Corrupt
    data raise :class:`~quests_hpc.errors.QuestsInputError`.  Concatenated members /
    streams (``cat a.gz b.gz``) are read in sequence.

    ``size`` is None until the whole stream has been read once.
    """

    compressed = True
    _IN_CHUNK = 1 << 18

    def __init__(self, path, kind=None):
        self.path = str(path)
        self.kind = kind or compression_of(path)
        if self.kind is None:
            raise QuestsInputError(f"{self.path}: not a compressed file name "
                                   f"(expected one of {', '.join(COMPRESSED_SUFFIXES)})")
        self._f = None
        _check_regular(self.path)
        self.size = None
        self.truncated = False
        self._errors = _decode_errors()
        self._f = None
        self._open()

    def _open(self):
        if self._f is not None:
            self._f.close()
        try:
            self._f = open(self.path, "rb")
        except OSError as exc:
            raise QuestsInputError(f"{self.path}: cannot open ({exc.strerror})") from None
        self._dec = _decoder(self.kind, self.path)
        self._pending = b""  # decompressed, not yet delivered
        self._pend_pos = 0
        self._pos = 0  # decompressed offset of the next byte to deliver
        self._in_eof = False
        self._started = False

    def _fail(self, exc):
        raise QuestsInputError(f"{self.path}: unreadable {self.kind} stream near decompressed "
                               f"byte {self._pos} ({type(exc).__name__}: {exc})") from None

    def _more(self):
        """Decompress the next piece into ``_pending``; False at the end of the data."""
        while not self._in_eof:
            data = self._f.read(self._IN_CHUNK)
            out = b""
            try:
                if not data:
                    self._in_eof = True
                    if not self._started:
                        raise EOFError("empty file")
                    if not self._dec.eof:
                        self._cut_short()
                    return False
                self._started = True
                while data:
                    if self._dec.eof:  # previous member/stream complete: next one
                        if not data.strip(b"\0"):
                            break  # zero padding after the last member
                        self._dec = _decoder(self.kind, self.path)
                    out += self._dec.decompress(data)
                    data = self._dec.unused_data if self._dec.eof else b""
            except self._errors as exc:
                self._fail(exc)
            if out:
                self._pending = out
                self._pend_pos = 0
                return True
        return False

    def _cut_short(self):
        if not self.truncated:
            from .lammps_header import DumpWarning

            self.truncated = True
            warnings.warn(f"{self.path}: the {self.kind} stream ends without its end marker "
                          f"after {self._pos + len(self._pending) - self._pend_pos} bytes "
                          "(file still being written?); reading what is there",
                          DumpWarning, stacklevel=4)

    def _take(self, mv):
        """Copy pending bytes into ``mv``; return the count (0 at the end)."""
        if self._pend_pos >= len(self._pending):
            self._pending, self._pend_pos = b"", 0
            if not self._more():
                self.size = self._pos
                return 0
        k = min(len(mv), len(self._pending) - self._pend_pos)
        mv[:k] = self._pending[self._pend_pos:self._pend_pos + k]
        self._pend_pos += k
        self._pos += k
        return k

    def readinto_at(self, offset, buf):
        """Read up to ``len(buf)`` decompressed bytes at ``offset``; return the count."""
        if offset < self._pos:
            self._open()
        while self._pos < offset:
            if self._pend_pos >= len(self._pending) and not self._more():
                self.size = self._pos
                return 0
            k = min(offset - self._pos, len(self._pending) - self._pend_pos)
            self._pend_pos += k
            self._pos += k
        mv = memoryview(buf).cast("B")
        total = 0
        while total < len(mv):
            got = self._take(mv[total:])
            if got == 0:
                break
            total += got
        return total

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None


def open_source(path):
    """A :class:`RawSource` or :class:`StreamSource` for ``path`` (by suffix)."""
    kind = compression_of(path)
    return StreamSource(path, kind) if kind else RawSource(path)
