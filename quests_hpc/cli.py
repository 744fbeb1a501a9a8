"""Command-line interface: ``quests-hpc <command> ...``.

Each sub-command lives in a small function that parses nothing itself: the argparse
parser below documents every option and its default (``quests-hpc <command> --help``).
User errors (:class:`~quests_hpc.errors.QuestsInputError`) print one clear line and exit
with status 2; any other exception prints its traceback and exits with status 1.
"""

import argparse
import sys

from . import __version__
from .errors import QuestsInputError

DESCRIPTION = """\
quests-hpc: QUESTS information entropy and model-free uncertainty (dH) for atomistic
structures -- per-atom novelty of environments against a reference (training) set,
dataset entropy and diversity.  Descriptors: k nearest neighbours within a cutoff
(SPEC: k=32, r_c=5.0 A); Gaussian kernel of bandwidth h=0.015 1/A.
"""


def _add_common(p):
    p.add_argument("-k", type=int, default=32, help="neighbours per environment (default: 32)")
    p.add_argument("--cutoff", type=float, default=5.0,
                   help="cutoff radius in Angstrom (default: 5.0)")
    p.add_argument("--bandwidth", type=float, nargs="+", default=[0.015], metavar="H",
                   help="kernel bandwidth(s) h in 1/Angstrom; several give one result "
                        "per bandwidth from one pass (default: 0.015)")
    p.add_argument("--threads", type=int, default=None,
                   help="Numba threads (default: QUESTS_HPC_NUM_THREADS, else all cores)")


def build_parser():
    """The ``quests-hpc`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="quests-hpc", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"quests-hpc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    ex = sub.add_parser(
        "example", help="run the bundled example: dH of a Cu slab against bulk FCC Cu",
        description="Compute descriptors and dH of the bundled test structure (a Cu slab "
                    "with a vacancy and an interstitial, periodic along x and y) against "
                    "the bundled reference (bulk FCC Cu with thermal-like displacements), "
                    "and print a summary and a timing table.")
    _add_common(ex)
    ex.set_defaults(func=_cmd_example)
    return parser


def _cmd_example(args):
    from .example import run_example

    run_example(k=args.k, cutoff=args.cutoff, bandwidths=args.bandwidth, threads=args.threads)
    return 0


def main(argv=None):
    """Entry point of the ``quests-hpc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except QuestsInputError as exc:
        print(f"quests-hpc: error: {exc}", file=sys.stderr)
        return 2
    return 0 if status is None else int(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
