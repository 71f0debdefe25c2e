"""numpy twin of the float32 GEMM kernel (:func:`.gemm.gemm_f32`), for uses before it is compiled.

The kernel's order is simple: every output starts at c and takes one float32 step per k,
in order. numpy can run that order over all outputs at once, one k at a time (a few
microseconds a step for a training step's matrices), which is what a first call on a cold
numba cache does instead of waiting seconds for the compiler (:mod:`.plain`).

Each step gives the kernel's bits: numpy's float32 multiply and add round correctly to
nearest-even (the unfused step), and the fused step fl32(a b + acc) is computed as
:func:`.fma.fma32` computes it: the product is exact in float64, the float64 sum is made
round-to-odd with its TwoSum error, and rounding that to float32 is one correct rounding
(Boldo & Melquiond 2008). Only for finite operands: non-finite inputs are left to the
kernel's own code. A NaN made on the way (infinite sums of opposite signs) is written as
the kernel writes NaNs, 0x7FC00000.
"""

import numpy as np


def gemm_f32_numpy(a, b, c, fused, out) -> bool:
    """``gemm_f32(a, b, c, fused, out)`` with numpy when every operand is finite.

    Args:
        a: (batch, M, K), b: (batch, K, N), c and out: (batch, M, N), float32.
        fused: one rounding per step (fused multiply-add) instead of two.

    Returns:
        False (``out`` untouched) when an operand is not finite; True otherwise.
    """
    if not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(c).all()):
        return False
    acc = np.array(c, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf, as the kernel
        _steps(a, b, acc, fused)
    acc[np.isnan(acc)] = np.nan  # an overflowed sum met inf of the other sign: the kernel's NaN
    out[...] = acc
    return True


def _steps(a, b, acc, fused) -> None:
    """acc <- step(acc, a[:, :, k], b[:, k, :]) for k = 0, 1, ... in place."""
    if not fused:
        tmp = np.empty_like(acc)
        for k in range(a.shape[2]):
            np.multiply(a[:, :, k, None], b[:, None, k, :], out=tmp)
            acc += tmp
    else:
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        for k in range(a.shape[2]):
            p = a64[:, :, k, None] * b64[:, None, k, :]  # exact: 24 + 24 bits
            cc = acc.astype(np.float64)
            s = p + cc
            bb = s - p
            err = (p - (s - bb)) + (cc - bb)
            # round to odd: an inexact s with an even significand moves one ulp towards
            # the exact sum (up in magnitude when err has s's sign, down otherwise); err is
            # NaN once an accumulator has overflowed to inf, which stays as it is
            bits = s.view(np.int64)
            move = ((err > 0) | (err < 0)) & ((bits & 1) == 0)
            bits += np.where(move, np.where((err > 0) == (s > 0), 1, -1), 0)
            acc[...] = s
