"""Campaign YAML: schema, validation and normalisation.

:func:`load_campaign` reads a YAML file and returns the validated campaign -- a frozen
:class:`~quests_hpc.campaign.model.Campaign` with every default filled in and every path
absolute, built once here -- or raises :class:`CampaignError`
listing *every* problem found: syntax errors, unknown keys (with a did-you-mean
suggestion), duplicate keys, wrong types, out-of-range values, missing files, bad frame
selections and inconsistent choices, each with its location (``inputs[1].frames``) and
YAML line.  The CLI prints the list and exits with status 2.

The schema is the table :data:`SCHEMA`; :func:`schema_help` renders it for ``--help``
and the docs.  Relative paths are relative to the YAML file's directory.
"""

import difflib
import os
import re

import yaml

from .analysis_section import ANALYSIS, analysis_problems
from .compress_section import COMPRESS, campaign_problems
from ..errors import QuestsInputError
from ..information import PRECISIONS
from .fields import (
    BACKENDS,
    BALANCE,
    FORMATS,
    LAYOUTS,
    MAX_BANDWIDTH,
    MAX_CUTOFF,
    MAX_K,
    MIN_BANDWIDTH,
    NAME_RE,
    REQUIRED,
    Bad,
    bandwidths_field,
    bool_field,
    choice_field,
    cutoff_field,
    drop_field,
    float_field,
    int_field,
    name_field,
    out_path_field,
    paths_field,
    progress_field,
    selection_field,
    sizes_field,
    str_field,
    type_map_field,
    species_field,
)
from .model import (
    Campaign,
    Input,
    LearningCurve,
    Measures,
    Output,
    Parameters,
    Reference,
    Run,
    build,
    parameters_from,
    source_from,
)

__all__ = ["CampaignError", "load_campaign", "validate", "validate_source",
           "validate_parameters", "schema_help", "SCHEMA", "Campaign", "Input", "Reference",
           "Parameters", "Measures", "LearningCurve", "Output", "Run"]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader without base-60 numbers: ``frames: 1:5:2`` stays a string
    (PyYAML would read it as the integer 3902)."""


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in (_INT, _FLOAT)]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_INT, re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X), list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, re.compile(r"""^(?:
    [-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))  # also 1e-2 (YAML 1.2)


class CampaignError(QuestsInputError):
    """A campaign that cannot run; ``problems`` lists every reason (one line each)."""

    def __init__(self, source, problems):
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{source}: {n} problem{'s' if n != 1 else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


# --------------------------------------------------------------------- the schema
# key -> (checker, default, help).  A default of REQUIRED means the key must be given.

SOURCE = {
    "name": (name_field, None, "name used in group names and tables (default: the file's stem)"),
    "path": (paths_field, REQUIRED, "file, glob pattern (dump.*.lammpstrj) or list of files"),
    "frames": (selection_field, "all", "frame selection: all, -1, 0:10:2, 3,5,8 or t=1000:5000"),
    "format": (choice_field(FORMATS), "auto", "auto (by name/content), lammps-dump, ase, "
               "descriptors (a results file with descriptors; references only)"),
    "ase_format": (str_field, None, "ASE format name when ASE cannot guess it (e.g. extxyz)"),
    "type_map": (type_map_field, None, "LAMMPS type -> element, e.g. [Ni, Al] or {1: Ni, 2: Al}: "
                 "names the atoms of a dump without an `element` column (for `species`)"),
}

LEARNING_CURVE = {
    "dataset": (name_field, REQUIRED, "name of the reference whose learning curve to compute"),
    "sizes": (sizes_field, None, "subset sizes N (default: `num` sizes log-spaced up to n)"),
    "num": (int_field(2), 12, "number of log-spaced sizes when `sizes` is not given"),
    "min_size": (int_field(2), 16, "smallest subset size when `sizes` is not given"),
    "repeats": (int_field(1), 3, "random subsets per size"),
    "seed": (int_field(0), 0, "random seed of the subsets"),
    "fit": (bool_field, True, "fit H(N) = a - b exp(-c (log N)^2), a, b, c >= 0 (SPEC.md)"),
    "drop": (drop_field, [3, 3], "points dropped from the fit: [first, last] (SPEC.md: 3, 3)"),
}

SCHEMA = {
    "name": (str_field, None, "campaign name (default: the YAML file's stem)"),
    "description": (str_field, "", "free text, stored with the results"),
    "parameters": ({
        "k": (int_field(1, MAX_K), 32, f"neighbours per environment, 1 to {MAX_K}"),
        "cutoff": (cutoff_field, 5.0, f"cutoff radius (Angstrom), 0 < cutoff <= {MAX_CUTOFF:g}; "
                   "a frame whose atoms and periodic images within it do not fit in memory is "
                   "refused before any work"),
        "bandwidth": (bandwidths_field, [0.015], f"kernel bandwidth(s) h (1/Angstrom), each in "
                      f"[{MIN_BANDWIDTH:g}, {MAX_BANDWIDTH:g}]"),
        "threshold": (float_field(), 0.0, "an environment is novel when dH > threshold"),
        "precision": (choice_field(PRECISIONS), "float64", "arithmetic of the kernel sums: "
                      "float64, or float32 (about 2x faster; |dH32 - dH64| <= "
                      "(d/2 + 6) 2^-24 (|y - mu| + max|x - mu|)^2 / (2 h^2) + 1e-4 per atom, "
                      "mu the reference mean, d = 2k - 1: docs/precision.md)"),
        "species": (species_field, None, "elements of the run, e.g. [Ni, Al]: several give "
                    "the multi-element descriptor ((2k-1)(n+1) values, SPEC.md); `ignore` "
                    "treats every atom alike.  Default: none, and an input or reference "
                    "naming several elements is refused (docs/species.md)"),
    }, {}, "descriptor and kernel parameters"),
    "references": ([SOURCE], [], "reference (training) sets: dH is computed against each"),
    "inputs": ([SOURCE], [], "required (unless the campaign only compresses): the data: "
               "LAMMPS dumps or ASE-readable files"),
    "measures": ({
        "delta_entropy": (bool_field, None, "per-atom dH against every reference "
                          "(default: true when there are references)"),
        "descriptors": (bool_field, False, "store per-atom descriptors (n x 2k-1 float64)"),
        "positions": (bool_field, False, "store per-atom positions and types"),
        "entropy": (bool_field, False, "entropy H of every frame (costs O(n^2) per frame)"),
        "diversity": (bool_field, False, "diversity D of every frame (same pass as H)"),
        "overlap": (bool_field, True, "table of overlap/novelty of every input vs every reference"),
        "learning_curve": (LEARNING_CURVE, None, "H of random subsets of a reference and "
                           "the asymptote fit"),
    }, {}, "what to compute and store"),
    "output": ({
        "path": (out_path_field, REQUIRED, "results HDF5 file"),
        "overwrite": (bool_field, False, "replace an existing file written by another campaign"),
        "backend": (choice_field(BACKENDS), "auto", "mpio (parallel HDF5), gather (through rank "
                    "0) or auto (mpio when h5py has MPI)"),
        "chunk_mb": (float_field(0.0), 64.0, "largest message / write piece (MiB)"),
        "fsync": (bool_field, True, "fsync after every frame before marking it complete"),
    }, None, "required with inputs: where the results go"),
    "run": ({
        "threads": (int_field(1), None, "Numba threads per rank (default: cores / ranks per node)"),
        "reference_layout": (choice_field(LAYOUTS), "auto", "shared (one copy per node) or "
                             "sharded (ring pass); auto: shared unless over the budget"),
        "reference_memory_gb": (float_field(0.0, optional=True), None,
                                "memory budget per node for the reference (GB)"),
        "balance": (choice_field(BALANCE), "uniform", "domain cuts: uniform or at atom quantiles"),
        "progress": (progress_field, "auto", "progress output: lines, tty (one updating "
                     "line), off; auto = tty on a terminal, else lines"),
    }, {}, "execution settings (may change between restarts)"),
}

# Post-processing of the results file (clusters, nucleation, pictures, OVITO files): its
# own table, in quests_hpc.campaign.analysis_section.
SCHEMA["analysis"] = (ANALYSIS, {}, "after the frames: clusters, nucleation, pictures and "
                      "per-frame files for OVITO (quests_hpc.analysis)")

# Compressions of data sets (quests_hpc.dataset.compress_run), each its own files: its
# own table, in quests_hpc.campaign.compress_section.
SCHEMA["compress"] = ([COMPRESS], [], "after the frames (or alone): choose the structures "
                      "of a data set that keep most of its information, like `quests-hpc "
                      "compress` (k, cutoff and the first bandwidth from `parameters`; "
                      "docs/campaign-compress.md)")

#: Sections that do not change results: left out of the campaign fingerprint.  The
#: analysis section only reads the results file, so changing it never refuses a restart;
#: each compression writes files of its own, checked against its report at a rerun.
NOT_FINGERPRINTED = ("run", "output", "description", "name", "analysis", "compress")


# --------------------------------------------------------------------- validation


def _loc(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


class _Ctx(dict):
    """Validation context: base directory, problems list, YAML line numbers."""

    def problem(self, path, msg):
        line = self["lines"].get(tuple(path))
        where = _loc(path) + (f" (line {line})" if line else "")
        self["problems"].append(f"{where}: {msg}")


def _check_mapping(value, schema, path, ctx):
    if value is None:
        value = {}
    if not isinstance(value, dict):
        ctx.problem(path, f"must be a mapping of keys, got {type(value).__name__} {value!r}")
        return None
    out = {}
    for key in value:
        if key not in schema:
            hint = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.6)
            ctx.problem(path + [key], "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint
                                                       else f"; known keys: {', '.join(schema)}"))
    for key, (checker, default, _) in schema.items():
        if key not in value or value[key] is None and default is not REQUIRED:
            if default is REQUIRED:
                ctx.problem(path + [key], "required key missing")
                out[key] = None
                continue
            if isinstance(checker, dict):
                out[key] = None if default is None else _check_mapping(default, checker,
                                                                         path + [key], ctx)
            else:
                out[key] = list(default) if isinstance(default, list) else default
            continue
        out[key] = _check_value(value[key], checker, path + [key], ctx)
    return out


def _check_value(v, checker, path, ctx):
    if isinstance(checker, dict) and v is False:
        return None  # an optional section switched off (`learning_curve: false`)
    if isinstance(checker, dict):
        return _check_mapping(v, checker, path, ctx)
    if isinstance(checker, list):
        if not isinstance(v, list):
            v = [v]
        return [_check_source(x, checker[0], path + [i], ctx) for i, x in enumerate(v)]
    try:
        return checker(v, ctx)
    except Bad as exc:
        ctx.problem(path, str(exc))
        return None


def _check_source(v, schema, path, ctx):
    if "path" in schema and isinstance(v, (str, list)) and not (
            isinstance(v, list) and v and isinstance(v[0], dict)):
        v = {"path": v}  # shorthand: just a file (or glob)
    out = _check_mapping(v, schema, path, ctx)
    if out and out.get("name") is None and out.get("path"):
        p = out["path"][0] if isinstance(out["path"], list) else out["path"]
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(p).split(".")[0] or "data")
        out["name"] = stem if NAME_RE.match(stem) else "d" + stem
    return out


#: Most YAML nodes a campaign may expand to, every use of an alias counted: a campaign
#: has a few hundred; an alias bomb ("billion laughs") billions, and walking them would
#: take minutes and all memory.
MAX_NODES = 100_000


class _Unreasonable(Exception):
    """A YAML document refused before it is walked (the message says why)."""


def _children(node):
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return ()


def _expanded_size(root, limit=MAX_NODES):
    """Nodes of the document with every alias expanded, counted without expanding them
    (one pass over the composed nodes, sizes memoised); raises :class:`_Unreasonable`
    beyond ``limit`` or for a recursive alias."""
    sizes, active, stack = {}, set(), [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            active.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > limit:
                raise _Unreasonable(
                    f"the document expands to more than {limit:,} nodes (aliases of anchors "
                    f"repeated, line {node.start_mark.line + 1}); a campaign has a few hundred")
            continue
        if key in sizes:
            continue
        if key in active:  # an ancestor of itself
            raise _Unreasonable(f"recursive alias at line {node.start_mark.line + 1} (an anchor "
                                "used inside itself)")
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node))
    return sizes[id(root)]


def _parse(text):
    """``(data, lines, duplicates)`` of a YAML document (see :func:`_line_numbers`), its
    expanded size checked before it is walked or constructed."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}, []
        _expanded_size(root)
        lines, dups = _line_numbers(root)  # first: constructing flattens merge keys (<<)
        return loader.construct_document(root), lines, dups
    except RecursionError:
        raise _Unreasonable("the document is nested too deeply") from None
    finally:
        loader.dispose()


def _line_numbers(root):
    """Map key paths -> 1-based YAML line, and report duplicate keys (``root``: the composed
    document, its size checked by :func:`_expanded_size`)."""
    lines, dups = {}, []

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for k, v in node.value:
                key = k.value
                if key in seen:
                    dups.append((path + [key], k.start_mark.line + 1))
                seen.add(key)
                lines[tuple(path + [key])] = k.start_mark.line + 1
                walk(v, path + [key])
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[tuple(path + [i])] = v.start_mark.line + 1
                walk(v, path + [i])

    if root is not None:
        walk(root, [])
    return lines, dups


def validate(raw, base_dir, source="campaign", lines=None, yaml=""):
    """Validate a campaign given as a dict (e.g. from YAML or the CLI) into a
    :class:`~quests_hpc.campaign.model.Campaign`.

    Parameters
    ----------
    raw : dict
    base_dir : str
        Directory that relative paths are relative to.
    source : str
        Name for messages (the YAML file).
    lines : dict, optional
        Key path -> YAML line number.
    yaml : str
        The campaign's text, stored with the results.

    Returns
    -------
    Campaign

    Raises
    ------
    CampaignError
        Listing every problem.
    """
    ctx = _Ctx(base=base_dir, problems=[], lines=lines or {})
    if not isinstance(raw, dict):
        raise CampaignError(source, [f"the campaign must be a YAML mapping of sections "
                                     f"({', '.join(SCHEMA)}), got {type(raw).__name__}"])
    c = _check_mapping(raw, SCHEMA, [], ctx)
    if c.get("name") is None:
        c["name"] = os.path.splitext(os.path.basename(source))[0]
    c["source"] = source
    c["base_dir"] = base_dir
    c["yaml"] = yaml
    _cross_checks(c, ctx)
    for path, msg in campaign_problems(raw, c):
        ctx.problem(path, msg)
    if ctx["problems"]:
        raise CampaignError(source, ctx["problems"])
    return build(c)


def _cross_checks(c, ctx):
    for p in analysis_problems(c.get("analysis") or {}):
        ctx.problem(["analysis"], p)
    refs = [r for r in (c.get("references") or []) if r]
    ins = [r for r in (c.get("inputs") or []) if r]
    for what, items in (("references", refs), ("inputs", ins)):
        names = [r.get("name") for r in items]
        for i, n in enumerate(names):
            if n is not None and names.index(n) != i:
                ctx.problem([what, i, "name"], f"name {n!r} is used twice; give each a "
                            "unique `name`")
    for i, r in enumerate(ins):
        if r.get("format") == "descriptors":
            ctx.problem(["inputs", i, "format"], "inputs need atoms; `descriptors` files can "
                        "only be references")
    m = c.get("measures") or {}
    if m.get("delta_entropy") is None:
        m["delta_entropy"] = bool(refs)
    elif m.get("delta_entropy") and not refs:
        ctx.problem(["measures", "delta_entropy"], "needs at least one entry in `references`")
    if m.get("overlap") and not refs:
        m["overlap"] = False  # nothing to overlap with; not an error (default is true)
    lc = m.get("learning_curve")
    if lc:
        names = [r.get("name") for r in refs]
        if lc.get("dataset") is not None and lc["dataset"] not in names:
            hint = difflib.get_close_matches(lc["dataset"], [n for n in names if n], n=1)
            ctx.problem(["measures", "learning_curve", "dataset"],
                        f"no reference named {lc['dataset']!r}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else
                           f"; references: {', '.join(n for n in names if n) or 'none'}"))
        npts = len(lc["sizes"]) if lc.get("sizes") else lc.get("num")
        drop = lc.get("drop") or [0, 0]
        if lc.get("fit") and npts is not None and npts - sum(drop) < 3:
            ctx.problem(["measures", "learning_curve"], f"the fit needs at least 3 points after "
                        f"dropping {drop[0]} + {drop[1]}; got {npts} sizes")


def load_campaign(path, overrides=None):
    """Read, validate and normalise a campaign YAML file.

    Parameters
    ----------
    path : str
    overrides : dict, optional
        ``{"output": {"path": ..., "overwrite": ...}}``-style values from the command line,
        merged over the file's before validation.

    Returns
    -------
    Campaign
        See :func:`validate`; ``campaign.yaml`` holds the file's text.

    Raises
    ------
    CampaignError
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CampaignError(path, [f"cannot read the campaign file: {exc.strerror or exc}"]) \
            from None
    try:
        raw, lines, dups = _parse(text)
    except _Unreasonable as exc:
        raise CampaignError(path, [f"invalid YAML: {exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CampaignError(path, [f"invalid YAML: {where}{problem}"]) from None
    problems = [f"{_loc(p)} (line {ln}): duplicate key" for p, ln in dups]
    for sec, vals in (overrides or {}).items():
        if vals:
            if not isinstance(raw, dict):
                break
            raw.setdefault(sec, {})
            if isinstance(raw[sec], dict):
                raw[sec].update(vals)
    try:
        c = validate(raw, os.path.dirname(os.path.abspath(path)), source=path, lines=lines,
                     yaml=text)
    except CampaignError as exc:
        raise CampaignError(path, problems + exc.problems) from None
    if problems:
        raise CampaignError(path, problems)
    return c


def schema_help(schema=SCHEMA, indent=0):
    """The schema as indented ``key: default -- help`` lines (for ``--help`` and docs)."""
    out = []
    pad = "  " * indent
    for key, (checker, default, text) in schema.items():
        if isinstance(checker, dict):
            out.append(f"{pad}{key}:{'  (required)' if default is REQUIRED else ''}  # {text}")
            out.extend(schema_help(checker, indent + 1))
        elif isinstance(checker, list):
            out.append(f"{pad}{key}:{'  (required)' if default is REQUIRED else ''}  # {text}; "
                       "a list of:")
            out.extend(schema_help(checker[0], indent + 2))
        else:
            d = "(required)" if default is REQUIRED else ("-" if default is None else default)
            if isinstance(d, bool):
                d = str(d).lower()
            out.append(f"{pad}{key}: {d}  # {text}")
    return out


def validate_source(raw, base_dir, label, source="command line", kind=Input):
    """Validate one input / reference description (for the one-off commands).

    ``raw`` is a dict with ``path`` and optionally ``frames``, ``format``, ``name`` ...;
    problems are reported under ``label`` (e.g. ``--reference``).  Returns a ``kind``
    (:class:`~quests_hpc.campaign.model.Input` or ``Reference``).
    """
    ctx = _Ctx(base=base_dir, problems=[], lines={})
    out = _check_source(raw, SOURCE, [label], ctx)
    if ctx["problems"]:
        raise CampaignError(source, ctx["problems"])
    return source_from(kind, out)


def validate_parameters(raw, source="command line"):
    """Validate a ``parameters`` mapping (``k``, ``cutoff``, ``bandwidth``, ``threshold``)
    into :class:`~quests_hpc.campaign.model.Parameters`."""
    ctx = _Ctx(base=".", problems=[], lines={})
    out = _check_mapping(raw, SCHEMA["parameters"][0], ["parameters"], ctx)
    if ctx["problems"]:
        raise CampaignError(source, ctx["problems"])
    return parameters_from(out)
