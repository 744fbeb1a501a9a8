#!/usr/bin/env bash
# The HDF5 and campaign tests with parallel HDF5 (h5py built with MPI: the `mpio` writer)
# in .venv-phdf5 (bash scripts/setup_phdf5.sh), serially and under Debian's Open MPI
# `mpirun -n 1, 2, 3` (oversubscribed on small machines).  Each MPI test writes files
# with both back ends (mpio and gather) and compares them with a serial write: files of
# every rank count and both paths hold the same data.  Extra arguments go to pytest.
# The last line is "run_tests_phdf5: N passed, M failed" over every run.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
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
passed=0
failed=0
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "run_tests_phdf5: $("$MPIRUN" --version 2>&1 | head -n 1); $("$PY" -c 'import h5py, numpy; print("h5py", h5py.__version__, "HDF5", h5py.version.hdf5_version, "numpy", numpy.__version__)')"
echo "=== phdf5 serial: pytest $TESTS"
t0=$SECONDS
run_limited 900 "$PY" -m pytest -q --color=no -p no:cacheprovider "$@" $TESTS 2>&1 | tee "$logs/serial.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_pytest "$logs/serial.log"
echo "=== phdf5 serial: $((SECONDS - t0)) s"
for n in ${QUESTS_HPC_TEST_RANKS:-1 2 3}; do
    echo "=== phdf5 MPI: $MPIRUN -n $n pytest --with-mpi -m mpi $TESTS"
    t0=$SECONDS
    log="$logs/mpi-$n.log"
    run_limited 900 "$MPIRUN" --oversubscribe -n "$n" "$PY" -m pytest -q -rs --color=no -p no:cacheprovider \
        --with-mpi -m mpi "$@" $TESTS > "$log" 2>&1
    rc=$?
    grep -aE "[0-9]+ (passed|failed)|error" "$log" | sort | uniq -c | tail -n 5
    if grep -aq "h5py has no MPI" "$log"; then
        echo "mpio tests were skipped: h5py has no MPI"; status=1
    fi
    if [ $rc -ne 0 ]; then
        echo "phdf5 MPI run with $n ranks failed (exit $rc):"; tail -n 60 "$log"
        status=1
        [ $rc -eq 124 ] && failed=$((failed + 1))  # a hang ended by the time limit
    fi
    count_pytest "$log"
    echo "=== phdf5 MPI -n $n: $((SECONDS - t0)) s"
done

# Across builds: the pip h5py (.venv, gather back end, HDF5 2.x) and the MPI h5py (mpio,
# Debian HDF5 1.10) write the same data.
# (the pip venv: QUESTS_HPC_VENV or .venv, when it exists; one more check counted)
PIPVENV=${QUESTS_HPC_VENV:-.venv}
if [ -x "$PIPVENV/bin/python" ]; then
    echo "=== phdf5 vs pip h5py: files written by both builds"
    tmp=$logs/cross
    mkdir -p "$tmp"
    if "$PIPVENV/bin/python" tests/results/write_synthetic.py "$tmp/pip_gather.h5" gather \
        && run_limited 300 "$MPIRUN" --oversubscribe -n 3 "$PY" tests/results/write_synthetic.py \
            "$tmp/phdf5_mpio_3.h5" mpio \
        && "$PY" tests/results/write_synthetic.py --compare "$tmp/pip_gather.h5" "$tmp/phdf5_mpio_3.h5"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); status=1
    fi
fi
[ $status -eq 0 ] || [ $failed -gt 0 ] || failed=1   # a failure pytest did not count
echo "run_tests_phdf5: $passed passed, $failed failed"
exit $status
