#!/bin/bash
# quests-hpc on MANY nodes with Slurm:  sbatch jobs/slurm_multi_node.sh campaign.yaml
#
# Each frame is split in space over all ranks; the reference lives once per node (MPI-3
# shared memory) unless it exceeds run.reference_memory_gb, then it is sharded over the
# ranks and passed around a ring.  Scale the node count with the atoms per frame: keep at
# least ~20,000 atoms per rank so the halo (ghost atoms within r_c) stays small.
#SBATCH --job-name=quests-hpc
#SBATCH --nodes=16
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=06:00:00
#SBATCH --output=quests-hpc-%j.log
#SBATCH --requeue

# Lustre: stripe the output directory before the first run.  Parallel HDF5 (mpio back
# end, the default when h5py has MPI) writes one slab per rank into one file: use many
# stripes (-c -1, or ~ the number of nodes, at most the OST count) and 4-16 MiB stripes;
# output.chunk_mb (default 64) bounds each collective write piece.
#   lfs setstripe -c -1 -S 16M results/
# Avoid many small files and `ls -l` storms in that directory during the run.
set -euo pipefail
CAMPAIGN=${1:-campaign.yaml}

source "${QUESTS_HPC_VENV:-$HOME/quests-hpc/.venv}/bin/activate"
export QUESTS_HPC_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export NUMBA_NUM_THREADS=$QUESTS_HPC_NUM_THREADS
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONUNBUFFERED=1
# Numba's compile cache (by default beside the installed package, on the shared file
# system): quests-hpc lets rank 0 compile or load it first, then one rank per node, then
# the rest, so it is never compiled N times.  A node-local cache directory spares the
# shared metadata server but costs one compile per node and job (tens of seconds):
# export NUMBA_CACHE_DIR=${TMPDIR:-/tmp}/numba-cache   # optional, see above

srun --cpu-bind=cores quests-hpc run "$CAMPAIGN"
# Chain a follow-up job that resumes if this one hits the time limit:
#   sbatch --dependency=afterany:$SLURM_JOB_ID jobs/slurm_multi_node.sh "$CAMPAIGN"
