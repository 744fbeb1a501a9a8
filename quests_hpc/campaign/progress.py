"""Feedback during long runs: progress lines and the end-of-run timing table (rank 0).

Progress lines read well in a batch log: one plain line per finished frame (frames
done / total, atoms per second, ETA), no carriage returns -- unless the output is a
terminal (or ``mode="tty"``), where one line is rewritten in place.

The timing table is LAMMPS-like (:class:`quests_hpc.timing.StageTimer`, the one stage
timer): wall seconds of every stage with min / avg / max over the ranks, the share of the
total, the load imbalance (max / avg) and the peak memory of each stage, plus the atom
imbalance of the domain decomposition.
"""

import sys
import time


def _hms(seconds):
    if seconds != seconds or seconds == float("inf"):  # NaN or inf
        return "--:--:--"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _rate(x):
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} "


class Progress:
    """Progress of a campaign on rank 0 (a no-op on other ranks).

    Parameters
    ----------
    total_frames, total_atoms : int
        Of the whole campaign.
    done_frames, done_atoms : int
        Already complete when the run starts (a resumed campaign).
    mode : {"auto", "lines", "tty", "off"}
    stream : file, optional
        Default ``sys.stdout``.
    active : bool
        False on ranks other than 0.
    """

    def __init__(self, total_frames, total_atoms, done_frames=0, done_atoms=0, mode="auto",
                 stream=None, active=True):
        self.stream = stream or sys.stdout
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", lambda: False)
            mode = "tty" if isatty() else "lines"
        self.mode = mode if active else "off"
        self.total_frames, self.total_atoms = int(total_frames), int(total_atoms)
        self.done_frames, self.done_atoms = int(done_frames), int(done_atoms)
        self.run_atoms = 0
        self.run_seconds = 0.0
        self._t0 = time.perf_counter()
        self._open_line = False

    def _emit(self, text):
        if self.mode == "off":
            return
        if self.mode == "tty":
            self.stream.write("\r" + text + "\033[K")
            self._open_line = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def frame_done(self, name, natoms, seconds):
        """Report a finished frame."""
        self.done_frames += 1
        self.done_atoms += int(natoms)
        self.run_atoms += int(natoms)
        self.run_seconds = time.perf_counter() - self._t0
        rate = self.run_atoms / self.run_seconds if self.run_seconds > 0 else float("nan")
        left = self.total_atoms - self.done_atoms
        eta = left / rate if rate and rate == rate and rate > 0 else float("nan")
        width = len(str(self.total_frames))
        self._emit(f"[{self.done_frames:>{width}}/{self.total_frames}] {name}: {natoms} atoms "
                   f"in {seconds:.2f} s | {_rate(rate)}atoms/s | "
                   f"{100 * self.done_atoms / max(self.total_atoms, 1):.1f}% of atoms | "
                   f"ETA {_hms(eta)}")

    def close(self):
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


def timing_table(per_rank, total, imbalance=None):
    """LAMMPS-style table of stage times and peak memory over ranks.

    Parameters
    ----------
    per_rank : list
        :meth:`quests_hpc.timing.StageTimer.record` of every rank.
    total : float
        Wall time of the run (rank 0).
    imbalance : list of float, optional
        Atom imbalance (max/mean owned atoms) of every frame.

    Returns
    -------
    str
    """
    from ..timing import StageTimer

    lines = [f"Stage times over {len(per_rank)} rank(s) (seconds; max/avg = load imbalance; "
             "peak resident memory of the busiest rank):",
             StageTimer().table(per_rank=per_rank, total=total)]
    if imbalance:
        mean = sum(imbalance) / len(imbalance)
        lines.append(f"atoms per rank, max/mean over the domain decomposition: mean "
                     f"{mean:.3f}, worst frame {max(imbalance):.3f}")
    return "\n".join(lines)
