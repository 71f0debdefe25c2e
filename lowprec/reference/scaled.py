"""Slow, obviously-correct references for :mod:`lowprec.scaled` (exact rational arithmetic).

Used by the tests to check the vectorised code bit for bit. Everything here works on one
block (a Python sequence of floats) with ``fractions.Fraction``; the element value tables
are built from the format fields, not from :func:`lowprec.decode`.
"""

from __future__ import annotations

import bisect
import functools
import math
from fractions import Fraction

from ..formats import FixedFormat, FloatFormat, Format, float8_e8m0fnu
from .core import floor_log2

__all__ = ["element_table", "round_to_element", "floor_log2", "mx_block_reference",
           "int_code_reference"]


@functools.lru_cache(maxsize=None)
def element_table(fmt: Format) -> list[tuple[Fraction, int]]:
    """(value, code) for every non-negative finite value of ``fmt`` (sorted by value).

    Floats: codes without the sign bit, from the exponent/mantissa fields. Fixed point:
    the non-negative integers q with value q * 2^-frac_bits.
    """
    if isinstance(fmt, FixedFormat):
        return [(Fraction(q) / Fraction(2) ** fmt.frac_bits, q) for q in range(fmt.max_int + 1)]
    out = []
    m = fmt.man_bits
    for e in range(fmt.max_exp_field + 1):
        for mant in range(1 << m):
            if e == fmt.max_exp_field and (1 << m) + mant > fmt.max_significand:
                continue
            if e == 0 and fmt.zero:
                if not fmt.subnormals and mant:
                    continue
                v = Fraction(mant) * Fraction(2) ** (1 - fmt.bias - m)
            else:
                v = Fraction((1 << m) + mant) * Fraction(2) ** (e - fmt.bias - m)
            out.append((v, (e << m) | mant))
    return sorted(out)


def round_to_element(q: Fraction, negative: bool, fmt: Format) -> int:
    """Code of the RNE rounding of the exact value (-1)^negative * q, saturating.

    Ties go to the candidate with an even code (the mantissa's last bit for floats, the
    integer's last bit for fixed point). Magnitudes beyond the largest value saturate.
    """
    table = element_table(fmt)
    if isinstance(fmt, FixedFormat) and negative:
        # two's complement is asymmetric: the negative side reaches min_int
        table = [(Fraction(qq) / Fraction(2) ** fmt.frac_bits, qq) for qq in
                 range(0, -fmt.min_int + 1)]
    q = min(abs(q), table[-1][0])
    i = bisect.bisect_left([v for v, _ in table], q)
    best = None
    for v, c in table[max(i - 1, 0): i + 1]:  # the neighbours of q
        d = abs(v - q)
        if best is None or d < best[0] or (d == best[0] and c % 2 == 0):
            best = (d, c)
    code = best[1]
    if isinstance(fmt, FixedFormat):
        val = -code if negative else code
        return val & ((1 << fmt.bits) - 1)
    return code | ((1 << (fmt.bits - 1)) if negative and fmt.signed else 0)


def _ceil_log2(q: Fraction) -> int:
    e = floor_log2(q)
    return e if Fraction(2) ** e == q else e + 1


def _emax_elem(fmt: Format) -> int:
    return fmt.emax if isinstance(fmt, FloatFormat) else floor_log2(Fraction(fmt.max))


def mx_block_reference(block, fmt: Format, rule: str = "floor",
                       scale_fmt: FloatFormat = float8_e8m0fnu) -> tuple[int, list[int]]:
    """OCP MX conversion of one block (RNE elements, saturating, scale clamped to the scale
    format's range, 2^-127 .. 2^127 for E8M0).

    Args:
        block: the block's values (Python floats).
        fmt: element format.
        rule: "floor", "ceil" or "rceil".
        scale_fmt: a power-of-two scale format (no mantissa bits; default E8M0).

    Returns:
        (scale code, element codes). A block with NaN/inf gets the scale format's NaN code
        (0xFF) and every element the format's NaN code (0 when it has none); a zero block
        the smallest scale.
    """
    if any(math.isnan(v) or math.isinf(v) for v in block):
        nan = fmt.nan_code if isinstance(fmt, FloatFormat) and fmt.has_nan else 0
        return scale_fmt.nan_code, [nan] * len(block)
    vals = [Fraction(v) for v in block]
    amax = max((abs(v) for v in vals), default=Fraction(0))
    if amax == 0:
        e = scale_fmt.emin
    elif rule == "floor":
        e = floor_log2(amax) - _emax_elem(fmt)
    elif rule == "ceil":
        e = _ceil_log2(amax) - _emax_elem(fmt)
    elif rule == "rceil":
        e = _ceil_log2(amax / Fraction(fmt.max))
    else:
        raise ValueError(rule)
    e = max(scale_fmt.emin, min(scale_fmt.emax, e))
    scale = Fraction(2) ** e
    codes = [round_to_element(v / scale, math.copysign(1.0, f) < 0, fmt)
             for v, f in zip(vals, block)]
    return e + scale_fmt.bias, codes


def int_code_reference(x: float, inv_scale: float, zero_point: int, qmin: int,
                       qmax: int) -> int:
    """clamp(rint(fp32(x * inv_scale + zero_point)), qmin, qmax), the product-and-sum
    rounded once to float32 (fused), ties to even; exact rational arithmetic."""
    y = Fraction(x) * Fraction(inv_scale) + zero_point
    y32 = _rne_float32(y)
    n = math.floor(y32)
    frac = y32 - n
    if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and n % 2):
        n += 1
    return max(qmin, min(qmax, n))


def _rne_float32(y: Fraction) -> Fraction:
    if y == 0:
        return Fraction(0)
    s = -1 if y < 0 else 1
    a = abs(y)
    e = max(floor_log2(a), -126)
    ulp = Fraction(2) ** (e - 23)
    k = a / ulp
    n = math.floor(k)
    r = k - n
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and n % 2):
        n += 1
    return s * n * ulp
