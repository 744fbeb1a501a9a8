"""``quests-hpc select``: novel environments of big MD snapshots, carved for labelling.

The selection and the carving are :func:`quests_hpc.dataset.select.select_environments`;
this module is the command line.
"""

import time

ORDER = 20

DESCRIPTION = """\
Choose up to N novel atoms (dH > threshold) of the frames of a dH results file (written
by `quests-hpc dh` or a campaign) that are also novel to each other: msc_conditional over
single environments, conditioned on the reference set (coverage starts at exp(-dH), each
pick adds its kernel to every remaining candidate's coverage; ties to the lowest frame,
then atom id; the same choice on any number of ranks).  The candidates' descriptors are
recomputed from the input dump the results file names (or --input), checked to be the
same frame (atom count, ids, content hash).  Around each chosen atom a structure a DFT
code can label is carved: the sphere of radius R as a non-periodic cluster (in a cubic
cell with --vacuum around it), or with --box L the periodic cube of side L centred on it;
periodic images are included (several for a cell narrower than the region).  The centre
is the first atom, marked by the column quests_centre; info holds quests_frame (frame
number in the input), quests_id, quests_dh, quests_novelty.  Written as extxyz, never
over an existing file.  Runs under mpiexec without gathering a frame."""


def add_parser(sub):
    """The ``select`` sub-parser."""
    from ..cli import SEL_HELP

    p = sub.add_parser("select", help="choose novel environments of a results file and "
                       "carve them into structures for labelling (extxyz)",
                       description=DESCRIPTION)
    p.add_argument("results", metavar="RESULTS.h5", help="a dH results file")
    p.add_argument("--max", type=int, required=True, metavar="N",
                   help="at most N environments (>= 1; required)")
    p.add_argument("--radius", type=float, default=None, metavar="R",
                   help="cluster radius in Angstrom, >= the descriptor cutoff of the results "
                        "file (required unless --box)")
    p.add_argument("--box", type=float, default=None, metavar="L",
                   help="carve periodic cubic boxes of side L Angstrom (> 2 x cutoff) "
                        "instead of clusters (default: clusters)")
    p.add_argument("-o", "--output", required=True, metavar="PICKS.extxyz",
                   help="the carved structures (extxyz; must not exist; required)")
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help="candidates and picks need dH / novelty > T (default: the results "
                        "file's threshold)")
    p.add_argument("--frames", default="all", metavar="SEL",
                   help="frames of the results file, by position among its complete frames: "
                        + SEL_HELP + " (default: all)")
    p.add_argument("--input", default=None, metavar="DUMP",
                   help="the input the results were computed from, if it moved (default: "
                        "the path recorded in the results file)")
    p.add_argument("--bandwidth", type=float, default=None, metavar="H",
                   help="one of the results file's bandwidths (default: its first)")
    p.add_argument("--elements", nargs="+", default=None, metavar="EL",
                   help="element of each atom type, in type order (default: the atomic "
                        "numbers of an ASE input, else X)")
    p.add_argument("--vacuum", type=float, default=6.0, metavar="V",
                   help="empty space around a cluster in its cell, Angstrom (default: 6.0)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="Numba threads per MPI rank (default: cores / ranks per node)")
    p.set_defaults(func=run, mpi=True)


def run(args, comm):
    """Run ``quests-hpc select`` (collective)."""
    from ..cli import _prepare
    from ..dataset.select import select_environments
    from ._summary import print_summary

    t0 = time.perf_counter()
    _prepare(comm, args.threads)
    select_environments(comm, args.results, args.max, args.radius, args.output,
                        threshold=args.threshold, box=args.box, frames=args.frames,
                        input_path=args.input, bandwidth=args.bandwidth,
                        elements=args.elements, vacuum=args.vacuum,
                        out=lambda t: print(t, flush=True))
    print_summary(comm, t0)
    return 0
