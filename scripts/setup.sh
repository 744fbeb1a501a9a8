#!/usr/bin/env bash
# Set up the project virtual environment in .venv (idempotent; safe to rerun).
#
#   bash scripts/setup.sh          # runtime: quests-hpc + MPI + numerics
#   bash scripts/setup.sh --test   # also the test tools and the upstream quests oracle
#
# MPI: if the machine already has an MPI launcher on PATH (a cluster module, Debian's
# openmpi-bin, ...) the mpi4py wheel uses that MPI library at run time.  Otherwise the
# MPICH wheel from PyPI is installed into the venv, which brings .venv/bin/mpiexec.
# Force one or the other with QUESTS_HPC_MPI=pypi or QUESTS_HPC_MPI=system.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
extras=""
[ "${1:-}" = "--test" ] && extras="[test,plot]"
[ "${1:-}" = "--plot" ] && extras="[plot]"

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

mpi=${QUESTS_HPC_MPI:-auto}
if [ "$mpi" = auto ]; then
    if command -v mpiexec >/dev/null 2>&1 && [ "$(command -v mpiexec)" != "$PWD/.venv/bin/mpiexec" ]; then
        mpi=system
    else
        mpi=pypi
    fi
fi
if [ "$mpi" = pypi ]; then
    pip install "mpich>=4" "mpi4py>=4.0"
    echo "setup: MPI = MPICH wheel from PyPI (.venv/bin/mpiexec)"
else
    pip install "mpi4py>=4.0"
    echo "setup: MPI = the machine's own ($(command -v mpiexec))"
fi
pip install -e ".$extras"
echo "setup: done ($(.venv/bin/python -c 'import quests_hpc, numba, numpy; print("quests_hpc", quests_hpc.__version__, "numba", numba.__version__, "numpy", numpy.__version__)'))"
