"""Slow exact reference for :mod:`lowprec.arith`: exact rational result, then one rounding.

Each operation is computed on :class:`fractions.Fraction` from IEEE 754-2019's definitions
(special values, signed zeros) and rounded once with :func:`lowprec.reference.round_exact`.
No numba, no float tricks: this is what the kernels in :mod:`lowprec._kernels.arith` are
tested against, bit for bit, stochastic rounding included.

An exact operand or result is a ``Fraction`` when finite and non-zero, and a float
otherwise (NaN, +-inf, +0.0, -0.0), so the signs of zeros survive.

Square roots are usually irrational. :func:`exact_sqrt` returns the root itself when it is
rational and otherwise a rational stand-in ``r + 2^-(K+1)`` with ``r`` the root truncated to
K = 400 fraction bits: it lies strictly between the same two multiples of 2^-K as the true
root, so every deterministic rounding of it is the rounding of the true root (round-to-odd
argument), and stochastic rounding probabilities differ by less than 2^-300.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional, Union

from ..formats import FloatFormat, get_format
from ..rounding import Rounding, parse_rounding
from .conversion import round_exact

__all__ = ["exact", "exact_add", "exact_sub", "exact_mul", "exact_div", "exact_fma",
           "exact_sqrt", "exact_neg", "exact_abs", "exact_maximum", "exact_minimum",
           "round_result", "apply", "OPS", "sum_reference", "dot_reference"]

Exact = Union[Fraction, float]
_SQRT_BITS = 400


def exact(x) -> Exact:
    """The exact value of a float (or int/Fraction) in the representation above."""
    if isinstance(x, Fraction):
        return x if x != 0 else 0.0
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return x
    return Fraction(x)


def _is_nan(x: Exact) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _is_inf(x: Exact) -> bool:
    return isinstance(x, float) and math.isinf(x)


def _is_zero(x: Exact) -> bool:
    return isinstance(x, float) and x == 0.0


def _negative(x: Exact) -> bool:
    """Sign bit (for zeros too)."""
    if isinstance(x, float):
        return math.copysign(1.0, x) < 0
    return x < 0


def _signed_zero(neg: bool) -> float:
    return -0.0 if neg else 0.0


def _signed_inf(neg: bool) -> float:
    return -math.inf if neg else math.inf


def exact_add(x: Exact, y: Exact, rounding="rne") -> Exact:
    """x + y. An exactly zero sum of operands of opposite sign (or of +0 and -0) is +0,
    except -0 under round toward -inf; the sum of two equal zeros is that zero."""
    if _is_nan(x) or _is_nan(y):
        return math.nan
    if _is_inf(x) or _is_inf(y):
        if _is_inf(x) and _is_inf(y) and _negative(x) != _negative(y):
            return math.nan
        return x if _is_inf(x) else y
    if _is_zero(x) and _is_zero(y) and _negative(x) == _negative(y):
        return x
    s = (0 if _is_zero(x) else x) + (0 if _is_zero(y) else y)
    if s == 0:
        return _signed_zero(parse_rounding(rounding) is Rounding.RDN)
    return Fraction(s)


def exact_neg(x: Exact) -> Exact:
    """-x (flips the sign of zeros and infinities; NaN stays NaN)."""
    if _is_nan(x):
        return math.nan
    return -x


def exact_sub(x: Exact, y: Exact, rounding="rne") -> Exact:
    """x - y, defined as x + (-y)."""
    return exact_add(x, exact_neg(y), rounding)


def exact_mul(x: Exact, y: Exact) -> Exact:
    """x * y; zero and infinite results take the XOR of the signs; 0 * inf is NaN."""
    if _is_nan(x) or _is_nan(y):
        return math.nan
    neg = _negative(x) != _negative(y)
    if _is_inf(x) or _is_inf(y):
        if _is_zero(x) or _is_zero(y):
            return math.nan
        return _signed_inf(neg)
    if _is_zero(x) or _is_zero(y):
        return _signed_zero(neg)
    return x * y


def exact_div(x: Exact, y: Exact) -> Exact:
    """x / y; 0/0 and inf/inf are NaN, x/0 is an infinity, x/inf a zero (signs XOR)."""
    if _is_nan(x) or _is_nan(y):
        return math.nan
    neg = _negative(x) != _negative(y)
    if _is_inf(x):
        return math.nan if _is_inf(y) else _signed_inf(neg)
    if _is_inf(y):
        return _signed_zero(neg)
    if _is_zero(y):
        return math.nan if _is_zero(x) else _signed_inf(neg)
    if _is_zero(x):
        return _signed_zero(neg)
    return x / y


def exact_fma(x: Exact, y: Exact, z: Exact, rounding="rne") -> Exact:
    """x * y + z with a single rounding (the product is exact, zero signs as IEEE)."""
    return exact_add(exact_mul(x, y), z, rounding)


def exact_sqrt(x: Exact) -> Exact:
    """sqrt(x): NaN for x < 0 and NaN, x itself for +-0 and +inf; an irrational root is
    replaced by the rational stand-in described in the module docstring."""
    if _is_nan(x) or (_negative(x) and not _is_zero(x)):
        return math.nan
    if isinstance(x, float):
        return x  # +-0, +inf
    n, d = x.numerator, x.denominator
    # sqrt(n/d) = sqrt(n*d)/d: root of an integer, scaled to K fraction bits.
    big = n * d << (2 * _SQRT_BITS)
    r = math.isqrt(big)
    root = Fraction(r, d << _SQRT_BITS)
    if r * r == big:
        return root
    return root + Fraction(1, d << (_SQRT_BITS + 1))


def exact_maximum(x: Exact, y: Exact) -> Exact:
    """IEEE 754-2019 maximum: NaN if either is NaN; +0 is larger than -0."""
    if _is_nan(x) or _is_nan(y):
        return math.nan
    fx, fy = _as_fraction_or_inf(x), _as_fraction_or_inf(y)
    if fx == fy:
        return y if _negative(x) else x
    return x if fx > fy else y


def exact_minimum(x: Exact, y: Exact) -> Exact:
    """IEEE 754-2019 minimum: NaN if either is NaN; -0 is smaller than +0."""
    if _is_nan(x) or _is_nan(y):
        return math.nan
    fx, fy = _as_fraction_or_inf(x), _as_fraction_or_inf(y)
    if fx == fy:
        return x if _negative(x) else y
    return x if fx < fy else y


def exact_abs(x: Exact) -> Exact:
    """|x| (abs(-0) = +0; NaN stays NaN)."""
    if _is_nan(x):
        return math.nan
    return abs(x)


def _as_fraction_or_inf(x: Exact):
    if _is_inf(x):
        return x
    return Fraction(0) if _is_zero(x) else x


def _daz(x: Exact, fmt: FloatFormat) -> Exact:
    if isinstance(x, Fraction) and abs(x) < Fraction(2) ** fmt.emin:
        return _signed_zero(x < 0)
    return x


def round_result(v: Exact, fmt, rounding="rne", overflow=None, subnormals=True,
                 sr_bits: Optional[int] = None, key: int = 0, idx: int = 0) -> float:
    """Round an exact result into ``fmt`` and return it as a float (NaN for NaN results,
    whatever the format: what a NaN becomes in a format without NaN is the caller's policy).
    """
    f = get_format(fmt)
    if _is_nan(v):
        return math.nan
    r = round_exact(v, f, rounding, overflow, subnormals, sr_bits, key, idx)
    return float(r)


_BINARY_ROUNDED = {"add": exact_add, "sub": exact_sub}
OPS = {
    "add": 2, "sub": 2, "mul": 2, "div": 2, "maximum": 2, "minimum": 2, "fma": 3,
    "sqrt": 1, "neg": 1, "abs": 1,
}


def apply(op: str, args, fmt, rounding="rne", overflow=None, subnormals=True, daz=False,
          sr_bits: Optional[int] = None, key: int = 0, idx: int = 0) -> float:
    """Reference result of ``lowprec.<op>(*args, fmt, ...)`` for one element.

    Args:
        op: one of :data:`OPS`.
        args: the operands as floats (NaN, inf and signed zeros allowed).
        fmt, rounding, overflow, subnormals, sr_bits: as in :mod:`lowprec.arith`.
        daz: flush subnormal operands (below ``fmt``'s smallest normal) to signed zero.
        key, idx: stochastic-rounding generator key and element index.

    Returns:
        The rounded result as a float (NaN for NaN results).
    """
    f = get_format(fmt)
    xs = [exact(a) for a in args]
    if daz:
        xs = [_daz(x, f) for x in xs]
    if op in _BINARY_ROUNDED:
        v = _BINARY_ROUNDED[op](xs[0], xs[1], rounding)
    elif op == "fma":
        v = exact_fma(xs[0], xs[1], xs[2], rounding)
    else:
        fn = {"mul": exact_mul, "div": exact_div, "maximum": exact_maximum,
              "minimum": exact_minimum, "sqrt": exact_sqrt, "neg": exact_neg,
              "abs": exact_abs}[op]
        v = fn(*xs)
    return round_result(v, f, rounding, overflow, subnormals, sr_bits, key, idx)


def sum_reference(xs, fmt, order="sequential", rounding="rne", overflow=None,
                  subnormals=True, sr_bits: Optional[int] = None, key: int = 0,
                  base: int = 0) -> float:
    """Reference for one row of ``LPArray.sum``: every addition rounded once into ``fmt``.

    Orders and stochastic-rounding event numbering (from ``base``) as documented in
    :mod:`lowprec._kernels.reduce`.
    """
    kw = dict(rounding=rounding, overflow=overflow, subnormals=subnormals, sr_bits=sr_bits,
              key=key)
    xs = [float(x) for x in xs]
    n = len(xs)
    if n == 0:
        return apply("abs", [0.0], fmt, idx=base, **kw)
    ev = base
    if order == "pairwise":
        buf = []
        for x in xs:
            buf.append(round_result(exact(x), fmt, idx=ev, **kw))
            ev += 1
        while len(buf) > 1:
            nxt = []
            for j in range(len(buf) // 2):
                nxt.append(apply("add", [buf[2 * j], buf[2 * j + 1]], fmt, idx=ev, **kw))
                ev += 1
            if len(buf) % 2:
                nxt.append(buf[-1])
            buf = nxt
        return buf[0]
    s = round_result(exact(xs[0]), fmt, idx=ev, **kw)
    ev += 1
    if order == "sequential":
        for x in xs[1:]:
            s = apply("add", [s, x], fmt, idx=ev, **kw)
            ev += 1
        return s
    if order != "kahan":
        raise ValueError(f"unknown order {order!r}")
    c = 0.0
    for x in xs[1:]:
        y = apply("sub", [x, c], fmt, idx=ev, **kw)
        t = apply("add", [s, y], fmt, idx=ev + 1, **kw)
        d = apply("sub", [t, s], fmt, idx=ev + 2, **kw)
        c = apply("sub", [d, y], fmt, idx=ev + 3, **kw)
        ev += 4
        s = t
    return s


def dot_reference(xs, ys, fmt, order="sequential", rounding="rne", overflow=None,
                  subnormals=True, sr_bits: Optional[int] = None, key: int = 0,
                  base: int = 0) -> float:
    """Reference for ``LPArray.dot``: a fused multiply-add chain ("sequential"), or
    products rounded into ``fmt`` and then summed in ``order``."""
    kw = dict(rounding=rounding, overflow=overflow, subnormals=subnormals, sr_bits=sr_bits,
              key=key)
    n = len(xs)
    if order == "sequential":
        if n == 0:
            return apply("abs", [0.0], fmt, idx=base, **kw)
        s = apply("mul", [xs[0], ys[0]], fmt, idx=base, **kw)
        for j in range(1, n):
            s = apply("fma", [xs[j], ys[j], s], fmt, idx=base + j, **kw)
        return s
    prods = [apply("mul", [x, y], fmt, idx=base + j, **kw)
             for j, (x, y) in enumerate(zip(xs, ys))]
    return sum_reference(prods, fmt, order, base=base + n, **kw)
