"""One frame of a campaign: pipeline, dH against every reference, back to id order.

:func:`compute_frame` runs the MPI pipeline (:func:`quests_hpc.parallel.pipeline.
run_frame`: distribute -> halo -> descriptors), the kernel sums against each reference,
optionally the frame's entropy and diversity (ring pass), and then sends every owned
atom's results back to the rank whose :class:`~quests_hpc.campaign.sources.Share` holds
that atom (:func:`sort_back`).  Ranks in order then hold the results in id order, in
contiguous blocks: what :meth:`quests_hpc.results.writer.ResultsWriter.write_slab`
writes at exclusive-scan offsets.  Every function here is collective.
"""

import re
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import QuestsInputError


@dataclass
class FrameOutput:
    """Results of one frame on this rank, in the layout of its share (id order).

    Attributes
    ----------
    ids : ndarray (n_local,)
    dh : ndarray (n_local, n_refs * n_h) or None
        Column ``r * n_h + b``: reference ``r``, bandwidth ``b``.
    descriptors : ndarray (n_local, 2k-1) or None
    dh_summary : list or None
        On rank 0: per reference, per bandwidth, a dict ``n``, ``n_novel``, ``novelty``,
        ``overlap``, ``mean``, ``min``, ``max``.
    entropy, diversity : ndarray (n_h,) or None
    imbalance : float
        Owned atoms, max / mean over ranks.
    timings : dict
        Seconds per stage on this rank.
    """

    ids: np.ndarray
    dh: np.ndarray = None
    descriptors: np.ndarray = None
    dh_summary: list = None
    entropy: np.ndarray = None
    diversity: np.ndarray = None
    imbalance: float = 1.0
    timings: dict = field(default_factory=dict)


def sort_back(comm, owned_ids, share_ids, arrays):
    """Send rows of ``arrays`` (indexed like ``owned_ids``) to the ranks holding those ids.

    Parameters
    ----------
    comm : mpi4py communicator
    owned_ids : ndarray (n_owned,)
        Ids of the rows as they are now (e.g. spatially owned atoms).
    share_ids : ndarray (n_share,)
        Ids this rank must end up with: sorted, and the blocks of the ranks in rank order
        must be increasing (an id-sorted frame split in contiguous blocks).
    arrays : list of ndarray
        Row-aligned with ``owned_ids``.

    Returns
    -------
    list of ndarray
        Rows aligned with ``share_ids``.
    """
    from ..parallel.comm import alltoallv_rows

    share_ids = np.asarray(share_ids, dtype=np.int64)
    mine = None
    if len(share_ids):
        mine = (int(share_ids[0]), int(share_ids[-1]), bool(np.all(np.diff(share_ids) > 0)))
    blocks = comm.allgather(mine)
    ranks = [r for r, b in enumerate(blocks) if b is not None]
    starts = np.array([blocks[r][0] for r in ranks], dtype=np.int64)
    if any(blocks[a][1] >= blocks[b][0] for a, b in zip(ranks, ranks[1:])) or not all(
            blocks[r][2] for r in ranks):
        raise QuestsInputError("internal: the frame's shares are not contiguous id blocks")
    owned_ids = np.asarray(owned_ids, dtype=np.int64)
    pos = np.searchsorted(starts, owned_ids, side="right") - 1
    dest = np.asarray(ranks, dtype=np.int64)[np.clip(pos, 0, None)] if len(ranks) else pos
    order = np.argsort(dest, kind="stable")
    counts = np.bincount(dest, minlength=comm.size).astype(np.int64)
    got, recv_counts = alltoallv_rows(owned_ids[order], counts, comm)
    srt = np.argsort(got, kind="stable")
    ok = comm.allgather(bool(np.array_equal(got[srt], share_ids)))
    if not all(ok):
        raise QuestsInputError(f"internal: rank {ok.index(False)} did not receive the results "
                               "of exactly the atoms of its share")
    out = []
    for a in arrays:
        r, _ = alltoallv_rows(np.ascontiguousarray(a)[order], counts, comm, recv_counts)
        out.append(r[srt])
    return out


def compute_frame(comm, share, references, params, want, t_read=0.0):
    """Descriptors, dH and frame measures of one frame (collective).

    Parameters
    ----------
    comm : mpi4py communicator
    share : Share
        This rank's block of the frame.
    references : list of SharedReference
    params : dict
        ``k``, ``cutoff``, ``bandwidth`` (list), ``threshold``, ``balance``.
    want : dict
        ``delta_entropy``, ``descriptors``, ``entropy``, ``diversity`` (bools).
    t_read : float
        Seconds this rank spent reading the frame (reported as the ``read`` stage).

    Returns
    -------
    FrameOutput

    Raises
    ------
    QuestsInputError
        Bad input found while computing (e.g. two atoms at the same position), on every
        rank, its message prefixed with ``share.where`` (file, frame index, timestep).
    """
    try:
        return _compute_frame(comm, share, references, params, want, t_read)
    except QuestsInputError as exc:  # raised on every rank alike (collective stages)
        raise QuestsInputError(in_frame(share.where, exc)) from None


def in_frame(where, exc):
    """The message of ``exc`` (raised while computing a frame) prefixed with the frame.

    The same text on every rank: the rank that failed holds the error itself, the others
    a :class:`~quests_hpc.parallel.runtime.RankInputError` whose message is
    ``"<Type>: <message>"`` of the failed rank (the type is dropped).  Coincident atoms
    are named by their atom ids (the pipeline labels points with ids).
    """
    failures = getattr(exc, "failures", None)
    msg = failures[0][1] if failures else str(exc)
    if failures:
        head, sep, rest = msg.partition(": ")
        if sep and head.isidentifier():
            msg = rest
    msg = re.sub(r"^atoms (\S+) and (\S+) are at the same position", r"atom ids \1 and \2 are at "
                 "the same position", msg)
    return f"{where}: {msg}" if where and not msg.startswith(where) else msg


def _compute_frame(comm, share, references, params, want, t_read):
    from ..parallel import measures
    from ..parallel.pipeline import run_frame

    hs = list(params["bandwidth"])
    res = run_frame(comm, share.ids, share.positions, share.cell, share.pbc, None,
                    k=params["k"], cutoff=params["cutoff"], h=hs, keep_descriptors=True,
                    sync_timings=False, balance=params.get("balance", "uniform"),
                    timings={"read": t_read})
    times = dict(res.timings)
    desc = res.descriptors
    out = FrameOutput(ids=share.ids, timings=times)
    if res.summary is not None:
        out.imbalance = float(res.summary["imbalance"])

    t = time.perf_counter()
    cols, sums = [], []
    if want.get("delta_entropy"):
        for ref in references:
            dh = np.atleast_2d(-ref.log_kernel_sum(desc, hs))  # (n_h, n_owned)
            sums.append(measures.summarize_dh(comm, dh, params.get("threshold", 0.0), root=0))
            cols.append(dh)
    times["kernel_sums"] = time.perf_counter() - t
    if comm.rank == 0 and sums:
        out.dh_summary = sums

    if want.get("entropy") or want.get("diversity"):
        t = time.perf_counter()
        H, D = measures.entropy_and_diversity(comm, desc, hs)
        out.entropy, out.diversity = np.atleast_1d(H), np.atleast_1d(D)
        times["entropy"] = time.perf_counter() - t

    t = time.perf_counter()
    payload = []
    if cols:
        payload.append(np.concatenate(cols, axis=0).T)  # (n_owned, n_refs * n_h)
    if want.get("descriptors"):
        payload.append(desc)
    back = sort_back(comm, res.ids, share.ids, payload)
    if cols:
        out.dh = back.pop(0)
    if want.get("descriptors"):
        out.descriptors = back.pop(0)
    times["sort"] = time.perf_counter() - t
    return out


def frame_descriptors_in_order(comm, share, params):
    """Descriptors of one frame (distributed), in this rank's share layout (collective)."""
    out = compute_frame(comm, share, [], params, {"descriptors": True})
    return out.descriptors, out.timings
