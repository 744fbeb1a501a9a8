"""Matrix products whose every element is summed in one fixed order: the same bits in any
shape, at BLAS's speed.

``row_products(y, xt, c0, out)`` gives ``out[i, c] = sum_k y[i, k] * xt[k, c0 + c]``
summed ``k = 0, 1, ..`` with one rounded product and one rounded sum per term (no
fast-math: no re-association, no fused multiply-add).  Each element's bits depend only
on its row of ``y`` and its column of ``xt``, not on the shape of the product, its
position in it or the machine's BLAS.  BLAS promises none of that: OpenBLAS's AVX-512
kernels (a Xeon, 2026-12-02) gave other last bits in other shapes, and the lazy msc
compression (:mod:`quests_hpc.dataset.lazy_msc`) folds rows in blocks that depend on the
ranks and threads.

float32 inputs give float32 sums, each rounded to float32 (the float32 kernel sums'
products: ``sgemm``'s may depend on a row's position in its block).

Speed: a register tile of ``TILE_ROWS`` rows by one vector of ``TILE_BYTES`` is kept in registers over the whole ``k`` loop (:func:`_tile`, written in LLVM IR: an
explicit vector multiply then add per ``k``, which is the in-order sum of every lane);
the rows left over run the same sums vectorised over columns, and the columns left over
one element at a time.  On one Zen 4 core, ``128 x 63 x 972``: about 51 GFLOP/s against
45-50 for numpy's BLAS, and 22-26 for the plain column-vectorised loop.
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

#: Rows of the register tile (4 x 64 bytes: 8 AVX2 registers, 4 AVX-512 ones).
TILE_ROWS = 4
#: Bytes of one row of the register tile: 8 doubles or 16 floats.
TILE_BYTES = 64


def _make_tile(rows):
    """An intrinsic ``tile(yf, yo, ys, xf, xo, xs, of, oo, os, d)`` on flat float64 or
    float32 arrays: ``of[oo + r os + c] = sum_{k < d} yf[yo + r ys + k] * xf[xo + k xs +
    c]`` for ``r < rows`` and the ``TILE_BYTES`` of columns ``c``, each sum in order ``k =
    0, 1, ..``, from 0, in the arrays' precision."""
    i64 = ir.IntType(64)

    @intrinsic
    def tile(typingctx, yf, yo, ys, xf, xo, xs, of, oo, os_, d):
        sig = types.void(yf, yo, ys, xf, xo, xs, of, oo, os_, d)
        single = yf.dtype == types.float32
        width = TILE_BYTES // (4 if single else 8)
        vt = ir.VectorType(ir.FloatType() if single else ir.DoubleType(), width)
        splat = ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)
        align = 4 if single else 8

        def codegen(context, builder, signature, args):
            ya, y0, ystep, xa, x0, xstep, oa, o0, ostep, n = args
            yp, xp, op = (context.make_array(signature.args[j])(context, builder, a).data
                          for j, a in ((0, ya), (3, xa), (6, oa)))
            pre, fn = builder.block, builder.function
            head, body, done = (fn.append_basic_block(f"tile.{s}")
                                for s in ("head", "body", "done"))
            builder.branch(head)
            builder.position_at_end(head)
            k = builder.phi(i64)
            acc = [builder.phi(vt) for _ in range(rows)]
            k.add_incoming(ir.Constant(i64, 0), pre)
            for a in acc:
                a.add_incoming(ir.Constant(vt, [0.0] * width), pre)
            builder.cbranch(builder.icmp_signed("<", k, n), body, done)
            builder.position_at_end(body)
            xv = builder.load(builder.bitcast(builder.gep(
                xp, [builder.add(x0, builder.mul(k, xstep))]), vt.as_pointer()), align=align)
            new = []
            for r, a in enumerate(acc):
                at = builder.add(builder.add(y0, builder.mul(ir.Constant(i64, r), ystep)), k)
                s = builder.insert_element(ir.Constant(vt, ir.Undefined),
                                           builder.load(builder.gep(yp, [at]), align=align),
                                           ir.Constant(ir.IntType(32), 0))
                s = builder.shuffle_vector(s, ir.Constant(vt, ir.Undefined), splat)
                new.append(builder.fadd(a, builder.fmul(s, xv)))
            k.add_incoming(builder.add(k, ir.Constant(i64, 1)), builder.block)
            for a, v in zip(acc, new):
                a.add_incoming(v, builder.block)
            builder.branch(head)
            builder.position_at_end(done)
            for r, a in enumerate(acc):
                at = builder.add(o0, builder.mul(ir.Constant(i64, r), ostep))
                builder.store(a, builder.bitcast(builder.gep(op, [at]), vt.as_pointer()),
                              align=align)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile = _make_tile(TILE_ROWS)


@nb.njit(nogil=True, cache=True)
def row_products(y, xt, c0, out):
    """``out[i, c] = sum_k y[i, k] * xt[k, c0 + c]`` in order (see the module doc), in the
    arrays' precision (all float64 or all float32); every array C-contiguous
    (``reshape`` refuses others at compile time)."""
    n, w = out.shape
    d, m = y.shape[1], xt.shape[1]
    yf, xf, of = y.reshape(y.size), xt.reshape(xt.size), out.reshape(out.size)
    lanes = TILE_BYTES // y.itemsize
    rt, wt = n - n % TILE_ROWS, w - w % lanes
    for i in range(0, rt, TILE_ROWS):
        for c in range(0, wt, lanes):
            _tile(yf, i * d, d, xf, c0 + c, m, of, i * w + c, w, d)
        for c in range(wt, w):  # the columns left over, one at a time
            for r in range(i, i + TILE_ROWS):
                out[r, c] = 0.0
                for k in range(d):
                    out[r, c] += y[r, k] * xt[k, c0 + c]
    base = np.uint64(c0)
    for i in range(rt, n):  # the rows left over, vectorised over columns
        o = out[i]
        for c in range(w):
            o[c] = 0.0
        for k in range(d):
            a = y[i, k]
            xk = xt[k]
            for c in range(w):
                o[c] += a * xk[base + np.uint64(c)]
