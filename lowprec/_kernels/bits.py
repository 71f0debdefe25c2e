"""Bit casts between float64 and int64 for kernels: ``f64_bits(x)`` and ``bits_f64(i)``
(and float32 / int32 twins with 32-bit integer operations, below).

Inside jitted code each is one LLVM ``bitcast`` (no memory traffic, so loops using it
vectorise; ``np.float64(x).view(np.int64)`` makes a 0-d array per call). Under
``NUMBA_DISABLE_JIT=1`` the plain-Python twins below give the same bits.
"""

import numpy as np
from numba import types
from numba.extending import intrinsic, overload


def f64_bits(x):
    """The IEEE 754 bit pattern of a float64, as an int64."""
    return np.int64(np.float64(x).view(np.int64))


def bits_f64(i):
    """The float64 whose bit pattern is the int64 ``i``."""
    return np.float64(np.int64(i).view(np.float64))


@intrinsic
def _bitcast_f64_i64(typingctx, x):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def _bitcast_i64_f64(typingctx, i):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@overload(f64_bits, inline="always")
def _f64_bits_jit(x):
    def impl(x):
        return _bitcast_f64_i64(np.float64(x))

    return impl


@overload(bits_f64, inline="always")
def _bits_f64_jit(i):
    def impl(i):
        return _bitcast_i64_f64(np.int64(i))

    return impl


# ---- float32 <-> int32 and 32-bit integer operations ------------------------------------
#
# numba widens every int32 operation to int64 (its integer typing rules), which halves the
# lanes of a vectorised loop and turns variable shifts into 64-bit ones. These wrappers are
# one 32-bit LLVM instruction each (``i32_shl`` / ``i32_lshr`` / ``i32_ashr`` need a shift
# below 32), so a loop built from them runs 8 lanes per AVX2 register.


def f32_bits(x):
    """The IEEE 754 bit pattern of a float32, as an int32."""
    return np.int32(np.float32(x).view(np.int32))


def bits_f32(i):
    """The float32 whose bit pattern is the int32 ``i``."""
    return np.float32(np.int32(i).view(np.float32))


def _wrap32(v):
    return np.int32(((int(v) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))


def i32_add(x, y):
    """x + y in int32 (wrapping)."""
    return _wrap32(int(x) + int(y))


def i32_sub(x, y):
    """x - y in int32 (wrapping)."""
    return _wrap32(int(x) - int(y))


def i32_and(x, y):
    """x & y in int32."""
    return _wrap32(int(x) & int(y))


def i32_or(x, y):
    """x | y in int32."""
    return _wrap32(int(x) | int(y))


def i32_xor(x, y):
    """x ^ y in int32."""
    return _wrap32(int(x) ^ int(y))


def i32_shl(x, s):
    """x << s in int32 (0 <= s < 32)."""
    return _wrap32(int(x) << int(s))


def i32_lshr(x, s):
    """x >> s in int32, logical (zeros shifted in; 0 <= s < 32)."""
    return _wrap32((int(x) & 0xFFFFFFFF) >> int(s))


def i32_hi(z):
    """The top 32 bits of a uint64, as an int32."""
    return _wrap32(int(z) >> 32)


@intrinsic
def _bitcast_f32_i32(typingctx, x):
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))

    return sig, codegen


@intrinsic
def _bitcast_i32_f32(typingctx, i):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return sig, codegen


@intrinsic
def _hi32(typingctx, z):
    sig = types.int32(types.uint64)

    def codegen(context, builder, signature, args):
        hi = builder.lshr(args[0], args[0].type(32))
        return builder.trunc(hi, context.get_value_type(types.int32))

    return sig, codegen


def _binop32(name):
    @intrinsic
    def op(typingctx, x, y):
        sig = types.int32(types.int32, types.int32)

        def codegen(context, builder, signature, args):
            return getattr(builder, name)(args[0], args[1])

        return sig, codegen

    return op


_add32, _sub32, _and32, _or32, _xor32, _shl32, _lshr32 = (
    _binop32(n) for n in ("add", "sub", "and_", "or_", "xor", "shl", "lshr"))


@overload(f32_bits, inline="always")
def _f32_bits_jit(x):
    def impl(x):
        return _bitcast_f32_i32(np.float32(x))

    return impl


@overload(bits_f32, inline="always")
def _bits_f32_jit(i):
    def impl(i):
        return _bitcast_i32_f32(np.int32(i))

    return impl


@overload(i32_hi, inline="always")
def _i32_hi_jit(z):
    def impl(z):
        return _hi32(np.uint64(z))

    return impl


def _overload_binop(py, op):
    @overload(py, inline="always")
    def _jit(x, y):
        def impl(x, y):
            return op(np.int32(x), np.int32(y))

        return impl


for _py, _op in ((i32_add, _add32), (i32_sub, _sub32), (i32_and, _and32), (i32_or, _or32),
                 (i32_xor, _xor32), (i32_shl, _shl32), (i32_lshr, _lshr32)):
    _overload_binop(_py, _op)
