"""The emulated GEMM as a :class:`torch.autograd.Function`, and the torch <-> numpy
conversions it uses.

:class:`EmulatedGemm` computes ``c + a @ b`` with the forward GEMM of a
:class:`lowprec.autograd.Autocast` (operand casts, scaling recipe, :func:`lowprec.matmul`
with the policy's accumulator or GPU model) and its backward with the same Autocast's data-
and weight-gradient GEMMs, exactly as :meth:`lowprec.autograd.Tensor.matmul` does: ``a``
takes the policy's activation format, ``b`` the weight format, the incoming gradient the
gradient format.

Dtypes: float32 tensors are read without a copy; bfloat16 and float16 tensors are upcast
to float32 (exact); float64 tensors enter as float64 and are rounded to float32 by the
GEMM's input cast (as in :mod:`lowprec.autograd`). Results are returned in the operands'
dtype (rounded to nearest-even from the float32 result for bfloat16 / float16, as torch's
low-precision CPU GEMMs do). Integer, complex and boolean tensors raise TypeError;
tensors off the CPU raise ValueError (lowprec is a CPU emulator).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch.autograd.function import once_differentiable

__all__ = ["EmulatedGemm", "to_numpy", "from_numpy", "check_operand", "unbroadcast"]

#: torch dtypes an emulated GEMM accepts.
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def check_operand(t, op: str, what: str) -> None:
    """Raise a clear error for a GEMM operand the emulator cannot take.

    Raises:
        TypeError: not a tensor, or not a real floating-point dtype.
        ValueError: a tensor off the CPU.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"lowprec.torch: {op}: {what} must be a torch.Tensor, got "
                        f"{type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"lowprec.torch: {op}: {what} is on {t.device}; lowprec emulates "
                         f"GEMMs on the CPU: move the model and data there (.cpu()) or run "
                         f"outside lowprec.torch.emulate")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"lowprec.torch: {op}: {what} has dtype {t.dtype}; emulated GEMMs "
                        f"take float32, bfloat16, float16 or float64 tensors (integer, "
                        f"complex and bool GEMMs are not emulated)")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """The values of a CPU float tensor as a numpy array: float32 and float64 without a
    copy (a strided view), bfloat16 / float16 upcast exactly to float32."""
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.to(torch.float32)
    if t.is_neg():  # a lazily negated view cannot be shared with numpy
        t = t.resolve_neg()
    return t.numpy()


def from_numpy(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of ``dtype`` holding x (float32 results round to nearest-even into
    bfloat16 / float16)."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)


def unbroadcast(g: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """``g`` summed over the axes along which an operand of ``shape`` was broadcast (the
    gradient of a broadcast operand, in g's dtype)."""
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)), dtype=g.dtype)
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True, dtype=g.dtype)
    return g.reshape(shape)


class EmulatedGemm(torch.autograd.Function):
    """``c + a @ b`` through an emulator's Autocast, forward and backward.

    ``apply(a, b, c, emulator, name)``: a (..., m, k), b (..., k, n) (batch axes
    broadcast), c None or broadcastable to the output (it joins the accumulation as
    :meth:`lowprec.autograd.Autocast.matmul` says; its gradient is the output gradient
    summed over the broadcast axes), ``name`` the GEMM's name in the statistics and in the
    per-tensor scaling state.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, c: Optional[torch.Tensor], emu,
                name: str) -> torch.Tensor:
        an, bn = to_numpy(a), to_numpy(b)
        cn = None if c is None else to_numpy(c)
        out, saved = emu.autocast.matmul(an, bn, name, cn)
        ctx.emu, ctx.name, ctx.saved_np = emu, name, saved
        ctx.shapes = (tuple(a.shape), tuple(b.shape), None if c is None else tuple(c.shape))
        ctx.dtypes = (a.dtype, b.dtype, None if c is None else c.dtype)
        # saved so that autograd's version counters catch in-place changes before backward
        ctx.save_for_backward(a, b)
        return from_numpy(out, a.dtype)

    @staticmethod
    @once_differentiable  # the backward GEMMs run in numpy: no second derivatives
    def backward(ctx, g: torch.Tensor):
        ctx.saved_tensors  # raises if a or b was modified in place since the forward pass
        need_a, need_b, need_c = ctx.needs_input_grad[:3]
        gn = to_numpy(g)
        ga, gb = ctx.emu.autocast.matmul_backward(gn, ctx.saved_np, ctx.name, need_a, need_b)
        sa, sb, sc = ctx.shapes
        da, db, dc = ctx.dtypes
        ga = None if ga is None else from_numpy(unbroadcast(ga, sa), da)
        gb = None if gb is None else from_numpy(unbroadcast(gb, sb), db)
        gc = from_numpy(unbroadcast(gn, sc), dc) if need_c else None
        return ga, gb, gc, None, None
