"""The data-set commands of ``quests-hpc`` (compress, select, bandwidth, generations).

Each module of this package is one command: it defines ``ORDER`` (its place in
``quests-hpc --help``) and ``add_parser(sub)``, which adds its sub-parser to the
``argparse`` sub-parsers ``sub`` and sets ``func`` (``func(args, comm)`` under MPI, or
``func(args)`` with ``mpi=False``).  :func:`add_parsers` finds them all, so a new command
is a new module here and nothing else; :mod:`quests_hpc.cli` runs them like its own.
"""

import importlib
import pkgutil


def command_modules():
    """The command modules of this package, in their ``ORDER``."""
    mods = [importlib.import_module(f"{__name__}.{m.name}")
            for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (m.ORDER, m.__name__))


def add_parsers(sub):
    """Add the sub-parser of every command module to ``sub``."""
    for mod in command_modules():
        mod.add_parser(sub)
