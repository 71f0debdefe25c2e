"""Bit casts between float64 and int64 for kernels: ``f64_bits(x)`` and ``bits_f64(i)``.

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
