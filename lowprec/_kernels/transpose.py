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
from .plain import EntryPoint
from .simd import transpose8x8

__all__ = ["transpose_f32", "ENTRY", "SIGNATURE"]

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


#: The entry point callers use (``ENTRY.get()``); numpy before the kernel is compiled.
ENTRY = EntryPoint(transpose_f32, SIGNATURE, _numpy)
