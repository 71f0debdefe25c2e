"""Conversion kernels: IEEE binary inputs (as raw bits) to codes of any format, and back.

One path for every float format, driven by the parameter vector of :mod:`.layout`; one
for every fixed-point format. Inputs arrive as unsigned views of float16/32/64 arrays
together with the input layout, so float64 values are rounded from their own bits (no
double rounding through float32) and float32 values need no widening pass.
"""

import math

import numpy as np
from numba import njit, prange

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
