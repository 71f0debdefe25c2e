#!/usr/bin/env python3
"""Sweep all 2^32 float32 bit patterns through lowprec.encode and an oracle.

RNE is compared with ml_dtypes (numpy for float16). Directed modes (rtz, rup, rdn) are
compared with a value derived from the oracle's RNE result: when RNE lands on the wrong
side of x, the directed answer is the grid neighbour one code away. Known ml_dtypes
deviations (documented in README.md) are excluded and counted separately.

Usage: python scripts/sweep_float32.py [--formats a,b] [--modes rne,rdn] [--stride N]
"""

from __future__ import annotations

import argparse
import sys
import time

import ml_dtypes
import numpy as np
from packaging.version import Version

import lowprec as lp
from lowprec.testing import ordinal

# every registered float format of at most 16 bits that numpy or ml_dtypes implements
ORACLE_FORMATS = [f.name for f in lp.list_formats()
                  if isinstance(f, lp.FloatFormat) and f.bits <= 16
                  and (f.name == "float16" or hasattr(ml_dtypes, f.name))]


def _oracle_codes(x: np.ndarray, name: str) -> np.ndarray:
    f = lp.get_format(name)
    if name == "float16":
        dt = np.float16
    else:
        dt = getattr(ml_dtypes, name)
    with np.errstate(all="ignore"):
        return x.astype(dt).view(f.code_dtype)


def _known_deviation(x: np.ndarray, name: str) -> np.ndarray:
    # ml_dtypes before 0.7.0 rounds these float32 subnormals up to 2^-126; 0.7.0 fixed it
    if name == "float8_e8m0fnu" and Version(ml_dtypes.__version__) < Version("0.7.0"):
        a = np.abs(x)
        return (a > 2.0 ** -127) & (a < 1.5 * 2.0 ** -127)
    return np.zeros(x.shape, bool)


def _step(codes: np.ndarray, f, direction: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Codes one grid step up (+1) or down (-1) along the number line; a zero reached
    this way takes the sign of the input (IEEE: rounding -tiny toward +inf gives -0)."""
    o = ordinal(codes, f) + direction
    if f.signed:
        sb = 1 << (f.bits - 1)
        neg_zero = (o == 0) & negative & (f.nan != "neg_zero")
        return np.where((o < 0) | neg_zero, sb | np.abs(o), o).astype(f.code_dtype)
    return o.astype(f.code_dtype)


def expected_directed(x: np.ndarray, name: str, mode: str) -> np.ndarray:
    """Directed-mode codes derived from the oracle's RNE result (finite, in-range x)."""
    f = lp.get_format(name)
    c = _oracle_codes(x, name)
    v = lp.decode(c, f, dtype=np.float64)
    with np.errstate(over="ignore"):
        xd = x.astype(np.float64)
    want_down = {"rdn": np.ones(x.shape, bool), "rup": np.zeros(x.shape, bool),
                 "rtz": xd > 0}[mode]
    wrong = np.where(want_down, v > xd, v < xd)
    return np.where(wrong, _step(c, f, np.where(want_down, -1, 1), xd < 0), c)


def sweep(name: str, mode: str = "rne", stride: int = 1, chunk: int = 1 << 24,
          progress: bool = True) -> tuple[int, int, int]:
    """Compare lowprec with the oracle on every stride-th float32 pattern.

    Returns:
        (checked, mismatches, known_deviations)
    """
    f = lp.get_format(name)
    kw = {} if f.has_nan else {"nan": "ml_dtypes"}
    checked = bad = known = 0
    total = len(range(0, 1 << 32, stride))
    it = range(0, 1 << 32, chunk * stride)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"{name} {mode}", unit="chunk", file=sys.stderr, leave=False)
    for start in it:
        pats = np.arange(start, min(start + chunk * stride, 1 << 32), stride,
                         dtype=np.uint64).astype(np.uint32)
        x = pats.view(np.float32)
        got = lp.encode(x, f, rounding=mode, **kw)
        if mode == "rne":
            exp = _oracle_codes(x, name)
            keep = ~_known_deviation(x, name)
        else:
            keep = np.isfinite(x) & (np.abs(x) <= f.max) & ~_known_deviation(x, name)
            if not f.signed:
                keep &= x > 0
            if not f.zero:  # no grid point below the smallest value: lowprec clamps there
                keep &= np.abs(x) >= f.min_normal
            exp = expected_directed(x, name, mode)
        if f.has_nan:  # NaN payloads differ by design: compare NaN as NaN
            nan_got = np.isnan(lp.decode(got, f))
            nan_exp = np.isnan(lp.decode(exp, f))
            diff = (got != exp) & ~(nan_got & nan_exp)
        else:
            diff = got != exp
        known += int((~keep).sum())
        bad += int((diff & keep).sum())
        checked += int(keep.sum())
        if bad and progress:
            i = np.flatnonzero(diff & keep)[0]
            print(f"mismatch {name} {mode}: x={x[i]!r} got 0x{int(got[i]):x} "
                  f"expected 0x{int(exp[i]):x}", file=sys.stderr)
            break
    assert checked + known == total or bad
    return checked, bad, known


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formats", default=",".join(ORACLE_FORMATS))
    ap.add_argument("--modes", default="rne,rtz,rup,rdn")
    ap.add_argument("--stride", type=int, default=1)
    args = ap.parse_args(argv)
    failed = False
    for name in args.formats.split(","):
        for mode in args.modes.split(","):
            t = time.time()
            checked, bad, known = sweep(name, mode, args.stride)
            failed |= bad > 0
            print(f"{name:16s} {mode}: {checked:>11,d} checked, {bad} mismatches, "
                  f"{known:,d} excluded (known oracle deviations / outside the check), "
                  f"{time.time() - t:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
