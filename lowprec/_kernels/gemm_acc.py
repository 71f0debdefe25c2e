"""Tiled, column-vectorised exact accumulation in a narrow float format.

The same results as :func:`lowprec._kernels.gemm.gemm_acc` (its documented order, rounding
and stochastic-rounding stream), computed many output columns side by side: every
accumulation step is a branch-free operation over a row of columns, which LLVM vectorises.

One step, for every column: the product p = a[i,k] * b[k,j] is exact in float64 (inputs
hold at most 24 significant bits); the sum d + p is the exact TwoSum pair (s, e); the exact
value v = s + e is rounded once into the accumulator format. Modes rne, rna, rtz, rup, rdn
and sr use float operations (:func:`_round_step_f`): the quantum q (a power of two from the
exponent field of |s|, clamped at 2^emin for subnormals) scales |s| exactly, floor and
fraction are exact, and the tail e breaks ties and steps below grid points. Round to odd
uses integer operations on the float64 bit pattern (:func:`_round_step`): with f the
float64 at or just below |v|, |v| lies in [f, f + ulp(f)), strictly inside when e != 0, and
f's significand shifted right by sh (at least 29 bits, as the accumulator has at most 24)
plus "something more" when e != 0 decides the mode exactly.

Stochastic rounding reads the same counter stream as the scalar kernel (rand64(key, idx,
0), idx = o * (2K + 2) + 2k + 1 for the sum, + 2k for the product) and rounds up when the
stream, read as a binary fraction U, is below the exact discarded fraction f: the first 52
bits u bound U to [u, u + 2^-52) and f is known to within 2^-54, which decides all but a
2^-51 sliver of cases; that sliver is flagged. This is the scalar kernel's exact
comparison, so results are bit-identical to it.

What the fast step does not decide is flagged and redone by the scalar kernel's own step
(rare): a non-finite sum, |v| at or beyond the format's largest finite value (overflow
rules), |v| below 2^emin for formats without subnormals, undecided stochastic roundings (above), and for round to odd results so far below
the subnormals that sh exceeds 63. Zero results keep their sign (-0 only where
the format has one; unsigned formats use the scalar kernel throughout).

Tiles are (rows x columns) blocks of outputs; each tile walks k in order, so results do not
depend on the tile size or the thread count.

:func:`gemm_acc_f32` gives the same results in float32 and int32 lanes (8 per AVX2 register
instead of 4) when every product is exact in float32 and the accumulator has at most 22
significant bits (bf16 operands into fp16, bf16, fp8 ...): TwoSum in float32, round to odd
at 24 bits, then one rounding at the accumulator's quantum, by float operations ((ro + c) -
c) or, for stochastic rounding, on the bit pattern (see the comment above it).
"""

import numpy as np
from .jit import njit, prange

from ..ids import RDN, RNA, RNE, RTO, RTZ, RUP, SR
from .bits import (bits_f32, bits_f64, f32_bits, f64_bits, i32_add, i32_and, i32_hi, i32_lshr,
                   i32_or, i32_shl, i32_sub, i32_xor)
from . import gemm_serial
from .arith import two_sum
from .gemm import _add_round, _rnd
from .random import mix64, mix64_inline

_RB = 4       # rows per tile
_ABS = np.int64(0x7FFFFFFFFFFFFFFF)
_FRAC = np.int64((1 << 52) - 1)
_IMPL = np.int64(1 << 52)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MAGIC = np.int64(0x4330000000000000)  # bits of 2^52
_TWO52 = 2.0 ** 52
_EXPMASK = np.int64(0x7FF0000000000000)
_INV2046 = np.int64(2046 << 52)        # bits(1 / 2^k) = bits(2046 << 52) - bits(2^k)
_ONE = np.int64(0x3FF0000000000000)    # bits of 1.0
_TWO_M51 = 2.0 ** -51
_TWO_M53 = 2.0 ** -53


@njit(cache=True, inline="always")
def _round_step(s, e, r64, p, emin, maxbits, minbits, zadd, near, rna, up_pos, up_neg, rto,
                sr):
    """(value, flag): s + e rounded into the format, or flag = 1 when the scalar path must
    decide (see the module docstring). All branches are selects."""
    sb = f64_bits(s)
    eb = f64_bits(e)
    neg = sb < 0
    inexact = e != 0.0
    below = inexact & ((sb ^ eb) < 0)
    mlo = (sb & _ABS) - np.int64(below)
    ex = (mlo >> 52) - 1023
    qe = max(ex, emin) - (p - 1)          # exponent of the quantum 2^q
    sh = qe - (ex - 52)                   # discarded bits (>= 29)
    shc = min(sh, 63)
    sig = (mlo & _FRAC) | _IMPL
    kept = sig >> shc
    rem = sig & ((np.int64(1) << shc) - 1)
    half = np.int64(1) << (shc - 1)
    sticky = (rem != 0) | inexact
    # nearest: above half, or at half with a tail, an odd kept value, or ties away
    up_near = (rem > half) | ((rem == half) & (inexact | ((kept & 1) == 1) | rna))
    up_dir = sticky & ((neg & up_neg) | ((neg ^ True) & up_pos))
    t = r64 >> np.uint64(64 - shc)
    urem = np.uint64(rem)
    up_sr = t < urem
    up = (near & up_near) | up_dir | (sr & up_sr)
    r = (kept | np.int64(sticky)) if rto else kept + np.int64(up)
    # float(r) for 0 <= r < 2^52 by the exponent-field trick (AVX2 has no int64 -> double)
    val = (bits_f64(r | _MAGIC) - _TWO52) * bits_f64((qe + 1023) << 52)
    val = -val if neg else val
    # zadd = +0.0 turns -0 into +0 for formats without -0; -0.0 leaves every value as is
    val = (s if s == 0.0 else val) + zadd
    bad = ((mlo >= maxbits) | ((mlo < minbits) & (s != 0.0))
           | (sr & (((t == urem) & inexact) | (sh > 63))))
    return val, bad


@njit(cache=True, inline="always")
def _round_step_f(s, e, r64, qscale, iqscale, tiny, maxv, minv, zadd, near, rna, up_pos,
                  up_neg, sr):
    """(value, flag) as :func:`_round_step`, with float operations (modes rne, rna, rtz,
    rup, rdn, sr): the quantum q = max(2^floor(log2|s|), 2^emin) * 2^-(p-1) is a power of
    two, so t = |s| / q, its floor and its fraction are exact; the tail e (exact, tiny)
    breaks ties, steps below a grid point, and enters the stochastic fraction.
    ``tiny`` = 2^emin."""
    a_ = abs(s)
    neg = s < 0.0
    tl = -e if neg else e                 # the tail, positive away from zero
    ufp = bits_f64(f64_bits(a_) & _EXPMASK)
    ufc = max(ufp, tiny)
    q = ufc * qscale
    iq = bits_f64(_INV2046 - f64_bits(ufc)) * iqscale
    t = a_ * iq
    fl = np.floor(t)
    frs = t - fl
    # just below a grid point: at a power of two above 2^emin the grid below is twice as fine
    below = (frs == 0.0) & (tl < 0.0)
    halfq = (a_ == ufp) & (ufp > tiny)
    qb = q * 0.5 if halfq else q
    lo = a_ - qb if below else fl * q
    hi = (fl + 1.0) * q
    odd = fl - 2.0 * np.floor(fl * 0.5) != 0.0
    up_near = (frs > 0.5) | ((frs == 0.5) & ((tl > 0.0) | ((tl == 0.0) & (odd | rna))))
    up_dir = ((neg & up_neg) | ((neg ^ True) & up_pos)) & ((frs > 0.0) | (tl != 0.0))
    # stochastic: up iff U < f, f the exact discarded fraction; fr = f to within 2^-54 and
    # u = the stream's first 52 bits, so U lies in [u, u + 2^-52)
    fr = (1.0 + tl * iq * (2.0 if halfq else 1.0)) if below else frs + tl * iq
    u = bits_f64(np.int64(r64 >> np.uint64(12)) | _ONE) - 1.0
    sr_up = u + _TWO_M51 <= fr
    sr_amb = (sr_up ^ True) & (u < fr + _TWO_M53)
    up_sr = sr_up
    step = qb if below else q
    v_near = hi if up_near else fl * q
    v_other = lo + step if ((sr & up_sr) | ((sr ^ True) & up_dir)) else lo
    val = v_near if near else v_other
    val = -val if neg else val
    val = (s if s == 0.0 else val) + zadd
    bad = (a_ >= maxv) | (a_ != a_) | ((a_ < minv) & (s != 0.0)) | (sr & sr_amb)
    return val, bad


@njit(cache=True)
def _round_row(hi, lo, cgr, g, jn, new, flag, p, emin, maxbits, minbits, fprm, near, rna,
               up_pos, up_neg, rto, sr):
    """Round hi[j] + lo[j] (exact pairs) for j < jn into new[j], flag[j]; returns the
    number of flagged columns. Three copies of the loop: only SR draws random bits, only
    RTO takes the integer step."""
    qscale, iqscale, tiny, maxv, minv, zadd = fprm
    nbad = 0
    if sr:
        for jj in range(jn):
            v, bad = _round_step_f(hi[jj], lo[jj], mix64(cgr[jj] + g), qscale, iqscale, tiny,
                                   maxv, minv, zadd, near, rna, up_pos, up_neg, True)
            new[jj] = v
            flag[jj] = bad
            nbad += bad
    elif rto:
        for jj in range(jn):
            v, bad = _round_step(hi[jj], lo[jj], np.uint64(0), p, emin, maxbits, minbits,
                                 zadd, False, False, False, False, True, False)
            new[jj] = v
            flag[jj] = bad
            nbad += bad
    else:
        for jj in range(jn):
            v, bad = _round_step_f(hi[jj], lo[jj], np.uint64(0), qscale, iqscale, tiny, maxv,
                                   minv, zadd, near, rna, up_pos, up_neg, False)
            new[jj] = v
            flag[jj] = bad
            nbad += bad
    return nbad


@njit(cache=True, inline="always")
def _two_sum(d, p, ng):
    """The exact sum d + p as (s, e), s = fl(d + p). ng = -1 computes -((-d) + (-p)), whose
    exact zero sum is -0 unless d and p are +0 (IEEE 754 under round toward -inf)."""
    x = d * ng
    y = p * ng
    s = x + y
    bb = s - x
    e = (x - (s - bb)) + (y - bb)
    return s * ng, e * ng


@njit(cache=True, parallel=True)
def gemm_acc_tiled(a, b, c, fp, mode, ovf, key, fma, chunk, fast, p, emin, emax, maxbits,
                   minbits, neg_zero, jt, out):
    """Exact accumulation in any float format, tiled and vectorised over columns.

    Args:
        a: (batch, M, K) float64; b: (batch, K, N) float64; c: (batch, M, N) float64.
        fp, mode, ovf, key, fma, chunk, fast, p, emin, emax: as
            :func:`lowprec._kernels.gemm.gemm_acc` (the scalar kernel, which redoes the
            flagged steps).
        maxbits: float64 bit pattern (as int64) of the format's largest finite value:
            magnitudes from it up go to the scalar step.
        minbits: bit pattern of 2^emin for formats without subnormals (magnitudes below
            it go to the scalar step), 0 otherwise.
        neg_zero: the format has -0 (otherwise zero results are +0).
        jt: columns per tile (the result does not depend on it).
        out: (batch, M, N) float64.
    """
    nb = a.shape[0]
    m_rows = a.shape[1]
    kk = a.shape[2]
    ncols = b.shape[2]
    stride = 2 * kk + 2
    nrb = (m_rows + _RB - 1) // _RB
    njb = (ncols + jt - 1) // jt
    near = mode == RNE or mode == RNA
    rna = mode == RNA
    up_pos = mode == RUP
    up_neg = mode == RDN
    rto = mode == RTO
    sr = mode == SR
    ng = -1.0 if mode == RDN else 1.0  # RDN sums -(-d + -p): an exact zero sum is then -0
    zadd = -0.0 if neg_zero else 0.0
    fmax = bits_f64(maxbits)
    fprm = (2.0 ** (1 - p), 2.0 ** (p - 1), 2.0 ** emin, fmax, bits_f64(minbits), zadd)
    zk = mix64(np.uint64(key))          # rand64(key, idx, 0) = mix64(zk + idx * golden)
    for t in prange(nb * nrb * njb):
        bi = t // (nrb * njb)
        rest = t - bi * nrb * njb
        i0 = (rest // njb) * _RB
        j0 = (rest % njb) * jt
        rn = min(_RB, m_rows - i0)
        jn = min(jt, ncols - j0)
        d = np.empty((_RB, jt), np.float64)
        tot = np.zeros((_RB, jt), np.float64)
        cg = np.empty((_RB, jt), np.uint64)
        prod = np.empty(jt, np.float64)
        new = np.empty(jt, np.float64)
        flag = np.empty(jt, np.uint8)
        sbuf = np.empty(jt, np.float64)
        ebuf = np.empty(jt, np.float64)
        zero = np.zeros(jt, np.float64)
        for r in range(rn):
            i = i0 + r
            for jj in range(jn):
                o = (bi * m_rows + i) * ncols + j0 + jj
                base = o * stride
                cg[r, jj] = zk + np.uint64(base) * _GOLDEN
                cv = c[bi, i, j0 + jj]
                if chunk > 0:
                    tot[r, jj] = np.float64(np.float32(cv))
                    d[r, jj] = 0.0
                else:
                    d[r, jj] = _rnd(cv, 0.0, fp, mode, ovf, key, base + 2 * kk, fast, p, emin,
                                    emax)
        for k in range(kk):
            g0 = np.uint64(2 * k) * _GOLDEN
            g1 = np.uint64(2 * k + 1) * _GOLDEN
            for r in range(rn):
                i = i0 + r
                av = a[bi, i, k]
                for jj in range(jn):
                    prod[jj] = av * b[bi, k, j0 + jj]
                if not fma:  # the product rounded into the accumulator first
                    nbad = _round_row(prod, zero, cg[r], g0, jn, new, flag, p, emin, maxbits,
                                      minbits, fprm, near, rna, up_pos, up_neg, rto, sr)
                    if nbad:
                        for jj in range(jn):
                            if flag[jj]:
                                o = (bi * m_rows + i) * ncols + j0 + jj
                                new[jj] = _rnd(prod[jj], 0.0, fp, mode, ovf, key,
                                               o * stride + 2 * k, fast, p, emin, emax)
                    for jj in range(jn):
                        prod[jj] = new[jj]
                for jj in range(jn):
                    hs, he = _two_sum(d[r, jj], prod[jj], ng)
                    sbuf[jj] = hs
                    ebuf[jj] = he
                nbad = _round_row(sbuf, ebuf, cg[r], g1, jn, new, flag, p, emin, maxbits,
                                  minbits, fprm, near, rna, up_pos, up_neg, rto, sr)
                if nbad:
                    for jj in range(jn):
                        if flag[jj]:
                            o = (bi * m_rows + i) * ncols + j0 + jj
                            new[jj] = _add_round(d[r, jj], prod[jj], fp, mode, ovf, key,
                                                 o * stride + 2 * k + 1, fast, p, emin, emax)
                for jj in range(jn):
                    d[r, jj] = new[jj]
                if chunk > 0 and ((k + 1) % chunk == 0 or k == kk - 1):
                    for jj in range(jn):
                        tot[r, jj] = np.float64(np.float32(tot[r, jj] + d[r, jj]))
                        d[r, jj] = 0.0
        for r in range(rn):
            for jj in range(jn):
                out[bi, i0 + r, j0 + jj] = tot[r, jj] if chunk > 0 else d[r, jj]


# ---- float32 lanes: bf16-sized products, accumulators of at most 22 bits -----------------
#
# When every product a*b is exact in float32 (the caller checks: input precisions add to
# at most 24 bits and no product leaves float32's normal range) and the accumulator's
# values are float32 values with at most 22 significant bits, a step runs in float32 and
# int32 lanes, 8 per AVX2 register:
#
# 1. s + e = d + p exactly (TwoSum in float32; s = fl(d + p), |e| <= ulp(s) / 2).
# 2. ro = s + e rounded to odd at 24 bits: s itself when e = 0 or s is odd, else the
#    neighbour of s toward e (bit pattern +-1). Rounding to odd with at least two extra
#    bits makes the second rounding exact (Boldo & Melquiond 2008): ro lies strictly
#    between the same two grid points of the accumulator as s + e, and on the same side
#    of their midpoint (ro is odd at 24 bits, grid points and midpoints are even), or is
#    s + e itself.
# 3. Rounding ro to nearest (rne, rna; :func:`_round32n`): c = 1.5 * 2^(E + 24 - p), E =
#    max(ro's binade, emin), so that ro + c lies in c's binade, whose spacing is the
#    accumulator's quantum there: fl(ro + c) - c is ro rounded to nearest at the quantum,
#    ties to even (c is an even multiple of it), both operations exact but the one
#    rounding. For rna ro's last bit is set also when e = 0: that moves only an exact
#    midpoint (an even pattern), away from zero. E may be taken from s: ro leaves s's
#    binade only for s = 2^E, ro just below it, which rounds to 2^E on either grid.
# 4. Directed rounding (rtz, rup, rdn; :func:`_round32d`) rounds |ro| to nearest as in 3
#    (E from ro itself: there the binade's quantum matters), goes one quantum u back when
#    that went up (the truncated magnitude), and one up where the mode rounds this sign's
#    magnitudes up and |ro| is not on the grid. rdn sums -d and -p (an exact zero sum is
#    then -0) and negates s back.
# 5. Stochastic rounding (integer operations, :func:`_round32`): the low sh = 24 - p bits
#    of ro's bit pattern (more in the accumulator's subnormal range) are the discarded
#    part D; (|ro| + bias) with those bits cleared is the result, bias = 2^sh - 1 - t
#    carrying iff t < D, with t the stream's top sh bits. It rounds up iff U < f (U the
#    stream's uint64 read as a fraction, f the exact discarded fraction): U lies in
#    [t, t + 1) / 2^sh, and f = D / 2^sh exactly when e = 0, otherwise f lies in
#    (D - 1, D) / 2^sh or (D, D + 1) / 2^sh (the side of ro where s + e lies): t = D
#    (above) or t = D - 1 (below) is undecided and flagged.
#
# Flagged (the scalar step decides): |ro| at or beyond the format's largest finite value,
# inf and NaN, and (3, 4: c must stay finite) from 2^(127 - (24 - p)); for stochastic
# rounding nonzero |ro| below twice the smallest subnormal (sh > 22) and undecided
# roundings. The float steps need emin >= -126 (E's field is clamped at emin's).

_ABS32 = np.int32(0x7FFFFFFF)
_SIGN32 = np.int32(-0x80000000)
_EXP32 = np.int32(0x7F800000)
_TOP = 22  # the largest shift the fast step takes
_NAN32 = np.float32(np.nan)  # marks a flagged step (NaN results are always flagged)


@njit(cache=True, inline="always")
def _round32(s, e, rhi, prm):
    """(value, flag): the exact float32 pair s + e (|e| <= ulp(s) / 2) stochastically
    rounded into the format, or flag = True when the scalar step must decide. Branch-free
    (selects).

    prm = (sh0 = 24 - precision, cb = sh0 + emin + 127, tiny = the bit pattern below which
    the step is flagged, maxbits = the float32 bit pattern of the largest finite value,
    zadd = -0.0 (+0.0 for formats without -0)); rhi: the top 32 bits of the stream's
    word."""
    sh0, cb, tiny, maxbits, zadd = prm
    sb = f32_bits(s)
    eb = f32_bits(e)
    inexact = e != np.float32(0.0)
    adj = inexact & (i32_and(sb, 1) == 0)
    same = i32_xor(sb, eb) >= 0
    rb = i32_add(sb, (np.int32(1) if same else np.int32(-1)) if adj else np.int32(0))
    mag = i32_and(rb, _ABS32)
    # sh = 24 - p, more below 2^emin; sh > 22 (and float32 subnormals) are flagged
    shs = i32_sub(cb, i32_lshr(mag, 23))
    sh = shs if shs > sh0 else sh0
    bad = (mag >= maxbits) | ((mag < tiny) & (mag != 0))
    shc = sh if sh < _TOP else np.int32(_TOP)
    low = i32_sub(i32_shl(1, shc), 1)
    # bias = 2^sh - 1 - t
    t = i32_lshr(rhi, i32_sub(32, shc))
    bias = i32_sub(low, t)
    dd = i32_and(mag, low)
    above = same ^ adj  # s + e lies beyond ro (away from zero)
    bad = bad | (inexact & (t == i32_sub(dd, np.int32(0) if above else np.int32(1))))
    kept = i32_and(i32_add(mag, bias), i32_xor(low, -1))
    return bits_f32(i32_or(kept, i32_and(rb, _SIGN32))) + zadd, bad


@njit(cache=True, inline="always")
def _round32n(s, e, fo, eminf, cadd, lim, sgnm):
    """(value, flag) as :func:`_round32` for rne (fo = 0) and rna (fo = 1) by float
    operations (see the comment above :func:`gemm_acc_f32`): ro = s + e rounded to odd at 24
    bits (rna: its last bit forced on, which moves only an exact midpoint, away from zero),
    then (ro + c) - c with c = 1.5 * 2^(E + 24 - precision), E = ro's binade (at least
    emin): the addition rounds at the accumulator's quantum, ties to even. ``eminf`` = the
    exponent field of 2^emin, ``cadd`` = c's bits less E's exponent field, ``lim`` = the
    bit pattern from which magnitudes are flagged, ``sgnm`` = the sign bit (0 for formats
    without -0: a zero result is then +0)."""
    sb = f32_bits(s)
    inexact = e != np.float32(0.0)
    # one step toward zero when the tail points back (then s is beyond s + e)
    dec = np.int32(-1) if (inexact & (i32_xor(sb, f32_bits(e)) < 0)) else np.int32(0)
    ro = i32_or(i32_add(sb, dec), np.int32(1) if inexact else fo)
    mag = i32_and(ro, _ABS32)
    # E from s, not ro (computed alongside the tail): they differ only for s = 2^E and
    # ro just below it, which rounds to 2^E on either binade's grid
    ef = i32_and(sb, _EXP32)
    ef = ef if ef > eminf else eminf
    c = bits_f32(i32_add(ef, cadd))
    r = (bits_f32(ro) + c) - c
    return bits_f32(i32_or(f32_bits(r), i32_and(ro, sgnm))), mag > lim


@njit(cache=True, inline="always")
def _round32d(s, inexact, opp, up_neg, up_pos, eminf, sh0f, lim, zadd, tz):
    """(value, flag) as :func:`_round32` for rtz, rup (up_pos) and rdn (up_neg) by float
    operations: ro = s + e rounded to odd at 24 bits (inexact: e != 0; opp: e's sign is not
    s's), |ro| rounded to nearest at the quantum u by (|ro| + c) - c (c = 1.5 * 2^(E + 24 -
    precision), u = c / 1.5 * 2^-23), one quantum back when that went up (the magnitude
    truncated), one up when the mode rounds this sign's magnitudes up and |ro| is not on
    the grid."""
    sb = f32_bits(s)
    dec = np.int32(-1) if (inexact & opp) else np.int32(0)
    ro = i32_or(i32_add(sb, dec), np.int32(1) if inexact else np.int32(0))
    mag = i32_and(ro, _ABS32)
    ef = i32_and(mag, _EXP32)
    ef = ef if ef > eminf else eminf
    c = bits_f32(i32_add(ef, i32_or(sh0f, np.int32(1 << 22))))  # 1.5 * 2^(E + 24 - p)
    u = bits_f32(i32_add(ef, sh0f)) * np.float32(2.0 ** -23)  # (exact: it may be subnormal)
    ax = bits_f32(mag)
    rm = (ax + c) - c
    fm = rm - u if rm > ax else rm
    # u where this sign's magnitudes round up (int32 masks: bool lanes cost repacking)
    if tz:  # rtz (a constant where inlined)
        res = fm
    else:
        uu = bits_f32(i32_and(f32_bits(u), up_neg if sb < 0 else up_pos))
        res = fm + uu if fm != ax else fm
    return bits_f32(i32_or(f32_bits(res), i32_and(ro, _SIGN32))) + zadd, mag > lim


@njit(cache=True, inline="always")
def _draw_row(cg, r, g, jn, tr):
    """tr[j] = the top 32 bits of rand64(key, idx_j, 0) (cg[r, j] + g = its counter word).
    A loop of its own: 64-bit lanes are 4 per AVX2 register, the rounding's 8."""
    for jj in range(jn):
        tr[jj] = i32_hi(mix64_inline(cg[r, jj] + g))


@njit(cache=True, inline="always")
def _sum_row32(d, r, av, src, tr, jn, new, prm, prn, ng, sr):
    """new[j] = round(d[r, j] + av * src[j]) for j < jn (tr: the stream's top bits, sr
    only); returns whether any step needs the scalar path. ng = -1 under rdn (an exact
    zero sum is then -0). Inlined: a call per row and step would cost as much as the
    row's arithmetic."""
    nbad = False
    fo, eminf, cadd, lim, sgnm, near, sh0f, zadd, up_neg, up_pos, tz = prn
    if sr:  # (ng = 1: only rdn sums negated)
        for jj in range(jn):
            s, e = two_sum(d[r, jj], av * src[jj])
            v, bad = _round32(s, e, tr[jj], prm)
            new[jj] = _NAN32 if bad else v  # NaN marks the step for the scalar path
            nbad |= bad
    elif near:  # rne / rna (ng = 1)
        for jj in range(jn):
            s, e = two_sum(d[r, jj], av * src[jj])
            v, bad = _round32n(s, e, fo, eminf, cadd, lim, sgnm)
            new[jj] = _NAN32 if bad else v  # NaN marks the step for the scalar path
            nbad |= bad
    elif tz:  # rtz (ng = 1)
        for jj in range(jn):
            s, e = two_sum(d[r, jj], av * src[jj])
            v, bad = _round32d(s, e != np.float32(0.0), i32_xor(f32_bits(s), f32_bits(e)) < 0,
                               up_neg, up_pos, eminf, sh0f, lim, zadd, True)
            new[jj] = _NAN32 if bad else v  # NaN marks the step for the scalar path
            nbad |= bad
    else:  # rup, rdn
        avn = av * ng  # (exact)
        for jj in range(jn):
            s, e = two_sum(d[r, jj] * ng, avn * src[jj])
            # e's sign against s's, and e != 0, do not change when both are negated back
            v, bad = _round32d(s * ng, e != np.float32(0.0),
                               i32_xor(f32_bits(s), f32_bits(e)) < 0, up_neg, up_pos, eminf,
                               sh0f, lim, zadd, False)
            new[jj] = _NAN32 if bad else v  # NaN marks the step for the scalar path
            nbad |= bad
    return nbad


@njit(cache=True, inline="always")
def _prod_row32(av, src, tr, jn, new, prm, prn, sr):
    """new[j] = round(av * src[j]) (an exact product); as :func:`_sum_row32`."""
    nbad = False
    zero = np.float32(0.0)
    fo, eminf, cadd, lim, sgnm, near, sh0f, zadd, up_neg, up_pos, tz = prn
    if sr:
        for jj in range(jn):
            v, bad = _round32(av * src[jj], zero, tr[jj], prm)
            new[jj] = _NAN32 if bad else v  # NaN marks the step for the scalar path
            nbad |= bad
    elif near:
        for jj in range(jn):
            v, bad = _round32n(av * src[jj], zero, fo, eminf, cadd, lim, sgnm)
            new[jj] = _NAN32 if bad else v  # NaN marks the step for the scalar path
            nbad |= bad
    else:
        for jj in range(jn):
            v, bad = _round32d(av * src[jj], False, False, up_neg, up_pos, eminf, sh0f, lim,
                               zadd, False)
            new[jj] = _NAN32 if bad else v  # NaN marks the step for the scalar path
            nbad |= bad
    return nbad


@njit(cache=True, parallel=True)
def gemm_acc_f32(a, b, c, fp, mode, ovf, key, fma, chunk, fast, p, emin, emax, maxbits,
                 neg_zero, jt, out):
    """Exact accumulation in float32 lanes (see the comment above): the results of
    :func:`gemm_acc_tiled` when every product is exact in float32, the accumulator's
    values are float32 values of at most 22 significant bits with subnormals and emin >=
    -126, and the mode is rne, rna, rtz, rup, rdn or sr.

    Args:
        a: (batch, M, K) float32; b: (batch, K, N) float32; c: (batch, M, N) float64.
        fp, mode, ovf, key, fma, chunk, fast, p, emin, emax: as
            :func:`lowprec._kernels.gemm.gemm_acc` (the scalar kernel, which redoes the
            flagged steps).
        maxbits: the float32 bit pattern (as int) of the format's largest finite value.
        neg_zero: the format has -0 (otherwise zero results are +0).
        jt: columns per tile (the result does not depend on it).
        out: (batch, M, N) float64.
    """
    nb = a.shape[0]
    m_rows = a.shape[1]
    kk = a.shape[2]
    ncols = b.shape[2]
    stride = 2 * kk + 2
    nrb = (m_rows + _RB - 1) // _RB
    njb = (ncols + jt - 1) // jt
    sr = mode == SR
    cb = 24 - p + emin + 127
    prm = (np.int32(24 - p), np.int32(cb), np.int32(max(cb - _TOP, 1) << 23),
           np.int32(maxbits), np.float32(-0.0) if neg_zero else np.float32(0.0))
    # the other modes by float operations (_round32n, _round32d): c = 1.5 * 2^(E + 24 - p)
    # must stay finite (magnitudes from 2^(127 - (24 - p)) up are flagged)
    prn = (np.int32(1 if mode == RNA else 0), np.int32((emin + 127) << 23),
           np.int32(((24 - p) << 23) | (1 << 22)),
           np.int32(min(maxbits, (127 - (24 - p) + 127) << 23) - 1),
           np.int32(-0x80000000 if neg_zero else 0), mode == RNE or mode == RNA,
           np.int32((24 - p) << 23), np.float32(-0.0) if neg_zero else np.float32(0.0),
           np.int32(-1 if mode == RDN else 0), np.int32(-1 if mode == RUP else 0),
           mode == RTZ)
    ng = np.float32(-1.0) if mode == RDN else np.float32(1.0)
    one32 = np.float32(1.0)
    zk = mix64(np.uint64(key))          # rand64(key, idx, 0) = mix64(zk + idx * golden)
    gc = np.uint64(2 * kk) * _GOLDEN
    for t in prange(nb * nrb * njb):
        bi = t // (nrb * njb)
        rest = t - bi * nrb * njb
        i0 = (rest // njb) * _RB
        j0 = (rest % njb) * jt
        rn = min(_RB, m_rows - i0)
        jn = min(jt, ncols - j0)
        d = np.zeros((_RB, jt), np.float32)
        d2 = np.zeros((_RB, jt), np.float32)
        tr = np.zeros(jt, np.int32)
        tot = np.zeros((_RB, jt), np.float32)
        cg = np.zeros((_RB, jt), np.uint64)
        prod = np.empty(jt, np.float32)
        new = np.empty(jt, np.float32)
        cv32 = np.empty(jt, np.float32)
        for r in range(rn):
            i = i0 + r
            for jj in range(jn):
                o = (bi * m_rows + i) * ncols + j0 + jj
                cg[r, jj] = zk + np.uint64(o * stride) * _GOLDEN
                cv32[jj] = np.float32(c[bi, i, j0 + jj])
            if chunk > 0:
                for jj in range(jn):
                    tot[r, jj] = cv32[jj]
                continue
            if sr:
                _draw_row(cg, r, gc, jn, tr)
            _prod_row32(one32, cv32, tr, jn, new, prm, prn, sr)
            for jj in range(jn):
                cv = c[bi, i, j0 + jj]
                if new[jj] != new[jj] or np.float64(cv32[jj]) != cv:
                    o = (bi * m_rows + i) * ncols + j0 + jj
                    new[jj] = np.float32(_rnd(cv, 0.0, fp, mode, ovf, key, o * stride + 2 * kk,
                                              fast, p, emin, emax))
                d[r, jj] = new[jj]
        for k in range(kk):
            g0 = np.uint64(2 * k) * _GOLDEN
            g1 = np.uint64(2 * k + 1) * _GOLDEN
            brow = b[bi, k, j0:j0 + jn]
            # d holds the sums before step k, d2 receives them after (then they swap)
            for r in range(rn):
                i = i0 + r
                av = a[bi, i, k]
                src = brow
                if not fma:  # the product rounded into the accumulator first
                    if sr:
                        _draw_row(cg, r, g0, jn, tr)
                    if _prod_row32(av, brow, tr, jn, prod, prm, prn, sr):
                        for jj in range(jn):
                            if prod[jj] != prod[jj]:
                                o = (bi * m_rows + i) * ncols + j0 + jj
                                prod[jj] = np.float32(_rnd(
                                    np.float64(av * brow[jj]), 0.0, fp, mode, ovf, key,
                                    o * stride + 2 * k, fast, p, emin, emax))
                    src = prod
                    av = one32
                if sr:
                    _draw_row(cg, r, g1, jn, tr)
                if _sum_row32(d, r, av, src, tr, jn, d2[r], prm, prn, ng, sr):
                    for jj in range(jn):  # rare: the flagged steps, one at a time
                        if d2[r, jj] != d2[r, jj]:
                            o = (bi * m_rows + i) * ncols + j0 + jj
                            d2[r, jj] = np.float32(_add_round(
                                np.float64(d[r, jj]), np.float64(av * src[jj]), fp, mode,
                                ovf, key, o * stride + 2 * k + 1, fast, p, emin, emax))
                if chunk > 0 and ((k + 1) % chunk == 0 or k == kk - 1):
                    for jj in range(jn):
                        tot[r, jj] = tot[r, jj] + d2[r, jj]  # float32 + float32: RNE
                        d2[r, jj] = 0.0
            d, d2 = d2, d
        for r in range(rn):
            for jj in range(jn):
                out[bi, i0 + r, j0 + jj] = tot[r, jj] if chunk > 0 else d[r, jj]


#: :func:`gemm_acc_f32` (same arguments), by its serial twin for small products.
gemm_acc_f32_auto = gemm_serial.SerialWhenSmall(
    gemm_acc_f32, "gemm_acc_f32_serial",
    lambda a, b, *rest: a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2],
    plain_below=1 << 13)  # about 30 us per step in plain Python
