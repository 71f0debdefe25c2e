"""A float32 matrix transpose in 8 x 8 register blocks, for the GEMMs' operand copies.

numpy copies a transposed view element by element along the output's rows, reading the
source down its columns (about 0.6 ns an element on a 2-core AVX2 machine: 10 us for a
128 x 128 weight, as long as the GEMM it feeds). Here each 8 x 8 block is eight vector
loads, a fixed shuffle network and eight vector stores (:func:`.simd.transpose8x8`); the
edges that do not fill a block are copied element by element. Copies are exact: any bits.
"""

import numpy as np
from numba.core import types as nbt

from .jit import njit
from .plain import Tier
from .simd import transpose8x8

__all__ = ["transpose_f32", "transpose_entry", "SIGNATURE"]

_F32_C3 = nbt.Array(nbt.float32, 3, "C")
SIGNATURE = (_F32_C3, _F32_C3)


@njit(cache=True)
def transpose_f32(src, dst):
    """dst[b] = src[b].T for src (batch, R, C) and dst (batch, C, R), C-contiguous float32."""
    nb, rows, cols = src.shape
    r8 = rows - rows % 8
    c8 = cols - cols % 8
    for b in range(nb):
        so = b * rows * cols
        for i0 in range(0, r8, 8):
            for j0 in range(0, c8, 8):
                transpose8x8(src, so + i0 * cols + j0, cols, dst, so + j0 * rows + i0, rows)
        for i in range(r8, rows):
            for j in range(cols):
                dst[b, j, i] = src[b, i, j]
        for i in range(r8):
            for j in range(c8, cols):
                dst[b, j, i] = src[b, i, j]


def _numpy(src, dst) -> None:
    dst[...] = src.swapaxes(1, 2)


_ENTRY: list = []
_PLAIN = Tier(transpose_f32, 1 << 62, twin=_numpy)


def transpose_entry():
    """A callable with :func:`transpose_f32`'s arguments: the compiled entry point (no
    dispatcher type matching); numpy while the kernel is not compiled and the plain tier's
    budget lasts (:mod:`.plain`)."""
    if _ENTRY:
        return _ENTRY[0]
    if not hasattr(transpose_f32, "overloads"):  # NUMBA_DISABLE_JIT
        return transpose_f32
    return _compile() if _PLAIN.closed else _maybe_plain


def _compile():
    transpose_f32.compile(SIGNATURE)  # from the on-disk cache when it is there
    _ENTRY.append(transpose_f32.overloads[SIGNATURE].entry_point)
    return _ENTRY[0]


def _maybe_plain(src, dst) -> None:
    if _PLAIN(transpose_f32, 0, src, dst) is Tier.NOT_RUN:
        (_ENTRY[0] if _ENTRY else _compile())(src, dst)
