"""The candidates ``lowprec compare`` replays an op under, and how each one is run.

Names accepted by ``--model`` (:func:`parse_candidates`):

- conversions (:func:`conversion_candidates`): "torch-compatible" (the overflow policy of
  torch's casts, :func:`torch_overflow`) and "lowprec-default" (ml_dtypes behaviour).
- GEMMs (:func:`gemm_candidates`, run by :func:`run_candidate`): "fp32" (IEEE fp32,
  sequential in k, fused multiply-add, RNE), "fp32-chunkN" (runs of N products summed in
  fp32 from 0, each run added into an fp32 total), "fp32-lanesN" (N interleaved fp32
  accumulators, product k into accumulator k mod N, each sequential with fused
  multiply-add, then the N sums added in order, fp32 RNE: a vectorised CPU kernel's order;
  torch 2.13's fp16/bf16 CPU GEMM on an AVX2 CPU is "fp32-lanes4"), "<fmt>-acc"
  (sequential accumulation in an output format narrower than fp32: "fp16-acc",
  "bf16-acc"), and every named tensor-core model that takes the inputs ("a100", "h100",
  ...: the fp32-output block model; "<gpu>-<fmt>out", e.g. "h100-fp16out": the GPU's path
  into the output format, where its model has one). Results are rounded to the captured
  output format (RNE) after the scales, which multiply the fp32 result as
  :func:`lowprec.matmul` applies them ((r * scale_a) * scale_b); for GEMMs with scales
  other than 1, "fp32-dequant" multiplies the inputs by their scales first (fp32 RNE
  each) and then accumulates as "fp32" (torch 2.13's CPU ``_scaled_mm``). For inputs no
  tensor core takes (fp32), "<gpu>-<fmt>in" rounds them to a narrower format the GPU's
  model takes, with the same exponent range (RNE), and runs the model ("h100-tf32in":
  a TF32 GEMM).
- the training step's elementwise parts (:data:`TRAIN_STEP_CANDIDATES`, used by
  :mod:`lowprec.hardware.train_replay`, which runs the step on the autograd engine).

Which candidates apply to an op follows from the format descriptors and the GPU models,
never from a format's name; a format's short label ("fp16") is its first alias in the
format registry.
"""

from __future__ import annotations

import re
from typing import Optional

import numpy as np

from ..formats import FloatFormat, aliases, get_format, list_formats
from ..gemm import matmul
from ..quantize import quantize
from .models import get_model, list_models, select_block

__all__ = ["CHUNKS", "LANES", "CONVERSION_CANDIDATES", "TRAIN_STEP_CANDIDATES", "DEQUANT",
           "parse_candidates", "short_name", "torch_overflow", "conversion_candidates",
           "gemm_candidates", "run_candidate", "lanes_matmul", "format_of"]

#: Run lengths of the "fp32-chunkN" candidates tried by default (those shorter than K).
CHUNKS = (8, 16, 32, 64)
#: Accumulator counts of the "fp32-lanesN" candidates tried by default (those below K).
LANES = (4, 8, 16)
#: Conversion candidates, in the order they are tried.
CONVERSION_CANDIDATES = ("torch-compatible", "lowprec-default")
#: Candidates of the training step's elementwise parts: relu and its gradient computed
#: exactly, the SGD update as one fused multiply-add or as a multiply then an add
#: (lowprec.autograd.optim.SGD), and the loss and logits gradient of lowprec.autograd.
TRAIN_STEP_CANDIDATES = ("exact", "fma", "mul-add", "lowprec-autograd")
#: The candidate of scaled GEMMs that dequantizes the inputs first (see the module docstring).
DEQUANT = "fp32-dequant"

# the accumulator of the "fp32*" candidates and of a tensor core's primary path
_F32 = "float32"
_CHUNK_OR_LANES = re.compile(r"fp32-(chunk|lanes)([1-9][0-9]*)")


def short_name(fmt) -> str:
    """A format's short label in candidate names: its first alias in the format registry
    ("fp16" for float16, "bf16" for bfloat16), or its name when it has none."""
    f = get_format(fmt)
    return next(iter(aliases(f)), f.name)


def _accumulates_in(fmt) -> bool:
    """Whether "<fmt>-acc" (sequential accumulation in ``fmt``) is a candidate: a float
    format narrower than the fp32 accumulator of "fp32"."""
    f = get_format(fmt)
    return isinstance(f, FloatFormat) and f.bits < get_format(_F32).bits


def _takes(gpu: str, in_fmt: str, out_fmt: str) -> bool:
    """Whether a GPU's model has a tensor-core path from ``in_fmt`` into ``out_fmt``."""
    try:
        select_block(gpu, in_fmt, out_fmt)
    except ValueError:
        return False
    return True


def _narrowed_inputs(gpu: str, fmt) -> list:
    """Input formats of a GPU's model (with an fp32 output) that ``fmt`` rounds into: float
    formats with its exponent range and fewer fraction bits (fp32 -> tf32), for inputs the
    model does not take itself."""
    f = get_format(fmt)
    if not isinstance(f, FloatFormat) or _takes(gpu, f.name, _F32):
        return []
    outs = []
    for fin, out in get_model(gpu).paths:
        g = get_format(fin)
        if (out == _F32 and isinstance(g, FloatFormat) and g.exp_bits == f.exp_bits
                and g.bias == f.bias and g.man_bits < f.man_bits):
            outs.append(g.name)
    return outs


def _is_narrowing(gpu: str, fmt_label: str) -> bool:
    """Whether "<gpu>-<fmt>in" names a candidate: some format rounds into ``fmt`` for the
    GPU's model (see :func:`_narrowed_inputs`)."""
    if not _is_format(fmt_label):
        return False
    name = get_format(fmt_label).name
    return any(name in _narrowed_inputs(gpu, f) for f in list_formats()
               if isinstance(f, FloatFormat))


def _output_path(gpu: str, fmt_label: str) -> Optional[str]:
    """The output format named by the "<fmt>" of "<gpu>-<fmt>out", where the GPU's model
    has a path into it besides fp32 (None otherwise)."""
    try:
        f = get_format(fmt_label)
    except ValueError:
        return None
    outs = {o for _, o in get_model(gpu).paths}
    return f.name if f.name in outs and f.name != _F32 else None


def parse_candidates(names) -> Optional[list]:
    """Validate ``--model`` names (None: all applicable candidates).

    Names are case-insensitive; a format in "<fmt>-acc" or "<gpu>-<fmt>out" may be given
    by any of its names and is returned as its short label ("float16-acc" -> "fp16-acc").

    Args:
        names: candidate names, or None / empty for every applicable candidate.

    Returns:
        The normalised names, or None.

    Raises:
        ValueError: for a name that is no candidate.
    """
    if not names:
        return None
    out = []
    gpus = list_models()
    fixed = ("fp32", DEQUANT) + CONVERSION_CANDIDATES + TRAIN_STEP_CANDIDATES
    for n in names:
        key = n.strip().lower()
        acc = re.fullmatch(r"(.+)-acc", key)
        path = re.fullmatch(r"(.+)-(.+)out", key)
        narrow = re.fullmatch(r"(.+)-(.+)in", key)
        if key in fixed or key in gpus or _CHUNK_OR_LANES.fullmatch(key):
            out.append(key)
        elif acc and _is_format(acc[1]) and _accumulates_in(acc[1]):
            out.append(f"{short_name(acc[1])}-acc")
        elif path and path[1] in gpus and _output_path(path[1], path[2]):
            out.append(f"{path[1]}-{short_name(path[2])}out")
        elif narrow and narrow[1] in gpus and _is_narrowing(narrow[1], narrow[2]):
            out.append(f"{narrow[1]}-{short_name(narrow[2])}in")
        else:
            raise ValueError(f"unknown model {n!r}; known: fp32, fp32-chunkN, fp32-lanesN, "
                             f"{DEQUANT}, <fmt>-acc (fp16-acc, bf16-acc), {', '.join(gpus)}, "
                             f"<gpu>-<fmt>out (h100-fp16out), <gpu>-<fmt>in (h100-tf32in), "
                             f"{', '.join(CONVERSION_CANDIDATES + TRAIN_STEP_CANDIDATES)}")
    return out


def _is_format(name: str) -> bool:
    try:
        get_format(name)
    except ValueError:
        return False
    return True


def torch_overflow(fmt) -> str:
    """The overflow policy of torch's float casts (``Tensor.to``) into ``fmt``.

    torch rounds to nearest even and overflows as IEEE 754 does ("inf": +-inf, or NaN
    where the format has only NaN: the fnuz formats, E8M0), except into formats without
    infinities whose NaN is the all-ones code of each sign (the OCP E4M3,
    float8_e4m3fn), which it saturates to +-max. Checked against torch's CPU casts for
    every format torch has a dtype of (tests/test_capture.py).

    Returns:
        "saturate" or "inf" (an ``overflow`` argument of :func:`lowprec.encode`).
    """
    f = get_format(fmt)
    if isinstance(f, FloatFormat) and not f.has_inf and f.nan == "all_ones" and f.signed:
        return "saturate"
    return "inf"


def conversion_candidates(fmt) -> dict:
    """Conversion candidates into ``fmt``: name -> keyword arguments of
    :func:`lowprec.encode`."""
    return {"torch-compatible": {"overflow": torch_overflow(fmt)}, "lowprec-default": {}}


def gemm_candidates(fa: str, fb: str, out: str, K: int, wanted: Optional[list], *,
                    scaled: bool = False) -> list:
    """Every GEMM candidate that applies to inputs ``fa`` x ``fb``, output ``out`` and
    ``K`` products.

    Args:
        fa, fb: input formats.
        out: the captured output format.
        K: products per result (chunk and lane counts of K or more are left out).
        wanted: names from :func:`parse_candidates` to keep (None: all); the fp32-chunkN
            and fp32-lanesN among them are added whatever N.
        scaled: the GEMM has scales other than 1 (adds "fp32-dequant").

    Returns:
        A list of (name, keyword arguments of :func:`run_candidate`).
    """
    out = get_format(out).name
    cands = [("fp32", {})]
    if scaled:
        cands.append((DEQUANT, {"dequant": True}))
    cands += [(f"fp32-chunk{c}", {"chunk": c}) for c in CHUNKS if c < K]
    cands += [(f"fp32-lanes{n}", {"lanes": n}) for n in LANES if n < K]
    for kind in ("chunk", "lanes"):
        for w in wanted or ():
            m = _CHUNK_OR_LANES.fullmatch(w)
            if m and m[1] == kind and w not in dict(cands):
                cands.append((w, {kind: int(m[2])}))
    if _accumulates_in(out):
        cands.append((f"{short_name(out)}-acc", {"acc": out}))
    for g in list_models():
        if not (_takes(g, fa, _F32) and _takes(g, fb, _F32)):
            continue
        cands.append((g, {"model": g}))
        if out != _F32 and fa == fb and _takes(g, fa, out):
            cands.append((f"{g}-{short_name(out)}out", {"model": g, "out": out}))
    if get_format(fa) == get_format(fb):
        for g in list_models():
            for fin in _narrowed_inputs(g, fa):
                cands.append((f"{g}-{short_name(fin)}in", {"model": g, "inputs": fin}))
    if wanted is not None:
        cands = [(n, kw) for n, kw in cands if n in wanted]
    return cands


def run_candidate(a, b, kw: dict, out: str, c=None, scale_a=None, scale_b=None,
                  cache: Optional[dict] = None) -> np.ndarray:
    """float64 values of one GEMM candidate, rounded into ``out`` (RNE).

    Args:
        a, b: inputs as arrays of their formats' numpy / ml_dtypes dtypes.
        kw: the candidate's keyword arguments (see :func:`gemm_candidates`): those of
            :func:`lowprec.matmul`, ``lanes`` for :func:`lanes_matmul`, or ``dequant``
            (the inputs times their scales first, then fp32).
        out: format the result is rounded to.
        c: optional float32 addend.
        scale_a, scale_b: scales applied as :func:`lowprec.matmul` applies them.
        cache: a dict shared by the candidates of one op: GPU models with equal block
            models (e.g. a100, a2, a30) give equal results and are computed once.

    Returns:
        float64 array of values of ``out``.
    """
    key = None
    if cache is not None and kw.get("model"):
        blk = select_block(kw["model"], kw.get("inputs") or format_of(a), kw.get("out", _F32))
        key = (blk, id(a), id(b), id(c), scale_a, scale_b, out)
        if key in cache:
            return cache[key]
    if "lanes" in kw:
        r = lanes_matmul(a, b, kw["lanes"], c, scale_a, scale_b)
    elif kw.get("dequant"):
        da, db = (x.astype(np.float32) if s is None else
                  (x.astype(np.float32) * np.float32(s)).astype(np.float32)
                  for x, s in ((a, scale_a), (b, scale_b)))
        r = np.asarray(matmul(da, db, c=c), np.float32)
    else:
        r = np.asarray(matmul(a, b, c=c, scale_a=scale_a, scale_b=scale_b, **kw), np.float32)
    res = quantize(r.astype(np.float64), out)
    if key is not None:
        cache[key] = res
    return res


def lanes_matmul(a, b, lanes: int, c=None, scale_a=None, scale_b=None) -> np.ndarray:
    """float32 ``c + a @ b`` with ``lanes`` interleaved fp32 accumulators (product k into
    accumulator k mod lanes, c starting accumulator 0), summed in order; then the scales
    as :func:`lowprec.matmul` applies them ((r * scale_a) * scale_b, fp32 RNE each)."""
    # lanes beyond K would only add +0 sums (turning a -0 result into +0)
    lanes = max(1, min(int(lanes), a.shape[-1]))
    return np.asarray(matmul(a, b, c=c, scale_a=scale_a, scale_b=scale_b, lanes=lanes),
                      np.float32)


def format_of(arr: np.ndarray) -> str:
    """The lowprec name of an array's numpy / ml_dtypes dtype."""
    return get_format(arr.dtype).name
