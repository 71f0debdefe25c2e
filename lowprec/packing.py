"""Packed 4-bit storage: two codes per byte.

Storage only: :func:`pack` and :func:`unpack` move 4-bit codes (fp4, int4 and MX/NVFP4
elements of :func:`lowprec.quantize_scaled`) in and out of bytes and know nothing of formats.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["pack", "unpack"]


def pack(codes, axis: int = -1) -> np.ndarray:
    """Store 4-bit codes two per byte along ``axis``.

    Element ``2i`` goes to the low nibble and ``2i + 1`` to the high nibble of byte ``i``:
    the layout of ``torch.float4_e2m1fn_x2`` as PyTorch's tests and torchao's
    ``pack_uint4`` build it (``data[1::2] << 4 | data[::2]``). An odd length gets a zero high
    nibble in its last byte; :func:`unpack` needs the original length to drop it.

    Args:
        codes: integer array of values 0..15 (e.g. ``ScaledTensor.codes`` of fp4/int4).
        axis: the axis to pack along.

    Returns:
        uint8 array with ``ceil(n / 2)`` entries along ``axis``.

    Raises:
        TypeError: for non-integer codes.
        ValueError: for codes outside 0..15, a scalar, or an axis out of range.
    """
    c = np.asarray(codes)
    if c.dtype.kind not in "ui":
        raise TypeError(f"codes must be integers, got dtype {c.dtype}")
    if c.ndim == 0:
        raise ValueError("pack needs an array with at least one dimension")
    _check_axis(axis, c.shape)
    if c.size and (c.min() < 0 or c.max() > 15):
        raise ValueError(f"pack stores 4-bit codes (0..15); got values in "
                         f"[{c.min()}, {c.max()}]")
    m = np.moveaxis(c.astype(np.uint8), axis, -1)
    if m.shape[-1] % 2:
        m = np.concatenate([m, np.zeros(m.shape[:-1] + (1,), np.uint8)], axis=-1)
    out = (m[..., 0::2] | (m[..., 1::2] << np.uint8(4))).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


def unpack(packed, n: Optional[int] = None, axis: int = -1) -> np.ndarray:
    """Inverse of :func:`pack`: two 4-bit codes per byte, low nibble first.

    Args:
        packed: uint8 array.
        n: number of codes along ``axis`` (default: twice the packed length; give the odd
            original length to drop the padding nibble).
        axis: the packed axis.

    Returns:
        uint8 array of codes 0..15.

    Raises:
        TypeError: for a non-uint8 array.
        ValueError: for ``n`` that does not fit, a scalar, or an axis out of range.
    """
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise TypeError(f"packed codes must be uint8, got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError("unpack needs an array with at least one dimension")
    _check_axis(axis, p.shape)
    m = np.moveaxis(p, axis, -1)
    full = 2 * m.shape[-1]
    if n is None:
        n = full
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not full - 1 <= n <= full:
        raise ValueError(f"n={n!r} does not fit {m.shape[-1]} packed bytes (need "
                         f"{max(full - 1, 0)} or {full})")
    out = np.empty(m.shape[:-1] + (full,), np.uint8)
    out[..., 0::2] = m & np.uint8(0x0F)
    out[..., 1::2] = m >> np.uint8(4)
    return np.ascontiguousarray(np.moveaxis(out[..., :n], -1, axis))


def _check_axis(axis, shape: tuple) -> None:
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} is out of range for an array of shape {shape}")
