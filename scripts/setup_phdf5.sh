#!/usr/bin/env bash
# Set up .venv-phdf5: quests-hpc with an MPI-enabled h5py (parallel HDF5, the `mpio`
# writer) built from source against Debian's Open MPI and HDF5.  Idempotent: rerunning
# is a no-op when the venv already has an MPI h5py; the built h5py wheel is cached
# (QUESTS_HPC_WHEEL_CACHE, default ~/.cache/quests-hpc/phdf5-wheels) and reused while the Debian HDF5
# and Open MPI packages stay the same (about 3.5 minutes for the first build, seconds
# after that).
#
#   bash scripts/setup_phdf5.sh            # runtime + test tools
#   bash scripts/run_tests_phdf5.sh        # the HDF5 / campaign tests with mpio, n = 1, 2, 3
#
# Needs root (apt-get) or the packages below already installed:
#   libopenmpi-dev openmpi-bin libhdf5-openmpi-dev pkg-config gcc
# Use Debian's `mpirun` with this venv (not the MPICH `mpiexec` of .venv).
# Versions: pinned by constraints.txt as in scripts/setup.sh (h5py's version is part of the
# wheel cache key); the resolved versions are printed at the end.
# Recipe and pitfalls: ../shared/HPC-STACK.md ("Parallel HDF5").
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

VENV=${QUESTS_HPC_PHDF5_VENV:-.venv-phdf5}
CACHE=${QUESTS_HPC_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/quests-hpc/phdf5-wheels}
PY=${PYTHON:-python3}
PKGS="libopenmpi-dev openmpi-bin libhdf5-openmpi-dev pkg-config gcc"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'EOF' 2>/dev/null
import h5py, mpi4py, quests_hpc, pytest, pytest_mpi
assert h5py.get_config().mpi
EOF
then
    print_versions "$VENV/bin/python" "setup_phdf5: $VENV is ready"
    exit 0
fi

missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup_phdf5: missing Debian packages:$missing (run as root, or install them)" >&2
        exit 2
    fi
    echo "setup_phdf5: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
constraint_flags "$VENV/bin/python" || exit 2
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
# Build requirements named explicitly: build isolation would pin an old mpi4py that
# compiles from source and runs out of memory; the venv's setuptools 65 fails on
# project.license.
pip install "${cflags[@]}" mpi4py "numpy>=1.25,<3" "Cython>=3,<4" "pkgconfig>=1.5.5" "setuptools>=77.0.1" \
    packaging wheel

h5v=any
[ ${#cflags[@]} -eq 0 ] || h5v=$(sed -n 's/^h5py==//p' "${cflags[1]}" | head -n 1)
key="h5py-${h5v:-any}_$(dpkg-query -W -f='${Version}' libhdf5-openmpi-dev)_$(dpkg-query -W -f='${Version}' libopenmpi-dev)_$("$VENV/bin/python" -c 'import sys; print("py%d%d" % sys.version_info[:2])')"
wheels="$CACHE/$key"
if ! ls "$wheels"/h5py-*.whl >/dev/null 2>&1; then
    echo "setup_phdf5: building h5py with MPI against Debian HDF5 (key $key; ~3 min)"
    mkdir -p "$wheels"
    CC=mpicc HDF5_MPI=ON HDF5_PKGCONFIG_NAME=hdf5-openmpi \
        "$VENV/bin/python" -m pip --disable-pip-version-check -q wheel --no-cache-dir \
        --no-build-isolation --no-binary=h5py --no-deps "${cflags[@]}" -w "$wheels" h5py
else
    echo "setup_phdf5: reusing the cached wheel in $wheels"
fi
pip install --no-deps --force-reinstall "$wheels"/h5py-*.whl
pip install "${cflags[@]}" -e . "pytest>=8" "pytest-mpi>=0.6"
"$VENV/bin/python" -c 'import h5py, sys; sys.exit(0 if h5py.get_config().mpi else "setup_phdf5: h5py was installed without MPI")'
print_versions "$VENV/bin/python" "setup_phdf5: done"
