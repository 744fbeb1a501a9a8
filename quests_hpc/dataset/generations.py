"""A data-set report across active-learning generations (the paper's Fig. 2f).

Generation g is a data set (every structure of its files).  For each generation this
module computes, for every bandwidth h:

* ``H(g)``, ``D(g)``: entropy and diversity of the generation's own environments;
* its novelty against the union ``U(g-1)`` of generations ``0 .. g-1``: the fraction of
  its environments with ``dH(y | U(g-1)) > threshold`` and the mean ``dH``
  (``dH(y | X) = -log sum_x K(y, x)``, SPEC.md); none for generation 0;
* ``H`` and ``D`` of the cumulative union ``U(g)``.

Distribution: every generation is loaded with
:func:`quests_hpc.dataset.structures.load_dataset` (each structure whole on one rank);
the union stays spread over the ranks as the blocks of its generations.  Every kernel
sum is a ring pass of :mod:`quests_hpc.parallel` and every reduction is the exact,
rank-count-independent one of :mod:`quests_hpc.parallel.measures`, so the report is the
serial one to rounding of each row's ``log S`` (about 1e-16) on any number of ranks.
The union's ``log S`` is kept per row and updated incrementally: a new generation costs
three ring passes (itself, itself against the union, the union against it), never the
whole union against itself again.

This module owns the computation and the report (rows, table text); the HDF5 report and
the picture are :mod:`quests_hpc.dataset.generations_io`.  Functions taking ``comm`` are
collective.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import QuestsInputError
from ..information import DEFAULT_BANDWIDTH
from ..parallel import comm as pcomm
from ..parallel import measures as M
from ..parallel.shared_reference import ring_log_kernel_sum
from .structures import load_dataset

#: Columns of a :class:`GenerationRow` that hold one value per bandwidth.
PER_BANDWIDTH = ("entropy", "diversity", "n_novel", "novelty", "dh_mean",
                 "union_entropy", "union_diversity")


@dataclass
class GenerationRow:
    """One generation of the report; per-bandwidth values are ``(n_h,)`` arrays.

    ``n_novel`` is -1 and ``novelty`` / ``dh_mean`` are NaN for generation 0 (there is
    no earlier generation to be novel against).
    """

    generation: int
    label: str
    n_structures: int
    n_environments: int
    entropy: np.ndarray
    diversity: np.ndarray
    n_novel: np.ndarray
    novelty: np.ndarray
    dh_mean: np.ndarray
    union_structures: int
    union_environments: int
    union_entropy: np.ndarray
    union_diversity: np.ndarray


def check_bandwidths(h):
    """``h`` as a list of finite bandwidths > 0 (:class:`QuestsInputError` otherwise)."""
    hs = [h] if np.ndim(h) == 0 else list(h)
    if not hs:
        raise QuestsInputError("--bandwidth: give at least one bandwidth")
    for v in hs:
        if not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool) \
                or not math.isfinite(v) or v <= 0:
            raise QuestsInputError(f"--bandwidth must be finite and > 0 (1/A), got {v!r}")
    return [float(v) for v in hs]


def _novelty(comm, x, union, hs, threshold):
    """``(log S of x against the union, n_novel, novelty, mean dH)`` (collective)."""
    cross = np.atleast_2d(ring_log_kernel_sum(comm, x, union, hs))
    summary = pcomm.bcast(M.summarize_dh(comm, -cross, threshold, root=0), comm)
    n_novel = np.array([b["n_novel"] for b in summary], dtype=np.int64)
    novelty = np.array([b["novelty"] for b in summary])
    mean = np.array([b["mean"] for b in summary])
    return cross, n_novel, novelty, mean


def generation_measures(comm, blocks, h=DEFAULT_BANDWIDTH, threshold=0.0, labels=None,
                        structures=None):
    """The report of generations whose descriptors are spread over the ranks.

    Parameters
    ----------
    comm : mpi4py communicator
    blocks : list of ndarray
        ``blocks[g]``: this rank's rows ``(n_local, 2k-1)`` of generation g (may be empty
        on some ranks; every generation must have rows on some rank).
    h : float or sequence of float
    threshold : float
        An environment is novel when ``dH > threshold``.
    labels, structures : list, optional
        Name and number of structures of every generation (for the rows).

    Returns
    -------
    list of :class:`GenerationRow` (the same on every rank)
    """
    hs = check_bandwidths(h)
    labels = labels or [f"generation {g}" for g in range(len(blocks))]
    structures = structures or [0] * len(blocks)
    rows, union, union_log = [], None, None
    for g, x in enumerate(blocks):
        x = np.ascontiguousarray(x, dtype=np.float64)
        n = M.total_rows(comm, x)
        if n == 0:
            raise QuestsInputError(f"{labels[g]}: the generation has no environments")
        own = np.atleast_2d(M.self_log_sums(comm, x, hs))
        nan = np.full(len(hs), np.nan)
        n_novel, novelty, dh_mean = np.full(len(hs), -1, np.int64), nan, nan
        if union is None:
            union, union_log = x, own
        else:
            cross, n_novel, novelty, dh_mean = _novelty(comm, x, union, hs, threshold)
            back = np.atleast_2d(ring_log_kernel_sum(comm, union, x, hs))
            union_log = np.concatenate([np.logaddexp(union_log, back),
                                        np.logaddexp(own, cross)], axis=1)
            union = np.concatenate([union, x])
        rows.append(GenerationRow(
            generation=g, label=str(labels[g]), n_structures=int(structures[g]),
            n_environments=n,
            entropy=np.atleast_1d(M.entropy_from_log_sums(comm, own, hs)),
            diversity=np.atleast_1d(M.diversity_from_log_sums(comm, own, hs)),
            n_novel=n_novel, novelty=novelty, dh_mean=dh_mean,
            union_structures=int(sum(structures[:g + 1])),
            union_environments=M.total_rows(comm, union),
            union_entropy=np.atleast_1d(M.entropy_from_log_sums(comm, union_log, hs)),
            union_diversity=np.atleast_1d(M.diversity_from_log_sums(comm, union_log, hs))))
    return rows


def load_generations(comm, generations, k=32, cutoff=5.0, h=DEFAULT_BANDWIDTH, species=None,
                     type_map=None):
    """Read and describe every generation (collective); ``species`` and ``type_map`` as for
    :func:`~quests_hpc.dataset.structures.load_dataset`.

    Parameters
    ----------
    generations : list
        One entry per generation: a path, a glob or a list of them (every frame of every
        file is a structure of that generation).

    Returns
    -------
    blocks : list of ndarray
        This rank's descriptors of every generation.
    datasets : list of :class:`~quests_hpc.dataset.structures.Dataset`
    """
    if len(generations) < 2:
        raise QuestsInputError(
            f"generations: give at least 2 generations, got {len(generations)} (for the "
            "entropy of one data set use `quests-hpc entropy`)")
    h0 = check_bandwidths(h)[0]
    blocks, datasets = [], []
    for g, paths in enumerate(generations):
        ds = load_dataset(comm, paths, k=k, cutoff=cutoff, h=h0,
                          label=f"generation {g} ({generation_label(paths)})",
                          species=species, type_map=type_map)
        datasets.append(ds)
        blocks.append(np.concatenate(ds.x) if ds.x else np.empty((0, ds.width)))
    return blocks, datasets


def generation_label(paths):
    """The name of a generation in tables and files: its path(s) as given."""
    if isinstance(paths, (list, tuple)):
        return " ".join(map(str, paths))
    return str(paths)


def generations_report(comm, generations, k=32, cutoff=5.0, h=DEFAULT_BANDWIDTH,
                       threshold=0.0, species=None, type_map=None):
    """Load every generation and compute its row of the report (collective).

    ``generations`` as in :func:`load_generations`.  Returns ``(rows, datasets)``.
    """
    hs = check_bandwidths(h)
    blocks, datasets = load_generations(comm, generations, k, cutoff, hs, species, type_map)
    rows = generation_measures(comm, blocks, hs, threshold,
                               labels=[generation_label(p) for p in generations],
                               structures=[ds.n_structures for ds in datasets])
    return rows, datasets


def _cell(v, fmt):
    return "-" if not np.isfinite(v) else format(v, fmt)


def report_lines(rows, bandwidths, threshold=0.0, k=32, cutoff=5.0):
    """The printed table: one block per bandwidth, one line per generation."""
    hs = check_bandwidths(bandwidths)
    out = [f"{len(rows)} generations; k = {k}, cutoff = {cutoff:g} A; novel: dH > "
           f"{threshold:g} against the union of the earlier generations"]
    width = max(10, *(len(r.label) for r in rows))
    head = (f"  {'gen':>3}  {'input':<{width}}  {'structs':>7}  {'envs':>8}  {'H':>9}  "
            f"{'D':>9}  {'novel':>8}  {'mean dH':>9}  {'U envs':>8}  {'H(U)':>9}  "
            f"{'D(U)':>9}")
    for j, h in enumerate(hs):
        out += [f"h = {h:g} 1/A (H, D in nats; U = generations 0..g)", head]
        for r in rows:
            out.append(
                f"  {r.generation:>3d}  {r.label:<{width}}  {r.n_structures:>7d}  "
                f"{r.n_environments:>8d}  {r.entropy[j]:>9.4f}  {r.diversity[j]:>9.4f}  "
                f"{_cell(r.novelty[j], '8.4f'):>8}  {_cell(r.dh_mean[j], '9.4f'):>9}  "
                f"{r.union_environments:>8d}  {r.union_entropy[j]:>9.4f}  "
                f"{r.union_diversity[j]:>9.4f}")
    return out
