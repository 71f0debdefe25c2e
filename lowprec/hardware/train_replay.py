"""Scoring of captured training steps (the "train" ops of the capture) against the engine.

Each captured step holds one SGD step of a two-layer MLP under ``torch.autocast`` (format
in the op's ``autocast``, bf16): inputs, weights, activations, the gradients of every GEMM's
output, the parameter gradients and the updated weights. :func:`compare_train_step` runs
the step on lowprec's autograd engine (:func:`lowprec.autograd.replay.replay_mlp_step`)
once per candidate, each part computed from the device's own inputs of that part (the
replay's forced values), and scores every captured tensor against the engine's:

- the five GEMMs (two linear layers, the activation gradient and two weight gradients),
  under every GEMM candidate of :mod:`lowprec.hardware.candidates` that a
  :class:`~lowprec.autograd.policy.Policy` expresses: "fp32" (``acc``), "fp32-chunkN"
  (``promote_every``), "<fmt>-acc" (``acc``), "<gpu>" (``gemm_model``). A linear layer's
  bias enters in one of three ways (:data:`lowprec.autograd.replay.BIAS_MODES`), so each
  candidate comes in three variants there: "+bias-in" (the GEMM's c: ``fuse_bias``),
  "+bias-after" (added to the fp32 result, one rounding to the output: no storage format)
  and "+bias-out" (added after rounding to the output format, with one more rounding
  there: storage in the autocast format);
- the bias gradients: "fp32" is the engine's (the sum over the batch of the output's
  gradient, in fp32 in batch order, rounded to the autocast format);
- relu and its gradient ("exact"), the loss and the logits' gradient
  ("lowprec-autograd": :func:`lowprec.autograd.ops.cross_entropy` and its backward);
- the SGD update: "mul-add" is :class:`lowprec.autograd.optim.SGD` (``-lr * g`` rounded,
  then added).

What the engine cannot express today is scored with the candidate machinery of
:mod:`lowprec.hardware.candidates`, as before: "fp32-lanesN" (N interleaved fp32
accumulators; a Policy has no such field), the bias gradients under any order but the
engine's ("ones @ g" under each GEMM candidate), and the SGD update as one fused
multiply-add ("fma": :func:`lowprec.fma`; optim.SGD has no fused update). A tensor core's
path into the output format ("<gpu>-<fmt>out") rounds inside the instruction, where no bias
can follow, and is not tried.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from ..arith import add, fma
from ..autograd.replay import BIAS_MODES, autocast_policy, replay_mlp_step
from ..quantize import quantize
from .candidates import TRAIN_STEP_CANDIDATES, gemm_candidates, run_candidate
from .capture_format import Capture, typed_values
from .models import select_block
from .scoring import op_record, score

__all__ = ["compare_train_step", "policy_fields"]

EXACT, FMA_UPDATE, MUL_ADD_UPDATE, AUTOGRAD = TRAIN_STEP_CANDIDATES
_PARAMS = ("w1", "b1", "w2", "b2")
# the replay's names of the captured tensors (a two-layer MLP: h, a are layer 1's)
_NAMES = {"h1": "h", "a1": "a", "z": "z", "gh1": "gh", "ga1": "ga", "gz": "gz", "loss": "loss",
          "gw1": "gw1", "gb1": "gb1", "gw2": "gw2", "gb2": "gb2"}
_F32 = "float32"


def policy_fields(kw: dict) -> Optional[dict]:
    """The :class:`~lowprec.autograd.policy.Policy` accumulation fields of a GEMM candidate
    (keyword arguments of :func:`lowprec.hardware.candidates.run_candidate`), or None when
    a policy cannot express it (N interleaved accumulators, a path into the output format).
    """
    if "lanes" in kw or kw.get("out"):
        return None
    fields = {}
    if "chunk" in kw:
        fields["promote_every"] = kw["chunk"]
    if "acc" in kw:
        fields["acc"] = kw["acc"]
    if "model" in kw:
        fields["gemm_model"] = kw["model"]
    return fields


class _Runs:
    """The engine's replays of one captured step, one per (policy fields, bias mode), run
    when first asked for; GPU models with equal block models share one run."""

    def __init__(self, args: tuple, low: str, forced: dict):
        self.args, self.low, self.forced = args, low, forced
        self._done: Dict[tuple, dict] = {}

    def get(self, fields: dict, bias: str = "in") -> dict:
        key = tuple(sorted((k, v) for k, v in fields.items() if k != "gemm_model"))
        if "gemm_model" in fields:
            key += (("block", select_block(fields["gemm_model"], self.low, _F32)),)
        key += (bias,)
        if key not in self._done:
            policy, fuse = autocast_policy(self.low, bias, **fields)
            x, y, weights, biases, lr = self.args
            self._done[key] = replay_mlp_step(x, y, weights, biases, lr, policy,
                                              fuse_bias=fuse, forced=self.forced)
        return self._done[key]


def _bias_variants(base_kw: dict, a, b, bias, out: str) -> dict:
    """The three bias modes computed with the candidate machinery (for candidates the
    engine cannot express)."""
    b32 = np.broadcast_to(bias.astype(np.float32), (a.shape[0], b.shape[1]))
    raw = run_candidate(a, b, base_kw, _F32)
    r_out = quantize(raw, out)
    return {"in": run_candidate(a, b, base_kw, out, c=b32),
            "after": quantize(np.asarray(add(raw.astype(np.float32), b32, "fp32"),
                                         np.float64), out),
            "out": np.asarray(add(r_out.astype(np.float32), b32, out), np.float64)}


def _gemm_record(op_id: str, runs: _Runs, name: str, K: int, want, out: str, wanted,
                 shape, what: str, operands: Tuple, bias=None) -> dict:
    """One GEMM part: every candidate (and, with ``bias``, every bias mode)."""
    scored = {}
    for cand, kw in gemm_candidates(out, out, out, K, wanted):
        fields = policy_fields(kw)
        if kw.get("out"):
            continue  # rounds inside the instruction: no bias can follow (module docstring)
        if fields is None:  # the candidate machinery, on the device's operands
            a, b = operands
            if bias is None:
                scored[cand] = score(run_candidate(a, b, kw, out), want, out)
            else:
                for mode, got in _bias_variants(kw, a, b, bias, out).items():
                    scored[f"{cand}+bias-{mode}"] = score(got, want, out)
            continue
        for mode in (BIAS_MODES if bias is not None else ("in",)):
            got = runs.get(fields, mode)[name]
            label = f"{cand}+bias-{mode}" if bias is not None else cand
            scored[label] = score(got, want, out)
    return op_record(op_id, "train-gemm", out, want, scored, shape=list(shape), what=what)


def _bias_grad_record(op_id: str, runs: _Runs, name: str, g, want, out: str, wanted,
                      what: str) -> dict:
    """A bias gradient: the engine's sum ("fp32"), every other order as ``ones @ g``."""
    ones = typed_values(np.ones((1, g.shape[0])), out)
    scored = {}
    for cand, kw in gemm_candidates(out, out, out, g.shape[0], wanted):
        if kw.get("out"):
            continue
        if cand == "fp32":
            scored[cand] = score(runs.get({})[name], want, out)
        else:
            scored[cand] = score(run_candidate(ones, g, kw, out), want, out)
    return op_record(op_id, "train-gemm", out, want, scored, shape=[1, g.shape[0], g.shape[1]],
                     what=what)


def compare_train_step(cap: Capture, op: dict, wanted: Optional[list]) -> list:
    """Replay a captured training step part by part on the engine and score each part.

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
    captured = {k: v(r).astype(np.float32) for k, r in _NAMES.items()}
    x, y = v("x").astype(np.float32), v("y").astype(np.int64)
    w1, b1, w2, b2 = (v(p).astype(np.float32) for p in _PARAMS)
    runs = _Runs((x, y, [w1, w2], [b1, b2], op["lr"]), low, captured)
    B, nin, nhid, nout = x.shape[0], w1.shape[1], w1.shape[0], w2.shape[0]
    # the device's operands of each GEMM, in the autocast format (for the candidate
    # machinery)
    to_low = lambda t: typed_values(quantize(np.asarray(t, np.float32), low), low)  # noqa: E731
    xb, w1b, w2b = to_low(x), to_low(w1), to_low(w2)
    ab, gzb, ghb = (typed_values(captured[k], low) for k in ("a1", "gz", "gh1"))
    pre = op["id"]
    recs = [
        _gemm_record(f"{pre}/linear1", runs, "h1", nin, captured["h1"], low, wanted,
                     (B, nin, nhid), "h = bf16(x) @ bf16(W1)^T + bf16(b1)",
                     (xb, np.ascontiguousarray(w1b.T)), bias=quantize(b1, low)),
        _gemm_record(f"{pre}/linear2", runs, "z", nhid, captured["z"], low, wanted,
                     (B, nhid, nout), "z = a @ bf16(W2)^T + bf16(b2)",
                     (ab, np.ascontiguousarray(w2b.T)), bias=quantize(b2, low)),
        _gemm_record(f"{pre}/grad_a", runs, "ga1", nout, captured["ga1"], low, wanted,
                     (B, nout, nhid), "dL/da = dL/dz @ bf16(W2)", (gzb, w2b)),
        _gemm_record(f"{pre}/grad_w2", runs, "gw2", B, captured["gw2"], low, wanted,
                     (nout, B, nhid), "dW2 = (dL/dz)^T @ a (bf16, widened to fp32)",
                     (np.ascontiguousarray(gzb.T), ab)),
        _gemm_record(f"{pre}/grad_w1", runs, "gw1", B, captured["gw1"], low, wanted,
                     (nhid, B, nin), "dW1 = (dL/dh)^T @ bf16(x) (bf16, widened to fp32)",
                     (np.ascontiguousarray(ghb.T), xb)),
        _bias_grad_record(f"{pre}/grad_b2", runs, "gb2", gzb, captured["gb2"].reshape(1, -1),
                          low, wanted, "db2 = sum over batch of dL/dz"),
        _bias_grad_record(f"{pre}/grad_b1", runs, "gb1", ghb, captured["gb1"].reshape(1, -1),
                          low, wanted, "db1 = sum over batch of dL/dh"),
    ]
    if wanted is None or EXACT in wanted:
        base = runs.get({})
        recs.append(op_record(f"{pre}/relu", "train-elementwise", low, captured["a1"],
                              {EXACT: score(base["a1"], captured["a1"], low)},
                              what="a = relu(h)"))
        recs.append(op_record(f"{pre}/grad_relu", "train-elementwise", low, captured["gh1"],
                              {EXACT: score(base["gh1"], captured["gh1"], low)},
                              what="dL/dh = dL/da * (h > 0)"))
    if wanted is None or AUTOGRAD in wanted:
        base = runs.get({})
        lf, gf = cap.format(op, "loss"), cap.format(op, "gz")
        recs.append(op_record(f"{pre}/loss", "train-elementwise", lf, captured["loss"],
                              {AUTOGRAD: score(base["loss"].reshape(1), captured["loss"], lf)},
                              what="cross-entropy of fp32 logits (lowprec.autograd)"))
        recs.append(op_record(f"{pre}/grad_z", "train-elementwise", gf, captured["gz"],
                              {AUTOGRAD: score(base["gz"], captured["gz"], gf)},
                              what="dL/dz = (softmax(z) - onehot) / B, bf16 (lowprec.autograd)"))
    want = np.concatenate([v(p + "_new").reshape(-1) for p in _PARAMS])
    scored = {}
    if wanted is None or FMA_UPDATE in wanted:
        lr = np.float32(op["lr"])
        upd = [np.asarray(fma(np.full_like(captured["g" + p], -lr), captured["g" + p],
                              v(p).astype(np.float32), master)).reshape(-1) for p in _PARAMS]
        scored[FMA_UPDATE] = score(np.concatenate(upd), want, master)
    if wanted is None or MUL_ADD_UPDATE in wanted:
        base = runs.get({})  # optim.SGD on the device's gradients (forced)
        scored[MUL_ADD_UPDATE] = score(np.concatenate([base[p + "_new"].reshape(-1)
                                                       for p in _PARAMS]), want, master)
    recs.append(op_record(f"{pre}/sgd", "train-elementwise", master, want, scored,
                          what=f"w - lr * grad, lr = {op['lr']} (fp32)"))
    return recs
