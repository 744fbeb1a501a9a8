"""Single-precision block products ``G = Y_blk @ X_blk.T`` whose rows do not depend on
their neighbours.

The float32 kernel sums (:mod:`quests_hpc._kernel_sums_f32`) take ``G`` from BLAS in
row blocks of one fixed shape, so that a row's result is the same whatever rows share
its block: the pipeline's chunks and the number of ranks then do not change dH.  That
holds only if a row's products do not depend on its *position* in the block.  Some
single-precision kernels break it: OpenBLAS 0.3.31's Haswell ``sgemm`` (as picked on an
AMD EPYC with AVX-512, measured) tiles rows by 24 and rounds rows of a tile differently,
so the same row gives products a few float32 ulps apart at another position (double
precision ``dgemm`` there is position-independent, as on every machine tried).

:func:`positional_sgemm` finds out once per shape, by products of one random block at
several shifts.  Where ``sgemm`` is positional, :func:`product32` forms ``G`` with
``dgemm`` from the same float32 inputs (their products are exact in float64) and rounds it
to float32: deterministic per row, close to the correctly rounded product, at about
half the speed of ``sgemm``.  Pure functions on arrays (and one cache).
"""

import functools

import numpy as np

#: Row shifts tried by :func:`positional_sgemm` (1 to more than a 24-row tile).
SHIFTS = (1, 2, 3, 5, 7, 8, 13, 16, 24, 31, 48)


@functools.lru_cache(maxsize=None)
def positional_sgemm(rows, width, cols):
    """Whether float32 ``Y @ X.T`` of shape ``(rows, width) x (width, cols)`` gives a
    row other products at other positions of the block (one thread: the caller's)."""
    rng = np.random.default_rng(20261202)
    y = rng.standard_normal((rows + max(SHIFTS), width)).astype(np.float32)
    x = rng.standard_normal((cols, width)).astype(np.float32)
    base = y[:rows] @ x.T
    for s in SHIFTS:
        if s >= rows:
            continue
        block = np.zeros((rows, width), dtype=np.float32)
        block[:rows - s] = y[s:rows]
        if not np.array_equal((block @ x.T)[:rows - s], base[s:]):
            return True
    return False


def positional_shapes(rows, width, col_counts):
    """Whether any of the block shapes ``(rows, width) x (width, c)`` for ``c`` in
    ``col_counts`` is positional (:func:`positional_sgemm`)."""
    return any(positional_sgemm(rows, width, int(c)) for c in set(col_counts))


def product32(yb, xb, out, yb64=None, xb64=None):
    """``out = yb @ xb.T`` in float32 (``yb``: the fixed-shape row block), each row
    independent of the others: ``sgemm``, or, given the float64 copies ``yb64`` and
    ``xb64`` of the same values (the caller's choice where :func:`positional_sgemm`
    says so, made once), ``dgemm`` rounded to float32."""
    if xb64 is None:
        np.matmul(yb, xb.T, out=out)
    else:
        out[...] = np.matmul(yb64, xb64.T)  # rounded to float32
    return out
