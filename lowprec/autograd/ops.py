"""Losses and normalisation (the ops that autocast keeps in fp32), and functional forms of
the engine's ops.

Each loss is one forward formula and its closed-form gradient (cheaper and more accurate
than composing it from primitives). They compute in the input's dtype (float32 in
training, float64 in gradient checks) and never round to a low format, as torch autocast
forces softmax, log_softmax, layer_norm and losses to fp32: the precision hook sees their
outputs through :meth:`~lowprec.autograd.engine.Precision.fp32`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .engine import Tensor, get_precision

__all__ = ["softmax", "log_softmax", "cross_entropy", "mse", "layer_norm", "relu", "gelu",
           "tanh", "sigmoid", "exp", "log", "matmul", "linear", "embedding", "masked_fill"]

_UNSIGNED = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 4: np.dtype(np.uint32),
             8: np.dtype(np.uint64)}


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax along ``axis`` (max-subtracted, so large logits do not overflow); see
    :meth:`Tensor.softmax`."""
    return x.softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed as z - log(sum(exp(z))) with z = x - max;
    see :meth:`Tensor.log_softmax`."""
    return x.log_softmax(axis)


def cross_entropy(logits: Tensor, target, reduction: str = "mean") -> Tensor:
    """Cross-entropy of integer class targets given unnormalised logits (n x c).

    Args:
        logits: (n, c) tensor.
        target: (n,) integer class indices.
        reduction: "mean" (default) or "sum".

    Returns:
        A scalar tensor.

    Raises:
        ValueError: for shapes that do not match, class indices out of range, or an
            unknown reduction.
    """
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.ndim != 2 or t.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy needs (n, c) logits and (n,) targets, got "
                         f"{logits.shape} and {t.shape}")
    # one reduction: viewed as unsigned, a negative index is larger than any class count
    if t.dtype.kind not in "iu" or (t.size and t.view(_UNSIGNED[t.dtype.itemsize]).max()
                                    >= logits.shape[1]):
        raise ValueError(f"targets must be class indices in [0, {logits.shape[1]})")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    x = logits.data
    z = x - x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
    logp = z - lse
    rows = np.arange(len(t))
    n = len(t) if reduction == "mean" else 1
    loss = get_precision().fp32(np.asarray(-logp[rows, t].sum() / x.dtype.type(n), x.dtype),
                                "cross_entropy")
    out = logits._make(loss, (logits,), "cross_entropy")

    def _backward():
        g = np.exp(logp)
        g[rows, t] -= 1
        logits._accumulate(g * (out.grad / x.dtype.type(n)))
    out._backward = _backward
    return out


def mse(pred: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean (or summed) squared error; ``target`` may be a tensor that needs a gradient."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    target = pred._lift(target)
    if np.broadcast_shapes(pred.shape, target.shape) != pred.shape:
        raise ValueError(f"mse target of shape {target.shape} does not broadcast to {pred.shape}")
    d = pred.data - target.data
    n = d.size if reduction == "mean" else 1
    loss = get_precision().fp32(np.asarray((d * d).sum() / d.dtype.type(n), d.dtype), "mse")
    out = pred._make(loss, (pred, target), "mse")

    def _backward():
        g = d * (2 * out.grad / d.dtype.type(n))
        pred._accumulate(g)
        target._accumulate(-g)
    out._backward = _backward
    return out


def layer_norm(x: Tensor, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the last axis: (x - mean) / sqrt(var + eps) * weight + bias,
    with the biased variance, as torch.nn.functional.layer_norm."""
    n = x.shape[-1]
    mu = x.data.mean(axis=-1, keepdims=True)
    xc = x.data - mu
    rstd = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + x.dtype.type(eps))
    xhat = xc * rstd
    y = xhat
    parents = [x]
    if weight is not None:
        y = y * weight.data
        parents.append(weight)
    if bias is not None:
        y = y + bias.data
        parents.append(bias)
    out = x._make(get_precision().fp32(y, "layer_norm"), parents, "layer_norm")

    def _backward():
        g = out.grad
        lead = tuple(range(g.ndim - 1))
        if weight is not None:
            weight._accumulate((g * xhat).sum(axis=lead))
        if bias is not None:
            bias._accumulate(g.sum(axis=lead))
        dxhat = g * weight.data if weight is not None else g
        x._accumulate(rstd / n * (n * dxhat - dxhat.sum(axis=-1, keepdims=True)
                                  - xhat * (dxhat * xhat).sum(axis=-1, keepdims=True)))
    out._backward = _backward
    return out


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, key: str = "",
           fuse_bias: bool = False) -> Tensor:
    """``x @ weight + bias`` with ``weight`` of shape (in, out).

    Args:
        x: (m, in) input, or (..., in): the leading axes are flattened into one GEMM of
            m = their product rows and restored in the output.
        weight: (in, out) weight.
        bias: optional (out,) bias.
        key: names the product in per-tensor state (see :meth:`Tensor.matmul`).
        fuse_bias: add the bias inside the GEMM's accumulation (torch's addmm, cuBLASLt's
            bias epilogue: under a bf16 policy the output is rounded once, after the bias)
            instead of adding it to the rounded product in the input's dtype.

    Returns:
        The (m, out) (or (..., out)) output.
    """
    lead = x.shape[:-1]
    if x.ndim > 2:  # one GEMM over all positions (as torch's linear), so K = batch * time
        x = x.reshape(-1, x.shape[-1])
    if fuse_bias and bias is not None:
        y = x.matmul(weight, key=key, c=bias)
    else:
        y = x.matmul(weight, key=key, bias=bias)  # = (x @ weight) + bias, one graph node
    return y.reshape(*lead, y.shape[-1]) if len(lead) > 1 else y


def embedding(weight: Tensor, idx) -> Tensor:
    """Rows of ``weight`` picked by integer indices (a gather), as
    torch.nn.functional.embedding. The gradient scatter-adds the output gradient into
    the rows (a row picked twice gets both contributions). The rows are copied exactly,
    so the precision hook is not called (torch autocast runs embedding in the weight's
    dtype).

    Args:
        weight: (num, dim) table.
        idx: integer array of any shape.

    Returns:
        A tensor of shape ``idx.shape + (dim,)``.

    Raises:
        ValueError: for a table that is not 2-D, or indices that are not integers in
            [0, num).
    """
    i = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if weight.ndim != 2:
        raise ValueError(f"embedding needs a 2-D weight (num, dim), got shape {weight.shape}")
    if i.dtype.kind not in "iu" or (i.size and (i.min() < 0 or i.max() >= weight.shape[0])):
        raise ValueError(f"embedding indices must be integers in [0, {weight.shape[0]})")
    out = weight._make(weight.data[i], (weight,), "embedding")

    def _backward():
        g = np.zeros_like(weight.data)
        np.add.at(g, i.reshape(-1), out.grad.reshape(-1, weight.shape[1]))
        weight._accumulate(g)
    out._backward = _backward
    return out


def masked_fill(x: Tensor, mask, value: float) -> Tensor:
    """``x`` with the entries where ``mask`` is true replaced by ``value`` (as
    torch.Tensor.masked_fill; the causal mask of attention fills with -inf). Those
    entries get no gradient. An exact select: the precision hook is not called.

    Args:
        x: input.
        mask: boolean array broadcastable to ``x``'s shape.
        value: the fill value.

    Raises:
        ValueError: for a mask that is not boolean or does not broadcast to ``x``.
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"masked_fill needs a boolean mask, got dtype {m.dtype}")
    try:
        fits = np.broadcast_shapes(m.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill mask of shape {m.shape} does not broadcast to {x.shape}")
    out = x._make(np.where(m, x.dtype.type(value), x.data), (x,), "masked_fill")

    def _backward():
        x._accumulate(np.where(m, x.dtype.type(0), out.grad))
    out._backward = _backward
    return out


def matmul(a: Tensor, b: Tensor, key: str = "") -> Tensor:
    """``a @ b`` (2-D or batched) under the active precision hook (see
    :meth:`Tensor.matmul`)."""
    return a.matmul(b, key=key)


def relu(x: Tensor) -> Tensor:
    return x.relu()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return x.gelu(approximate)


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()
