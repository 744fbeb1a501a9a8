"""Information measures: kernel sums, dH, entropy, diversity, novelty and overlap.

With the Gaussian kernel ``K(x, y) = exp(-|x - y|^2 / (2 h^2))`` and ``S(y) = sum_j
K(y, X_j)`` (see ``SPEC.md``):

* ``dH(y | X) = -log S(y)``                      (:func:`delta_entropy`)
* ``H(X) = -(1/n) sum_i log(S(X_i) / n)``         (:func:`entropy`)
* ``D(X) = log sum_i 1 / S(X_i)``                 (:func:`diversity`)
* novelty / overlap: fraction of ``y`` with ``dH > 0`` / ``dH <= 0``.

The argument order and defaults are upstream's (``quests.entropy``).  ``h`` is a float or
a sequence of bandwidths; a sequence is handled in one pass over the distances and adds a
leading axis of length ``len(h)`` to the result (dH: ``(n_h, n_y)``; H, D, novelty:
``(n_h,)``).  Note: upstream's multi-bandwidth ``delta_entropy`` returns ``(n_y, n_h)``
despite its docstring; ours follows the documented ``(n_h, n_y)``.

Distributed use
---------------
:func:`log_kernel_sum` returns ``log S`` (accurate and finite, also where every term
underflows), so sums against several reference shards combine exactly with
``np.logaddexp``::

    log_s = log_kernel_sum(y_local, x_shard_0, h)
    for x_shard in other_shards:            # e.g. passed around an MPI ring
        log_s = np.logaddexp(log_s, log_kernel_sum(y_local, x_shard, h))
    dH = -log_s

For H and D of a distributed data set ``X`` (``y_local`` = the rank's own rows of ``X``,
the shards = all of ``X``): reduce ``sum(log_s)`` with MPI SUM and
``logsumexp(-log_s)`` with a log-add-exp reduction, then
``H = log(n) - total_sum / n`` and ``D = total_logsumexp``; or gather ``log_s`` and call
:func:`entropy_from_log_sums` / :func:`diversity_from_log_sums`.

Performance design
------------------
Blocks of ``G = Y_blk @ X_blk.T`` come from BLAS (one thread per block; in float32 dH
from :mod:`quests_hpc._ordered_products`, whose rows do not depend on their position in
the block, as ``sgemm``'s may), then a Numba kernel turns them into
``d2 = |y|^2 + |x|^2 - 2 y.x`` and sums a vectorised ``exp``.
Both sets are first centred on the mean of ``x`` (the reference once, ``y`` block by
block), which cuts the cancellation error of ``d2`` by 10-50x on real descriptors
(:mod:`quests_hpc._kernel_sums`).  Each of ``quests_hpc.threads.get_num_threads()``
Python threads takes whole blocks (BLAS product + kernel, both releasing the GIL), so a
block stays in its core's cache; BLAS is held to one thread meanwhile (``threadpoolctl``).
Memory is ``threads * block_rows * block_cols * 8`` bytes plus the outputs, whatever the
input sizes.  :func:`entropy` and :func:`diversity` compute only the blocks ``i <= j``
and add each term to its row and its column.
"""

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

from . import threads as _threads
from ._kernel_sums import row_hashes, rows_update, rows_update_truncated, sym_update
from ._kernel_sums_f32 import U32, rows_update32, sym_update32
from ._ordered_products import aligned_empty, aligned_transpose, row_products
from .errors import QuestsInputError

DEFAULT_BANDWIDTH = 0.015

#: Default block shape (test rows, reference rows) of :func:`log_kernel_sum`: a 1 MiB
#: block of distances per thread, which fits the L2 cache.
DEFAULT_BLOCK = (128, 1024)

#: Default block edge of the symmetric sums (:func:`entropy`, :func:`diversity`).
DEFAULT_SYM_BLOCK = 384

#: Arithmetic of the kernel sums: ``"float64"`` (the default, exact to rounding) or
#: ``"float32"`` (about twice as fast; error bounded by :func:`float32_error_bound`).
PRECISIONS = ("float64", "float32")

#: Largest descriptor magnitude accepted in float32 (its square must stay finite).
FLOAT32_MAX_ABS = 1e18


# --------------------------------------------------------------------------- checks


def _descriptors(a, name):
    """Return ``a`` as a C-contiguous float64 (n, d) array with n, d >= 1, all finite."""
    try:
        arr = np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise QuestsInputError(f"{name} must be a numeric (n, d) array: {exc}") from None
    if arr.ndim != 2:
        raise QuestsInputError(
            f"{name} must be a 2-D (n, d) array of descriptors, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise QuestsInputError(f"{name} is empty (shape {arr.shape})")
    # row sums are finite unless a row holds NaN/inf (or overflows: then look closer);
    # this keeps the check's memory at O(n) instead of an (n, d) boolean array
    with np.errstate(over="ignore", invalid="ignore"):
        suspect = np.flatnonzero(~np.isfinite(arr.sum(axis=1)))
    for i in suspect:
        bad = np.flatnonzero(~np.isfinite(arr[i]))
        if bad.size:
            k = bad[0]
            raise QuestsInputError(
                f"{name} contains a non-finite value: {name}[{i}, {k}] = {float(arr[i, k])!r}")
    return arr


def _same_width(y, x):
    if y.shape[1] != x.shape[1]:
        raise QuestsInputError(
            f"y and x must have the same descriptor length, got y with {y.shape[1]} "
            f"columns and x with {x.shape[1]}")


def _bandwidths(h):
    """Return (h as a 1-D float64 array, True if h was a scalar)."""
    scalar = np.ndim(h) == 0
    try:
        hs = np.atleast_1d(np.asarray(h, dtype=np.float64))
    except (TypeError, ValueError):
        raise QuestsInputError(f"h must be a positive number or a list of them, got {h!r}") \
            from None
    if hs.ndim != 1 or hs.size == 0:
        raise QuestsInputError(f"h must be a positive number or a non-empty list, got {h!r}")
    bad = ~(np.isfinite(hs) & (hs > 0))
    if bad.any():
        raise QuestsInputError(
            f"bandwidth h must be finite and > 0, got h = {float(hs[bad][0])!r}"
            + ("" if scalar else f" in {[float(v) for v in hs]!r}"))
    with np.errstate(over="ignore", divide="ignore", under="ignore"):
        tiny = ~np.isfinite(0.5 / hs**2)
    if tiny.any():  # the exponents -d^2 / 2h^2 would be -inf: dH +inf, H NaN
        raise QuestsInputError(
            f"bandwidth h = {float(hs[tiny][0])!r} is too small: 1/(2 h^2) overflows (h must be "
            "above 1e-154; descriptor distances are ~1e-3 to ~3)"
            + ("" if scalar else f"; h = {[float(v) for v in hs]!r}"))
    return hs, scalar


#: Largest ``d^2 / 2h^2`` allowed, so that dH (at most this, plus log n) stays finite.
MAX_EXPONENT = 1e300


def _exponent_range(cs, hs, y, y_is_x, mu, nx):
    """Refuse a bandwidth for which ``d^2 / 2h^2`` could exceed :data:`MAX_EXPONENT` for
    these descriptors (``d <= |y - mu| + |x - mu|`` bounds every distance)."""
    with np.errstate(over="ignore", invalid="ignore"):
        rx = math.sqrt(float(nx.max()))
        ry = rx if y_is_x else math.sqrt(float(np.einsum("ij,ij->i", y, y).max())) + \
            math.sqrt(float(mu @ mu))
        d2 = (rx + ry) ** 2
        worst = float(np.max(-cs)) * d2
    if not worst <= MAX_EXPONENT:
        h_min = math.sqrt(d2 / (2 * MAX_EXPONENT)) if math.isfinite(d2) else math.inf
        raise QuestsInputError(
            f"bandwidth h = {float(hs.min())!r} is too small for these descriptors: d^2/(2 h^2) "
            f"can reach {worst:.3g} for distances up to {math.sqrt(d2):.3g}, beyond "
            f"{MAX_EXPONENT:g}: dH would overflow (h must be >= {h_min:.3g})")


def _positive_int(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise QuestsInputError(f"{name} must be an integer >= 1, got {v!r}")
    return int(v)


def _block_shape(block_size, default):
    """``None`` -> default; an int b -> (b, b); a pair -> as given."""
    if block_size is None:
        return default
    if isinstance(block_size, (tuple, list)) and len(block_size) == 2:
        return (_positive_int(block_size[0], "block_size[0]"),
                _positive_int(block_size[1], "block_size[1]"))
    b = _positive_int(block_size, "block_size")
    return (b, b)


def _d_max(d_max):
    if d_max is None:
        return np.inf
    try:
        v = float(d_max)
    except (TypeError, ValueError):
        raise QuestsInputError(f"d_max must be a number >= 0 or None, got {d_max!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise QuestsInputError(f"d_max must be a finite number >= 0 or None, got {d_max!r}")
    return v * v


def _hashes(a):
    """64-bit hash of every row (identical rows are put at distance exactly 0)."""
    out = np.empty(a.shape[0], dtype=np.int64)
    row_hashes(a, out)
    return out


def _precision(precision, *arrays):
    """The working dtype of ``precision``; float32 refuses descriptors whose squares
    would overflow it."""
    if precision not in PRECISIONS:
        raise QuestsInputError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    if precision == "float64":
        return np.float64
    for a in arrays:
        big = float(np.abs(a).max())
        if big > FLOAT32_MAX_ABS:
            raise QuestsInputError(
                f"descriptor values up to {big:.3g} do not fit precision 'float32' (at most "
                f"{FLOAT32_MAX_ABS:g}): use precision 'float64'")
    return np.float32


def _norms(c, dtype):
    """Squared row norms of ``c``, summed in float64 and rounded to ``dtype``."""
    return np.einsum("ij,ij->i", c, c, dtype=np.float64).astype(dtype, copy=False)


def _centred(a, mu, dtype):
    """``a - mu`` rounded to ``dtype`` and its squared row norms (:func:`_norms`)."""
    c = np.subtract(a, mu).astype(dtype, copy=False)
    return c, _norms(c, dtype)


def _cs32(cs, hs, dtype):
    """``cs`` in float32 for the float32 kernels (``None`` in float64); refuses a bandwidth
    whose ``1 / (2 h^2)`` overflows float32."""
    if dtype is not np.float32:
        return None
    with np.errstate(over="ignore"):
        cs32 = cs.astype(np.float32)
    if not np.isfinite(cs32).all():
        raise QuestsInputError(
            f"bandwidth h = {float(hs.min())!r} is too small for precision 'float32' "
            "(1/(2 h^2) overflows it; h must be above 1e-19): use precision 'float64'")
    return cs32


def _near32(d):
    """Relative rounding noise bound of a float32 squared distance of d-vectors: an
    identical pair's ``|y|^2 + |x|^2 - 2 y.x`` stays below ``near * (|y|^2 + |x|^2)``."""
    return np.float32(4 * (d + 4) * U32)


# --------------------------------------------------------------------------- threads


_BLAS_CONTROLLER = []


def blas_one_thread():
    """Context that holds BLAS to one thread (each of our threads runs its own product).

    The ``threadpoolctl`` controller is made once per process: making one scans the
    process's loaded libraries (``/proc/self/maps``), about 1 ms, which dominated the
    calls on small arrays (a 108 x 108 kernel sum: 1.1 ms -> 0.1 ms).
    """
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            return nullcontext()
        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


def _run(n_tasks, make_worker, nt):
    """Run tasks ``0 .. n_tasks-1`` on ``nt`` threads, each pulling the next free task.

    ``make_worker(t)`` returns the callable ``work(task)`` of thread ``t`` (so each thread
    owns its scratch buffers).
    """
    nt = max(1, min(nt, n_tasks))
    counter = itertools.count()  # next() is atomic under the GIL

    def loop(t):
        work = make_worker(t)
        for task in iter(lambda: next(counter), None):
            if task >= n_tasks:
                return
            work(task)

    _on_threads(loop, nt)


def _on_threads(loop, nt):
    """``loop(t)`` for ``t`` in ``0 .. nt-1``, each on its own thread (BLAS on one)."""
    with blas_one_thread():
        if nt == 1:
            loop(0)
        else:
            with ThreadPoolExecutor(max_workers=nt) as ex:
                for f in [ex.submit(loop, t) for t in range(nt)]:
                    f.result()


def _run_static(n_tasks, make_worker, nt):
    """Like :func:`_run`, but thread ``t`` runs tasks ``t, t + nt, t + 2 nt, ...`` in that
    order: what a thread accumulates does not depend on scheduling (reproducible sums)."""
    nt = max(1, min(nt, n_tasks))

    def loop(t):
        work = make_worker(t)
        for task in range(t, n_tasks, nt):
            work(task)

    _on_threads(loop, nt)


# --------------------------------------------------------------------------- sums


def log_kernel_sum(y, x, h=DEFAULT_BANDWIDTH, *, block_size=None, d_max=None,
                   return_dropped=False, precision="float64", blocks=None):
    """Log of the Gaussian kernel sum ``log S(y_i) = log sum_j exp(-|y_i - x_j|^2 / 2h^2)``.

    Accurate and finite for every row: where all terms underflow (``S < 1e-308``) the
    row is summed in log space (shifted by its largest term), so ``log S`` is as accurate
    as it is for ordinary values.  Results for reference shards combine exactly with
    ``np.logaddexp`` (see the module docstring).

    Parameters
    ----------
    y : array_like, shape (n_y, d)
        Test descriptors.
    x : array_like, shape (n_x, d)
        Reference descriptors.
    h : float or sequence of float
        Bandwidth(s), each finite and > 0.  All bandwidths share one pass over the
        distances.
    block_size : int or (int, int), optional
        Rows of ``y`` and of ``x`` per block (default ``DEFAULT_BLOCK``).  Memory is about
        ``threads * rows * cols * 8`` bytes; results do not depend on it (to rounding).
    d_max : float, optional
        Truncation (off by default): drop every reference point farther than ``d_max``
        from ``y_i``.  A row with no point within ``d_max`` keeps its nearest point only
        (so the result stays finite).  The truncated sum ``S_t`` is a lower bound of the
        exact ``S``, hence ``dH_t = -log S_t >= dH`` (a conservative uncertainty), and::

            0 <= dH_t - dH <= log(1 + n_dropped * exp(-d_max^2 / (2 h^2)) / S_t)

        (every dropped term is at most ``exp(-d_max^2 / 2h^2)``).  This saves
        exponentials only, not distance computations: expect little speed-up.
    return_dropped : bool
        With ``d_max``: also return ``n_dropped``, the number of reference points left
        out per row (int64, shape (n_y,)), for the bound above.
    precision : {"float64", "float32"}
        Arithmetic of the distances, exponentials and block sums (the running sums and
        the log are float64 either way).  ``"float32"`` is about twice as fast, and
        ``|log_s_float32 - log_s_float64|`` stays below :func:`float32_error_bound` for
        every row, also where every term underflows (finite, not -inf).  ``d_max`` needs
        float64.
    blocks : (int, int), optional
        ``(k, n_species + 1)`` of multi-element descriptors: summed by zero-block groups
        (:mod:`quests_hpc._block_groups`; the dense sum to rounding, fewer flops).

    Returns
    -------
    log_s : ndarray, shape (n_y,) or (n_h, n_y)
        ``(n_y,)`` for a scalar ``h``, ``(len(h), n_y)`` for a sequence.
    n_dropped : ndarray, shape (n_y,)
        Only with ``return_dropped=True``.

    Raises
    ------
    QuestsInputError
        (a ``ValueError``) for a bandwidth <= 0 or not finite, empty arrays, NaN or inf
        descriptors, ``y`` and ``x`` of different widths, a bad ``block_size``/``d_max``.
    """
    hs, scalar = _bandwidths(h)
    y = _descriptors(y, "y")
    x = _descriptors(x, "x")
    _same_width(y, x)
    bi, bj = _block_shape(block_size, DEFAULT_BLOCK)
    dmax2 = _d_max(d_max)
    truncate = bool(np.isfinite(dmax2))
    dtype = _precision(precision, y, x)
    if truncate and dtype is np.float32:
        raise QuestsInputError("d_max (truncated sums) needs precision 'float64'")
    cs = -0.5 / hs**2
    M, S, dmin, nkept = _sums(y, x, hs, cs, (bi, bj), dmax2, truncate, dtype, blocks)

    with np.errstate(divide="ignore"):
        log_s = np.log(S, out=S)  # in place: memory stays 2 * n_states * n_h * n_y
    log_s += M
    log_s = log_s[0]
    n_dropped = np.zeros(y.shape[0], dtype=np.int64)
    if truncate:
        n_dropped = _keep_nearest(log_s, cs, dmin, nkept, x.shape[0])
    out = log_s[0] if scalar else log_s
    return (out, n_dropped) if return_dropped else out


def _sums(y, x, hs, cs, block, dmax2, truncate, dtype, blocks):
    """:func:`_row_block_sums`, by zero-block groups for multi-element ``blocks``."""
    if blocks is None or int(blocks[1]) <= 1:
        return _row_block_sums(y, x, hs, cs, block, dmax2, truncate, dtype)
    from ._block_groups import block_index, grouped_sums

    return grouped_sums(y, x, block_index(*blocks),
                        lambda Y, X: _row_block_sums(Y, X, hs, cs, block, dmax2, truncate,
                                                     dtype), cs, truncate)


def _row_block_sums(y, x, hs, cs, block, dmax2, truncate, dtype):
    """Shifted kernel sums ``M``, ``S`` (``log S = log(S) + M``) of ``log_kernel_sum``.

    Also the truncation state: per row the smallest squared distance ``dmin`` and the
    number of kept points ``nkept`` (shape ``(1, n_y)`` when ``truncate``, else ``(1, 1)``).
    """
    n_y, n_x, n_h = y.shape[0], x.shape[0], hs.size
    mu = x.mean(axis=0)  # centring: see _kernel_sums (accuracy of |y|^2 + |x|^2 - 2 y.x)
    xc, nx = _centred(x, mu, dtype)
    _exponent_range(cs, hs, y, y is x, mu, nx)
    hx = _hashes(x)
    hy = hx if y is x else _hashes(y)
    nt = _threads.get_num_threads()

    bi, bj = block[0], min(block[1], n_x)
    row_starts = range(0, n_y, bi)
    col_starts = range(0, n_x, bj)
    # Every row block has exactly ``bi`` rows (the last one padded with zero rows) and one
    # thread sums it against every column block in order: each row's sum is then the same,
    # bit for bit, whatever rows share its call (BLAS takes other paths for small
    # matrices) and however many threads run, so dH does not depend on how the rows are
    # batched -- the pipeline's chunks, the number of ranks.
    M = np.zeros((1, n_h, n_y))
    S = np.zeros((1, n_h, n_y))
    n_tr = n_y if truncate else 1  # per-row truncation state only when truncating
    dmin = np.full((1, n_tr), np.inf)
    nkept = np.zeros((1, n_tr), dtype=np.int64)
    d = y.shape[1]
    cs32, near = _cs32(cs, hs, dtype), _near32(d)
    # float32 products summed in a fixed order (_ordered_products): sgemm's may depend on
    # a row's position in the block (OpenBLAS's Haswell sgemm on AMD EPYC: rows by 24)
    xct = aligned_transpose(xc) if dtype is np.float32 else None

    def make_worker(t):
        buf = aligned_empty(bi * bj, dtype)  # rows of the products on 64-byte boundaries
        yb = np.zeros((bi, d), dtype=dtype)

        def work(task):
            i0 = row_starts[task]
            i1 = min(i0 + bi, n_y)
            m = i1 - i0
            np.subtract(y[i0:i1], mu, out=yb[:m], casting="same_kind")
            yb[m:] = 0.0
            nyb = _norms(yb[:m], dtype)
            for j0 in col_starts:
                j1 = min(j0 + bj, n_x)
                g = buf[:bi * (j1 - j0)].reshape(bi, j1 - j0)
                if dtype is np.float32:  # rows independent of their block
                    row_products(yb, xct, j0, g)
                else:
                    np.matmul(yb, xc[j0:j1].T, out=g)
                if truncate:
                    rows_update_truncated(g[:m], hy, hx, i0, j0, nyb, nx, cs, dmax2, M[0],
                                          S[0], dmin[0], nkept[0])
                elif dtype is np.float32:
                    rows_update32(g[:m], hy, hx, i0, j0, nyb, nx, cs32, cs, near, M[0], S[0])
                else:
                    rows_update(g[:m], hy, hx, i0, j0, nyb, nx, cs, M[0], S[0])
        return work

    _run(len(row_starts), make_worker, nt)
    return M, S, dmin, nkept


def _keep_nearest(log_s, cs, dmin, nkept, n_x):
    """Truncated ``log_s`` (``(n_h, n_y)``): fix rows without a term within ``d_max``.

    Such a row keeps its nearest point only (``log_s = cs * dmin``, in place).  Returns
    ``n_dropped`` per row (int64, shape ``(n_y,)``).
    """
    dmin = dmin.min(axis=0)
    nkept = nkept.sum(axis=0)
    empty = ~np.isfinite(log_s)  # no term within d_max: keep the nearest point only
    if empty.any():
        log_s[empty] = (cs[:, None] * dmin[None, :])[empty]
        nkept[empty[0]] = 1
    return n_x - nkept


def self_log_kernel_sum(x, h=DEFAULT_BANDWIDTH, *, block_size=None, precision="float64"):
    """``log S(x_i)`` of every row of ``x`` against ``x`` itself (self term included).

    Uses the symmetry of the kernel: only the blocks ``i <= j`` are computed, each term
    added to its row and its column (half the work of ``log_kernel_sum(x, x, h)``).

    Parameters
    ----------
    x : array_like, shape (n, d)
    h : float or sequence of float
    block_size : int, optional
        Block edge (default ``DEFAULT_SYM_BLOCK``); memory ``threads * (b^2 + n_h * n) * 8``
        bytes.
    precision : {"float64", "float32"}
        As in :func:`log_kernel_sum` (error bound: :func:`float32_error_bound` of ``x``
        against itself).

    Returns
    -------
    ndarray, shape (n,) or (n_h, n)
    """
    hs, scalar = _bandwidths(h)
    x = _descriptors(x, "x")
    dtype = _precision(precision, x)
    if isinstance(block_size, (tuple, list)):
        raise QuestsInputError(f"block_size must be one integer here, got {block_size!r}")
    b = _block_shape(block_size, (DEFAULT_SYM_BLOCK,) * 2)[0]
    cs = -0.5 / hs**2
    n = x.shape[0]
    xc, nx = _centred(x, x.mean(axis=0), dtype)
    hx = _hashes(x)
    nt = _threads.get_num_threads()
    b = max(1, min(b, -(-n // max(1, 2 * nt))))
    starts = list(range(0, n, b))
    # larger (off-diagonal) tasks first, diagonal blocks at the end
    pairs = [(i, j) for i in range(len(starts)) for j in range(i + 1, len(starts))]
    pairs += [(i, i) for i in range(len(starts))]
    n_acc = min(nt, len(pairs))
    acc = np.zeros((n_acc, hs.size, n))
    cs32, near = _cs32(cs, hs, dtype), _near32(x.shape[1])

    def make_worker(t):
        buf = np.empty(b * b, dtype=dtype)
        col = np.empty(b, dtype=np.float32)

        def work(task):
            bi, bj = pairs[task]
            i0, j0 = starts[bi], starts[bj]
            i1, j1 = min(i0 + b, n), min(j0 + b, n)
            g = buf[:(i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)
            np.matmul(xc[i0:i1], xc[j0:j1].T, out=g)
            if dtype is np.float32:
                sym_update32(g, hx, i0, j0, nx, cs32, near, col, acc[t])
            else:
                sym_update(g, hx, i0, j0, nx, cs, acc[t])
        return work

    # static assignment: every thread sums the same tasks in the same order on every run
    _run_static(len(pairs), make_worker, nt)
    log_s = np.log(acc.sum(axis=0))
    return log_s[0] if scalar else log_s


def float32_error_bound(y, x, h=DEFAULT_BANDWIDTH, *, block_size=None):
    """Bound on ``|log_s_float32 - log_s_float64|`` (= ``|dH_float32 - dH_float64|``) per row.

    Derived in ``docs/precision.md``.  With ``u = 2^-24``, ``d`` the descriptor length,
    ``mu`` the mean of ``x`` (both sets are centred on it), ``a_i = |y_i - mu|`` and
    ``R = max_j |x_j - mu|``::

        bound_i = (d u / 2 + 6 u) (a_i + R)^2 / (2 h^2)     # the distance: rounding of the
                                                          # centred rows, product, norms
                  + 300 u                                 # the exponent (|c d2| <= 87)
                  + 8 u                                   # float32 exp
                  + (b - 1) u / (1 - (b - 1) u)           # a block's float32 sum of b terms
                  + 2e-18 n_x + 1e-14                     # dropped underflow, float64 part

    The first term dominates: about ``1.2e-4 (a_i + R)^2 / h^2`` for d = 63, so centred
    descriptors (``a_i + R`` of order 0.1-1 for real environments) give 1e-4 to 1e-2 at
    h = 0.015.  For :func:`entropy` the bound of H is the mean of the rows' bounds of
    ``x`` against itself, for :func:`diversity` their maximum.

    Parameters
    ----------
    y, x, h, block_size
        As in :func:`log_kernel_sum` (``block_size`` sets ``b``, the reference rows of
        one block).

    Returns
    -------
    ndarray, shape (n_y,) for a scalar ``h``, (n_h, n_y) for a sequence.
    """
    hs, scalar = _bandwidths(h)
    y = _descriptors(y, "y")
    x = _descriptors(x, "x")
    _same_width(y, x)
    b = min(_block_shape(block_size, DEFAULT_BLOCK)[1], x.shape[0])
    mu = x.mean(axis=0)
    r = math.sqrt(float(np.einsum("ij,ij->i", x - mu, x - mu).max()))
    a = np.sqrt(np.einsum("ij,ij->i", y - mu, y - mu))
    d, u = y.shape[1], U32
    rest = 300 * u + 8 * u + (b - 1) * u / (1 - (b - 1) * u) + 2e-18 * x.shape[0] + 1e-14
    bound = (d * u / 2 + 6 * u) * (a + r)[None, :] ** 2 * (0.5 / hs**2)[:, None] + rest
    return bound[0] if scalar else bound


# --------------------------------------------------------------------------- measures


def entropy_from_log_sums(log_s, n=None):
    """Entropy ``H = log n - mean_i log S(X_i)`` from precomputed ``log S`` of a data set.

    Parameters
    ----------
    log_s : array_like, shape (n,) or (n_h, n)
        ``log S(X_i)`` of every point of the data set against the whole set (self term
        included), e.g. from :func:`self_log_kernel_sum` or from shard-wise
        :func:`log_kernel_sum` results combined with ``np.logaddexp``.
    n : int, optional
        Size of the data set (defaults to the length of the last axis).

    Returns
    -------
    float or ndarray of shape (n_h,)
    """
    log_s = np.asarray(log_s, dtype=np.float64)
    n = log_s.shape[-1] if n is None else _positive_int(n, "n")
    h = math.log(n) - log_s.mean(axis=-1)
    return float(h) if np.ndim(h) == 0 else h


def diversity_from_log_sums(log_s):
    """Diversity ``D = log sum_i exp(-log S(X_i))`` from precomputed ``log S``.

    Same input as :func:`entropy_from_log_sums`; float or ndarray of shape (n_h,).
    """
    log_s = np.asarray(log_s, dtype=np.float64)
    d = np.logaddexp.reduce(-log_s, axis=-1)
    return float(d) if np.ndim(d) == 0 else d


def delta_entropy(y, x, h=DEFAULT_BANDWIDTH, *, block_size=None, d_max=None,
                  precision="float64", blocks=None):
    """Differential entropy ``dH(y_i | X) = -log S(y_i)`` of every test row.

    ``dH > 0``: ``y_i`` is novel with respect to ``x`` (extrapolation); ``dH <= 0``:
    covered.  Always ``dH >= -log n_x``.  Finite everywhere: where every kernel term
    underflows, dH is the large value ``-logsumexp(-d^2 / 2h^2)``.

    Parameters
    ----------
    y : array_like, shape (n_y, d)
        Test descriptors.
    x : array_like, shape (n_x, d)
        Reference descriptors.
    h : float or sequence of float
        Bandwidth(s) (default 0.015).
    block_size, d_max, precision, blocks
        See :func:`log_kernel_sum` (``d_max`` truncation is off by default; with it,
        dH is an overestimate with the bound stated there; ``precision="float32"``: about
        twice as fast, within :func:`float32_error_bound` of float64; ``blocks=(k,
        n_species + 1)`` for multi-element descriptors sums by zero-block groups).

    Returns
    -------
    ndarray, shape (n_y,) for a scalar ``h``, (n_h, n_y) for a sequence.
    """
    return -log_kernel_sum(y, x, h, block_size=block_size, d_max=d_max, precision=precision,
                           blocks=blocks)


def entropy(x, h=DEFAULT_BANDWIDTH, *, block_size=None, precision="float64"):
    """Information entropy ``H(X) = -(1/n) sum_i log(S(X_i) / n)`` in nats.

    ``0 <= H <= log n``; 0 when all environments are identical.

    Parameters
    ----------
    x : array_like, shape (n, d)
    h : float or sequence of float
    block_size, precision
        See :func:`self_log_kernel_sum`.

    Returns
    -------
    float, or ndarray of shape (n_h,) for a sequence of bandwidths.
    """
    return entropy_from_log_sums(self_log_kernel_sum(x, h, block_size=block_size,
                                                     precision=precision))


def diversity(x, h=DEFAULT_BANDWIDTH, *, block_size=None, precision="float64"):
    """Diversity ``D(X) = log sum_i 1 / S(X_i)``.

    Parameters and return as :func:`entropy`.
    """
    return diversity_from_log_sums(self_log_kernel_sum(x, h, block_size=block_size,
                                                       precision=precision))


def novelty(y, x, h=DEFAULT_BANDWIDTH, *, block_size=None, d_max=None, precision="float64"):
    """Fraction of the test rows ``y`` that are novel (``dH(y_i | x) > 0``).

    Returns a float, or an ndarray of shape (n_h,) for a sequence of bandwidths.
    Arguments as :func:`delta_entropy`.
    """
    dh = delta_entropy(y, x, h, block_size=block_size, d_max=d_max, precision=precision)
    frac = np.mean(dh > 0, axis=-1)
    return float(frac) if np.ndim(frac) == 0 else frac


def overlap(y, x, h=DEFAULT_BANDWIDTH, *, block_size=None, d_max=None, precision="float64"):
    """Fraction of the test rows ``y`` covered by ``x`` (``dH(y_i | x) <= 0``).

    ``overlap = 1 - novelty``.  Arguments and return as :func:`novelty`.
    """
    dh = delta_entropy(y, x, h, block_size=block_size, d_max=d_max, precision=precision)
    frac = np.mean(dh <= 0, axis=-1)
    return float(frac) if np.ndim(frac) == 0 else frac
