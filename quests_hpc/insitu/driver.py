"""``quests-hpc monitor``: run a LAMMPS input script with a :class:`Monitor` attached.

The script's commands go to LAMMPS one at a time; the monitor is attached just before
the first ``run`` / ``minimize`` (when the box, the atoms and the potential exist).  A
stop on extrapolation ends that run after the step that crossed the threshold; the
script's remaining commands are then skipped, the triggering configuration is written
(extxyz, every atom with its dH) and the record is published.
"""

import time

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from .input_script import RUNS, read_commands
from .monitor import Monitor, import_lammps
from .record import MonitorRecord


def lammps_cell(lmp):
    """``(cell, pbc, origin)`` of LAMMPS's box: rows are the cell vectors."""
    box = lmp.extract_box()  # boxlo, boxhi, xy, yz, xz, periodicity, box_change
    lo, hi = np.asarray(box[0], dtype=np.float64), np.asarray(box[1], dtype=np.float64)
    xy, yz, xz = box[2], box[3], box[4]
    cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
    return cell, np.asarray(box[5], dtype=bool), lo


def _stop_writer(comm, lmp, script, trigger, picks, elements):
    """``on_step`` part that writes the triggering configuration (extxyz, every atom with
    its dH) and the carved picks ``picks = (path, max, radius)`` (collective)."""
    def write(monitor, state):
        from ..export import export_frame
        from .picks import write_picks

        cell, pbc, lo = lammps_cell(lmp)
        if trigger:
            export_frame(trigger, state["ids"], state["positions"], cell, pbc, comm=comm,
                         columns={"dH": state["dh"]}, types=state["types"],
                         elements=elements, timestep=state["step"], origin=lo,
                         decimals={"position": 10, "dH": 10})
        if picks:
            state["n_picks"] = write_picks(comm, monitor, state, picks[0], picks[1],
                                           picks[2], cell, pbc, elements, script)
    return write


def run_script(comm, script, reference, params, *, every, record=None, trigger=None,
               picks=None, stop_fraction=None, stop_max_dh=None, skin=None, elements=None,
               out=print, lammps_args=("-log", "none", "-screen", "none")):
    """Run ``script`` under LAMMPS on ``comm`` with dH every ``every`` steps (collective).

    ``params`` holds ``k``, ``cutoff``, ``bandwidth``, ``threshold``; ``picks`` is
    ``(path, max_picks, radius)`` of the carved environments at a stop.  Returns the
    :class:`Monitor` (its ``steps``, ``stopped``, ``seconds``).
    """
    commands = read_commands(script)
    lammps = import_lammps()
    lmp = lammps.lammps(comm=comm, cmdargs=list(lammps_args))
    rec = MonitorRecord(comm, record, dict(params, every=int(every), input=str(script)))
    writer = (_stop_writer(comm, lmp, script, trigger, picks, elements)
              if trigger or picks else None)

    def on_step(monitor, state):
        rec.add(state, params["threshold"])
        if comm.rank == 0:
            out(f"monitor: step {state['step']}: {state['n_novel']} of {state['n_atoms']} "
                f"atoms novel ({100 * state['novel_fraction']:.2f} %), max dH "
                f"{state['max_dh']:.4g} (atom {state['max_id']})")
        if state.get("stop") and writer is not None:
            writer(monitor, state)
            if comm.rank == 0 and picks:
                out(f"monitor: {state['n_picks']} novel environment(s) carved into {picks[0]}")

    mon = Monitor(lmp, reference, comm, k=params["k"], cutoff=params["cutoff"],
                  bandwidth=params["bandwidth"], threshold=params["threshold"], every=every,
                  stop_fraction=stop_fraction, stop_max_dh=stop_max_dh, skin=skin,
                  on_step=on_step)
    t0 = time.perf_counter()
    try:
        _commands(comm, lmp, mon, script, commands, out)
    finally:
        md = time.perf_counter() - t0
        lmp.close()
    rec.write(mon.stopped)
    _summary(comm, mon, md, out)
    return mon


def _commands(comm, lmp, mon, script, commands, out):
    attached = False
    for i, (line, cmd) in enumerate(commands):
        if not attached and cmd.split()[0] in RUNS:
            mon.attach()
            attached = True
            if comm.rank == 0:
                out(f"monitor: attached before line {line}; ghost cutoff at least "
                    f"r_c + skin = {mon.ghost_cutoff():g} (comm_modify cutoff); dH every "
                    f"{mon.every} steps into d_quests_dh")
        try:
            lmp.command(cmd)
        except Exception as exc:  # noqa: BLE001 (LAMMPS raises plain Exception)
            mon.check()  # the monitor's own error first
            raise QuestsInputError(f"{script}: line {line}: LAMMPS: "
                                   f"{str(exc).splitlines()[0]}") from None
        mon.check()
        if not attached and lmp.extract_setting("box_exist"):
            mon.define_property()  # d_quests_dh can be named in dumps and variables
        if mon.stopped is not None:
            if comm.rank == 0:
                out(f"monitor: stopped on extrapolation at step {mon.stopped}; "
                    f"{len(commands) - i - 1} remaining command(s) skipped")
            return


def _summary(comm, mon, md, out):
    sec = float(pcomm.allreduce(np.array([mon.seconds]), "max", comm)[0])
    if comm.rank == 0:
        n = len(mon.steps)
        out(f"monitor: {n} monitored step(s); {sec:.2f} s in the monitor of {md:.2f} s "
            f"(LAMMPS + monitor) on {comm.size} rank(s); "
            f"{sec / max(n, 1):.3f} s per monitored step")
