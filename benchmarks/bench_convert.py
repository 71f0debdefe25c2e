#!/usr/bin/env python3
"""Conversion throughput: float32 -> bf16, fp16, e4m3fn, e5m2, e2m1 (10M elements).

lowprec encode (RNE and SR) against ml_dtypes ``astype``, torch ``.to()`` (when installed),
gfloat ``round_ndarray`` (on a slice: it is slow) and a plain memory copy as the ceiling,
all in one run. Prints M elements/s and the ratios the project aims at:
RNE >= 5x ml_dtypes for fp8, >= 0.5x ml_dtypes for bf16/fp16; SR >= 0.5x lowprec RNE.

Usage: python benchmarks/bench_convert.py [--n 10000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import lowprec as lp

TARGETS = ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn"]


def best_rate(fn, n: int, repeat: int) -> float:
    """Best-of-`repeat` throughput of fn() in M elements/s (after one warm-up call)."""
    fn()
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best / 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gfloat-n", type=int, default=100_000)
    args = ap.parse_args(argv)
    n = args.n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n))).astype(np.float32)

    try:
        import ml_dtypes
    except ImportError:
        ml_dtypes = None
    try:
        import torch

        tx = torch.from_numpy(x)
    except ImportError:
        torch = None
    try:
        import gfloat
        from gfloat import formats as gff
    except ImportError:
        gfloat = None

    dst = np.empty_like(x)
    copy = best_rate(lambda: np.copyto(dst, x), n, args.repeat)
    import numba

    print(f"float32 -> format, {n / 1e6:.0f}M elements, best of {args.repeat}, "
          f"{numba.get_num_threads()} numba threads. Memory copy: {copy:.0f} M/s\n")
    head = (f"{'format':15s} {'lowprec RNE':>12s} {'lowprec SR':>11s} {'SR r=8':>8s} "
            f"{'ml_dtypes':>10s} {'torch':>8s} {'gfloat':>8s}  {'RNE/ml':>7s} "
            f"{'SR/RNE':>7s} {'RNE/torch':>9s} {'RNE/copy':>8s}")
    print(head)
    print("-" * len(head))
    gmap = {"bfloat16": "format_info_bfloat16", "float16": "format_info_binary16",
            "float8_e4m3fn": "format_info_ocp_e4m3", "float8_e5m2": "format_info_ocp_e5m2",
            "float4_e2m1fn": "format_info_ocp_e2m1"}
    for name in TARGETS:
        f = lp.get_format(name)
        rne = best_rate(lambda: lp.encode(x, f), n, args.repeat)
        sr = best_rate(lambda: lp.encode(x, f, rounding="sr", seed=1), n, args.repeat)
        sr8 = best_rate(lambda: lp.encode(x, f, rounding="sr", sr_bits=8, seed=1), n,
                        args.repeat)
        ml = tr = gf = float("nan")
        if ml_dtypes is not None:
            dt = np.float16 if name == "float16" else getattr(ml_dtypes, name)
            with np.errstate(all="ignore"):
                ml = best_rate(lambda: x.astype(dt), n, args.repeat)
        if torch is not None and hasattr(torch, name):
            tdt = getattr(torch, name)
            tr = best_rate(lambda: tx.to(tdt), n, args.repeat)
        if gfloat is not None:
            fi = getattr(gff, gmap[name])
            xs = x[: args.gfloat_n].astype(np.float64)
            with np.errstate(all="ignore"):
                gf = best_rate(lambda: gfloat.round_ndarray(fi, xs, sat=True), xs.size, 1)
        print(f"{name:15s} {rne:12.0f} {sr:11.0f} {sr8:8.0f} {ml:10.0f} {tr:8.0f} {gf:8.1f}  "
              f"{rne / ml:7.2f} {sr / rne:7.2f} {rne / tr:9.2f} {rne / copy:8.2f}")
    print("\nM elements/s; ratios: RNE/ml = lowprec RNE over ml_dtypes astype; SR/RNE = exact SR "
          "over RNE; gfloat measured on a float64 slice of "
          f"{args.gfloat_n} elements (round_ndarray, no encoding).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
