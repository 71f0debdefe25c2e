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
from .jit import njit, prange

from ..ids import (NAN_NEG_ZERO, OP_ABS, OP_ADD, OP_DIV, OP_MAX, OP_MUL, OP_NEG, OP_SQRT,
                   OP_SUB, RDN, RNA, RNE, RTO, RUP, SR)
from .convert import round_float_value
from .layout import (F_BIAS, F_EMAX, F_EMIN, F_MAN, F_MAXCODE, F_MAXSIG, F_NAN_KIND, F_SIGNED,
                     F_SUBN, F_ZERO)
from .random import STEP, counter, mix64_inline, rand64, word_base

_SPLITTER = 134217729.0  # 2^27 + 1, Veltkamp's constant for float64

# Every kernel states error_model="numpy" (IEEE: x / 0 is inf, 0 / 0 NaN): a callee without
# one inherits its first caller's, and the compiled copy then serves every caller (the
# python model raises ZeroDivisionError on x / 0).


@njit(cache=True, error_model="numpy")
def two_sum(a, b):
    """(s, t) with s = fl(a + b) and s + t == a + b exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(cache=True, error_model="numpy")
def _split(a):
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


@njit(cache=True, error_model="numpy")
def two_prod(a, b):
    """(p, e) with p = fl(a * b) and p + e == a * b exactly (Dekker's TwoProduct)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = al * bl - (((p - ah * bh) - al * bh) - ah * bl)
    return p, e


@njit(cache=True, error_model="numpy")
def flush_input(x, fp, daz):
    """x, or a zero of x's sign when ``daz`` and x is below the format's smallest normal."""
    if daz and x != 0.0 and math.fabs(x) < math.ldexp(1.0, int(fp[F_EMIN])):
        return math.copysign(0.0, x)
    return x


@njit(cache=True, error_model="numpy")
def exact_zero_sum(a, b, mode):
    """The zero an exactly cancelling sum a + b gives (IEEE 754-2019 sec. 6.3)."""
    if a == 0.0 and b == 0.0 and math.copysign(1.0, a) == math.copysign(1.0, b):
        return a
    return -0.0 if mode == RDN else 0.0  # IEEE 754: exact zero sums are -0 under RDN


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def add_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a + b rounded once into the format."""
    return _round_sum(a, b, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True, error_model="numpy")
def mul_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a * b rounded once into the format."""
    p = a * b
    if p == 0.0 or not math.isfinite(p):  # signed zero, inf, NaN: IEEE float64 is exact
        return round_float_value(p, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)
    p, e = two_prod(a, b)
    return round_float_value(p, e, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True, error_model="numpy")
def fma_value(a, b, c, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a * b + c rounded once; a and b must have at most 26 significant bits each."""
    return _round_sum(a * b, c, fp, mode, ovf, ftz, key, idx, sr_bits)  # a*b is exact


@njit(cache=True, error_model="numpy")
def div_value(a, b, fp, mode, ovf, ftz, key, idx, sr_bits):
    """a / b rounded once (exact in deterministic modes; see the module notes for SR)."""
    q = a / b
    if q == 0.0 or not math.isfinite(q):  # 0/x, x/inf, x/0, 0/0, inf/inf, NaN
        return round_float_value(q, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)
    ph, pl = two_prod(q, b)
    r = (a - ph) - pl  # both subtractions exact: Sterbenz, then a representable result
    return round_float_value(q, r / b, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def max_value(a, b):
    """IEEE 754-2019 maximum: NaN propagates, +0 > -0."""
    if a != a or b != b:
        return np.nan
    if a == b:
        return b if math.copysign(1.0, a) < 0.0 else a
    return a if a > b else b


@njit(cache=True, error_model="numpy")
def min_value(a, b):
    """IEEE 754-2019 minimum: NaN propagates, -0 < +0."""
    if a != a or b != b:
        return np.nan
    if a == b:
        return a if math.copysign(1.0, a) < 0.0 else b
    return a if a < b else b


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def unary_value(op, a, fp, mode, ovf, ftz, key, idx, sr_bits):
    """Dispatch one unary operation by id (OP_SQRT, OP_NEG, OP_ABS)."""
    if op == OP_SQRT:
        return sqrt_value(a, fp, mode, ovf, ftz, key, idx, sr_bits)
    if op == OP_NEG:
        r = -a
    else:
        r = math.fabs(a)
    return round_float_value(r, 0.0, fp, mode, ovf, ftz, key, idx, sr_bits)


@njit(cache=True, parallel=True, error_model="numpy")
def binary_array(op, a, b, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[i] = op(a[i], b[i]) rounded once; flat arrays of equal size. The stochastic
    stream of element i is (key, i)."""
    for i in prange(out.size):
        x = flush_input(a[i], fp, daz)
        y = flush_input(b[i], fp, daz)
        out[i] = binary_value(op, x, y, fp, mode, ovf, ftz, key, i, sr_bits)


@njit(cache=True, parallel=True, error_model="numpy")
def unary_array(op, a, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[i] = op(a[i]) rounded once; flat arrays."""
    for i in prange(out.size):
        out[i] = unary_value(op, flush_input(a[i], fp, daz), fp, mode, ovf, ftz, key, i,
                             sr_bits)


@njit(cache=True, parallel=True, error_model="numpy")
def fma_array(a, b, c, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[i] = a[i] * b[i] + c[i] rounded once; flat arrays."""
    for i in prange(out.size):
        x = flush_input(a[i], fp, daz)
        y = flush_input(b[i], fp, daz)
        z = flush_input(c[i], fp, daz)
        out[i] = fma_value(x, y, z, fp, mode, ovf, ftz, key, i, sr_bits)


# --- The fast pass ------------------------------------------------------------------------
#
# Operands are float32 values (the Python layer checks), so every result below has an exact
# float64 pair (s, t): s = fl64(exact) correctly rounded, t the exact tail (add/sub/fma:
# TwoSum; mul: t = 0, a product of two 24-bit significands is exact in float64 and far from
# its range limits; div/sqrt: the remainder, exact by TwoProduct, whose sign is the tail's).
# The branch-free pass rounds s with the bit arithmetic of the conversion fast pass
# (:func:`.convert._fast_code`, float64 input layout) and sends an element to the fix-up
# path (then the scalar path above) when s is not an ordinary normal number or the rounding
# of s could differ from the rounding of s + t. Every rounding boundary of a format of at
# most 24 bits is a float64 number and fl64 is monotone, so with t != 0 the two roundings
# can only differ when s itself lies on a boundary the mode looks at: a midpoint (RNE/RNA),
# a grid point (directed modes), or, for stochastic rounding, when the random bits compared
# with the discarded bits of s tie with them or miss by one (the scalar path's comparison
# of the tail decides those). Exact results (t == 0) never leave the fast pass.
#
# Division and square root skip the remainder in deterministic modes and exact SR: for
# float32 x, y and a number B of P significant bits, x / y != B implies
# |x / y - B| > 2^-(24 + P) |B| (x - B y is a nonzero multiple of the coarser of the two
# ulps), and sqrt(x) != B implies |sqrt(x) - B| > 2^-(2P + 1) |B|; with P <= 25 (grid points
# and midpoints of a format of <= 24 bits) both exceed half a float64 ulp, so s lies on such
# a B only when the result is exact. (Exact SR flags the tie/miss-by-one cases without the
# remainder; SR with r random bits compares more bits and computes it.)
#
# Each (operation family, mode class) pair has its own straight-line loop over a chunk that
# LLVM vectorises (AVX2: four float64 lanes, the SplitMix64 stream included); DAZ and
# sub's negation are applied to a copy of the chunk first, so the loops need neither. The
# scalar path sees rare elements only, and both paths give the same bits, which
# tests/test_arith_fast.py checks.

KIND_BINARY, KIND_UNARY, KIND_FMA = 0, 1, 2
FAM_ADD, FAM_MUL, FAM_FMA, FAM_DIV, FAM_SQRT, FAM_UNARY = range(6)  # loops of the fast pass
MC_DET, MC_SRE, MC_SRB = range(3)  # deterministic, exact SR, SR with r random bits
_ABS64 = np.int64(0x7FFFFFFFFFFFFFFF)
_SIGN64 = np.int64(-0x8000000000000000)
_CHUNK = 8192  # elements per task: its setup is amortised, its flag buffer stays in L1
_BIAS64 = np.int64(1023)
_MANT64 = np.int64((1 << 52) - 1)
_TWO52_BITS = np.int64(0x4330000000000000)  # float64 bits of 2^52
_TWO52 = 4503599627370496.0


@njit(cache=True, error_model="numpy")
def fast_applies(fp, mode):
    """Whether the fast pass handles this format and mode (else the scalar kernels run):
    signed formats with a zero and at most 24 significant bits, every mode but RTO."""
    return mode != RTO and fp[F_SIGNED] == 1 and fp[F_ZERO] == 1 and fp[F_MAN] <= 23


@njit(cache=True, inline="always")
def _daz(x, tiny):
    # x, or a zero of its sign below ``tiny`` (0.0 without DAZ): a select, no branch
    return math.copysign(0.0, x) if math.fabs(x) < tiny else x


@njit(cache=True, inline="always")
def _bad(babs, rb, R):
    # the fix-up path decides: s not zero or a normal number of the format (zsub = 0: zeros
    # too: an exact zero sum under RDN, or a format without -0), an overflow, an infinity
    # or NaN (rounding the bits of a NaN with a large payload can carry into the sign bit,
    # hence the separate test). One unsigned comparison: 0 < babs < 2^emin (zsub = 1) or
    # babs < 2^emin (zsub = 0).
    sh, ones, zsub, lo_lim, hi_bits, maxbits, c0, lsb_e, c1, tie = R
    return np.int64(np.uint64(babs - zsub) < np.uint64(lo_lim)) | np.int64(babs >= hi_bits) \
        | np.int64(rb > maxbits)


@njit(cache=True, inline="always")
def _signed(b, rb):
    # the rounded magnitude rb (float64 bits) with s's sign; rb == 0 only for s == +-0,
    # which keeps its sign (formats without -0 send zeros to the fix-up path)
    return np.int64(rb | (b & _SIGN64)).view(np.float64)


@njit(cache=True, inline="always")
def _rd_det(s, tnz, R):
    # (value, bad) of s in a deterministic mode; tnz: whether the tail is nonzero.
    # Below the kept bit, rounding adds c0 + (kept LSB & lsb_e) + (c1 if s < 0): half-1
    # plus the LSB (RNE), half (RNA), nothing (RTZ), all ones for RUP (positive) / RDN
    # (negative) values; a carry moves into the exponent by itself. No per-mode factors or
    # selects: AVX2 has no 64-bit multiply, and every operation counts in this loop.
    sh, ones, zsub, lo_lim, hi_bits, maxbits, c0, lsb_e, c1, tie = R
    b = np.float64(s).view(np.int64)
    babs = b & _ABS64
    rb = (babs + (c0 + ((babs >> sh) & lsb_e) + ((b >> 63) & c1))) & ~ones
    # a tail matters only when s is on a midpoint (nearest: tie = half) or on the grid
    # (directed: tie = 0)
    tail_bad = tnz & np.int64((babs & ones) == tie)
    return _signed(b, rb), _bad(babs, rb, R) | tail_bad


@njit(cache=True, inline="always")
def _rd_sre(s, tnz, rz, r, R):
    # (value, bad) of s in exact stochastic rounding: up iff the first sh bits of the
    # element's random word r < the discarded bits rem. tnz: whether the tail may be
    # nonzero; rz: whether it may be nonzero with rem == 0 (0 where that is impossible).
    sh, ones, zsub, lo_lim, hi_bits, maxbits, c0, lsb_e, c1, tie = R
    b = np.float64(s).view(np.int64)
    babs = b & _ABS64
    rem = babs & ones
    stream = np.int64(r >> np.uint64(64 - sh))
    up = np.int64(stream < rem)
    tail_bad = tnz & ((rz & np.int64(rem == 0)) | np.int64(stream == rem)
                      | np.int64(stream + 1 == rem))
    rb = (babs & ~ones) + (up << sh)
    return _signed(b, rb), _bad(babs, rb, R) | tail_bad


@njit(cache=True, inline="always")
def _rd_srb(s, tnz, r, R, Q):
    # (value, bad) of s in stochastic rounding with k random bits: up iff the first k
    # discarded bits (zero-extended) plus the first k bits of the random word r carry out.
    sh, ones, zsub, lo_lim, hi_bits, maxbits, c0, lsb_e, c1, tie = R
    dpos, dneg, dmask, rsh, lim = Q
    b = np.float64(s).view(np.int64)
    babs = b & _ABS64
    rem = babs & ones
    h = (np.uint64(rem) >> np.uint64(dpos)) << np.uint64(dneg)
    up = np.int64(h + (r >> np.uint64(rsh)) >= np.uint64(lim))
    # with k wider than the discarded field (dmask 0) every inexact result is decided by
    # the fix-up path; otherwise those whose first k discarded bits are all there is
    tail_bad = tnz & np.int64((rem & dmask) == 0)
    rb = (babs & ~ones) + (up << sh)
    return _signed(b, rb), _bad(babs, rb, R) | tail_bad


@njit(cache=True, inline="always")
def _prepared(x, tiny, sg):
    # a copy of the chunk x with DAZ applied (tiny > 0) and multiplied by sg (-1: sub's
    # second operand), so that the loops below need neither
    y = np.empty_like(x)
    for j in range(x.size):
        y[j] = sg * _daz(np.float64(x[j]), tiny)
    return y


# The exact pair of one element (operands already flushed, sub's negated), as (s, tail
# nonzero); inlined into the loops below.

@njit(cache=True, inline="always")
def _ex_add(a, b, i):
    x = np.float64(a[i])
    y = np.float64(b[i])
    s = x + y
    bb = s - x
    return s, np.int64(((x - (s - bb)) + (y - bb)) != 0.0)  # TwoSum


@njit(cache=True, inline="always")
def _ex_fma(a, b, c, i):
    p = np.float64(a[i]) * np.float64(b[i])  # exact: 24-bit factors
    z = np.float64(c[i])
    s = p + z
    bb = s - p
    return s, np.int64(((p - (s - bb)) + (z - bb)) != 0.0)


@njit(cache=True, inline="always")
def _ex_div(a, b, i, tail):
    x = np.float64(a[i])
    y = np.float64(b[i])
    q = x / y
    if not tail:
        return q, np.int64(1)
    ph, pl = two_prod(q, y)
    return q, np.int64(((x - ph) - pl) != 0.0)


@njit(cache=True, inline="always")
def _ex_sqrt(a, i, tail):
    x = np.float64(a[i])
    s = math.sqrt(x) if x >= 0.0 else np.nan
    if not tail:
        return s, np.int64(1)
    ph, pl = two_prod(s, s)
    return s, np.int64(((x - ph) - pl) != 0.0)


@njit(cache=True, inline="always")
def _ex_unary(a, i, is_neg):
    x = np.float64(a[i])
    return (-x if is_neg else math.fabs(x)), np.int64(0)


@njit(cache=True, inline="always")
def _exact_pair(kind, op, a, b, c, i, tiny):
    # (s, t) of element i with the tail's sign exact (the fix-up path: rare elements)
    x = _daz(np.float64(a[i]), tiny)
    if kind == KIND_UNARY:
        if op == OP_SQRT:
            s = math.sqrt(x) if x >= 0.0 else np.nan
            ph, pl = two_prod(s, s)
            return s, (x - ph) - pl  # the tail has the remainder's sign (s > 0)
        return (-x if op == OP_NEG else math.fabs(x)), 0.0
    y = _daz(np.float64(b[i]), tiny)
    if kind == KIND_FMA:
        x = x * y  # exact
        y = _daz(np.float64(c[i]), tiny)
    elif op == OP_MUL:
        return x * y, 0.0
    elif op == OP_DIV:
        q = x / y
        ph, pl = two_prod(q, y)
        r = (x - ph) - pl  # exact remainder; the tail r / y has the sign of r * y
        return q, (r if y > 0.0 else -r)
    elif op == OP_SUB:
        y = -y
    s, t = two_sum(x, y)
    return s, t


@njit(cache=True, inline="always")
def _fast_loops(fam, a, b, c, n, is_neg, mc, R, Q, z, out, flag):
    # Round the n elements of the slices a, b, c into the slice out (z: the random
    # stream's counter of the first element) and flag (1) those the fix-up path must
    # decide; returns how many. One straight-line loop per operation family and mode
    # class, so that LLVM vectorises each (the random stream included). Indexing slices by
    # the loop counter, which LLVM sees is >= 0, drops numba's negative-index wraparound
    # select, which otherwise turns every load and store into a scalar one.
    nbad = 0
    if fam == FAM_ADD:
        if mc == MC_DET:
            for j in range(n):
                s, tnz = _ex_add(a, b, j)
                v, bad = _rd_det(s, tnz, R)
                out[j] = v
                flag[j] = bad
                nbad += bad
        elif mc == MC_SRE:
            for j in range(n):
                s, tnz = _ex_add(a, b, j)
                v, bad = _rd_sre(s, tnz, 1, mix64_inline(z), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
        else:
            for j in range(n):
                s, tnz = _ex_add(a, b, j)
                v, bad = _rd_srb(s, tnz, mix64_inline(z), R, Q)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
    elif fam == FAM_MUL:
        if mc == MC_DET:
            for j in range(n):
                s = np.float64(a[j]) * np.float64(b[j])
                v, bad = _rd_det(s, np.int64(0), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
        elif mc == MC_SRE:
            for j in range(n):
                s = np.float64(a[j]) * np.float64(b[j])
                v, bad = _rd_sre(s, np.int64(0), 0, mix64_inline(z), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
        else:
            for j in range(n):
                s = np.float64(a[j]) * np.float64(b[j])
                v, bad = _rd_srb(s, np.int64(0), mix64_inline(z), R, Q)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
    elif fam == FAM_FMA:
        if mc == MC_DET:
            for j in range(n):
                s, tnz = _ex_fma(a, b, c, j)
                v, bad = _rd_det(s, tnz, R)
                out[j] = v
                flag[j] = bad
                nbad += bad
        elif mc == MC_SRE:
            for j in range(n):
                s, tnz = _ex_fma(a, b, c, j)
                v, bad = _rd_sre(s, tnz, 1, mix64_inline(z), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
        else:
            for j in range(n):
                s, tnz = _ex_fma(a, b, c, j)
                v, bad = _rd_srb(s, tnz, mix64_inline(z), R, Q)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
    elif fam == FAM_DIV:
        if mc == MC_DET:
            for j in range(n):
                s, tnz = _ex_div(a, b, j, False)
                v, bad = _rd_det(s, np.int64(0), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
        elif mc == MC_SRE:
            for j in range(n):
                s, tnz = _ex_div(a, b, j, False)
                v, bad = _rd_sre(s, tnz, 0, mix64_inline(z), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
        else:
            for j in range(n):
                s, tnz = _ex_div(a, b, j, True)
                v, bad = _rd_srb(s, tnz, mix64_inline(z), R, Q)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
    elif fam == FAM_SQRT:
        if mc == MC_DET:
            for j in range(n):
                s, tnz = _ex_sqrt(a, j, False)
                v, bad = _rd_det(s, np.int64(0), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
        elif mc == MC_SRE:
            for j in range(n):
                s, tnz = _ex_sqrt(a, j, False)
                v, bad = _rd_sre(s, tnz, 0, mix64_inline(z), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
        else:
            for j in range(n):
                s, tnz = _ex_sqrt(a, j, True)
                v, bad = _rd_srb(s, tnz, mix64_inline(z), R, Q)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
    elif fam == FAM_UNARY:
        if mc == MC_DET:
            for j in range(n):
                s, tnz = _ex_unary(a, j, is_neg)
                v, bad = _rd_det(s, np.int64(0), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
        elif mc == MC_SRE:
            for j in range(n):
                s, tnz = _ex_unary(a, j, is_neg)
                v, bad = _rd_sre(s, tnz, 0, mix64_inline(z), R)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
        else:
            for j in range(n):
                s, tnz = _ex_unary(a, j, is_neg)
                v, bad = _rd_srb(s, tnz, mix64_inline(z), R, Q)
                out[j] = v
                flag[j] = bad
                nbad += bad
                z += STEP  # the counter of the next element
    return nbad


@njit(cache=True, inline="always")
def _split64(b, m, emin):
    # The fields of the float64 bits b seen from a format with m mantissa bits and
    # smallest normal exponent emin: the shift to its grid and the discarded bits.
    ef = (b >> 52) & 0x7FF
    neg = (b >> 63) & 1
    big_e = ef - _BIAS64
    sig = (b & _MANT64) | (np.int64(1) << 52)
    e_eff = big_e if big_e > emin else emin
    sh = 52 - m + (e_eff - big_e)
    tiny = np.int64(sh > 62)
    sh = 62 if sh > 62 else sh
    rem = sig & ((np.int64(1) << sh) - 1)
    return ef, neg, big_e, sig, e_eff, sh, tiny, rem


@njit(cache=True, inline="always")
def _finish(b, ef, neg, big_e, e_eff, kept, tiny, tail_bad, m, emin, bias, maxcode, subn_i,
            ftz_i, zsigned_i, zero_bad_i):
    # (value, bad): the rounded value kept * 2^(e_eff - m) with its sign, and whether the
    # scalar path must decide instead (specials, tiny or overflowing results, ...).
    nonzero = np.int64((b & 0x7FFFFFFFFFFFFFFF) != 0)
    one = np.int64(1) << m
    mag = ((e_eff + bias) << m) + kept - one
    flush = (ftz_i & np.int64(mag < one)) | (1 - nonzero)
    kept = kept * (1 - flush)
    mag = mag * (1 - flush)
    bad = np.int64(ef == 0x7FF) | (nonzero & (np.int64(ef == 0) | tiny |
                                              ((1 - subn_i) & np.int64(big_e < emin)))) \
        | tail_bad | np.int64(mag > maxcode) | (zero_bad_i & (1 - nonzero))
    sgn = neg & (np.int64(kept != 0) | zsigned_i)
    kf = np.int64(_TWO52_BITS | kept).view(np.float64) - _TWO52  # kept, exactly
    scale = np.int64((sgn << 63) | ((e_eff - m + _BIAS64) << 52)).view(np.float64)
    return kf * scale, bad


@njit(cache=True, inline="always")
def _round_general(b, tb, i, m, emin, bias, maxcode, subn_i, ftz_i, zsigned_i, zero_bad_i,
                   mode, sr_bits, key):
    # (value, bad) for one element whose result may lie below the format's normal range
    # (a shift that depends on the element); bad: the scalar path decides.
    ef, neg, big_e, sig, e_eff, sh, tiny, rem = _split64(b, m, emin)
    tnz = np.int64((tb & 0x7FFFFFFFFFFFFFFF) != 0)
    if mode == SR:
        r = rand64(key, i, 0)
        if sr_bits == 0:  # exact: up iff the first sh random bits < rem
            stream = np.int64(r >> np.uint64(64 - sh))
            up = np.int64(stream < rem)
            tail_bad = tnz & np.int64((rem == 0) | (stream == rem) | (stream + 1 == rem))
        else:
            urem = np.uint64(rem)
            if sh >= sr_bits:
                h = urem >> np.uint64(sh - sr_bits)
                tail_bad = tnz & np.int64((rem & ((np.int64(1) << (sh - sr_bits)) - 1)) == 0)
            else:
                h = urem << np.uint64(sr_bits - sh)
                tail_bad = tnz
            lim = np.uint64(1) << np.uint64(sr_bits)
            up = np.int64(h + (r >> np.uint64(64 - sr_bits)) >= lim)
        kept = (sig >> sh) + up
    else:
        ones = (np.int64(1) << sh) - 1
        half = np.int64(1) << (sh - 1)
        lsb = (sig >> sh) & 1
        add = np.int64(0)
        if mode == RNE:
            add = half - 1 + lsb
        elif mode == RNA:
            add = half
        elif (mode == RUP and neg == 0) or (mode == RDN and neg == 1):
            add = ones
        kept = (sig + add) >> sh
        # a tail matters only when s is on a midpoint (nearest) or on the grid (directed)
        tail_bad = tnz & np.int64(rem == half if (mode == RNE or mode == RNA) else rem == 0)
    return _finish(b, ef, neg, big_e, e_eff, kept, tiny, tail_bad, m, emin, bias, maxcode,
                   subn_i, ftz_i, zsigned_i, zero_bad_i)


@njit(cache=True, error_model="numpy")
def _max_bits(fp):
    """float64 bits of the format's largest finite value."""
    v = math.ldexp(float(fp[F_MAXSIG]), int(fp[F_EMAX] - fp[F_MAN]))
    return np.float64(v).view(np.int64)


@njit(cache=True, error_model="numpy")
def _scalar_value(kind, op, a, b, c, i, fp, mode, ovf, ftz, daz, key, sr_bits):
    """Element i by the scalar kernels above (the fast pass's fallback)."""
    x = flush_input(np.float64(a[i]), fp, daz)
    if kind == KIND_UNARY:
        return unary_value(op, x, fp, mode, ovf, ftz, key, i, sr_bits)
    y = flush_input(np.float64(b[i]), fp, daz)
    if kind == KIND_FMA:
        return fma_value(x, y, flush_input(np.float64(c[i]), fp, daz), fp, mode, ovf, ftz,
                         key, i, sr_bits)
    return binary_value(op, x, y, fp, mode, ovf, ftz, key, i, sr_bits)


# Not inlined: fast_array and fast_serial share one compiled copy (compile time).
@njit(cache=True, error_model="numpy")
def _fast_range(kind, op, a, b, c, start, stop, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    n = stop - start
    flag = np.empty(n, np.uint8)
    m, emin, bias, maxcode = fp[F_MAN], fp[F_EMIN], fp[F_BIAS], fp[F_MAXCODE]
    tiny = math.ldexp(1.0, int(emin)) if daz else 0.0
    zsigned_i = np.int64(fp[F_NAN_KIND] != NAN_NEG_ZERO)  # fnuz formats have no -0
    # IEEE's exact-zero sum is -0 under RDN, which float64 addition (in RNE) does not give
    zero_bad_i = np.int64(mode == RDN and (kind == KIND_FMA or (
        kind == KIND_BINARY and op != OP_MUL and op != OP_DIV)))
    # In the format's normal range the discarded field has a fixed width (52 - m bits)
    sh = np.int64(52 - m)
    ones = (np.int64(1) << sh) - 1
    half = np.int64(1) << (sh - 1)
    # per mode: c0, lsb_e, c1 of _rd_det and the discarded bits at which a tail matters
    c0, lsb_e, c1, tie = np.int64(0), np.int64(0), np.int64(0), np.int64(0)
    if mode == RNE:
        c0, lsb_e, tie = half - 1, np.int64(1), half
    elif mode == RNA:
        c0, tie = half, half
    elif mode == RUP:
        c0, c1 = ones, -ones
    elif mode == RDN:
        c1 = ones
    zsub = 1 - (zero_bad_i | (1 - zsigned_i))
    R = (sh, ones, zsub,
         ((emin + _BIAS64) << 52) - zsub,  # bits of 2^emin, the format's smallest normal
         np.int64(0x7FF) << 52,  # bits of inf
         _max_bits(fp), c0, lsb_e, c1, tie)
    d = sh - sr_bits
    dpos = d if d > 0 else 0
    Q = (dpos, -d if d < 0 else 0, (np.int64(1) << dpos) - 1, 64 - sr_bits,
         np.int64(1) << sr_bits)
    mc = MC_DET if mode != SR else (MC_SRE if sr_bits == 0 else MC_SRB)
    if kind == KIND_FMA:
        fam = FAM_FMA
    elif kind == KIND_UNARY:
        fam = FAM_SQRT if op == OP_SQRT else FAM_UNARY
    else:
        fam = FAM_MUL if op == OP_MUL else (FAM_DIV if op == OP_DIV else FAM_ADD)
    av, bv, cv = a[start:stop], b[start:stop], c[start:stop]
    if daz:
        av = _prepared(av, tiny, 1.0)
        if kind == KIND_FMA:
            cv = _prepared(cv, tiny, 1.0)
    if (daz and kind != KIND_UNARY) or (kind == KIND_BINARY and op == OP_SUB):
        bv = _prepared(bv, tiny, -1.0 if kind == KIND_BINARY and op == OP_SUB else 1.0)
    nbad = _fast_loops(fam, av, bv, cv, n, op == OP_NEG, mc, R, Q,
                       counter(word_base(key, 0), start), out[start:stop], flag)
    if nbad:
        subn_i = np.int64(fp[F_SUBN])
        ftz_i = np.int64(ftz)
        for j in range(n):
            if flag[j]:
                i = start + j
                s, t = _exact_pair(kind, op, a, b, c, i, tiny)
                v, bad = _round_general(np.float64(s).view(np.int64),
                                        np.float64(t).view(np.int64), i, m, emin, bias,
                                        maxcode, subn_i, ftz_i, zsigned_i, zero_bad_i, mode,
                                        sr_bits, key)
                if bad:
                    v = _scalar_value(kind, op, a, b, c, i, fp, mode, ovf, ftz, daz, key,
                                      sr_bits)
                out[i] = v


@njit(cache=True, parallel=True, error_model="numpy")
def fast_array(kind, op, a, b, c, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[i] = op(a[i], b[i], c[i]) rounded once into the format (``kind``: KIND_BINARY
    with a binary op id but max/min, KIND_UNARY with a unary op id, KIND_FMA); flat arrays
    of equal size (``b``/``c`` ignored where the operation has fewer operands), ``out``
    float32 or float64, ``fp`` the format tuple. Only where :func:`fast_applies`. Tasks are
    chunks of _CHUNK elements; the stochastic stream of element i is (key, i) whatever the
    chunking."""
    nchunks = (out.size + _CHUNK - 1) // _CHUNK
    for ch in prange(nchunks):
        start = ch * _CHUNK
        stop = min(start + _CHUNK, out.size)
        _fast_range(kind, op, a, b, c, start, stop, fp, mode, ovf, ftz, daz, key, sr_bits, out)


# Serial twin: waking the thread pool costs far more than a small array.
@njit(cache=True, error_model="numpy")
def fast_serial(kind, op, a, b, c, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """Serial twin of :func:`fast_array` for small arrays."""
    for start in range(0, out.size, _CHUNK):
        _fast_range(kind, op, a, b, c, start, min(start + _CHUNK, out.size), fp, mode, ovf,
                    ftz, daz, key, sr_bits, out)
