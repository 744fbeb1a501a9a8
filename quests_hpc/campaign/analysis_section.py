"""The ``analysis`` section of a campaign YAML: schema, defaults and validation.

The table :data:`ANALYSIS` uses the campaign schema's format (``key -> (checker, default,
help)``, checkers from :mod:`quests_hpc.campaign.fields`), so the campaign validator can
take it as one more section::

    analysis:
      clusters:                 # clusters of covered atoms in every frame
        threshold: 0.0          # nodes: dH <= threshold
        r_edge: 3.0             # edges: nodes at most r_edge apart (Angstrom)
        column: fcc             # which dH column (reference name); default the first
        biconnected_max_size: 5000
      nucleation:               # CNT critical size per frame, fit of the size distribution
        temperature_file: melt_thermo.csv     # or temperature: 600 (or one per frame)
        t_melt: 1323.0
      plots: {formats: [png, pdf]}
      export: {format: lammps-dump}           # one file per frame for OVITO

:func:`check_analysis` validates a section on its own (every problem listed) and fills
the defaults; :func:`analysis_problems` gives the cross-field problems.
"""

import difflib
import os

from ..campaign.fields import (
    Bad,
    bool_field,
    choice_field,
    float_field,
    int_field,
    out_path_field,
    paths_field,
)
from ..errors import QuestsInputError
from .nucleation import CU_MISHIN


def _column(v, ctx):
    if v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        return v
    if isinstance(v, str) and v:
        return v
    raise Bad(f"must be a reference name, a 'ref@h=...' label or a column index; got {v!r}")


_column.type_name = "reference name or column index"


def _temperature(v, ctx):
    vals = v if isinstance(v, list) else [v]
    if not vals:
        raise Bad("must be a number or a list of numbers (K)")
    out = [float_field(0.0)(x, ctx) for x in vals]
    return out if isinstance(v, list) else out[0]


_temperature.type_name = "number > 0 (K) or one per frame"


def _pair(v, ctx):
    if not (isinstance(v, list) and len(v) == 2):
        raise Bad(f"must be [low, high], two numbers; got {v!r}")
    lo, hi = (float_field(0.0)(x, ctx) for x in v)
    if hi < lo:
        raise Bad(f"must be [low, high] with low <= high; got {v!r}")
    return [lo, hi]


_pair.type_name = "[low, high]"


def _range(v, ctx):
    if not (isinstance(v, list) and len(v) == 2):
        raise Bad(f"must be [start, stop], two integers; got {v!r}")
    return [int_field()(x, ctx) for x in v]


_range.type_name = "[start, stop]"


def _formats(v, ctx):
    vals = v if isinstance(v, list) else [v]
    ok = ("png", "pdf", "svg")
    for x in vals:
        if x not in ok:
            raise Bad(f"formats must be among {', '.join(ok)}; got {x!r}")
    return list(vals)


_formats.type_name = "png | pdf | svg, or a list"


def _elements(v, ctx):
    if v is None:
        return None
    vals = v.replace(",", " ").split() if isinstance(v, str) else v
    if not isinstance(vals, list) or not all(isinstance(x, str) and x for x in vals):
        raise Bad(f"must be element symbols, type 1 first (e.g. [Cu]); got {v!r}")
    return vals


_elements.type_name = "element list [Cu, Ni]"

CLUSTERS = {
    "threshold": (float_field(), 0.0, "nodes are atoms with dH <= threshold (nats)"),
    "r_edge": (float_field(0.0), 3.0, "nodes at most r_edge apart are joined (Angstrom)"),
    "column": (_column, None, "dH column: reference name, 'ref@h=..' label or index "
               "(default: the first)"),
    "biconnected_max_size": (int_field(2), None, "also find 2-connected components of "
                             "clusters up to this size (default: off)"),
}

NUCLEATION = {
    "temperature": (_temperature, None, "frame temperature (K): a number or one per frame"),
    "temperature_file": (paths_field, None, "CSV with columns step, temperature_K, matched "
                         "to the frames by timestep"),
    "t_melt": (float_field(0.0), CU_MISHIN["t_melt"], "melting temperature (K)"),
    "dh_melt": (float_field(0.0), CU_MISHIN["dh_melt"], "latent heat of melting (kJ/mol)"),
    "gamma_sl": (float_field(0.0), CU_MISHIN["gamma_sl"], "solid-liquid interfacial "
                 "energy (J/m^2)"),
    "gamma_range": (_pair, list(CU_MISHIN["gamma_sl_range"]), "interfacial energies "
                    "spanning the critical-size band (J/m^2)"),
    "atomic_volume": (float_field(0.0), CU_MISHIN["atomic_volume"], "volume per atom "
                      "(Angstrom^3), turns radii into atom counts"),
    "fit": (bool_field, True, "fit log N_r = log N_0 - 4 pi r^3 dg/(3kT) - 4 pi r^2 "
            "gamma/(kT) to the pre-nucleation size distribution"),
    "fit_max_size": (int_field(2), None, "largest cluster size in the fit"),
    "fit_frames": (_range, None, "[start, stop) frame positions of the fit (default: the "
                   "frames before the largest cluster stays above the critical size)"),
}

PLOTS = {
    "enabled": (bool_field, True, "write the pictures next to the results"),
    "directory": (out_path_field, None, "where (default: <results>_plots/)"),
    "formats": (_formats, ["png"], "png, pdf and/or svg"),
}

EXPORT = {
    "format": (choice_field(("lammps-dump", "extxyz")), "lammps-dump", "file format"),
    "compress": (bool_field, True, "gzip the files (.gz)"),
    "directory": (out_path_field, None, "where (default: <results>_frames/)"),
    "elements": (_elements, None, "element of each LAMMPS type, type 1 first"),
}

ANALYSIS = {
    "clusters": (CLUSTERS, None, "clusters of covered atoms per frame (default: off)"),
    "nucleation": (NUCLEATION, None, "CNT critical size per frame and the size-distribution "
                   "fit (needs clusters; default: off)"),
    "plots": (PLOTS, {}, "pictures of the results"),
    "export": (EXPORT, None, "one file per frame with dH and cluster columns for OVITO "
               "(default: off)"),
}


def _check(value, schema, where, problems, ctx):
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{where}: must be a mapping, got {type(value).__name__} {value!r}")
        return None
    out = {}
    for key in value:
        if key not in schema:
            hint = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.6)
            problems.append(f"{where}.{key}: unknown key" + (
                f" (did you mean {hint[0]!r}?)" if hint else f"; known: {', '.join(schema)}"))
    for key, (checker, default, _) in schema.items():
        v = value.get(key)
        if isinstance(checker, dict):
            out[key] = (None if v is None and default is None
                        else _check(default if v is None else v, checker, f"{where}.{key}",
                                    problems, ctx))
        elif v is None:
            out[key] = list(default) if isinstance(default, list) else default
        else:
            try:
                out[key] = checker(v, ctx)
            except Bad as exc:
                problems.append(f"{where}.{key}: {exc}")
    return out


def analysis_problems(a):
    """Cross-field problems of a normalised ``analysis`` section (list of str)."""
    out = []
    nuc = a.get("nucleation")
    if nuc is not None:
        if a.get("clusters") is None:
            out.append("analysis.nucleation: needs analysis.clusters")
        if nuc.get("temperature") is None and nuc.get("temperature_file") is None:
            out.append("analysis.nucleation: give temperature (K) or temperature_file")
    return out


def check_analysis(value, base=None):
    """Validate and normalise an ``analysis`` section (defaults filled in).

    Parameters
    ----------
    value : dict or None
    base : str, optional
        Directory relative paths are resolved against (default: the working directory).

    Raises
    ------
    QuestsInputError
        Listing every problem.
    """
    problems = []
    out = _check(value, ANALYSIS, "analysis", problems, {"base": base or os.getcwd()})
    if out is not None:
        problems += analysis_problems(out)
    if problems:
        raise QuestsInputError("analysis: " + "; ".join(problems))
    return out
