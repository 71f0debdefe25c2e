#!/usr/bin/env python3
"""Element-wise arithmetic (issue 12, row 5): lowprec add/mul/fma/div/sqrt in bf16, fp16 and
e4m3fn, RNE and stochastic rounding, against the naive emulation a user would write: the
numpy operation in float32 (fma in float64) followed by an ml_dtypes cast (numpy's own cast
for float16). The naive emulation is what ml_dtypes users do; it is not correctly rounded
for fma in every case and has no stochastic rounding (the SR rows compare with the same RNE
emulation). Target: lowprec >= 0.5x the naive emulation, with 1 and 2 numba threads.

Usage: python benchmarks/bench_arith.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Context, Row, compare, set_threads, module_main  # noqa: E402

GROUP = "element-wise arithmetic vs numpy op + ml_dtypes cast"
FORMATS = {"bfloat16": "bfloat16", "float16": None, "float8_e4m3fn": "float8_e4m3fn"}


def _operands(fmt: str, n: int, seed: int = 0) -> list:
    """Three float32 arrays of values of fmt (positive for sqrt's sake in the third)."""
    import lowprec as lp

    rng = np.random.default_rng(seed)
    return [lp.quantize(rng.standard_normal(n).astype(np.float32), fmt).astype(np.float32)
            for _ in range(3)]


def _peer(op: str, fmt: str, x, y, z):
    import ml_dtypes

    dt = np.float16 if FORMATS[fmt] is None else getattr(ml_dtypes, FORMATS[fmt])
    ax = np.abs(x)
    if op == "add":
        return lambda: np.add(x, y).astype(dt)
    if op == "mul":
        return lambda: np.multiply(x, y).astype(dt)
    if op == "div":
        return lambda: np.divide(x, y).astype(dt)
    if op == "sqrt":
        return lambda: np.sqrt(ax).astype(dt)
    x64, y64, z64 = (a.astype(np.float64) for a in (x, y, z))
    return lambda: (x64 * y64 + z64).astype(dt)


def _ours(op: str, fmt: str, x, y, z, rounding: str):
    import lowprec as lp

    kw = dict(rounding=rounding, seed=1) if rounding == "sr" else {}
    if fmt == "float8_e4m3fn":
        kw["overflow"] = "saturate"
    ax = np.abs(x)
    if op == "sqrt":
        return lambda: lp.sqrt(ax, fmt, **kw)
    if op == "fma":
        return lambda: lp.fma(x, y, z, fmt, **kw)
    return lambda: getattr(lp, op)(x, y, fmt, **kw)


def rows(ctx: Context) -> list:
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return [Row(GROUP, "all", None, "ml_dtypes", None, "M/s", note="ml_dtypes missing")]
    n = 1 << (18 if ctx.quick else 21)
    if ctx.quick:
        cases = [("bfloat16", op, "rne") for op in ("add", "mul", "fma", "div", "sqrt")] + \
                [("bfloat16", "add", "sr"), ("float16", "mul", "rne"),
                 ("float8_e4m3fn", "add", "rne"), ("float8_e4m3fn", "mul", "sr")]
    else:
        cases = [(f, op, r) for f in FORMATS for r in ("rne", "sr")
                 for op in ("add", "mul", "fma", "div", "sqrt")]
    out = []
    data = {f: _operands(f, n) for f in {c[0] for c in cases}}
    for th in ctx.threads:
        set_threads(th)
        for fmt, op, rnd in cases:
            x, y, z = data[fmt]
            ours, peer, ratio = compare(_ours(op, fmt, x, y, z, rnd), _peer(op, fmt, x, y, z),
                                        rounds=3 if ctx.quick else 5,
                                        min_time=0.02 if ctx.quick else 0.05)
            out.append(Row(GROUP, f"{op} {fmt} {rnd.upper()}, {th} thread(s)", n / ours / 1e6,
                           "numpy float32 op + ml_dtypes cast" + (" (fma in float64)"
                                                                   if op == "fma" else ""),
                           n / peer / 1e6, "M/s", ratio, 0.5,
                           note=f"{n} float32 operands, float32 results" +
                           ("; peer rounds RNE (no SR in ml_dtypes)" if rnd == "sr" else "")))
    return out


def main(argv=None) -> int:
    return module_main(rows, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
