"""Byte sources for dump files: plain files (random access) and compressed streams.

Every reader in :mod:`quests_hpc.io` reads through a *source* with one method,
``readinto_at(offset, buffer)``, so that the same code parses a plain file and a
compressed one.

* :class:`RawSource` -- an uncompressed file, read with ``os.pread`` (no shared file
  position; any rank may read any byte range).  This is what the parallel reader needs.
* :class:`StreamSource` -- ``.gz`` (gzip, multi-member included), ``.bz2``, ``.xz`` and
  ``.zst`` (needs the ``zstandard`` package).  Offsets are positions in the
  *decompressed* stream.  Reading forward is sequential decompression; reading backward
  reopens the file and decompresses again from the start, so frames should be read in
  increasing order.  Decompression is serial: in an MPI run one rank decompresses and the
  others receive text (see :mod:`quests_hpc.io.lammps_dump`).
"""

import bz2
import gzip
import lzma
import os
import zlib

from ..errors import QuestsInputError

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")

_SKIP_CHUNK = 1 << 22


def compression_of(path):
    """Compression named by the file suffix: ``"gz"``, ``"bz2"``, ``"xz"``, ``"zst"`` or None."""
    p = str(path).lower()
    for suf in COMPRESSED_SUFFIXES:
        if p.endswith(suf):
            return suf[1:]
    return None


def _open_stream(path, kind):
    if kind == "gz":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zst":
        try:
            import zstandard
        except ImportError:  # pragma: no cover - zstandard is a dependency
            raise QuestsInputError(f"{path}: reading .zst files needs the 'zstandard' package "
                                   "(pip install zstandard)") from None
        return zstandard.open(path, "rb")
    raise ValueError(kind)


_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


class RawSource:
    """An uncompressed file read with ``os.pread``.

    Parameters
    ----------
    path : str or os.PathLike
    """

    compressed = False

    def __init__(self, path):
        self.path = str(path)
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

    def read_at(self, offset, n):
        """Up to ``n`` bytes at ``offset`` as ``bytes``."""
        buf = bytearray(n)
        got = self.readinto_at(offset, buf)
        return bytes(buf[:got])

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class StreamSource:
    """A compressed file read as a forward stream (offsets in decompressed bytes).

    ``size`` is None until the whole stream has been read once.
    """

    compressed = True

    def __init__(self, path, kind=None):
        self.path = str(path)
        self.kind = kind or compression_of(path)
        if self.kind is None:
            raise QuestsInputError(f"{self.path}: not a compressed file name "
                                   f"(expected one of {', '.join(COMPRESSED_SUFFIXES)})")
        if not os.path.exists(self.path):
            raise QuestsInputError(f"{self.path}: no such file")
        self.size = None
        self._f = None
        self._pos = 0
        self._open()

    def _open(self):
        if self._f is not None:
            self._f.close()
        try:
            self._f = _open_stream(self.path, self.kind)
        except _STREAM_ERRORS as exc:
            raise QuestsInputError(f"{self.path}: cannot open {self.kind} stream ({exc})") from None
        self._pos = 0

    def _fail(self, exc):
        raise QuestsInputError(f"{self.path}: unreadable {self.kind} stream near decompressed "
                               f"byte {self._pos} ({type(exc).__name__}: {exc})") from None

    def _skip(self, n):
        scratch = bytearray(min(n, _SKIP_CHUNK))
        while n > 0:
            mv = memoryview(scratch)[:min(n, len(scratch))]
            got = self._readinto(mv)
            if got == 0:
                return
            n -= got

    def _readinto(self, mv):
        try:
            got = self._f.readinto(mv)
        except _STREAM_ERRORS as exc:
            self._fail(exc)
        got = got or 0
        self._pos += got
        if got == 0 and len(mv) > 0:
            self.size = self._pos
        return got

    def readinto_at(self, offset, buf):
        """Read up to ``len(buf)`` decompressed bytes at ``offset``; return the count."""
        if offset < self._pos:
            self._open()
        if offset > self._pos:
            self._skip(offset - self._pos)
            if self._pos < offset:
                return 0
        mv = memoryview(buf).cast("B")
        total = 0
        while total < len(mv):
            got = self._readinto(mv[total:])
            if got == 0:
                break
            total += got
        return total

    def read_at(self, offset, n):
        """Up to ``n`` decompressed bytes at ``offset`` as ``bytes``."""
        buf = bytearray(n)
        got = self.readinto_at(offset, buf)
        return bytes(buf[:got])

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_source(path):
    """A :class:`RawSource` or :class:`StreamSource` for ``path`` (by suffix)."""
    kind = compression_of(path)
    return StreamSource(path, kind) if kind else RawSource(path)
