"""``lowprec.torch.emulate``: a :class:`torch.overrides.TorchFunctionMode` that sends the
GEMMs of any torch model through :func:`lowprec.matmul` as a
:class:`lowprec.autograd.Policy` says, forward and backward.

Which torch calls are emulated, and how they map onto lowprec's ``c + a @ b`` (``a``
takes the policy's activation format, ``b`` its weight format, the backward pass's
output gradient its gradient format):

- ``torch.matmul`` / ``Tensor.matmul`` / ``@`` / ``torch.linalg.matmul``: torch's
  semantics for 1-D operands and batch broadcasting; an N-D ``a`` times a 2-D ``b`` is
  one GEMM over all rows (torch folds the batch into M the same way).
- ``torch.mm``, ``torch.bmm`` (and the Tensor methods).
- ``torch.addmm(c, a, b)``, ``torch.baddbmm(c, a, b)``: with ``beta = alpha = 1`` the
  addend ``c`` is fused into the GEMM (:meth:`lowprec.autograd.Autocast.matmul`: into the
  accumulation, or after the dequantization scales under per-tensor scaling, as cuBLASLt's
  bias epilogue); otherwise ``beta * c + alpha * (a @ b)`` in torch after the GEMM.
- ``F.linear(x, w, bias)``: ``x`` (flattened to 2-D) ``@ w.T`` with the bias fused.
- ``F.scaled_dot_product_attention``: torch's math backend written out in torch with
  its two batched GEMMs emulated: ``q * sqrt(scale)`` times ``(k^T * sqrt(scale))``, the
  additive (float) or boolean mask or the causal mask (``-inf`` above the diagonal),
  softmax with fully masked rows giving zeros (``_safe_softmax``), dropout by
  ``F.dropout`` (the math backend's RNG use), then ``@ v``; ``enable_gqa`` repeats k and
  v over heads. bfloat16 / float16 inputs are computed in float32 and the output rounded
  back, as the math backend does on the CPU.
- ``F.multi_head_attention_forward`` (``nn.MultiheadAttention``, so
  ``nn.TransformerEncoderLayer`` and friends): torch's own Python body runs with the mode
  active, so its projections (``F.linear``) and attention (SDPA, or ``bmm`` /
  ``baddbmm`` when attention weights are asked for) are emulated one by one.

Other ops that contain GEMMs (``einsum``, ``tensordot``, ``mv``, ``dot``, convolutions,
``F.bilinear``, ...) raise NotImplementedError by default, so nothing runs in fp32
unnoticed; ``other_gemms="torch"`` runs them in torch instead. ``out=`` arguments are
not supported. Every other torch call runs unchanged.

GEMM names (statistics, per-tensor scaling state): ``"<module>:<op>"`` inside a module's
forward (the module's qualified name when ``emulate(module=net)`` names the root, else
its class name and an index, e.g. ``Linear1``; ``#n`` counts further GEMMs of the same op
in one forward), ``"<op>@<file>:<line>"`` outside any module. The names are stable from
step to step, as delayed scaling needs.
"""

from __future__ import annotations

import math
import os
import sys
import types
import weakref
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..autograd.autocast import Autocast, QTensor
from ..autograd.instrument import History
from ..autograd.policy import RECIPES, Policy
from ..autograd.scaling import (SCALINGS, CurrentScaling, DelayedScaling, FineGrainedScaling,
                                MXScaling, NVFP4Scaling)
from ..formats import float32, get_format
from ..gemm import matmul as lp_matmul
from .functions import EmulatedGemm, check_operand
from .stats import GemmTracker, gemm_stats, report

__all__ = ["emulate", "Emulator", "GemmRecord", "make_policy", "torch_cpu_matmul",
           "SCALING_NAMES", "INPUT_SETS", "TorchAutocast"]

#: Scaling recipes by name (``emulate(recipe="current")``), each with default settings.
SCALING_NAMES = {"current": CurrentScaling, "delayed": DelayedScaling, "mx": MXScaling,
                 "deepseek": FineGrainedScaling, "nvfp4": NVFP4Scaling}

#: Named (activation, weight, gradient) format sets for ``inputs=``: "hybrid" is
#: Transformer Engine's fp8 format, E4M3 forward and E5M2 gradients.
INPUT_SETS = {"hybrid": ("float8_e4m3fn", "float8_e4m3fn", "float8_e5m2")}

_ROLES = ("activation", "weight", "gradient")


def _input_formats(inputs) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    if inputs is None:
        return (None, None, None)
    if isinstance(inputs, str):
        if inputs.lower() in INPUT_SETS:
            return INPUT_SETS[inputs.lower()]
        return (inputs,) * 3
    if isinstance(inputs, dict):
        bad = set(inputs) - set(_ROLES)
        if bad:
            raise ValueError(f"emulate: inputs keys must be among {_ROLES}, got {sorted(bad)}")
        return tuple(inputs.get(r) for r in _ROLES)
    if isinstance(inputs, (tuple, list)) and len(inputs) == 3:
        return tuple(inputs)
    raise TypeError(f"emulate: inputs must be None, a format name, one of {list(INPUT_SETS)}, "
                    f"an (activation, weight, gradient) tuple or a dict by role; got "
                    f"{inputs!r}")


def _scaling(recipe):
    if recipe is None or isinstance(recipe, SCALINGS):
        return recipe
    if isinstance(recipe, str) and recipe in SCALING_NAMES:
        return SCALING_NAMES[recipe]()
    raise ValueError(f"emulate: recipe must be None, one of {list(SCALING_NAMES)} or a "
                     f"lowprec.autograd scaling recipe "
                     f"({', '.join(c.__name__ for c in SCALINGS)}); got {recipe!r}")


def make_policy(model=None, inputs=None, recipe=None, *, promote_every: Optional[int] = None,
                acc: Optional[str] = "fp32", acc_rounding: str = "rne") -> Policy:
    """The :class:`lowprec.autograd.Policy` that :func:`emulate` builds from its arguments.

    Args:
        model: GPU tensor-core model for every GEMM (a name of
            :data:`lowprec.tensorcore.MODELS` such as "h100" or "b200", a
            :class:`~lowprec.tensorcore.TensorCoreModel` or a fitted
            :class:`~lowprec.tensorcore.BlockFMAModel`), or None for :func:`lowprec.matmul`
            with ``acc`` / ``acc_rounding``.
        inputs: formats of the GEMM operands: None (float32, not rounded); one format name
            for all three roles ("e4m3", "bf16", ...); "hybrid" (E4M3 forward, E5M2
            gradients); an (activation, weight, gradient) tuple; or a dict by role.
        recipe: None (plain casts), a name of :data:`SCALING_NAMES` ("current",
            "delayed", "mx", "deepseek", "nvfp4") or a scaling recipe of
            :mod:`lowprec.autograd.scaling`.
        promote_every: None, or N: partial sums are promoted to fp32 every N products
            (with a model, its promotion interval, e.g. 128 on Hopper as in DeepSeek-V3).
        acc: accumulator format without a model ("fp32", "bf16", ...).
        acc_rounding: rounding of each accumulation step.

    Returns:
        A Policy (its name says what it is, e.g. "h100 e4m3/e4m3/e5m2 current
        promote128").

    Raises:
        ValueError: unknown formats, models, recipes, or combinations lowprec cannot run
            (e.g. a model without operand formats it takes), from :class:`Policy`.
        TypeError: an ``inputs`` of the wrong kind.
    """
    fa, fw, fg = _input_formats(inputs)
    sc = _scaling(recipe)
    label = []
    if model is not None:
        label.append(model if isinstance(model, str) else (getattr(model, "name", "") or "model"))
    elif acc != "fp32" or acc_rounding != "rne":
        label.append(f"acc={acc}/{acc_rounding}")
    names = ["fp32" if f is None else get_format(f).name for f in (fa, fw, fg)]
    label.append("/".join(names) if len(set(names)) > 1 else names[0])
    if sc is not None:
        label.append(type(sc).__name__)
    if promote_every is not None:
        label.append(f"promote{promote_every}")
    name = "torch " + " ".join(label)
    if (fa, fw, fg, model, sc, promote_every, acc, acc_rounding) == (
            None, None, None, None, None, None, "fp32", "rne"):
        return Policy()  # nothing rounded: the fp32 default ("fp32")
    return Policy(name, activations=fa, weights=fw, gradients=fg, acc=acc,
                  acc_rounding=acc_rounding, gemm_model=model, scaling=sc,
                  promote_every=promote_every)


@dataclass
class GemmRecord:
    """One emulated GEMM, recorded with ``emulate(record=True)``: ``out`` is what
    :func:`lowprec.matmul` made of ``c + a @ b`` under the emulator's policy, with the
    operands as they entered the policy's casts (float32 or float64 numpy copies, batch
    axes kept as given).

    Attributes:
        name: the GEMM's name (see :mod:`lowprec.torch.mode`).
        kind: "forward" (a: activations, b: weights), "dgrad" (a: output gradient, b:
            weights transposed) or "wgrad" (a: activations transposed, b: output gradient).
        a, b: the operands; c: the fused addend or None; out: the result before it is
            summed over broadcast axes and converted to the tensors' dtype.
    """

    name: str
    kind: str
    a: np.ndarray
    b: np.ndarray
    c: Optional[np.ndarray]
    out: np.ndarray


def torch_cpu_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 ``a @ b`` in the order of torch's CPU ``cpublas`` ``sum()`` (ilp_factor 4),
    the GEMM torch 2.13 runs for bfloat16 / float16 ``mm`` / ``bmm`` / ``addmm`` on a CPU
    without bf16 matrix instructions: four fp32 partial sums take the products
    k = 4i + lane for k < 4 floor(K / 4); the remaining K mod 4 products go into partial
    sum 0; then sum 0 + sum 1 + sum 2 + sum 3 in order, fp32 RNE. Batched products with
    fewer than 400 multiply-adds per matrix (M N K < 400) are one sequential fp32 sum, as
    torch's small-problem bmm loop. Products are rounded to fp32 before they are added
    (exact for bfloat16 / float16 inputs)."""
    K = a.shape[-1]
    main = K - K % 4
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    if len(shape) > 2 and K * shape[-2] * shape[-1] < 400:
        # torch's bmm / baddbmm run problems of fewer than 400 multiply-adds per batch in
        # their own loop, one fp32 sum in k order
        return np.asarray(lp_matmul(a, b, fma=False), np.float32)
    total = None
    with np.errstate(over="ignore", invalid="ignore"):
        for lane in range(4):
            idx = np.arange(lane, main, 4)
            if lane == 0:
                idx = np.concatenate([idx, np.arange(main, K)])
            r = (np.asarray(lp_matmul(a[..., idx], b[..., idx, :], fma=False), np.float32)
                 if idx.size else np.zeros(shape, np.float32))
            total = r if total is None else (total + r).astype(np.float32)
    return total


class TorchAutocast(Autocast):
    """The :class:`lowprec.autograd.Autocast` an emulator runs its GEMMs through, with two
    additions: ``accumulate`` (a float32 order of torch's CPU kernels, the addend added
    last, see :func:`emulate`) and ``records``."""

    def __init__(self, policy: Policy, *, seed: int = 0, tracker=None,
                 accumulate=None, records: Optional[list] = None):
        super().__init__(policy, seed=seed, tracker=tracker)
        self.accumulate = accumulate
        self.records = records

    def _gemm(self, a: QTensor, b: QTensor, c: Optional[np.ndarray] = None) -> np.ndarray:
        if self.accumulate is None:
            return super()._gemm(a, b, c)
        av = np.asarray(a.values, np.float32)
        bv = np.asarray(b.values, np.float32)
        if self.accumulate == "torch-cpu":
            out = torch_cpu_matmul(av, bv)
        else:
            out = np.asarray(lp_matmul(av, bv, lanes=self.accumulate), np.float32)
        # torch's CPU addmm adds beta * c to the float32 sum (c = beta * c + alpha * dot);
        # per-tensor dequantization scales apply to the sum first
        with np.errstate(over="ignore", invalid="ignore"):
            for s in (a.inv, b.inv):
                if s is not None:
                    out = (out * np.float32(s)).astype(np.float32)
            if c is not None:
                out = (out + np.asarray(c, np.float32)).astype(np.float32)
        return out

    def matmul(self, a, b, key, c=None):
        out, saved = super().matmul(a, b, key, c)
        if self.records is not None:
            self.records.append(GemmRecord(key, "forward", a.copy(), b.copy(),
                                           None if c is None else np.array(c), out.copy()))
        return out, saved

    def matmul_backward(self, g, saved, key, need_a, need_b):
        ga, gb = super().matmul_backward(g, saved, key, need_a, need_b)
        if self.records is not None:
            a, b = saved[0], saved[1]
            if ga is not None:
                self.records.append(GemmRecord(key, "dgrad", g.copy(),
                                               np.swapaxes(b, -1, -2).copy(), None, ga.copy()))
            if gb is not None:
                self.records.append(GemmRecord(key, "wgrad", np.swapaxes(a, -1, -2).copy(),
                                               g.copy(), None, gb.copy()))
        return ga, gb


# --------------------------------------------------------------------------------------
# argument binding for the builtins the mode handles


def _bind(op: str, args: tuple, kwargs: dict, names: Tuple[str, ...], defaults: dict) -> dict:
    pos = names + tuple(k for k in defaults if k not in ("out", "out_dtype"))
    if len(args) > len(pos):
        raise TypeError(f"lowprec.torch: {op}: this call signature (more than "
                        f"{len(pos)} positional arguments) is not supported under emulation")
    out = dict(defaults)
    out.update(zip(pos, args))
    for k, v in kwargs.items():
        if k not in names and k not in defaults:
            raise TypeError(f"lowprec.torch: {op}: unexpected keyword argument {k!r}")
        out[k] = v
    missing = [n for n in names if n not in out]
    if missing:
        raise TypeError(f"lowprec.torch: {op}: missing argument(s) {missing}")
    if out.get("out") is not None:
        raise NotImplementedError(f"lowprec.torch: {op}(..., out=...) is not supported "
                                  f"under emulation; assign the result instead")
    if out.get("out_dtype") is not None:
        raise NotImplementedError(f"lowprec.torch: {op}(..., out_dtype=...) is not supported "
                                  f"under emulation")
    return out


def _without_torch_function_check(fn):
    """A copy of a Python function of torch whose ``has_torch_function*`` checks say no,
    so that its body runs (with the mode active) instead of handing itself back to the
    mode. torch itself is not changed."""
    g = dict(fn.__globals__)
    for n in ("has_torch_function", "has_torch_function_unary", "has_torch_function_variadic"):
        g[n] = lambda *a, **k: False
    new = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    return new


_MHA_BODY = _without_torch_function_check(F.multi_head_attention_forward)


def _unsupported_gemm_ops() -> dict:
    """torch functions that contain GEMMs the mode does not emulate, by object."""
    cands = {
        "torch.einsum": getattr(torch, "einsum", None),
        "torch.tensordot": getattr(torch, "tensordot", None),
        "torch.chain_matmul": getattr(torch, "chain_matmul", None),
        "torch.linalg.multi_dot": getattr(torch.linalg, "multi_dot", None),
        "torch.linalg.vecdot": getattr(torch.linalg, "vecdot", None),
        "torch.mv": torch.mv, "Tensor.mv": torch.Tensor.mv,
        "torch.dot": torch.dot, "Tensor.dot": torch.Tensor.dot,
        "torch.vdot": torch.vdot, "torch.inner": torch.inner, "Tensor.inner": torch.Tensor.inner,
        "torch.addmv": torch.addmv, "Tensor.addmv": torch.Tensor.addmv,
        "torch.addbmm": torch.addbmm, "Tensor.addbmm": torch.Tensor.addbmm,
        "Tensor.addmm_": torch.Tensor.addmm_, "Tensor.baddbmm_": torch.Tensor.baddbmm_,
        "Tensor.addbmm_": torch.Tensor.addbmm_, "Tensor.addmv_": torch.Tensor.addmv_,
        "F.bilinear": F.bilinear,
        "F.conv1d": F.conv1d, "F.conv2d": F.conv2d, "F.conv3d": F.conv3d,
        "F.conv_transpose1d": F.conv_transpose1d, "F.conv_transpose2d": F.conv_transpose2d,
        "F.conv_transpose3d": F.conv_transpose3d,
    }
    return {f: n for n, f in cands.items() if f is not None}


_UNSUPPORTED = _unsupported_gemm_ops()
_HERE = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


def _call_site() -> str:
    """file:line of the innermost caller outside torch and lowprec.torch."""
    f = sys._getframe(2)
    while f is not None:
        fn = f.f_code.co_filename
        if not (fn.startswith(_HERE) or fn.startswith(_TORCH_DIR)):
            return f"{os.path.basename(fn)}:{f.f_lineno}"
        f = f.f_back
    return "?"


class _Mode(TorchFunctionMode):
    """The TorchFunctionMode of one :class:`Emulator`."""

    def __init__(self, emu: "Emulator"):
        super().__init__()
        self.emu = emu
        T = torch.Tensor
        self.table = {
            torch.matmul: self._matmul, T.matmul: self._matmul, T.__matmul__: self._matmul,
            torch.linalg.matmul: self._matmul, T.__rmatmul__: self._rmatmul,
            torch.mm: self._mm, T.mm: self._mm, torch.bmm: self._bmm, T.bmm: self._bmm,
            torch.addmm: self._addmm, T.addmm: self._addmm,
            torch.baddbmm: self._baddbmm, T.baddbmm: self._baddbmm,
            F.linear: self._linear, F.scaled_dot_product_attention: self._sdpa,
            F.multi_head_attention_forward: self._mha,
        }

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        h = self.table.get(func)
        if h is not None:
            return h(*args, **kwargs)
        if func in _UNSUPPORTED and self.emu.other_gemms == "raise":
            raise NotImplementedError(
                f"lowprec.torch: {_UNSUPPORTED[func]} contains GEMMs that emulate() does not "
                f"route through lowprec.matmul (it emulates matmul, mm, bmm, addmm, baddbmm, "
                f"F.linear, scaled_dot_product_attention and nn.MultiheadAttention); rewrite "
                f"it with those, or pass other_gemms='torch' to run it in torch's own fp32")
        return func(*args, **kwargs)

    # -- the GEMM itself ---------------------------------------------------------------
    def _gemm(self, op: str, a, b, c=None) -> torch.Tensor:
        check_operand(a, op, "the first operand")
        check_operand(b, op, "the second operand")
        if c is not None:
            check_operand(c, op, "the addend")
        dts = {a.dtype, b.dtype} | ({c.dtype} if c is not None else set())
        if len(dts) > 1:
            raise RuntimeError(f"lowprec.torch: {op}: operands have different dtypes "
                               f"{sorted(map(str, dts))} (torch requires one)")
        if a.dim() < 2 or b.dim() < 2 or a.shape[-1] != b.shape[-2]:
            raise RuntimeError(f"lowprec.torch: {op}: shapes {tuple(a.shape)} and "
                               f"{tuple(b.shape)} cannot be multiplied")
        return EmulatedGemm.apply(a, b, c, self.emu, self.emu._name(op))

    # -- handlers --------------------------------------------------------------------------
    def _matmul(self, *args, **kwargs):
        p = _bind("matmul", args, kwargs, ("input", "other"), {"out": None})
        a, b = p["input"], p["other"]
        check_operand(a, "matmul", "input")
        check_operand(b, "matmul", "other")
        if a.dim() == 0 or b.dim() == 0:
            raise RuntimeError("lowprec.torch: matmul: both arguments need at least 1 dimension")
        vec_a, vec_b = a.dim() == 1, b.dim() == 1
        if vec_a:
            a = a.unsqueeze(0)
        if vec_b:
            b = b.unsqueeze(-1)
        if b.dim() == 2 and a.dim() > 2:  # one GEMM over all rows, as torch folds it
            lead = a.shape[:-1]
            out = self._gemm("matmul", a.reshape(-1, a.shape[-1]), b).reshape(*lead, b.shape[-1])
        else:
            out = self._gemm("matmul", a, b)
        if vec_a:
            out = out.squeeze(-2)
        if vec_b:
            out = out.squeeze(-1)
        return out

    def _rmatmul(self, self_, other):
        return self._matmul(other, self_)

    def _mm(self, *args, **kwargs):
        p = _bind("mm", args, kwargs, ("input", "mat2"), {"out": None, "out_dtype": None})
        a, b = p["input"], p["mat2"]
        for t, w in ((a, "input"), (b, "mat2")):
            check_operand(t, "mm", w)
            if t.dim() != 2:
                raise RuntimeError(f"lowprec.torch: mm: {w} must be a matrix, got shape "
                                   f"{tuple(t.shape)}")
        return self._gemm("mm", a, b)

    def _bmm(self, *args, **kwargs):
        p = _bind("bmm", args, kwargs, ("input", "mat2"), {"out": None, "out_dtype": None})
        a, b = p["input"], p["mat2"]
        for t, w in ((a, "input"), (b, "mat2")):
            check_operand(t, "bmm", w)
            if t.dim() != 3:
                raise RuntimeError(f"lowprec.torch: bmm: {w} must be a 3-D tensor, got shape "
                                   f"{tuple(t.shape)}")
        if a.shape[0] != b.shape[0]:
            raise RuntimeError(f"lowprec.torch: bmm: batch sizes differ: {tuple(a.shape)} and "
                               f"{tuple(b.shape)}")
        return self._gemm("bmm", a, b)

    def _add_gemm(self, op: str, ndim: int, args, kwargs):
        names = ("input", "mat1", "mat2") if ndim == 2 else ("input", "batch1", "batch2")
        p = _bind(op, args, kwargs, names, {"beta": 1, "alpha": 1, "out": None,
                                            "out_dtype": None})
        c, a, b = (p[n] for n in names)
        for t, w in ((a, "first factor"), (b, "second factor")):
            check_operand(t, op, w)
            if t.dim() != ndim:
                raise RuntimeError(f"lowprec.torch: {op}: the {w} must have {ndim} dimensions, "
                                   f"got shape {tuple(t.shape)}")
        beta, alpha = p["beta"], p["alpha"]
        if beta == 1 and alpha == 1:
            return self._gemm(op, a, b, c)
        r = self._gemm(op, a, b)
        if alpha != 1:
            r = r * alpha
        return r if beta == 0 else r + beta * c

    def _addmm(self, *args, **kwargs):
        return self._add_gemm("addmm", 2, args, kwargs)

    def _baddbmm(self, *args, **kwargs):
        return self._add_gemm("baddbmm", 3, args, kwargs)

    def _linear(self, *args, **kwargs):
        p = _bind("linear", args, kwargs, ("input", "weight"), {"bias": None})
        x, w, bias = p["input"], p["weight"], p["bias"]
        check_operand(x, "linear", "input")
        check_operand(w, "linear", "weight")
        if w.dim() != 2:
            raise RuntimeError(f"lowprec.torch: linear: weight must be 2-D, got shape "
                               f"{tuple(w.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
        y = self._gemm("linear", x2, w.t(), bias)
        return y.reshape(*lead, w.shape[0]) if x.dim() != 2 else y

    def _sdpa(self, *args, **kwargs):
        p = _bind("scaled_dot_product_attention", args, kwargs, ("query", "key", "value"),
                  {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None,
                   "enable_gqa": False})
        q, k, v = p["query"], p["key"], p["value"]
        for t, w in ((q, "query"), (k, "key"), (v, "value")):
            check_operand(t, "scaled_dot_product_attention", w)
        mask, dropout_p = p["attn_mask"], float(p["dropout_p"])
        dtype = q.dtype
        if dtype in (torch.bfloat16, torch.float16):  # the math backend's CPU upcast
            q, k, v = q.float(), k.float(), v.float()
            if mask is not None and mask.dtype != torch.bool:
                mask = mask.float()
        L, S = q.shape[-2], k.shape[-2]
        scale = p["scale"]
        neg = scale is not None and scale < 0
        sc = 1.0 / math.sqrt(q.shape[-1]) if scale is None else abs(float(scale))
        sf = math.sqrt(sc)  # q and k are each scaled by sqrt(scale), as the math backend
        if p["is_causal"]:
            if mask is not None:
                raise RuntimeError("lowprec.torch: scaled_dot_product_attention: an explicit "
                                   "attn_mask must not be set when is_causal=True")
            mask = torch.ones(L, S, dtype=torch.bool).tril()
        if mask is not None and mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=q.dtype).masked_fill(~mask, float("-inf"))
        if p["enable_gqa"] and k.shape[-3] != q.shape[-3]:
            rep = q.shape[-3] // k.shape[-3]
            k = k.repeat_interleave(rep, dim=-3)
            v = v.repeat_interleave(rep, dim=-3)
        qs = q * (-sf if neg else sf)
        attn = self._gemm("sdpa.scores", qs, k.transpose(-2, -1) * sf)
        if mask is not None:
            attn = attn + mask
        attn = torch.ops.aten._safe_softmax(attn, -1)
        if dropout_p > 0.0:
            attn = F.dropout(attn, dropout_p, training=True)
        out = self._gemm("sdpa.context", attn, v)
        return out.to(dtype)

    def _mha(self, *args, **kwargs):
        with self:  # the body's linear / SDPA / bmm calls come back to this mode
            return _MHA_BODY(*args, **kwargs)


class Emulator:
    """Emulated GEMMs for torch: a policy, its Autocast, statistics and the mode.

    Made by :func:`emulate`; use it as a context manager (again and again: statistics,
    delayed-scaling histories and records carry over from one ``with`` block to the
    next). The backward pass of an emulated GEMM uses the emulator that ran its forward,
    inside or outside the ``with`` block.

    Attributes:
        policy: the :class:`lowprec.autograd.Policy` every GEMM follows.
        autocast: the :class:`TorchAutocast` that runs them.
        tracker: the :class:`~lowprec.torch.stats.GemmTracker` receiving every operand
            cast (None with ``stats=False``).
        history: a :class:`lowprec.autograd.History` that :meth:`log_step` appends to.
        records: the :class:`GemmRecord` list (None unless ``record=True``).
    """

    def __init__(self, policy: Policy, *, accumulate=None, seed: int = 0,
                 module: Optional[torch.nn.Module] = None, stats: bool = True,
                 record: bool = False, other_gemms: str = "raise"):
        if accumulate is not None:
            ok = accumulate == "torch-cpu" or (
                not isinstance(accumulate, (bool, str)) and isinstance(accumulate, (int, np.integer))
                and accumulate >= 1)
            if not ok:
                raise ValueError(f"emulate: accumulate must be None, 'torch-cpu' or a number of "
                                 f"lanes, got {accumulate!r}")
            bad = [f"{k}={v!r}" for k, v in (("model", policy.gemm_model),
                                             ("promote_every", policy.promote_every),
                                             ("acc_rounding", policy.acc_rounding))
                   if v is not None and v != "rne"]
            if policy.acc is None or get_format(policy.acc) != float32:
                bad.append(f"acc={policy.acc!r}")
            if isinstance(policy.scaling, FineGrainedScaling):
                bad.append("recipe=FineGrainedScaling")
            if bad:
                raise ValueError(f"emulate: accumulate={accumulate!r} (a float32 order of "
                                 f"torch's CPU kernels) cannot go with {', '.join(bad)}")
        if other_gemms not in ("raise", "torch"):
            raise ValueError(f"emulate: other_gemms must be 'raise' or 'torch', got "
                             f"{other_gemms!r}")
        self.policy = policy
        self.accumulate = accumulate if accumulate in (None, "torch-cpu") else int(accumulate)
        self.other_gemms = other_gemms
        self.tracker = GemmTracker() if stats else None
        self.records: Optional[List[GemmRecord]] = [] if record else None
        self.autocast = TorchAutocast(policy, seed=seed, tracker=self.tracker,
                                      accumulate=self.accumulate, records=self.records)
        self.history = History(recipe=policy.name)
        self._names: Dict[int, str] = {}
        if module is not None:
            if not isinstance(module, torch.nn.Module):
                raise TypeError(f"emulate: module must be a torch.nn.Module, got "
                                f"{type(module).__name__}")
            self._names = {id(m): (n or type(m).__name__) for n, m in module.named_modules()}
            self._root = weakref.ref(module)
        self._class_count: Dict[str, int] = {}
        self._stack: List[list] = []  # per active module forward: [name, {op: count}]
        self._site_counts: Dict[str, int] = {}
        self._active: List[tuple] = []

    def __repr__(self) -> str:
        return f"Emulator({self.policy.name!r})"

    # -- naming -----------------------------------------------------------------------------
    def _module_name(self, m: torch.nn.Module) -> str:
        n = self._names.get(id(m))
        if n is None:
            cls = type(m).__name__
            i = self._class_count.get(cls, 0)
            self._class_count[cls] = i + 1
            n = self._names[id(m)] = f"{cls}{i}"
        return n

    def _pre_hook(self, module, args):
        self._stack.append([self._module_name(module), {}])

    def _post_hook(self, module, args, output):
        if self._stack:
            self._stack.pop()

    def _name(self, op: str) -> str:
        if self._stack:
            mod, counts = self._stack[-1]
            i = counts.get(op, 0)
            counts[op] = i + 1
            return f"{mod}:{op}" + (f"#{i}" if i else "")
        return f"{op}@{_call_site()}"

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> "Emulator":
        mode = _Mode(self)
        mods = torch.nn.modules.module
        pre = mods.register_module_forward_pre_hook(self._pre_hook)
        post = mods.register_module_forward_hook(self._post_hook, always_call=True)
        mode.__enter__()
        self._active.append((mode, pre, post))
        return self

    def __exit__(self, *exc) -> None:
        mode, pre, post = self._active.pop()
        mode.__exit__(*exc)
        pre.remove()
        post.remove()
        self._stack.clear()

    # -- statistics --------------------------------------------------------------------------
    def stats(self) -> Dict[str, Dict[str, dict]]:
        """Per GEMM and operand role, the cast statistics since the emulator was made (or
        :meth:`reset_stats`): see :func:`lowprec.torch.stats.gemm_stats`.

        Raises:
            RuntimeError: when made with ``stats=False``.
        """
        if self.tracker is None:
            raise RuntimeError("emulate(..., stats=False) keeps no statistics")
        return gemm_stats(self.tracker)

    def report(self) -> str:
        """:meth:`stats` as a text table (amax, % flushed to zero, % saturated)."""
        if self.tracker is None:
            raise RuntimeError("emulate(..., stats=False) keeps no statistics")
        return report(self.tracker)

    def reset_stats(self) -> None:
        """Forget the statistics gathered so far (and the records)."""
        if self.tracker is not None:
            self.tracker.reset()
        if self.records is not None:
            self.records.clear()

    def log_step(self, loss: float, **kw) -> None:
        """Append one training step to :attr:`history` with this step's per-GEMM records
        (the tracker's per-step part; totals of :meth:`stats` are kept). Keyword arguments
        as :meth:`lowprec.autograd.History.log_step`."""
        self.history.log_step(float(loss), tracker=self.tracker, **kw)


def emulate(model=None, inputs=None, recipe=None, *, promote_every: Optional[int] = None,
            policy: Union[None, str, Policy] = None, acc: Optional[str] = "fp32",
            acc_rounding: str = "rne", accumulate: Union[None, str, int] = None,
            seed: int = 0,
            module: Optional[torch.nn.Module] = None, stats: bool = True,
            record: bool = False, other_gemms: str = "raise") -> Emulator:
    """Emulate the GEMMs of torch code in low precision on the CPU.

    ``with emulate(model="h100", inputs="hybrid", recipe="current", promote_every=128):``
    runs every GEMM of the forward pass (and, later, of its backward pass) as an H100
    would with fp8 E4M3 activations and weights, E5M2 gradients, per-tensor current
    scaling and fp32 promotion every 128 products; ``emulate(policy="fp8-current-h100")``
    takes a named recipe of :data:`lowprec.autograd.amp.RECIPES` (or any Policy).

    Args:
        model: GPU tensor-core model (see :func:`make_policy`), or None.
        inputs: GEMM operand formats (see :func:`make_policy`), or None for float32.
        recipe: scaling recipe (see :func:`make_policy`), or None.
        promote_every: fp32 promotion interval in products (see :func:`make_policy`).
        policy: a :class:`lowprec.autograd.Policy` or the name of a named recipe, instead
            of ``model`` / ``inputs`` / ``recipe`` / ``promote_every`` / ``acc``. Its
            ``storage`` rounds every GEMM output; its weight-update and loss-scaling
            fields concern lowprec's optimizers and are not applied to torch's.
        acc, acc_rounding: accumulator without a model (see :func:`make_policy`).
        accumulate: None (the policy's accumulation), or a float32 order of torch's CPU
            kernels for emulating torch itself, the addend added to the sum last as torch's
            addmm does: "torch-cpu" is torch 2.13's CPU bfloat16 / float16 ``mm`` / ``bmm``
            / ``addmm`` (see :func:`torch_cpu_matmul`; ``F.linear``'s (out, in) weight
            layout takes another kernel, which is not modelled); an int N gives N
            interleaved lanes as ``lanes=N`` of :func:`lowprec.matmul`. Not with a model,
            a promotion interval, an accumulator other than fp32 RNE, or tile scaling.
        seed: seed of every stochastic rounding (SR casts or accumulation).
        module: the root torch module, so that GEMMs are named by its modules' qualified
            names (else by class name and index).
        stats: keep per-GEMM statistics (:meth:`Emulator.stats`).
        record: keep every GEMM's operands and result (:attr:`Emulator.records`).
        other_gemms: "raise" (default): ops with GEMMs the mode does not emulate raise
            NotImplementedError; "torch": they run in torch.

    Returns:
        An :class:`Emulator` (a context manager).

    Raises:
        ValueError: bad formats, models, recipes or combinations (see :func:`make_policy`),
            ``policy`` together with the arguments it replaces, a bad ``accumulate``.
        TypeError: a ``module`` that is not an nn.Module, a bad ``inputs``.
    """
    if policy is not None:
        given = [n for n, v in (("model", model), ("inputs", inputs), ("recipe", recipe),
                                ("promote_every", promote_every)) if v is not None]
        if acc != "fp32" or acc_rounding != "rne":
            given.append("acc/acc_rounding")
        if given:
            raise ValueError(f"emulate: policy= replaces {', '.join(given)}; give one or the "
                             f"other (Policy.recipe(name, **changes) changes a recipe)")
        if isinstance(policy, str):
            if policy not in RECIPES:
                raise ValueError(f"emulate: unknown recipe {policy!r}; named recipes: "
                                 f"{', '.join(RECIPES)}")
            policy = Policy(policy)
        elif not isinstance(policy, Policy):
            raise TypeError(f"emulate: policy must be a Policy or a recipe name, got "
                            f"{type(policy).__name__}")
    else:
        policy = make_policy(model, inputs, recipe, promote_every=promote_every, acc=acc,
                             acc_rounding=acc_rounding)
    return Emulator(policy, accumulate=accumulate, seed=seed, module=module, stats=stats,
                    record=record, other_gemms=other_gemms)
