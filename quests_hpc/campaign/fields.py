"""Field checkers of the campaign schema (:mod:`quests_hpc.campaign.schema`).

Each checker is ``check(value, ctx) -> normalised value`` and raises :class:`Bad` with a
one-line message; ``check.type_name`` describes what it accepts.  ``ctx["base"]`` is the
directory relative paths are resolved against.
"""

import difflib
import glob
import math
import os
import re

from ..errors import QuestsInputError
from ..species import known_symbol, species_list
from ..io.compressed import regular_file_problem
from ..io.selection import parse_selection

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FORMATS = ("auto", "lammps-dump", "ase", "descriptors")
BACKENDS = ("auto", "mpio", "gather")
LAYOUTS = ("auto", "shared", "sharded")
BALANCE = ("uniform", "atoms")
PROGRESS = ("auto", "lines", "tty", "off")


#: Largest cutoff r_c (Å).  The descriptor keeps the k (<= 512) nearest neighbours
#: within r_c with weights (1 - (r/r_c)^2)^2: the 512th neighbour of a solid or liquid
#: lies within about 12 Å (23 Å at a quarter of the density of a metal), so a larger
#: r_c only flattens the weights while the points to examine grow as r_c^3.
MAX_CUTOFF = 30.0

#: Range of the kernel bandwidth h (1/Å).  Descriptor distances between environments
#: are ~1e-3 to ~3 1/Å: below 1e-4 the kernel of any two distinct environments
#: underflows and dH is a scaled nearest distance; above 10 every kernel is ~1 and
#: dH = -log n everywhere.  Within it dH is finite (log-sum-exp, SPEC.md).
MIN_BANDWIDTH, MAX_BANDWIDTH = 1e-4, 10.0

#: Largest k (neighbours per environment).
MAX_K = 512


#: A schema default meaning "the key must be given" (:mod:`.schema`'s tables).
REQUIRED = object()


class Bad(Exception):
    """A value a checker rejects (the message says why)."""


def int_field(lo=None, hi=None):
    def check(v, ctx):
        if isinstance(v, bool) or not isinstance(v, int):
            raise Bad(f"must be an integer, got {type(v).__name__} {v!r}")
        if lo is not None and v < lo:
            raise Bad(f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise Bad(f"must be <= {hi}, got {v}")
        return int(v)
    check.type_name = "integer" + (f" >= {lo}" if lo is not None else "")
    return check


def float_field(lo=None, strict=True, optional=False):
    def check(v, ctx):
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Bad(f"must be a number, got {type(v).__name__} {v!r}")
        v = float(v)
        if not math.isfinite(v):
            raise Bad(f"must be finite, got {v}")
        if lo is not None and (v <= lo if strict else v < lo):
            raise Bad(f"must be {'>' if strict else '>='} {lo:g}, got {v:g}")
        return v
    check.type_name = "number" + (f" {'>' if strict else '>='} {lo:g}" if lo is not None else "")
    return check


def bool_field(v, ctx):
    if not isinstance(v, bool):
        raise Bad(f"must be true or false, got {v!r}")
    return v


bool_field.type_name = "true/false"


def str_field(v, ctx):
    if not isinstance(v, str):
        raise Bad(f"must be a string, got {type(v).__name__} {v!r}")
    return v


str_field.type_name = "string"


def choice_field(options):
    def check(v, ctx):
        if v not in options:
            hint = difflib.get_close_matches(str(v), options, n=1)
            raise Bad(f"must be one of {', '.join(options)}; got {v!r}"
                       + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return v
    check.type_name = " | ".join(options)
    return check


def progress_field(v, ctx):
    if v is False:  # YAML 1.1 reads an unquoted `off` as false
        return "off"
    return choice_field(PROGRESS)(v, ctx)


progress_field.type_name = " | ".join(PROGRESS)


def name_field(v, ctx):
    v = str_field(v, ctx)
    if not NAME_RE.match(v):
        raise Bad(f"{v!r} is not a valid name (letters, digits, '_', '.', '-')")
    return v


name_field.type_name = "name"


def numbers(v, ctx, empty):
    """A number or a non-empty list of numbers >= 0, as floats (always a list);
    ``empty``: the message for an empty list."""
    vals = v if isinstance(v, list) else [v]
    if not vals:
        raise Bad(empty)
    return [float_field(0.0)(x, ctx) for x in vals]


def bandwidths_field(v, ctx):
    out = numbers(v, ctx, "must name at least one bandwidth")
    for h in out:
        if not MIN_BANDWIDTH <= h <= MAX_BANDWIDTH:
            raise Bad(f"must be within [{MIN_BANDWIDTH:g}, {MAX_BANDWIDTH:g}] 1/A, got {h:g} "
                      "(descriptor distances are ~1e-3 to ~3 1/A: a smaller h makes every kernel "
                      "term underflow, a larger one makes every term ~1)")
    if len(set(out)) != len(out):
        raise Bad(f"bandwidths repeat: {out}")
    return out


bandwidths_field.type_name = f"number in [{MIN_BANDWIDTH:g}, {MAX_BANDWIDTH:g}] or list of them"


def cutoff_field(v, ctx):
    c = float_field(0.0)(v, ctx)
    if c > MAX_CUTOFF:
        raise Bad(f"must be <= {MAX_CUTOFF:g} A, got {c:g}: the descriptor keeps the k <= "
                  f"{MAX_K} nearest neighbours, which lie within about 12 A in a solid or liquid; "
                  "a larger cutoff only flattens their weights while the atoms and periodic images "
                  "to examine grow as cutoff^3")
    return c


cutoff_field.type_name = f"number in (0, {MAX_CUTOFF:g}]"


def selection_field(v, ctx):
    if isinstance(v, bool):
        raise Bad(f"must be a frame selection like all, -1, 0:10:2 or 3,5,8; got {v!r}")
    if isinstance(v, list):
        v = ",".join(str(x) for x in v)
    if not isinstance(v, (str, int)):
        raise Bad(f"must be a frame selection like all, -1, 0:10:2 or 3,5,8; got {v!r}")
    try:
        parse_selection(v)
    except QuestsInputError as exc:
        raise Bad(str(exc)) from None
    return str(v)


selection_field.type_name = "frame selection (all, -1, 0:10:2, 3,5,8, t=1000:5000)"


def paths_field(v, ctx):
    """One file, a glob pattern or a list of files; resolved against the YAML directory."""
    vals = v if isinstance(v, list) else [v]
    if not vals or not all(isinstance(x, str) and x for x in vals):
        raise Bad(f"must be a file name, a glob pattern or a list of file names; got {v!r}")
    out = []
    for x in vals:
        p = os.path.normpath(os.path.join(ctx["base"], os.path.expanduser(x)))
        if any(c in x for c in "*?[") and not os.path.exists(p):
            if not glob.glob(p):
                raise Bad(f"no file matches {p}")
        elif not os.path.exists(p):
            raise Bad(f"file not found: {p}")
        else:
            problem = regular_file_problem(p)
            if problem:
                raise Bad(f"{p}: {problem}")
        out.append(p)
    return out if isinstance(v, list) else out[0]


paths_field.type_name = "file, glob pattern or list of files"


def out_path_field(v, ctx):
    v = str_field(v, ctx)
    return os.path.normpath(os.path.join(ctx["base"], os.path.expanduser(v)))


out_path_field.type_name = "file name"


def type_map_field(v, ctx):
    if v is None:
        return None
    out = None
    if isinstance(v, str):
        out = v.replace(",", " ").split()
    elif isinstance(v, list) and all(isinstance(x, str) for x in v):
        out = v
    elif isinstance(v, dict) and all(isinstance(k, int) and not isinstance(k, bool)
                                     and k >= 1 and isinstance(x, str) for k, x in v.items()):
        out = {int(k): x for k, x in v.items()}
    if not out:
        raise Bad(f"must be a list of element symbols (type 1 first) or {{type: symbol}} "
                  f"with types >= 1; got {v!r}")
    bad = [x for x in (out.values() if isinstance(out, dict) else out) if not known_symbol(x)]
    if bad:
        raise Bad(f"unknown element(s) {bad}; expected chemical symbols such as Ni, Al")
    return out


type_map_field.type_name = "element list [Cu, Ni] or {1: Cu}"


def species_field(v, ctx):
    if v is None or v == "ignore":
        return v
    if isinstance(v, str):
        v = v.replace(",", " ").split()
    if not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
        raise Bad(f"must be a list of element symbols (e.g. [Ni, Al]) or `ignore`; got {v!r}")
    try:
        return list(species_list(v, "species"))
    except QuestsInputError as exc:
        raise Bad(str(exc).split(": ", 1)[1]) from None


species_field.type_name = "element list [Ni, Al] or ignore"


def sizes_field(v, ctx):
    if v is None:
        return None
    if not isinstance(v, list) or not v:
        raise Bad(f"must be a list of subset sizes; got {v!r}")
    out = [int_field(2)(x, ctx) for x in v]
    if any(b <= a for a, b in zip(out, out[1:])):
        raise Bad(f"must increase strictly; got {out}")
    return out


sizes_field.type_name = "list of increasing integers >= 2"


def drop_field(v, ctx):
    if not (isinstance(v, list) and len(v) == 2):
        raise Bad(f"must be [first, last], two integers >= 0; got {v!r}")
    return [int_field(0)(x, ctx) for x in v]


drop_field.type_name = "[first, last]"
