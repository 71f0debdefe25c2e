"""Fast block-FMA kernel for the tensor-core models (same bits as :func:`tensorcore.tc_gemm`).

The block FMA aligns its products (and c) to the largest exponent E, truncates each toward
zero to a multiple of 2^(E - F) and sums exactly. Here, per output column and block:

1. E comes from float32 powers of two: max_k 2^ea_k * 2^eb_kj (exact, 8 lanes), started
   from c's power 2^ec (ec clamped to -126; 0 for zero or non-finite c).
2. Each product is scaled in float32: x = (a_k * b_kj) * 2^(F - E). a_k * b_kj is exact
   (precisions add to <= 24 bits and the caller checks that every product is a normal
   float32); the scaling is exact whenever x >= 2^-126, and a smaller x truncates to 0
   whatever its rounding. float32 -> int32 conversion (``fptosi``) truncates toward
   zero: the sign-magnitude truncation of the model, in one conversion.
3. The truncated terms are summed in int32 over runs of ``sub`` slots, where the caller
   checks that ``sub`` terms of at most ``maxsig * 2^F`` cannot overflow; the runs' sums
   and c's truncated term trunc(c * 2^(F - E)) (at most 2^(F+1)) are added in int32 with
   overflow flagged (the float32 path, step 4) or in float64, exactly.
4. The block's result, round(S * 2^(E - F)) into the output format, is computed in
   float32 and int32 registers (:func:`_round8`, eight lanes at a time) where the output
   is fp32's or fp16's range: c's term is added to the int32 sum, the sum S is converted
   to float32 (RNE) and back, which tells whether and which way that conversion rounded,
   hence S rounded toward zero to 24 bits and its sticky bit; narrower outputs (at most 22
   bits) round that value made odd (round to odd, then once more: the single rounding).
   The result is the rounded S times 2^(E - F), exact in float32. The rare cases (an
   infinite accumulator, which stays infinite; c alone in a block far below the grid;
   int32 overflow of the sums; an output subnormal or in the top binade, which may
   overflow to inf) are flagged: the K panel of that register tile is then redone from its
   saved state on float64 lanes, as below.

   The float64 lanes (other output widths, a c-addition stage other than float32's own
   addition, and the redone panels): S * 2^(E - F) is a normal float64 rounded to the
   block's output by integer operations on its bits, as in :func:`tensorcore._block`, in
   one pass without data-dependent branches (:func:`_round_lanes`); its rare cases go
   through :func:`tensorcore.round_pair` in a second pass.

Registers: a register tile of ``_RB`` = 4 rows by ``_JT`` = 16 columns (eight vectors of
eight float32 or int32 lanes, :mod:`.simd` and :mod:`.simd_int`) runs each block as two
passes over its slots with its state in registers: the eight running maxima of step 1 (no
loads or stores of state per slot), then, after the scales are built from the maxima's
exponent bits by int32 vector operations, the eight int32 sums of step 3 (the scales as
vectors too). On the float32 path the accumulators stay float32 (64 lanes per register
tile, read and written in place once per block). On the float64 path only the block's
results leave registers: the int32 sums and the float64 scales 2^(F - E) and 2^(E - F)
(their high words built in int32 lanes, zipped with zero low words and stored over float64
arrays); step 4 is there a plain loop over the tile's 64 lanes that LLVM vectorises (four
float64 lanes), compiled once per rounding mode so that it has no branches; it also leaves
the next block's start (step 1's 2^ec) for every lane. Its stores are unconditional
(masked stores, e.g. a running max written in place, are slow on AMD CPUs: vmaskmov
stores are microcoded), and scalars are moved between float and integer registers by
bitcasts. Rows past the end of a task repeat its last row (computed, never written out);
columns past N are zero padding of the panels; padding slots of K (the slot table's -1)
point at zero columns appended to a and the panels (:func:`pad_slots`), so the slot loops
have no branch on them, and slots in k order skip the table.

The chaining along K (the slot table, c_mode "late", fp32 promotion) is the reference
kernel's. The c-addition stage of c_mode "late" (with its own rounding and precision,
``c_rounding`` / ``c_frac_bits``) is float32's addition on the float32 path when it rounds
to nearest-even into fp32 (B200's fp8 path); otherwise it rounds cur + part from the
float64 bits, where that sum is exact in float64 and normal (the usual case); other
columns are flagged and rounded by :func:`tensorcore.round_pair` as in the reference.
``normalise_products`` models (align by floor(log2 |a b|)) take |a| and |b| as the
"powers": the max of |a| |b| has the exponent wanted. :func:`prepare` builds the operands
in float32 (powers from the exponent bits). Work is split into tasks of ``_RT`` rows by
``_JT`` columns (parallel), K into panels of about ``_KT`` slots so the task's panel of b
stays in cache while its register tiles pass over it; b is packed by the caller as (batch,
column tile, K, _JT) panels, padded with zeros.
"""

import math

import numpy as np
from ..ids import C_LATE, RNE, RTZ, RUP
from . import gemm_serial
from .bits import bits_f32 as _bits_f32, bits_f64 as _bits_f64
from .bits import f32_bits as _f32_bits, f64_bits as _f64_bits
from .jit import njit, prange
from .simd import add8, get3, load8, mul8, splat8, store8
from .simd_int import (any8, ashr8, bits8, from_bits8, ftoi8, iadd8, iand8, ieq8, igt8,
                       iload8, imax8, ior8, isplat8, istore8, isub8, itof8, ixor8, lshr8,
                       max8, shl8, zip_hi8, zip_lo8)
from .tensorcore import round_pair

_JT = 16  # columns per tile: two vectors of eight lanes
_RB = 4  # rows per register tile
_TW = _RB * _JT  # state lanes of a register tile (its rows' _JT columns, row after row)
_RT = 32  # rows per task
_KT = 256  # slots per K panel (rounded to whole instructions)

_F64_EXP = np.int64(0x7FF0000000000000)
_F64_MAN = np.int64(0x000FFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _c_pow(cv):
    """2^(exponent of c as an fp32 value, clamped to -126) as a float32; 0 for zero and
    non-finite c."""
    ex = (_f64_bits(cv) >> 52) & 0x7FF
    ec = ex - 1023
    ec = ec if ec > -126 else -126
    return _bits_f32(np.int32((ec + 127) << 23)) if (ex != 0 and ex != 0x7FF) else np.float32(0)


@njit(cache=True, inline="always")
def _avals(arr, bi, i0, i1, i2, i3, k):
    """arr[bi, i_r, k] of the tile's four rows as vectors of eight equal lanes."""
    return (splat8(get3(arr, bi, i0, k)), splat8(get3(arr, bi, i1, k)),
            splat8(get3(arr, bi, i2, k)), splat8(get3(arr, bi, i3, k)))


@njit(cache=True, inline="always")
def _max_pass(pa, pbp, bi, i0, i1, i2, i3, boff, order, seq, s0, end, m00, m01, m10, m11,
              m20, m21, m30, m31):
    """Step 1 over slots s0 .. end-1 of a register tile: the eight running maxima of the
    products' powers (pa's rows i0..i3 times the panel pbp's two vectors), in registers;
    ``seq``: slots in k order (k = s, the table unread)."""
    for s in range(s0, end):
        k = s if seq else order[s]
        o = boff + k * _JT
        b0 = load8(pbp, o)
        b1 = load8(pbp, o + 8)
        x0, x1, x2, x3 = _avals(pa, bi, i0, i1, i2, i3, k)
        m00 = max8(m00, mul8(x0, b0))
        m01 = max8(m01, mul8(x0, b1))
        m10 = max8(m10, mul8(x1, b0))
        m11 = max8(m11, mul8(x1, b1))
        m20 = max8(m20, mul8(x2, b0))
        m21 = max8(m21, mul8(x2, b1))
        m30 = max8(m30, mul8(x3, b0))
        m31 = max8(m31, mul8(x3, b1))
    return m00, m01, m10, m11, m20, m21, m30, m31


@njit(cache=True, inline="always")
def _sum_run(a, bp, bi, i0, i1, i2, i3, boff, order, seq, r0, r1, s00, s01, s10, s11, s20,
             s21, s30, s31):
    """Step 3 over slots r0 .. r1-1 (one run): the eight int32 sums of the products
    scaled by s.. and truncated, in registers."""
    t00 = isplat8(0)
    t01 = t00
    t10 = t00
    t11 = t00
    t20 = t00
    t21 = t00
    t30 = t00
    t31 = t00
    for s in range(r0, r1):
        k = s if seq else order[s]
        o = boff + k * _JT
        b0 = load8(bp, o)
        b1 = load8(bp, o + 8)
        x0, x1, x2, x3 = _avals(a, bi, i0, i1, i2, i3, k)
        t00 = iadd8(t00, ftoi8(mul8(mul8(x0, b0), s00)))
        t01 = iadd8(t01, ftoi8(mul8(mul8(x0, b1), s01)))
        t10 = iadd8(t10, ftoi8(mul8(mul8(x1, b0), s10)))
        t11 = iadd8(t11, ftoi8(mul8(mul8(x1, b1), s11)))
        t20 = iadd8(t20, ftoi8(mul8(mul8(x2, b0), s20)))
        t21 = iadd8(t21, ftoi8(mul8(mul8(x2, b1), s21)))
        t30 = iadd8(t30, ftoi8(mul8(mul8(x3, b0), s30)))
        t31 = iadd8(t31, ftoi8(mul8(mul8(x3, b1), s31)))
    return t00, t01, t10, t11, t20, t21, t30, t31


@njit(cache=True, inline="always")
def _scales8(m, frac_bits, sc, si, q):
    """For 2^E = m lane by lane (E = -127 for m = 0): returns 2^(F - max(E, F - 126))
    (float32); float64 lanes q .. q+7 of sc and si (written through their int32 views)
    <- 2^(F - E) and 2^(E - F)."""
    e = iadd8(iand8(lshr8(bits8(m), 23), isplat8(0xFF)), isplat8(-127))
    z = isplat8(0)
    h = shl8(isub8(isplat8(1023 + frac_bits), e), 20)  # high words of the float64 scales
    istore8(sc, 2 * q, zip_lo8(z, h))
    istore8(sc, 2 * q + 8, zip_hi8(z, h))
    h = shl8(iadd8(isplat8(1023 - frac_bits), e), 20)
    istore8(si, 2 * q, zip_lo8(z, h))
    istore8(si, 2 * q + 8, zip_hi8(z, h))
    e = imax8(e, isplat8(frac_bits - 126))
    return from_bits8(shl8(isub8(isplat8(127 + frac_bits), e), 23))


@njit(cache=True, inline="always")
def _tile_block(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, seq, s0, n, sub,
                frac_bits, cpow, sc, si, isum, tot):
    """Slots s0 .. s0+n-1 (one block) of a register tile of four rows (a's rows i0..i3) by
    _JT columns (panel offset boff), state lanes row after row.

    sc, si (int32 views of float64 arrays) <- 2^(F - E) and 2^(E - F) for 2^E the max of
    c's power (cpow) and the products' powers; isum <- the int32 sum of
    the block's last run of ``sub`` truncated scaled products; tot <- the float64 sum of
    the runs before it (when sub < n). The tile's eight running maxima and eight int32 sums
    stay in registers through the slots; the scales are computed once per block.
    """
    m00 = load8(cpow, 0)
    m01 = load8(cpow, 8)
    m10 = load8(cpow, 16)
    m11 = load8(cpow, 24)
    m20 = load8(cpow, 32)
    m21 = load8(cpow, 40)
    m30 = load8(cpow, 48)
    m31 = load8(cpow, 56)
    end = s0 + n
    m00, m01, m10, m11, m20, m21, m30, m31 = _max_pass(
        pa, pbp, bi, i0, i1, i2, i3, boff, order, seq, s0, end, m00, m01, m10, m11, m20, m21,
        m30, m31)
    s00 = _scales8(m00, frac_bits, sc, si, 0)
    s01 = _scales8(m01, frac_bits, sc, si, 8)
    s10 = _scales8(m10, frac_bits, sc, si, 16)
    s11 = _scales8(m11, frac_bits, sc, si, 24)
    s20 = _scales8(m20, frac_bits, sc, si, 32)
    s21 = _scales8(m21, frac_bits, sc, si, 40)
    s30 = _scales8(m30, frac_bits, sc, si, 48)
    s31 = _scales8(m31, frac_bits, sc, si, 56)
    for r0 in range(s0, end, sub):
        r1 = min(r0 + sub, end)
        t00, t01, t10, t11, t20, t21, t30, t31 = _sum_run(
            a, bp, bi, i0, i1, i2, i3, boff, order, seq, r0, r1, s00, s01, s10, s11, s20, s21,
            s30, s31)
        istore8(isum, 0, t00)
        istore8(isum, 8, t01)
        istore8(isum, 16, t10)
        istore8(isum, 24, t11)
        istore8(isum, 32, t20)
        istore8(isum, 40, t21)
        istore8(isum, 48, t30)
        istore8(isum, 56, t31)
        if r1 < end:
            if r0 == s0:
                for q in range(_TW):
                    tot[q] = np.float64(isum[q])
            else:
                for q in range(_TW):
                    tot[q] += np.float64(isum[q])


@njit(cache=True)
def _start8(c):
    """c's power of two as a block's start (:func:`_c_pow`) for eight float32 lanes: 2^(c's
    exponent clamped to -126), 0 for zero c (an infinite c, flagged by :func:`_round8`,
    gives inf)."""
    cb = iand8(bits8(c), isplat8(0x7FFFFFFF))
    p = imax8(iand8(cb, isplat8(0x7F800000)), isplat8(1 << 23))
    return from_bits8(iand8(p, ixor8(ieq8(cb, isplat8(0)), isplat8(-1))))


@njit(cache=True)
def _exp8(m):
    """E (unbiased, -127 for 0) of a running maximum 2^E."""
    return iadd8(iand8(lshr8(bits8(m), 23), isplat8(0xFF)), isplat8(-127))


@njit(cache=True)
def _scale8(e, frac_bits):
    """2^(F - max(E, F - 126)) as float32 lanes: the products' (and c's) scale."""
    return from_bits8(shl8(isub8(isplat8(127 + frac_bits),
                                 imax8(e, isplat8(frac_bits - 126))), 23))


@njit(cache=True)
def _exp_scale8(m, ebuf, q, frac_bits):
    """ebuf[q:q+8] <- E of the running maxima m (:func:`_exp8`); returns their scales
    (:func:`_scale8`)."""
    e = _exp8(m)
    istore8(ebuf, q, e)
    return _scale8(e, frac_bits)


@njit(cache=True)
def _round8(c, t, e, frac_bits, p_out, emin_out, emax_out, mode):
    """round(c + block) for eight lanes in float32/int32 registers: the common case of
    :func:`_round_block` (same bits), and a mask of the lanes it does not cover.

    ``t`` is the int32 sum of the block's truncated scaled products, ``e`` its E (the
    exponent of the max of c's and the products' powers). c's term trunc(c 2^(F - E)) is
    added in int32 (|c 2^(F - E)| < 2^(F + 1)); the sum S is rounded to ``p_out`` bits
    from its float32 conversion (RNE): converting back gives the error's sign, hence S
    rounded toward zero to 24 bits and whether that was exact; a narrower ``p_out``
    (<= 22) rounds that 24-bit value made odd when inexact (round to odd, then to nearest
    or directed, is the single rounding). The result times 2^(E - F) is exact in float32.
    Flagged (for :func:`_round_block`): |S| >= 2^30 (int32 overflow is caught here too,
    the c term being far smaller), c infinite, E below F - 126 with c non-zero (the
    products all zero and c tiny: its scale leaves float32), results outside the output's
    normal range or in its top binade (subnormal or overflowing outputs).
    """
    ones = isplat8(-1)
    mag = isplat8(0x7FFFFFFF)
    ecl = imax8(e, isplat8(frac_bits - 126))
    sc = from_bits8(shl8(isub8(isplat8(127 + frac_bits), ecl), 23))
    # lanes flagged below are zeroed before each float -> int conversion, which must stay
    # in int32's range (LLVM's fptosi gives poison outside): c infinite (E = 128; the
    # products' powers are at most 2^127) and |S| >= 2^30
    cinf = igt8(e, isplat8(127))
    sm = iadd8(t, ftoi8(mul8(from_bits8(iand8(bits8(c), ixor8(cinf, ones))), sc)))
    f0 = itof8(sm)
    fb = bits8(f0)
    big = igt8(iand8(fb, mag), isplat8(0x4E7FFFFF))
    d = isub8(sm, ftoi8(from_bits8(iand8(fb, ixor8(big, ones)))))
    inexact = ixor8(ieq8(d, isplat8(0)), ones)
    rtz = iadd8(fb, iand8(ashr8(ixor8(d, fb), 31), inexact))  # |f0| > |S|: one ulp down
    if mode == RTZ:
        away = isplat8(0)
    elif mode == RUP:
        away = ixor8(ashr8(fb, 31), ones)
    else:  # RDN (RNE does not use it)
        away = ashr8(fb, 31)
    if p_out == 24:
        if mode == RNE:
            r = fb
        else:
            r = isub8(rtz, iand8(inexact, away))
    else:
        sh = 24 - p_out
        low = isplat8((1 << sh) - 1)
        keep = ixor8(low, ones)
        odd = ior8(rtz, iand8(inexact, isplat8(1)))
        if mode == RNE:
            add = iadd8(isplat8((1 << (sh - 1)) - 1), iand8(lshr8(odd, sh), isplat8(1)))
            r = iand8(iadd8(odd, add), keep)
        else:
            r = iand8(iadd8(odd, iand8(low, away)), keep)
    er = iand8(lshr8(r, 23), isplat8(0xFF))  # 0 only for r = 0 (r is an integer)
    scb = bits8(sc)
    ey = isub8(er, lshr8(scb, 23))  # the result's exponent: er - 127 + E - F
    nz = ixor8(ieq8(er, isplat8(0)), ones)
    # c alone (non-zero: E >= -126) below F - 126
    rare = ior8(big, ior8(cinf, iand8(igt8(isplat8(frac_bits - 126), e),
                                      igt8(e, isplat8(-127)))))
    rare = ior8(rare, iand8(igt8(isplat8(emin_out), ey), nz))
    rare = ior8(rare, igt8(ey, isplat8(emax_out - 1)))
    si = from_bits8(isub8(isplat8(254 << 23), scb))  # 2^(E - F) = 1 / sc
    return mul8(from_bits8(r), si), rare


@njit(cache=True, inline="always")
def _fast_block(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, seq, s0, n, sub,
                frac_bits, src, start0, res, tsum, ebuf, p_out, emin_out, emax_out, mode):
    """One block of a register tile rounded in registers: res (64 float32 lanes, may be
    src: each vector of c is read before its result is written) <-
    round(c + block) with c = src (0 when ``start0``); returns whether a lane needs
    :func:`_round_block` instead (then ``res`` is not complete).

    As :func:`_tile_block`, with the running maxima started from c's powers
    (:func:`_start8`), the scales kept as float32 lanes, the runs of ``sub`` slots summed
    in int32 (an overflow between runs is flagged), and the rounding by :func:`_round8`.
    tsum, ebuf: int32 scratch of 64 lanes (the sums and exponents between the passes).
    """
    if start0:
        m00 = splat8(np.float32(0.0))
        m01 = m00
        m10 = m00
        m11 = m00
        m20 = m00
        m21 = m00
        m30 = m00
        m31 = m00
    else:
        m00 = _start8(load8(src, 0))
        m01 = _start8(load8(src, 8))
        m10 = _start8(load8(src, 16))
        m11 = _start8(load8(src, 24))
        m20 = _start8(load8(src, 32))
        m21 = _start8(load8(src, 40))
        m30 = _start8(load8(src, 48))
        m31 = _start8(load8(src, 56))
    end = s0 + n
    m00, m01, m10, m11, m20, m21, m30, m31 = _max_pass(
        pa, pbp, bi, i0, i1, i2, i3, boff, order, seq, s0, end, m00, m01, m10, m11, m20, m21,
        m30, m31)
    s00 = _exp_scale8(m00, ebuf, 0, frac_bits)
    s01 = _exp_scale8(m01, ebuf, 8, frac_bits)
    s10 = _exp_scale8(m10, ebuf, 16, frac_bits)
    s11 = _exp_scale8(m11, ebuf, 24, frac_bits)
    s20 = _exp_scale8(m20, ebuf, 32, frac_bits)
    s21 = _exp_scale8(m21, ebuf, 40, frac_bits)
    s30 = _exp_scale8(m30, ebuf, 48, frac_bits)
    s31 = _exp_scale8(m31, ebuf, 56, frac_bits)
    ovf = isplat8(0)
    for r0 in range(s0, end, sub):
        r1 = min(r0 + sub, end)
        t00, t01, t10, t11, t20, t21, t30, t31 = _sum_run(
            a, bp, bi, i0, i1, i2, i3, boff, order, seq, r0, r1, s00, s01, s10, s11, s20, s21,
            s30, s31)
        if r0 == s0:
            istore8(tsum, 0, t00)
            istore8(tsum, 8, t01)
            istore8(tsum, 16, t10)
            istore8(tsum, 24, t11)
            istore8(tsum, 32, t20)
            istore8(tsum, 40, t21)
            istore8(tsum, 48, t30)
            istore8(tsum, 56, t31)
        else:  # later runs: added in int32, an overflow (same signs, sum of the other) flagged
            ovf = _add_run(tsum, 0, t00, ovf)
            ovf = _add_run(tsum, 8, t01, ovf)
            ovf = _add_run(tsum, 16, t10, ovf)
            ovf = _add_run(tsum, 24, t11, ovf)
            ovf = _add_run(tsum, 32, t20, ovf)
            ovf = _add_run(tsum, 40, t21, ovf)
            ovf = _add_run(tsum, 48, t30, ovf)
            ovf = _add_run(tsum, 56, t31, ovf)
    rare = ashr8(ovf, 31)
    zero = splat8(np.float32(0.0))
    for q in range(0, _TW, 8):
        c = zero if start0 else load8(src, q)
        v, rr = _round8(c, iload8(tsum, q), iload8(ebuf, q), frac_bits, p_out, emin_out,
                        emax_out, mode)
        store8(res, q, v)
        rare = ior8(rare, rr)
    return any8(rare)


@njit(cache=True)
def _add_run(tsum, q, t, ovf):
    """tsum[q:q+8] += t (int32, wrapping); returns ovf with the sign bit set in the lanes
    that overflowed."""
    x = iload8(tsum, q)
    y = iadd8(x, t)
    istore8(tsum, q, y)
    return ior8(ovf, iand8(ixor8(x, y), ixor8(t, y)))


@njit(cache=True, inline="always")
def _round_lanes(cur, curi, sc, si, isum, tot, vbuf, rare, cpow, frac_bits, p_out, emin_out,
                 emax_out, mode):
    """The branch-free pass of :func:`_round_block`; returns the number of rare lanes.
    (Inlined once per rounding mode with ``mode`` a constant, so that the pass has no
    branches on it.)"""
    sh = np.int64(53 - p_out)
    low = (np.int64(1) << sh) - 1
    half = np.int64(1) << (sh - 1)
    odd1 = np.int64(1) if p_out == 1 else np.int64(0)  # as tensorcore._block: p_out = 1
    lo = _bits_f64(np.int64(1023 + emin_out) << 52)  # 2^emin_out
    hi = _bits_f64(np.int64(1023 + emax_out) << 52)  # 2^emax_out
    tiny = _bits_f64(np.int64(1023 - 126) << 52)  # 2^-126
    nrare = 0
    for jj in range(_TW):
        cv = cur[jj]
        cb = _f64_bits(cv)
        cfin = abs(cv) < np.inf
        # c's term: 0 for an infinite c (the block keeps it) and when E is undefined (every
        # product and c zero: then the scale is finite and c is 0 anyway)
        ct = np.trunc((cv if cfin else 0.0) * sc[jj])
        sv = np.float64(isum[jj]) + tot[jj]
        v = (sv + ct) * si[jj]
        bits = _f64_bits(v)
        if mode == RNE:
            add = (half - 1) + (((bits >> sh) & 1) | odd1)
        elif mode == RTZ:
            add = np.int64(0)
        else:
            add = low if (mode == RUP) != (bits < 0) else np.int64(0)
        r = (bits + add) & ~low
        # rare cases for the pass below: infinite c, zero sum, output subnormal, a result
        # that may overflow (top binade)
        av = abs(v)
        fl = np.int64(not cfin) | np.int64(av < lo) | np.int64(av >= hi)
        nrare += fl
        rare[jj] = fl
        vbuf[jj] = v
        r = r if cfin else cb
        curi[jj] = r
        # the result's power of two clamped to 2^-126 (a normal or 0 here: rare lanes are
        # redone below)
        pw = _bits_f64(r & _F64_EXP)
        cpow[jj] = np.float32(pw if pw > tiny else tiny)
    return nrare


@njit(cache=True, inline="always")
def _round_block(cur, curi, sc, si, isum, tot, vbuf, rare, cpow, frac_bits, p_out, emin_out,
                 emax_out, mode):
    """cur <- round(cur + block) for the _TW lanes of a register tile, from the block's
    scales sc = 2^(F - E) and si = 2^(E - F), last run isum and earlier runs tot (zeros
    for a block in one run: see :func:`_tile_block`); cpow <- the new cur's powers of two
    (:func:`_c_pow`), the next block's start."""
    if mode == RTZ:
        nrare = _round_lanes(cur, curi, sc, si, isum, tot, vbuf, rare, cpow, frac_bits, p_out,
                             emin_out, emax_out, RTZ)
    elif mode == RNE:
        nrare = _round_lanes(cur, curi, sc, si, isum, tot, vbuf, rare, cpow, frac_bits, p_out,
                             emin_out, emax_out, RNE)
    else:
        nrare = _round_lanes(cur, curi, sc, si, isum, tot, vbuf, rare, cpow, frac_bits, p_out,
                             emin_out, emax_out, mode)
    if nrare > 0:
        for jj in range(_TW):
            if rare[jj] == 0:
                continue
            r = curi[jj]
            if (r & _F64_EXP) != _F64_EXP:  # an infinite accumulator stays infinite
                v = vbuf[jj]
                e = ((_f64_bits(v) & _F64_EXP) >> 52) - 1023
                if v == 0.0:
                    cur[jj] = 0.0
                elif e < emin_out:  # output subnormals: the general rounding
                    cur[jj] = round_pair(v, 0.0, p_out, emin_out, emax_out, mode, True)
                elif ((r & _F64_EXP) >> 52) - 1023 > emax_out:
                    curi[jj] = (r & ~(_F64_EXP | _F64_MAN)) | _F64_EXP
            cpow[jj] = _c_pow(cur[jj])


@njit(cache=True, inline="always")
def _add_late(cur, curi, part, sums, errs, rare, p_out, emin_out, emax_out, mode):
    """cur <- round(cur + part) (the c-addition stage of c_mode "late"), _TW lanes.

    The sum is formed in float64 with its error (two-sum). Where it is exact (error 0), a
    normal float64 and below the output's top binade, it is rounded from its bits in one
    branch-free pass, as in :func:`_round_block`; the other lanes (inexact or zero sum,
    output subnormal, possible overflow, non-finite) are flagged and rounded in a second
    pass by :func:`tensorcore.round_pair`, as the reference kernel does every column.
    """
    sh = np.int64(53 - p_out)
    low = (np.int64(1) << sh) - 1
    half = np.int64(1) << (sh - 1)
    odd1 = np.int64(1) if p_out == 1 else np.int64(0)  # as tensorcore._block: p_out = 1
    nrare = 0
    for jj in range(_TW):
        x = cur[jj]
        y = part[jj]
        sm = x + y
        bb = sm - x
        err = (x - (sm - bb)) + (y - bb)  # NaN for a non-finite sum: flagged below
        bits = _f64_bits(sm)
        e = ((bits & _F64_EXP) >> 52) - 1023
        if mode == RNE:
            add = (half - 1) + (((bits >> sh) & 1) | odd1)
        elif mode == RTZ:
            add = np.int64(0)
        else:
            add = low if (mode == RUP) != (bits < 0) else np.int64(0)
        fl = np.int32(err != 0.0) | np.int32(e < emin_out) | np.int32(e >= emax_out)
        nrare += fl
        rare[jj] = fl
        sums[jj] = sm
        errs[jj] = err
        curi[jj] = (bits + add) & ~low
    if nrare > 0:
        for jj in range(_TW):
            if rare[jj] != 0:
                sm = sums[jj]
                if math.isfinite(sm):
                    cur[jj] = round_pair(sm, errs[jj], p_out, emin_out, emax_out, mode, True)
                else:
                    cur[jj] = sm


@njit(cache=True, inline="always")
def _block64(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, s0, n, sub, frac_bits, cpb,
             dst, dsti, sc, sc32, si, si32, isum, ftot, vbuf, rare, p_out, emin_out, emax_out,
             mode):
    """One block of a register tile on float64 lanes (:func:`_tile_block` then
    :func:`_round_block`): dst <- round(dst + block), cpb <- its powers (dsti, sc32, si32:
    int views of dst, sc, si). Slots through the table (no ``seq``: numba cannot inline a
    call of more than 30 arguments, which Python passes as a tuple)."""
    _tile_block(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, False, s0, n, sub,
                frac_bits, cpb, sc32, si32, isum, ftot)
    _round_block(dst, dsti, sc, si, isum, ftot, vbuf, rare, cpb, frac_bits, p_out, emin_out,
                 emax_out, mode)


@njit(cache=True, inline="always")
def _panel32(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, seq, k0, k1, inst_k, n, sub,
             frac_bits, late, promote, cur32, part32, tot, tsum, ebuf, p_out, emin_out,
             emax_out, mode):
    """Slots k0 .. k1-1 (whole instructions) of a register tile on the float32 path: cur32
    (64 lanes) <- the accumulators after them, tot <- the fp32 totals (promotion); returns
    whether a lane was flagged (the caller then redoes the panel from its saved state, and
    cur32 / tot are not complete). Inlined: the parallel kernel's compilation of it runs
    10-20 % faster than a function's."""
    redo = False
    dst32 = part32 if late else cur32
    for q0 in range(k0, k1, inst_k):
        # c_mode "late": the instruction's blocks start from 0, c added after (float32's
        # addition)
        for s0 in range(q0, q0 + inst_k, n):
            redo |= _fast_block(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, seq, s0, n,
                                sub, frac_bits, dst32, late and s0 == q0, dst32, tsum, ebuf,
                                p_out, emin_out, emax_out, mode)
        if late:
            for q in range(0, _TW, 8):
                store8(cur32, q, add8(load8(cur32, q), load8(part32, q)))
        done = q0 + inst_k
        if promote > 0 and done % promote == 0:
            for q in range(_TW):
                tot[q] = np.float32(tot[q] + np.float64(cur32[q]))
                cur32[q] = 0.0
        if redo:
            break
    return redo


@njit(cache=True)
def _panel64(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, k0, k1, inst_k, n, sub,
             frac_bits, late, promote, cur, cpb, cpw, tot, p_out, emin_out, emax_out, mode,
             cpo, cr):
    """Slots k0 .. k1-1 (whole instructions) of a register tile on float64 lanes: cur (64
    lanes) <- the accumulators after them, cpw <- their powers (cpb: the blocks' starts,
    cpw or, for c_mode "late", the part's), tot <- the fp32 totals.

    A function of its own, called once per panel: inlined in the parallel kernel, it
    doubled that kernel's compilation time. Its scratch arrays are allocated here (a few
    per panel): LLVM then knows they do not alias, which the vectorised rounding passes
    need (passed in as arguments, they ran twice as slowly)."""
    curi = cur.view(np.int64)
    scratch = np.empty((8, _TW), np.float64)  # one allocation: they cost ~0.1 us each
    part = scratch[0]
    parti = part.view(np.int64)
    sc = scratch[1]
    sc32 = sc.view(np.int32)
    si = scratch[2]
    si32 = si.view(np.int32)
    isum = scratch[3].view(np.int32)[:_TW]
    rare = scratch[4].view(np.int64)
    ftot = scratch[5]  # stays 0 when a block is one int32 run
    ftot[:] = 0.0
    vbuf = scratch[6]
    errs = scratch[7]
    for q0 in range(k0, k1, inst_k):
        # c_mode "late": the instruction's blocks start from 0, c added after
        if late:
            for q in range(_TW):
                part[q] = 0.0
                cpb[q] = 0.0
        dst = part if late else cur
        dsti = parti if late else curi
        for s0 in range(q0, q0 + inst_k, n):
            _block64(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, s0, n, sub, frac_bits,
                     cpb, dst, dsti, sc, sc32, si, si32, isum, ftot, vbuf, rare, p_out,
                     emin_out, emax_out, mode)
        if late:
            _add_late(cur, curi, part, vbuf, errs, rare, cpo, emin_out, emax_out, cr)
        done = q0 + inst_k
        if promote > 0 and done % promote == 0:
            for q in range(_TW):
                tot[q] = np.float32(tot[q] + cur[q])
                cur[q] = 0.0
                cpw[q] = 0.0


def registers_round(p_out, emin_out, emax_out, frac_bits, late, c_p_out, c_round) -> bool:
    """Whether :func:`tc_gemm_fast` rounds its blocks in float32 registers (:func:`_round8`):
    results of float32's range (fp32, fp16), ``p_out`` 24 or at most 22 bits (round to
    odd needs two spare bits), F <= 28 (c's term below 2^29) and, for c_mode "late", a
    c stage that is float32's own addition (RNE to 24 bits, fp32's range)."""
    ok = (p_out == 24 or 2 <= p_out <= 22) and emin_out >= -126 and emax_out <= 127
    ok = ok and frac_bits <= 28
    if late:
        ok = ok and c_p_out == 24 and c_round == RNE and emin_out == -126 and emax_out == 127
    return ok


_registers_round = njit(cache=True)(registers_round)


@njit(cache=True, parallel=True)
def tc_gemm_fast(a, pa, bp, pbp, c, order, n, inst_k, sub, frac_bits, p_out, emin_out,
                 emax_out, mode, c_mode, promote, out, c_p_out, c_round):
    """Tensor-core GEMM model on float32 operands (see the module docstring).

    Args:
        a, pa: (batch, M, K') float32 input values and 2^(clamped exponent) (0 for zeros).
        bp, pbp: (batch, column tiles, K', _JT) C-contiguous float32 panels of b and of its
            powers (:func:`pack_panels`).
        c: (batch, M, N) float64 values of the output format (or fp32), finite.
        order: int64 slot table (see :func:`tensorcore.tc_gemm`), every entry in
            [0, K'): padding slots point at zero columns of a (:func:`pad_slots`).
        n, inst_k: products per block and per instruction.
        sub: slots per int32 partial sum.
        frac_bits: fraction bits F.
        p_out, emin_out, emax_out, mode, c_mode, promote: as :func:`tensorcore.tc_gemm`.
        out: (batch, M, N) float64 result.
        c_p_out, c_round: precision and rounding id of the c-addition stage of C_LATE
            (0 / -1: ``p_out`` / ``mode``).
    """
    cpo = c_p_out if c_p_out > 0 else p_out
    cr = c_round if c_round >= 0 else mode
    late = c_mode == C_LATE
    regs = _registers_round(p_out, emin_out, emax_out, frac_bits, late, cpo, cr)
    nb = a.shape[0]
    m_rows = a.shape[1]
    kdim = a.shape[2]
    ncols = c.shape[2]
    ntiles = bp.shape[1]
    nslots = order.size
    kt = max(inst_k, (_KT // inst_k) * inst_k)
    nrt = (m_rows + _RT - 1) // _RT
    seq = True  # slots in k order (no interleave, no padding): k = s
    for s in range(nslots):
        if order[s] != s:
            seq = False
    for w in prange(nb * nrt * ntiles):
        bi = w // (nrt * ntiles)
        rem = w - bi * nrt * ntiles
        rt = rem // ntiles
        jt = rem - rt * ntiles
        i_lo = rt * _RT
        i_hi = min(i_lo + _RT, m_rows)
        j0 = jt * _JT
        jn = min(_JT, ncols - j0)
        nr = i_hi - i_lo
        ng = (nr + _RB - 1) // _RB
        # per register tile of _RB rows: its accumulators (and fp32 totals under
        # promotion), lanes row after row; rows past the last repeat it (never written out)
        acc = np.zeros((ng, _TW), np.float64)
        acc32 = np.zeros((ng, _TW), np.float32)  # the register path's accumulators
        tot = np.zeros((ng, _TW), np.float64)
        part32 = np.zeros(_TW, np.float32)
        sav32 = np.empty(_TW, np.float32)
        savtot = np.empty(_TW, np.float64)
        tsum = np.empty(_TW, np.int32)
        ebuf = np.empty(_TW, np.int32)
        cpw = np.zeros((ng, _TW), np.float32)  # the accumulators' powers (_c_pow)
        cpl = np.zeros(_TW, np.float32)  # c_mode "late": the instruction's part's
        for r in range(nr):
            g = r // _RB
            q0 = (r - g * _RB) * _JT
            for jj in range(jn):
                cv = c[bi, i_lo + r, j0 + jj]
                if promote > 0:
                    tot[g, q0 + jj] = cv
                else:
                    acc[g, q0 + jj] = cv
                    acc32[g, q0 + jj] = np.float32(cv)
        if promote <= 0 and not regs:
            for g in range(ng):
                for q in range(_TW):
                    cpw[g, q] = _c_pow(acc[g, q])
        boff = (bi * ntiles + jt) * kdim * _JT
        for k0 in range(0, nslots, kt):
            k1 = min(k0 + kt, nslots)
            for g in range(ng):
                i0 = i_lo + g * _RB
                i1 = min(i0 + 1, i_hi - 1)
                i2 = min(i0 + 2, i_hi - 1)
                i3 = min(i0 + 3, i_hi - 1)
                cur = acc[g]
                cur32 = acc32[g]
                cpb = cpl if late else cpw[g]
                redo = not regs
                if regs:
                    # the panel in float32 registers; a flagged lane (rare) has it redone
                    # on float64 lanes from the state saved here
                    for q in range(_TW):
                        sav32[q] = cur32[q]
                        savtot[q] = tot[g, q]
                    redo = _panel32(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, seq, k0,
                                    k1, inst_k, n, sub, frac_bits, late, promote, cur32,
                                    part32, tot[g], tsum, ebuf, p_out, emin_out, emax_out,
                                    mode)
                    if redo:
                        for q in range(_TW):
                            cur[q] = sav32[q]
                            tot[g, q] = savtot[q]
                            cpw[g, q] = _c_pow(cur[q])
                if redo:
                    _panel64(a, pa, bp, pbp, bi, i0, i1, i2, i3, boff, order, k0, k1, inst_k, n,
                             sub, frac_bits, late, promote, cur, cpb, cpw[g], tot[g], p_out,
                             emin_out, emax_out, mode, cpo, cr)
                    if regs:
                        for q in range(_TW):
                            cur32[q] = np.float32(cur[q])
        for r in range(nr):
            g = r // _RB
            q0 = (r - g * _RB) * _JT
            i = i_lo + r
            for jj in range(jn):
                v = np.float64(acc32[g, q0 + jj]) if regs else acc[g, q0 + jj]
                if promote > 0:
                    if nslots % promote != 0:
                        v = np.float32(tot[g, q0 + jj] + v)
                    else:
                        v = tot[g, q0 + jj]
                out[bi, i, j0 + jj] = v


def pad_slots(a32, pa32, bpan, pbpan, order):
    """The kernel's operands with K padded to the slot table's padding slots (order < 0):
    zero columns of a (and of its powers) and zero rows of the panels, and the padding
    slots pointing at them; the arrays unchanged (no copies) when there is no padding.

    Args:
        a32, pa32: (batch, M, K) float32.
        bpan, pbpan: (batch, tiles, K, _JT) float32 panels.
        order: int64 slot table with -1 for padding.

    Returns:
        (a32, pa32, bpan, pbpan, order) for :func:`tc_gemm_fast`.
    """
    pad = order < 0
    npad = int(pad.sum())
    if npad == 0:
        return a32, pa32, bpan, pbpan, order
    k = a32.shape[2]
    order = order.copy()
    order[pad] = k + np.arange(npad)

    def grow(x, axis):
        shape = list(x.shape)
        shape[axis] = npad
        return np.ascontiguousarray(np.concatenate([x, np.zeros(shape, x.dtype)], axis))

    return grow(a32, 2), grow(pa32, 2), grow(bpan, 2), grow(pbpan, 2), order


# --- dispatch (plain Python) --------------------------------------------------------------

#: BlockFMAModel fields this kernel implements; a model with any other field set away from
#: its default (a behaviour added later) is left to the reference kernel.
HANDLED_FIELDS = frozenset({"n", "frac_bits", "rounding", "out_format", "out_frac_bits",
                            "c_mode", "instruction_k", "interleave", "promote_every",
                            "convert_inputs", "c_rounding", "c_frac_bits",
                            "normalise_products", "name"})
_ROUNDING_IDS = {"rtz": RTZ, "rne": RNE, "rup": RUP, "rdn": 4}


def handles_model(blk) -> bool:
    """Whether this kernel implements every field of a BlockFMAModel as set."""
    import dataclasses

    for f in dataclasses.fields(blk):
        if f.name in HANDLED_FIELDS:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            return False
        if getattr(blk, f.name) != default:
            return False
    return blk.rounding in _ROUNDING_IDS and blk.c_stage_rounding in _ROUNDING_IDS


def _span(x: np.ndarray):
    """(smallest, largest) non-zero |x|, or None when x has no non-zero."""
    ax = np.abs(x)
    nz = ax[ax > 0]
    if nz.size == 0:
        return None
    return float(nz.min()), float(nz.max())


def plan(blk, prec_a: int, prec_b: int, av, pa, bv, pb):
    """Slots per int32 partial sum when the fast kernel gives the reference bits, else None.

    Args:
        blk: the BlockFMAModel.
        prec_a, prec_b: precisions (significand bits) of a's and b's formats.
        av, pa, bv, pb: finite float64 values and powers of two 2^(clamped exponent).

    Returns:
        int or None (see the module docstring for the conditions).
    """
    return _plan_spans(blk, prec_a, prec_b, _span(av), _span(bv), _span(pa), _span(pb))


def _plan_spans(blk, prec_a, prec_b, sa, sb, qa, qb):
    """:func:`plan` from the (smallest, largest) non-zero magnitudes of a, b, pa, pb."""
    if not handles_model(blk) or prec_a + prec_b > 24:
        return None  # products not exact in float32
    f = blk.frac_bits
    if f < 1:
        return None
    maxsig = (2.0 - 2.0 ** (1 - prec_a)) * (2.0 - 2.0 ** (1 - prec_b))
    tmax = math.floor(maxsig * 2.0 ** f)  # largest truncated term
    if tmax >= 2 ** 31 - 1:
        return None
    sub = min(blk.n, (2 ** 31 - 1) // tmax)
    if sa is None or sb is None:
        return sub  # every product is zero
    # products normal float32 values (exact); their powers of two float32 values whose
    # product with 2^(F - E) stays in range: F - 126 <= E <= 127
    if sa[0] * sb[0] < 2.0 ** -126 or sa[1] * sb[1] >= 2.0 ** 127:
        return None
    if qa[0] * qb[0] < 2.0 ** max(-126, f - 126) or qa[1] * qb[1] > 2.0 ** 127:
        return None
    return sub


def _pow2_f32(x32: np.ndarray, emin: int) -> np.ndarray:
    """2^max(floor(log2|x|), emin) for non-zero x, 0 for zeros, float32 (x finite float32,
    emin >= -126): the exponent bits of x, which are 0 for float32 subnormals."""
    p = x32.view(np.int32) & np.int32(0x7F800000)  # in place below: fewer passes
    np.maximum(p, np.int32((127 + emin) << 23), out=p)
    p *= x32 != 0
    return p.view(np.float32)


def plan_values(blk, prec_a: int, prec_b: int, sa, sb, emin_a: int, emin_b: int):
    """:func:`plan` from the (smallest, largest) non-zero magnitudes of a and b (None: no
    non-zero); their powers' spans follow (the powers of the extremes: a monotonic map;
    |a| and |b| themselves for ``normalise_products``).

    Args:
        blk: the BlockFMAModel.
        prec_a, prec_b: precisions of a's and b's formats.
        sa, sb: (smallest, largest) non-zero |a| and |b|, or None.
        emin_a, emin_b: the exponents the inputs' exponents are clamped to.

    Returns:
        int or None, as :func:`plan`.
    """
    if blk.normalise_products:
        qa, qb = sa, sb
    else:
        qa = sa and tuple(_pow2_scalar(v, emin_a) for v in sa)
        qb = sb and tuple(_pow2_scalar(v, emin_b) for v in sb)
    return _plan_spans(blk, prec_a, prec_b, sa, sb, qa, qb)


def _pow2_scalar(v: float, emin: int) -> float:
    """2^max(floor(log2 v), emin) for v > 0."""
    return math.ldexp(1.0, max(math.frexp(v)[1] - 1, emin))


def prepare(blk, prec_a: int, prec_b: int, av, bv, emin_a: int, emin_b: int):
    """The fast kernel's operands when it gives the reference bits, else None.

    Equivalent to :func:`plan` on the float64 operands and their powers of two (as
    ``gemm._pow2_exponents``), computed in float32 (cheaper, and what the kernel takes).

    Args:
        blk: the BlockFMAModel.
        prec_a, prec_b: precisions of a's and b's formats.
        av, bv: (batch, M, K) and (batch, K, N) finite float64 values.
        emin_a, emin_b: the exponents the inputs' exponents are clamped to.

    Returns:
        None, or (a, pa, b panels, pb panels, sub) for :func:`tc_gemm_fast`.
    """
    if not handles_model(blk) or prec_a + prec_b > 24 or min(emin_a, emin_b) < -126:
        return None
    a32 = np.ascontiguousarray(av, dtype=np.float32)
    b32 = np.ascontiguousarray(bv, dtype=np.float32)
    if not ((a32 == av).all() and (b32 == bv).all()):
        return None  # values beyond float32 (plan would decline their products too)
    if blk.normalise_products:  # aligned by |a b|'s own exponent: from |a| |b| directly
        pa, pb = np.abs(a32), np.abs(b32)
    else:
        pa, pb = _pow2_f32(a32, emin_a), _pow2_f32(b32, emin_b)
    sub = plan_values(blk, prec_a, prec_b, _span(a32), _span(b32), emin_a, emin_b)
    if sub is None:
        return None
    return a32, np.ascontiguousarray(pa), pack_panels(b32), pack_panels(pb), sub


def pack_panels(x: np.ndarray) -> np.ndarray:
    """(batch, K, N) -> (batch, ceil(N / _JT), K, _JT) float32 panels, zero padded."""
    nb, k, n = x.shape
    nt = -(-n // _JT)
    tmp = np.zeros((nb, k, nt * _JT), np.float32)
    tmp[:, :, :n] = x
    return np.ascontiguousarray(tmp.reshape(nb, k, nt, _JT).transpose(0, 2, 1, 3))


#: :func:`tc_gemm_fast` (same arguments), by its serial twin for small products.
tc_gemm_fast_auto = gemm_serial.SerialWhenSmall(
    tc_gemm_fast, "tc_gemm_fast_serial", lambda a, pa, bp, pbp, c, *rest: c.size * a.shape[-1],
    # the plain copy computes whole tiles of _JT columns: about 6 (blocks of 32) to 10
    # (blocks of 8) us per product, numpy's eight-lane twins and per-lane rounding
    plain_below=1 << 15, plain_work=lambda a, pa, bp, *rest: a.shape[0] * a.shape[1]
    * bp.shape[1] * _JT * a.shape[2])
