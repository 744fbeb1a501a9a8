#!/usr/bin/env bash
# Run the whole test suite: serially, then the MPI-marked tests under mpiexec -n 2, 3, 4
# (oversubscribed on small machines).  Every run has a time limit that ends the launcher
# and every rank (scripts/lib.sh: run_limited), so a hang fails instead of eating the
# CI budget.  Extra arguments go to every pytest call.  The venv is .venv, or
# QUESTS_HPC_VENV (as for scripts/setup.sh); QUESTS_HPC_TEST_RANKS overrides "2 3 4".
# The last line is "run_tests: N passed, M failed" over every run.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
VENV=${QUESTS_HPC_VENV:-.venv}
PY=$VENV/bin/python
[ -x "$PY" ] || { echo "run_tests: no $VENV; run: bash scripts/setup.sh --test" >&2; exit 2; }
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# The launcher must match the MPI library mpi4py loads: the venv's (MPICH wheel, or the
# wrapper setup.sh wrote for the machine's MPI).
if [ -x "$VENV/bin/mpiexec" ]; then MPIEXEC=$VENV/bin/mpiexec; else MPIEXEC=$(command -v mpiexec); fi
MPIFLAGS=()
if "$MPIEXEC" --version 2>&1 | grep -qi 'open mpi\|openrte\|prrte'; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe OMPI_MCA_rmaps_base_oversubscribe=1
    MPIFLAGS=(--oversubscribe)
fi
echo "run_tests: $("$PY" --version), launcher $MPIEXEC ($("$MPIEXEC" --version 2>&1 | grep -m1 -iE 'version|open mpi' | tr -s ' '))"

status=0
passed=0
failed=0
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

echo "=== serial: pytest tests"
t0=$SECONDS
run_limited 2400 "$PY" -m pytest -q --color=no "$@" tests 2>&1 | tee "$logs/serial.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_pytest "$logs/serial.log"
echo "=== serial: $((SECONDS - t0)) s"

for n in ${QUESTS_HPC_TEST_RANKS:-2 3 4}; do
    echo "=== MPI: $MPIEXEC -n $n pytest --with-mpi -m mpi"
    t0=$SECONDS
    log="$logs/mpi-$n.log"
    run_limited 900 "$MPIEXEC" "${MPIFLAGS[@]}" -n "$n" "$PY" -m pytest -q --color=no --with-mpi -m mpi \
        "$@" tests > "$log" 2>&1
    rc=$?
    # Every rank prints a summary; show rank output once, and the tail on failure.
    grep -aE '^[0-9]+ (passed|failed)|passed|failed|error' "$log" | sort | uniq -c | tail -n 5
    if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then
        echo "MPI run with $n ranks failed (exit $rc):"; tail -n 60 "$log"; status=1
        [ $rc -eq 124 ] && failed=$((failed + 1))  # a hang ended by the time limit
    fi
    count_pytest "$log"   # one rank's summary (every rank runs the same tests)
    echo "=== MPI -n $n: $((SECONDS - t0)) s"
done

# Opt-in: the HDF5 tests again with an MPI-enabled h5py (the collective `mpio` writer)
# built against Debian's Open MPI + HDF5; needs root or those packages.
if [ "${QUESTS_HPC_PHDF5:-0}" = 1 ]; then
    echo "=== parallel HDF5 (mpio writer), Debian Open MPI"
    if bash scripts/setup_phdf5.sh; then
        bash scripts/run_tests_phdf5.sh 2>&1 | tee "$logs/phdf5.log"
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
        count_closing "$logs/phdf5.log" run_tests_phdf5
    else
        status=1
    fi
fi
[ $status -eq 0 ] || [ $failed -gt 0 ] || failed=1   # a failure pytest did not count
echo "run_tests: $passed passed, $failed failed"
exit $status
