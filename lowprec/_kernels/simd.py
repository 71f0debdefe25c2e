"""Eight float32 lanes as one value, for kernels that keep accumulators in registers.

numba vectorises loops whose state lives in arrays, and those arrays live in memory: a GEMM
written that way loads and stores every accumulator at every step of k. Its scalar
variables do live in registers, but numba does not run LLVM's SLP vectoriser, so 24
scalar accumulators stay 24 scalar instructions. :data:`f32x8` is an LLVM ``<8 x float>``
value that numba carries like a scalar (in registers, through loops); the functions below
load, store and combine it. Each lane's arithmetic is one IEEE operation: ``fma8`` is
``llvm.fma.v8f32`` (one rounding per lane), ``mul8`` and ``add8`` are plain ``fmul`` and
``fadd`` (no contraction without fast-math flags).

Loads and stores take a C-contiguous float32 array (any number of axes) and the flat index
of the first lane; :func:`get3` reads one element of a 3-axis array of any strides. None of
them checks bounds or wraps negative indices (the kernels' indices are in range by
construction; numba's wrap-around arithmetic on every index would cost as much as the
FMAs). The ``_m`` variants touch only the first ``w`` lanes (``llvm.masked.load`` and
``.store``: lanes past the end of a row are never read or written; masked-off lanes load
as +0).

Under ``NUMBA_DISABLE_JIT=1`` (and in the kernels' plain-Python copies) a vector is a numpy
float32 array of 8 and the functions are their Python definitions below, with the same
bits: ``fma8`` rounds each lane once through :func:`.fma.fma32`.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, errors
from numba.extending import intrinsic, models, overload, register_model

from .fma import fma32

LANES = 8


class F32x8(types.Type):
    """numba type of eight float32 lanes (LLVM ``<8 x float>``)."""

    def __init__(self):
        super().__init__(name="f32x8")


f32x8 = F32x8()
_VT = ir.VectorType(ir.FloatType(), LANES)
_MT = ir.VectorType(ir.IntType(1), LANES)
_I32 = ir.IntType(32)


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VT)


# --- plain Python (NUMBA_DISABLE_JIT, plain copies) --------------------------------------

def splat8(x):
    """Eight lanes equal to the float32 ``x``."""
    return np.full(LANES, x, np.float32)


def get3(arr, i, j, k):
    """``arr[i, j, k]`` (non-negative indices in range)."""
    return arr[i, j, k]


def load8(arr, j):
    """Flat elements ``j .. j+7`` of ``arr`` as a vector."""
    return np.array(arr.reshape(-1)[j:j + LANES], np.float32)


def load8_m(arr, j, w):
    """Flat elements ``j .. j+w-1`` in the first ``w`` lanes (0 <= w <= 8), +0 in the
    others."""
    v = np.zeros(LANES, np.float32)
    if w > 0:
        v[:w] = arr.reshape(-1)[j:j + w]
    return v


def store8(arr, j, v):
    """Flat elements ``j .. j+7`` of ``arr`` = v."""
    arr.reshape(-1)[j:j + LANES] = v


def store8_m(arr, j, v, w):
    """Flat elements ``j .. j+w-1`` of ``arr`` = the first ``w`` lanes of v."""
    if w > 0:
        arr.reshape(-1)[j:j + w] = v[:w]


def canon8(v):
    """``v`` with every NaN lane replaced by the quiet NaN 0x7FC00000."""
    return np.where(np.isnan(v), np.float32(np.nan), v).astype(np.float32)


def fma8(a, b, c):
    """Lane-wise float32 ``a * b + c`` with one rounding (RNE)."""
    return np.array([fma32(a[i], b[i], c[i]) for i in range(LANES)], np.float32)


def mul8(a, b):
    """Lane-wise float32 ``a * b`` (RNE)."""
    with np.errstate(all="ignore"):
        return np.multiply(a, b, dtype=np.float32)


def add8(a, b):
    """Lane-wise float32 ``a + b`` (RNE)."""
    with np.errstate(all="ignore"):
        return np.add(a, b, dtype=np.float32)


# --- compiled --------------------------------------------------------------------------

def contiguous(arr, dtype) -> None:
    """Typing check of a vector load's or store's array: C-contiguous, of ``dtype``."""
    if not (isinstance(arr, types.Array) and arr.dtype == dtype and arr.layout == "C"):
        raise errors.TypingError(f"simd loads and stores take a C-contiguous {dtype} array, "
                                 f"got {arr}")


def vector_address(context, builder, arrty, arr, j, vt=_VT):
    """Pointer to flat element ``j`` of ``arr`` as a pointer to the vector type ``vt``."""
    a = context.make_array(arrty)(context, builder, arr)
    return builder.bitcast(builder.gep(a.data, [j]), vt.as_pointer())


def splat(builder, x, vt=_VT):
    """The vector of type ``vt`` with every lane ``x``."""
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def vector_load(vtype, dtype, vt=_VT):
    """An intrinsic ``(arr, j) -> vtype``: eight elements of a C-contiguous ``dtype`` array
    from flat index ``j`` (unchecked)."""
    @intrinsic
    def _load(typingctx, row, j):
        contiguous(row, dtype)

        def codegen(context, builder, sig, args):
            return builder.load(vector_address(context, builder, sig.args[0], args[0],
                                               args[1], vt), align=4)
        return vtype(row, j), codegen
    return _load


def vector_store(vtype, dtype, vt=_VT):
    """An intrinsic ``(arr, j, v)``: the eight lanes of ``v`` into a C-contiguous ``dtype``
    array from flat index ``j`` (unchecked)."""
    @intrinsic
    def _store(typingctx, row, j, v):
        contiguous(row, dtype)

        def codegen(context, builder, sig, args):
            builder.store(args[2], vector_address(context, builder, sig.args[0], args[0],
                                                  args[1], vt), align=4)
            return context.get_dummy_value()
        return types.none(row, j, vtype), codegen
    return _store




def _mask(builder, w):
    """<8 x i1>: lane i < w."""
    w = builder.trunc(w, _I32) if w.type.width > 32 else w
    lanes = ir.Constant(ir.VectorType(_I32, LANES), list(range(LANES)))
    return builder.icmp_signed("<", lanes, splat(builder, w, ir.VectorType(_I32, LANES)))


def _fn(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


@intrinsic
def _get3(typingctx, arr, i, j, k):
    if not (isinstance(arr, types.Array) and arr.ndim == 3 and arr.dtype == types.float32):
        raise errors.TypingError(f"get3 takes a 3-axis float32 array, got {arr}")

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        strides = cgutils.unpack_tuple(builder, a.strides, 3)
        off = builder.add(builder.add(builder.mul(args[1], strides[0]),
                                      builder.mul(args[2], strides[1])),
                          builder.mul(args[3], strides[2]))
        p = builder.gep(builder.bitcast(a.data, ir.IntType(8).as_pointer()), [off])
        return builder.load(builder.bitcast(p, ir.FloatType().as_pointer()), align=4)
    return types.float32(arr, types.intp, types.intp, types.intp), codegen


@intrinsic
def _splat8(typingctx, x):
    def codegen(context, builder, sig, args):
        return splat(builder, args[0])
    return f32x8(types.float32), codegen


_load8 = vector_load(f32x8, types.float32)
_store8 = vector_store(f32x8, types.float32)


@intrinsic
def _load8_m(typingctx, row, j, w):
    contiguous(row, types.float32)

    def codegen(context, builder, sig, args):
        p = vector_address(context, builder, sig.args[0], args[0], args[1])
        f = _fn(builder, "llvm.masked.load.v8f32.p0", _VT,
                [_VT.as_pointer(), _I32, _MT, _VT])
        return builder.call(f, [p, ir.Constant(_I32, 4), _mask(builder, args[2]),
                                ir.Constant(_VT, [0.0] * LANES)])
    return f32x8(row, j, w), codegen


@intrinsic
def _store8_m(typingctx, row, j, v, w):
    contiguous(row, types.float32)

    def codegen(context, builder, sig, args):
        p = vector_address(context, builder, sig.args[0], args[0], args[1])
        f = _fn(builder, "llvm.masked.store.v8f32.p0", ir.VoidType(),
                [_VT, _VT.as_pointer(), _I32, _MT])
        builder.call(f, [args[2], p, ir.Constant(_I32, 4), _mask(builder, args[3])])
        return context.get_dummy_value()
    return types.none(row, j, f32x8, w), codegen


@intrinsic
def _canon8(typingctx, v):
    def codegen(context, builder, sig, args):
        nan = builder.fcmp_unordered("uno", args[0], args[0])
        q = ir.Constant(ir.FloatType(), float("nan"))  # llvmlite writes 0x7FF8000000000000
        return builder.select(nan, ir.Constant(_VT, [q.constant] * LANES), args[0])
    return f32x8(f32x8), codegen


@intrinsic
def _fma8(typingctx, a, b, c):
    def codegen(context, builder, sig, args):
        return builder.call(_fn(builder, "llvm.fma.v8f32", _VT, [_VT] * 3), args)
    return f32x8(f32x8, f32x8, f32x8), codegen


@intrinsic
def _mul8(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.fmul(*args)
    return f32x8(f32x8, f32x8), codegen


@intrinsic
def _add8(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.fadd(*args)
    return f32x8(f32x8, f32x8), codegen


@overload(get3, inline="always")
def _ov_get3(arr, i, j, k):
    return lambda arr, i, j, k: _get3(arr, i, j, k)


@overload(splat8, inline="always")
def _ov_splat8(x):
    return lambda x: _splat8(np.float32(x))


@overload(load8, inline="always")
def _ov_load8(row, j):
    return lambda row, j: _load8(row, j)


@overload(load8_m, inline="always")
def _ov_load8_m(row, j, w):
    return lambda row, j, w: _load8_m(row, j, w)


@overload(store8, inline="always")
def _ov_store8(row, j, v):
    return lambda row, j, v: _store8(row, j, v)


@overload(store8_m, inline="always")
def _ov_store8_m(row, j, v, w):
    return lambda row, j, v, w: _store8_m(row, j, v, w)


@overload(canon8, inline="always")
def _ov_canon8(v):
    return lambda v: _canon8(v)


@overload(fma8, inline="always")
def _ov_fma8(a, b, c):
    return lambda a, b, c: _fma8(a, b, c)


@overload(mul8, inline="always")
def _ov_mul8(a, b):
    return lambda a, b: _mul8(a, b)


@overload(add8, inline="always")
def _ov_add8(a, b):
    return lambda a, b: _add8(a, b)


# --- 8 x 8 transpose -------------------------------------------------------------------

def transpose8x8(src, s0, ss, dst, d0, ds):
    """dst rows r = 0..7 (flat offsets d0 + r * ds, eight elements each) <- column r of the
    8 x 8 block of src whose rows start at s0 + r * ss."""
    block = np.array([src.reshape(-1)[s0 + r * ss:s0 + r * ss + LANES] for r in range(LANES)],
                     np.float32)
    flat = dst.reshape(-1)
    for r in range(LANES):
        flat[d0 + r * ds:d0 + r * ds + LANES] = block[:, r]


def _shuffle(builder, x, y, mask):
    return builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(_I32, LANES), mask))


@intrinsic
def _transpose8x8(typingctx, src, s0, ss, dst, d0, ds):
    contiguous(src, types.float32)
    contiguous(dst, types.float32)

    def codegen(context, builder, sig, args):
        sarr, s0_, ss_, darr, d0_, ds_ = args
        def row(arr, arrty, first, stride, r):  # the address of row r of the block
            off = builder.add(first, builder.mul(stride, ir.Constant(stride.type, r)))
            return vector_address(context, builder, arrty, arr, off)

        rows = [builder.load(row(sarr, sig.args[0], s0_, ss_, r), align=4)
                for r in range(LANES)]
        # within each 128-bit half: interleave row pairs, then pairs of pairs; then swap
        # the halves (unpcklps/unpckhps, shufps, vperm2f128)
        t = []
        for r in range(0, LANES, 2):
            t.append(_shuffle(builder, rows[r], rows[r + 1], [0, 8, 1, 9, 4, 12, 5, 13]))
            t.append(_shuffle(builder, rows[r], rows[r + 1], [2, 10, 3, 11, 6, 14, 7, 15]))
        # t[0]=lo(r0,r1) t[1]=hi(r0,r1) t[2]=lo(r2,r3) t[3]=hi(r2,r3) ... t[7]=hi(r6,r7)
        u = []
        for base in (0, 4):
            lo01, hi01, lo23, hi23 = t[base:base + 4]
            u.append(_shuffle(builder, lo01, lo23, [0, 1, 8, 9, 4, 5, 12, 13]))
            u.append(_shuffle(builder, lo01, lo23, [2, 3, 10, 11, 6, 7, 14, 15]))
            u.append(_shuffle(builder, hi01, hi23, [0, 1, 8, 9, 4, 5, 12, 13]))
            u.append(_shuffle(builder, hi01, hi23, [2, 3, 10, 11, 6, 7, 14, 15]))
        # u[0..3]: columns 0..3 of rows 0-3 (low half) and columns 4..7 (high half);
        # u[4..7]: the same for rows 4-7
        out = [None] * LANES
        for c in range(4):
            out[c] = _shuffle(builder, u[c], u[4 + c], [0, 1, 2, 3, 8, 9, 10, 11])
            out[c + 4] = _shuffle(builder, u[c], u[4 + c], [4, 5, 6, 7, 12, 13, 14, 15])
        for r in range(LANES):
            builder.store(out[r], row(darr, sig.args[3], d0_, ds_, r), align=4)
        return context.get_dummy_value()
    return types.none(src, types.intp, types.intp, dst, types.intp, types.intp), codegen


@overload(transpose8x8, inline="always")
def _ov_transpose8x8(src, s0, ss, dst, d0, ds):
    return lambda src, s0, ss, dst, d0, ds: _transpose8x8(src, s0, ss, dst, d0, ds)
