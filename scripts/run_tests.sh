#!/usr/bin/env bash
# Run the whole test suite: serially, then the MPI-marked tests under mpiexec -n 2, 3, 4
# (oversubscribed on small machines).  Every MPI run is wrapped in `timeout` so a hang
# fails instead of eating the CI budget.  Extra arguments go to every pytest call.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run_tests: no .venv; run: bash scripts/setup.sh --test" >&2; exit 2; }
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# The launcher must match the MPI library mpi4py loads: the venv's (MPICH wheel) first.
if [ -x .venv/bin/mpiexec ]; then MPIEXEC=.venv/bin/mpiexec; else MPIEXEC=$(command -v mpiexec); fi
MPIFLAGS=()
if "$MPIEXEC" --version 2>&1 | grep -qi 'open mpi\|openrte\|prrte'; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe OMPI_MCA_rmaps_base_oversubscribe=1
    MPIFLAGS=(--oversubscribe)
fi

status=0
passed=0
failed=0
# Add the counts of one pytest summary line ("3 failed, 40 passed, 2 skipped in 9.1s").
count() {
    local line p f
    line=$(grep -aE '[0-9]+ (passed|failed|errors?|skipped|deselected).* in [0-9.]+s' "$1" | tail -n 1)
    p=$(printf '%s' "$line" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s' "$line" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
}

echo "=== serial: pytest tests"
timeout 2400 "$PY" -m pytest -q --color=no "$@" tests 2>&1 | tee .serial-test.log
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count .serial-test.log

for n in ${QUESTS_HPC_TEST_RANKS:-2 3 4}; do
    echo "=== MPI: $MPIEXEC -n $n pytest --with-mpi -m mpi"
    timeout 900 "$MPIEXEC" "${MPIFLAGS[@]}" -n "$n" "$PY" -m pytest -q --color=no --with-mpi -m mpi "$@" tests \
        > ".mpi-test-$n.log" 2>&1
    rc=$?
    # Every rank prints a summary; show rank output once, and the tail on failure.
    grep -aE '^[0-9]+ (passed|failed)|passed|failed|error' ".mpi-test-$n.log" | sort | uniq -c | tail -n 5
    if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then
        echo "MPI run with $n ranks failed (exit $rc):"; tail -n 60 ".mpi-test-$n.log"; status=1
        [ $rc -eq 124 ] && failed=$((failed + 1))  # a hang killed by timeout
    fi
    count ".mpi-test-$n.log"   # one rank's summary (every rank runs the same tests)
done
rm -f .mpi-test-*.log .serial-test.log

# Opt-in (CI sets it): the HDF5 tests again with an MPI-enabled h5py (the collective
# `mpio` writer) built against Debian's Open MPI + HDF5; needs root or those packages.
if [ "${QUESTS_HPC_PHDF5:-0}" = 1 ]; then
    echo "=== parallel HDF5 (mpio writer), Debian Open MPI"
    bash scripts/setup_phdf5.sh && bash scripts/run_tests_phdf5.sh || status=1
fi
[ $status -eq 0 ] || [ $failed -gt 0 ] || failed=1   # a failure pytest did not count
echo "run_tests: $passed passed, $failed failed"
exit $status
