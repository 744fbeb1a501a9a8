#!/bin/bash
# quests-hpc on ONE node with PBS Pro / OpenPBS:  qsub -v CAMPAIGN=campaign.yaml jobs/pbs_one_node.sh
#
# 8 MPI ranks x 16 Numba threads on a 128-core node (mpiprocs = ranks, ompthreads =
# threads per rank).
#PBS -N quests-hpc
#PBS -l select=1:ncpus=128:mpiprocs=8:ompthreads=16
#PBS -l walltime=02:00:00
#PBS -j oe
#PBS -r y

# Lustre: stripe the output directory once before the first run (see slurm_one_node.sh):
#   lfs setstripe -c 8 -S 4M results/
set -euo pipefail
cd "$PBS_O_WORKDIR"
CAMPAIGN=${CAMPAIGN:-campaign.yaml}

source "${QUESTS_HPC_VENV:-$HOME/quests-hpc/.venv}/bin/activate"
export QUESTS_HPC_NUM_THREADS=${OMP_NUM_THREADS:-16}   # PBS sets OMP_NUM_THREADS = ompthreads
export NUMBA_NUM_THREADS=$QUESTS_HPC_NUM_THREADS
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONUNBUFFERED=1

NRANKS=$(wc -l < "$PBS_NODEFILE")          # one line per MPI process (mpiprocs)
mpiexec -n "$NRANKS" quests-hpc run "$CAMPAIGN"
# Open MPI: add  --map-by ppr:8:node:PE=16 --bind-to core  to pin ranks and their threads.
