"""Wall-clock timing of named stages and an end-of-run summary table (like LAMMPS's)."""

import time
from contextlib import contextmanager


class StageTimer:
    """Accumulate wall time per named stage, in first-use order.

    Examples
    --------
    >>> t = StageTimer()
    >>> with t("descriptors"):
    ...     pass
    >>> print(t.table())  # doctest: +SKIP
    """

    def __init__(self):
        self.seconds = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, stage):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def total(self):
        """Wall time since the timer was created."""
        return time.perf_counter() - self._start

    def table(self, per_rank=None):
        """Format the stages as a table.

        Parameters
        ----------
        per_rank : list of dict, optional
            Stage seconds of every rank (e.g. gathered with MPI); adds min/avg/max
            columns and the load imbalance (max / avg).
        """
        total = self.total()
        lines = []
        if per_rank is None:
            lines.append(f"{'stage':<16}{'time (s)':>10}{'%total':>9}")
            for stage, sec in self.seconds.items():
                lines.append(f"{stage:<16}{sec:>10.3f}{100 * sec / max(total, 1e-12):>8.1f}%")
            other = max(total - sum(self.seconds.values()), 0.0)
            lines.append(f"{'other':<16}{other:>10.3f}{100 * other / max(total, 1e-12):>8.1f}%")
        else:
            stages = list(dict.fromkeys(s for r in per_rank for s in r))
            lines.append(f"{'stage':<16}{'min (s)':>10}{'avg (s)':>10}{'max (s)':>10}"
                         f"{'%total':>9}{'max/avg':>9}")
            for stage in stages:
                v = [r.get(stage, 0.0) for r in per_rank]
                avg = sum(v) / len(v)
                lines.append(f"{stage:<16}{min(v):>10.3f}{avg:>10.3f}{max(v):>10.3f}"
                             f"{100 * avg / max(total, 1e-12):>8.1f}%"
                             f"{(max(v) / avg if avg > 0 else 1.0):>9.2f}")
        lines.append(f"{'total wall':<16}{total:>10.3f}")
        return "\n".join(lines)
