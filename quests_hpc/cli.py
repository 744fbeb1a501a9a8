"""Command-line interface: ``quests-hpc <command> ...``.

Commands (``quests-hpc <command> --help`` documents every option and its default):

``example``      the bundled example (serial, no MPI needed)
``run``          a YAML campaign (restartable; results in one HDF5 file)
``descriptors``  per-atom descriptors of the frames of a file -> HDF5
``dh``           per-atom dH of the frames of a file against a reference -> HDF5
``entropy``      entropy H and diversity D of a data set (printed)
``overlap``      overlap / novelty of a data set against a reference (printed)
``info``         describe a results file

Every command except ``example`` and ``info`` runs serially or under
``mpiexec -n N`` / ``srun`` / ``mpirun`` unchanged.  Exit status: 0 success, 2 bad input
(file, argument, campaign: one message listing every problem), 1 failure while running
(e.g. disk full: the message says so; finished frames stay intact), 130 interrupted.
Set ``QUESTS_HPC_TRACEBACK=1`` to get the Python traceback of any error.
Under MPI a failure on some ranks only ends every rank (``MPI_Abort``) within seconds.
"""

import argparse
import contextlib
import os
import sys
import traceback
import warnings

from ._version import __version__
from .errors import QuestsInputError

DESCRIPTION = """\
quests-hpc: QUESTS information entropy and model-free uncertainty (dH) for atomistic
structures -- per-atom novelty of environments against a reference (training) set,
dataset entropy and diversity.  Descriptors: k nearest neighbours within a cutoff
(SPEC: k=32, r_c=5.0 A); Gaussian kernel of bandwidth h=0.015 1/A.

Run any command except `example`, `info` and `plot` under MPI as is, e.g.
  mpiexec -n 64 quests-hpc run campaign.yaml
  srun quests-hpc dh dump.lammpstrj --reference train.xyz -o dh.h5
"""

INPUT_HELP = ("a LAMMPS text dump (plain, .gz, .bz2, .xz, .zst; a glob like "
              "'dump.*.lammpstrj' for a sequence) or any file ASE reads (extxyz, "
              "LAMMPS data, VASP, ...)")
SEL_HELP = ("frame selection: all, -1 (last), 0:10:2 (slice), 3,5,8 (list), "
            "t=1000:5000 (by timestep, both ends included)")
REF_HELP = ("reference (training) set: a LAMMPS dump, any file ASE reads, or a descriptor "
            "file (a results file written by `quests-hpc descriptors`)")

_CLI_NAMES = {
    "parameters.k": "-k", "parameters.cutoff": "--cutoff",
    "parameters.bandwidth": "--bandwidth", "parameters.threshold": "--threshold",
    "inputs[0].frames": "--frames", "inputs[0].path": "INPUT", "inputs[0]": "INPUT",
    "references[0].frames": "--reference-frames", "references[0].path": "--reference",
    "references[0]": "--reference", "output.path": "-o/--output", "run.threads": "--threads",
    "INPUT.path": "INPUT", "INPUT.frames": "--frames", "--reference.path": "--reference",
    "--reference.frames": "--reference-frames", "parameters.species": "--species",
    "inputs[0].type_map": "--type-map", "references[0].type_map": "--type-map",
    "INPUT.type_map": "--type-map", "--reference.type_map": "--type-map",
}


#: Memory per node (GB) the resource estimate plans with (quests_hpc.campaign.budget).
_BUDGET_ENV = "QUESTS_HPC_MEMORY_GB"

# ------------------------------------------------------------------------ options


def _checked(conv, check):
    """An argparse ``type``: ``conv`` then the campaign schema's checker ``check``."""
    from .campaign.fields import Bad

    def parse(text):
        try:
            return check(conv(text))
        except (Bad, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc) or f"invalid value {text!r}") from None
    return parse


def _params(p, bandwidth=True, threshold=False, strict=False):
    """-k, --cutoff, --bandwidth (and --threshold).  The campaign schema checks their ranges
    for every command that builds a campaign; ``strict`` checks them here (``example``)."""
    from .campaign import fields as F

    k_type, rc_type, h_type = int, float, float
    if strict:
        k_type = _checked(int, lambda v: F.int_field(1, F.MAX_K)(v, {}))
        rc_type = _checked(float, lambda v: F.cutoff_field(v, {}))
        h_type = _checked(float, lambda v: F.bandwidths_field([v], {})[0])
    p.add_argument("-k", type=k_type, default=32, metavar="K",
                   help=f"neighbours per environment, 1 to {F.MAX_K} (default: 32)")
    p.add_argument("--cutoff", type=rc_type, default=5.0, metavar="RC",
                   help=f"cutoff radius in Angstrom, 0 < RC <= {F.MAX_CUTOFF:g}: the descriptor "
                        "keeps the K nearest neighbours within RC, which lie within about 12 A "
                        "in a solid or liquid.  A frame whose atoms and periodic images within "
                        "RC would not fit in memory is refused before any work, with the "
                        f"estimate ({_BUDGET_ENV} sets the memory per node to plan with; "
                        "default: what the node has free) (default: 5.0)")
    if bandwidth:
        p.add_argument("--bandwidth", type=h_type, nargs="+", default=[0.015], metavar="H",
                       help="kernel bandwidth(s) h in 1/Angstrom, each in "
                            f"[{F.MIN_BANDWIDTH:g}, {F.MAX_BANDWIDTH:g}] (descriptor distances "
                            "are ~1e-3 to ~3 1/A); several give one result per bandwidth from "
                            "one pass (default: 0.015)")
        p.add_argument("--precision", choices=("float64", "float32"), default="float64",
                       help="arithmetic of the kernel sums.  float32 is about 2x faster, with "
                            "|dH32 - dH64| <= (d/2 + 6) 2^-24 (|y - mu| + R)^2 / (2 h^2) + 1e-4 "
                            "for every atom (d = 2K-1 descriptor values, mu the mean of the "
                            "reference, R its largest |x - mu|; about 1e-4 to 1e-2 at h = "
                            "0.015 for real environments; derivation in docs/precision.md); "
                            "finite also where every term underflows float32 "
                            "(default: float64)")
    if threshold:
        p.add_argument("--threshold", type=float, default=0.0,
                       help="an environment is novel when dH > THRESHOLD (default: 0.0)")
    if not strict:
        _species_options(p)


def _species_options(p):
    """--species and --type-map (docs/species.md)."""
    p.add_argument("--species", nargs="+", default=None, metavar="EL",
                   help="elements of the run, e.g. --species Ni Al: several give the "
                        "multi-element descriptor (plain descriptor of all neighbours, then "
                        "one per element over same-element neighbours: (2K-1)(n+1) values, "
                        "upstream's multicomponent layout); every atom's element must be "
                        "listed, and a reference must have the same species.  "
                        "`--species ignore` treats every atom alike (default: none, and "
                        "inputs naming several elements are refused)")
    p.add_argument("--type-map", default=None, metavar="MAP", type=_type_map_arg,
                   help="element of each LAMMPS atom type for dumps without an `element` "
                        "column: 1=Ni,2=Al or Ni,Al (type 1 first); applies to INPUT and "
                        "the reference (default: none)")


def _type_map_arg(text):
    """``1=Ni,2=Al`` -> {1: "Ni", 2: "Al"}; ``Ni,Al`` -> ["Ni", "Al"]."""
    items = [t for t in text.replace(" ", ",").split(",") if t]
    if items and all("=" in t for t in items):
        try:
            return {int(t.split("=", 1)[0]): t.split("=", 1)[1] for t in items}
        except ValueError:
            raise argparse.ArgumentTypeError(f"types must be integers: {text!r}") from None
    if any("=" in t for t in items) or not items:
        raise argparse.ArgumentTypeError(f"expected 1=Ni,2=Al or Ni,Al; got {text!r}")
    return items


def _species_value(args):
    sp = getattr(args, "species", None)
    return "ignore" if sp == ["ignore"] else sp


def _exec(p):
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="Numba threads per MPI rank (default: QUESTS_HPC_NUM_THREADS, else "
                        "cores on the node / ranks on the node, at least 1)")


def _outputs(p):
    p.add_argument("-o", "--output", required=True, metavar="OUT.h5",
                   help="results file (HDF5, layout in docs/results-layout.md); rerunning "
                        "the same command resumes an interrupted run (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT.h5 if it was written by a different command or "
                        "inputs; it is kept until the new results are complete (built in "
                        "OUT.h5.partial, then renamed over it); never an input or the "
                        "reference (default: refuse)")
    p.add_argument("--positions", action="store_true",
                   help="also store positions and types of every atom (default: off)")
    p.add_argument("--backend", choices=("auto", "mpio", "gather"), default="auto",
                   help="HDF5 writing: mpio (parallel HDF5, needs h5py with MPI), gather "
                        "(ranks send to rank 0 in bounded chunks) or auto = mpio when "
                        "available (default: auto)")
    p.add_argument("--progress", choices=("auto", "lines", "tty", "off"), default="auto",
                   help="progress output on rank 0: lines (one per frame, for batch logs), "
                        "tty (one updating line), off; auto = tty on a terminal else lines "
                        "(default: auto)")


def build_parser():
    """The ``quests-hpc`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="quests-hpc", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"quests-hpc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_parser_example, _parser_run, _parser_descriptors, _parser_dh, _parser_entropy,
                _parser_overlap, _parser_info, _parser_plot, _parser_clusters, _parser_export):
        add(sub)
    from .commands import add_parsers

    add_parsers(sub)  # the data-set commands: one module each in quests_hpc.commands
    return parser


def _parser_example(sub):
    """The ``example`` command."""
    ex = sub.add_parser(
        "example", help="run the bundled example: dH of a Cu slab against bulk FCC Cu",
        description="Compute descriptors and dH of the bundled test structure (a Cu slab "
                    "with a vacancy and an interstitial, periodic along x and y) against "
                    "the bundled reference (bulk FCC Cu with thermal-like displacements), "
                    "and print a summary and a timing table.")
    _params(ex, strict=True)
    ex.add_argument("--threads", type=int, default=None,
                    help="Numba threads (default: QUESTS_HPC_NUM_THREADS, else all cores)")
    ex.set_defaults(func=_cmd_example, mpi=False)


def _parser_run(sub):
    """The ``run`` command."""
    from .campaign.schema import schema_help

    fmt = argparse.RawDescriptionHelpFormatter
    run = sub.add_parser(
        "run", help="run (or resume) a YAML campaign", formatter_class=fmt,
        description="Run the campaign described by CAMPAIGN.yaml: every selected frame of "
                    "every input, dH against every reference, summaries, learning curve; "
                    "results in one HDF5 file.  Validated before any work starts (every "
                    "problem listed, exit status 2).  Rerunning the same campaign skips "
                    "finished frames; a campaign whose YAML or inputs changed is refused "
                    "unless --overwrite.  Relative paths in the YAML are relative to the "
                    "YAML file.",
        epilog="campaign keys (key: default  # meaning):\n  "
               + "\n  ".join(schema_help()) + "\n\nExamples: configs/*.yaml")
    run.add_argument("campaign", metavar="CAMPAIGN.yaml", help="the campaign file")
    run.add_argument("-o", "--output", default=None, metavar="OUT.h5",
                     help="results file, overriding output.path (default: from the YAML)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an output written by a different campaign; the old file "
                          "is kept until the new results are complete (default: "
                          "output.overwrite from the YAML, false)")
    run.add_argument("--backend", choices=("auto", "mpio", "gather"), default=None,
                     help="HDF5 writing back end, overriding output.backend (default: from "
                          "the YAML, auto)")
    run.add_argument("--threads", type=int, default=None, metavar="N",
                     help="Numba threads per rank, overriding run.threads (default: from "
                          "the YAML, else cores / ranks per node)")
    run.add_argument("--progress", choices=("auto", "lines", "tty", "off"), default=None,
                     help="progress output, overriding run.progress (default: auto)")
    run.add_argument("--check", action="store_true",
                     help="validate the campaign and the frame selections of its inputs, and stop (no "
                          "computation; default: run)")
    run.set_defaults(func=_cmd_run, mpi=True)


def _parser_descriptors(sub):
    """The ``descriptors`` command."""
    de = sub.add_parser(
        "descriptors", help="per-atom descriptors of the frames of a file -> HDF5",
        description="Compute the descriptor (length 2k-1; (2k-1)(n+1) with --species of n "
                    "elements) of every atom of the selected "
                    "frames and write them, sorted by atom id, to OUT.h5.  The file can "
                    "serve as a reference (--reference OUT.h5) for later runs.")
    de.add_argument("input", metavar="INPUT", help=INPUT_HELP)
    de.add_argument("--frames", default="all", metavar="SEL", help=SEL_HELP + " (default: all)")
    _params(de, bandwidth=False)
    _outputs(de)
    _exec(de)
    de.set_defaults(func=_cmd_descriptors, mpi=True)


def _parser_dh(sub):
    """The ``dh`` command."""
    dh = sub.add_parser(
        "dh", help="per-atom dH against a reference -> HDF5",
        description="Compute dH (differential entropy, nats) of every atom of the selected "
                    "frames of TEST against the reference set and write it, sorted by atom "
                    "id, to OUT.h5 with per-frame summaries (novelty fraction, mean/min/max "
                    "dH).  dH > 0: novel environment (extrapolation).")
    dh.add_argument("input", metavar="TEST", help=INPUT_HELP)
    dh.add_argument("--reference", required=True, metavar="REF", help=REF_HELP + " (required)")
    dh.add_argument("--frames", default="all", metavar="SEL", help=SEL_HELP + " (default: all)")
    dh.add_argument("--reference-frames", default="all", metavar="SEL",
                    help="frames of REF to use, same syntax (default: all)")
    _params(dh, threshold=True)
    dh.add_argument("--descriptors", action="store_true",
                    help="also store the descriptors (default: off)")
    dh.add_argument("--entropy", action="store_true",
                    help="also compute H and D of every frame (O(n^2); default: off)")
    _outputs(dh)
    _exec(dh)
    dh.set_defaults(func=_cmd_dh, mpi=True)


def _parser_entropy(sub):
    """The ``entropy`` command."""
    en = sub.add_parser(
        "entropy", help="entropy H and diversity D of a data set (printed)",
        description="Entropy H = -(1/n) sum log(S(X_i)/n) and diversity D of the data set "
                    "made of every environment of the selected frames (one data set, not "
                    "per frame), printed for each bandwidth.")
    en.add_argument("input", metavar="INPUT", help=INPUT_HELP)
    en.add_argument("--frames", default="all", metavar="SEL", help=SEL_HELP + " (default: all)")
    _params(en)
    _exec(en)
    en.set_defaults(func=_cmd_entropy, mpi=True)


def _parser_overlap(sub):
    """The ``overlap`` command."""
    ov = sub.add_parser(
        "overlap", help="overlap / novelty of a data set against a reference (printed)",
        description="Fraction of the environments of the selected frames of TEST covered "
                    "by the reference (overlap: dH <= threshold) and novel (novelty: dH > "
                    "threshold), for each bandwidth.")
    ov.add_argument("input", metavar="TEST", help=INPUT_HELP)
    ov.add_argument("--reference", required=True, metavar="REF", help=REF_HELP + " (required)")
    ov.add_argument("--frames", default="all", metavar="SEL", help=SEL_HELP + " (default: all)")
    ov.add_argument("--reference-frames", default="all", metavar="SEL",
                    help="frames of REF to use (default: all)")
    _params(ov, threshold=True)
    _exec(ov)
    ov.set_defaults(func=_cmd_overlap, mpi=True)


def _parser_info(sub):
    """The ``info`` command."""
    info = sub.add_parser(
        "info", help="describe a results file",
        description="Print what a results file holds: parameters, references, software "
                    "versions, frames (complete or not) with their summaries, the overlap "
                    "table and the learning curve.")
    info.add_argument("results", metavar="RESULTS.h5", help="a quests-hpc results file")
    info.add_argument("--frames", type=int, default=50, metavar="N",
                      help="list at most N frames (default: 50)")
    info.set_defaults(func=_cmd_info, mpi=False)


def _parser_plot(sub):
    """The ``plot`` command."""
    pl = sub.add_parser(
        "plot", help="draw the pictures of a results file",
        description="Draw the pictures of RESULTS.h5 with matplotlib: dH histogram and CDF "
                    "with the dH = 0 line; novelty fraction and largest cluster per frame "
                    "(with the CNT critical-size band when a nucleation analysis was run); "
                    "cluster-size distribution; entropy learning curve with its asymptote "
                    "fit; overlap matrix.  Only what the file holds is drawn.")
    pl.add_argument("results", metavar="RESULTS.h5", help="a quests-hpc results file")
    pl.add_argument("-o", "--output-dir", default=None, metavar="DIR",
                    help="where the pictures go (default: RESULTS_plots/ beside the file)")
    pl.add_argument("--formats", nargs="+", default=["png"], metavar="FMT",
                    help="picture formats, e.g. png pdf svg (default: png)")
    pl.set_defaults(func=_cmd_plot, mpi=False)


def _parser_clusters(sub):
    """The ``clusters`` command."""
    cl = sub.add_parser(
        "clusters", help="clusters of covered atoms (dH <= threshold) in a results file",
        description="Clusters of covered atoms in every complete frame of RESULTS.h5: nodes "
                    "are atoms with dH <= THRESHOLD, edges join nodes at most R_EDGE apart "
                    "(periodic images included), clusters are connected components labelled "
                    "by their smallest atom id (the same for any number of ranks).  Labels go "
                    "to /frames/<frame>/cluster, per-frame statistics to /analysis/clusters.  "
                    "Needs positions in the file (measures.positions) or a readable source "
                    "dump.  Runs under mpiexec.")
    cl.add_argument("results", metavar="RESULTS.h5", help="a quests-hpc results file")
    cl.add_argument("--threshold", type=float, default=0.0,
                    help="nodes are atoms with dH <= THRESHOLD (default: 0.0)")
    cl.add_argument("--r-edge", type=float, default=3.0, metavar="R",
                    help="edge length in Angstrom (default: 3.0, the paper's Methods)")
    cl.add_argument("--column", default=None, metavar="REF",
                    help="dH column: reference name, 'ref@h=...' label or index "
                         "(default: the first)")
    cl.add_argument("--biconnected-max-size", type=int, default=None, metavar="N",
                    help="also find 2-connected parts of clusters up to N atoms "
                         "(default: off)")
    cl.set_defaults(func=_cmd_clusters, mpi=True)


def _parser_export(sub):
    """The ``export`` command."""
    exp = sub.add_parser(
        "export", help="one file per frame with dH and cluster columns, for OVITO",
        description="Write every complete frame of RESULTS.h5 as a LAMMPS dump (or extxyz) "
                    "with per-atom dH and cluster columns that OVITO opens directly (colour "
                    "atoms by dH).  Written in parallel under mpiexec.")
    exp.add_argument("results", metavar="RESULTS.h5", help="a quests-hpc results file")
    exp.add_argument("-o", "--output-dir", required=True, metavar="DIR",
                     help="directory for the per-frame files (required)")
    exp.add_argument("--format", choices=["lammps-dump", "extxyz"], default="lammps-dump",
                     help="file format (default: lammps-dump)")
    exp.add_argument("--no-gzip", action="store_true",
                     help="write plain text instead of .gz (default: gzip)")
    exp.add_argument("--column", default=None, metavar="REF",
                     help="dH column to export (default: the first)")
    exp.add_argument("--elements", nargs="+", default=None, metavar="EL",
                     help="element of each atom type, in type order (default: none)")
    exp.set_defaults(func=_cmd_export, mpi=True)


# ------------------------------------------------------------------------ commands


def _cmd_example(args):
    from .example import run_example

    run_example(k=args.k, cutoff=args.cutoff, bandwidths=args.bandwidth, threads=args.threads)
    return 0


def _cmd_info(args):
    from .results.reader import describe

    print(describe(args.results, max_frames=args.frames))
    return 0


def _cmd_plot(args):
    from .analysis.figures import plot_results

    files = plot_results(args.results, args.output_dir, formats=args.formats)
    for f in files:
        print(f"picture: {f}")
    if not files:
        print(f"{args.results}: nothing to draw (no complete frames or analyses)")
    return 0


def _cmd_clusters(args, comm):
    import shlex

    from .analysis.campaign_hooks import cluster_analysis
    from .results.lock import output_lock

    held = (output_lock(args.results, comm, command=shlex.join(sys.argv))  # it writes there
            if os.path.isfile(args.results) else contextlib.nullcontext())  # else: its error
    with held:
        cluster_analysis(args.results, comm=comm, threshold=args.threshold,
                         r_edge=args.r_edge, column=args.column,
                         biconnected_max_size=args.biconnected_max_size,
                         out=print if comm.rank == 0 else None)
    return 0


def _cmd_export(args, comm):
    from .analysis.frame_export import export_results

    files = export_results(args.results, args.output_dir, comm=comm, fmt=args.format,
                           compress=not args.no_gzip, column=args.column,
                           elements=args.elements)
    if comm.rank == 0:
        print(f"{len(files)} file(s) in {args.output_dir}")
    return 0


def _cmd_run(args, comm):
    from .campaign.runner import run_campaign
    from .campaign.schema import load_campaign

    over = {"output": {}, "run": {}}
    if args.output:
        over["output"]["path"] = os.path.abspath(args.output)
    if args.backend:
        over["output"]["backend"] = args.backend
    if args.threads is not None:
        over["run"]["threads"] = args.threads
    if args.progress:
        over["run"]["progress"] = args.progress
    c = load_campaign(args.campaign, overrides=over)
    if args.check:
        from .campaign.plan import check_inputs

        check_inputs(c, comm)
        if comm.rank == 0:
            print(f"{args.campaign}: valid ({len(c.inputs)} input(s), "
                  f"{len(c.references)} reference(s), output {c.output.path})")
        return 0
    run_campaign(c, comm, overwrite=args.overwrite)
    return 0


def _one_off_campaign(args, references, measures, source):
    """The :class:`~quests_hpc.campaign.model.Campaign` of the ``descriptors`` / ``dh``
    commands (validated as a campaign YAML is; its text is the command line)."""
    import shlex

    import yaml

    from .campaign.schema import CampaignError, validate

    raw = {
        "name": args.command,
        "parameters": {"k": args.k, "cutoff": args.cutoff,
                       "bandwidth": getattr(args, "bandwidth", [0.015]),
                       "threshold": getattr(args, "threshold", 0.0),
                       "precision": getattr(args, "precision", "float64"),
                       "species": _species_value(args)},
        "references": [dict(r, type_map=args.type_map) for r in references],
        "inputs": [{"path": args.input, "frames": args.frames, "type_map": args.type_map}],
        "measures": measures,
        "output": {"path": args.output, "overwrite": args.overwrite, "backend": args.backend},
        "run": {"threads": args.threads, "progress": args.progress},
    }
    text = "# " + shlex.join(["quests-hpc"] + args.argv) + "\n" + yaml.safe_dump(raw)
    try:
        return validate(raw, os.getcwd(), source=source, yaml=text)
    except CampaignError as exc:
        raise CampaignError(source, [_cli_names(p) for p in exc.problems]) from None


def _cli_names(problem):
    for key in sorted(_CLI_NAMES, key=len, reverse=True):
        if problem.startswith(key):
            return _CLI_NAMES[key] + problem[len(key):]
    return problem


def _cmd_descriptors(args, comm):
    from .campaign.runner import run_campaign

    c = _one_off_campaign(args, [], {"descriptors": True, "positions": args.positions,
                                     "delta_entropy": False}, "quests-hpc descriptors")
    run_campaign(c, comm, overwrite=args.overwrite)
    return 0


def _cmd_dh(args, comm):
    from .campaign.runner import run_campaign

    refs = [{"path": args.reference, "frames": args.reference_frames}]
    c = _one_off_campaign(args, refs, {"delta_entropy": True, "descriptors": args.descriptors,
                                       "positions": args.positions, "entropy": args.entropy,
                                       "diversity": args.entropy}, "quests-hpc dh")
    run_campaign(c, comm, overwrite=args.overwrite)
    return 0


def _sources_and_params(args, with_reference):
    """``{"INPUT": Input, "--reference": Reference, "params": Parameters}`` of the
    ``entropy`` / ``overlap`` commands, validated as a campaign's entries are."""
    from .campaign.schema import (
        CampaignError,
        Input,
        Reference,
        validate_parameters,
        validate_source,
    )

    problems, out = [], {}
    tm = args.type_map
    for label, raw, kind in ([("INPUT", {"path": args.input, "frames": args.frames,
                                         "type_map": tm}, Input)]
                             + ([("--reference", {"path": args.reference,
                                                  "frames": args.reference_frames,
                                                  "type_map": tm}, Reference)]
                                if with_reference else [])):
        try:
            out[label] = validate_source(raw, os.getcwd(), label, kind=kind)
        except CampaignError as exc:
            problems += [_cli_names(p) for p in exc.problems]
    try:
        out["params"] = validate_parameters({
            "k": args.k, "cutoff": args.cutoff, "bandwidth": args.bandwidth,
            "threshold": getattr(args, "threshold", 0.0), "precision": args.precision,
            "species": _species_value(args)})
    except CampaignError as exc:
        problems += [_cli_names(p) for p in exc.problems]
    if problems:
        raise CampaignError(f"quests-hpc {args.command}", problems)
    return out


def _prepare(comm, threads):
    from .parallel.runtime import configure_threads, warm_up

    configure_threads(comm, threads)
    warm_up(comm)


def _cmd_entropy(args, comm):
    from .campaign.oneoff import entropy_of

    s = _sources_and_params(args, False)
    _prepare(comm, args.threads)
    entropy_of(comm, s["INPUT"], s["params"].request(),
               out=lambda t: print(t, flush=True))
    return 0


def _cmd_overlap(args, comm):
    from .campaign.oneoff import overlap_of

    s = _sources_and_params(args, True)
    _prepare(comm, args.threads)
    overlap_of(comm, s["INPUT"], s["--reference"], s["params"].request(),
               out=lambda t: print(t, flush=True))
    return 0


# ------------------------------------------------------------------------ errors, MPI

#: Seconds the ranks wait for each other after an error before aborting the job.
ERROR_SYNC_SECONDS = 10.0


def _status_of(exc):
    from .results.writer import ResultsIOError

    if isinstance(exc, QuestsInputError):
        return 2, f"quests-hpc: error: {exc}", False
    if isinstance(exc, ResultsIOError):
        return 1, f"quests-hpc: error: {exc}", False
    if isinstance(exc, KeyboardInterrupt):
        return 130, "quests-hpc: interrupted", False
    name = type(exc).__name__
    if name in ("RankFailedError", "RankInputError"):
        return 2 if "Input" in name else 1, f"quests-hpc: error: {exc}", False
    return 1, f"quests-hpc: internal error: {name}: {exc}", True


def _report(exc):
    """``(exit status, message)`` of ``exc`` (with the traceback where wanted)."""
    code, msg, tb = _status_of(exc)
    tb = tb or bool(os.environ.get("QUESTS_HPC_TRACEBACK"))
    return code, msg + ("\n" + "".join(traceback.format_exception(exc)) if tb else "")


def _fail_serial(exc):
    """Report ``exc`` of a command that runs without MPI; returns the exit status."""
    code, text = _report(exc)
    print(text, file=sys.stderr, flush=True)
    return code


def _fail(comm, exc):
    """Report ``exc`` and decide the exit status without hanging (see the module doc).

    ``comm`` is the :func:`~quests_hpc.parallel.comm.error_channel` made at start-up, never
    the communicator the command's collectives run on.

    All ranks failing together (the usual case: errors are shared collectively) -> one
    message from rank 0 and a clean exit.  Otherwise -> the failing rank prints its
    message with its rank number and aborts every rank.
    """
    from .parallel.comm import barrier_or_abort

    if comm.size == 1:
        return _fail_serial(exc)
    code, text = _report(exc)

    def alone():
        sys.stderr.write(f"[rank {comm.rank}] {text}\n[rank {comm.rank}] other ranks did "
                         "not fail with it: aborting all ranks\n")
        sys.stderr.flush()

    barrier_or_abort(comm, ERROR_SYNC_SECONDS, code, on_timeout=alone)
    if comm.rank == 0:
        print(text, file=sys.stderr, flush=True)
    return code


def main(argv=None):
    """Entry point of the ``quests-hpc`` console script; returns the exit status."""
    parser = build_parser()
    if argv is not None:  # allow path objects when called from Python
        argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with _plain_warnings():
            if not args.mpi:  # example, info, plot: no MPI at all
                return _status(args.func(args))
            from mpi4py import MPI

            from .parallel.comm import error_channel

            comm = MPI.COMM_WORLD
            errors = error_channel(comm)
    except (Exception, KeyboardInterrupt) as exc:
        return _fail_serial(exc)
    try:
        with _plain_warnings():
            return _status(args.func(args, comm))
    except (Exception, KeyboardInterrupt) as exc:
        return _fail(errors, exc)


def _status(status):
    return 0 if status is None else int(status)


@contextlib.contextmanager
def _plain_warnings():
    """Warnings about the user's files printed as one line (:func:`_show_warning`)."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning(warnings.showwarning)
        yield


def _show_warning(default):
    """A warning about the user's files (:class:`DumpWarning`) as one line
    ``quests-hpc: warning: ...``, without the Python source location; others as before."""
    from .io.lammps_header import DumpWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, DumpWarning):
            return default(message, category, filename, lineno, file, line)
        print(f"quests-hpc: warning: {message}", file=file or sys.stderr, flush=True)
    return show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
