"""Eight int32 lanes, and the float32-vector operations that need them (companion of :mod:`.simd`).

:data:`i32x8` is an LLVM ``<8 x i32>`` value that numba carries like a scalar, as
:data:`.simd.f32x8` is for ``<8 x float>``. The block-FMA kernel (:mod:`.tensorcore_fast`)
keeps its per-block state in such vectors: a running float32 maximum (:func:`max8`), scales
built from a float32's exponent bits (:func:`bits8`, shifts, masks, :func:`from_bits8`) and
int32 sums of truncated products (:func:`ftoi8`, :func:`iadd8`), and the high words of
float64 scales, interleaved with zeros (:func:`zip_lo8`, :func:`zip_hi8`) and stored over a
float64 array.

Every operation is one LLVM instruction per lane with the semantics of its plain-Python
twin below (used under ``NUMBA_DISABLE_JIT=1`` and in the kernels' plain copies, where a
vector is a numpy array of 8): integer additions wrap modulo 2^32; :func:`ftoi8` truncates
toward zero (``fptosi``; lanes outside int32's range or NaN are undefined in LLVM, so the
callers keep every lane in range); :func:`max8` is ``a if a > b else b`` lane by lane (the
second operand for NaNs and for equal values, signed zeros included). Loads and stores take
a C-contiguous int32 array and the flat index of the first lane, unchecked, as
:func:`.simd.load8` does.

The overloads are not inlined by numba (``inline="always"``): each is compiled once as a
function of one instruction, which LLVM inlines at every call anyway; inlining them in
numba's IR made the block-FMA kernel's cold compilation about 1.5 times as long (the run
time was the same).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, overload, register_model

from .simd import LANES, f32x8, splat, vector_load, vector_store


class I32x8(types.Type):
    """numba type of eight int32 lanes (LLVM ``<8 x i32>``)."""

    def __init__(self):
        super().__init__(name="i32x8")


i32x8 = I32x8()
_I32 = ir.IntType(32)
_IT = ir.VectorType(_I32, LANES)
_VT = ir.VectorType(ir.FloatType(), LANES)


@register_model(I32x8)
class _I32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _IT)


# --- plain Python (NUMBA_DISABLE_JIT, plain copies) --------------------------------------

def isplat8(x):
    """Eight lanes equal to ``x`` (taken modulo 2^32 as an int32)."""
    return np.full(LANES, np.int64(x), np.int64).astype(np.int32)


def iload8(arr, j):
    """Flat elements ``j .. j+7`` of the int32 array ``arr`` as a vector."""
    return np.array(arr.reshape(-1)[j:j + LANES], np.int32)


def istore8(arr, j, v):
    """Flat elements ``j .. j+7`` of the int32 array ``arr`` = v."""
    arr.reshape(-1)[j:j + LANES] = v


def iadd8(a, b):
    """Lane-wise ``a + b`` modulo 2^32."""
    return (a.astype(np.int64) + b.astype(np.int64)).astype(np.int32)


def isub8(a, b):
    """Lane-wise ``a - b`` modulo 2^32."""
    return (a.astype(np.int64) - b.astype(np.int64)).astype(np.int32)


def iand8(a, b):
    """Lane-wise bitwise ``a & b``."""
    return np.bitwise_and(a, b).astype(np.int32)


def imax8(a, b):
    """Lane-wise signed maximum."""
    return np.maximum(a, b).astype(np.int32)


def ior8(a, b):
    """Lane-wise bitwise ``a | b``."""
    return np.bitwise_or(a, b).astype(np.int32)


def ixor8(a, b):
    """Lane-wise bitwise ``a ^ b``."""
    return np.bitwise_xor(a, b).astype(np.int32)


def ieq8(a, b):
    """Lane-wise ``a == b`` as a mask: -1 (all bits set) where equal, 0 elsewhere."""
    return -(a == b).astype(np.int32)


def igt8(a, b):
    """Lane-wise signed ``a > b`` as a mask: -1 where true, 0 elsewhere."""
    return -(a > b).astype(np.int32)


def any8(v) -> bool:
    """Whether any lane is non-zero."""
    return bool(np.any(v != 0))


def itof8(v):
    """Lane-wise int32 -> float32, rounded to nearest-even (``sitofp``)."""
    return np.array(v, np.int32).astype(np.float32)


def shl8(v, n):
    """Lane-wise ``v << n`` (0 <= n < 32; bits shifted out are lost)."""
    return (v.view(np.uint32) << np.uint32(n)).view(np.int32)


def lshr8(v, n):
    """Lane-wise logical ``v >> n`` (0 <= n < 32; zeros shifted in)."""
    return (v.view(np.uint32) >> np.uint32(n)).view(np.int32)


def ashr8(v, n):
    """Lane-wise arithmetic ``v >> n`` (0 <= n < 32; copies of the sign bit shifted in)."""
    return (np.asarray(v, np.int32) >> np.int32(n)).astype(np.int32)


def bits8(v):
    """The bits of a float32 vector as int32 lanes."""
    return np.array(v, np.float32).view(np.int32)


def from_bits8(v):
    """The float32 vector with the bits of the int32 lanes."""
    return np.array(v, np.int32).view(np.float32)


def zip_lo8(a, b):
    """Lanes 0..3 of ``a`` and ``b`` interleaved: a0 b0 a1 b1 a2 b2 a3 b3. (With ``a``
    zero and stored over int64 (little-endian) data: the int64 values b_i << 32.)"""
    return np.stack([a[:4], b[:4]], 1).reshape(-1).astype(np.int32)


def zip_hi8(a, b):
    """Lanes 4..7 of ``a`` and ``b`` interleaved: a4 b4 a5 b5 a6 b6 a7 b7."""
    return np.stack([a[4:], b[4:]], 1).reshape(-1).astype(np.int32)


def ftoi8(v):
    """Lane-wise float32 -> int32 truncated toward zero (lanes in int32's range)."""
    with np.errstate(invalid="ignore"):
        return np.trunc(v).astype(np.int32)


def max8(a, b):
    """Lane-wise ``a if a > b else b`` (float32)."""
    return np.where(a > b, a, b).astype(np.float32)


# --- compiled --------------------------------------------------------------------------

def _splat(builder, x):
    return splat(builder, x, _IT)


@intrinsic
def _isplat8(typingctx, x):
    def codegen(context, builder, sig, args):
        return _splat(builder, args[0])
    return i32x8(types.int32), codegen


_iload8 = vector_load(i32x8, types.int32, _IT)
_istore8 = vector_store(i32x8, types.int32, _IT)


def _binary(op):
    @intrinsic
    def _op(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return op(builder, *args)
        return i32x8(i32x8, i32x8), codegen
    return _op


_iadd8 = _binary(lambda bld, a, b: bld.add(a, b))
_isub8 = _binary(lambda bld, a, b: bld.sub(a, b))
_iand8 = _binary(lambda bld, a, b: bld.and_(a, b))
_imax8 = _binary(lambda bld, a, b: bld.select(bld.icmp_signed(">", a, b), a, b))
_ior8 = _binary(lambda bld, a, b: bld.or_(a, b))
_ixor8 = _binary(lambda bld, a, b: bld.xor(a, b))
_ieq8 = _binary(lambda bld, a, b: bld.sext(bld.icmp_signed("==", a, b), _IT))
_igt8 = _binary(lambda bld, a, b: bld.sext(bld.icmp_signed(">", a, b), _IT))


def _shift(op):
    @intrinsic
    def _op(typingctx, v, n):
        def codegen(context, builder, sig, args):
            return op(builder, args[0], _splat(builder, args[1]))
        return i32x8(i32x8, types.int32), codegen
    return _op


_shl8 = _shift(lambda bld, v, n: bld.shl(v, n))
_lshr8 = _shift(lambda bld, v, n: bld.lshr(v, n))
_ashr8 = _shift(lambda bld, v, n: bld.ashr(v, n))


@intrinsic
def _any8(typingctx, v):
    def codegen(context, builder, sig, args):
        nz = builder.icmp_signed("!=", args[0], ir.Constant(_IT, None))
        return builder.icmp_unsigned("!=", builder.bitcast(nz, ir.IntType(LANES)),
                                     ir.Constant(ir.IntType(LANES), 0))
    return types.boolean(i32x8), codegen


@intrinsic
def _itof8(typingctx, v):
    def codegen(context, builder, sig, args):
        return builder.sitofp(args[0], _VT)
    return f32x8(i32x8), codegen


def _zip(lanes):
    @intrinsic
    def _op(typingctx, a, b):
        def codegen(context, builder, sig, args):
            return builder.shuffle_vector(args[0], args[1], ir.Constant(_IT, lanes))
        return i32x8(i32x8, i32x8), codegen
    return _op


_zip_lo8 = _zip([0, 8, 1, 9, 2, 10, 3, 11])
_zip_hi8 = _zip([4, 12, 5, 13, 6, 14, 7, 15])


@intrinsic
def _bits8(typingctx, v):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], _IT)
    return i32x8(f32x8), codegen


@intrinsic
def _from_bits8(typingctx, v):
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], _VT)
    return f32x8(i32x8), codegen


@intrinsic
def _ftoi8(typingctx, v):
    def codegen(context, builder, sig, args):
        return builder.fptosi(args[0], _IT)
    return i32x8(f32x8), codegen


@intrinsic
def _max8(typingctx, a, b):
    def codegen(context, builder, sig, args):
        return builder.select(builder.fcmp_ordered(">", args[0], args[1]), args[0], args[1])
    return f32x8(f32x8, f32x8), codegen


@overload(isplat8)
def _ov_isplat8(x):
    return lambda x: _isplat8(np.int32(x))


@overload(iload8)
def _ov_iload8(row, j):
    return lambda row, j: _iload8(row, j)


@overload(istore8)
def _ov_istore8(row, j, v):
    return lambda row, j, v: _istore8(row, j, v)


@overload(iadd8)
def _ov_iadd8(a, b):
    return lambda a, b: _iadd8(a, b)


@overload(isub8)
def _ov_isub8(a, b):
    return lambda a, b: _isub8(a, b)


@overload(iand8)
def _ov_iand8(a, b):
    return lambda a, b: _iand8(a, b)


@overload(imax8)
def _ov_imax8(a, b):
    return lambda a, b: _imax8(a, b)


@overload(ior8)
def _ov_ior8(a, b):
    return lambda a, b: _ior8(a, b)


@overload(ixor8)
def _ov_ixor8(a, b):
    return lambda a, b: _ixor8(a, b)


@overload(ieq8)
def _ov_ieq8(a, b):
    return lambda a, b: _ieq8(a, b)


@overload(igt8)
def _ov_igt8(a, b):
    return lambda a, b: _igt8(a, b)


@overload(any8)
def _ov_any8(v):
    return lambda v: _any8(v)


@overload(itof8)
def _ov_itof8(v):
    return lambda v: _itof8(v)


@overload(ashr8)
def _ov_ashr8(v, n):
    return lambda v, n: _ashr8(v, np.int32(n))


@overload(shl8)
def _ov_shl8(v, n):
    return lambda v, n: _shl8(v, np.int32(n))


@overload(lshr8)
def _ov_lshr8(v, n):
    return lambda v, n: _lshr8(v, np.int32(n))


@overload(zip_lo8)
def _ov_zip_lo8(a, b):
    return lambda a, b: _zip_lo8(a, b)


@overload(zip_hi8)
def _ov_zip_hi8(a, b):
    return lambda a, b: _zip_hi8(a, b)


@overload(bits8)
def _ov_bits8(v):
    return lambda v: _bits8(v)


@overload(from_bits8)
def _ov_from_bits8(v):
    return lambda v: _from_bits8(v)


@overload(ftoi8)
def _ov_ftoi8(v):
    return lambda v: _ftoi8(v)


@overload(max8)
def _ov_max8(a, b):
    return lambda a, b: _max8(a, b)
