#!/usr/bin/env bash
# The HDF5 and campaign tests with parallel HDF5 (h5py built with MPI: the `mpio` writer)
# in .venv-phdf5 (bash scripts/setup_phdf5.sh), serially and under Debian's Open MPI
# `mpirun -n 1, 2, 3` (oversubscribed on small machines).  Each MPI test writes files
# with both back ends (mpio and gather) and compares them with a serial write: files of
# every rank count and both paths hold the same data.  Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${QUESTS_HPC_PHDF5_VENV:-.venv-phdf5}
PY=$VENV/bin/python
[ -x "$PY" ] || { echo "run_tests_phdf5: no $VENV; run: bash scripts/setup_phdf5.sh" >&2; exit 2; }
"$PY" -c 'import h5py, sys; sys.exit(0 if h5py.get_config().mpi else 1)' \
    || { echo "run_tests_phdf5: h5py in $VENV has no MPI" >&2; exit 2; }
MPIRUN=${QUESTS_HPC_MPIRUN:-/usr/bin/mpirun}   # Debian's Open MPI, matching the h5py build
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 QUESTS_HPC_NUM_THREADS=1
# Open MPI in containers: no shared-memory segment warnings, TCP/self/vader only
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none
TESTS="tests/results tests/campaign"

status=0
echo "=== phdf5 serial: pytest $TESTS"
timeout 900 "$PY" -m pytest -q --color=no -p no:cacheprovider "$@" $TESTS || status=1
for n in ${QUESTS_HPC_TEST_RANKS:-1 2 3}; do
    echo "=== phdf5 MPI: $MPIRUN -n $n pytest --with-mpi -m mpi $TESTS"
    timeout 900 "$MPIRUN" --oversubscribe -n "$n" "$PY" -m pytest -q -rs --color=no -p no:cacheprovider \
        --with-mpi -m mpi "$@" $TESTS > ".phdf5-test-$n.log" 2>&1
    rc=$?
    grep -aE "[0-9]+ (passed|failed)|error" ".phdf5-test-$n.log" | sort | uniq -c | tail -n 5
    if grep -aq "h5py has no MPI" ".phdf5-test-$n.log"; then
        echo "mpio tests were skipped: h5py has no MPI"; status=1
    fi
    if [ $rc -ne 0 ]; then
        echo "phdf5 MPI run with $n ranks failed (exit $rc):"; tail -n 60 ".phdf5-test-$n.log"
        status=1
    fi
done
rm -f .phdf5-test-*.log

# Across builds: the pip h5py (.venv, gather back end, HDF5 2.x) and the MPI h5py (mpio,
# Debian HDF5 1.10) write the same data.
if [ -x .venv/bin/python ]; then
    echo "=== phdf5 vs pip h5py: files written by both builds"
    tmp=$(mktemp -d)
    .venv/bin/python tests/results/write_synthetic.py "$tmp/pip_gather.h5" gather \
        && timeout 300 "$MPIRUN" --oversubscribe -n 3 "$PY" tests/results/write_synthetic.py \
            "$tmp/phdf5_mpio_3.h5" mpio \
        && "$PY" tests/results/write_synthetic.py --compare "$tmp/pip_gather.h5" \
            "$tmp/phdf5_mpio_3.h5" || status=1
    rm -rf "$tmp"
fi
if [ $status -eq 0 ]; then echo "run_tests_phdf5: all passed"; else echo "run_tests_phdf5: FAILED"; fi
exit $status
