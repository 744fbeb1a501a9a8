"""Resource estimate of a campaign's frames, checked before any work starts.

A frame's descriptors need, on each rank, the rank's own atoms plus every ghost atom and
periodic image within r_c of its subdomain (:mod:`quests_hpc.parallel.halo`).  For a
periodic cell of perpendicular widths ``w_a`` cut into ``d_a`` subdomains per axis that
is about ``n / P * prod_a (1 + 2 r_c d_a / w_a)`` points per rank (``P`` ranks): with a
large cutoff and a small cell, mostly images (``(1 + 2 r_c / L)^3`` per atom on one
rank).  Memory per rank (:func:`frame_bytes`, the one place of the model) is about
:data:`BYTES_PER_POINT` bytes per point (point cloud and cell list) plus
:data:`BYTES_PER_OWNED_ATOM` per owned atom, plus two copies of the owned descriptors
when they are kept (the frame pipeline otherwise holds one chunk of them).

* :func:`estimate_frame` (pure: numbers in, numbers out) and :func:`refusal` (the
  message, or None) decide;
* :func:`available_memory` reads the node (``/proc/meminfo`` MemAvailable, a cgroup
  limit, or ``QUESTS_HPC_MEMORY_GB``: memory per node to plan with);
* :func:`input_problems` and :func:`check_source` apply them to a campaign's inputs
  (the largest selected frame of each) and to a reference (collective).
"""

import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from ..parallel.frame_pipeline import CHUNK_ATOMS

#: Bytes per owned + ghost/image point on a rank: positions and labels of the point
#: cloud, the cell list (sorted points, order, bins, neighbour bins) and its temporaries.
BYTES_PER_POINT = 150

#: Bytes per owned atom on top of its point: ids, positions, types, dH, the exchanges
#: in and out.  (The frame pipeline measured 191 B per owned atom for both terms together,
#: tests/parallel/test_frame_memory.py; 150 + 80 keeps a margin.)
BYTES_PER_OWNED_ATOM = 80

#: Copies of the owned atoms' descriptors (2k-1 float64 each) alive at once when they are
#: kept (descriptors written, a frame's H and D, a reference): the rows and their copy
#: sent back to id order.  Without them one chunk (:data:`CHUNK_ATOMS` rows) is alive.
DESCRIPTOR_COPIES = 2

#: Bytes per rank whatever the frame (fixed buffers).
BASE_BYTES = 0

#: Environment variable: memory per node (GB) to plan with, instead of what the node has.
MEMORY_ENV = "QUESTS_HPC_MEMORY_GB"


@dataclass(frozen=True)
class FrameEstimate:
    """What one frame needs on the busiest rank.

    Attributes
    ----------
    natoms, ranks : int
    dims : tuple of 3 int
        Subdomains per axis assumed.
    lengths : tuple of 3 float
        Perpendicular widths of the cell (Å; 0 where unknown).
    points : float
        Owned atoms + ghosts / periodic images per rank.
    neighbours : float
        Atoms within r_c of an atom (density x sphere volume; at most the points).
    bytes : float
        Memory per rank.
    """

    natoms: int
    ranks: int
    dims: tuple
    lengths: tuple
    points: float
    neighbours: float
    bytes: float


def _dims(ranks, lengths):
    """Subdomains per axis as :func:`quests_hpc.parallel.decomposition.choose_dims` picks
    them: a near-cubic factorisation of ``ranks`` (as ``MPI_Dims_create``), the largest
    factor to the longest axis."""
    dims = [1, 1, 1]
    n, p, factors = int(ranks), 2, []
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    for f in sorted(factors, reverse=True):
        dims[dims.index(min(dims))] *= f
    order = sorted(range(3), key=lambda a: -lengths[a])  # stable: ties keep axis order
    out = [1, 1, 1]
    for a, d in zip(order, sorted(dims, reverse=True)):
        out[a] = d
    return tuple(out)


def _widths(cell):
    """Perpendicular widths of the cell; rows of zero length (no cell) give 0."""
    c = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if abs(np.linalg.det(c)) > 0:
        return tuple(float(w) for w in 1.0 / np.linalg.norm(np.linalg.inv(c), axis=0))
    return tuple(float(v) for v in np.linalg.norm(c, axis=1))


def estimate_frame(natoms, cell, pbc, cutoff, k, ranks=1, keep_descriptors=False, width=None):
    """Points, neighbours and memory per rank of one frame (see the module docstring).

    Parameters
    ----------
    natoms : int
    cell : array_like (3, 3)
        Rows are the cell vectors (a LAMMPS box, an ASE cell; zeros where there is none).
    pbc : 3 bool
    cutoff : float
        r_c (Å).
    k : int
    ranks : int
        Ranks sharing the frame.
    keep_descriptors : bool
        Every owned atom's descriptors are kept (see :func:`frame_bytes`).

    Returns
    -------
    FrameEstimate
    """
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    lengths = _widths(cell)
    ranks = max(1, int(ranks))
    dims = _dims(ranks, [w if w > 0 else 0.0 for w in lengths])
    factor, images = 1.0, 1.0  # points per owned atom on a rank; images per atom
    for a in range(3):
        w, d = lengths[a], dims[a]
        if w <= 0:  # no extent known: a subdomain may see every atom along this axis
            grow, whole = float(d), 1.0
        else:
            grow, whole = 1.0 + 2.0 * cutoff * d / w, 1.0 + 2.0 * cutoff / w
        factor *= grow if pbc[a] else min(float(d), grow)
        images *= whole if pbc[a] else 1.0
    owned = natoms / ranks
    points = owned * factor
    volume = abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64).reshape(3, 3))))
    sphere = 4.0 / 3.0 * math.pi * float(cutoff) ** 3
    neighbours = natoms * sphere / volume if volume > 0 else float(natoms)
    neighbours = min(neighbours, natoms * images)
    return FrameEstimate(int(natoms), ranks, dims, lengths, points, neighbours,
                         frame_bytes(points, owned, k, keep_descriptors, width))


def frame_bytes(points, owned, k, keep_descriptors=False, width=None):
    """Memory per rank of a frame: ``points`` (owned + ghosts / images) and ``owned``
    atoms on the rank, descriptors of length ``width`` (default ``2k-1``; every owned
    atom's kept when ``keep_descriptors``, else one chunk at a time).  The one place the
    per-rank memory model lives (its constants above)."""
    row = (2 * int(k) - 1 if width is None else int(width)) * 8
    desc = DESCRIPTOR_COPIES * owned * row if keep_descriptors else min(owned, CHUNK_ATOMS) * row
    return BASE_BYTES + points * BYTES_PER_POINT + owned * BYTES_PER_OWNED_ATOM + desc


def _size(nbytes):
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes / 1e3:.3g} kB"


def _count(x):
    return f"{x:,.0f}" if x < 1e7 else f"{x:.2g}"


def refusal(est, where, cutoff, available, origin=""):
    """The message refusing a frame that does not fit, or None when it fits.

    Parameters
    ----------
    est : FrameEstimate
    where : str
        The frame, e.g. ``"frame 0 (timestep 0) of dump.lammpstrj"``.
    cutoff : float
    available : float
        Bytes per rank.
    origin : str
        Where ``available`` comes from (for the message).
    """
    if est.bytes <= available:
        return None
    box = " x ".join(f"{w:.4g}" for w in est.lengths)
    return (f"{where} ({est.natoms:,} atoms, cell widths {box} A): with the cutoff {cutoff:g} A "
            f"it needs about {_count(est.points)} points (atoms + ghost atoms and periodic images "
            f"within the cutoff) and {_size(est.bytes)} per rank on {est.ranks} rank(s), with "
            f"about {_count(est.neighbours)} neighbours within the cutoff per atom; "
            f"{_size(available)} per rank is available{origin}. Use a smaller cutoff "
            "(parameters.cutoff, --cutoff) or more nodes")


# ----------------------------------------------------------------------- the node


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return None if text in ("", "max") else int(text)
    except (OSError, ValueError):
        return None


def _node_memory():
    """(bytes, origin) of memory this node can still give: MemAvailable, lowered to the
    cgroup limit (a batch job's allocation), or the ``QUESTS_HPC_MEMORY_GB`` override."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        try:
            gb = float(env)
            if not (math.isfinite(gb) and gb > 0):
                raise ValueError
        except ValueError:
            raise QuestsInputError(f"{MEMORY_ENV}={env!r}: must be a number of GB > 0") from None
        return gb * 1e9, f"{MEMORY_ENV}={env}"
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return math.inf, ""
    origin = "MemAvailable"
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        lim, use = _read_int(limit), _read_int(usage)
        if lim is not None and lim < (1 << 60) and lim - (use or 0) < avail:
            avail, origin = max(0, lim - (use or 0)), "cgroup memory limit"
    return float(avail), origin


def available_memory(comm):
    """(bytes per rank, origin) on the tightest node: node memory / ranks on it (collective)."""
    per_node = pcomm.ranks_on_node(comm)
    err, mem, origin = None, math.inf, ""
    try:
        mem, origin = _node_memory()
    except QuestsInputError as exc:
        err = exc
    pcomm.raise_if_any(err, comm, prefix=False)
    per_rank = float(pcomm.allreduce(mem / per_node, "min", comm))
    text = f" ({_size(per_rank * per_node)} for {per_node} rank(s) on a node, {origin})" \
        if origin else ""
    return per_rank, text


# ----------------------------------------------------------------------- campaign


def _frame_box(src, i):
    """(cell, pbc, label) of frame ``i`` of an InputSource, reading only its header (on
    this rank; ASE sources hold their atoms on rank 0)."""
    d = src.dump
    if d is not None:  # in a compressed file, the header of its first frame: no long seek
        hdr = d.header(i, first_of_file=d.byte_range(i) is None)
        return hdr.cell, hdr.pbc, d.where(i)
    a = src._atoms[int(i)]
    where = src.where(i) if hasattr(src, "where") else f"{src.frame_file[int(i)]}, frame {int(i)}"
    return a.cell.array, a.pbc, where


def _largest(src, sel):
    """The selected frame with the most atoms (the first of them)."""
    sel = np.asarray(list(sel), dtype=np.int64)
    return int(sel[np.argmax(src.natoms[sel])]) if len(sel) else None


def source_problem(src, sel, params, ranks, available, origin, label="",
                   keep_descriptors=False):
    """The refusal of the largest selected frame of ``src`` (or None); this rank only.

    ``params``: the :class:`~quests_hpc.parallel.frame_pipeline.FrameRequest` (its ``k``
    and ``cutoff``); ``keep_descriptors``: every owned atom's descriptors are kept."""
    i = _largest(src, sel)
    if i is None:
        return None
    try:
        cell, pbc, where = _frame_box(src, i)
    except QuestsInputError:
        return None  # a bad header is reported when the frame is read
    est = estimate_frame(int(src.natoms[i]), cell, pbc, params.cutoff, params.k, ranks,
                         keep_descriptors, width=params.width)
    msg = refusal(est, where, params.cutoff, available, origin)
    return None if msg is None else f"{label}{msg}"


def input_problems(comm, campaign, sources, frames):
    """Refusals of the inputs whose largest selected frame does not fit (collective).

    ``campaign`` a :class:`~quests_hpc.campaign.model.Campaign`; ``sources`` and
    ``frames`` as planned (:func:`quests_hpc.campaign.plan.plan_inputs`; None for an input
    that failed).
    Returns the same list on every rank.
    """
    meas = campaign.measures
    par = campaign.frame_request()
    keep = bool(meas.descriptors or meas.entropy or meas.diversity)
    available, origin = available_memory(comm)
    out = []
    if comm.rank == 0:
        for no, src in enumerate(sources):
            sel = [fp.source_index for fp in frames if fp.input_no == no]
            if src is not None and sel:
                name = campaign.inputs[no].name
                p = _problem_or_error(src, sel, par, comm.size, available, origin,
                                      f"inputs[{no}] ({name}): ", keep)
                if p:
                    out.append(p)
    return pcomm.bcast(out, comm, root=0)


def _problem_or_error(src, sel, params, ranks, available, origin, label,
                      keep_descriptors=False):
    """:func:`source_problem` on rank 0, a header it cannot read reported as the problem
    (so the other ranks, waiting in the bcast, get it too)."""
    try:
        return source_problem(src, sel, params, ranks, available, origin, label,
                              keep_descriptors)
    except (QuestsInputError, OSError) as exc:
        return f"{label}{exc}"


def check_source(comm, src, sel, params, serial, label, keep_descriptors=False):
    """Raise QuestsInputError (on every rank) when the largest selected frame does not
    fit.  ``params``: the frame request (its ``k`` and ``cutoff``); ``serial``: frames
    computed on one rank each (small ASE frames); ``keep_descriptors``: every owned
    atom's descriptors are kept (a reference, a data set's H and D)."""
    available, origin = available_memory(comm)
    msg = None
    if comm.rank == 0:
        msg = _problem_or_error(src, sel, params, 1 if serial else comm.size, available,
                                origin, f"{label}: ", keep_descriptors)
    pcomm.raise_if_any(QuestsInputError(msg) if msg else None, comm, prefix=False, root=0)
