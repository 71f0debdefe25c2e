#!/usr/bin/env python3
"""Conversion speed: float32 -> e4m3fn, e5m2, e2m1, bf16, fp16 (RNE) against ml_dtypes.

Rows (issue 12, conversion rows): lowprec.encode against ml_dtypes ``astype`` per format
with 1 and 2 numba threads (targets: fp8/fp4 >= 3x, bf16 >= 1x, fp16 >= 2x; numpy's own
float16 cast is the peer for fp16); quantize (values out) against encode (codes out),
target >= 0.8x; the cost of one call on 100 elements against ml_dtypes and against the
3 us target. Times are interleaved with the peer (harness.compare), so the ratios hold on
a loaded machine even when the absolute figures do not.

Usage: python benchmarks/bench_convert.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Context, Row, compare, set_threads, table, module_main  # noqa: E402

import lowprec as lp  # noqa: E402

# format -> (ml_dtypes name or None for numpy's float16, target ratio)
FORMATS = {
    "float8_e4m3fn": ("float8_e4m3fn", 3.0),
    "float8_e5m2": ("float8_e5m2", 3.0),
    "float4_e2m1fn": ("float4_e2m1fn", 3.0),
    "bfloat16": ("bfloat16", 1.0),
    "float16": (None, 2.0),
}
CALL_TARGET_US = 3.0


def _data(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n))).astype(np.float32)


def _peer_dtype(name: str):
    ml, _ = FORMATS[name]
    if ml is None:
        return np.float16, "numpy astype"
    try:
        import ml_dtypes
    except ImportError:
        return None, "ml_dtypes (not installed)"
    return getattr(ml_dtypes, ml), "ml_dtypes astype"


def rows(ctx: Context) -> list:
    """The conversion rows of the benchmark table."""
    import numba

    n = 1 << (19 if ctx.quick else 22)
    kw = dict(rounds=3 if ctx.quick else 5, min_time=0.01 if ctx.quick else 0.05)
    x = _data(n)
    out = []
    old = numba.get_num_threads()
    try:
        for name, (_, target) in FORMATS.items():
            f = lp.get_format(name)
            dt, peer_name = _peer_dtype(name)

            def peer(dt=dt):
                with np.errstate(all="ignore"):
                    return x.astype(dt)

            for threads in ctx.threads:
                set_threads(threads)
                t, tp, r = compare(lambda: lp.encode(x, f), peer if dt is not None else None,
                                   **kw)
                out.append(Row("conversion vs ml_dtypes", f"float32 -> {name}, {threads} thr",
                               n / t / 1e6, peer_name, None if tp is None else n / tp / 1e6,
                               "M/s", r, target if threads == 1 else None,
                               note=f"{n} elements, RNE; peer single-threaded"))
        set_threads(1)
        for name in ("float8_e4m3fn", "bfloat16"):
            f = lp.get_format(name)
            t, tp, r = compare(lambda: lp.quantize(x, f), lambda: lp.encode(x, f), **kw)
            out.append(Row("quantize vs encode", f"quantize {name}, 1 thr", n / t / 1e6,
                           "lowprec encode", n / tp / 1e6, "M/s", r, 0.8,
                           note="float32 values out vs codes out"))
    finally:
        numba.set_num_threads(old)

    xs = _data(100)
    dt, peer_name = _peer_dtype("float8_e4m3fn")
    for what, fn in (("quantize", lambda: lp.quantize(xs, "e4m3")),
                     ("encode", lambda: lp.encode(xs, "e4m3"))):
        t, tp, r = compare(fn, (lambda: xs.astype(dt)) if dt is not None else None, **kw)
        out.append(Row("call cost, 100 elements", f"{what} e4m3", t * 1e6, peer_name,
                       None if tp is None else tp * 1e6, "us/call", r, None,
                       lower_is_better=True, note="informative: ratio = peer time / ours"))
        out.append(Row("call cost, 100 elements", f"{what} e4m3 vs target", t * 1e6,
                       "target", CALL_TARGET_US, "us/call", CALL_TARGET_US / (t * 1e6), 1.0,
                       lower_is_better=True,
                       note=f"target <= {CALL_TARGET_US:g} us (absolute: needs a quiet machine)"))
    return out


def main(argv=None) -> int:
    return module_main(rows, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
