"""Stage timing: wall and CPU seconds and peak memory per named stage, and a summary table.

The one stage timer of the package (layer 0: no MPI here).  A :class:`StageTimer` records,
per stage (in first-use order), the wall seconds, the process CPU seconds and the peak
resident memory reached while the stage ran.  Stages are timed either as blocks
(``with t("halo"): ...``) or as consecutive marks (``t.done("halo")`` closes the stage
that began at the previous mark).  A stage can be closed by a barrier: pass
``sync=comm.Barrier`` (any callable), so the wall time of a stage is that of the slowest
rank; the CPU seconds are read before the barrier (the work, not the wait).

Over ranks: gather every rank's :meth:`StageTimer.record` (e.g. ``comm.gather``) and pass
the list to :meth:`StageTimer.table` for min/avg/max columns, the load imbalance
(max/avg) and the largest peak memory of any rank.

Memory helpers: :func:`current_memory_bytes` (resident now, ``/proc/self/statm``) and
:func:`peak_memory_bytes` (the process's high-water mark, ``ru_maxrss``).
"""

import os
import resource
import sys
import time
from contextlib import contextmanager

_MIB = float(1 << 20)


def peak_memory_bytes():
    """Peak resident memory of this process so far (``ru_maxrss``), in bytes."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb) * (1 if sys.platform == "darwin" else 1024)


def current_memory_bytes():
    """Current resident memory of this process (Linux ``/proc/self/statm``), in bytes.

    Where ``/proc`` is missing, the peak so far (:func:`peak_memory_bytes`).
    """
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_memory_bytes()


class _Mark:
    """Clocks and memory at the start of a stage."""

    __slots__ = ("wall", "cpu", "rss", "hwm")

    def __init__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.rss = current_memory_bytes()
        self.hwm = peak_memory_bytes()


class StageTimer:
    """Wall seconds, CPU seconds and peak memory per named stage, in first-use order.

    Parameters
    ----------
    sync : callable, optional
        Called (without arguments) at the end of every stage before the wall clock is
        read, e.g. ``comm.Barrier``: then each stage's wall time is the slowest rank's.
        Every rank must then time the same stages in the same order.

    Attributes
    ----------
    seconds : dict
        Wall seconds per stage (accumulated over repeated uses).
    cpu : dict
        CPU seconds of this process per stage (all threads).
    peak_memory : dict
        Bytes: the largest resident memory reached during any run of the stage.  Exact
        when the stage raised the process's high-water mark (``ru_maxrss``), which is the
        stage that sets the peak of the run; otherwise the larger of the resident memory at
        the stage's start and end (a lower bound).
    memory : dict
        Bytes resident at the end of the latest run of the stage.

    Examples
    --------
    >>> t = StageTimer()
    >>> with t("descriptors"):
    ...     pass
    >>> t.done("reductions")  # the stage since the previous mark (here: the block's end)
    >>> sorted(t.seconds)
    ['descriptors', 'reductions']
    """

    def __init__(self, sync=None):
        self.sync = sync
        self.seconds, self.cpu, self.peak_memory, self.memory = {}, {}, {}, {}
        self._start = time.perf_counter()
        self._mark = _Mark()

    # ------------------------------------------------------------------ recording

    @contextmanager
    def __call__(self, stage):
        """Time the ``with`` block as ``stage`` (the time is recorded even if it raises)."""
        start = _Mark()
        try:
            yield self
        finally:
            self._close(stage, start)

    def done(self, stage):
        """Close ``stage``: the time since the previous mark (creation, :meth:`done`, the
        end of a ``with`` block or :meth:`mark`) is added to it; starts the next stage."""
        self._close(stage, self._mark)

    def mark(self):
        """Start the next consecutive stage now (time since the last mark is not counted)."""
        self._mark = _Mark()

    def add(self, seconds, cpu=None, peak_memory=None):
        """Merge stage times measured elsewhere: ``{stage: seconds}`` (and CPU, memory)."""
        for k, v in seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + float(v)
        for k, v in (cpu or {}).items():
            self.cpu[k] = self.cpu.get(k, 0.0) + float(v)
        for k, v in (peak_memory or {}).items():
            self.peak_memory[k] = max(self.peak_memory.get(k, 0), int(v))

    def _close(self, stage, start):
        cpu = time.process_time()  # before the barrier: the CPU of the work, not the wait
        if self.sync is not None:
            self.sync()
        wall = time.perf_counter()
        rss, hwm = current_memory_bytes(), peak_memory_bytes()
        peak = max(start.rss, rss, hwm if hwm > start.hwm else 0)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + wall - start.wall
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu - start.cpu
        self.peak_memory[stage] = max(self.peak_memory.get(stage, 0), peak)
        self.memory[stage] = rss
        self._mark = _Mark()

    # ------------------------------------------------------------------ reporting

    def total(self):
        """Wall time since the timer was created."""
        return time.perf_counter() - self._start

    def record(self):
        """This rank's stages as plain dicts (picklable; gather them for :meth:`table`)."""
        return {"seconds": dict(self.seconds), "cpu": dict(self.cpu),
                "peak_memory": dict(self.peak_memory), "total": self.total()}

    def table(self, per_rank=None, total=None):
        """Format the stages as a table (one line per stage, then ``other`` or the total).

        Parameters
        ----------
        per_rank : list, optional
            Every rank's :meth:`record` (or plain ``{stage: seconds}`` dicts): adds min /
            avg / max columns, the load imbalance (max / avg) and, with records, the largest
            peak memory of any rank per stage (MiB).
        total : float, optional
            Wall time of the run (default: since this timer was created).
        """
        total = self.total() if total is None else float(total)
        if per_rank is None:
            return _serial_table(self, total)
        return _ranks_table([_as_record(r) for r in per_rank], total)


def _as_record(r):
    return r if isinstance(r.get("seconds"), dict) else {"seconds": dict(r)}


def _pct(sec, total):
    return f"{100 * sec / max(total, 1e-12):>8.1f}%"


def _mib(nbytes):
    return f"{nbytes / _MIB:>13.1f}" if nbytes else f"{'-':>13}"


def _serial_table(t, total):
    lines = [f"{'stage':<16}{'time (s)':>10}{'%total':>9}{'cpu (s)':>10}{'peak MiB':>13}"]
    for stage, sec in t.seconds.items():
        lines.append(f"{stage:<16}{sec:>10.3f}{_pct(sec, total)}{t.cpu.get(stage, 0.0):>10.3f}"
                     f"{_mib(t.peak_memory.get(stage, 0))}")
    other = max(total - sum(t.seconds.values()), 0.0)
    lines.append(f"{'other':<16}{other:>10.3f}{_pct(other, total)}")
    lines.append(f"{'total wall':<16}{total:>10.3f}")
    return "\n".join(lines)


def _ranks_table(records, total):
    stages = list(dict.fromkeys(s for r in records for s in r["seconds"]))
    lines = [f"{'stage':<16}{'min (s)':>10}{'avg (s)':>10}{'max (s)':>10}"
             f"{'%total':>9}{'max/avg':>9}{'max peak MiB':>13}"]
    for stage in stages:
        v = [r["seconds"].get(stage, 0.0) for r in records]
        avg = sum(v) / len(v)
        peak = max(r.get("peak_memory", {}).get(stage, 0) for r in records)
        lines.append(f"{stage:<16}{min(v):>10.3f}{avg:>10.3f}{max(v):>10.3f}{_pct(avg, total)}"
                     f"{(max(v) / avg if avg > 0 else 1.0):>9.2f}{_mib(peak)}")
    lines.append(f"{'total wall':<16}{total:>10.3f}")
    return "\n".join(lines)
