"""The ``compress`` section of a campaign YAML: its schema and cross-field checks.

Each entry is one ``quests-hpc compress`` run (:func:`quests_hpc.dataset.compress_run.
run_compression`), its descriptor and kernel parameters from the campaign's
``parameters`` (k, cutoff and the *first* bandwidth; compression's kernel sums are always
float64, ``precision`` does not apply)::

    compress:
      - name: train10                  # default compress_<i>
        dataset: [frames/*.lammpstrj]  # files or globs, relative to the campaign file
        method: msc                    # default msc, or msc_conditional with a reference
        size: 0.1                      # a count >= 1 or a fraction in (0, 1)
        reference: train.xyz           # optional: the set to complement (msc_conditional)
        output: train10.extxyz         # required
        report: null                   # default OUT.h5 beside output; none: no report
        plot: null                     # default OUT_curve.png beside output; none: no plot
        seed: 0                        # k_means and random
        start: null                    # mean_fps only: its first structure

A ``reference`` selects ``msc_conditional``; it is refused with any other method (none of
them uses one), and ``msc_conditional`` without one is refused.  ``start`` is refused
for a method other than ``mean_fps``.  What needs the data (a size larger than the data
set, a ``start`` beyond it, a descriptor-file reference of other k or cutoff) is checked
when the campaign starts, before any work (:mod:`.compress_step`).

A campaign may consist of its ``compress`` section alone (no ``inputs``): it then writes
no results file, and ``output``, ``references``, ``measures`` and ``analysis`` are
refused as doing nothing.  The user's reference: docs/campaign-compress.md.
"""

import math
import os

from ..dataset.compress import METHODS
from .fields import (
    REQUIRED,
    Bad,
    choice_field,
    int_field,
    name_field,
    out_path_field,
    paths_field,
)


def size_field(v, ctx):
    """A number of structures (a whole number >= 1) or a fraction in (0, 1)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Bad(f"must be a number of structures >= 1 or a fraction in (0, 1), got "
                  f"{type(v).__name__} {v!r}")
    if not math.isfinite(v) or v <= 0:
        raise Bad(f"must be a number of structures >= 1 or a fraction in (0, 1), got {v!r}")
    if v >= 1 and v != int(v):
        raise Bad(f"a size >= 1 is a number of structures and must be whole, got {v!r}")
    return int(v) if v >= 1 else float(v)


size_field.type_name = "count >= 1 or fraction in (0, 1)"


def side_file_field(v, ctx):
    """A file name beside the output by default (None), or ``none`` (or false): no file."""
    if v is False or (isinstance(v, str) and v.lower() == "none"):
        return "none"
    return out_path_field(v, ctx)


side_file_field.type_name = "file name or none"


COMPRESS = {
    "name": (name_field, None, "name in the messages (default: compress_<i>)"),
    "dataset": (paths_field, REQUIRED, "the structures (each frame one), a file, glob "
                "or list of them; LAMMPS dumps or any file ASE reads"),
    "method": (choice_field(METHODS), None, f"{' | '.join(METHODS)} (default: msc, or "
               "msc_conditional with a reference; a reference with another method is "
               "refused)"),
    "size": (size_field, REQUIRED, "structures to keep, a count >= 1 or a fraction "
             "in (0, 1) of the data set (rounded); at most the data set's"),
    "reference": (paths_field, None, "an existing training set to complement (structures, "
                  "or a descriptor file with the campaign's k and cutoff): msc_conditional"),
    "output": (out_path_field, REQUIRED, "the chosen structures, extxyz (never "
               "replaces a file; a rerun skips a finished compression)"),
    "report": (side_file_field, None, "HDF5 report (default: OUT.h5 beside output; none: "
               "no report, and then a rerun cannot recognise a finished compression)"),
    "plot": (side_file_field, None, "compression curve picture (default: OUT_curve.png; "
             "none: no picture)"),
    "seed": (int_field(0), 0, "seed of k_means and random"),
    "start": (int_field(0), None, "mean_fps only: its first structure (default: the one of "
              "largest entropy)"),
}

#: Sections that do nothing in a campaign without inputs (compress only).
UNUSED_WITHOUT_INPUTS = ("references", "output", "measures", "analysis")


def _method_problems(i, e, given):
    """The entry's method, reference and start; its default method filled in (``given``:
    the entry as written: a method refused by its checker is not defaulted)."""
    out = []
    if e.get("method") is None and isinstance(given, dict) and given.get("method") is not None:
        return out  # an unknown method: reported by its checker
    if e.get("method") is None:
        e["method"] = "msc_conditional" if e.get("reference") else "msc"
    if e.get("reference") and e["method"] != "msc_conditional":
        out.append(([i, "reference"], f"the method {e['method']} does not use a reference "
                    "set (msc_conditional does: leave `method` out, or set it to "
                    "msc_conditional)"))
    if e["method"] == "msc_conditional" and not e.get("reference"):
        out.append(([i, "reference"], "msc_conditional needs a reference set (the training "
                    "set to complement); without one use msc"))
    if e.get("start") is not None and e["method"] != "mean_fps":
        out.append(([i, "start"], f"only mean_fps has a first structure; the method "
                    f"{e['method']} does not use `start`"))
    return out


def entry_outputs(output, report=None, plot=None):
    """``(output, report, plot)`` of an entry: report and plot beside the output by
    default (None), None for ``none``."""
    stem = os.path.splitext(output)[0]
    side = []
    for v, default in ((report, stem + ".h5"), (plot, stem + "_curve.png")):
        side.append(None if v == "none" else (default if v is None else v))
    return (output, *side)


def compress_problems(entries, given, results_path):
    """Cross-field problems of the normalised ``compress`` entries (``given``: as written),
    as ``(path, message)`` pairs (``path`` below ``compress``); default names and methods
    filled in."""
    out, names, written = [], [], {}
    for i, e in enumerate(entries):
        if not e:
            continue
        if e.get("name") is None:
            e["name"] = f"compress_{i}"
        if e["name"] in names:
            out.append(([i, "name"], f"name {e['name']!r} is used twice; give each a "
                        "unique `name`"))
        names.append(e["name"])
        out += _method_problems(i, e, given[i] if i < len(given) else None)
        if e.get("output") is None:
            continue
        paths = entry_outputs(e["output"], e.get("report"), e.get("plot"))
        for key, p in zip(("output", "report", "plot"), paths):
            if p is None:
                continue
            if results_path and os.path.abspath(p) == os.path.abspath(results_path):
                out.append(([i, key], f"{p} is the campaign's results file (output.path)"))
            elif os.path.abspath(p) in written:
                out.append(([i, key], f"{p} is also written by {written[os.path.abspath(p)]}"))
            written.setdefault(os.path.abspath(p), f"compress[{i}].{key}")
    return out


def _compress_only_problems(raw, c):
    """A campaign without inputs needs a compress section, and the sections that would
    do nothing are refused (``raw``: the campaign as given)."""
    if not c.get("compress"):
        return [(["inputs"], "required key missing")]
    return [([key], "a campaign without inputs runs only its compress section and writes "
             f"no results file: remove `{key}` (or add inputs)")
            for key in UNUSED_WITHOUT_INPUTS if raw.get(key) not in (None, {}, [])]


def campaign_problems(raw, c):
    """The problems of the compress section and of what it changes in the campaign
    (inputs and output not required without inputs), as ``(path, message)`` pairs;
    ``raw`` the campaign as given, ``c`` the normalised dict (entries completed)."""
    results = (c.get("output") or {}).get("path")
    given = raw.get("compress")
    given = given if isinstance(given, list) else [given]
    out = [(["compress"] + p, m)
           for p, m in compress_problems(c.get("compress") or [], given, results)]
    if "inputs" not in raw or raw["inputs"] is None:
        return out + _compress_only_problems(raw, c)
    if not c.get("inputs"):
        out.append((["inputs"], "needs at least one input"))
    if c.get("output") is None:
        out.append((["output"], "required key missing"))
    return out
