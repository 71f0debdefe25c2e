"""Replay captured or published device results in lowprec: ``lowprec compare``.

:func:`compare_capture` replays every op of a capture file (see
:mod:`lowprec.hardware.capture`) under candidate models and scores each candidate against
the device bit for bit; :func:`compare_tc` does the same for published real-GPU
dot-product data (:mod:`lowprec.hardware.tcdata` layout) with the GPU's named model.

Candidates (names accepted by ``--model``):

- conversions: "torch-compatible" (e4m3fn saturates, e5m2/fp16/bf16 overflow to inf, as
  tests/test_compat.py proves for torch CPU) and "lowprec-default" (ml_dtypes behaviour).
- GEMMs: "fp32" (IEEE fp32, sequential in k, fused multiply-add, RNE), "fp32-chunkN"
  (runs of N products summed in fp32 from 0, each run added into an fp32 total),
  "fp32-lanesN" (N interleaved fp32 accumulators, product k into accumulator k mod N, each
  sequential with fused multiply-add, then the N sums added in order, fp32 RNE: a
  vectorised CPU kernel's order; torch 2.13's fp16/bf16 CPU GEMM on an AVX2 CPU is
  "fp32-lanes4"),
  "fp16-acc" / "bf16-acc" (sequential accumulation in the output format), and every named
  tensor-core model that takes the inputs ("a100", "h100", ...: fp32-output block model;
  "<gpu>-fp16out": the GPU's fp16-output path). Results are rounded to the captured output
  format (RNE) after the scales. For a GEMM with a bias (the training step's linear layers)
  each accumulation candidate comes in three bias variants: "+bias-in" (bias starts the
  accumulator), "+bias-after" (added to the fp32 result, one RNE rounding into fp32,
  then to the output) and "+bias-out" (added after rounding to the output format, with
  one more rounding there).
- the training step's elementwise parts: "exact" (relu and its gradient), "fma" and
  "mul-add" (the SGD update), "lowprec-autograd" (loss and logits gradient, replayed with
  numpy float32 arithmetic in the order of :func:`lowprec.autograd.ops.cross_entropy`:
  not expected to be bit-exact, its ULP distances are reported).

Scores per op and candidate: cases, exact bit matches (NaN equals NaN), a histogram of ULP
distances in the op's output format, max and median relative error; the best candidate is
the one with most matches (the first listed wins a tie).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from ..formats import get_format
from ..quantize import decode, encode, quantize
from ..testing import ulp_distance
from .capture_format import Capture, load_capture, typed_values
from .fit import dataset_problem, quick_fit
from .models import get_model, list_models, select_block
from .tcdata import load_dataset, scan

__all__ = ["compare_capture", "compare_tc", "score", "ULP_BINS", "register",
           "find_tc_datasets", "format_tc_table", "format_capture_report"]

#: ULP-distance histogram bins: (label, low, high) inclusive.
ULP_BINS = (("0", 0, 0), ("1", 1, 1), ("2", 2, 2), ("3-4", 3, 4), ("5-16", 5, 16),
            ("17-256", 17, 256), (">256", 257, np.inf))
_CHUNKS = (8, 16, 32, 64)
_LANES = (4, 8, 16)
_TORCH_OVERFLOW = {"float8_e4m3fn": "saturate", "float8_e5m2": "inf", "float16": "inf",
                   "bfloat16": "inf"}


# ---------------------------------------------------------------- scoring

def score(got, want, fmt, *, got_codes: bool = False, want_codes: bool = False) -> dict:
    """Compare a candidate with the device in format ``fmt``.

    Args:
        got, want: values exactly representable in ``fmt`` (or codes, see below).
        fmt: the output format.
        got_codes, want_codes: the argument holds codes of ``fmt`` rather than values.

    Returns:
        dict with cases, matches, match_pct, ulp_hist (label -> count, plus "nan" for a
        NaN against a number), max_rel, median_rel (over cases where the device result is
        finite and non-zero; NaN when there are none).
    """
    f = get_format(fmt)
    gv = decode(np.asarray(got), f) if got_codes else np.asarray(got, np.float64)
    wv = decode(np.asarray(want), f) if want_codes else np.asarray(want, np.float64)
    gv, wv = gv.reshape(-1), wv.reshape(-1)
    gc = np.asarray(got).reshape(-1) if got_codes else encode(gv, f, overflow="inf"
                                                              if f.has_inf else "saturate")
    wc = np.asarray(want).reshape(-1) if want_codes else encode(wv, f, overflow="inf"
                                                                if f.has_inf else "saturate")
    gnan, wnan = np.isnan(gv), np.isnan(wv)
    match = ((gc.astype(np.int64) == wc.astype(np.int64)) & ~gnan & ~wnan) | (gnan & wnan)
    hist = {}
    both = ~gnan & ~wnan
    d = ulp_distance(gv[both], wv[both], f) if both.any() else np.zeros(0)
    for label, lo, hi in ULP_BINS:
        hist[label] = int(((d >= lo) & (d <= hi)).sum())
    hist["nan"] = int((gnan != wnan).sum())
    ok = both & np.isfinite(wv) & (wv != 0) & np.isfinite(gv)
    with np.errstate(all="ignore"):
        rel = np.abs(gv[ok] - wv[ok]) / np.abs(wv[ok])
    n = int(gv.size)
    return {"cases": n, "matches": int(match.sum()),
            "match_pct": round(100.0 * float(match.sum()) / n, 4) if n else 100.0,
            "ulp_hist": hist, "max_rel": float(rel.max()) if rel.size else float("nan"),
            "median_rel": float(np.median(rel)) if rel.size else float("nan")}


def _record(op_id: str, kind: str, fmt: str, want, scored: dict, **extra) -> dict:
    """One op's report: candidates in order, the best (most matches, first wins ties)."""
    cands = [dict(name=k, **v) for k, v in scored.items()]
    best = max(cands, key=lambda c: c["matches"]) if cands else None
    rec = {"id": op_id, "kind": kind, "status": "ok", "format": fmt,
           "cases": int(np.size(want)), "candidates": cands,
           "best": best["name"] if best else None,
           "best_match_pct": best["match_pct"] if best else None}
    rec.update(extra)
    return rec


# ---------------------------------------------------------------- candidates

def _gpu_names() -> list:
    return list_models()


def parse_candidates(names) -> Optional[list]:
    """Validate ``--model`` names (None: all applicable candidates).

    Raises:
        ValueError: for a name that is no candidate.
    """
    if not names:
        return None
    out = []
    gpus = _gpu_names()
    fixed = {"fp32", "fp16-acc", "bf16-acc", "torch-compatible", "lowprec-default", "exact",
             "fma", "mul-add", "lowprec-autograd"}
    for n in names:
        key = n.strip().lower()
        base = key[:-len("-fp16out")] if key.endswith("-fp16out") else key
        if key in fixed or base in gpus or re.fullmatch(r"fp32-(chunk|lanes)[1-9][0-9]*", key):
            out.append(key)
        else:
            raise ValueError(f"unknown model {n!r}; known: fp32, fp32-chunkN, fp32-lanesN, "
                             f"fp16-acc, bf16-acc, {', '.join(gpus)}, <gpu>-fp16out, "
                             f"torch-compatible, lowprec-default")
    return out


def _gemm_candidates(fa: str, fb: str, out: str, K: int, wanted: Optional[list]) -> list:
    """(name, matmul keyword arguments, rounding-into-output) of every applicable candidate."""
    cands = [("fp32", {})]
    cands += [(f"fp32-chunk{c}", {"chunk": c}) for c in _CHUNKS if c < K]
    cands += [(f"fp32-lanes{n}", {"lanes": n}) for n in _LANES if n < K]
    if wanted:
        cands += [(w, {"chunk": int(w[len("fp32-chunk"):])}) for w in wanted
                  if w.startswith("fp32-chunk") and w not in dict(cands)]
        cands += [(w, {"lanes": int(w[len("fp32-lanes"):])}) for w in wanted
                  if w.startswith("fp32-lanes") and w not in dict(cands)]
    short = {"float16": "fp16", "bfloat16": "bf16"}
    if out in short:
        cands.append((f"{short[out]}-acc", {"acc": out}))
    for g in _gpu_names():
        try:
            select_block(g, fa, "fp32")
            select_block(g, fb, "fp32")
        except ValueError:
            continue
        cands.append((g, {"model": g}))
        if out == "float16" and fa == fb:
            try:
                select_block(g, fa, "fp16")
                cands.append((f"{g}-fp16out", {"model": g, "out": "fp16"}))
            except ValueError:
                pass
    if wanted is not None:
        cands = [(n, kw) for n, kw in cands if n in wanted]
    return cands


def _run_candidate(a, b, kw: dict, out: str, c=None, scale_a=None, scale_b=None,
                   cache: Optional[dict] = None) -> np.ndarray:
    """float64 values of one GEMM candidate, rounded into ``out`` (RNE)."""
    from ..gemm import matmul

    key = None
    if cache is not None and kw.get("model"):
        # equal block models (e.g. a100/a2/a30) give equal results: compute once
        blk = select_block(kw["model"], _fmt_of(a), "fp16" if kw.get("out") else "fp32")
        key = (blk, id(a), id(b), id(c), scale_a, scale_b, out)
        if key in cache:
            return cache[key]
    if "lanes" in kw:
        r = _lanes_matmul(a, b, kw["lanes"], c, scale_a, scale_b)
    else:
        r = matmul(a, b, c=c, scale_a=scale_a, scale_b=scale_b, **kw)
        r = np.asarray(r.to_numpy() if hasattr(r, "to_numpy") else r, np.float32)
    res = quantize(r.astype(np.float64), out)
    if key is not None:
        cache[key] = res
    return res


def _lanes_matmul(a, b, lanes: int, c=None, scale_a=None, scale_b=None) -> np.ndarray:
    """float32 ``c + a @ b`` with ``lanes`` interleaved fp32 accumulators (product k into
    accumulator k mod lanes, c starting accumulator 0), summed in order; then the scales
    as :func:`lowprec.matmul` applies them ((r * scale_a) * scale_b, fp32 RNE each)."""
    from ..gemm import matmul

    K = a.shape[-1]
    lanes = min(lanes, K)
    q, rem = divmod(K, lanes)
    zero = np.zeros(a.shape[:-1] + b.shape[-1:], np.float32)
    sums = []
    # the lanes run as one batch per lane length (K mod lanes of them hold one more product)
    for lo, hi in ((0, rem), (rem, lanes)):
        if hi > lo:
            ab = np.stack([a[..., i::lanes] for i in range(lo, hi)])
            bb = np.stack([b[..., i::lanes, :] for i in range(lo, hi)])
            cb = np.stack([zero if i or c is None else np.broadcast_to(c, zero.shape)
                           for i in range(lo, hi)]).astype(np.float32)
            sums += list(np.asarray(matmul(ab, bb, c=cb), np.float32))
    total = sums[0]
    for r in sums[1:]:
        total = (total + r).astype(np.float32)  # IEEE fp32 RNE
    for s in (scale_a, scale_b):
        if s is not None:
            total = (total * np.asarray(s, np.float32)).astype(np.float32)
    return total


def _fmt_of(arr: np.ndarray) -> str:
    return get_format(arr.dtype).name


def _compare_gemm(cap: Capture, op: dict, wanted) -> dict:
    fa, fb = op["inputs"], op.get("inputs_b", op["inputs"])
    out = op["out"]
    a = typed_values(cap.values(op, "a"), fa)
    b = typed_values(cap.values(op, "b"), fb)
    want = cap.values(op, "d")
    sa, sb = op.get("scale_a"), op.get("scale_b")
    sa = None if sa in (None, 1.0) else sa
    sb = None if sb in (None, 1.0) else sb
    scored, cache = {}, {}
    for name, kw in _gemm_candidates(fa, fb, out, op["K"], wanted):
        got = _run_candidate(a, b, kw, out, scale_a=sa, scale_b=sb, cache=cache)
        scored[name] = score(got, want, out)
    return _record(op["id"], "gemm", out, want, scored, shape=[op["M"], op["K"], op["N"]],
                   inputs=fa if fa == fb else f"{fa}x{fb}", dist=op.get("dist"),
                   torch_op=op.get("torch_op"))


def _compare_convert(cap: Capture, op: dict, wanted) -> dict:
    dst = op["dst"]
    f = get_format(dst)
    x = cap.codes(op, "x").view(np.float32)  # the raw bits: NaN signs and payloads kept
    want = cap.codes(op, "y")
    cands = {"torch-compatible": dict(overflow=_TORCH_OVERFLOW.get(dst)),
             "lowprec-default": {}}
    scored = {}
    for name, kw in cands.items():
        if wanted is not None and name not in wanted:
            continue
        got = encode(x, f, **kw)
        scored[name] = score(got, want, f, got_codes=True, want_codes=True)
    return _record(op["id"], "convert", dst, want, scored, src=op.get("src"))


# ---------------------------------------------------------------- training step

def _bias_variants(base_kw: dict, a, b, bias, out: str, cache: dict) -> dict:
    """The three ways a bias can enter a GEMM (see the module docstring)."""
    from ..arith import add

    res = {}
    b32 = np.broadcast_to(bias.astype(np.float32), (a.shape[0], b.shape[1]))
    res["+bias-in"] = _run_candidate(a, b, base_kw, out, c=b32)
    raw = _run_candidate(a, b, base_kw, "float32", cache=cache)
    res["+bias-after"] = quantize(np.asarray(add(raw.astype(np.float32), b32, "fp32"),
                                             np.float64), out)
    r_out = quantize(raw, out)
    res["+bias-out"] = np.asarray(add(r_out.astype(np.float32), b32, out), np.float64)
    return res


def _train_gemm(op_id, a, b, want, out, wanted, bias=None, extra=None) -> dict:
    fa = _fmt_of(a)
    scored, cache = {}, {}
    for name, kw in _gemm_candidates(fa, fa, out, a.shape[1], wanted):
        if kw.get("out"):
            continue  # the fp16-output paths do not apply to bf16 training
        if bias is None:
            scored[name] = score(_run_candidate(a, b, kw, out, cache=cache), want, out)
        else:
            for suffix, got in _bias_variants(kw, a, b, bias, out, cache).items():
                scored[name + suffix] = score(got, want, out)
    return _record(op_id, "train-gemm", out, want, scored, shape=[a.shape[0], a.shape[1],
                                                                  b.shape[1]], **(extra or {}))


def _compare_train(cap: Capture, op: dict, wanted) -> list:
    from ..arith import fma, mul, sub

    v = lambda r: cap.values(op, r)  # noqa: E731
    bf, f32 = "bfloat16", "float32"
    to_bf = lambda x: typed_values(quantize(np.asarray(x, np.float32), bf), bf)  # noqa: E731
    x, w1, b1, w2, b2 = v("x"), v("w1"), v("b1"), v("w2"), v("b2")
    h, a, z, gh, ga, gz = v("h"), v("a"), v("z"), v("gh"), v("ga"), v("gz")
    recs = []
    xb, w1b, w2b = to_bf(x), to_bf(w1), to_bf(w2)
    b1b, b2b = quantize(b1.astype(np.float32), bf), quantize(b2.astype(np.float32), bf)
    ab, gzb, ghb = typed_values(a, bf), typed_values(gz, bf), typed_values(gh, bf)
    pre = op["id"]
    recs.append(_train_gemm(f"{pre}/linear1", xb, np.ascontiguousarray(w1b.T), h, bf, wanted,
                            bias=b1b, extra={"what": "h = bf16(x) @ bf16(W1)^T + bf16(b1)"}))
    recs.append(_train_gemm(f"{pre}/linear2", ab, np.ascontiguousarray(w2b.T), z, bf, wanted,
                            bias=b2b, extra={"what": "z = a @ bf16(W2)^T + bf16(b2)"}))
    recs.append(_train_gemm(f"{pre}/grad_a", gzb, w2b, ga, bf, wanted,
                            extra={"what": "dL/da = dL/dz @ bf16(W2)"}))
    for name, g, inp, what in (("grad_w2", gzb, ab, "dW2 = (dL/dz)^T @ a"),
                               ("grad_w1", ghb, xb, "dW1 = (dL/dh)^T @ bf16(x)")):
        rec = _train_gemm(f"{pre}/{name}", np.ascontiguousarray(g.T), inp, v("g" + name[-2:]),
                          bf, wanted, extra={"what": what + " (bf16, widened to fp32)"})
        recs.append(rec)
    for name, g, what in (("grad_b2", gzb, "db2 = sum over batch of dL/dz"),
                          ("grad_b1", ghb, "db1 = sum over batch of dL/dh")):
        ones = typed_values(np.ones((1, g.shape[0])), bf)
        recs.append(_train_gemm(f"{pre}/{name}", ones, g, v("g" + name[-2:]).reshape(1, -1),
                                bf, wanted, extra={"what": what + " (as ones @ g)"}))
    if wanted is None or "exact" in wanted:
        recs.append(_record(f"{pre}/relu", "train-elementwise", bf, a,
                            {"exact": score(np.maximum(h, 0.0) + 0.0, a, bf)},
                            what="a = relu(h)"))
        recs.append(_record(f"{pre}/grad_relu", "train-elementwise", bf, gh,
                            {"exact": score(np.where(h > 0, ga, 0.0), gh, bf)},
                            what="dL/dh = dL/da * (h > 0)"))
    if wanted is None or "lowprec-autograd" in wanted:
        recs += _loss_records(pre, z, v("y"), v("loss"), gz)
    lr = np.float32(op["lr"])
    upd = {}
    for p in ("w1", "b1", "w2", "b2"):
        w, g = v(p).astype(np.float32), v("g" + p).astype(np.float32)
        upd.setdefault("fma", []).append(np.asarray(fma(np.full_like(g, -lr), g, w, f32)))
        step = np.asarray(mul(np.full_like(g, lr), g, f32), np.float32)
        upd.setdefault("mul-add", []).append(np.asarray(sub(w, step, f32)))
    want = np.concatenate([v(p + "_new").reshape(-1) for p in ("w1", "b1", "w2", "b2")])
    scored = {k: score(np.concatenate([u.reshape(-1) for u in us]), want, f32)
              for k, us in upd.items() if wanted is None or k in wanted}
    recs.append(_record(f"{pre}/sgd", "train-elementwise", f32, want, scored,
                        what=f"w - lr * grad, lr = {op['lr']} (fp32)"))
    return recs


def _loss_records(pre: str, z, y, loss, gz) -> list:
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
    got_g = quantize((p / np.float32(n)).astype(np.float32), "bfloat16")
    return [_record(f"{pre}/loss", "train-elementwise", "float32", loss,
                    {"lowprec-autograd": score(np.array([got_loss]), loss, "float32")},
                    what="cross-entropy of fp32 logits (numpy float32 replay)"),
            _record(f"{pre}/grad_z", "train-elementwise", "bfloat16", gz,
                    {"lowprec-autograd": score(got_g, gz, "bfloat16")},
                    what="dL/dz = (softmax(z) - onehot) / B, bf16 (numpy float32 replay)")]


# ---------------------------------------------------------------- entry points

def compare_capture(cap, models=None, progress: bool = False) -> list:
    """Replay every op of a capture under the candidates.

    Args:
        cap: a :class:`~lowprec.hardware.capture_format.Capture` or a path to one.
        models: candidate names to keep (None: every applicable one).
        progress: tqdm progress bar on stderr.

    Returns:
        A list of op records (dicts, JSON-serialisable): see :func:`score` and
        :func:`_record`; skipped ops keep ``status`` "skipped" and their ``reason``.

    Raises:
        ValueError: unknown model names or an unreadable capture file.
        FileNotFoundError: missing capture file.
    """
    if not isinstance(cap, Capture):
        cap = load_capture(cap)
    wanted = parse_candidates(models)
    ops = cap.ops
    if progress:
        from tqdm import tqdm
        ops = tqdm(ops, desc="compare", file=sys.stderr, leave=False)
    recs = []
    for op in ops:
        if op.get("status") != "ok":
            recs.append({"id": op["id"], "kind": op.get("kind"), "status": "skipped",
                         "reason": op.get("reason", "")})
            continue
        if op["kind"] == "convert":
            recs.append(_compare_convert(cap, op, wanted))
        elif op["kind"] == "gemm":
            recs.append(_compare_gemm(cap, op, wanted))
        elif op["kind"] == "train":
            recs += _compare_train(cap, op, wanted)
        else:
            recs.append({"id": op["id"], "kind": op["kind"], "status": "skipped",
                         "reason": f"unknown op kind {op['kind']!r}"})
    return recs


def find_tc_datasets(root) -> list:
    """(gpu, folder, out_format) of every data set under ``root``: the ``datasets`` of
    :func:`lowprec.hardware.tcdata.scan` (which also says what it skips and why).

    Raises:
        ValueError: if ``root`` is not a directory.
    """
    return scan(root).datasets


def tc_predict(ds, model) -> np.ndarray:
    """float32 results of a model on a :class:`~lowprec.hardware.tcdata.TCDataset`."""
    from ..gemm import matmul

    out = "fp16" if ds.out_format == "float16" else None
    got = matmul(ds.a[:, None, :], ds.b[:, :, None], c=ds.c[:, None, None],
                 inputs=ds.input_format, model=model, out=out)
    got = np.asarray(got.to_numpy() if hasattr(got, "to_numpy") else got, np.float32)
    return got.reshape(-1)


def compare_tc(root, models=None, limit: Optional[int] = None, progress: bool = False) -> list:
    """Score the named models on published real-GPU data.

    Every output file of every data set is scored (see
    :func:`lowprec.hardware.tcdata.scan`). Without ``models`` each set is scored with its
    own GPU's model; where that model has no path for the set's input and output formats
    the record says "no named model" and carries the best block model of a quick search
    (:func:`lowprec.hardware.fit.quick_fit`). Folders that are not data sets (an unknown
    GPU, a name that is no input format, missing files) are listed as skipped with the
    reason.

    Args:
        root: a folder in the layout ``<GPU>/<fmt>/a_*, b_*, c_*, d_*_fp32.txt,
            d_*_fp16.txt`` (see :mod:`lowprec.hardware.tcdata`).
        models: GPU model names to try on every data set (None: the folder's own GPU).
        limit: read at most this many cases per data set.
        progress: tqdm progress bar on stderr.

    Returns:
        Records (JSON-serialisable dicts) with gpu, input, output, status and:
        status "ok": cases, model, matches, match_pct, ulp_hist (in the output format);
        status "no path" (a model given in ``models`` that has no path for the set):
        cases, model, matches and match_pct None, note; status "no named model": cases,
        model None, matches and match_pct None, note, best_candidate (label, params,
        matches, cases, match_pct, named); status "skipped": path, reason (output and
        cases None). Data sets come first, in folder order, then the skipped entries.

    Raises:
        ValueError: if ``root`` is not a directory or holds no data set, or a model name
            is unknown.
    """
    names = None if not models else [get_model(m).name for m in models]
    found = scan(root)
    found.require_datasets()
    sets = found.datasets
    if progress:
        from tqdm import tqdm
        sets = tqdm(sets, desc="tc data", file=sys.stderr, leave=False)
    recs = []
    for gpu, folder, out in sets:
        ds = load_dataset(gpu, folder, out, root=root, limit=limit)
        base = {"gpu": gpu, "input": folder, "output": _OUT_NAMES[out], "cases": ds.cases}
        for m in names or [ds.model_name]:
            try:
                got = tc_predict(ds, m)
            except ValueError as e:
                if names:
                    recs.append(dict(base, status="no path", model=m, matches=None,
                                     match_pct=None, note=str(e)))
                else:
                    recs.append(_no_named_model(ds, base, str(e)))
                continue
            s = score(got, ds.d, ds.out_format)
            recs.append(dict(base, status="ok", model=m, matches=s["matches"],
                             match_pct=s["match_pct"], ulp_hist=s["ulp_hist"]))
    for path, reason in found.skipped:
        parts = path.split("/")
        recs.append({"gpu": parts[0], "input": parts[1] if len(parts) > 1 else None,
                     "output": None, "cases": None, "status": "skipped", "path": path,
                     "reason": reason})
    return recs


_OUT_NAMES = {"float32": "fp32", "float16": "fp16"}


def _no_named_model(ds, base: dict, why: str) -> dict:
    """The record of a data set no named model covers, with a quick search's best guess."""
    best = quick_fit(dataset_problem(ds))
    cand = {"label": best["label"], "params": best["params"], "matches": best["matches"],
            "cases": best["cases"],
            "match_pct": round(100.0 * best["matches"] / best["cases"], 4),
            "named": best.get("named", [])}
    return dict(base, status="no named model", model=None, matches=None, match_pct=None,
                note=why, best_candidate=cand)


# ---------------------------------------------------------------- text output

def _fmt_pct(x) -> str:
    return "-" if x is None else f"{x:.2f}%"


def format_tc_table(recs: list) -> str:
    """Plain-text table of :func:`compare_tc` records."""
    lines = [f"{'gpu':6} {'input':6} {'output':6} {'cases':>6} {'matches':>8} {'match':>8}  model"]
    for r in recs:
        status = r.get("status", "ok")
        if status == "skipped":
            lines.append(f"skipped {r['path']}: {r['reason']}")
            continue
        m = "-" if r["matches"] is None else str(r["matches"])
        head = (f"{r['gpu']:6} {r['input']:6} {r['output']:6} {r['cases']:6d} {m:>8} "
                f"{_fmt_pct(r['match_pct']):>8}  ")
        if status == "no named model":
            b = r["best_candidate"]
            named = f" (= {', '.join(b['named'])})" if b["named"] else ""
            lines.append(head + f"no named model; best of a quick search: {b['label']}{named}:"
                                f" {b['matches']}/{b['cases']} ({_fmt_pct(b['match_pct'])})")
            continue
        lines.append(head + str(r["model"]) + (f"  ({r['note']})" if r.get("note") else ""))
    return "\n".join(lines)


def format_capture_report(recs: list, meta: Optional[dict] = None, all_candidates: bool = False
                          ) -> str:
    """Plain-text report of :func:`compare_capture` records: one line per op (best
    candidate), plus every candidate's match rate when ``all_candidates``."""
    out = []
    if meta:
        d = meta.get("device", {})
        out.append(f"capture: {d.get('device')} ({d.get('name', '')}), torch {d.get('torch')}, "
                   f"cuda {d.get('cuda')}, cc {d.get('compute_capability', '-')}, seed "
                   f"{meta.get('seed')}")
    hist_labels = [b[0] for b in ULP_BINS] + ["nan"]
    out.append(f"{'op':58} {'cases':>7} {'match':>8}  {'best model':24} "
               f"{'max rel':>9} {'med rel':>9}  ulp hist [" + " ".join(hist_labels) + "]")
    for r in recs:
        if r["status"] != "ok":
            out.append(f"{r['id']:58} skipped: {r['reason'].splitlines()[0][:80]}")
            continue
        if r["best"] is None:
            out.append(f"{r['id']:58} {r['cases']:7d}  no candidate selected applies")
            continue
        best = next(c for c in r["candidates"] if c["name"] == r["best"])
        h = " ".join(str(best["ulp_hist"][k]) for k in hist_labels)
        out.append(f"{r['id']:58} {r['cases']:7d} {_fmt_pct(best['match_pct']):>8}  "
                   f"{best['name']:24} {best['max_rel']:9.2e} {best['median_rel']:9.2e}  [{h}]")
        if all_candidates:
            out.append("      " + ", ".join(f"{c['name']} {c['match_pct']:.1f}%"
                                           for c in r["candidates"]))
    return "\n".join(out)


def _main(args) -> int:
    if (args.file is None) == (args.tc_dir is None):
        raise ValueError("give a capture FILE or --tc-dir DIR (exactly one)")
    if args.tc_dir is not None:
        recs = compare_tc(args.tc_dir, models=args.model, progress=not args.json)
        if args.json:
            print(json.dumps(recs, indent=1))
        else:
            print(format_tc_table(recs))
        if args.report:
            from .report import write_tc_report
            print(f"report: {write_tc_report(recs, args.report)}", file=sys.stderr)
        return 0
    try:
        cap = load_capture(args.file)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from e
    recs = compare_capture(cap, models=args.model, progress=not args.json)
    if args.json:
        print(json.dumps({"meta": {k: v for k, v in cap.meta.items() if k != "ops"},
                          "ops": recs}, indent=1))
    else:
        print(format_capture_report(recs, cap.meta, all_candidates=args.all))
    if args.report:
        from .report import write_capture_report
        print(f"report: {write_capture_report(recs, cap.meta, args.report)}", file=sys.stderr)
    return 0


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand (``help``: its one-line help, from
    :data:`lowprec.cli.COMMANDS`)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("file", nargs="?", help="capture file written by `lowprec capture`")
    p.add_argument("--tc-dir", help="folder of published real-GPU dot-product data "
                                    "(<GPU>/<fmt>/a_*, b_*, c_*, d_*.txt)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="candidate to try (repeatable; default: all that apply)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.add_argument("--all", action="store_true", help="list every candidate's match rate")
    p.add_argument("--report", metavar="DIR", help="write PNG plots and index.html to DIR")
    p.set_defaults(func=_main)
    return p
