"""Reading results files: frames, summary tables, a text description, comparisons.

Everything here is serial (plain h5py, any build); call it on one rank.

>>> from quests_hpc.results import reader
>>> with reader.open_results("results.h5") as f:           # doctest: +SKIP
...     names = reader.complete_frames(f)
...     fr = reader.read_frame(f, names[0])               # dict: id, delta_entropy, ...
"""

import json
import math
import os

import numpy as np

from ..errors import QuestsInputError
from ..species import check_file_species
from . import layout as L


def open_results(path, mode="r"):
    """Open a results file, checking that it is one (raises :class:`QuestsInputError`)."""
    import h5py

    try:
        f = h5py.File(path, mode)
    except FileNotFoundError:
        raise QuestsInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise QuestsInputError(_unreadable(path, exc)) from None
    if f.attrs.get("format") != L.FORMAT:
        f.close()
        raise QuestsInputError(f"{path}: not a quests-hpc results file (no format attribute "
                               f"{L.FORMAT!r})")
    return f


def _unreadable(path, exc):
    """Why h5py could not open ``path``: a run that holds it (its lock file names it), another
    program that has it open for writing (HDF5's file lock), or not HDF5 at all."""
    if "lock" not in str(exc).lower():
        return f"{path}: not a readable HDF5 file ({exc})"
    from .lock import describe_holder, lock_path, read_lock

    holder = read_lock(lock_path(os.path.realpath(path)))
    if holder:
        return (f"{path} is being written by another run ({describe_holder(holder)}); wait for "
                "it to finish and rerun")
    return (f"{path} is open for writing in another program (HDF5: {exc}); close it there "
            "and rerun")


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def frame_names(f):
    """Frame group names in campaign order (from ``/summary/frames/frame``)."""
    if L.summary_path("frame") in f:
        return [_text(v) for v in f[L.summary_path("frame")][()]]
    return sorted(f[L.FRAMES]) if L.FRAMES in f else []


def complete_frames(f):
    """Names of the frames marked complete, in campaign order."""
    return [n for n in frame_names(f) if bool(f[L.FRAMES][n].attrs.get("complete", False))]


def read_frame(f, name, datasets=None):
    """Arrays and attributes of one frame.

    Parameters
    ----------
    f : h5py.File or str
    name : str
        Group name under ``/frames``.
    datasets : sequence of str, optional
        Which datasets to read (default all).

    Returns
    -------
    dict
        Dataset arrays by name plus ``"attrs"`` (a dict of the group's attributes).
    """
    if isinstance(f, (str, bytes)) or hasattr(f, "__fspath__"):
        with open_results(f) as fh:
            return read_frame(fh, name, datasets)
    if name not in f[L.FRAMES]:
        raise QuestsInputError(f"{f.filename}: no frame {name!r}")
    g = f[L.FRAMES][name]
    out = {k: g[k][()] for k in g if datasets is None or k in datasets}
    out["attrs"] = {k: (_text(v) if isinstance(v, (str, bytes)) else v) for k, v in g.attrs.items()}
    return out


def read_table(f, group):
    """Columns of a table group (``summary/frames``, ``summary/overlap``, ``learning_curve``)."""
    if group not in f:
        return None
    g = f[group]
    out = {k: g[k][()] for k in g}
    out["attrs"] = dict(g.attrs)
    return out


def load_descriptors(path, k=None, cutoff=None, rows=None, species=None):
    """Descriptors of every complete frame of a results file, concatenated in frame order.

    For using a results file written with ``descriptors`` as a reference.  Refuses a file
    whose ``k``, ``cutoff`` or species differ from the given ones.  ``rows`` (a slice with start and
    stop) reads only those rows of the concatenation (e.g. one rank's shard).

    Returns
    -------
    x : ndarray, shape (n, 2k-1)
    meta : dict
        ``k``, ``cutoff``, ``frames`` (names used), ``n`` (rows of all frames).
    """
    with open_results(path) as f:
        fk, fc = int(f.attrs["k"]), float(f.attrs["cutoff"])
        if k is not None and int(k) != fk:
            raise QuestsInputError(f"{path}: descriptors were computed with k={fk}, this run "
                                   f"uses k={k}")
        if cutoff is not None and abs(float(cutoff) - fc) > 1e-12:
            raise QuestsInputError(f"{path}: descriptors were computed with cutoff={fc}, this "
                                   f"run uses cutoff={cutoff}")
        check_file_species(json.loads(f.attrs.get("species", "null")), species, path)
        names = [n for n in complete_frames(f) if "descriptors" in f[L.FRAMES][n]]
        if not names:
            raise QuestsInputError(f"{path}: no complete frame with descriptors (write them "
                                   "with `quests-hpc descriptors` or measures.descriptors: true)")
        sets = [f[L.FRAMES][n]["descriptors"] for n in names]
        total = sum(int(d.shape[0]) for d in sets)
        lo, hi = (0, total) if rows is None else (int(rows.start), int(rows.stop))
        parts, start = [], 0
        for d in sets:
            a, b = max(lo, start), min(hi, start + int(d.shape[0]))
            if a < b:
                parts.append(d[a - start:b - start])
            start += int(d.shape[0])
        width = int(sets[0].shape[1])
        x = np.concatenate(parts) if parts else np.empty((0, width))
    return x, {"k": fk, "cutoff": fc, "frames": names, "n": total}


def descriptor_rows(path, k, cutoff, rows=None, species=None):
    """Rows of a descriptor file: a results file (``quests-hpc descriptors``) or the
    descriptor-file format of :mod:`quests_hpc.io.reference`; ``k``/``cutoff``/species
    checked.
    ``rows``: a slice of the rows to read (all by default).

    Returns ``(x, (n_rows, n_frames))``, ``n_rows`` those of the whole file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except OSError as exc:
        raise QuestsInputError(f"{path}: unreadable HDF5 file ({exc})") from None
    if fmt == "quests-hpc-descriptors":
        from ..io.reference import descriptor_info, read_descriptors

        n_rows = int(descriptor_info(path)["shape"][0])
        x, _ = read_descriptors(path, k, cutoff, rows=rows, species=species)
        with h5py.File(path, "r") as f:  # structures: the one small column of every row
            n_struct = len(np.unique(f["structure"][()])) if "structure" in f else 1
        return x, (n_rows, n_struct)
    x, meta = load_descriptors(path, k, cutoff, rows=rows, species=species)
    return x, (meta["n"], len(meta["frames"]))


def _holder(path):
    """Who holds the output lock of ``path`` (another process), or None."""
    import os

    from .lock import describe_holder, lock_path, read_lock

    info = read_lock(lock_path(os.path.realpath(path)))
    if info is None or info.get("pid") == os.getpid():
        return None
    return describe_holder(info) if info else "unreadable lock file"


def describe(path, max_frames=20):
    """A human-readable summary of a results file (the ``quests-hpc info`` text)."""
    with open_results(path) as f:
        names = frame_names(f)
        lines = _describe_file(f, path, names)
        lines += _describe_frames(f, names, max_frames)
        lines += _describe_overlap(f)
        lines += _describe_learning_curve(f)
    return "\n".join(lines)


def _describe_file(f, path, names):
    """``describe``: the file's attributes (writer, campaign, parameters, references)."""
    lines = []
    a = f.attrs
    done = complete_frames(f)
    refs = json.loads(a.get("references", "[]"))
    lines.append(f"{path}: {L.FORMAT} v{a.get('format_version')}, written by quests-hpc "
                 f"{a.get('quests_hpc_version')} ({a.get('writer')} writer, "
                 f"{a.get('mpi_size')} rank(s)), created {a.get('created')}")
    lines.append(f"  campaign: {a.get('campaign_name', '-')}; frames complete: "
                 f"{len(done)}/{len(names)}; campaign complete: {bool(a.get('complete'))}")
    holder = _holder(path)
    if holder:
        lines.append(f"  in use by a run now ({holder}): it may still change")
    lines.append(f"  k = {a.get('k')}, cutoff = {a.get('cutoff')} A, bandwidths = "
                 f"{np.asarray(a.get('bandwidths')).tolist()} 1/A, novelty threshold "
                 f"dH > {a.get('threshold')}")
    if "species" in a:
        lines.append(f"  species {', '.join(json.loads(a['species']))}: descriptor "
                     f"{a.get('descriptor_layout', '?')}")
    for r in refs:
        lines.append(f"  reference {r['name']}: {r['path']} ({r['n_environments']} "
                     f"environments, sha256 {r['sha256'][:16]}...)")
    soft = json.loads(a.get("software", "{}"))
    if soft:
        lines.append("  software: " + ", ".join(f"{k} {v}" for k, v in soft.items()))
    return lines


def _describe_frames(f, names, max_frames):
    """``describe``: the frame table (first ``max_frames`` frames) and per-frame datasets."""
    lines = []
    t = read_table(f, L.SUMMARY_FRAMES)
    if not names:
        return lines
    lines.append("")
    head = f"  {'frame':<24}{'timestep':>10}{'natoms':>10}{'done':>6}{'wall s':>9}"
    has_dh = t is not None and "dh_mean" in t
    if has_dh:
        head += f"{'novel %':>9}{'dH mean':>10}{'dH min':>10}{'dH max':>10}"
    if t is not None and "entropy" in t:
        head += f"{'H':>9}"
    lines.append(head + ("   (first reference, first bandwidth)" if has_dh else ""))
    for i, n in enumerate(names[:max_frames]):
        g = f[L.FRAMES][n]
        row = (f"  {n:<24}{int(g.attrs['timestep']):>10}{int(g.attrs['natoms']):>10}"
               f"{'yes' if g.attrs['complete'] else 'no':>6}"
               f"{float(g.attrs['wall_time']):>9.2f}")
        if has_dh:
            row += (f"{100 * t['novelty'][i, 0, 0]:>9.2f}{t['dh_mean'][i, 0, 0]:>10.3f}"
                    f"{t['dh_min'][i, 0, 0]:>10.3f}{t['dh_max'][i, 0, 0]:>10.3f}")
        if t is not None and "entropy" in t:
            row += f"{t['entropy'][i, 0]:>9.4f}"
        lines.append(row)
    if len(names) > max_frames:
        lines.append(f"  ... {len(names) - max_frames} more frames")
    g = f[L.FRAMES][names[0]]
    lines.append("  per-frame datasets: " + ", ".join(
        f"{k} {g[k].shape} {g[k].dtype}" for k in g))
    return lines


def _describe_overlap(f):
    """``describe``: the overlap table, if complete."""
    lines = []
    o = read_table(f, L.SUMMARY_OVERLAP)
    if o is not None and bool(o["attrs"].get("complete")):
        lines.append("")
        lines.append("  overlap table (fraction of environments with dH <= threshold):")
        ins = [_text(v) for v in o["attrs"]["inputs"]]
        rs = [_text(v) for v in o["attrs"]["references"]]
        hs = np.asarray(o["attrs"]["bandwidths"])
        for i, iname in enumerate(ins):
            for j, rname in enumerate(rs):
                vals = ", ".join(f"h={h:g}: {o['overlap'][i, j, b]:.4f}"
                                 for b, h in enumerate(hs))
                lines.append(f"    {iname} vs {rname} ({int(o['n_atoms'][i, j, 0])} "
                             f"environments): {vals}")
    return lines


def _describe_learning_curve(f):
    """``describe``: the learning curve and its fit, if complete."""
    lines = []
    lc = read_table(f, "learning_curve")
    if lc is not None and bool(lc["attrs"].get("complete")):
        lines.append("")
        lines.append(f"  learning curve of {_text(lc['attrs']['dataset'])} "
                     f"({int(lc['attrs']['repeats'])} repeats):")
        hs = np.asarray(lc["attrs"]["bandwidths"])
        for b, h in enumerate(hs):
            pts = ", ".join(f"{int(n)}: {m:.3f}" for n, m in zip(lc["sizes"], lc["mean"][b]))
            lines.append(f"    h={h:g}: H(N) = {pts}")
            a_, b_, c_ = lc["fit"][b]
            lines.append(f"      fit a - b exp(-c (log N)^2): a = {a_:.4f}, b = {b_:.4f}, "
                         f"c = {c_:.4g} (rmse {lc['fit_rmse'][b]:.3g}); information gap "
                         f"at the largest N: {lc['information_gap'][b, -1]:.4f} nats")
            if np.isfinite(a_) and a_ > math.log(float(np.max(lc["sizes"]))) + 1.0:
                # H(N) <= log N for every subset: an asymptote far above log N_max is
                # an extrapolation the fitted points do not support.
                lines.append("      warning: the asymptote is not determined by these "
                             "points (a > log N_max + 1): the curve has not levelled off "
                             "within the fitted range; use more sizes (learning_curve.num)")
    return lines


def _equal(x, y, atol, rtol):
    if x.shape != y.shape:
        return False
    if x.dtype.kind in "fc" and y.dtype.kind in "fc":
        return bool(np.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True))
    return bool(np.array_equal(x, y))


def diff_results(path_a, path_b, atol=0.0, rtol=0.0, ignore=L.VOLATILE_ATTRS,
                 ignore_datasets=L.VOLATILE_DATASETS):
    """Differences between two results files (empty list: same data).

    Compares the whole tree: object names, dataset shapes, dtypes and values (NaN equal
    to NaN; floats within ``atol``/``rtol``), attributes except ``ignore``.

    Returns
    -------
    list of str
    """
    import h5py

    out = []
    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        def attrs(name, oa, ob):
            ka = set(oa.attrs) - set(ignore)
            kb = set(ob.attrs) - set(ignore)
            if ka != kb:
                out.append(f"{name}: attributes differ: {sorted(ka ^ kb)}")
            for k in sorted(ka & kb):
                va, vb = np.asarray(oa.attrs[k]), np.asarray(ob.attrs[k])
                if not _equal(va, vb, atol, rtol):
                    out.append(f"{name}: attribute {k}: {oa.attrs[k]!r} != {ob.attrs[k]!r}")

        def walk(name, ga, gb):
            attrs(name, ga, gb)
            if isinstance(ga, h5py.Dataset) or isinstance(gb, h5py.Dataset):
                if not (isinstance(ga, h5py.Dataset) and isinstance(gb, h5py.Dataset)):
                    out.append(f"{name}: dataset in one file, group in the other")
                    return
                if ga.shape != gb.shape or ga.dtype != gb.dtype:
                    out.append(f"{name}: {ga.shape} {ga.dtype} != {gb.shape} {gb.dtype}")
                    return
                if name.rsplit("/", 1)[-1] in ignore_datasets:
                    return
                if not _equal(ga[()], gb[()], atol, rtol):
                    da, db = ga[()], gb[()]
                    err = (float(np.nanmax(np.abs(da - db))) if da.dtype.kind == "f" else "-")
                    out.append(f"{name}: values differ (max abs difference {err})")
                return
            if set(ga) != set(gb):
                out.append(f"{name}: members differ: {sorted(set(ga) ^ set(gb))}")
            for k in sorted(set(ga) & set(gb)):
                walk(f"{name.rstrip('/')}/{k}", ga[k], gb[k])

        walk("/", fa, fb)
    return out
