"""Block-scaled quantization kernels (MX, NVFP4-style two-level): one pass per block.

Rows are the blocks' axis made contiguous (a C-ordered 2-D view, blocks of ``bs`` along
each row, the last one possibly short). A task takes whole blocks: it finds the block's
amax, derives the scale and rounds the block's elements in the same pass over memory.
Element codes come from a branch-free rounding of the float64 bits of the scaled value
(the conversion fast pass's arithmetic, :func:`code_fast`) with
:func:`.convert.encode_pair_code` as the exact fallback for the rare rest, so the codes
equal :func:`lowprec.encode` of the scaled values. The stochastic stream of an element is
(key, its flat index in the input), as for :func:`lowprec.encode` of the whole array.

The ``*_f32`` kernels (section "float32 element pass") serve the common modes: the scaled
values are float32 and the conversion kernels' float32 pass (:mod:`.convert`, ``_f32_code``)
rounds them in 32-bit lanes; they are the fast path of MX RNE/RNA/RTZ and of two-level
scaling in every mode but SR and RTO (which keep the kernels above).
"""

import math

import numpy as np
from .jit import njit, prange

from ..ids import NAN_NEG_ZERO, OVF_SATURATE, RDN, RNA, RNE, RTO, RUP, SR
from .convert import _f32_code, _f32_consts, decode_float_code, encode_pair_code
from .layout import (F_BIAS, F_EMIN, F_MAN, F_MAXCODE, F_NAN_KIND, F_SIGNBIT, F_SIGNED, F_SUBN,
                     F_ZERO)
from .random import rand64

RULE_FLOOR, RULE_CEIL, RULE_RCEIL = 0, 1, 2


@njit(cache=True, inline="always")
def code_fast(v, m, emin, bias, maxcode, sbit, zsbit, subn, ftz, kl, kr, kh, upp, upn,
              ovp, ovn, sr, sr_bits, key, i):
    """Code of the float64 value v in a float format, or -1 when :func:`encode_pair_code`
    must decide (NaN, inf, zero, results too tiny for a 62-bit shift, no-subnormal
    formats below their normal range). Branch-free: the rounding adds half-1 plus the
    kept LSB (RNE), half (RNA), nothing (RTZ) or all ones (RUP positive / RDN negative)
    below the kept bit; SR compares the discarded bits with the stream's first bits."""
    b = np.float64(v).view(np.int64)
    ef = (b >> 52) & 0x7FF
    neg = (b >> 63) & 1
    big_e = ef - 1023
    sig = (b & 0xFFFFFFFFFFFFF) | (np.int64(1) << 52)
    e_eff = max(big_e, emin)
    sh = 52 - m + (e_eff - big_e)
    tiny = sh > 62
    sh = min(sh, 62)
    ones = (np.int64(1) << sh) - 1
    if sr:
        rem = sig & ones
        r = rand64(key, i, 0)
        if sr_bits == 0:
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
        half = np.int64(1) << (sh - 1)
        add = kl * (half - 1 + ((sig >> sh) & 1)) + kr * half \
            + ones * ((upp & (1 - neg)) | (upn & neg))
        kept = (sig + add) >> sh
    one = np.int64(1) << m
    mag = ((e_eff + bias) << m) + kept - one
    mag = mag * (1 - (np.int64(ftz) & np.int64(mag < one)))  # FTZ: subnormal results -> 0
    nz = np.int64(mag != 0)
    code = mag | ((sbit * nz + zsbit * (1 - nz)) * neg)
    ov = np.int64(mag > maxcode)  # arithmetic selects: no data-dependent branches
    code = code * (1 - ov) + (ovp + (ovn - ovp) * neg) * ov
    bad = np.int64((ef == 0) | (ef == 0x7FF) | tiny | ((subn == 0) & (big_e < emin)))
    return code * (1 - bad) - bad


@njit(cache=True, inline="always")
def _code_consts(fp, mode, ovf):
    kl = np.int64(mode == RNE)
    kr = np.int64(mode == RNA)
    kh = kl | kr
    upp = np.int64(mode == RUP)
    upn = np.int64(mode == RDN)
    zsbit = fp[F_SIGNBIT] if fp[F_NAN_KIND] != NAN_NEG_ZERO else np.int64(0)
    ovp = encode_pair_code(1e300, 0.0, fp, mode, ovf, False, np.uint64(0), 0, 0)
    ovn = encode_pair_code(-1e300, 0.0, fp, mode, ovf, False, np.uint64(0), 0, 0)
    return kl, kr, kh, upp, upn, zsbit, ovp, ovn


@njit(cache=True)
def code_fast_applies(fp, mode):
    """Whether :func:`code_fast` can serve the format (signed, with a zero, <= 24 bits)
    and the mode (all but RTO)."""
    return mode != RTO and fp[F_SIGNED] == 1 and fp[F_ZERO] == 1 and fp[F_MAN] <= 23


@njit(cache=True, inline="always")
def _element_value(xv, f, kind, saturate, emax32):
    # the value an element is rounded from: MX (kind 0) x * 2^-E in float64 (exact);
    # two-level fp32(x * f) (kind 1) or fp32(x / f) (kind 2), clamped when saturating
    if kind == 0:
        return np.float64(xv) * np.float64(f)
    v = xv * np.float32(f) if kind == 1 else xv / np.float32(f)
    if saturate:
        v = -emax32 if v < -emax32 else (emax32 if v > emax32 else v)
    return np.float64(v)


@njit(cache=True)
def _fixup(x, r, c0, c1, f, kind, saturate, emax32, base, fp, mode, ovf, ftz, key, sr_bits,
           codes):
    """The elements of one block that :func:`code_fast` leaves undecided, by the exact
    scalar path (out of line, so that the hot loops stay small)."""
    m, emin, bias, maxcode = fp[F_MAN], fp[F_EMIN], fp[F_BIAS], fp[F_MAXCODE]
    kl, kr, kh, upp, upn, zsbit, ovp, ovn = _code_consts(fp, mode, ovf)
    fast = code_fast_applies(fp, mode)
    for c in range(c0, c1):
        v = _element_value(x[r, c], f, kind, saturate, emax32)
        cc = np.int64(-1)
        if fast:
            cc = code_fast(v, m, emin, bias, maxcode, fp[F_SIGNBIT], zsbit, fp[F_SUBN], ftz, kl,
                           kr, kh, upp, upn, ovp, ovn, mode == SR, sr_bits, key, base + c)
        if cc < 0:
            codes[r, c] = encode_pair_code(v, 0.0, fp, mode, ovf, ftz, key, base + c, sr_bits)


@njit(cache=True)
def _mx_exponent(amax, rule, emax_elem, max_mant, max_exp):
    # E of the scale 2^E for a finite amax > 0, from the bits (frexp), never from log2
    mm, e = math.frexp(amax)
    if rule == RULE_FLOOR:
        return np.int64(e - 1 - emax_elem)
    if rule == RULE_CEIL:
        return np.int64((e - 1 if mm == 0.5 else e) - emax_elem)
    return np.int64(e - max_exp + (1 if mm > max_mant else 0))


_TASK_BLOCKS = 64  # blocks per parallel task


@njit(cache=True)
def _encode_values(v, r, c0, sr, m, emin, bias, maxcode, sbit, zsbit, subn, ftz, kl, kr, kh,
                   upp, upn, ovp, ovn, sr_bits, key, base, codes):
    # codes[r, c0 + i] of the values v[i] by code_fast; returns how many it left undecided
    # (code -1, written as its low byte). One flat loop per kind of decision (a constant
    # `sr` in each): a runtime branch or a loop per block of runtime length inside ran
    # 3-5x slower.
    nbad = 0
    if sr:
        for i in range(v.size):
            cc = code_fast(v[i], m, emin, bias, maxcode, sbit, zsbit, subn, ftz, kl, kr, kh,
                           upp, upn, ovp, ovn, True, sr_bits, key, base + c0 + i)
            codes[r, c0 + i] = cc
            nbad += cc < 0
    else:
        for i in range(v.size):
            cc = code_fast(v[i], m, emin, bias, maxcode, sbit, zsbit, subn, ftz, kl, kr, kh,
                           upp, upn, ovp, ovn, False, sr_bits, key, base + c0 + i)
            codes[r, c0 + i] = cc
            nbad += cc < 0
    return nbad


@njit(cache=True, parallel=True)
def mx_rows(x, bs, rule, emax_elem, max_mant, max_exp, s_emin, s_emax, saturate, fill, fp,
            mode, ovf, ftz, key, sr_bits, codes, exps, nan_scale):
    """OCP MX quantization of the rows of ``x`` (2-D, C order, float32) in blocks of
    ``bs``: ``exps[r, j]`` the block's scale exponent (clamped to [s_emin, s_emax]),
    ``nan_scale[r, j]`` whether it holds NaN/inf (or, without ``saturate``, needs a scale
    above 2^s_emax; its codes are then ``fill``), ``codes[r, c]`` the element code of
    ``x[r, c] / 2^E``. ``max_mant``/``max_exp``: frexp of the element format's max (for
    the "rceil" rule). float32 inputs only: their quotients stay normal in float64.
    A task is up to _TASK_BLOCKS blocks of one row: their scales first, then their
    elements in one branch-free loop."""
    rows, n = x.shape
    nb = (n + bs - 1) // bs
    tpr = (nb + _TASK_BLOCKS - 1) // _TASK_BLOCKS  # tasks per row
    fast = code_fast_applies(fp, mode)
    m, emin, bias, maxcode = fp[F_MAN], fp[F_EMIN], fp[F_BIAS], fp[F_MAXCODE]
    sbit, subn = fp[F_SIGNBIT], fp[F_SUBN]
    kl, kr, kh, upp, upn, zsbit, ovp, ovn = _code_consts(fp, mode, ovf)
    for task in prange(rows * tpr):
        r = task // tpr
        j0 = (task - r * tpr) * _TASK_BLOCKS
        j1 = min(j0 + _TASK_BLOCKS, nb)
        inv = np.empty(j1 - j0, np.float64)
        anybad = False
        for j in range(j0, j1):
            c0 = j * bs
            c1 = min(c0 + bs, n)
            amax = 0.0
            finite = True
            for c in range(c0, c1):
                a = math.fabs(np.float64(x[r, c]))
                finite &= a < np.inf  # False for inf and NaN
                amax = a if a > amax else amax
            if not finite or amax == 0.0:
                e = s_emin
            else:
                e = _mx_exponent(amax, rule, emax_elem, max_mant, max_exp)
                e = s_emin if e < s_emin else e
            over = e > s_emax
            e = s_emax if over else e
            bad = (not finite) or (over and not saturate)
            exps[r, j] = e
            nan_scale[r, j] = bad
            anybad |= bad
            inv[j - j0] = math.ldexp(1.0, int(-e))  # exact: |E| <= 127
        c0 = j0 * bs
        c1 = min(j1 * bs, n)
        v = np.empty(c1 - c0)
        for j in range(j0, j1):
            f = inv[j - j0]
            for c in range(j * bs, min(j * bs + bs, n)):
                v[c - c0] = np.float64(x[r, c]) * f
        nbad = _encode_values(v, r, c0, mode == SR, m, emin, bias, maxcode, sbit, zsbit, subn,
                              ftz, kl, kr, kh, upp, upn, ovp, ovn, sr_bits, key, r * n, codes)
        if nbad or not fast:
            for j in range(j0, j1):
                _fixup(x, r, j * bs, min(j * bs + bs, n), inv[j - j0], 0, False,
                       np.float32(0), r * n, fp, mode, ovf, ftz, key, sr_bits, codes)
        if anybad:
            for j in range(j0, j1):
                if nan_scale[r, j]:
                    for c in range(j * bs, min(j * bs + bs, n)):
                        codes[r, c] = fill


@njit(cache=True, parallel=True)
def two_level_rows(x, bs, amax, bad, emax32, g, has_g, smin32, smax32, sfp, s_mode, reciprocal,
                   saturate, efp, mode, ovf, ftz, key, sr_bits, codes, scales):
    """Two-level (NVFP4) quantization of the rows of ``x`` (float32, 2-D) in blocks of
    ``bs``, in float32 arithmetic as torchao: block scale s = fp32(fp32(amax / E_max) / G)
    clamped to [smin32, smax32] and rounded into the scale format (``s_mode``, saturating);
    elements fp32(x * fp32(fp32(1 / G) / s)) (``reciprocal``) or fp32(x / fp32(G * s)),
    clamped to +-E_max when ``saturate``; blocks flagged ``bad`` get code 0 (their scale
    is left for the caller). ``scales[r, j]`` gets s (float32). A task is up to
    _TASK_BLOCKS blocks of one row."""
    rows, n = x.shape
    nb = (n + bs - 1) // bs
    tpr = (nb + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    fast = code_fast_applies(efp, mode)
    m, emin, bias, maxcode = efp[F_MAN], efp[F_EMIN], efp[F_BIAS], efp[F_MAXCODE]
    sbit, subn = efp[F_SIGNBIT], efp[F_SUBN]
    kl, kr, kh, upp, upn, zsbit, ovp, ovn = _code_consts(efp, mode, ovf)
    one = np.float32(1)
    # the scale format's constants for code_fast (scales are positive normal numbers)
    sfast = code_fast_applies(sfp, s_mode)
    sm, semin, sbias, smaxcode = sfp[F_MAN], sfp[F_EMIN], sfp[F_BIAS], sfp[F_MAXCODE]
    ssbit, ssubn = sfp[F_SIGNBIT], sfp[F_SUBN]
    skl, skr, skh, supp, supn, szsbit, sovp, sovn = _code_consts(sfp, s_mode, OVF_SATURATE)
    # clamping to +-inf leaves every value as it is: one loop body with or without saturate
    bound = emax32 if saturate else np.float32(np.inf)
    for task in prange(rows * tpr):
        r = task // tpr
        j0 = (task - r * tpr) * _TASK_BLOCKS
        j1 = min(j0 + _TASK_BLOCKS, nb)
        c0 = j0 * bs
        c1 = min(j1 * bs, n)
        v = np.empty(c1 - c0)
        fs = np.empty(j1 - j0, np.float32)
        kinds = np.empty(j1 - j0, np.int64)
        for j in range(j0, j1):
            s = amax[r, j] / emax32
            if has_g:
                s = s / g
            s = smin32 if s < smin32 else (smax32 if s > smax32 else s)
            sc = code_fast(np.float64(s), sm, semin, sbias, smaxcode, ssbit, szsbit, ssubn,
                           False, skl, skr, skh, supp, supn, sovp, sovn, False, 0,
                           np.uint64(0), 0)
            if sc < 0 or not sfast:
                sc = encode_pair_code(np.float64(s), 0.0, sfp, s_mode, OVF_SATURATE, False,
                                      np.uint64(0), 0, 0)
            s = np.float32(decode_float_code(sc, sfp))
            scales[r, j] = s
            # a multiplier that overflows (tiny G and s) gives way to the division
            f = (one / g) / s if has_g else one / s
            if reciprocal and f < np.float32(np.inf):
                fs[j - j0] = f
                kinds[j - j0] = 1
            else:
                fs[j - j0] = g * s if has_g else s
                kinds[j - j0] = 2
        for j in range(j0, j1):
            f = fs[j - j0]
            zero = bad[r, j]
            # clamp as np.clip does: NaN and -0 pass through; one loop per form
            if kinds[j - j0] == 1:
                for c in range(j * bs, min(j * bs + bs, n)):
                    w = x[r, c] * f
                    w = bound if w > bound else (-bound if w < -bound else w)
                    v[c - c0] = 0.0 if zero else np.float64(w)
            else:
                for c in range(j * bs, min(j * bs + bs, n)):
                    w = x[r, c] / f
                    w = bound if w > bound else (-bound if w < -bound else w)
                    v[c - c0] = 0.0 if zero else np.float64(w)
        nbad = _encode_values(v, r, c0, mode == SR, m, emin, bias, maxcode, sbit, zsbit, subn,
                              ftz, kl, kr, kh, upp, upn, ovp, ovn, sr_bits, key, r * n, codes)
        if nbad or not fast:
            for j in range(j0, j1):
                if bad[r, j]:
                    continue
                _fixup(x, r, j * bs, min(j * bs + bs, n), fs[j - j0], kinds[j - j0], saturate,
                       emax32, r * n, efp, mode, ovf, ftz, key, sr_bits, codes)
        for j in range(j0, j1):
            if bad[r, j]:
                for c in range(j * bs, min(j * bs + bs, n)):
                    codes[r, c] = 0


# --- float32 element pass ---------------------------------------------------------------
# For the modes and formats of the conversion kernels' float32 fast pass (see convert.py:
# RNE/RNA/RTZ/RUP/RDN into signed formats with zero and subnormals, emin >= -126): a task's
# scaled elements are float32 values, which that pass rounds from their bits in 32-bit
# lanes (twice the lanes of the float64 code_fast). MX: x * 2^-E in float32 is exact but
# where the product is float32-subnormal; the caller takes this kernel only for RNE/RNA/RTZ
# and element formats whose half smallest subnormal exceeds 2^-126, where those products
# round to a signed zero either way. Two-level: the scaled value is a float32 by definition.
# Tasks index 1-D slices from 0 (numba's negative-index wraparound then folds away), and
# the block loops have a constant trip count for the common block sizes (32, 16): LLVM
# unrolls and vectorises those, where a loop of runtime length 32 mostly ran its scalar
# remainder.

_SIGN_OFF = np.uint32(0x7FFFFFFF)
_EXP_ONES = np.uint32(0x7F800000)


@njit(cache=True, inline="always")
def _abs_bits(xb, k0, ln):
    # max of the bits without sign of xb[k0:k0 + ln] (float32 bits): the amax's bits for a
    # finite block, >= 0x7F800000 when the block holds NaN or inf
    xv = xb[k0:k0 + ln]  # a slice from 0: its loads vectorise, offset ones ran 2x slower
    am = np.uint32(0)
    for k in range(ln):
        a = np.uint32(xv[k] & _SIGN_OFF)
        am = a if a > am else am
    return am


@njit(cache=True, inline="always")
def _task_abs_bits(xb, bs, nblk):
    # _abs_bits of each block of a task (xb: its elements' bits), in a loop of its own
    # (interleaved with the per-block scale work the reductions vectorised worse)
    ab = np.empty(nblk, np.uint32)
    # whole tasks of the common sizes: constant trip counts inside and out (with a runtime
    # count of blocks LLVM vectorised the block loop instead, with strided gathers: 3x
    # slower)
    whole = nblk == _TASK_BLOCKS and nblk * bs == xb.size
    if whole and bs == 32:
        for j in range(_TASK_BLOCKS):
            ab[j] = _abs_bits(xb, j * 32, 32)
    elif whole and bs == 16:
        for j in range(_TASK_BLOCKS):
            ab[j] = _abs_bits(xb, j * 16, 16)
    else:
        for j in range(nblk):
            ab[j] = _abs_bits(xb, j * bs, min(bs, xb.size - j * bs))
    return ab


@njit(cache=True, inline="always")
def _mx_exponent_bits(ab, rule, emax_elem, max_mant, max_exp):
    # _mx_exponent of the finite float32 amax > 0 with bits ab: from its fields when normal
    ef = np.int64(ab >> np.uint32(23))
    if ef == 0:
        return _mx_exponent(np.float64(np.uint32(ab).view(np.float32)), rule, emax_elem,
                            max_mant, max_exp)
    mb = np.int64(ab & np.uint32(0x7FFFFF))
    e = ef - 126  # frexp's: amax = mm * 2^e, mm = (2^23 + mb) / 2^24
    if rule == RULE_FLOOR:
        return e - 1 - emax_elem
    if rule == RULE_CEIL:
        return (e - 1 if mb == 0 else e) - emax_elem
    mm = np.float64((np.int64(1) << 23) | mb) * (1.0 / 16777216.0)
    return e - max_exp + (1 if mm > max_mant else 0)


@njit(cache=True, inline="always")
def _mx_block(xs, ab, p, k0, ln, rule, emax_elem, max_mant, max_exp, s_emin, s_emax):
    # scale exponent of the block xs[k0:k0 + ln] (ab: its _abs_bits), whether it holds
    # NaN/inf, whether it needs a scale above 2^s_emax; its elements x * 2^-E into
    # p[k0:k0 + ln]
    finite = ab < _EXP_ONES
    if not finite or ab == 0:
        e = np.int64(s_emin)
    else:
        e = _mx_exponent_bits(ab, rule, emax_elem, max_mant, max_exp)
        e = s_emin if e < s_emin else e
    over = e > s_emax
    e = s_emax if over else e
    f = _pow2_f32(-e)
    xv = xs[k0:k0 + ln]
    pv = p[k0:k0 + ln]
    for k in range(ln):
        pv[k] = xv[k] * f
    return e, not finite, over


@njit(cache=True, inline="always")
def _pow2_f32(k):
    # 2^k as float32 for -127 <= k <= 127, from the exponent field where normal (a libm
    # ldexp call per block cost as much as the block's element pass)
    if k >= -126:
        return np.uint32(np.uint32(k + 127) << np.uint32(23)).view(np.float32)
    return np.float32(math.ldexp(1.0, int(k)))


@njit(cache=True, inline="always")
def _f32_task_codes(p, out, c, rne):
    # out[i] = code of the float32 p[i] (finite or not: non-finite ones belong to blocks
    # the caller overwrites); one flat loop per constant `rne`, as convert.py's
    pb = p.view(np.uint32)
    if rne:
        for i in range(pb.size):
            out[i] = _f32_code(pb[i], c, True)
    else:
        for i in range(pb.size):
            out[i] = _f32_code(pb[i], c, False)


@njit(cache=True, parallel=True)
def mx_rows_f32(x, bs, rule, emax_elem, max_mant, max_exp, s_emin, s_emax, saturate, fill, fp,
                mode, ovf, ftz, codes, scales):
    """:func:`mx_rows` for RNE/RNA/RTZ and element formats of the float32 fast pass (see
    the section comment), scale formats within [2^-127, 2^127]. Writes ``scales[r, j]``,
    the block's scale 2^E as float64 (NaN for the blocks :func:`mx_rows` flags in
    ``nan_scale``). Per task: each block's amax as the
    max of its bits without sign (>= 0x7F800000 for NaN/inf), its scale, its elements
    x * 2^-E (float32) into a buffer; then one flat rounding loop."""
    rows, n = x.shape
    nb = (n + bs - 1) // bs
    tpr = (nb + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    c = _f32_consts(fp, mode, ovf, ftz)
    rne = mode == RNE
    xball = x.view(np.uint32)
    for task in prange(rows * tpr):
        r = task // tpr
        j0 = (task - r * tpr) * _TASK_BLOCKS
        j1 = min(j0 + _TASK_BLOCKS, nb)
        c0 = j0 * bs
        c1 = min(j1 * bs, n)
        xs = x[r, c0:c1]
        xb = xball[r, c0:c1]
        p = np.empty(c1 - c0, np.float32)
        ab = _task_abs_bits(xb, bs, j1 - j0)
        tbad = False
        for j in range(j0, j1):
            k0 = (j - j0) * bs
            ln = min(bs, c1 - c0 - k0)
            if ln == 32:
                e, nonfinite, over = _mx_block(xs, ab[j - j0], p, k0, 32, rule, emax_elem,
                                               max_mant, max_exp, s_emin, s_emax)
            else:
                e, nonfinite, over = _mx_block(xs, ab[j - j0], p, k0, ln, rule, emax_elem,
                                               max_mant, max_exp, s_emin, s_emax)
            bad = nonfinite or (over and not saturate)
            # 2^E from float64's exponent field (|E| <= 127: normal)
            sv = np.int64(np.int64(e + 1023) << 52).view(np.float64)
            scales[r, j] = np.nan if bad else sv
            tbad |= bad
        out = codes[r, c0:c1]
        _f32_task_codes(p, out, c, rne)
        if tbad:
            for j in range(j0, j1):
                if np.isnan(scales[r, j]):
                    k0 = (j - j0) * bs
                    for k in range(k0, min(k0 + bs, c1 - c0)):
                        out[k] = fill


@njit(cache=True, parallel=True)
def block_amax32(x, bs, amax, bad):
    """float32 amax of every block of the rows of ``x`` (float32, 2-D) and whether the
    block holds NaN/inf (its amax is then 0), from the bits: a block's amax is the max of
    its bits without sign, >= 0x7F800000 for NaN/inf (one integer max per element,
    vectorised; tasks of up to _TASK_BLOCKS blocks of one row)."""
    rows, n = x.shape
    nb = (n + bs - 1) // bs
    tpr = (nb + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    xball = x.view(np.uint32)
    for task in prange(rows * tpr):
        r = task // tpr
        j0 = (task - r * tpr) * _TASK_BLOCKS
        j1 = min(j0 + _TASK_BLOCKS, nb)
        c0 = j0 * bs
        c1 = min(j1 * bs, n)
        ab = _task_abs_bits(xball[r, c0:c1], bs, j1 - j0)
        am = amax[r, j0:j1]
        bd = bad[r, j0:j1]
        for j in range(j1 - j0):
            a = ab[j]
            bd[j] = a >= _EXP_ONES
            am[j] = np.uint32(0 if a >= _EXP_ONES else a).view(np.float32)


@njit(cache=True, inline="always")
def _scale_bits_round(s, sh, up):
    # the positive normal float32 s rounded to sh fewer significand bits, nearest-even or
    # (up) upward, as float32 (a carry moves into the exponent field)
    b = np.float32(s).view(np.uint32)
    ones = np.uint32((np.uint32(1) << np.uint32(sh)) - np.uint32(1))
    if up:
        add = ones
    else:
        add = np.uint32((ones >> np.uint32(1)) + ((b >> np.uint32(sh)) & np.uint32(1)))
    return np.uint32(np.uint32(b + add) & ~ones).view(np.float32)


@njit(cache=True, inline="always")
def _clamp_mul(xv, pv, ln, f, bound):
    # pv[k] = xv[k] * f clamped to +-bound as np.clip (NaN passes)
    for k in range(ln):
        w = xv[k] * f
        pv[k] = bound if w > bound else (-bound if w < -bound else w)


@njit(cache=True, inline="always")
def _clamp_mul2(xv, pv, f0, f1, bound):
    # _clamp_mul of two 16-element blocks in one 32-element loop (a loop of 16 is too short
    # for LLVM's vector body: it ran scalar, 5x slower)
    for k in range(32):
        w = xv[k] * (f0 if k < 16 else f1)
        pv[k] = bound if w > bound else (-bound if w < -bound else w)


@njit(cache=True, inline="always")
def _clamp_div(xv, pv, ln, d, bound):
    for k in range(ln):
        w = xv[k] / d
        pv[k] = bound if w > bound else (-bound if w < -bound else w)


@njit(cache=True, parallel=True)
def two_level_rows_f32(x, bs, amax, bad, emax32, g, has_g, smin32, smax32, sfp, s_mode,
                       reciprocal, saturate, efp, mode, ovf, ftz, codes, scales):
    """:func:`two_level_rows` for element formats and modes of the float32 fast pass (see
    the section comment): the same float32 scaled values, rounded from their bits. A block
    whose multiplier fp32(fp32(1 / G) / s) overflows divides by fp32(G * s) instead; NaN/inf
    blocks get scale NaN (and codes 0). Block
    scales (positive normal numbers of the scale format, RNE or RUP) are rounded from the
    float32 bits when the scale format has fewer significand bits than float32, in one loop
    over a task's blocks (vectorised divisions)."""
    rows, n = x.shape
    nb = (n + bs - 1) // bs
    tpr = (nb + _TASK_BLOCKS - 1) // _TASK_BLOCKS
    c = _f32_consts(efp, mode, ovf, ftz)
    rne = mode == RNE
    one = np.float32(1)
    sfast = code_fast_applies(sfp, s_mode)
    sm, semin, sbias, smaxcode = sfp[F_MAN], sfp[F_EMIN], sfp[F_BIAS], sfp[F_MAXCODE]
    ssbit, ssubn = sfp[F_SIGNBIT], sfp[F_SUBN]
    skl, skr, skh, supp, supn, szsbit, sovp, sovn = _code_consts(sfp, s_mode, OVF_SATURATE)
    sbits = sm < 23 and semin >= -126 and (s_mode == RNE or s_mode == RUP)
    ssh = 23 - sm if sm < 23 else 0
    sup = s_mode == RUP
    bound = emax32 if saturate else np.float32(np.inf)
    ginv = one / g if has_g else one
    gg = g if has_g else one  # s / 1 and 1 * s are exact: one loop body with or without G
    inf32 = np.float32(np.inf)
    for task in prange(rows * tpr):
        r = task // tpr
        j0 = (task - r * tpr) * _TASK_BLOCKS
        j1 = min(j0 + _TASK_BLOCKS, nb)
        c0 = j0 * bs
        c1 = min(j1 * bs, n)
        xs = x[r, c0:c1]
        p = np.empty(c1 - c0, np.float32)
        am = amax[r, j0:j1]
        sv = scales[r, j0:j1]
        fs = np.empty(j1 - j0, np.float32)
        if sbits:
            for j in range(j1 - j0):
                s = (am[j] / emax32) / gg
                s = smin32 if s < smin32 else (smax32 if s > smax32 else s)
                s = _scale_bits_round(s, ssh, sup)
                s = smax32 if s > smax32 else s
                sv[j] = s
                fs[j] = ginv / s
        else:
            for j in range(j1 - j0):
                s = (am[j] / emax32) / gg
                s = smin32 if s < smin32 else (smax32 if s > smax32 else s)
                sc = code_fast(np.float64(s), sm, semin, sbias, smaxcode, ssbit, szsbit, ssubn,
                               False, skl, skr, skh, supp, supn, sovp, sovn, False, 0,
                               np.uint64(0), 0)
                if sc < 0 or not sfast:
                    sc = encode_pair_code(np.float64(s), 0.0, sfp, s_mode, OVF_SATURATE, False,
                                          np.uint64(0), 0, 0)
                s = np.float32(decode_float_code(sc, sfp))
                sv[j] = s
                fs[j] = ginv / s
        nt = j1 - j0
        j = 0
        while j < nt:
            k0 = j * bs
            ln = min(bs, c1 - c0 - k0)
            f = fs[j]
            if (bs == 16 and j + 1 < nt and c1 - c0 - k0 >= 32 and reciprocal and f < inf32
                    and fs[j + 1] < inf32):
                _clamp_mul2(xs[k0:k0 + 32], p[k0:k0 + 32], f, fs[j + 1], bound)
                j += 2
                continue
            if reciprocal and f < inf32:
                if ln == 32:
                    _clamp_mul(xs[k0:k0 + 32], p[k0:k0 + 32], 32, f, bound)
                else:
                    _clamp_mul(xs[k0:k0 + ln], p[k0:k0 + ln], ln, f, bound)
            else:
                _clamp_div(xs[k0:k0 + ln], p[k0:k0 + ln], ln, gg * sv[j], bound)
            j += 1
        out = codes[r, c0:c1]
        _f32_task_codes(p, out, c, rne)
        for j in range(j0, j1):
            if bad[r, j]:
                sv[j - j0] = np.nan
                k0 = (j - j0) * bs
                for k in range(k0, min(k0 + bs, c1 - c0)):
                    out[k] = 0
