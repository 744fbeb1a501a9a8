#!/bin/bash
# quests-hpc on MANY nodes with PBS Pro / OpenPBS:
#   qsub -v CAMPAIGN=campaign.yaml jobs/pbs_multi_node.sh
#PBS -N quests-hpc
#PBS -l select=16:ncpus=128:mpiprocs=8:ompthreads=16
#PBS -l place=scatter:excl
#PBS -l walltime=06:00:00
#PBS -j oe
#PBS -r y

# Lustre: stripe the output directory widely before the first run (parallel HDF5 writes
# one slab per rank into one shared file):
#   lfs setstripe -c -1 -S 16M results/
set -euo pipefail
cd "$PBS_O_WORKDIR"
CAMPAIGN=${CAMPAIGN:-campaign.yaml}

source "${QUESTS_HPC_VENV:-$HOME/quests-hpc/.venv}/bin/activate"
export QUESTS_HPC_NUM_THREADS=${OMP_NUM_THREADS:-16}
export NUMBA_NUM_THREADS=$QUESTS_HPC_NUM_THREADS
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONUNBUFFERED=1
# Numba's compile cache (by default beside the installed package, on the shared file
# system): quests-hpc lets rank 0 compile or load it first, then one rank per node, then
# the rest, so it is never compiled N times.  A node-local cache directory spares the
# shared metadata server but costs one compile per node and job (tens of seconds):
# export NUMBA_CACHE_DIR=${TMPDIR:-/tmp}/numba-cache   # optional, see above

NRANKS=$(wc -l < "$PBS_NODEFILE")
# PBS Pro's mpiexec (or the MPI's own, with -hostfile "$PBS_NODEFILE"):
mpiexec -n "$NRANKS" quests-hpc run "$CAMPAIGN"
# Rerunning the same command (a new job) resumes: finished frames are skipped.
