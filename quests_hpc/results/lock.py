"""An exclusive lock on a results file, held for a whole run: ``OUT.h5.lock``.

Two runs must never write the same output (the "is the output new" check and the final
rename of one run would interleave with the other's).  A run takes the lock before it
looks at the output and keeps it until it has finished (errors, ``KeyboardInterrupt``
and ``SIGTERM`` included); a second run is refused at once with a message that names the
holder: host, pid, start time and command.

* Taking the lock is one ``open(O_CREAT | O_EXCL)`` of ``OUT.h5.lock`` (atomic on local
  file systems, NFSv3+ and Lustre); its content (JSON) names the holder.
* A *stale* lock -- same host, the holder's pid no longer alive (or reused by another
  process: the process start time differs) -- is taken over.  Removing it is done under a
  short-lived second lock ``OUT.h5.lock.takeover`` (also ``O_EXCL``), after re-reading
  that the file is still the same stale lock, so two runs racing to take over can never
  both win, and a fresh lock is never removed.
* A lock of another host cannot be checked: refused, and the message says which file to
  delete if that run is gone.
* Only rank 0 touches the lock; :func:`output_lock` broadcasts the outcome so that every
  rank raises the same error (no rank is left in a collective).
"""

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid

from ..errors import QuestsInputError
from ..parallel.comm import raise_if_any, require_comm

LOCK_SUFFIX = ".lock"
#: A lock file that cannot be parsed (a holder killed between creating and writing it) is
#: stale once it is this old (seconds).
UNREADABLE_STALE_S = 30.0
#: A takeover lock older than this belonged to a process killed while taking over.
TAKEOVER_STALE_S = 60.0


class OutputLockedError(QuestsInputError):
    """The output is locked by another run (exit status 2)."""


def lock_path(path):
    """The lock file of results file ``path``."""
    return str(path) + LOCK_SUFFIX


def _proc_start(pid):
    """Start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
        return int(text[text.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _proc_state(pid):
    """One-letter state of process ``pid`` (Linux ``/proc``: R, S, D, Z, ...), else None."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
        return text[text.rindex(")") + 2:].split()[0]
    except (OSError, ValueError, IndexError):
        return None


def _exited(pid):
    """Whether ``pid`` is a zombie whose threads have all exited (its files are closed).

    The leader of a thread group shows state Z as soon as it exits, while its other
    threads (which still hold the process's files) may take a moment longer to end.
    """
    if _proc_state(pid) not in ("Z", "X"):
        return False
    try:
        return len(os.listdir(f"/proc/{int(pid)}/task")) <= 1
    except OSError:
        return True


def _alive(pid, start=None):
    """Whether ``pid`` is a running process (the same one, when ``start`` is known)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except (OSError, ValueError, OverflowError):
        return False
    if _exited(pid):
        return False  # a zombie: dead, only not yet reaped (an orphaned MPI rank, say)
    if start is not None:
        now = _proc_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


def holder_info(command=None):
    """What a new lock file says about its holder."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "proc_start": _proc_start(os.getpid()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "time": time.time(),
            "command": command or "", "token": uuid.uuid4().hex}


def describe_holder(info):
    cmd = f", command {info['command']!r}" if info.get("command") else ""
    return (f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, started "
            f"{info.get('started', '?')}{cmd}")


def read_lock(lock):
    """The holder of ``lock`` (dict), ``{}`` if unreadable, None if there is no lock."""
    try:
        with open(lock, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text.decode())
        return info if isinstance(info, dict) and "pid" in info else {}
    except (ValueError, UnicodeDecodeError):
        return {}


def _age(path):
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def _is_stale(lock, info):
    """Why ``info`` (the content of ``lock``) is stale, or None when it may be live."""
    if info == {}:
        return "unreadable" if _age(lock) > UNREADABLE_STALE_S else None
    if info.get("host") != socket.gethostname():
        return None
    if _alive(info.get("pid", -1), info.get("proc_start")):
        return None
    return f"pid {info.get('pid')} is no longer running"


def _create(lock, info):
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        os.write(fd, (json.dumps(info) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(lock, seen):
    """Remove ``lock`` if it still holds ``seen`` (under the takeover lock); True if done."""
    guard = lock + ".takeover"
    try:
        _create(guard, holder_info())
    except FileExistsError:
        if _age(guard) > TAKEOVER_STALE_S:
            with contextlib.suppress(FileNotFoundError):
                os.remove(guard)
        return False  # someone else is taking over: look again
    try:
        now = read_lock(lock)
        if now is None:
            return True
        if now == seen and _is_stale(lock, now):
            os.remove(lock)
            return True
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(guard)


def _refusal(path, lock, info):
    if info == {}:
        return (f"output {path} is locked: {lock} exists but is not a readable quests-hpc lock "
                "(a run may be starting); if no run uses this output, delete that file")
    msg = f"output {path} is in use by another run ({describe_holder(info)})"
    if info.get("host") != socket.gethostname():
        return msg + (f"; it runs on another host, so this one cannot check it: if that run "
                      f"is gone, delete {lock} and rerun")
    return msg + "; wait for it to finish or write to another output"


def acquire(path, command=None, attempts=50, info=None):
    """Take the lock of ``path`` (one process, not collective); returns the holder info
    (``info``, when given: made beforehand, so that a caller interrupted inside this call
    can still :func:`release` the lock).

    Raises
    ------
    OutputLockedError
        A live run (or another host's) holds it.
    QuestsInputError
        The lock file cannot be created (the message says why).
    """
    lock = lock_path(path)
    info = info or holder_info(command)
    for _ in range(attempts):
        try:
            _create(lock, info)
            return info
        except FileExistsError:
            pass
        except OSError as exc:
            raise QuestsInputError(f"cannot create the lock file {lock}: "
                                   f"{exc.strerror or exc}") from None
        seen = read_lock(lock)
        if seen is None:
            continue  # released meanwhile: try again
        if not _is_stale(lock, seen):
            raise OutputLockedError(_refusal(path, lock, seen))
        if not _remove_stale(lock, seen):
            time.sleep(0.01)
    raise OutputLockedError(f"output {path}: could not take {lock} (other runs keep taking "
                            "it over); try again")


def release(path, info):
    """Remove the lock of ``path`` if it is still ours (``info`` from :func:`acquire`)."""
    lock = lock_path(path)
    now = read_lock(lock)
    if now and now.get("token") == info.get("token"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock)


@contextlib.contextmanager
def _sigterm_raises():
    """While held: SIGTERM raises KeyboardInterrupt (so ``finally`` blocks release)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def output_lock(path, comm, command=None):
    """Hold the lock of ``path`` for the ``with`` block (collective over ``comm``;
    ``MPI.COMM_SELF`` for a serial run).

    Rank 0 takes it (and turns SIGTERM into ``KeyboardInterrupt`` meanwhile); the outcome
    is broadcast, so a refusal raises the same :class:`OutputLockedError` on every rank
    (another input error: a :class:`~quests_hpc.errors.QuestsInputError`, its message
    unchanged).  The lock is that of the resolved path, so a symlink and its target share
    one.
    """
    require_comm(comm, "output_lock")
    path = os.path.realpath(os.fspath(path))
    with contextlib.ExitStack() as stack:
        info, err = None, None
        if comm.rank == 0:  # SIGTERM handled from before the lock file exists until it is gone
            stack.enter_context(_sigterm_raises())
            info = holder_info(command)
            stack.callback(release, path, info)
            try:
                acquire(path, info=info)
            except QuestsInputError as exc:
                err = exc
            except OSError as exc:  # reaches every rank: none is left in the bcast
                err = QuestsInputError(f"cannot lock the output {path}: cannot create "
                                       f"{lock_path(path)} ({exc.strerror or exc})")
        raise_if_any(err, comm, prefix=False, root=0, keep=(OutputLockedError,))
        yield info
