"""``quests-hpc generations``: H, D and novelty of active-learning generations (the
paper's Fig. 2f), computed by :mod:`quests_hpc.dataset.generations`.

This module owns the command: its options, the checks of the output names before any
work, the printed table and the calls that write the report file and the picture
(:mod:`quests_hpc.dataset.generations_io`).  Runs serially or under MPI (the structures of
every generation are spread over the ranks); the numbers do not depend on the number of
ranks.
"""

import argparse
import math
import os
import time

from .. import cli
from ..campaign import fields as F
from ._options import descriptor_options, species_arg
from ..dataset import generations as G
from ..dataset import generations_io as GIO
from ..errors import QuestsInputError

ORDER = 40
PLOT_FORMATS = (".png", ".pdf", ".svg")

DESCRIPTION = """\
A data-set report across active-learning generations (the paper's Fig. 2f).

Each GEN is one generation: a file or a glob of files (LAMMPS text dumps or anything ASE
reads); every frame of every file is a structure of it.  For every generation g and
bandwidth h it prints (and writes with -o):

  structures and environments of g;
  H(g), D(g)   entropy and diversity of g's environments on their own;
  novel        the fraction of g's environments with dH > THRESHOLD against the union of
               generations 0..g-1, and their mean dH (dH(y|X) = -log sum_x K(y, x));
               none for generation 0;
  H(U), D(U)   entropy and diversity of the cumulative union of generations 0..g.

Under mpiexec the structures are spread over the ranks (each whole on one rank) and every
kernel sum is a ring pass over them: no rank holds all environments, and the numbers are
the serial ones (to the rounding of each environment's log-sum, ~1e-16).
"""


def add_parser(sub):
    """The ``generations`` sub-parser."""
    p = sub.add_parser(
        "generations", help="H, D and novelty of each active-learning generation against "
                            "the earlier ones (table, HDF5 report, picture)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generations", metavar="GEN", nargs="+",
                   help="one generation per argument, oldest first, at least 2: "
                        + cli.INPUT_HELP + " (required)")
    p.add_argument("-o", "--output", default=None, metavar="REPORT.h5",
                   help="also write the table as HDF5 (group /generations); never replaces "
                        "an existing file (default: none)")
    p.add_argument("--plot", default=None, metavar="FIG.png",
                   help="also draw H, D (per generation and of the union) and the novelty "
                        "bars for the first bandwidth; .png, .pdf or .svg; never replaces an "
                        "existing file (default: none)")
    descriptor_options(p)
    p.add_argument("--bandwidth", nargs="+", default=[0.015], metavar="H",
                   type=cli._checked(float, lambda v: F.bandwidths_field([v], {})[0]),
                   help="kernel bandwidth(s) h in 1/A, each in "
                        f"[{F.MIN_BANDWIDTH:g}, {F.MAX_BANDWIDTH:g}]; one table per "
                        "bandwidth from the same passes (default: 0.015)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="an environment is novel when dH > THRESHOLD (default: 0.0)")
    cli._exec(p)
    p.set_defaults(func=run, mpi=True)


def _check_args(args):
    """Problems with the options that need no file (the same on every rank)."""
    if len(args.generations) < 2:
        raise QuestsInputError(
            f"generations: give at least 2 generations, got {len(args.generations)} (for "
            "the entropy of one data set use `quests-hpc entropy`)")
    if not math.isfinite(args.threshold):
        raise QuestsInputError(f"--threshold must be a finite number, got {args.threshold}")
    if args.plot is not None and os.path.splitext(args.plot)[1].lower() not in PLOT_FORMATS:
        raise QuestsInputError(f"--plot {args.plot}: name a .png, .pdf or .svg file")


def run(args, comm):
    """Compute, print and write the report of ``quests-hpc generations`` (collective)."""
    t0 = time.perf_counter()
    _check_args(args)
    GIO.check_outputs(comm, [(args.output, "-o"), (args.plot, "--plot")], args.generations)
    cli._prepare(comm, args.threads)
    rows, datasets = G.generations_report(comm, args.generations, args.k, args.cutoff,
                                          args.bandwidth, args.threshold, species_arg(args),
                                          args.type_map)
    if comm.rank == 0:
        for line in G.report_lines(rows, args.bandwidth, args.threshold, args.k, args.cutoff):
            print(line, flush=True)
    meta = {"k": args.k, "cutoff": args.cutoff, "bandwidths": args.bandwidth,
            "threshold": args.threshold, "files": [list(dict.fromkeys(ds.files)) for ds in datasets]}
    written = GIO.write_outputs(comm, rows, meta, args.output, args.plot)
    if comm.rank == 0:
        for path in written:
            print(f"wrote {path}", flush=True)
        print(f"({time.perf_counter() - t0:.2f} s on {comm.size} rank(s))", flush=True)
    return 0
