"""The ``analysis`` section of a campaign YAML: its schema and cross-field checks.

The table :data:`ANALYSIS` uses the campaign schema's format (``key -> (checker, default,
help)``, checkers from :mod:`quests_hpc.campaign.fields`); :mod:`quests_hpc.campaign.schema`
validates it as one more section and :func:`analysis_problems` adds the cross-field
problems.  The normalised section goes as is to
:func:`quests_hpc.analysis.campaign_hooks.run_analyses` (the analyses know nothing of
campaigns)::

    analysis:
      clusters:                 # clusters of covered atoms in every frame
        threshold: 0.0          # nodes: dH <= threshold
        r_edge: 3.0             # edges: nodes at most r_edge apart (Angstrom)
        column: fcc             # which dH column (reference name); default the first
        biconnected_max_size: 5000
      nucleation:               # CNT critical size per frame, fit of the size distribution
        temperature_file: melt_thermo.csv     # or temperature: 600 (or one per frame)
        t_melt: 1323.0          # the material constants are required (here: Mishin Cu)
        dh_melt: 11.99
        gamma_sl: 0.177
        gamma_range: [0.177, 0.221]
        atomic_volume: 12.893
      plots: {formats: [png, pdf]}
      export: {format: lammps-dump}           # one file per frame for OVITO

"""

from .fields import (
    Bad,
    bool_field,
    choice_field,
    float_field,
    int_field,
    numbers,
    out_path_field,
    paths_field,
)


def _column(v, ctx):
    if v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        return v
    if isinstance(v, str) and v:
        return v
    raise Bad(f"must be a reference name, a 'ref@h=...' label or a column index; got {v!r}")


_column.type_name = "reference name or column index"


def _temperature(v, ctx):
    out = numbers(v, ctx, "must be a number or a list of numbers (K)")
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

#: The material constants of the nucleation analysis: required, never assumed (what each
#: is, and the bundled example's value -- the paper's Mishin Cu EAM -- named when missing).
MATERIAL = {
    "t_melt": ("melting temperature (K)", "1323.0"),
    "dh_melt": ("latent heat of melting (kJ/mol)", "11.99"),
    "gamma_sl": ("solid-liquid interfacial energy (J/m^2)", "0.177"),
    "gamma_range": ("interfacial energies [low, high] spanning the critical-size band (J/m^2)",
                    "[0.177, 0.221]"),
    "atomic_volume": ("volume per atom (Angstrom^3), which turns radii into atom counts",
                      "12.893"),
}

NUCLEATION = {
    "temperature": (_temperature, None, "frame temperature (K): a number or one per frame"),
    "temperature_file": (paths_field, None, "CSV with columns step, temperature_K, matched "
                         "to the frames by timestep"),
    "t_melt": (float_field(0.0), None, "required: " + MATERIAL["t_melt"][0]),
    "dh_melt": (float_field(0.0), None, "required: " + MATERIAL["dh_melt"][0]),
    "gamma_sl": (float_field(0.0), None, "required: " + MATERIAL["gamma_sl"][0]),
    "gamma_range": (_pair, None, "required: " + MATERIAL["gamma_range"][0]),
    "atomic_volume": (float_field(0.0), None, "required: " + MATERIAL["atomic_volume"][0]),
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


def analysis_problems(a):
    """Cross-field problems of a normalised ``analysis`` section (list of str)."""
    out = []
    nuc = a.get("nucleation")
    if nuc is not None:
        if a.get("clusters") is None:
            out.append("analysis.nucleation: needs analysis.clusters")
        if nuc.get("temperature") is None and nuc.get("temperature_file") is None:
            out.append("analysis.nucleation: give temperature (K) or temperature_file")
        for key, (what, example) in MATERIAL.items():
            if nuc.get(key) is None:
                out.append(f"analysis.nucleation.{key}: required key missing: the material's "
                           f"{what}; no material is assumed (the paper's Mishin Cu: "
                           f"{key}: {example})")
    return out
