"""Write the synthetic results of ``helpers.py`` with every rank of MPI.COMM_WORLD.

    [mpirun -n N] python tests/results/write_synthetic.py OUT.h5 {gather|mpio}
    python tests/results/write_synthetic.py --compare A.h5 B.h5   # exit 1 on differences

Used by scripts/run_tests_phdf5.sh to compare files written by the pip h5py (gather,
HDF5 2.x) and by the MPI h5py (mpio, Debian's HDF5 1.10) across builds.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))


def main(argv):
    if argv[0] == "--compare":
        from quests_hpc.results import diff_results

        d = diff_results(argv[1], argv[2])
        print("\n".join(d) if d else f"identical data: {argv[1]} {argv[2]}")
        return 1 if d else 0
    import helpers
    from mpi4py import MPI

    helpers.write_all(argv[0], MPI.COMM_WORLD, backend=argv[1], chunk_bytes=1000)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
