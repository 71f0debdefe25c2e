"""One SGD step of a torch MLP trained under ``torch.autocast``, replayed on the engine.

A device's training step (every tensor of it, as ``lowprec capture`` records them) is
rebuilt from :mod:`lowprec.autograd`: :class:`~lowprec.autograd.nn.Linear` layers with relu
between them, :func:`~lowprec.autograd.ops.cross_entropy` of the logits, the engine's
backward pass and :class:`~lowprec.autograd.optim.SGD` on the fp32 master weights. How
each GEMM accumulates and where a bias enters it is a :class:`~lowprec.autograd.policy.Policy`
(:func:`autocast_policy` makes torch autocast's, with the accumulation as a parameter), so
every candidate explanation of a device is a policy the engine runs.

torch's autocast in the engine's terms:

- the input, each weight and each bias are cast into the autocast format on entry to their
  GEMM (torch's autocast casts; the layers hold those copies), and the gradient of a copy
  reaches its fp32 master exactly;
- a tensor held in a low dtype has its gradient in that dtype (torch rounds every gradient
  to its tensor's dtype): the GEMM outputs, relu's output and the logits, and the weight
  copies. :func:`held` is that op: it rounds the values into the format (a no-op for values
  already in it) and the gradient on its way back;
- the loss is computed from the logits widened to fp32 (``cross_entropy(z.float(), y)``).

**Per-part replay.** Every tensor the step holds can be *forced*: the given value replaces
the engine's own for everything after it (forward values; gradients on the way back), so
each part of the step is computed from the device's own inputs of that part and a mismatch
is attributed to the part that made it. The engine's own value of every part is returned
either way.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import re

import numpy as np

from ..formats import Format
from ..quantize import quantize
from . import nn, ops
from .autocast import Autocast
from .engine import Tensor
from .optim import SGD
from .policy import Policy, rounded_format

__all__ = ["BIAS_MODES", "autocast_policy", "held", "replay_mlp_step"]

#: How a linear layer's bias can enter: "in" (the GEMM's addend c, inside the
#: accumulation: torch's addmm on the CPU), "after" (added to the fp32 GEMM result, then one
#: rounding into the autocast format: a cuBLASLt bias epilogue), "out" (added to the GEMM
#: result already rounded into the autocast format, then rounded again).
BIAS_MODES = ("in", "after", "out")

_WEIGHT = re.compile(r"g?w[0-9]+")  # a weight copy or its gradient (transposed in the engine)
_COPY = re.compile(r"[wb][0-9]+")  # the autocast copies of the weights and biases


def autocast_policy(fmt, bias: str = "in", *, name: str = "",
                    **gemm) -> Tuple[Policy, bool]:
    """The policy of ``torch.autocast(dtype=fmt)`` with a bias entering as ``bias``.

    Args:
        fmt: the autocast format ("bfloat16", "float16").
        bias: one of :data:`BIAS_MODES`. "in" fuses the bias into the GEMM
            (``fuse_bias=True``); "after" keeps the GEMM result in fp32 (no storage format)
            until the bias is added; "out" rounds it into ``fmt`` first (storage ``fmt``).
        name: the policy's label (default "autocast-<bias>").
        gemm: the accumulation, as :class:`~lowprec.autograd.policy.Policy` fields: ``acc``,
            ``acc_rounding``, ``fma``, ``gemm_model``, ``promote_every``.

    Returns:
        ``(policy, fuse_bias)``: the policy (GEMM operands and gradients in ``fmt``) and the
        ``fuse_bias`` of the layers.

    Raises:
        ValueError: for an unknown bias mode, format or Policy field.
    """
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {BIAS_MODES}, got {bias!r}")
    extra = set(gemm) - {"acc", "acc_rounding", "fma", "gemm_model", "promote_every"}
    if extra:
        raise ValueError(f"autocast_policy takes the accumulation fields of Policy only, got "
                         f"{sorted(extra)}")
    policy = Policy(name or f"autocast-{bias}", activations=fmt, weights=fmt, gradients=fmt,
                    storage=None if bias == "after" else fmt, **gemm)
    return policy, bias == "in"


def _round(x: np.ndarray, fmt: Optional[Format]) -> np.ndarray:
    if fmt is None:
        return x
    return np.asarray(quantize(x, fmt), np.float32)


def held(t: Tensor, fmt: Optional[Format], name: str, seen: Dict[str, np.ndarray],
         forced: Optional[Mapping[str, np.ndarray]] = None) -> Tensor:
    """``t`` held in ``fmt``, as a torch tensor of that dtype: values rounded into ``fmt``
    and the gradient rounded into it on the way back (None: float32, nothing rounded).

    Args:
        t: the tensor.
        fmt: the format it is held in.
        name: its name: ``seen[name]`` receives the (rounded) value and, in the backward
            pass, ``seen["g" + name]`` the (rounded) gradient.
        seen: where the values are recorded.
        forced: name -> array: a value given for ``name`` (or ``"g" + name``) replaces the
            engine's own for what follows.

    Returns:
        The held tensor.
    """
    forced = forced or {}
    v = _round(t.data, fmt)
    seen[name] = v
    data = np.asarray(forced[name], np.float32).reshape(v.shape) if name in forced else v
    out = t._make(data, (t,), f"held:{name}")

    def _backward():
        g = _round(out.grad, fmt)
        seen["g" + name] = g
        gname = "g" + name
        t._accumulate(np.asarray(forced[gname], np.float32).reshape(g.shape)
                      if gname in forced else g)
    out._backward = _backward
    return out


def replay_mlp_step(x, y, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                    lr: float, policy: Policy, *, fuse_bias: bool = True,
                    forced: Optional[Mapping[str, np.ndarray]] = None
                    ) -> Dict[str, np.ndarray]:
    """One SGD step of an MLP (linear layers, relu between them, cross-entropy) on the
    engine, as torch computes it under autocast.

    Layer i (from 1) computes ``h_i = a_{i-1} W_i^T + b_i`` (``a_0 = x``), ``a_i =
    relu(h_i)``; the last layer's output is the logits ``z``. The autocast format is the
    policy's activations format (None: nothing is held in a low format).

    Args:
        x: (B, n_0) float32 inputs.
        y: (B,) integer class labels.
        weights: per layer, the (n_i, n_{i-1}) fp32 master weight (torch's layout).
        biases: per layer, the (n_i,) fp32 master bias.
        lr: the SGD learning rate (``w - lr * grad``; optim.SGD computes ``-lr * g`` then
            adds it, two roundings).
        policy: the precision policy (see :func:`autocast_policy`).
        fuse_bias: the layers' ``fuse_bias``.
        forced: name -> value, to replace the engine's own (see the module docstring);
            names as in the result, weights and their gradients in torch's layout.

    Returns:
        name -> float32 array, the engine's own values: "x" (the cast input), "h1", "a1",
        ..., "z", "loss" (shape ()), the gradients "gz", "ga1", "gh1", ..., the masters'
        gradients "gw1", "gb1", ... and the updated masters "w1_new", "b1_new", ... The
        activations and their gradients are in the autocast format, as torch holds them.

    Raises:
        ValueError: for weights and biases whose shapes do not chain.
    """
    if len(weights) != len(biases) or not weights:
        raise ValueError(f"replay_mlp_step needs one bias per weight, got {len(weights)} "
                         f"weights and {len(biases)} biases")
    fmt = rounded_format(policy.activations)
    x = np.asarray(x, np.float32)
    n_in = x.shape[1]
    for i, (w, b) in enumerate(zip(weights, biases), 1):
        if np.shape(w)[1:] != (n_in,) or np.shape(b) != np.shape(w)[:1]:
            raise ValueError(f"layer {i}: weight {np.shape(w)} and bias {np.shape(b)} do not "
                             f"follow an input of {n_in} features")
        n_in = np.shape(w)[0]
    # the engine's layers hold (in, out) weights: torch's are transposed
    forced = {k: np.asarray(v).T if _WEIGHT.fullmatch(k) else v
              for k, v in (forced or {}).items()}
    seen: Dict[str, np.ndarray] = {}
    masters = []
    layers = []
    for i, (w, b) in enumerate(zip(weights, biases), 1):
        wm = Tensor(np.ascontiguousarray(np.asarray(w, np.float32).T), requires_grad=True,
                    name=f"{i}.weight")
        bm = Tensor(np.array(b, np.float32), requires_grad=True, name=f"{i}.bias")
        masters += [wm, bm]
        lin = nn.Linear(wm.shape[0], wm.shape[1], fuse_bias=fuse_bias)
        # the autocast copies of the masters are what the layer computes with
        lin.weight = held(wm, fmt, f"w{i}", seen, forced)
        lin.bias = held(bm, fmt, f"b{i}", seen, forced)
        lin.weight.name, lin.bias.name = wm.name, bm.name
        layers.append(lin)
    with Autocast(policy):
        t = held(Tensor(x), fmt, "x", seen, forced)
        for i, lin in enumerate(layers, 1):
            last = i == len(layers)
            t = held(lin(t), fmt, "z" if last else f"h{i}", seen, forced)
            if not last:
                t = held(t.relu(), fmt, f"a{i}", seen, forced)
        loss = ops.cross_entropy(t, np.asarray(y).astype(np.int64))
    seen["loss"] = np.asarray(loss.data, np.float32)
    loss.backward()
    opt = SGD(masters, lr=lr)
    opt.step()
    # the weight and bias copies are the layers' business; their gradients are returned
    out = {k: v for k, v in seen.items() if not _COPY.fullmatch(k)}
    for i in range(1, len(layers) + 1):
        wm, bm = masters[2 * i - 2], masters[2 * i - 1]
        out[f"gw{i}"] = np.ascontiguousarray(seen[f"gw{i}"].T)
        out[f"w{i}_new"] = np.ascontiguousarray(wm.data.T)
        out[f"b{i}_new"] = bm.data.copy()
    return out
