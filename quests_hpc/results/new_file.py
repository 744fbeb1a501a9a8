"""New output files that never replace anything: written aside, then published.

No run deletes or replaces earlier results.  :func:`write_new` writes a file under a
hidden name beside it (``.<name>.<pid>.partial<ext>``) and then publishes it under its
name with a hard link, which fails rather than replace a file that appeared meanwhile
(on a file system without hard links: a rename after a last check).  A failure while
writing (disk full) removes the hidden file and raises
:class:`~quests_hpc.results.writer.ResultsIOError` naming the file.
:func:`check_new` refuses, before any work, a name that exists or whose directory is
missing.  Serial (the caller's rank writes).
"""

import errno
import os

from ..errors import QuestsInputError
from .writer import ResultsIOError


def aside_name(path):
    """The hidden name beside ``path`` that it is written under (keeps the extension)."""
    d, name = os.path.split(os.path.abspath(os.fspath(path)))
    stem, ext = os.path.splitext(name)
    return os.path.join(d, f".{stem}.{os.getpid()}.partial{ext}")


def publish(tmp, path):
    """Give the finished ``tmp`` the name ``path``, never replacing a file there."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ResultsIOError(f"{path}: a file of that name appeared while it was being "
                             "written; it was left as it is (nothing written)") from None
    except OSError as exc:  # a file system without hard links: rename, after a last check
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise ResultsIOError(f"{path}: a file of that name appeared meanwhile; nothing "
                                 "written") from None
        os.replace(tmp, path)
        return
    os.remove(tmp)


def write_new(path, write):
    """Run ``write(tmp)`` then publish ``tmp`` as ``path``; errors -> ResultsIOError."""
    tmp = aside_name(path)
    try:
        write(tmp)
        publish(tmp, path)
    except (OSError, ResultsIOError) as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, ResultsIOError):
            raise
        raise ResultsIOError(f"writing {path} failed: {exc.strerror or exc}; no file was "
                             "put under that name") from None
    return path


def check_new(outputs, inputs=()):
    """Refuse (``QuestsInputError``, every problem in one message) outputs that exist,
    whose directory is missing, that name an input or the same file twice.
    ``outputs``: ``(path, option)`` pairs (path None: not written)."""
    given = [(os.fspath(p), o) for p, o in outputs if p is not None]
    real_inputs = {os.path.realpath(os.fspath(p)) for p in inputs}
    problems = []
    for p, o in given:
        d = os.path.dirname(os.path.abspath(p))
        if os.path.realpath(p) in real_inputs:
            problems.append(f"{o} {p}: is one of the inputs; an output never replaces one")
        elif os.path.lexists(p):
            problems.append(f"{o} {p}: exists; this command never replaces a file (move it "
                            "away or choose another name)")
        elif not os.path.isdir(d):
            problems.append(f"{o} {p}: the directory {d} does not exist")
    real = [os.path.realpath(p) for p, _ in given]
    if len(set(real)) < len(real):
        problems.append(f"{' and '.join(o for _, o in given)} name the same file")
    if problems:
        raise QuestsInputError("; ".join(problems))
