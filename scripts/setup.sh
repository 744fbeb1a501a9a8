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

# The choice is remembered per venv: switching MPI under an existing venv would pair
# mpi4py with the wrong launcher.
mpi=${QUESTS_HPC_MPI:-$(cat .venv/.quests-hpc-mpi 2>/dev/null || echo auto)}
if [ "$mpi" = auto ] && [ -x .venv/bin/mpichversion ]; then
    mpi=pypi  # this venv already has the MPICH wheel
fi
if [ "$mpi" = auto ]; then
    if command -v mpiexec >/dev/null 2>&1 && [ "$(command -v mpiexec)" != "$PWD/.venv/bin/mpiexec" ] \
        && ! grep -q "Written by scripts/setup.sh" "$(command -v mpiexec)" 2>/dev/null; then
        mpi=system
    else
        mpi=pypi
    fi
fi
echo "$mpi" > .venv/.quests-hpc-mpi
if [ "$mpi" = pypi ]; then
    pip install "mpich>=4" "mpi4py>=4.0"
    echo "setup: MPI = MPICH wheel from PyPI (.venv/bin/mpiexec)"
else
    sys_mpiexec=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$PWD/.venv/bin" | paste -sd:) \
        command -v mpiexec) || { echo "setup: QUESTS_HPC_MPI=system but no mpiexec on PATH" >&2; exit 2; }
    pip install "mpi4py>=4.0"
    # .venv/bin/mpiexec always exists, so the README's commands work with either MPI:
    # here it hands over to the machine's launcher (Open MPI refuses root without the
    # two variables below; they only matter when root runs it).
    cat > .venv/bin/mpiexec <<WRAP
#!/usr/bin/env bash
# Written by scripts/setup.sh: the machine's MPI launcher ($sys_mpiexec).
if [ "\$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
exec "$sys_mpiexec" "\$@"
WRAP
    chmod +x .venv/bin/mpiexec
    echo "setup: MPI = the machine's own ($sys_mpiexec; .venv/bin/mpiexec hands over to it)"
fi
pip install -e ".$extras"
echo "setup: done ($(.venv/bin/python -c 'import quests_hpc, numba, numpy; print("quests_hpc", quests_hpc.__version__, "numba", numba.__version__, "numpy", numpy.__version__)'))"
