"""Correctly rounded arithmetic kernels: one exact result, one rounding.

Every operation forms its exact result as a float64 pair ``hi + lo`` with an error-free
transformation and hands the pair to :func:`.convert.round_float_value`, which rounds the
exact value once, so directed and stochastic modes see where the exact value lies, not a
float64 approximation of it.

- add/sub: TwoSum (Knuth), exact for any float64 operands.
- mul: TwoProduct (Dekker, Veltkamp splitting), exact for any float64 operands in range.
- fma: ``a * b`` is exact in float64 when both operands have at most 26 significant bits
  (the Python layer only admits float32-representable operands), then TwoSum with ``c``.
- div/sqrt: the float64 quotient/root ``q`` is correctly rounded, and the remainder
  ``a - q*b`` (``a - q*q``) is exactly representable (Boldo & Daumas, 2003) and computed
  exactly with TwoProduct. The tail ``remainder / b`` (``remainder / 2q``) therefore has the
  exact sign but a magnitude rounded to 53 bits. Deterministic modes depend only on the
  sign (every rounding boundary of a format of <= 24 bits lies on the float64 grid), so they
  are exact; stochastic rounding uses the magnitude only when the random stream matches
  the discarded bits of ``q`` exactly (probability <= 2^-29) or, with ``sr_bits`` wider than
  the discarded field, for the extra low random bits.

Operands and results stay far inside float64's range (formats of at most 32 bits), so
none of these transformations can overflow or underflow.
"""

import math

import numpy as np
from numba import njit, prange

from ..ids import OP_ABS, OP_ADD, OP_DIV, OP_MAX, OP_MUL, OP_NEG, OP_SQRT, OP_SUB, RDN
from .convert import round_float_value
from .layout import F_EMIN

_SPLITTER = 134217729.0  # 2^27 + 1, Veltkamp's constant for float64


@njit(cache=True)
def two_sum(a, b):
    """(s, t) with s = fl(a + b) and s + t == a + b exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(cache=True)
def _split(a):
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


@njit(cache=True)
def two_prod(a, b):
    """(p, e) with p = fl(a * b) and p + e == a * b exactly (Dekker's TwoProduct)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = al * bl - (((p - ah * bh) - al * bh) - ah * bl)
    return p, e


@njit(cache=True)
def flush_input(x, fp, daz):
    """x, or a zero of x's sign when ``daz`` and x is below the format's smallest normal."""
    if daz and x != 0.0 and math.fabs(x) < math.ldexp(1.0, int(fp[F_EMIN])):
        return math.copysign(0.0, x)
    return x


@njit(cache=True)
def exact_zero_sum(a, b, mode):
    """The zero an exactly cancelling sum a + b gives (IEEE 754-2019 sec. 6.3)."""
    if a == 0.0 and b == 0.0 and math.copysign(1.0, a) == math.copysign(1.0, b):
        return a
    return -0.0 if mode == RDN else 0.0  # IEEE 754: exact zero sums are -0 under RDN


@njit(cache=True)
def _round_sum(a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a + b (exact float64 operands) rounded once: TwoSum for finite operands, IEEE
    float64 for specials, and the signed-zero rule for exact zero sums."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return round_float_value(a + b, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)
    s, t = two_sum(a, b)
    if s == 0.0:
        return round_float_value(exact_zero_sum(a, b, mode), 0.0, fp, mode, ovf, ftz, key,
                                 idx, sr_bits)
    return round_float_value(s, t, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True)
def add_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a + b rounded once into the format."""
    return _round_sum(a, b, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True)
def mul_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a * b rounded once into the format."""
    p = a * b
    if p == 0.0 or not math.isfinite(p):  # signed zero, inf, NaN: IEEE float64 is exact
        return round_float_value(p, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)
    p, e = two_prod(a, b)
    return round_float_value(p, e, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True)
def fma_value(a, b, c, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a * b + c rounded once; a and b must have at most 26 significant bits each."""
    return _round_sum(a * b, c, fp, mode, ovf, ftz, key, idx, sr_bits)  # a*b is exact


@njit(cache=True)
def div_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a / b rounded once (exact in deterministic modes; see the module notes for SR)."""
    q = a / b
    if q == 0.0 or not math.isfinite(q):  # 0/x, x/inf, x/0, 0/0, inf/inf, NaN
        return round_float_value(q, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)
    ph, pl = two_prod(q, b)
    r = (a - ph) - pl  # both subtractions exact: Sterbenz, then a representable result
    return round_float_value(q, r / b, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True)
def sqrt_value(a, fp, mode, ovf, ftz, key, idx, sr_bits):
    """sqrt(a) rounded once (exact in deterministic modes; see the module notes for SR)."""
    if a != a or a < 0.0:
        return np.nan
    if a == 0.0 or math.isinf(a):  # sqrt(-0) = -0
        return round_float_value(a, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)
    s = math.sqrt(a)
    ph, pl = two_prod(s, s)
    r = (a - ph) - pl
    return round_float_value(s, r / (2.0 * s), fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True)
def max_value(a, b):
    """IEEE 754-2019 maximum: NaN propagates, +0 > -0."""
    if a != a or b != b:
        return np.nan
    if a == b:
        return b if math.copysign(1.0, a) < 0.0 else a
    return a if a > b else b


@njit(cache=True)
def min_value(a, b):
    """IEEE 754-2019 minimum: NaN propagates, -0 < +0."""
    if a != a or b != b:
        return np.nan
    if a == b:
        return a if math.copysign(1.0, a) < 0.0 else b
    return a if a < b else b


@njit(cache=True)
def binary_value(op, a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """Dispatch one binary operation by id (OP_ADD ... OP_MIN)."""
    if op == OP_ADD:
        return add_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits)
    if op == OP_SUB:
        return add_value(a, -b, fp, mode, ovf, ftz, key, idx, sr_bits)
    if op == OP_MUL:
        return mul_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits)
    if op == OP_DIV:
        return div_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits)
    if op == OP_MAX:
        r = max_value(a, b)
    else:
        r = min_value(a, b)
    return round_float_value(r, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True)
def unary_value(op, a, fp, mode, ovf, ftz, key, idx, sr_bits):
    """Dispatch one unary operation by id (OP_SQRT, OP_NEG, OP_ABS)."""
    if op == OP_SQRT:
        return sqrt_value(a, fp, mode, ovf, ftz, key, idx, sr_bits)
    if op == OP_NEG:
        r = -a
    else:
        r = math.fabs(a)
    return round_float_value(r, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True, parallel=True)
def binary_array(op, a, b, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[i] = op(a[i], b[i]) rounded once; flat arrays of equal size. The stochastic
    stream of element i is (key, i)."""
    for i in prange(out.size):
        x = flush_input(a[i], fp, daz)
        y = flush_input(b[i], fp, daz)
        out[i] = binary_value(op, x, y, fp, mode, ovf, ftz, key, i, sr_bits)


@njit(cache=True, parallel=True)
def unary_array(op, a, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[i] = op(a[i]) rounded once; flat arrays."""
    for i in prange(out.size):
        out[i] = unary_value(op, flush_input(a[i], fp, daz), fp, mode, ovf, ftz, key, i,
                             sr_bits)


@njit(cache=True, parallel=True)
def fma_array(a, b, c, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[i] = a[i] * b[i] + c[i] rounded once; flat arrays."""
    for i in prange(out.size):
        x = flush_input(a[i], fp, daz)
        y = flush_input(b[i], fp, daz)
        z = flush_input(c[i], fp, daz)
        out[i] = fma_value(x, y, z, fp, mode, ovf, ftz, key, i, sr_bits)
