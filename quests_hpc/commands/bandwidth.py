"""``quests-hpc bandwidth``: the kernel bandwidth h by upstream's volume rules and by the
paper's strain rule (the rules are :mod:`quests_hpc.dataset.bandwidth`).

This module owns the command: its options, reading the structure (one frame of any file
ASE reads, or of a LAMMPS dump) and the printed report.  Serial (no MPI).
"""

import argparse

from ..cli import INPUT_HELP
from ..dataset import bandwidth as B
from ..errors import QuestsInputError

ORDER = 30
RULES = ("gaussian", "cutoff", "strain", "all")

DESCRIPTION = f"""\
Estimate the kernel bandwidth h (1/A) for a structure or a volume per atom V (A^3).

Rules:
  gaussian  upstream's fit h = 0.0897141 exp(-(V/10.896)^2 / 2) + 0.0119417 of the volume
            per atom V.
  cutoff    upstream's fit h = 0.086164 w((log V)^2; 11.61172) + 0.016, w(r; rc) =
            (1 - (r/rc)^2)^2 the descriptor's cutoff function (0 beyond rc).
  strain    the paper's rule: the descriptor distance between the structure and the same
            structure strained isotropically (cell and positions times 1 - s, or 1 + s
            with --strain-mode expand), atom by atom (mean, min, max printed).

V is |det(cell)| / atoms of the structure (periodic along x, y and z), or --volume.
The paper adopts h = {B.PAPER_BANDWIDTH} 1/A for FCC Cu from "1 % strain"; with this
descriptor (k = 32, rc = 5 A) 1 % strain of FCC Cu measures about 0.027 and 0.5 % about
0.0136, so 0.015 matches about half a per cent.  The command prints what it measures and
the strain it used; it never imposes {B.PAPER_BANDWIDTH}.
"""


def add_parser(sub):
    """The ``bandwidth`` sub-parser."""
    p = sub.add_parser(
        "bandwidth", help="kernel bandwidth h from a structure or a volume per atom",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("structure", metavar="STRUCTURE", nargs="?", default=None,
                   help=INPUT_HELP + " (default: none; then --volume is required)")
    p.add_argument("--frame", type=int, default=0, metavar="I",
                   help="frame of STRUCTURE to use, negative from the end (default: 0)")
    p.add_argument("--volume", type=float, default=None, metavar="V",
                   help="volume per atom in A^3 for the volume rules, instead of the "
                        "structure's (default: the structure's |det(cell)| / atoms)")
    p.add_argument("--rule", choices=RULES, default="all",
                   help="rule to apply; all = every rule the inputs allow (default: all)")
    p.add_argument("--strain", type=float, default=B.DEFAULT_STRAIN, metavar="S",
                   help="strain of the strain rule, a fraction in (0, 1): 0.01 = 1 %% "
                        f"(default: {B.DEFAULT_STRAIN})")
    p.add_argument("--strain-mode", choices=B.STRAIN_MODES, default="compress",
                   help="compress: a -> a (1 - S) (the paper's); expand: a -> a (1 + S) "
                        "(default: compress)")
    p.add_argument("-k", type=int, default=32, metavar="K",
                   help="neighbours per environment of the strain rule's descriptor "
                        "(default: 32)")
    p.add_argument("--cutoff", type=float, default=5.0, metavar="RC",
                   help="cutoff radius in A of the strain rule's descriptor (default: 5.0)")
    p.set_defaults(func=run, mpi=False)


def read_structure(path, frame=0):
    """Frame ``frame`` of ``path`` (a :class:`~quests_hpc.io.frame.Frame`)."""
    from ase.io.formats import UnknownFileTypeError

    from ..io.reference import read_structures

    try:
        frames = read_structures(path, index=frame)
    except UnknownFileTypeError as exc:
        raise QuestsInputError(f"{path}: not a LAMMPS dump nor a format ASE reads "
                               f"({exc})") from None
    except QuestsInputError as exc:
        if "StopIteration" in str(exc) or "IndexError" in str(exc):
            raise QuestsInputError(f"--frame {frame}: {path} has no frame {frame}") from None
        raise
    if not frames:
        raise QuestsInputError(f"{path}: holds no structure")
    if frames[0].natoms == 0:
        raise QuestsInputError(f"{path}: frame {frame} has no atoms")
    return frames[0]


def _rules(args, structure):
    """The rules to apply, and notes on the rules of ``--rule all`` the inputs rule out."""
    if structure is None and args.volume is None:
        raise QuestsInputError("bandwidth: give a STRUCTURE or --volume V")
    if args.rule != "all":
        if args.rule == "strain" and structure is None:
            raise QuestsInputError("--rule strain needs a STRUCTURE (--volume is not enough)")
        return (args.rule,), []
    want, notes = ["gaussian", "cutoff"], []
    if args.volume is None and not all(bool(p) for p in structure.pbc):
        want, notes = [], ["gaussian, cutoff: not applied (the structure is not periodic "
                           "along x, y and z, so it has no volume per atom; give --volume)"]
    if structure is not None:
        want.append("strain")
    return tuple(want), notes


def _volume(args, structure, name):
    """The volume per atom of the volume rules: --volume or the structure's."""
    if args.volume is not None:
        return B.check_volume(args.volume, "--volume"), "--volume"
    return B.volume_per_atom(structure, name), f"|det(cell)| / {structure.natoms} atoms"


def bandwidth_lines(args, structure=None, name="STRUCTURE"):
    """The report lines of ``args`` (one line per rule, with its inputs)."""
    want, notes = _rules(args, structure)
    if "strain" in want:
        B.check_strain(args.strain, args.strain_mode, "--strain")  # before any descriptor
    lines = []
    vol_rules = [r for r in want if r in B.VOLUME_RULES]
    if vol_rules:
        v, src = _volume(args, structure, name)
        for r in vol_rules:
            lines.append(f"{r:8s}  h = {B.bandwidth_from_volume(v, r):.6f} 1/A   "
                         f"(V = {v:.6g} A^3/atom, {src})")
    lines += notes
    if "strain" in want:
        lines += _strain_lines(args, structure)
    return lines


def _strain_lines(args, structure):
    res = B.strain_bandwidth(structure, args.strain, args.k, args.cutoff, args.strain_mode)
    sign = "-" if res.mode == "compress" else "+"
    out = [f"strain    h = {res.mean:.6f} 1/A   (mean over {res.n_atoms} atoms of the "
           f"descriptor distance, min {res.min:.6f}, max {res.max:.6f}; strain "
           f"{res.strain:g} = {100 * res.strain:g} %, {res.mode}: cell and positions x "
           f"(1 {sign} {res.strain:g}) = {res.scale:g}, isotropic; k = {res.k}, "
           f"cutoff = {res.cutoff:g} A)"]
    out.append(f"          note: the paper adopts h = {B.PAPER_BANDWIDTH} 1/A for FCC Cu "
               "(\"1 % strain\"); with this descriptor 1 % strain of FCC Cu measures about "
               "0.027 and 0.5 % about 0.0136, so 0.015 matches about half a per cent. "
               "The value above is what was measured here.")
    return out


def run(args):
    """Print the bandwidth of every rule asked for (``quests-hpc bandwidth``)."""
    structure, name = None, "STRUCTURE"
    if args.structure is not None:
        structure = read_structure(args.structure, args.frame)
        name = f"{args.structure} (frame {args.frame})"
        print(f"{name}: {structure.natoms} atoms, pbc = "
              f"{[bool(p) for p in structure.pbc]}", flush=True)
    for line in bandwidth_lines(args, structure, name):
        print(line, flush=True)
    return 0
