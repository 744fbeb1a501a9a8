"""Kernel sums of multi-element descriptors by groups of rows with the same zero blocks.

A multi-element descriptor (:mod:`quests_hpc.species`) is block-sparse: an atom of
species A has zeros in the block of every other species (and in its own block when it
has no same-species neighbour).  Rows are grouped by which species blocks are nonzero
(their *pattern*).  For a group ``p`` of test rows and a group ``q`` of reference rows,

    |y - x|^2 = |y_I - x_I|^2 + |y_{p \\ q}|^2 + |x_{q \\ p}|^2,

``I`` the columns of the all-neighbour block and the blocks in both patterns.  So the
pair is summed by the ordinary kernel on ``|I| + 2`` columns: the shared ones, then
``sqrt(|y_{p\\q}|^2)`` (zero for x) and ``sqrt(|x_{q\\p}|^2)`` (zero for y).  In a binary
alloy, same-species pairs use 2 of 3 blocks and cross-species pairs 1 of 3 (about half
the flops of the dense product).  Each row's sum is combined over the reference groups
in a fixed order, so it depends only on the row and the reference, not on which rows
share its call (the pipeline's chunks, the number of ranks).
"""

import numpy as np

from .species import block_columns


def block_index(k, n_block):
    """Column indices of each block (0: all neighbours) of a ``(k, n_block)`` layout."""
    out = []
    for b in range(int(n_block)):
        c1, c2 = block_columns(k, n_block, b)
        out.append(np.concatenate([np.arange(c1.start, c1.stop), np.arange(c2.start, c2.stop)]))
    return out


def patterns(a, blocks):
    """Bit ``b - 1`` set where block ``b`` (b >= 1) of the row has a nonzero value."""
    pat = np.zeros(len(a), dtype=np.int64)
    for b, cols in enumerate(blocks[1:]):
        pat |= (np.abs(a[:, cols]).max(axis=1) > 0).astype(np.int64) << b
    return pat


def _columns(blocks, mask):
    return np.concatenate([blocks[0]] + [blocks[b + 1] for b in range(len(blocks) - 1)
                                         if mask >> b & 1])


def _extra(a, blocks, mask):
    """``sqrt`` of the squared norm of the blocks of ``mask`` in every row of ``a``."""
    if mask == 0:
        return np.zeros(len(a))
    cols = _columns(blocks, mask)[len(blocks[0]):]
    return np.sqrt(np.einsum("ij,ij->i", a[:, cols], a[:, cols]))


def compact_pair(y, x, blocks, p, q):
    """``(Y, X)``: rows of pattern ``p`` / ``q`` on the shared columns plus two norm
    columns, with ``|Y_i - X_j|^2 == |y_i - x_j|^2`` (to rounding)."""
    shared = _columns(blocks, p & q)
    ny, nx = len(y), len(x)
    Y = np.empty((ny, len(shared) + 2))
    X = np.empty((nx, len(shared) + 2))
    Y[:, :-2], X[:, :-2] = y[:, shared], x[:, shared]
    Y[:, -2], X[:, -2] = _extra(y, blocks, p & ~q), 0.0
    Y[:, -1], X[:, -1] = 0.0, _extra(x, blocks, q & ~p)
    return Y, X


def grouped_sums(y, x, blocks, sums, cs, truncate):
    """Kernel-sum state ``(M, S, dmin, nkept)`` of ``y`` against ``x`` (as
    ``information._row_block_sums`` returns it), summed group pair by group pair.

    ``sums(Y, X)`` is the dense kernel on one pair; ``cs = -1 / (2 h^2)`` per bandwidth.
    For each group of test rows the reference groups are taken by most shared blocks
    first.  A row then skips a later reference group when even the group's nearest
    possible point, ``d^2 >= |y_{p\\q}|^2 + min_j |x_{q\\p}|^2``, would add less than
    ``2^-60`` of the row's sum so far for every bandwidth: below float64 resolution
    (terms of another species' atoms at h = 0.015 are about exp(-2000)).  Without
    truncation only; the result depends on the row and the reference alone.
    """
    py, px = patterns(y, blocks), patterns(x, blocks)
    n_y, n_h = len(y), len(cs)
    M = np.full((1, n_h, n_y), -np.inf)
    S = np.zeros((1, n_h, n_y))
    n_tr = n_y if truncate else 1
    dmin = np.full((1, n_tr), np.inf)
    nkept = np.zeros((1, n_tr), dtype=np.int64)
    qs = [int(q) for q in np.unique(px)]
    xs = {q: x[px == q] for q in qs}
    for p in (int(v) for v in np.unique(py)):
        rows_p = np.flatnonzero(py == p)
        for q in sorted(qs, key=lambda q: (-bin(p & q).count("1"), q)):
            rows = rows_p if truncate else _needed(y[rows_p], xs[q], blocks, p, q, cs,
                                                   M[0][:, rows_p], S[0][:, rows_p], rows_p)
            if len(rows) == 0:
                continue
            Y, X = compact_pair(y[rows], xs[q], blocks, p, q)
            m, s, dm, nk = sums(Y, X)
            _merge(M[0], S[0], rows, m[0], s[0])
            if truncate:
                dmin[0, rows] = np.minimum(dmin[0, rows], dm[0])
                nkept[0, rows] += nk[0]
    M[~np.isfinite(M)] = 0.0
    return M, S, dmin, nkept


def _needed(y, xq, blocks, p, q, cs, M, S, rows):
    """The rows (of ``rows``) whose sum reference group ``q`` can still change."""
    if not np.isfinite(M).any():
        return rows
    ey = _extra(y, blocks, p & ~q) ** 2
    ex = float((_extra(xq, blocks, q & ~p) ** 2).min())
    with np.errstate(divide="ignore"):
        log_s = np.log(S) + M  # (n_h, n): the sums so far (-inf: none yet)
    bound = cs[:, None] * (ey + ex)[None, :] + np.log(len(xq))  # log of the group's mass
    negligible = (bound < log_s - 60 * np.log(2.0)).all(axis=0)
    return rows[~negligible]


def _merge(M, S, rows, m, s):
    """Fold the partial sums ``(m, s)`` of ``rows`` into ``(M, S)`` (log-sum shifts)."""
    top = np.maximum(M[:, rows], m)
    safe = np.where(np.isfinite(top), top, 0.0)
    S[:, rows] = S[:, rows] * np.exp(M[:, rows] - safe) + s * np.exp(m - safe)
    M[:, rows] = top
