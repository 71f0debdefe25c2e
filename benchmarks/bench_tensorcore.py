#!/usr/bin/env python3
"""Tensor-core models (``lowprec.matmul(..., model=...)``) against numpy's float32 matmul.

One row per model path: square n x n GEMMs (n = 1024; 256 with --quick) of standard normal
data rounded to the path's input format before timing (LPArrays), c = 0, fp32 output. The
peer is numpy's float32 matmul (BLAS) of the same size, timed interleaved in the same run;
the target is a speed ratio >= 0.1 (issue 12). GFLOP/s counts 2 n^3 flops.

Usage: python benchmarks/bench_tensorcore.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Context, Row, compare, set_threads, table, module_main  # noqa: E402

GROUP = "tensor-core model GEMM vs numpy float32 matmul"

#: (GPU model, input format) of the issue's table row.
PATHS = (("h100", "e4m3"), ("h100", "bf16"), ("b200", "e4m3"), ("a100", "bf16"),
         ("a100", "fp16"))


def rows(ctx: Context) -> list:
    import lowprec
    from lowprec.lparray import array as lparray

    n = 256 if ctx.quick else 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    flops = 2.0 * n ** 3
    out = []
    threads = ctx.threads[-1:] if ctx.quick else ctx.threads
    for th in threads:
        set_threads(th)
        for gpu, fmt in PATHS:
            la, lb = lparray(a, fmt), lparray(b, fmt)
            ours, peer, ratio = compare(lambda: lowprec.matmul(la, lb, model=gpu),
                                        lambda: a @ b, rounds=3 if ctx.quick else 5,
                                        min_time=0.02 if ctx.quick else 0.05)
            out.append(Row(GROUP, f"{gpu} {fmt}->fp32, n={n}, {th} thread(s)",
                           flops / ours / 1e9, "numpy float32 matmul", flops / peer / 1e9,
                           "GFLOP/s", ratio, 0.1))
    return out


def main(argv=None) -> int:
    return module_main(rows, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
