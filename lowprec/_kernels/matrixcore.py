"""Kernels modelling AMD CDNA matrix cores (see :mod:`lowprec.matrixcore`).

One kernel per block scheme; each takes plain arrays and integers. Inputs are float64
arrays of finite values of their formats (the caller resolves NaN and inf first), c holds
fp32 values. Every intermediate is exact: products of two inputs of at most 24 bits in all
are exact in float64; the "aligned"/"odd_even" terms are integers below 2^53 scaled by
powers of two; the "exact" scheme's sum lives in a multi-word integer (a Kulisch
accumulator of 30-bit limbs) and is rounded once to fp32 through a 53-bit value whose last
bit is sticky (round to odd; 53 >= 24 + 2 makes the RNE conversion to fp32 exact). fp32
additions of the "pairwise" scheme are float64 sums rounded to float32, which is the
correctly rounded fp32 sum (53 >= 2 * 24 + 2). Loops over output columns are innermost.
"""

import math

import numpy as np
from .jit import njit, prange

_JT = 64  # columns per tile
_RBT = 16  # rows per task
_TINY = 2.0 ** -126
_HUGE = 2.0 ** 128
_MASK30 = np.int64((1 << 30) - 1)


@njit(cache=True, parallel=True)
def mc_pairwise(a, b, c, n, out):
    """CDNA2: balanced fp32 tree over each block of n products, then c + tree, flushing
    subnormal products, c and sums (a and b already flushed by the caller)."""
    nb, m_rows, K = a.shape
    ncols = b.shape[2]
    nrb = (m_rows + _RBT - 1) // _RBT
    for r in prange(nb * nrb):
        bi = r // nrb
        i_lo = (r - bi * nrb) * _RBT
        i_hi = min(i_lo + _RBT, m_rows)
        buf = np.empty((n, _JT), np.float64)
        acc = np.empty(_JT, np.float64)
        for j0 in range(0, ncols, _JT):
            jn = min(_JT, ncols - j0)
            for i in range(i_lo, i_hi):
                for jj in range(jn):
                    acc[jj] = c[bi, i, j0 + jj]
                for q0 in range(0, K, n):
                    for t in range(n):
                        k = q0 + t
                        if k >= K:
                            for jj in range(jn):
                                buf[t, jj] = 0.0
                            continue
                        ak = a[bi, i, k]
                        for jj in range(jn):
                            p = ak * b[bi, k, j0 + jj]
                            # exact in fp32 unless |p| >= 2^128 (then +-inf); tiny -> +0
                            buf[t, jj] = 0.0 if abs(p) < _TINY else np.float64(np.float32(p))
                    w = n
                    while w > 1:
                        for t in range(w // 2):
                            for jj in range(jn):
                                s = np.float64(np.float32(buf[2 * t, jj] + buf[2 * t + 1, jj]))
                                buf[t, jj] = s * 0.0 if abs(s) < _TINY else s
                        w //= 2
                    for jj in range(jn):
                        cc = acc[jj]
                        if abs(cc) < _TINY:
                            cc = 0.0
                        s = np.float64(np.float32(cc + buf[0, jj]))
                        acc[jj] = s * 0.0 if abs(s) < _TINY else s
                for jj in range(jn):
                    out[bi, i, j0 + jj] = acc[jj]


@njit(cache=True, parallel=True)
def mc_aligned(a, pa, b, pb, c, n, groups, frac_bits, c_frac_bits, c_window, check_ovf, out):
    """CDNA3: products truncated to frac_bits below their group's largest exponent (one
    group, or even/odd positions with groups=2), groups combined rounding toward -inf, c
    added late (rounded toward -inf onto the finer of the two grids, or truncated when more
    than c_window (>= 0) binades below), one RNE rounding to fp32.

    ``pa``/``pb``: 2^(clamped exponent) of each input, 0 for zeros.
    """
    nb, m_rows, K = a.shape
    ncols = b.shape[2]
    nrb = (m_rows + _RBT - 1) // _RBT
    two_f = math.ldexp(1.0, frac_bits)
    inv_f = math.ldexp(1.0, -frac_bits)
    inv_fc = math.ldexp(1.0, -c_frac_bits)
    win = math.ldexp(1.0, c_window) if c_window >= 0 else 0.0
    for r in prange(nb * nrb):
        bi = r // nrb
        i_lo = (r - bi * nrb) * _RBT
        i_hi = min(i_lo + _RBT, m_rows)
        em = np.empty((2, _JT), np.float64)
        sc = np.empty((2, _JT), np.float64)
        ss = np.empty((2, _JT), np.float64)
        pos = np.empty(_JT, np.bool_)
        neg = np.empty(_JT, np.bool_)
        acc = np.empty(_JT, np.float64)
        for j0 in range(0, ncols, _JT):
            jn = min(_JT, ncols - j0)
            for i in range(i_lo, i_hi):
                for jj in range(jn):
                    acc[jj] = c[bi, i, j0 + jj]
                for q0 in range(0, K, n):
                    for jj in range(jn):
                        em[0, jj] = 0.0
                        em[1, jj] = 0.0
                        ss[0, jj] = 0.0
                        ss[1, jj] = 0.0
                        pos[jj] = False
                        neg[jj] = False
                    for t in range(min(n, K - q0)):
                        k = q0 + t
                        pak = pa[bi, i, k]
                        if pak == 0.0:
                            continue
                        g = t & 1 if groups == 2 else 0
                        for jj in range(jn):
                            x = pak * pb[bi, k, j0 + jj]
                            em[g, jj] = x if x > em[g, jj] else em[g, jj]
                        if check_ovf:
                            ak = a[bi, i, k]
                            for jj in range(jn):
                                p = ak * b[bi, k, j0 + jj]
                                pos[jj] = pos[jj] or p >= _HUGE
                                neg[jj] = neg[jj] or p <= -_HUGE
                    for g in range(groups):
                        for jj in range(jn):
                            e = em[g, jj]
                            sc[g, jj] = two_f / e if e > 0.0 else 0.0
                    for t in range(min(n, K - q0)):
                        k = q0 + t
                        ak = a[bi, i, k]
                        if ak == 0.0:
                            continue
                        g = t & 1 if groups == 2 else 0
                        for jj in range(jn):
                            ss[g, jj] += np.trunc(ak * b[bi, k, j0 + jj] * sc[g, jj])
                    for jj in range(jn):
                        cv = acc[jj]
                        if pos[jj] or neg[jj] or not math.isfinite(cv):
                            pp = pos[jj] or cv == math.inf
                            nn = neg[jj] or cv == -math.inf
                            acc[jj] = math.nan if (pp and nn) else (math.inf if pp else -math.inf)
                            continue
                        big = em[0, jj]
                        s = ss[0, jj]
                        if groups == 2:
                            eo = em[1, jj]
                            if eo > big:  # the odd group leads; the even sum is floored
                                s = ss[1, jj] + (math.floor(s * (big / eo)) if big > 0.0 else 0.0)
                                big = eo
                            elif eo > 0.0:
                                s = s + math.floor(ss[1, jj] * (eo / big))
                        if big == 0.0:  # no non-zero product: c passes through
                            acc[jj] = 0.0 if cv == 0.0 else cv
                            continue
                        if cv == 0.0:
                            ce = _TINY
                        else:
                            ce = math.ldexp(1.0, max(math.frexp(abs(cv))[1] - 1, -126))
                        grid = big * inv_f
                        if ce > big:
                            cg = ce * inv_fc
                            tot = math.floor(s * grid / cg) + cv / cg
                            grid = cg
                        elif ce < big:
                            cq = cv / grid
                            if c_window >= 0 and ce * win < big:
                                tot = s + np.trunc(cq)
                            else:
                                tot = s + math.floor(cq)
                        else:
                            tot = s + cv / grid
                        acc[jj] = 0.0 if tot == 0.0 else np.float64(np.float32(tot * grid))
                for jj in range(jn):
                    out[bi, i, j0 + jj] = acc[jj]


@njit(cache=True)
def _deposit(limbs, v, qmin):
    """Add the finite non-zero v (at most 24 significant bits) into the limbs."""
    m, e = math.frexp(abs(v))
    mi = np.int64(m * 16777216.0)  # exact: at most 24 significant bits
    q = e - 24 - qmin
    li = q // 30
    w = mi << (q - 30 * li)
    lo = w & _MASK30
    hi = w >> 30
    if v < 0.0:
        limbs[li] -= lo
        limbs[li + 1] -= hi
    else:
        limbs[li] += lo
        limbs[li + 1] += hi


@njit(cache=True)
def _normalise(limbs, nl):
    for li in range(nl - 1):
        cy = limbs[li] >> 30
        limbs[li] -= cy << 30
        limbs[li + 1] += cy


@njit(cache=True)
def _round_limbs(limbs, nl, qmin):
    """fp32 (RNE) of the exact sum held in the limbs; +0 for an exact zero."""
    _normalise(limbs, nl)
    neg = limbs[nl - 1] < 0
    if neg:
        for li in range(nl):
            limbs[li] = -limbs[li]
        _normalise(limbs, nl)
    h = nl - 1
    while h >= 0 and limbs[h] == 0:
        h -= 1
    if h < 0:
        return 0.0
    if h == 0:
        v = math.ldexp(np.float64(limbs[0]), qmin)
    else:
        top = limbs[h]
        hi = (top << 30) | limbs[h - 1]
        scale = 30 * (h - 1) + qmin
        nbits = 30 + math.frexp(np.float64(top))[1]
        sticky = False
        for li in range(h - 1):
            if limbs[li] != 0:
                sticky = True
        if nbits > 53:
            s = nbits - 53
            if hi & ((np.int64(1) << s) - 1):
                sticky = True
            hi >>= s
            scale += s
        if sticky:  # round to odd: at least 31 bits, so the fp32 rounding below is exact
            hi |= 1
        v = math.ldexp(np.float64(hi), scale)
    r = np.float64(np.float32(v))
    return -r if neg else r


@njit(cache=True, parallel=True)
def mc_exact(a, b, c, n, qmin, nl, out):
    """CDNA1: each block's products and c summed exactly, rounded once to fp32 (RNE).

    The block is summed in float64 with an exactness check on every addition (TwoSum's
    error is zero); a column whose sum was not exact is summed again in the limbs.
    ``qmin``: exponent of the limbs' lowest bit; ``nl``: number of 30-bit limbs (both from
    the input formats' ranges, with headroom for carries).
    """
    nb, m_rows, K = a.shape
    ncols = b.shape[2]
    nrb = (m_rows + _RBT - 1) // _RBT
    for r in prange(nb * nrb):
        bi = r // nrb
        i_lo = (r - bi * nrb) * _RBT
        i_hi = min(i_lo + _RBT, m_rows)
        limbs = np.zeros(nl, np.int64)
        acc = np.empty(_JT, np.float64)
        sm = np.empty(_JT, np.float64)
        bad = np.empty(_JT, np.bool_)
        for j0 in range(0, ncols, _JT):
            jn = min(_JT, ncols - j0)
            for i in range(i_lo, i_hi):
                for jj in range(jn):
                    acc[jj] = c[bi, i, j0 + jj]
                for q0 in range(0, K, n):
                    kn = min(n, K - q0)
                    for jj in range(jn):
                        sm[jj] = acc[jj]
                        bad[jj] = False
                    for t in range(kn):
                        ak = a[bi, i, q0 + t]
                        for jj in range(jn):
                            x = sm[jj]
                            p = ak * b[bi, q0 + t, j0 + jj]
                            y = x + p
                            bb = y - x
                            bad[jj] = bad[jj] or ((x - (y - bb)) + (p - bb)) != 0.0
                            sm[jj] = y
                    for jj in range(jn):
                        cv = acc[jj]
                        if not math.isfinite(cv):
                            continue  # an overflowed accumulator stays inf
                        if not bad[jj]:  # the float64 sum is exact: one rounding
                            y = sm[jj]
                            acc[jj] = 0.0 if y == 0.0 else np.float64(np.float32(y))
                            continue
                        for li in range(nl):
                            limbs[li] = 0
                        if cv != 0.0:
                            _deposit(limbs, cv, qmin)
                        for t in range(kn):
                            p = a[bi, i, q0 + t] * b[bi, q0 + t, j0 + jj]
                            if p != 0.0:
                                _deposit(limbs, p, qmin)
                        acc[jj] = _round_limbs(limbs, nl, qmin)
                for jj in range(jn):
                    out[bi, i, j0 + jj] = acc[jj]
