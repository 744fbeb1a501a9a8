"""Dataset-level one-off measures (``quests-hpc entropy`` / ``quests-hpc overlap``).

The selected frames of an input form one data set whose descriptors stay distributed
over the ranks (each frame through the frame pipeline); H and D are ring passes over all
ranks' rows, overlap a kernel sum against a shared reference.  Results are printed by
rank 0 and returned on every rank; no results file is written (use ``quests-hpc run``
or ``dh`` for per-atom results).  All functions are collective.
"""

import math
import time
from dataclasses import replace

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..parallel import measures
from ..parallel.frame_pipeline import run_frame


def _open(comm, spec, params):
    """The input of ``spec``, its selected frames (checked) and the pipeline request."""
    from .budget import check_source
    from .references import require_environments
    from .sources import InputSource

    src = InputSource(spec, comm)
    try:
        sel = src.select(spec.frames)
        if not sel:
            raise QuestsInputError(f"{src.files[0]}: the frame selection "
                                   f"{spec.frames!r} selects no frame (the file holds "
                                   f"{len(src)} complete frames)")
        label = f"input {spec.name}"
        require_environments(src, sel, spec.frames, label)
        # before any descriptor (entropy keeps them all; overlap one chunk at a time)
        check_source(comm, src, sel, params, False, label, keep_descriptors=True)
    except BaseException:
        src.close()
        raise
    return src, sel, params


def dataset_descriptors(comm, spec, params):
    """This rank's rows of the descriptors of every selected frame of ``spec``.

    Returns
    -------
    x_local : ndarray (n_local, width)
    n_frames : int
    """
    src, sel, request = _open(comm, spec, params)
    request = replace(request, delta_entropy=False, descriptors=True)
    try:
        parts = [run_frame(comm, src, i, [], request).descriptors for i in sel]
    finally:
        src.close()
    x = np.concatenate(parts) if parts else np.empty((0, request.width))
    return x, len(sel)


def dataset_dh(comm, spec, reference, params):
    """dH of every atom of the selected frames against ``reference``: this rank's rows
    ``(n_h, n_local)``, descriptors computed and dropped chunk by chunk."""
    src, sel, request = _open(comm, spec, params)
    try:
        parts = [run_frame(comm, src, i, [reference], request).dh for i in sel]
    finally:
        src.close()
    n_h = len(request.bandwidths)
    return (np.concatenate(parts).T if parts else np.empty((n_h, 0))), len(sel)


def entropy_of(comm, spec, params, out=print):
    """Entropy H and diversity D of the data set made of the selected frames.

    Returns
    -------
    dict
        ``n``, ``n_frames``, ``bandwidths``, ``entropy``, ``diversity`` (lists per h),
        ``log_n``, ``seconds``.
    """
    t0 = time.perf_counter()
    hs = list(params.bandwidths)
    x, nf = dataset_descriptors(comm, spec, params)
    H, D = measures.entropy_and_diversity(comm, x, hs, precision=params.precision)
    n = int(pcomm.allreduce(np.array([len(x)], np.int64), "sum", comm)[0])
    res = {"n": n, "n_frames": nf, "bandwidths": hs, "entropy": np.atleast_1d(H).tolist(),
           "diversity": np.atleast_1d(D).tolist(), "log_n": math.log(n),
           "seconds": time.perf_counter() - t0}
    if comm.rank == 0:
        out(f"{spec.name}: {n} environments from {nf} frame(s); k = {params.k}, "
            f"cutoff = {params.cutoff} A; log n = {res['log_n']:.4f} nats")
        for h, e, d in zip(hs, res["entropy"], res["diversity"]):
            out(f"  h = {h:g} 1/A:  H = {e:.6f} nats   D = {d:.6f}")
        out(f"  ({res['seconds']:.2f} s on {comm.size} rank(s))")
    return res


def overlap_of(comm, test, reference, params, out=print):
    """Overlap (dH <= threshold) and novelty of a test data set against a reference.

    Returns
    -------
    dict
        ``n``, ``n_reference``, ``bandwidths``, ``overlap``, ``novelty``, ``n_novel``,
        ``dh_mean``, ``seconds``.
    """
    from .references import load_reference

    t0 = time.perf_counter()
    hs = list(params.bandwidths)
    thr = params.threshold
    ref, info = load_reference(comm, reference, params)
    try:
        dh, nf = dataset_dh(comm, test, ref, params)
    finally:
        ref.free()
    summary = measures.summarize_dh(comm, dh, thr, root=0)
    summary = pcomm.bcast(summary, comm)
    n = summary[0]["n"]
    novel = [b["n_novel"] for b in summary]
    res = {"n": int(n), "n_reference": int(info["n_environments"]), "bandwidths": hs,
           "n_novel": [int(v) for v in novel], "novelty": [int(v) / n for v in novel],
           "overlap": [1 - int(v) / n for v in novel], "dh_mean": [b["mean"] for b in summary],
           "threshold": thr, "seconds": time.perf_counter() - t0}
    if comm.rank == 0:
        out(f"{test.name} ({n} environments, {nf} frame(s)) vs {reference.name} "
            f"({res['n_reference']} environments); novel: dH > {thr:g}")
        for j, h in enumerate(hs):
            out(f"  h = {h:g} 1/A:  overlap = {res['overlap'][j]:.6f}   novelty = "
                f"{res['novelty'][j]:.6f} ({res['n_novel'][j]} novel)   mean dH = "
                f"{res['dh_mean'][j]:.4f}")
        out(f"  ({res['seconds']:.2f} s on {comm.size} rank(s))")
    return res
