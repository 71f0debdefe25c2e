"""A float32 fused multiply-add for kernels: ``fma32(a, b, c)`` = fl32(a * b + c), one rounding.

Inside jitted code it is LLVM's ``llvm.fma.f32`` intrinsic (the hardware FMA where the CPU
has one; LLVM falls back to a correctly rounded library call otherwise), which vectorises.
Under ``NUMBA_DISABLE_JIT=1`` the pure-Python twin below computes the same bits: the
product is exact in float64 (24 + 24 bits), the float64 sum is made round-to-odd with its
TwoSum error, and round-to-odd at 53 bits followed by any rounding to at most 51 bits is
one correct rounding (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums:
proved algorithms using rounding to odd", IEEE TC 2008).
"""

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload


def fma32(a, b, c):
    """fl32(a * b + c) with a single rounding (RNE) for float32 a, b, c."""
    p = float(a) * float(b)  # exact
    cc = float(c)
    s = p + cc
    if not math.isfinite(s) or not (math.isfinite(p) and math.isfinite(cc)):
        with np.errstate(over="ignore", invalid="ignore"):
            return np.float32(s)
    bb = s - p
    err = (p - (s - bb)) + (cc - bb)
    if err != 0.0 and int(np.float64(s).view(np.int64)) & 1 == 0:
        s = math.nextafter(s, math.copysign(math.inf, err))
    with np.errstate(over="ignore"):
        return np.float32(s)


@intrinsic
def _llvm_fma_f32(typingctx, a, b, c):
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@overload(fma32, inline="always")
def _fma32_jit(a, b, c):
    def impl(a, b, c):
        return _llvm_fma_f32(np.float32(a), np.float32(b), np.float32(c))

    return impl
