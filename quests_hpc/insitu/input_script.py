"""A LAMMPS input script as a list of commands (for :func:`~quests_hpc.insitu.driver.run_script`).

Lines ending in ``&`` continue on the next; ``#`` starts a comment outside quotes; blank
lines go.  ``jump``, ``label`` and ``next`` are refused: the driver hands LAMMPS one
command at a time, so input loops cannot work (drive LAMMPS from Python instead).
"""

from ..errors import QuestsInputError

UNSUPPORTED = ("jump", "label", "next")
RUNS = ("run", "minimize", "rerun")


def _strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def read_commands(path):
    """``[(line_number, command)]`` of the input script ``path``."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise QuestsInputError(f"{path}: cannot read the LAMMPS input ({exc.strerror})") from None
    out, pending, start = [], "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = n
        if line.endswith("&"):
            pending += line[:-1] + " "
            continue
        cmd = _strip_comment(pending + line).strip()
        pending = ""
        if not cmd:
            continue
        word = cmd.split()[0]
        if word in UNSUPPORTED:
            raise QuestsInputError(f"{path}: line {start}: `{word}` is not supported by "
                                   "quests-hpc monitor (it runs the script one command at "
                                   "a time); unroll the loop or drive LAMMPS from Python "
                                   "with quests_hpc.insitu.Monitor")
        out.append((start, cmd))
    if pending:
        raise QuestsInputError(f"{path}: line {start}: the last command ends with `&`")
    if not any(c.split()[0] in RUNS for _, c in out):
        raise QuestsInputError(f"{path}: no `run` command: nothing to monitor")
    return out
