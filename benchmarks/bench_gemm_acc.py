#!/usr/bin/env python3
"""lowprec.matmul's exact accumulation modes against numpy's float32 matmul (sgemm).

Square GEMMs of bf16 operands (LPArrays built before timing, so the input rounding is not
timed), n = 512 (256 with --quick). Each row times one accumulation mode interleaved with
numpy's float32 matmul of the same size and reports GFLOP/s (2 n^3 / time) and the speed
ratio. Targets: >= 0.02x sgemm for the exact modes (accumulator fp16 / bf16 / e4m3 with
rne, rtz or stochastic rounding, the product rounded first, chunked promotion), >= 0.25x
for the fp32 fused multiply-add kernel.

Usage: python benchmarks/bench_gemm_acc.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Context, Row, compare, set_threads, module_main  # noqa: E402

GROUP = "exact GEMM accumulation vs numpy float32 sgemm"

#: (row name, matmul keyword arguments, target ratio)
CASES = [(f"bf16 in, {acc} acc, {rnd}", dict(acc=acc, acc_rounding=rnd, seed=1), 0.02)
         for acc in ("fp16", "bf16", "e4m3") for rnd in ("rne", "rtz", "sr")] + [
    ("bf16 in, fp16 acc, rne, fma=False", dict(acc="fp16", fma=False), 0.02),
    ("bf16 in, bf16 acc, rne, chunk=32", dict(acc="bf16", chunk=32), 0.02),
    ("bf16 in, fp32 acc, fma", dict(acc="fp32"), 0.25),
    ("fp32 in, fp32 acc, fma", dict(acc="fp32", fp32_inputs=True), 0.25),
]


def rows(ctx: Context) -> list:
    import lowprec
    from lowprec.lparray import array as lparray

    n = 256 if ctx.quick else 512
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    a16, b16 = lparray(a, "bf16"), lparray(b, "bf16")
    th = max(ctx.threads)
    set_threads(th)
    out = []
    for name, kw, target in CASES:
        kw = dict(kw)
        x, y = (a, b) if kw.pop("fp32_inputs", False) else (a16, b16)
        ours, peer, ratio = compare(lambda: lowprec.matmul(x, y, **kw), lambda: a @ b,
                                    rounds=3 if ctx.quick else 5)
        gf = 2.0 * n ** 3 / 1e9
        out.append(Row(GROUP, f"{name}, n={n}", gf / ours, "numpy float32 matmul", gf / peer,
                       "GFLOP/s", ratio, target, note=f"{th} numba threads"))
    return out


def main(argv=None) -> int:
    return module_main(rows, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
