"""Matrix products whose every element is summed in one fixed order: the same bits in any
shape, at BLAS's speed.

``row_products(y, xt, c0, out)`` gives ``out[i, c] = sum_k y[i, k] * xt[k, c0 + c]``
summed ``k = 0, 1, ..`` from 0 (no re-association).  Each element's bits depend only on
its row of ``y`` and its column of ``xt``, not on the shape of the product, its position
in it or the machine's BLAS.  BLAS promises none of that: OpenBLAS's AVX-512 kernels (a
Xeon, 2026-12-02) gave other last bits in other shapes, and the lazy msc compression
(:mod:`quests_hpc.dataset.lazy_msc`) folds rows in blocks that depend on the ranks and
threads.

* float64: one rounded product and one rounded sum per term (no fused multiply-add), so
  an element is bitwise the plain in-order loop (the msc tests compare against it).
* float32: one fused multiply-add per term, ``s = fl(s + y_k x_k)`` (one rounding).  The
  float32 kernel sums need the product at the machine's float32 FMA rate, twice float64's:
  on a 2-core Xeon (AVX-512, 2026-12-03) mul-then-add ran at 72 GFLOP/s on
  ``128 x 63 x 1024``, no faster than ``dgemm`` (69), because two 512-bit uops per term
  are the same port time as one float64 FMA.  ``sgemm``'s bits may depend on a row's
  position in its block.

Speed: a register tile of ``TILE_ROWS`` rows by ``TILE_VECS`` vectors of ``TILE_BYTES``
is kept in registers over the whole ``k`` loop (:func:`_tile`, written in LLVM IR: an
explicit vector multiply-add per ``k``, which is the in-order sum of every lane): 8
independent accumulators hide the 4-cycle latency of an add or FMA on both ports; the
columns left over run one-vector tiles, then one element at a time, and the rows left
over the same sums vectorised over columns (:func:`_madd`: the same rounding as the
tile).
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

#: Rows of the register tile.
TILE_ROWS = 4
#: Vectors per row of the register tile (4 x 2 x 64 bytes: 8 AVX-512 registers).
TILE_VECS = 2
#: Bytes of one vector: 8 doubles or 16 floats.
TILE_BYTES = 64


def _madd_ir(builder, a, b, acc):
    """``acc + a b`` (scalars or vectors): one FMA in float32 (``llvm.fma``), a rounded
    product then a rounded sum in float64."""
    elem = getattr(a.type, "element", a.type)
    if elem != ir.FloatType():
        return builder.fadd(acc, builder.fmul(a, b))
    t = a.type
    name = f"llvm.fma.v{t.count}f32" if t is not elem else "llvm.fma.f32"
    fma = builder.module.declare_intrinsic(name, fnty=ir.FunctionType(t, [t, t, t]))
    return builder.call(fma, [a, b, acc])


@intrinsic
def _madd(typingctx, a, b, acc):
    """Scalar ``acc + a b`` rounded as in the tile (see :func:`_madd_ir`)."""
    def codegen(context, builder, signature, args):
        return _madd_ir(builder, *args)
    return acc(a, b, acc), codegen


def _make_tile(rows, vecs):
    """An intrinsic ``tile(yf, yo, ys, xf, xo, xs, of, oo, os, d)`` on flat float64 or
    float32 arrays: ``of[oo + r os + c] = sum_{k < d} yf[yo + r ys + k] * xf[xo + k xs +
    c]`` for ``r < rows`` and the ``vecs * TILE_BYTES`` of columns ``c``, each sum in order
    ``k = 0, 1, ..``, from 0, in the arrays' precision (rounded as :func:`_madd_ir`)."""
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
            acc = [builder.phi(vt) for _ in range(rows * vecs)]
            k.add_incoming(ir.Constant(i64, 0), pre)
            for a in acc:
                a.add_incoming(ir.Constant(vt, [0.0] * width), pre)
            builder.cbranch(builder.icmp_signed("<", k, n), body, done)
            builder.position_at_end(body)
            xk = builder.add(x0, builder.mul(k, xstep))
            xv = [builder.load(builder.bitcast(builder.gep(
                xp, [builder.add(xk, ir.Constant(i64, v * width))]), vt.as_pointer()),
                align=align) for v in range(vecs)]
            new = []
            for r in range(rows):
                at = builder.add(builder.add(y0, builder.mul(ir.Constant(i64, r), ystep)), k)
                s = builder.insert_element(ir.Constant(vt, ir.Undefined),
                                           builder.load(builder.gep(yp, [at]), align=align),
                                           ir.Constant(ir.IntType(32), 0))
                s = builder.shuffle_vector(s, ir.Constant(vt, ir.Undefined), splat)
                new.extend(_madd_ir(builder, s, xv[v], acc[r * vecs + v])
                           for v in range(vecs))
            k.add_incoming(builder.add(k, ir.Constant(i64, 1)), builder.block)
            for a, v in zip(acc, new):
                a.add_incoming(v, builder.block)
            builder.branch(head)
            builder.position_at_end(done)
            for j, a in enumerate(acc):
                r, v = divmod(j, vecs)
                at = builder.add(o0, builder.add(builder.mul(ir.Constant(i64, r), ostep),
                                                 ir.Constant(i64, v * width)))
                builder.store(a, builder.bitcast(builder.gep(op, [at]), vt.as_pointer()),
                              align=align)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile = _make_tile(TILE_ROWS, TILE_VECS)
_tile1 = _make_tile(TILE_ROWS, 1)


@nb.njit(nogil=True, cache=True)
def row_products(y, xt, c0, out):
    """``out[i, c] = sum_k y[i, k] * xt[k, c0 + c]`` in order (see the module doc), in the
    arrays' precision (all float64 or all float32); every array C-contiguous
    (``reshape`` refuses others at compile time)."""
    n, w = out.shape
    d, m = y.shape[1], xt.shape[1]
    yf, xf, of = y.reshape(y.size), xt.reshape(xt.size), out.reshape(out.size)
    lanes = TILE_BYTES // y.itemsize
    wide = TILE_VECS * lanes
    rt, ww = n - n % TILE_ROWS, w - w % wide
    wt = w - w % lanes
    zero = out.dtype.type(0.0)
    for i in range(0, rt, TILE_ROWS):
        for c in range(0, ww, wide):
            _tile(yf, i * d, d, xf, c0 + c, m, of, i * w + c, w, d)
        for c in range(ww, wt, lanes):  # the columns left over: one vector at a time,
            _tile1(yf, i * d, d, xf, c0 + c, m, of, i * w + c, w, d)
        for c in range(wt, w):  # then one element at a time
            for r in range(i, i + TILE_ROWS):
                s = zero
                for k in range(d):
                    s = _madd(y[r, k], xt[k, c0 + c], s)
                out[r, c] = s
    base = np.uint64(c0)
    for i in range(rt, n):  # the rows left over, vectorised over columns
        o = out[i]
        for c in range(w):
            o[c] = zero
        for k in range(d):
            a = y[i, k]
            xk = xt[k]
            for c in range(w):
                o[c] = _madd(a, xk[base + np.uint64(c)], o[c])


def aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` starting on a ``TILE_BYTES`` boundary (numpy aligns to
    16 bytes only)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + TILE_BYTES, dtype=np.uint8)
    start = (-raw.ctypes.data) % TILE_BYTES
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_transpose(a):
    """``a.T`` as the ``xt`` of :func:`row_products`: C-contiguous, every row starting on a
    ``TILE_BYTES`` boundary (rows zero-padded to a multiple of a vector).

    The tile's vector loads of ``xt`` then never straddle two cache lines: on a Xeon
    (2026-12-03, ``128 x 63 x 1024`` float32, one thread) 155 GFLOP/s aligned against
    100-105 at any other offset; an aligned ``out`` gains a few per cent more.
    """
    m, d = a.shape
    per = TILE_BYTES // a.itemsize
    out = aligned_empty((d, -(-m // per) * per), a.dtype)
    out[:, :m] = a.T
    out[:, m:] = 0
    return out
