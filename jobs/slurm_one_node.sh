#!/bin/bash
# quests-hpc on ONE node with Slurm:  sbatch jobs/slurm_one_node.sh campaign.yaml
#
# Ranks x threads: one MPI rank per NUMA domain (or per socket) with the node's cores
# shared out as Numba threads usually beats one rank per core (fewer ghost atoms, one
# reference copy per node anyway).  Example for a 2 x 64-core node: 8 ranks x 16 threads.
#SBATCH --job-name=quests-hpc
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=02:00:00
#SBATCH --output=quests-hpc-%j.log
# Killed at the time limit or requeued: finished frames are safe on disk and the
# rerun resumes where it stopped (finished frames are skipped).
#SBATCH --requeue

# Lustre: stripe the OUTPUT DIRECTORY once, before the first run, so the one shared HDF5
# file is spread over several OSTs.  With parallel HDF5 (output.backend: mpio) every rank
# writes its own slab: stripe widely (-c -1 = all OSTs, or about the number of nodes) with
# a large stripe size; with the gather back end only rank 0 writes: 4-8 stripes suffice.
#   lfs setstripe -c 8 -S 4M results/        # check with: lfs getstripe results/
# Input dumps are only read (by every rank, each its byte range): stripe the directory
# the simulation writes them to the same way for fast parallel reads.
set -euo pipefail
CAMPAIGN=${1:-campaign.yaml}

# Environment: a venv made with `QUESTS_HPC_MPI=system bash scripts/setup.sh` on the
# cluster, so mpi4py uses the cluster's MPI (the one srun launches).
# module load openmpi   # or your site's MPI module
source "${QUESTS_HPC_VENV:-$HOME/quests-hpc/.venv}/bin/activate"

export QUESTS_HPC_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}   # Numba threads per rank
export NUMBA_NUM_THREADS=$QUESTS_HPC_NUM_THREADS
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONUNBUFFERED=1                                 # progress lines reach the log now

srun --cpu-bind=cores quests-hpc run "$CAMPAIGN"
