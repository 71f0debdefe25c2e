"""The exact core every reference shares: the random-stream twin and one exact rounding.

Values are :class:`fractions.Fraction` and Python integers; nothing is approximated. The
kernels' counter-based generator is mirrored bit for bit (:func:`rand64`), so stochastic
rounding is tested bit for bit too.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Union

from ..formats import FixedFormat, Format
from ..rounding import Rounding

__all__ = ["rand64", "floor_log2", "pow2", "quantum", "neighbours", "round_up", "Number"]

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


def pow2(e: int) -> Fraction:
    """2^e exactly."""
    return Fraction(2) ** e


def quantum(a: Fraction, fmt: Format) -> int:
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
    q = quantum(a, fmt)
    k = math.floor(a / pow2(q))
    return k * pow2(q), (k + 1) * pow2(q)


def _stream_less(frac: Fraction, key: int, idx: int) -> bool:
    # U < frac, U = 0.w0 w1 w2 ... read lazily from the stream.
    n = 0
    t = 0
    while True:
        t = (t << 64) | rand64(key, idx, n)
        n += 1
        scaled = frac * pow2(64 * n)
        f = math.floor(scaled)
        if t < f:
            return True
        if t > f or scaled == f:
            return False


def round_up(frac: Fraction, k: int, mode: Rounding, neg: bool, sr_bits: int, key: int,
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
