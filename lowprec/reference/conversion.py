"""Exact reference conversions: one value at a time, straight from the definitions.

Find the two neighbours of |x| on the format's grid, pick one by the rounding rule, then
apply the overflow, flush and special-value rules; every code comes from the descriptor's
code facts. :func:`lowprec.encode` is tested against :func:`encode_exact` bit for bit,
stochastic rounding included.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional

from ..formats import FixedFormat, FloatFormat, Format, get_format
from ..rounding import NaNPolicy, Overflow, Rounding, parse_nan_policy, parse_overflow, parse_rounding
from .core import Number, floor_log2, pow2, quantum, round_up

__all__ = ["encode_exact", "decode_exact", "round_exact"]


def round_exact(x: Number, fmt, rounding="rne", overflow=None, subnormals=True,
                sr_bits: Optional[int] = None, key: int = 0, idx: int = 0) -> Number:
    """Round one exact value into a format and return the result as a value.

    Args:
        x: a float (NaN, inf and signed zero allowed), int or Fraction.
        fmt: format or name.
        rounding, overflow, subnormals, sr_bits: as :func:`lowprec.encode`.
        key, idx: generator key (see :func:`lowprec.quantize.seed_key`) and element index
            for stochastic rounding.

    Returns:
        A Fraction for finite results, or a float (+-inf, NaN, -0.0).
    """
    f = get_format(fmt)
    return decode_exact(encode_exact(x, f, rounding, overflow, subnormals, sr_bits, key, idx,
                                     nan="zero" if not f.has_nan else "raise"), f)


def encode_exact(x: Number, fmt, rounding="rne", overflow=None, subnormals=True,
                 sr_bits: Optional[int] = None, key: int = 0, idx: int = 0,
                 nan="raise") -> int:
    """Code of one value rounded into a format, computed with exact arithmetic.

    Same options and results as :func:`lowprec.encode` (which is tested against this).

    Raises:
        ValueError: NaN into a format without NaN under ``nan="raise"``.
    """
    f = get_format(fmt)
    mode = parse_rounding(rounding)
    ovf = parse_overflow(overflow) if overflow is not None else (
        Overflow.INF if isinstance(f, FloatFormat) else Overflow.SATURATE)
    nanp = parse_nan_policy(nan)
    if isinstance(f, FixedFormat):
        return _encode_fixed(x, f, mode, ovf, nanp, sr_bits or 0, key, idx)
    return _encode_float(x, f, mode, ovf, not subnormals, nanp, sr_bits or 0, key, idx)


# --- float formats -------------------------------------------------------------------
def _nan_code(f: FloatFormat, neg: bool, nanp: NaNPolicy) -> int:
    if not f.has_nan and nanp is NaNPolicy.RAISE:
        raise ValueError(f"NaN input but {f.name} has no NaN code")
    return f.nan_code_for(neg, nanp)


def _signed(code: int, f: FloatFormat, neg: bool) -> int:
    return code | (f.sign_bit if neg else 0)


def _zero_code(f: FloatFormat, neg: bool) -> int:
    return f.neg_zero_code if neg and f.neg_zero_code is not None else 0


def _max_or_special(f: FloatFormat, neg: bool, special: bool) -> int:
    if special:
        if f.has_inf:
            return _signed(f.inf_code, f, neg)
        if f.has_nan:
            return f.nan_code_for(neg)
    return _signed(f.max_code, f, neg)


def _value_code(v: Fraction, f: FloatFormat, neg: bool) -> int:
    m = f.man_bits
    e = floor_log2(v)
    if e < f.emin:
        mant = v / pow2(f.emin - m)
        assert mant.denominator == 1 and f.subnormals
        return _signed(int(mant), f, neg)
    sig = v / pow2(e - m)
    assert sig.denominator == 1
    return _signed(((e + f.bias) << m) | (int(sig) - (1 << m)), f, neg)


def _encode_float(x, f: FloatFormat, mode, ovf, ftz, nanp, sr_bits, key, idx) -> int:
    if isinstance(x, float) and math.isnan(x):
        return _nan_code(f, math.copysign(1.0, x) < 0, nanp)
    if isinstance(x, float) and math.isinf(x):
        neg = x < 0
        if neg and not f.signed:
            return f.nan_code_for(False) if f.has_nan else 0
        return _max_or_special(f, neg, ovf is not Overflow.SATURATE)
    if x == 0:
        if not f.zero:
            return _nan_code(f, False, nanp)
        neg = isinstance(x, float) and math.copysign(1.0, x) < 0
        return 0 if not f.signed else _zero_code(f, neg)
    a = Fraction(x)
    neg = a < 0
    a = abs(a)
    if neg and not f.signed:
        return f.nan_code_for(False) if f.has_nan else 0
    q = quantum(a, f)
    t = a / pow2(q)
    k = math.floor(t)
    frac = t - k
    directed_down = (mode is Rounding.RTZ or (mode is Rounding.RUP and neg)
                     or (mode is Rounding.RDN and not neg) or mode is Rounding.RTO)
    if frac:
        if mode is Rounding.RTO:
            k |= 1
        elif round_up(frac, k, mode, neg, sr_bits, key, idx):
            k += 1
    v = k * pow2(q)
    if v == 0:
        if not f.zero:
            return 0  # smallest value of a format without zero
        return _zero_code(f, neg)
    if v > f.max_exact:
        if ovf is Overflow.SATURATE or directed_down:
            return _signed(f.max_code, f, neg)
        return _max_or_special(f, neg, True)
    if ftz and v < pow2(f.emin):
        return _zero_code(f, neg)
    if v < pow2(f.emin) and not f.subnormals:
        v = pow2(f.emin)
    return _value_code(v, f, neg)


def decode_exact(code: int, fmt) -> Number:
    """Exact value of a code: a Fraction, or a float for NaN, +-inf and -0."""
    f = get_format(fmt)
    code = int(code) & ((1 << f.bits) - 1)
    if isinstance(f, FixedFormat):
        if f.signed and code >= 1 << (f.bits - 1):
            code -= 1 << f.bits
        return Fraction(code) * pow2(-f.frac_bits)
    m, signbit = f.man_bits, f.sign_bit
    neg = bool(code & signbit)
    mag = code & ~signbit
    ef, mf = mag >> m, mag & f.man_mask
    if f.is_nan_code(code):
        return math.nan
    if f.has_inf and mag == f.inf_code:
        return -math.inf if neg else math.inf
    if ef == 0 and f.zero:
        v = Fraction(mf) * pow2(f.emin - m) if f.subnormals else Fraction(0)
    else:
        v = Fraction((1 << m) | mf) * pow2(ef - f.bias - m)
    if v == 0 and neg:
        return -0.0
    return -v if neg else v


# --- fixed point ---------------------------------------------------------------------
def _encode_fixed(x, f: FixedFormat, mode, ovf, nanp, sr_bits, key, idx) -> int:
    mask = (1 << f.bits) - 1
    if isinstance(x, float) and math.isnan(x):
        if nanp is NaNPolicy.RAISE:
            raise ValueError(f"NaN input but {f.name} has no NaN code")
        return (f.max_int & mask) if nanp is NaNPolicy.MAX else 0
    if isinstance(x, float) and math.isinf(x):
        return (f.min_int if x < 0 else f.max_int) & mask
    a = Fraction(x)
    neg = a < 0
    a = abs(a)
    q = -f.frac_bits
    t = a / pow2(q)
    k = math.floor(t)
    frac = t - k
    if frac:
        if mode is Rounding.RTO:
            k |= 1
        elif round_up(frac, k, mode, neg, sr_bits, key, idx):
            k += 1
    v = -k if neg else k
    if v > f.max_int or v < f.min_int:
        if ovf is Overflow.WRAP:
            return v & mask
        v = f.max_int if v > f.max_int else f.min_int
    return v & mask
