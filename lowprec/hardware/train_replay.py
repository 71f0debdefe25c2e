"""Replay of the captured training step (the "train" op of :mod:`lowprec.hardware.capture`).

The capture holds one SGD step of a two-layer MLP under ``torch.autocast`` (format in the
op's ``autocast``, bf16): inputs, weights, activations, the gradients of every GEMM's
output, the parameter gradients and the updated weights. :func:`compare_train_step`
replays each part from the captured inputs of that part and scores it:

- the five GEMMs (two linear layers, the activation gradient and two weight gradients)
  and the two bias gradients (as ``ones @ g``) under every GEMM candidate of
  :mod:`lowprec.hardware.candidates`. A linear layer's bias can enter in three ways, so
  each candidate comes in three variants: "+bias-in" (bias starts the accumulator),
  "+bias-after" (added to the fp32 result, one RNE rounding into fp32, then to the
  output) and "+bias-out" (added after rounding to the output format, with one more
  rounding there);
- relu and its gradient ("exact");
- the SGD update as one fused multiply-add ("fma") or a multiply then a subtract
  ("mul-add"), in the weights' format;
- the loss and the logits gradient ("lowprec-autograd"): replayed with numpy float32
  arithmetic in the order of :func:`lowprec.autograd.ops.cross_entropy`; not expected to
  be bit-exact, its ULP distances are reported.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..arith import add, fma, mul, sub
from ..quantize import quantize
from .candidates import TRAIN_STEP_CANDIDATES, format_of, gemm_candidates, run_candidate
from .capture_format import Capture, typed_values
from .scoring import op_record, score

__all__ = ["compare_train_step"]

EXACT, FMA_UPDATE, MUL_ADD_UPDATE, NUMPY_REPLAY = TRAIN_STEP_CANDIDATES
_PARAMS = ("w1", "b1", "w2", "b2")


def _bias_variants(base_kw: dict, a, b, bias, out: str, cache: dict) -> dict:
    """The three ways a bias can enter a GEMM (see the module docstring)."""
    res = {}
    b32 = np.broadcast_to(bias.astype(np.float32), (a.shape[0], b.shape[1]))
    res["+bias-in"] = run_candidate(a, b, base_kw, out, c=b32)
    raw = run_candidate(a, b, base_kw, "float32", cache=cache)
    res["+bias-after"] = quantize(np.asarray(add(raw.astype(np.float32), b32, "fp32"),
                                             np.float64), out)
    r_out = quantize(raw, out)
    res["+bias-out"] = np.asarray(add(r_out.astype(np.float32), b32, out), np.float64)
    return res


def _train_gemm(op_id, a, b, want, out, wanted, bias=None, extra=None) -> dict:
    fa = format_of(a)
    scored, cache = {}, {}
    for name, kw in gemm_candidates(fa, fa, out, a.shape[1], wanted):
        if kw.get("out"):
            # a tensor-core path into the output format rounds inside the instruction:
            # the bias variants need the fp32 result
            continue
        if bias is None:
            scored[name] = score(run_candidate(a, b, kw, out, cache=cache), want, out)
        else:
            for suffix, got in _bias_variants(kw, a, b, bias, out, cache).items():
                scored[name + suffix] = score(got, want, out)
    return op_record(op_id, "train-gemm", out, want, scored,
                     shape=[a.shape[0], a.shape[1], b.shape[1]], **(extra or {}))


def compare_train_step(cap: Capture, op: dict, wanted: Optional[list]) -> list:
    """Replay a captured training step part by part.

    Args:
        cap: the capture.
        op: its "train" op (status "ok").
        wanted: candidate names to keep (None: every applicable one), as returned by
            :func:`lowprec.hardware.candidates.parse_candidates`.

    Returns:
        One record per part (see :func:`lowprec.hardware.scoring.op_record`), ids
        "<op id>/linear1", ".../grad_w1", ".../relu", ".../loss", ".../sgd" and so on.
    """
    v = lambda r: cap.values(op, r)  # noqa: E731
    low = op["autocast"]  # the autocast format of the GEMMs and activations
    master = cap.format(op, "w1")  # the weights' (and the update's) format
    to_low = lambda x: typed_values(quantize(np.asarray(x, np.float32), low), low)  # noqa: E731
    x, w1, b1, w2, b2 = v("x"), v("w1"), v("b1"), v("w2"), v("b2")
    h, a, z, gh, ga, gz = v("h"), v("a"), v("z"), v("gh"), v("ga"), v("gz")
    recs = []
    xb, w1b, w2b = to_low(x), to_low(w1), to_low(w2)
    b1b, b2b = quantize(b1.astype(np.float32), low), quantize(b2.astype(np.float32), low)
    ab, gzb, ghb = typed_values(a, low), typed_values(gz, low), typed_values(gh, low)
    pre = op["id"]
    recs.append(_train_gemm(f"{pre}/linear1", xb, np.ascontiguousarray(w1b.T), h, low,
                            wanted, bias=b1b,
                            extra={"what": "h = bf16(x) @ bf16(W1)^T + bf16(b1)"}))
    recs.append(_train_gemm(f"{pre}/linear2", ab, np.ascontiguousarray(w2b.T), z, low,
                            wanted, bias=b2b, extra={"what": "z = a @ bf16(W2)^T + bf16(b2)"}))
    recs.append(_train_gemm(f"{pre}/grad_a", gzb, w2b, ga, low, wanted,
                            extra={"what": "dL/da = dL/dz @ bf16(W2)"}))
    for name, g, inp, what in (("grad_w2", gzb, ab, "dW2 = (dL/dz)^T @ a"),
                               ("grad_w1", ghb, xb, "dW1 = (dL/dh)^T @ bf16(x)")):
        rec = _train_gemm(f"{pre}/{name}", np.ascontiguousarray(g.T), inp,
                          v("g" + name[-2:]), low, wanted,
                          extra={"what": what + " (bf16, widened to fp32)"})
        recs.append(rec)
    for name, g, what in (("grad_b2", gzb, "db2 = sum over batch of dL/dz"),
                          ("grad_b1", ghb, "db1 = sum over batch of dL/dh")):
        ones = typed_values(np.ones((1, g.shape[0])), low)
        recs.append(_train_gemm(f"{pre}/{name}", ones, g, v("g" + name[-2:]).reshape(1, -1),
                                low, wanted, extra={"what": what + " (as ones @ g)"}))
    if wanted is None or EXACT in wanted:
        recs.append(op_record(f"{pre}/relu", "train-elementwise", low, a,
                              {EXACT: score(np.maximum(h, 0.0) + 0.0, a, low)},
                              what="a = relu(h)"))
        recs.append(op_record(f"{pre}/grad_relu", "train-elementwise", low, gh,
                              {EXACT: score(np.where(h > 0, ga, 0.0), gh, low)},
                              what="dL/dh = dL/da * (h > 0)"))
    if wanted is None or NUMPY_REPLAY in wanted:
        recs += _loss_records(pre, z, v("y"), v("loss"), gz, cap.format(op, "loss"),
                              cap.format(op, "gz"))
    lr = np.float32(op["lr"])
    upd = {}
    for p in _PARAMS:
        w, g = v(p).astype(np.float32), v("g" + p).astype(np.float32)
        upd.setdefault(FMA_UPDATE, []).append(np.asarray(fma(np.full_like(g, -lr), g, w,
                                                             master)))
        step = np.asarray(mul(np.full_like(g, lr), g, master), np.float32)
        upd.setdefault(MUL_ADD_UPDATE, []).append(np.asarray(sub(w, step, master)))
    want = np.concatenate([v(p + "_new").reshape(-1) for p in _PARAMS])
    scored = {k: score(np.concatenate([u.reshape(-1) for u in us]), want, master)
              for k, us in upd.items() if wanted is None or k in wanted}
    recs.append(op_record(f"{pre}/sgd", "train-elementwise", master, want, scored,
                          what=f"w - lr * grad, lr = {op['lr']} (fp32)"))
    return recs


def _loss_records(pre: str, z, y, loss, gz, loss_fmt: str, grad_fmt: str) -> list:
    """Loss and logits gradient replayed in numpy float32 (log-sum-exp, mean)."""
    z32 = z.astype(np.float32)
    m = z32.max(axis=1, keepdims=True)
    e = np.exp(z32 - m)
    s = e.sum(axis=1, keepdims=True, dtype=np.float32)
    lse = np.log(s) + m
    n = z32.shape[0]
    nll = (lse[:, 0] - z32[np.arange(n), y.astype(np.int64)]).astype(np.float32)
    got_loss = np.float32(nll.sum(dtype=np.float32) / np.float32(n))
    p = (e / s).astype(np.float32)
    p[np.arange(n), y.astype(np.int64)] -= np.float32(1)
    got_g = quantize((p / np.float32(n)).astype(np.float32), grad_fmt)
    return [op_record(f"{pre}/loss", "train-elementwise", loss_fmt, loss,
                      {NUMPY_REPLAY: score(np.array([got_loss]), loss, loss_fmt)},
                      what="cross-entropy of fp32 logits (numpy float32 replay)"),
            op_record(f"{pre}/grad_z", "train-elementwise", grad_fmt, gz,
                      {NUMPY_REPLAY: score(got_g, gz, grad_fmt)},
                      what="dL/dz = (softmax(z) - onehot) / B, bf16 (numpy float32 replay)")]
