"""Learning curve: entropy of random subsets of a data set, and the asymptote fit.

SPEC.md (after the paper's Methods, Eq. 9): H(N) of random subsets of size N is fitted
by ``f(N) = a - b exp(-c (log N)^2)`` with ``a, b, c >= 0``, dropping the first and the
last three points; the information gap is ``a - H(N)``.

:func:`fit_asymptote` needs no SciPy: for a fixed ``c`` the model is linear in ``a`` and
``b``, so the best non-negative ``(a, b)`` is a 2-variable constrained least-squares
problem solved exactly (interior solution, else the best boundary solution); the
remaining 1-D problem in ``c`` (variable projection) is located on a log-spaced grid and
solved as the root of ``dSSE/dc`` (analytic, by the envelope theorem) by bisection.  A
root is determined to the conditioning of the problem, where minimising ``SSE`` itself
(golden-section search) finds ``c`` only to about ``sqrt(eps)`` relative: ``SSE`` is flat
to rounding within that distance of its minimum, so entropies that differ by ``1e-16``
(another rank count) moved ``c`` by ``3e-8``.  The tests compare it with
``scipy.optimize.curve_fit``.

:func:`learning_curve` is collective: subsets are drawn with one seeded generator (the
same indices on every rank); each subset's rows are split over the ranks and its
entropy is a ring pass (:func:`quests_hpc.parallel.measures.entropy`), so no rank holds
the ``N x N`` kernel.
"""

import math

import numpy as np

from ..errors import QuestsInputError
from ..parallel import comm as pcomm


def subset_sizes(n, num=12, min_size=16):
    """``num`` log-spaced distinct integer sizes from ``min(min_size, n)`` to ``n``."""
    n = int(n)
    lo = max(2, min(int(min_size), n))
    if n < 2:
        raise QuestsInputError(f"a learning curve needs a data set of at least 2 points, got {n}")
    sizes = np.unique(np.round(np.geomspace(lo, n, int(num))).astype(np.int64))
    return [int(s) for s in sizes]


def _ab(g, y):
    """Best ``a, b >= 0`` for ``y ~ a - b g`` (least squares); returns (a, b, sse).

    The interior solution from centred sums (``b = -cov(g, y) / var(g)``), better
    conditioned than the 2 x 2 normal equations; else the best of the two faces.
    """
    n = len(y)
    gm, ym = g.sum() / n, y.sum() / n
    gc, yc = g - gm, y - ym
    sgg = float(gc @ gc)
    cands = []
    if sgg > 1e-300:
        b = -float(gc @ yc) / sgg  # model a - b g: coefficient of g is -b
        a = ym + b * gm
        if a >= 0 and b >= 0:
            cands.append((a, b))
    cands.append((max(ym, 0.0), 0.0))                                   # b = 0
    g2 = float(g @ g)
    cands.append((0.0, max(-float(g @ y) / g2, 0.0) if g2 > 0 else 0.0))  # a = 0
    best = None
    for a, b in cands:
        r = y - (a - b * g)
        sse = float(r @ r)
        if best is None or sse < best[2]:
            best = (float(a), float(b), sse)
    return best


def _profile(u, x, y):
    """``(sse, dsse/du)`` of the profiled problem at ``c = u`` (``x`` scaled to max 1).

    With the best ``(a, b)`` at fixed ``c`` (interior or on a face), the envelope theorem
    gives ``dSSE/dc = -2 b sum_i r_i x_i exp(-c x_i)``.
    """
    g = np.exp(-u * x)
    a, b, sse = _ab(g, y)
    r = y - (a - b * g)
    return sse, -2.0 * b * float(r @ (x * g))


def _root_in(lo, hi, x, y):
    """Root of ``dSSE/du`` in ``[lo, hi]`` by bisection, or None without a sign change
    from - to + (a minimum).  Stops when the interval cannot shrink in floating point."""
    dlo, dhi = _profile(lo, x, y)[1], _profile(hi, x, y)[1]
    if not (dlo < 0.0 < dhi):
        return None
    for _ in range(2100):  # more than the doubles in any interval
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        d = _profile(mid, x, y)[1]
        if d == 0.0:
            return mid
        if d < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_asymptote(sizes, entropies, drop=(3, 3)):
    """Fit ``H(N) = a - b exp(-c (log N)^2)``, ``a, b, c >= 0`` (SPEC.md).

    Parameters
    ----------
    sizes : array_like of int
        Subset sizes N (increasing).
    entropies : array_like
        H at each size (e.g. the mean over repeats).
    drop : (int, int)
        Points left out at the start and at the end (SPEC.md: 3 and 3).

    Returns
    -------
    a, b, c, rmse : float
        Parameters and the root-mean-square residual over the fitted points.  The
        parameters may be ill-conditioned (few points, an asymptote far beyond the
        data); the fitted curve at the data and ``rmse`` are well conditioned.
    """
    n = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(entropies, dtype=np.float64)
    lo, hi = int(drop[0]), len(n) - int(drop[1])
    n, y = n[lo:hi], y[lo:hi]
    if len(n) < 3:
        raise QuestsInputError(f"the asymptote fit needs at least 3 points after dropping "
                               f"{drop[0]} + {drop[1]}, got {len(n)}")
    x = np.log(n) ** 2
    xmax = max(float(x.max()), 1e-12)
    xs = x / xmax  # u = c * xmax, so the grid does not depend on the units of N

    grid = np.concatenate([[0.0], np.geomspace(1e-4, 1e3, 400)])
    vals = np.array([_profile(u, xs, y)[0] for u in grid])
    i = int(np.argmin(vals))
    u = grid[i]
    # The minimum lies between the grid points beside the best one; where dSSE/du changes
    # sign there (it does unless the minimum is at an end of the grid, or b = 0 makes SSE
    # flat in c), its root is the minimum.
    if 0 < i < len(grid) - 1:
        root = _root_in(grid[i - 1], grid[i + 1], xs, y)
        if root is not None and _profile(root, xs, y)[0] <= vals[i] * (1 + 1e-9):
            u = root
    c = u / xmax
    a, b, s = _ab(np.exp(-c * x), y)
    return a, b, float(c), math.sqrt(s / len(y))


def _local_rows(comm, reference, idx):
    """This rank's rows of the subset ``idx`` (global reference row numbers, sorted)."""
    if reference.layout == "sharded":
        n_local = len(reference.local)
        off = pcomm.exscan_sum(n_local, comm)
        mine = idx[(idx >= off) & (idx < off + n_local)] - off
        return reference.local[mine]
    r, p = comm.rank, comm.size
    part = idx[len(idx) * r // p: len(idx) * (r + 1) // p]
    return reference.local[part]


def learning_curve(comm, reference, sizes, repeats, seed, bandwidths, precision="float64"):
    """Entropy of random subsets of a shared reference (collective).

    Parameters
    ----------
    comm : mpi4py communicator
    reference : quests_hpc.parallel.shared_reference.SharedReference
    sizes : list of int
        Subset sizes (each at most ``reference.n``).
    repeats : int
        Subsets per size (drawn without replacement, independently).
    seed : int
    bandwidths : list of float
    precision : {"float64", "float32"}

    Returns
    -------
    ndarray, shape (n_h, len(sizes), repeats)
        H of every subset (nats); identical on every rank.
    """
    from ..parallel import measures

    n = int(reference.n)
    if max(sizes) > n:
        raise QuestsInputError(f"learning-curve size {max(sizes)} exceeds the data set "
                               f"({n} environments)")
    rng = np.random.default_rng(int(seed))
    out = np.empty((len(bandwidths), len(sizes), int(repeats)))
    for j, size in enumerate(sizes):
        for r in range(int(repeats)):
            idx = np.sort(rng.choice(n, int(size), replace=False))
            rows = _local_rows(comm, reference, idx)
            out[:, j, r] = np.atleast_1d(measures.entropy(comm, rows, list(bandwidths),
                                                                precision=precision))
    return out


def summarize(sizes, entropies, fit=True, drop=(3, 3)):
    """Mean, std, the fit per bandwidth and the information gap.

    Parameters
    ----------
    sizes : list of int
    entropies : ndarray (n_h, n_sizes, repeats)

    Returns
    -------
    dict
        ``mean``, ``std`` (n_h, n_s); ``fit`` (n_h, 3) [a, b, c] and ``fit_rmse`` (n_h,)
        (NaN when ``fit`` is False); ``information_gap`` = a - mean (n_h, n_s).
    """
    e = np.asarray(entropies, dtype=np.float64)
    mean, std = e.mean(axis=-1), e.std(axis=-1)
    nh = e.shape[0]
    params = np.full((nh, 3), np.nan)
    rmse = np.full(nh, np.nan)
    if fit:
        for b in range(nh):
            a_, b_, c_, r_ = fit_asymptote(sizes, mean[b], drop)
            params[b] = (a_, b_, c_)
            rmse[b] = r_
    gap = params[:, :1] - mean
    return {"mean": mean, "std": std, "fit": params, "fit_rmse": rmse, "information_gap": gap}
