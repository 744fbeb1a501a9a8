"""Data-set compression: choose ``size`` structures of a distributed data set.

The methods are upstream ``quests`` 2026.2.22's (SPEC.md "Dataset compression and
selection"):

``msc``
    start with the structure of largest entropy ``H_s``; then repeatedly add the
    structure of largest ``novelty + H_s``, the novelty being ``-min_x log S(x)`` over its
    environments against the chosen ones (its least covered environment).
``msc_conditional``
    the same, ``S`` starting from the kernel sums against a reference set, and no first
    pick by entropy: it picks what complements the reference.
``fps``
    farthest point sampling of structures, the distance of two structures being the
    mean Euclidean distance over all pairs of their environments; start at largest ``H_s``.
``mean_fps``
    farthest point sampling on each structure's mean descriptor, from ``start``.
``k_means``
    k-means (k = size, k-means++ seeded by ``seed``) on the mean descriptors; one
    structure per cluster, the one nearest its centre (every cluster: upstream drops
    its last one).
``random``
    ``size`` structures drawn by ``numpy.random.default_rng(seed)``.

Ties go to the lowest structure index (upstream's ``argmax`` over its list of remaining
structures, kept in index order).  Where upstream's float64 kernel sums underflow to 0
(novelty +inf for several structures: upstream then takes the first), ours are finite
(log space) and the most novel one wins.

Under MPI every structure lives whole on one rank (:mod:`.structures`); each step
reduces one score per rank and broadcasts the chosen structure's environments from its
owner, and every score is bitwise the same whatever the number of ranks, so the choice
is too.  msc is evaluated lazily (:mod:`.lazy_msc`: the same choice, far fewer kernel
sums).  Then :mod:`.subset_report` gives every method's novelty at the moment of each
choice, the compression curve and the overlap of the whole set with the subset.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm
from .lazy_msc import lazy_msc
from .reference_rows import reference_log_sums
from .subset_report import subset_report

METHODS = ("msc", "msc_conditional", "fps", "mean_fps", "k_means", "random")


@dataclass
class Compression:
    """The chosen structures and what was measured along the way (same on every rank)."""

    method: str
    indices: list
    novelty: np.ndarray
    entropy: np.ndarray
    curve_picks: np.ndarray = field(default_factory=lambda: np.empty(0))
    curve_size: np.ndarray = field(default_factory=lambda: np.empty(0))
    curve_entropy: np.ndarray = field(default_factory=lambda: np.empty(0))
    curve_diversity: np.ndarray = field(default_factory=lambda: np.empty(0))
    overlap: float = float("nan")
    n_environments: int = 0
    n_structures: int = 0
    kept_environments: int = 0
    environment_folds: int = 0
    msc_stats: list = None  # per rank (on rank 0): rounds, folds, refresh_s, collective_s
    seconds: dict = field(default_factory=dict)

    @property
    def H(self):
        return float(self.curve_entropy[-1])

    @property
    def D(self):
        return float(self.curve_diversity[-1])


def resolve_size(size, n_structures, label="--size"):
    """A number of structures from ``size`` (a count >= 1, or a fraction in (0, 1))."""
    try:
        v = float(size)
    except (TypeError, ValueError):
        raise QuestsInputError(f"{label}: expected a number of structures or a fraction "
                               f"in (0, 1), got {size!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise QuestsInputError(f"{label}: expected a number of structures >= 1 or a "
                               f"fraction in (0, 1), got {size!r}")
    n = int(round(v * n_structures)) if v < 1 else int(v)
    if v >= 1 and v != int(v):
        raise QuestsInputError(f"{label}: a size >= 1 is a number of structures and must "
                               f"be whole, got {size!r}")
    if n < 1:
        raise QuestsInputError(f"{label}: {size!r} of {n_structures} structures is 0 "
                               "structures; choose at least one")
    if n > n_structures:
        raise QuestsInputError(f"{label}: {n} structures asked for, but the data set holds "
                               f"only {n_structures}")
    return n


def global_argmax(comm, scores, lo):
    """``(index, score)`` of the largest score over all ranks, ties to the lowest index
    (``scores`` this rank's, its first structure being ``lo``; -inf marks taken ones)."""
    i = int(np.argmax(scores)) if len(scores) else -1
    v = float(scores[i]) if len(scores) else -np.inf
    best = float(pcomm.allreduce(v, "max", comm))
    mine = lo + i if (len(scores) and v == best) else np.iinfo(np.int64).max
    return int(pcomm.allreduce(np.int64(mine), "min", comm)), best


def _gather_entropies(comm, data):
    """``H_s`` of every structure, on every rank (in structure order)."""
    return np.concatenate(pcomm.allgather(np.asarray(data.entropies, float), comm))


def _structure_of(comm, data, s):
    """The environments of structure ``s`` on every rank (from its owner)."""
    x = data.local(s) if data.lo <= s < data.hi else None
    return pcomm.bcast(x, comm, root=data.owner(s))


def _mean_distances(y, starts, x):
    """Mean Euclidean distance between ``x`` and each structure's rows of ``y``."""
    out = np.empty(len(starts) - 1)
    nx = np.einsum("ij,ij->i", x, x)
    for a in range(len(starts) - 1):
        ys = y[starts[a]:starts[a + 1]]
        d2 = np.einsum("ij,ij->i", ys, ys)[:, None] + nx[None, :] - 2.0 * (ys @ x.T)
        out[a] = np.sqrt(np.maximum(d2, 0.0)).mean()
    return out


def fps_order(comm, data, size):
    """Structure-level farthest point sampling (see the module doc)."""
    ent = np.asarray(data.entropies, float)
    y = np.concatenate(data.x) if data.x else np.empty((0, data.width))
    starts = np.concatenate([[0], np.cumsum([len(x) for x in data.x])]).astype(np.int64)
    dmin = np.full(len(data.x), np.inf)
    taken = np.zeros(len(data.x), dtype=bool)
    s, _ = global_argmax(comm, ent, data.lo)
    order = [s]
    while len(order) < size:
        if data.lo <= s < data.hi:
            taken[s - data.lo] = True
        x = _structure_of(comm, data, s)
        dmin = np.minimum(dmin, _mean_distances(y, starts, x))
        s, _ = global_argmax(comm, np.where(taken, -np.inf, dmin), data.lo)
        order.append(s)
    return order


def mean_descriptors(comm, data):
    """Each structure's mean descriptor, every structure on every rank."""
    width = data.width
    mine = np.array([x.mean(axis=0) for x in data.x]).reshape(-1, width)
    return np.concatenate(pcomm.allgather(mine, comm))


def mean_fps_order(means, size, start):
    """Farthest point sampling on mean descriptors from ``start`` (upstream's loop)."""
    order = [int(start)]
    dmin = np.full(len(means), np.inf)
    for _ in range(size - 1):
        dmin = np.minimum(dmin, np.linalg.norm(means - means[order[-1]], axis=1))
        dmin[order] = -np.inf
        order.append(int(np.argmax(dmin)))
    return order


def random_order(n, size, seed):
    """``size`` distinct structures drawn with ``numpy.random.default_rng(seed)``."""
    return [int(i) for i in np.random.default_rng(seed).choice(n, size, replace=False)]


def _order(comm, data, method, size, seed, start):
    """The chosen structures of the methods that do not need kernel sums to choose."""
    from .kmeans import kmeans_order

    if method == "fps":
        return fps_order(comm, data, size)
    if method == "random":
        return random_order(data.n_structures, size, seed)
    means = mean_descriptors(comm, data)
    if method == "k_means":
        return kmeans_order(means, size, seed)
    if start is None:  # upstream starts at random; ours at the largest entropy
        start, _ = global_argmax(comm, np.asarray(data.entropies, float), data.lo)
    if not 0 <= int(start) < data.n_structures:
        raise QuestsInputError(f"--start: structure {start} does not exist (the data set "
                               f"holds {data.n_structures})")
    return mean_fps_order(means, size, start)


def compress(comm, data, method="msc", size=0.5, *, reference_chunks=None, seed=0,
             start=None, overlap=True):
    """Choose structures of the distributed data set ``data`` (collective).

    Parameters
    ----------
    comm : mpi4py communicator
    data : quests_hpc.dataset.structures.Dataset
    method : one of :data:`METHODS`
    size : int or float
        A number of structures, or a fraction of them in (0, 1) (rounded).
    reference_chunks : iterable of ndarray, optional
        The reference set's rows in fixed chunks (:func:`.coverage.dataset_chunks`,
        :func:`.coverage.file_chunks`); needed by, and only by, ``msc_conditional``.
    seed : int
        ``k_means`` and ``random``.
    start : int, optional
        ``mean_fps``'s first structure (default: the one of largest entropy).
    overlap : bool
        Compute the overlap of the whole set with the subset (one kernel pass over every
        environment against the subset; NaN when False).

    Returns
    -------
    Compression
    """
    if method not in METHODS:
        raise QuestsInputError(f"--method: unknown method {method!r}; expected one of "
                               f"{', '.join(METHODS)}")
    if (method == "msc_conditional") != (reference_chunks is not None):
        raise QuestsInputError("--reference: msc_conditional needs a reference set, and "
                               "only msc_conditional uses one" if method == "msc_conditional"
                               else f"--reference: the method {method} does not use a "
                               "reference set (msc_conditional does)")
    n = resolve_size(size, data.n_structures)
    novelty, work, stats = None, 0, None
    t0 = time.perf_counter()
    if method.startswith("msc"):
        log_ref = None if reference_chunks is None else reference_log_sums(data,
                                                                           reference_chunks)
        order, novelty, work, stats = lazy_msc(comm, data, n, log_ref)
        stats = pcomm.gather(stats, comm, root=0)
    else:
        order = _order(comm, data, method, n, seed, start)
    t1 = time.perf_counter()
    rep = subset_report(comm, data, order, novelty, overlap)
    ent = _gather_entropies(comm, data)
    work = int(pcomm.allreduce(np.int64(work), "sum", comm))
    return Compression(
        method=method, indices=order, novelty=rep.novelty, entropy=ent[order],
        curve_picks=rep.curve_picks, curve_size=rep.curve_environments,
        curve_entropy=rep.curve_entropy, curve_diversity=rep.curve_diversity,
        overlap=rep.overlap, n_environments=data.n_environments,
        n_structures=data.n_structures, kept_environments=int(data.counts[order].sum()),
        environment_folds=work, msc_stats=stats,
        seconds={"choose": t1 - t0, "report": time.perf_counter() - t1})
