"""GEMM throughput of lowprec.matmul's accumulation modes against numpy's float32 matmul.

Not a test: prints GFLOP/s (2*M*N*K / best time) and the ratio to numpy (OpenBLAS) measured
in the same run. Operands are LPArrays built before timing (the input
rounding is not timed). The exact-rounding modes (fp16 accumulation, SR) take one call per
element per step and are slow; at the larger sizes they are timed once.
Usage: python benchmarks/bench_gemm.py [sizes...]  (default 256 512 1024).
"""

from __future__ import annotations

import sys
import time

import numpy as np

import lowprec
from lowprec.lparray import array as lparray


def _best(fn, repeat: int, warm: bool) -> float:
    if warm:
        fn()  # warm-up (numba compilation / caches)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(sizes) -> None:
    rng = np.random.default_rng(0)
    print(f"{'size':>5} {'mode':<28} {'time s':>9} {'GFLOP/s':>9} {'vs numpy':>9}")
    for pos, n in enumerate(sizes):
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        # Operands are LPArrays made before timing, so the timings are of the GEMM, not of
        # rounding float32 inputs into the formats.
        a16, b16 = lparray(a, "bf16"), lparray(b, "bf16")
        a8, b8 = lparray(a, "e4m3"), lparray(b, "e4m3")
        ai = rng.integers(-128, 128, (n, n)).astype(np.int8)
        bi = rng.integers(-128, 128, (n, n)).astype(np.int8)
        slow_rep = 1 if n >= 1024 else 2
        cases = [
            ("numpy float32 (OpenBLAS)", lambda: a @ b, 5),
            ("bf16 in, fp32 acc", lambda: lowprec.matmul(a16, b16), 3),
            ("bf16 in, fp16 acc", lambda: lowprec.matmul(a16, b16, acc="fp16"),
             slow_rep),
            ("bf16 in, bf16 acc SR", lambda: lowprec.matmul(a16, b16, acc="bf16",
                                                            acc_rounding="sr", seed=1), slow_rep),
            ("e4m3 in, h100 model", lambda: lowprec.matmul(a8, b8, model="h100"),
             slow_rep),
            ("int8 in, int32 acc", lambda: lowprec.matmul(ai, bi), 3),
        ]
        base = None
        for name, fn, rep in cases:
            t = _best(fn, rep, warm=pos == 0 or rep > 1)
            gf = 2.0 * n ** 3 / t / 1e9
            base = base or gf
            print(f"{n:>5} {name:<28} {t:>9.4f} {gf:>9.2f} {gf / base:>9.3f}", flush=True)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [256, 512, 1024])
