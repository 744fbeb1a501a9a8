"""Dataset-level one-off measures (``quests-hpc entropy`` / ``quests-hpc overlap``).

The selected frames of an input form one data set whose descriptors stay distributed
over the ranks (each frame through the MPI pipeline); H and D are ring passes over all
ranks' rows, overlap a kernel sum against a shared reference.  Results are printed by
rank 0 and returned on every rank; no results file is written (use ``quests-hpc run``
or ``dh`` for per-atom results).  All functions are collective.
"""

import math
import time

import numpy as np

from ..errors import QuestsInputError


def dataset_descriptors(comm, spec, params):
    """This rank's rows of the descriptors of every selected frame of ``spec``.

    Returns
    -------
    x_local : ndarray (n_local, 2k-1)
    n_frames : int
    """
    from .budget import check_source
    from .frames import frame_descriptors_in_order
    from .references import require_environments
    from .sources import InputSource

    src = InputSource(spec, comm)
    try:
        sel = src.select(spec.get("frames", "all"))
        if not sel:
            raise QuestsInputError(f"{src.files[0]}: the frame selection "
                                   f"{spec.get('frames')!r} selects no frame (the file holds "
                                   f"{len(src)} complete frames)")
        label = f"input {spec['name']}"
        require_environments(src, sel, spec.get("frames", "all"), label)
        check_source(comm, src, sel, params, False, label)  # before any descriptor
        parts = []
        for i in sel:
            d, _ = frame_descriptors_in_order(comm, src.read(i), params)
            parts.append(d)
    finally:
        src.close()
    k = params["k"]
    x = np.concatenate(parts) if parts else np.empty((0, 2 * k - 1))
    return x, len(sel)


def entropy_of(comm, spec, params, out=print):
    """Entropy H and diversity D of the data set made of the selected frames.

    Returns
    -------
    dict
        ``n``, ``n_frames``, ``bandwidths``, ``entropy``, ``diversity`` (lists per h),
        ``log_n``, ``seconds``.
    """
    from ..parallel import measures

    t0 = time.perf_counter()
    hs = list(params["bandwidth"])
    x, nf = dataset_descriptors(comm, spec, params)
    H, D = measures.entropy_and_diversity(comm, x, hs)
    n = int(comm.allreduce(len(x)))
    res = {"n": n, "n_frames": nf, "bandwidths": hs, "entropy": np.atleast_1d(H).tolist(),
           "diversity": np.atleast_1d(D).tolist(), "log_n": math.log(n),
           "seconds": time.perf_counter() - t0}
    if comm.rank == 0:
        out(f"{spec['name']}: {n} environments from {nf} frame(s); k = {params['k']}, "
            f"cutoff = {params['cutoff']} A; log n = {res['log_n']:.4f} nats")
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
    from ..parallel import measures
    from .references import reference_descriptors, share_reference

    t0 = time.perf_counter()
    hs = list(params["bandwidth"])
    thr = float(params.get("threshold", 0.0))
    xr, info = reference_descriptors(comm, reference, params)
    ref = share_reference(comm, xr)
    del xr
    try:
        y, nf = dataset_descriptors(comm, test, params)
        dh = np.atleast_2d(-ref.log_kernel_sum(y, hs))
    finally:
        ref.free()
    novel, n = measures.count_novel(comm, dh, thr)
    total = np.array([math.fsum(r) for r in dh]) if dh.shape[1] else np.zeros(len(hs))
    sums = np.sum(comm.allgather(total), axis=0)
    res = {"n": int(n), "n_reference": int(info["n_environments"]), "bandwidths": hs,
           "n_novel": [int(v) for v in novel], "novelty": [int(v) / n for v in novel],
           "overlap": [1 - int(v) / n for v in novel], "dh_mean": (sums / n).tolist(),
           "threshold": thr, "seconds": time.perf_counter() - t0}
    if comm.rank == 0:
        out(f"{test['name']} ({n} environments, {nf} frame(s)) vs {reference['name']} "
            f"({res['n_reference']} environments); novel: dH > {thr:g}")
        for j, h in enumerate(hs):
            out(f"  h = {h:g} 1/A:  overlap = {res['overlap'][j]:.6f}   novelty = "
                f"{res['novelty'][j]:.6f} ({res['n_novel'][j]} novel)   mean dH = "
                f"{res['dh_mean'][j]:.4f}")
        out(f"  ({res['seconds']:.2f} s on {comm.size} rank(s))")
    return res
