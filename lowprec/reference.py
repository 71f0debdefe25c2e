"""Slow, obviously-correct reference conversions with exact rational arithmetic.

Everything here works on :class:`fractions.Fraction` and Python integers, one value at a
time, straight from the definitions in REFERENCE.md: find the two neighbours of |x| on
the format's grid, pick one by the rounding rule, then apply the overflow, flush and
special-value rules. The numba kernels are tested against these functions bit for bit,
stochastic rounding included (the random stream is mirrored in pure Python).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional, Union

from .formats import FixedFormat, FloatFormat, Format, get_format
from .rounding import NaNPolicy, Overflow, Rounding, parse_nan_policy, parse_overflow, parse_rounding

__all__ = ["rand64", "encode_exact", "decode_exact", "round_exact", "neighbours", "floor_log2"]

_MASK = (1 << 64) - 1
Number = Union[float, int, Fraction]


def _mix(z: int) -> int:
    z &= _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def rand64(key: int, idx: int, word: int) -> int:
    """Pure-Python twin of the kernels' counter-based generator."""
    z = _mix(key ^ ((word * 0xD1B54A32D192ED03) & _MASK))
    return _mix(z + ((idx * 0x9E3779B97F4A7C15) & _MASK))


def floor_log2(a: Fraction) -> int:
    """Exact floor(log2(a)) for a > 0 (never through floating point)."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    if Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def _pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def _quantum(a: Fraction, fmt: Format) -> int:
    """Exponent q of the grid spacing 2^q around the positive value a."""
    if isinstance(fmt, FixedFormat):
        return -fmt.frac_bits
    e = floor_log2(a)
    if e < fmt.emin and not fmt.subnormals:
        return fmt.emin  # grid {0, 2^emin} (just 2^emin without a zero)
    return max(e, fmt.emin) - fmt.man_bits


def neighbours(a: Fraction, fmt: Format) -> tuple[Fraction, Fraction]:
    """The grid points lo <= a < hi around a positive value (exponent range unbounded above).

    Returns:
        (lo, hi) with hi - lo the local spacing; lo == a when a is on the grid.
    """
    q = _quantum(a, fmt)
    k = math.floor(a / _pow2(q))
    return k * _pow2(q), (k + 1) * _pow2(q)


def _stream_less(frac: Fraction, key: int, idx: int) -> bool:
    # U < frac, U = 0.w0 w1 w2 ... read lazily from the stream.
    n = 0
    t = 0
    while True:
        t = (t << 64) | rand64(key, idx, n)
        n += 1
        scaled = frac * _pow2(64 * n)
        f = math.floor(scaled)
        if t < f:
            return True
        if t > f or scaled == f:
            return False


def _round_up(frac: Fraction, k: int, mode: Rounding, neg: bool, sr_bits: int, key: int,
              idx: int) -> bool:
    """Whether |x| = (k + frac) * 2^q rounds to k + 1 rather than k (0 < frac < 1)."""
    if mode is Rounding.RNE:
        return frac > Fraction(1, 2) or (frac == Fraction(1, 2) and k % 2 == 1)
    if mode is Rounding.RNA:
        return frac >= Fraction(1, 2)
    if mode is Rounding.RTZ:
        return False
    if mode is Rounding.RUP:
        return not neg
    if mode is Rounding.RDN:
        return neg
    if mode is Rounding.SR:
        if sr_bits:
            h = math.floor(frac * (1 << sr_bits))
            r = rand64(key, idx, 0) >> (64 - sr_bits)
            return h + r >= (1 << sr_bits)
        return _stream_less(frac, key, idx)
    raise AssertionError(mode)


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
def _codes(f: FloatFormat):
    m = f.man_bits
    expmask = (1 << f.exp_bits) - 1
    signbit = (1 << (f.bits - 1)) if f.signed else 0
    maxcode = ((f.emax + f.bias) << m) | (f.max_significand - (1 << m))
    return m, expmask, signbit, maxcode


def _nan_code(f: FloatFormat, neg: bool, nanp: NaNPolicy) -> int:
    m, expmask, signbit, maxcode = _codes(f)
    if f.nan == "ieee":
        c = (expmask << m) | (1 << (m - 1))
        return c | (signbit if neg else 0)
    if f.nan == "all_ones":
        return (expmask << m) | ((1 << m) - 1) | (signbit if neg else 0)
    if f.nan == "neg_zero":
        return signbit
    if nanp is NaNPolicy.RAISE:
        raise ValueError(f"NaN input but {f.name} has no NaN code")
    if nanp is NaNPolicy.MAX:
        return maxcode
    if nanp is NaNPolicy.ML_DTYPES:
        return 0 if neg else signbit
    return 0


def _signed(code: int, f: FloatFormat, neg: bool) -> int:
    return code | ((1 << (f.bits - 1)) if neg and f.signed else 0)


def _zero_code(f: FloatFormat, neg: bool) -> int:
    if f.nan == "neg_zero":
        return 0
    return _signed(0, f, neg)


def _max_or_special(f: FloatFormat, neg: bool, special: bool) -> int:
    m, expmask, signbit, maxcode = _codes(f)
    if special:
        if f.has_inf:
            return _signed(expmask << m, f, neg)
        if f.has_nan:
            return _nan_code(f, neg, NaNPolicy.ZERO)
    return _signed(maxcode, f, neg)


def _value_code(v: Fraction, f: FloatFormat, neg: bool) -> int:
    m = f.man_bits
    e = floor_log2(v)
    if e < f.emin:
        mant = v / _pow2(f.emin - m)
        assert mant.denominator == 1 and f.subnormals
        return _signed(int(mant), f, neg)
    sig = v / _pow2(e - m)
    assert sig.denominator == 1
    return _signed(((e + f.bias) << m) | (int(sig) - (1 << m)), f, neg)


def _encode_float(x, f: FloatFormat, mode, ovf, ftz, nanp, sr_bits, key, idx) -> int:
    if isinstance(x, float) and math.isnan(x):
        return _nan_code(f, math.copysign(1.0, x) < 0, nanp)
    if isinstance(x, float) and math.isinf(x):
        neg = x < 0
        if neg and not f.signed:
            return _nan_code(f, False, NaNPolicy.ZERO) if f.has_nan else 0
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
        return _nan_code(f, False, NaNPolicy.ZERO) if f.has_nan else 0
    q = _quantum(a, f)
    t = a / _pow2(q)
    k = math.floor(t)
    frac = t - k
    directed_down = (mode is Rounding.RTZ or (mode is Rounding.RUP and neg)
                     or (mode is Rounding.RDN and not neg) or mode is Rounding.RTO)
    if frac:
        if mode is Rounding.RTO:
            k |= 1
        elif _round_up(frac, k, mode, neg, sr_bits, key, idx):
            k += 1
    v = k * _pow2(q)
    if v == 0:
        if not f.zero:
            return 0  # smallest value of a format without zero
        return _zero_code(f, neg)
    if v > f.max_exact:
        if ovf is Overflow.SATURATE or directed_down:
            return _signed(_codes(f)[3], f, neg)
        return _max_or_special(f, neg, True)
    if ftz and v < _pow2(f.emin):
        return _zero_code(f, neg)
    if v < _pow2(f.emin) and not f.subnormals:
        v = _pow2(f.emin)
    return _value_code(v, f, neg)


def decode_exact(code: int, fmt) -> Number:
    """Exact value of a code: a Fraction, or a float for NaN, +-inf and -0."""
    f = get_format(fmt)
    code = int(code) & ((1 << f.bits) - 1)
    if isinstance(f, FixedFormat):
        if f.signed and code >= 1 << (f.bits - 1):
            code -= 1 << f.bits
        return Fraction(code) * _pow2(-f.frac_bits)
    m, expmask, signbit, maxcode = _codes(f)
    neg = bool(code & signbit) if f.signed else False
    mag = code & ~signbit if f.signed else code
    ef, mf = mag >> m, mag & ((1 << m) - 1)
    if f.nan == "ieee" and ef == expmask:
        return math.nan if mf else (-math.inf if neg else math.inf)
    if f.nan == "all_ones" and mag == (expmask << m) | ((1 << m) - 1):
        return math.nan
    if f.nan == "neg_zero" and code == signbit:
        return math.nan
    if ef == 0 and f.zero:
        v = Fraction(mf) * _pow2(f.emin - m) if f.subnormals else Fraction(0)
    else:
        v = Fraction((1 << m) | mf) * _pow2(ef - f.bias - m)
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
    t = a / _pow2(q)
    k = math.floor(t)
    frac = t - k
    if frac:
        if mode is Rounding.RTO:
            k |= 1
        elif _round_up(frac, k, mode, neg, sr_bits, key, idx):
            k += 1
    v = -k if neg else k
    if v > f.max_int or v < f.min_int:
        if ovf is Overflow.WRAP:
            return v & mask
        v = f.max_int if v > f.max_int else f.min_int
    return v & mask
