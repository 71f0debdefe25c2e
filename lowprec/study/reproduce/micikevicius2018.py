"""Micikevicius et al. 2018: fp16 gradients fall below fp16's range without loss scaling;
scaling the loss brings them back and training matches fp32."""

from __future__ import annotations

from .base import Claim, Reproduction
from .common import diff, metric, pct, run_variants, within

MARGIN = 0.01
#: The loss is multiplied by 2^-SHIFT (and the learning rate by 2^SHIFT): fp32 trains
#: identically, while the gradients move down towards fp16's smallest subnormal 2^-24, as
#: the small activation gradients of the paper's SSD detector did.
SHIFT = 16


def run(seeds, workers=0, scheduler=None, progress=False, quick=False, out=None):
    params = {"epochs": 2 if quick else 30, "loss_shift": SHIFT}
    r = run_variants({"fp32": ("fp32", {}), "fp16": ("fp16", {}),
                      "fp16 + loss scaling": ("fp16-scaled", {})}, seeds, params,
                     workers=workers, scheduler=scheduler, progress=progress, out=out)
    base, f16, scaled = r["fp32"], r["fp16"], r["fp16 + loss scaling"]
    lost = metric(f16, "underflow_fraction")
    lost_scaled = metric(scaled, "underflow_fraction")
    d16, dsc = diff(f16, base), diff(scaled, base)
    return [
        Claim(claim="without loss scaling, a share of the fp16 gradients is lost (flushed "
                    "to zero) at the cast into fp16",
              paper="many activation gradients fall below fp16's smallest value 2^-24 (31 % "
                    "of the SSD detector's values were zero in fp16, Fig. 3)",
              measured={"gradient values flushed, fp16": pct(lost, 2),
                        "with loss scaling": pct(lost_scaled, 2),
                        "diff_text": f"flushed {pct(lost, 2)} without scaling, "
                                     f"{pct(lost_scaled, 2)} with"},
              holds=None if lost.n < 2 else lost.low > 0.01 and (
                  lost_scaled.n < 2 or lost_scaled.high < lost.low),
              why="the interval of the flushed share lies above 1 % and above the scaled "
                  "run's"),
        Claim(claim="without loss scaling, fp16 training falls below fp32",
              paper="SSD training diverges in fp16 without loss scaling",
              measured={"fp32": pct(metric(base)), "fp16": pct(metric(f16)),
                        "fp16 - fp32": pct(d16), "diff_text": f"fp16 - fp32 = {pct(d16)}",
                        "low": d16.low, "high": d16.high},
              holds=d16.below(0.0), why="the interval of fp16 - fp32 lies below 0"),
        Claim(claim="with loss scaling, fp16 training matches fp32 (within 1 point)",
              paper="with a loss scale of 8 SSD matches the fp32 baseline; dynamic scaling "
                    "needs no tuning",
              measured={"fp16 scaled": pct(metric(scaled)), "scaled - fp32": pct(dsc),
                        "diff_text": f"scaled - fp32 = {pct(dsc)}", "low": dsc.low,
                        "high": dsc.high},
              holds=within(dsc, MARGIN),
              why="the interval of the paired difference lies within +-1 point"),
    ]


REPRODUCTION = Reproduction(
    name="micikevicius2018",
    title="Micikevicius et al. 2018, Mixed Precision Training",
    citation="P. Micikevicius et al., ICLR 2018, arXiv:1710.03740",
    setup=f"the study's MLP on the UCI digits at its defaults, loss multiplied by 2^-{SHIFT} "
          f"(learning rate by 2^{SHIFT}, so fp32 is unchanged) to bring the gradients to "
          f"where SSD's were; fp16 GEMM inputs and activations with fp32 accumulation and "
          f"fp32 master weights, without and with dynamic loss scaling (GradScaler's "
          f"algorithm)",
    differences="the paper's evidence is SSD object detection (and many other networks) "
                "trained on GPUs; here a small MLP whose gradients are moved down by a "
                "constant factor instead of being small by nature",
    run=run)
