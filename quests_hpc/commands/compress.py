"""``quests-hpc compress``: choose a subset of a data set (upstream's compression methods,
distributed; the methods are :mod:`quests_hpc.dataset.compress`).

This module owns the command: its options and the printed timing.  The work is
:func:`quests_hpc.dataset.compress_run.run_compression`.  Runs serially or under MPI; the
choice does not depend on the number of ranks.
"""

import argparse
import time

from .. import cli
from ..campaign import fields as F
from ._options import descriptor_options, species_arg
from ._summary import print_summary
from ..dataset.compress import METHODS
from ..dataset.compress_run import run_compression

ORDER = 10

DESCRIPTION = """\
Choose SIZE structures of a data set: the structures that keep most of its information
(upstream quests' compression methods).  Every frame of every DATASET file is a structure.

Methods (SPEC.md "Dataset compression and selection"):
  msc              (default) start at the structure of largest entropy H_s, then add the
                   structure of largest novelty + H_s, its novelty being -log of the
                   kernel sum of its least covered environment against the chosen ones
  msc_conditional  the same against --reference + the chosen ones, with no first pick by
                   entropy: what complements an existing training set (--reference sets it)
  fps              farthest point sampling of structures (mean environment distance)
  mean_fps         farthest point sampling of mean descriptors, from --start
  k_means          k-means (k = SIZE, seeded) of mean descriptors, one structure per cluster
  random           a seeded random subset
Ties go to the lowest structure index.  Under mpiexec the structures are spread over the
ranks, each whole on one rank; every step moves only the chosen structure's
environments, and the choice is the same for any number of ranks.

Outputs (each a new file; an existing one is never replaced):
  OUT.extxyz       the chosen structures in choice order; info: quests_index (index in the
                   data set), quests_file, quests_frame, quests_entropy (H_s),
                   quests_novelty (at the moment it was chosen; inf for a first pick)
  --report         HDF5 (group /compression): the choice and the report (H, D, overlap of
                   the whole set with the subset, structures and environments kept) and
                   the curve, H and D of the first m chosen against m
  --plot           the compression curve as a picture
"""


def add_parser(sub):
    """The ``compress`` sub-parser."""
    p = sub.add_parser(
        "compress", help="choose the structures of a data set that keep most of its "
                         "information (msc, fps, k-means, ...)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", metavar="DATASET", nargs="+",
                   help="files or globs of structures: " + cli.INPUT_HELP)
    p.add_argument("-o", "--output", required=True, metavar="OUT.extxyz",
                   help="the chosen structures, extxyz (required; never replaces a file)")
    p.add_argument("-m", "--method", choices=METHODS, default=None,
                   help="compression method (default: msc, or msc_conditional with "
                        "--reference)")
    p.add_argument("-s", "--size", default="0.5", metavar="N|FRACTION",
                   help="structures to keep: a number >= 1, or a fraction in (0, 1) of the "
                        "data set, rounded (default: 0.5)")
    p.add_argument("-r", "--reference", default=None, metavar="REF",
                   help="an existing training set to complement (structures, or a "
                        "descriptor file of `quests-hpc descriptors` with the same -k and "
                        "--cutoff): selects msc_conditional (default: none)")
    p.add_argument("--report", default=None, metavar="REPORT.h5",
                   help="HDF5 report; 'none' for no file (default: OUT.h5)")
    p.add_argument("--plot", default=None, metavar="CURVE.png",
                   help="compression curve picture (.png, .pdf, .svg); 'none' for no file "
                        "(default: OUT_curve.png)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of k_means and random (default: 0)")
    p.add_argument("--start", type=int, default=None, metavar="I",
                   help="first structure of mean_fps (default: the one of largest entropy)")
    descriptor_options(p)
    p.add_argument("--bandwidth", default=0.015, metavar="H",
                   type=cli._checked(float, lambda v: F.bandwidths_field([v], {})[0]),
                   help=f"kernel bandwidth h in 1/A, in [{F.MIN_BANDWIDTH:g}, "
                        f"{F.MAX_BANDWIDTH:g}] (default: 0.015)")
    cli._exec(p)
    p.set_defaults(func=run, mpi=True)


def run(args, comm):
    """Run ``quests-hpc compress`` (collective)."""
    t0 = time.perf_counter()
    method = args.method or ("msc_conditional" if args.reference else "msc")
    cli._prepare(comm, args.threads)
    _, _, seconds = run_compression(
        comm, args.dataset, args.output, method=method, size=args.size,
        reference=args.reference, report=args.report, plot=args.plot, k=args.k,
        cutoff=args.cutoff, h=args.bandwidth, seed=args.seed, start=args.start,
        log=lambda line: print(line, flush=True), species=species_arg(args),
        type_map=args.type_map)
    print_summary(comm, t0, seconds)
    return 0
