"""Micikevicius et al. 2022: fp8 training (E4M3 forward, E5M2 gradients, per-tensor scales)
matches a 16-bit baseline."""

from __future__ import annotations

from .base import Claim, Reproduction
from .common import diff, metric, pct, run_variants, within

MARGIN = 0.01


def run(seeds, workers=0, scheduler=None, progress=False, quick=False, out=None):
    params = {"epochs": 2 if quick else 30}
    r = run_variants({"bf16": ("bf16", {}), "fp8 current scaling": ("fp8-current", {}),
                      "fp8 delayed scaling": ("fp8-delayed", {})}, seeds, params,
                     workers=workers, scheduler=scheduler, progress=progress, out=out)
    base = r["bf16"]
    claims = []
    for name in ("fp8 current scaling", "fp8 delayed scaling"):
        d = diff(r[name], base)
        claims.append(Claim(
            claim=f"{name} (E4M3 forward, E5M2 gradients) matches the bf16 baseline (within "
                  f"1 point)",
            paper="fp8 training with E4M3 weights/activations, E5M2 gradients and per-tensor "
                  "scales matches the 16-bit baselines' accuracy (image, language and "
                  "translation models)",
            measured={"bf16": pct(metric(base)), name: pct(metric(r[name])),
                      "fp8 - bf16": pct(d), "saturated": pct(metric(r[name],
                                                                    "saturated_fraction"), 3),
                      "diff_text": f"{name} - bf16 = {pct(d)}", "low": d.low,
                      "high": d.high},
            holds=within(d, MARGIN),
            why="the interval of the paired difference lies within +-1 point"))
    return claims


REPRODUCTION = Reproduction(
    name="micikevicius2022",
    title="Micikevicius et al. 2022, FP8 Formats for Deep Learning",
    citation="P. Micikevicius et al., arXiv:2209.05433",
    setup="the study's MLP on the UCI digits at its defaults; every GEMM's activations and "
          "weights in E4M3 and output gradients in E5M2 with per-tensor scales (Transformer "
          "Engine's current and delayed scaling), fp32 accumulation, fp32 master weights; "
          "bf16 baseline (bf16 GEMM inputs, fp32 accumulation)",
    differences="the paper trains large vision and language models on GPUs; here a small "
                "MLP, with fp32 accumulation instead of a tensor-core model",
    run=run)
