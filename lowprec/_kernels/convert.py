"""Conversion kernels: IEEE binary inputs (as raw bits) to codes of any format, and back.

One path for every float format, driven by the parameter vector of :mod:`.layout`; one
for every fixed-point format. Inputs arrive as unsigned views of float16/32/64 arrays
together with the input layout, so float64 values are rounded from their own bits (no
double rounding through float32) and float32 values need no widening pass.
"""

import math

import numpy as np
from .jit import njit, prange

from ..ids import (M_DOWN, M_RTO, NAN_ALL_ONES, NAN_IEEE, NAN_NEG_ZERO, OVF_SATURATE, OVF_WRAP,
                   RDN, RNA, RNE, RTO, RUP, SR)
from .core import bitlen, fixed_tuple, float_tuple, magnitude_mode, round_sig, split_float
from .layout import (
    F_BIAS, F_EMAX, F_EMIN, F_EXPMASK, F_HAS_INF, F_HAS_NAN, F_INF, F_MAN, F_MAXCODE, F_MAXSIG,
    F_NAN_KIND, F_NAN_NEG, F_NAN_POS, F_SIGNBIT, F_SIGNED, F_SUBN, F_ZERO, X_BITS, X_FRAC,
    X_MAXINT, X_MININT, X_NAN_CODE,
)
from .random import rand64


@njit(cache=True, inline="always")
def _nan_code(neg, fp):
    return fp[F_NAN_NEG] if neg else fp[F_NAN_POS]


@njit(cache=True, inline="always")
def _overflow_code(neg, mmode, ovf, fp):
    sgn = fp[F_SIGNBIT] if neg else 0
    if ovf == OVF_SATURATE or mmode == M_DOWN or mmode == M_RTO:
        return sgn | fp[F_MAXCODE]
    if fp[F_HAS_INF] == 1:
        return sgn | fp[F_INF]
    if fp[F_HAS_NAN] == 1:
        return _nan_code(neg, fp)
    return sgn | fp[F_MAXCODE]


@njit(cache=True, inline="always")
def _zero_code(neg, fp):
    if neg and fp[F_SIGNED] == 1 and fp[F_NAN_KIND] != NAN_NEG_ZERO:
        return fp[F_SIGNBIT]
    return np.int64(0)


@njit(cache=True, inline="always")
def _inf_code(neg, ovf, fp):
    sgn = fp[F_SIGNBIT] if neg else 0
    if neg and fp[F_SIGNED] == 0:
        return fp[F_NAN_POS] if fp[F_HAS_NAN] == 1 else np.int64(0)
    if ovf != OVF_SATURATE:
        if fp[F_HAS_INF] == 1:
            return sgn | fp[F_INF]
        if fp[F_HAS_NAN] == 1:
            return _nan_code(neg, fp)
    return sgn | fp[F_MAXCODE]


@njit(cache=True, inline="always")
def _zero_input_code(neg, fp):
    if fp[F_ZERO] == 0:  # no zero to round to (E8M0): NaN, as ml_dtypes does
        return fp[F_NAN_POS]
    return _zero_code(neg, fp)


@njit(cache=True)
def encode_float_parts(neg, sig, e, big_e, lo_sig, lo_e, lo_neg, fp, mode, ovf, ftz, key, idx,
                       sr_bits):
    """Code of the finite non-zero value (-1)^neg (sig*2^e + tail) in a float format.

    ``big_e`` is floor(log2(sig * 2^e)). ``mode`` is a lowprec.rounding id, ``ovf`` an
    overflow id, ``ftz`` flushes subnormal results to zero. See :func:`.core.round_sig`
    for the tail's preconditions.
    """
    if neg and fp[F_SIGNED] == 0:
        return fp[F_NAN_POS] if fp[F_HAS_NAN] == 1 else np.int64(0)
    m = fp[F_MAN]
    emin = fp[F_EMIN]
    if lo_sig != 0 and lo_neg and (sig & (sig - 1)) == 0:
        big_e -= 1  # a power of two minus a tail lies in the binade below
    mmode = magnitude_mode(mode, neg)
    one = np.int64(1) << m
    if big_e < emin and fp[F_SUBN] == 0:
        # Grid below the smallest normal is {0, 2^emin} (or just 2^emin without zero).
        kept, inexact = round_sig(sig, e, lo_sig, lo_e, lo_neg, emin, mmode, key, idx, sr_bits)
        if kept == 0 and fp[F_ZERO] == 1:
            return _zero_code(neg, fp)
        kept = one  # 2^emin (a format without zero has nothing below it)
        q = emin - m
    else:
        q = (big_e if big_e > emin else emin) - m
        kept, inexact = round_sig(sig, e, lo_sig, lo_e, lo_neg, q, mmode, key, idx, sr_bits)
        if kept == 0:
            return _zero_code(neg, fp)
        if kept >= (one << 1):
            kept >>= 1
            q += 1
    sgn = fp[F_SIGNBIT] if neg else 0
    if kept < one:  # subnormal result (q == emin - m here)
        if ftz:
            return _zero_code(neg, fp)
        return sgn | kept
    big_r = q + m
    if big_r > fp[F_EMAX] or (big_r == fp[F_EMAX] and kept > fp[F_MAXSIG]):
        return _overflow_code(neg, mmode, ovf, fp)
    return sgn | ((big_r + fp[F_BIAS]) << m) | (kept - one)


@njit(cache=True)
def _encode_float_bits(b, in_m, in_ebits, in_bias, fp, mode, ovf, ftz, key, idx, sr_bits):
    ub = np.uint64(b)
    neg = (ub >> np.uint64(in_m + in_ebits)) & np.uint64(1) == np.uint64(1)
    ef = np.int64((ub >> np.uint64(in_m)) & np.uint64((1 << in_ebits) - 1))
    mf = np.int64(ub & np.uint64((np.int64(1) << in_m) - 1))
    if ef == (1 << in_ebits) - 1:
        if mf != 0:
            return _nan_code(neg, fp)
        return _inf_code(neg, ovf, fp)
    if ef == 0:
        if mf == 0:
            return _zero_input_code(neg, fp)
        sig = mf
        e = 1 - in_bias - in_m
        big_e = e + bitlen(sig) - 1
    else:
        sig = mf | (np.int64(1) << in_m)
        e = ef - in_bias - in_m
        big_e = ef - in_bias
    return encode_float_parts(neg, sig, e, big_e, 0, 0, False, fp, mode, ovf, ftz, key, idx,
                              sr_bits)


@njit(cache=True, inline="always")
def _fast_code(b, in_m, in_ebits, in_bias, m, emin, maxcode, bias, sbit, zsbit, subn, ftz,
               k_half, k_lsb, k_rna, up_pos, up_neg, ovf_pos, ovf_neg, sr, sr_bits, key, i):
    """Code for the common case, or -1 when the general path must decide.

    Common case: a normal input, any result (normal, subnormal, zero or overflowing), and
    RNE/RNA/RTZ/RUP/RDN or SR. ``zsbit`` is the sign bit a zero result may carry (0 for
    the fnuz formats, whose 1000...0 code is NaN). Written without data-dependent branches so that LLVM
    can vectorise the loop. IEEE encodings are monotone, so ``((E + bias) << m) + kept -
    2^m`` encodes subnormal results (E = emin) and carries into the next binade alike.
    Stochastic decisions read the random stream exactly as :func:`.core.round_sig` does,
    so both paths give identical results.
    """
    ub = np.int64(b)
    emask = (np.int64(1) << in_ebits) - 1
    ef = (ub >> in_m) & emask
    big_e = ef - in_bias
    neg = (ub >> (in_m + in_ebits)) & 1
    sig = (ub & ((np.int64(1) << in_m) - 1)) | (np.int64(1) << in_m)
    e_eff = big_e if big_e > emin else emin
    sh = in_m - m + (e_eff - big_e)
    tiny = sh > 62
    sh = 62 if tiny else sh
    ones = (np.int64(1) << sh) - 1
    if sr:
        rem = sig & ones
        r = rand64(key, i, 0)
        if sr_bits == 0:  # exact: up iff the first `sh` random bits < rem
            up = np.int64((r >> np.uint64(64 - sh)) < np.uint64(rem))
        else:
            if sh >= sr_bits:
                h = np.uint64(rem >> (sh - sr_bits))
            else:
                h = np.uint64(rem) << np.uint64(sr_bits - sh)
            lim = np.uint64(1) << np.uint64(sr_bits)
            up = np.int64(h + (r >> np.uint64(64 - sr_bits)) >= lim)
        kept = (sig >> sh) + up
    else:
        half_m1 = ones >> 1
        lsb = (sig >> sh) & 1
        add = half_m1 + lsb if k_lsb else (half_m1 + 1 if k_rna else np.int64(0))
        add = add if k_half else (ones if (up_pos & (neg == 0)) | (up_neg & (neg == 1))
                                  else np.int64(0))
        kept = (sig + add) >> sh
    mag = ((e_eff + bias) << m) + kept - (np.int64(1) << m)
    if ftz and mag < (np.int64(1) << m):
        mag = np.int64(0)
    bad = (ef == 0) | (ef == emask) | tiny | ((subn == 0) & (big_e < emin))
    if bad:
        return np.int64(-1)
    if mag > maxcode:
        return ovf_neg if neg else ovf_pos
    return mag | ((sbit if mag != 0 else zsbit) * neg)


@njit(cache=True)
def _fast_constants(mode, ovf, fp):
    """Per-call constants of the fast pass: (k_half, k_lsb, k_rna, up_pos, up_neg,
    ovf_pos, ovf_neg). Rounding adds half-1 plus the kept LSB (RNE) or half (RNA) below
    the kept bit, nothing (RTZ), or all ones there for RUP (positive) / RDN (negative)
    values; overflow codes per sign."""
    k_half = np.int64(1) if mode == RNE or mode == RNA else np.int64(0)
    k_lsb = np.int64(1) if mode == RNE else np.int64(0)
    k_rna = np.int64(1) if mode == RNA else np.int64(0)
    up_pos = np.int64(1) if mode == RUP else np.int64(0)
    up_neg = np.int64(1) if mode == RDN else np.int64(0)
    ovf_pos = _overflow_code(False, magnitude_mode(mode, False), ovf, fp)
    ovf_neg = _overflow_code(True, magnitude_mode(mode, True), ovf, fp)
    return k_half, k_lsb, k_rna, up_pos, up_neg, ovf_pos, ovf_neg


@njit(cache=True)
def _fast_applies(fp, mode, in_m):
    # RTO, unsigned formats, formats without zero and targets as wide as the input take
    # the general path
    return (mode != RTO and fp[F_SIGNED] == 1 and fp[F_ZERO] == 1 and in_m > fp[F_MAN])


@njit(cache=True, inline="always")
def _encode_range(bits, start, stop, in_m, in_ebits, in_bias, fp, mode, ovf, ftz, key,
                  sr_bits, out, flag):
    # pass 1: the branch-free common case over the whole range; pass 2: the rest
    if _fast_applies(fp, mode, in_m):
        kh, kl, kr, upp, upn, ovp, ovn = _fast_constants(mode, ovf, fp)
        sr = mode == SR
        m, emin, bias, sbit, subn = fp[F_MAN], fp[F_EMIN], fp[F_BIAS], fp[F_SIGNBIT], fp[F_SUBN]
        maxcode = fp[F_MAXCODE]
        zsbit = _zero_code(True, fp)
        nbad = 0
        for i in range(start, stop):
            c = _fast_code(bits[i], in_m, in_ebits, in_bias, m, emin, maxcode, bias, sbit,
                           zsbit, subn, ftz, kh, kl, kr, upp, upn, ovp, ovn, sr, sr_bits, key, i)
            out[i] = c
            flag[i - start] = c < 0
            nbad += c < 0
        if nbad:
            for i in range(start, stop):
                if flag[i - start]:
                    out[i] = _encode_float_bits(bits[i], in_m, in_ebits, in_bias, fp, mode,
                                                ovf, ftz, key, i, sr_bits)
    else:
        for i in range(start, stop):
            out[i] = _encode_float_bits(bits[i], in_m, in_ebits, in_bias, fp, mode, ovf, ftz,
                                        key, i, sr_bits)


_BLOCK = 1 << 14  # elements per parallel task (its flags stay in L1)


@njit(cache=True, parallel=True)
def encode_float_array(bits, in_m, in_ebits, in_bias, fp, mode, ovf, ftz, key, sr_bits, out):
    """Encode every element of ``bits`` (raw IEEE patterns, flat) into ``out`` (flat)."""
    fp = float_tuple(fp)
    nblocks = (bits.size + _BLOCK - 1) // _BLOCK
    for blk in prange(nblocks):
        start = blk * _BLOCK
        stop = min(start + _BLOCK, bits.size)
        flag = np.empty(stop - start, np.bool_)
        _encode_range(bits, start, stop, in_m, in_ebits, in_bias, fp, mode, ovf, ftz, key,
                      sr_bits, out, flag)


# Serial twin: waking the thread pool costs far more than converting a small array.
@njit(cache=True)
def encode_float_serial(bits, in_m, in_ebits, in_bias, fp, mode, ovf, ftz, key, sr_bits, out):
    """Serial twin of :func:`encode_float_array` for small arrays."""
    fp = float_tuple(fp)
    flag = np.empty(bits.size, np.bool_)
    _encode_range(bits, 0, bits.size, in_m, in_ebits, in_bias, fp, mode, ovf, ftz, key,
                  sr_bits, out, flag)


@njit(cache=True)
def decode_float_code(code, fp):
    """float64 value of one code of a float format."""
    m = fp[F_MAN]
    c = np.int64(code)
    neg = fp[F_SIGNED] == 1 and (c & fp[F_SIGNBIT]) != 0
    mag = c & (fp[F_SIGNBIT] - 1) if fp[F_SIGNED] == 1 else c
    ef = mag >> m
    mf = mag & ((np.int64(1) << m) - 1)
    kind = fp[F_NAN_KIND]
    if fp[F_HAS_NAN] == 1:
        if kind == NAN_IEEE and ef == fp[F_EXPMASK] and mf != 0:
            return np.nan
        if kind == NAN_ALL_ONES and mag == ((fp[F_EXPMASK] << m) | ((np.int64(1) << m) - 1)):
            return np.nan
        if kind == NAN_NEG_ZERO and c == fp[F_SIGNBIT]:
            return np.nan
    if fp[F_HAS_INF] == 1 and ef == fp[F_EXPMASK]:
        return -np.inf if neg else np.inf
    if ef == 0 and fp[F_ZERO] == 1:
        if fp[F_SUBN] == 1:
            v = math.ldexp(float(mf), int(fp[F_EMIN] - m))
        else:
            v = 0.0
    else:
        v = math.ldexp(float(mf | (np.int64(1) << m)), int(ef - fp[F_BIAS] - m))
    return -v if neg else v


@njit(cache=True, parallel=True)
def decode_float_array(codes, fp, out):
    """Decode every code (flat) of a float format into ``out`` (flat)."""
    fp = float_tuple(fp)
    for i in prange(codes.size):
        out[i] = decode_float_code(codes[i], fp)


@njit(cache=True)
def decode_float_serial(codes, fp, out):
    """Serial twin of :func:`decode_float_array`."""
    fp = float_tuple(fp)
    for i in range(codes.size):
        out[i] = decode_float_code(codes[i], fp)


@njit(cache=True)
def encode_pair_code(x, lo, fp, mode, ovf, ftz, key, idx, sr_bits):
    """Code of the exact value ``x + lo`` (float64 pair, |lo| <= ulp(x)/2) in a float
    format: the path of exact results (error-free transformations) and of inputs wider
    than float64's significand (integers beyond 2^53, long doubles)."""
    if x != x:
        return _nan_code(math.copysign(1.0, x) < 0, fp)
    if math.isinf(x):
        return _inf_code(x < 0, ovf, fp)
    if x == 0.0:
        return _zero_input_code(math.copysign(1.0, x) < 0, fp)
    neg, sig, e = split_float(x)
    lo_sig = np.int64(0)
    lo_e = np.int64(0)
    lo_neg = False
    if lo != 0.0:
        lneg, lo_sig, lo_e = split_float(lo)
        lo_neg = lneg != neg  # tail direction relative to the magnitude
    return encode_float_parts(neg, sig, e, e + 52, lo_sig, lo_e, lo_neg, fp, mode, ovf, ftz,
                              key, idx, sr_bits)


@njit(cache=True)
def round_float_value(x, lo, fp, mode, ovf, ftz, key, idx, sr_bits):
    """Round the exact value ``x + lo`` (float64 pair, |lo| <= ulp(x)/2) into a float
    format and return it as a float64 (inf/NaN where the format's policy says so)."""
    if x != x:
        return np.nan
    return decode_float_code(encode_pair_code(x, lo, fp, mode, ovf, ftz, key, idx, sr_bits),
                             fp)


@njit(cache=True, parallel=True)
def encode_pair_array(hi, lo, fp, mode, ovf, ftz, key, sr_bits, out):
    """Encode the exact values ``hi[i] + lo[i]`` (flat float64 pairs) into a float format."""
    fp = float_tuple(fp)
    for i in prange(hi.size):
        out[i] = encode_pair_code(hi[i], lo[i], fp, mode, ovf, ftz, key, i, sr_bits)


@njit(cache=True)
def _encode_fixed_bits(b, in_m, in_ebits, in_bias, xp, mode, ovf, key, idx, sr_bits):
    ub = np.uint64(b)
    neg = (ub >> np.uint64(in_m + in_ebits)) & np.uint64(1) == np.uint64(1)
    ef = np.int64((ub >> np.uint64(in_m)) & np.uint64((1 << in_ebits) - 1))
    mf = np.int64(ub & np.uint64((np.int64(1) << in_m) - 1))
    nbits = xp[X_BITS]
    wmask = (np.int64(1) << nbits) - 1
    if ef == (1 << in_ebits) - 1:
        if mf != 0:
            return xp[X_NAN_CODE]
        return (xp[X_MININT] if neg else xp[X_MAXINT]) & wmask
    if ef == 0 and mf == 0:
        return np.int64(0)
    if ef == 0:
        sig = mf
        e = 1 - in_bias - in_m
    else:
        sig = mf | (np.int64(1) << in_m)
        e = ef - in_bias - in_m
    return encode_fixed_parts(neg, sig, e, xp, mode, ovf, key, idx, sr_bits)


@njit(cache=True)
def encode_fixed_parts(neg, sig, e, xp, mode, ovf, key, idx, sr_bits):
    """Two's complement word of (-1)^neg sig*2^e in a fixed-point format."""
    q = -xp[X_FRAC]
    nbits = xp[X_BITS]
    wmask = (np.int64(1) << nbits) - 1
    mmode = magnitude_mode(mode, neg)
    big_e = e + bitlen(sig) - 1
    if big_e - q >= 40:  # far beyond any 32-bit word
        if ovf != OVF_WRAP:
            return (xp[X_MININT] if neg else xp[X_MAXINT]) & wmask
        s = e - q
        if s >= 0:  # an integer multiple of the resolution: only its low bits survive
            if s >= nbits:
                return np.int64(0)
            v = (sig << s) & wmask
            return ((-v) & wmask) if neg else v
        # s < 0: sig >> -s has at most 52 bits, so the general rounding below is exact
    kept, inexact = round_sig(sig, e, 0, 0, False, q, mmode, key, idx, sr_bits)
    v = -kept if neg else kept
    if v > xp[X_MAXINT] or v < xp[X_MININT]:
        if ovf == OVF_WRAP:
            return v & wmask
        v = xp[X_MAXINT] if v > xp[X_MAXINT] else xp[X_MININT]
    return v & wmask


@njit(cache=True, parallel=True)
def encode_fixed_array(bits, in_m, in_ebits, in_bias, xp, mode, ovf, key, sr_bits, out):
    """Encode every element (raw IEEE patterns, flat) into fixed-point words."""
    xp = fixed_tuple(xp)
    for i in prange(bits.size):
        out[i] = _encode_fixed_bits(bits[i], in_m, in_ebits, in_bias, xp, mode, ovf, key, i,
                                    sr_bits)


@njit(cache=True)
def encode_fixed_serial(bits, in_m, in_ebits, in_bias, xp, mode, ovf, key, sr_bits, out):
    """Serial twin of :func:`encode_fixed_array`."""
    xp = fixed_tuple(xp)
    for i in range(bits.size):
        out[i] = _encode_fixed_bits(bits[i], in_m, in_ebits, in_bias, xp, mode, ovf, key, i,
                                    sr_bits)


@njit(cache=True)
def decode_fixed_array(codes, xp, out):
    """Decode fixed-point words (flat) into values."""
    xp = fixed_tuple(xp)
    nbits = xp[X_BITS]
    for i in range(codes.size):
        v = np.int64(codes[i]) & ((np.int64(1) << nbits) - 1)
        if xp[X_MININT] < 0 and v >= (np.int64(1) << (nbits - 1)):
            v -= np.int64(1) << nbits
        out[i] = math.ldexp(float(v), int(-xp[X_FRAC]))


# --- float32 fast pass ------------------------------------------------------------------
# float32 inputs into the common formats (signed, with zero and subnormals, emin >= -126,
# fewer mantissa bits than float32; lowprec.quantize checks this) under RNE/RNA/RTZ/RUP/RDN
# (never RTO or SR, whose results stay on the paths above): one branch-free pass over
# the raw bits, so that LLVM vectorises the loop (8 lanes of 32 bits with AVX2); infinities
# and NaNs, flagged on the way, are patched in a second pass when there are any. Every
# quantity is an integer (no float tricks, no fastmath): the rounding is "add the rounding
# increment below the kept bit, then shift", as in _fast_code. Constants are a tuple
# unpacked once per call (see float_tuple's comment). quantize has its own loop that
# writes float32 values straight from the rounded code, without a decode table.

_F32_BLOCK = 1 << 16  # elements per task: big enough to amortise a thread's start
_U = np.uint32  # the fast pass computes in 32 bits: twice the lanes of int64
_I = np.int32


@njit(cache=True)
def _f32_of_code(code, fp):
    """float32 bits of a code's value (NaN codes give the quiet NaN 0x7FC00000)."""
    return np.float32(decode_float_code(code, fp)).view(np.uint32)


@njit(cache=True)
def _f32_consts(fp, mode, ovf, ftz):
    """Per-call constants of the float32 fast pass, derived from the format vector."""
    fp = float_tuple(fp)
    m = fp[F_MAN]
    d = 23 - m
    all1 = np.int64(-1)
    zero = np.int64(0)
    ovp = _overflow_code(False, magnitude_mode(mode, False), ovf, fp)
    ovn = _overflow_code(True, magnitude_mode(mode, True), ovf, fp)
    k1 = (fp[F_EMIN] - m) // 2
    k2 = fp[F_EMIN] - m - k1
    return (_U(m), _I(d), _I(d + fp[F_EMIN] + 127), _I(128 - fp[F_BIAS]), _I(fp[F_MAXCODE]),
            _U(fp[F_SIGNBIT]), _U(_zero_code(True, fp)),
            _U(all1 if mode == RNA else zero),  # masks choosing the rounding increment
            _U(all1 if mode == RUP else zero),  # all discarded ones: positive values ...
            _U(all1 if mode == RDN else zero),  # ... negative values
            _I((np.int64(1) << m) if ftz else zero),
            _U(ovp), _U(ovn),
            # for values: normal codes shift into float32's fields, subnormal ones scale by
            # 2^(emin - m) in two normal factors (a subnormal operand would cost a
            # microcode assist on every element, the normal ones included)
            _I((127 - fp[F_BIAS]) << 23), np.float32(math.ldexp(1.0, int(k1))),
            _f32_of_code(ovp, fp), _f32_of_code(ovn, fp),
            _U(0x80000000 if _zero_code(True, fp) != 0 else 0),
            _U(all1 if mode == RNE else zero), np.float32(math.ldexp(1.0, int(k2))))


@njit(cache=True, inline="always")
def _f32_mag(a, neg, c, rne):
    """Magnitude code (int32) of the finite float32 whose bits without sign are ``a``.

    With ``efc = max(exponent field, 1)``, ``sig = a - ((efc - 1) << 23)`` is the integer
    significand (implicit bit included for normal inputs) and ``max(efc - (128 - bias), 0)
    << m`` plus the rounded significand encodes normal and subnormal results alike (a carry
    out of the significand moves into the exponent field); the sum exceeds the max code
    exactly when the rounded value overflows. Shifts past 25 change nothing (the
    significand has 24 bits), so they are clamped there. numba widens integer arithmetic
    to 64 bits; every intermediate is cast back to 32 bits so that LLVM narrows the
    operations (all values fit: the largest is below 2^27).
    """
    m, d, k_sh, k_e = c[0], c[1], c[2], c[3]
    m = m & _U(31)  # known to be < 32: lets LLVM keep the shift in 32 bits
    efc = max(_I(a >> _U(23)), _I(1))
    sig = _U(a - _U(_U(efc - _I(1)) << _U(23)))
    # an unsigned min tells LLVM that sh < 32, so it narrows the shifts too
    sh = min(_U(max(_I(k_sh - efc), d)), _U(25))
    # the increment below the kept bit: half - 1 + kept LSB (RNE), half (RNA), all
    # discarded ones (RUP for positive, RDN for negative values) or nothing (RTZ)
    ones = _U(_U(_U(1) << sh) - _U(1))
    if rne:  # its own copy of the loop: the common mode, ~10% faster
        add = _U(_U(ones >> _U(1)) + _U(_U(sig >> sh) & _U(1)))
    else:
        add = _U(_U(_U(ones >> _U(1)) + _U(1)) & c[7]) | _U(ones & (c[9] if neg else c[8]))
    # signed compares from here: AVX2 has no unsigned ones
    mag = _I(_U(_U(max(_I(efc - k_e), _I(0))) << m) + _U(_U(sig + add) >> sh))
    return _I(0) if mag < c[10] else mag


@njit(cache=True)
def _f32_code(b, c, rne):
    """Code of the finite float32 with bits ``b`` (uint32)."""
    neg = _I(b) < _I(0)
    mag = _f32_mag(_U(b & _U(0x7FFFFFFF)), neg, c, rne)
    sgn = (c[5] if mag != _I(0) else c[6]) if neg else _U(0)
    return (c[12] if neg else c[11]) if mag > c[4] else _U(_U(mag) | sgn)


@njit(cache=True)
def _f32_value(b, c, rne):
    """float32 bits of the rounded value of the finite float32 with bits ``b``."""
    neg = _I(b) < _I(0)
    mag = _f32_mag(_U(b & _U(0x7FFFFFFF)), neg, c, rne)
    one = _I(_I(1) << _I(c[0] & _U(31)))
    normal = _U(_I(mag << _I(c[1] & 31)) + c[13])
    # exact: a small integer times powers of two, subnormal only if the value is
    sub = np.float32(np.float32(np.float32(mag) * c[14]) * c[19]).view(np.uint32)
    v = normal if mag >= one else sub
    sgn = (_U(0x80000000) if mag != _I(0) else c[17]) if neg else _U(0)
    return (c[16] if neg else c[15]) if mag > c[4] else _U(v | sgn)


@njit(cache=True)
def _is_special(b):
    # exponent field all ones (inf or NaN), as a 32-bit flag: an OR of them stays 32-bit
    return _U(_U(b & _U(0x7F800000)) == _U(0x7F800000))


@njit(cache=True, inline="always")
def _f32_special_code(b, fp, ovf):
    neg = b > 0x7FFFFFFF
    if (b & 0x7FFFFF) != 0:
        return _nan_code(neg, fp)
    return _inf_code(neg, ovf, fp)


@njit(cache=True)
def _f32_encode_range(x, start, stop, c, fp, ovf, out):
    # slices indexed from 0: numba's negative-index wraparound then folds away
    xb = x[start:stop].view(np.uint32)  # raw bits: a float load vectorises worse
    out = out[start:stop]
    special = _U(0)
    if c[18]:  # RNE
        for i in range(xb.size):
            b = xb[i]
            out[i] = _f32_code(b, c, True)
            special = _U(special | _is_special(b))
    else:
        for i in range(xb.size):
            b = xb[i]
            out[i] = _f32_code(b, c, False)
            special = _U(special | _is_special(b))
    nnan = 0
    if special:  # rare: infinities and NaNs
        for i in range(xb.size):
            b = xb[i]
            if _is_special(b):
                out[i] = _f32_special_code(b, fp, ovf)
                nnan += (b & 0x7FFFFF) != 0
    return nnan


@njit(cache=True)
def _f32_quantize_range(x, start, stop, c, fp, ovf, out):
    # slices indexed from 0: numba's negative-index wraparound then folds away
    xb = x[start:stop].view(np.uint32)  # raw bits: a float load vectorises worse
    out = out[start:stop]
    special = _U(0)
    if c[18]:  # RNE
        for i in range(xb.size):
            b = xb[i]
            out[i] = _U(_f32_value(b, c, True)).view(np.float32)
            special = _U(special | _is_special(b))
    else:
        for i in range(xb.size):
            b = xb[i]
            out[i] = _U(_f32_value(b, c, False)).view(np.float32)
            special = _U(special | _is_special(b))
    nnan = 0
    if special:
        for i in range(xb.size):
            b = xb[i]
            if _is_special(b):
                out[i] = _U(_f32_of_code(_f32_special_code(b, fp, ovf), fp)).view(np.float32)
                nnan += (b & 0x7FFFFF) != 0
    return nnan


# Serial kernels walk the array in blocks too, so that the flags stay 32-bit and the
# patch pass re-reads a block that is still in cache.
@njit(cache=True)
def encode_f32_serial(x, fp, mode, ovf, ftz, out):
    """Codes of a float32 array (flat) in a float format, serially.

    Only for the formats and modes named at the top of this section. Returns the number
    of NaN inputs (the caller raises for formats without NaN under the "raise" policy).
    """
    c = _f32_consts(fp, mode, ovf, ftz)
    ft = float_tuple(fp)
    nnan = 0
    for start in range(0, x.size, _F32_BLOCK):
        nnan += _f32_encode_range(x, start, min(start + _F32_BLOCK, x.size), c, ft, ovf, out)
    return nnan


@njit(cache=True, parallel=True)
def encode_f32_parallel(x, fp, mode, ovf, ftz, out):
    """Threaded twin of :func:`encode_f32_serial` (blocks of independent elements)."""
    c = _f32_consts(fp, mode, ovf, ftz)
    ft = float_tuple(fp)
    nnan = 0
    for blk in prange((x.size + _F32_BLOCK - 1) // _F32_BLOCK):
        start = blk * _F32_BLOCK
        nnan += _f32_encode_range(x, start, min(start + _F32_BLOCK, x.size), c, ft, ovf, out)
    return nnan


@njit(cache=True)
def quantize_f32_serial(x, fp, mode, ovf, ftz, out):
    """Rounded values (float32, flat) of a float32 array in a float format, serially.

    Only where :func:`encode_f32_serial` applies and every value of the format is a
    float32.
    Returns the number of NaN inputs.
    """
    c = _f32_consts(fp, mode, ovf, ftz)
    ft = float_tuple(fp)
    nnan = 0
    for start in range(0, x.size, _F32_BLOCK):
        nnan += _f32_quantize_range(x, start, min(start + _F32_BLOCK, x.size), c, ft, ovf, out)
    return nnan


@njit(cache=True, parallel=True)
def quantize_f32_parallel(x, fp, mode, ovf, ftz, out):
    """Threaded twin of :func:`quantize_f32_serial`."""
    c = _f32_consts(fp, mode, ovf, ftz)
    ft = float_tuple(fp)
    nnan = 0
    for blk in prange((x.size + _F32_BLOCK - 1) // _F32_BLOCK):
        start = blk * _F32_BLOCK
        nnan += _f32_quantize_range(x, start, min(start + _F32_BLOCK, x.size), c, ft, ovf,
                                    out)
    return nnan
