"""Block-FMA kernel modelling NVIDIA tensor cores (see :mod:`lowprec.hardware.models`).

Every quantity is a float64 that holds its value exactly: products of two inputs of at most
24 significant bits; powers of two 2^e for the clamped exponents (``pa``/``pb``, 0 for a zero
input), so that the largest product exponent of a block is a max of products of powers of
two; the aligned, truncated terms trunc(p * 2^(F - E)) (integers below 2^53); and their
sum. Nothing is rounded until the block's final normalisation, which is done on integer
significands. Loops over j are innermost so that they vectorise.
"""

import math

import numpy as np
from numba import njit, prange

_JT = 64  # columns per tile
_RNE = 0
_RNA = 1
_RTZ = 2
_RUP = 3
_RDN = 4


@njit(cache=True)
def round_pair(v, lo, p, emin, emax, mode, inf_on_overflow):
    """Round the exact value v + lo (|lo| <= ulp(v)/2) to precision p with exponent range
    [emin, emax] (subnormals below 2^emin; the largest binade is full).

    ``mode``: lowprec rounding id 0..4 (rne, rna, rtz, rup, rdn). Overflow gives +-inf
    when ``inf_on_overflow`` or for round-to-nearest; otherwise the directed modes give
    +-max where IEEE 754 says so. Non-finite v is returned as is; an exact zero keeps v's sign.
    """
    if not math.isfinite(v):
        return v
    if v == 0.0:
        if lo == 0.0:
            return v
        v = lo
        lo = 0.0
    neg = v < 0.0
    av = -v if neg else v
    tl = -lo if neg else lo  # tail, positive when it adds to the magnitude
    e = math.frexp(av)[1] - 1
    q = (e if e > emin else emin) - (p - 1)
    x = math.ldexp(av, -q)
    f = math.floor(x)
    rem = x - f
    if rem == 0.0 and tl < 0.0:
        # The exact magnitude lies just below a grid point; at the bottom of a binade the
        # grid below is twice as fine.
        if e > emin and f == math.ldexp(1.0, p - 1):
            q -= 1
            f = 2.0 * f
        f -= 1.0
        rem = 1.0  # stands for "1 - tiny": above every threshold, below the next point
        tl = 0.0
    up = False
    if mode == _RNE or mode == _RNA:
        if rem > 0.5:
            up = True
        elif rem == 0.5:
            if tl > 0.0:
                up = True
            elif tl == 0.0:
                up = mode == _RNA or f - 2.0 * math.floor(0.5 * f) == 1.0
    elif mode == _RUP:
        up = (not neg) and (rem > 0.0 or tl > 0.0)
    elif mode == _RDN:
        up = neg and (rem > 0.0 or tl > 0.0)
    r = math.ldexp(f + 1.0 if up else f, q)
    if r >= math.ldexp(1.0, emax + 1):
        toward_zero = mode == _RTZ or (mode == _RUP and neg) or (mode == _RDN and not neg)
        if inf_on_overflow or not toward_zero:
            r = math.inf
        else:
            r = math.ldexp(math.ldexp(1.0, p) - 1.0, emax + 1 - p)
    return -r if neg else r


@njit(cache=True)
def _c_pow2(v):
    # 2^e of an fp32 value's exponent, clamped at fp32's -126; 0 for zero.
    if v == 0.0 or not math.isfinite(v):
        return 0.0
    e = math.frexp(v)[1] - 1
    return math.ldexp(1.0, e if e > -126 else -126)


@njit(cache=True)
def _block(a, pa, b, pb, bi, i, j0, jn, order, s0, n, two_f, cur, pmax, ssum, scale,
           p_out, emin_out, emax_out, mode):
    """One block FMA for columns j0..j0+jn of row i: cur <- round(cur + sum of the block)."""
    for jj in range(jn):
        pmax[jj] = _c_pow2(cur[jj])
    for s in range(s0, s0 + n):
        k = order[s]
        if k < 0:
            continue
        pak = pa[bi, i, k]
        if pak == 0.0:
            continue
        for jj in range(jn):
            x = pak * pb[bi, k, j0 + jj]
            pmax[jj] = x if x > pmax[jj] else pmax[jj]
    for jj in range(jn):
        sc = two_f / pmax[jj] if pmax[jj] > 0.0 else 0.0
        scale[jj] = sc
        cv = cur[jj]
        ssum[jj] = np.trunc(cv * sc) if math.isfinite(cv) else 0.0
    for s in range(s0, s0 + n):
        k = order[s]
        if k < 0:
            continue
        ak = a[bi, i, k]
        if ak == 0.0:
            continue
        for jj in range(jn):
            ssum[jj] += np.trunc(ak * b[bi, k, j0 + jj] * scale[jj])
    for jj in range(jn):
        if not math.isfinite(cur[jj]):
            continue  # an overflowed accumulator stays infinite
        if ssum[jj] == 0.0:
            cur[jj] = 0.0
        else:
            cur[jj] = round_pair(ssum[jj] / scale[jj], 0.0, p_out, emin_out, emax_out, mode,
                                 True)


@njit(cache=True, parallel=True)
def tc_gemm(a, pa, b, pb, c, order, n, inst_k, frac_bits, p_out, emin_out, emax_out, mode,
            c_late, promote, out):
    """Tensor-core GEMM model.

    Args:
        a, pa: (batch, M, K) float64 input values and 2^(clamped exponent) (0 for zeros).
        b, pb: (batch, K, N) likewise.
        c: (batch, M, N) float64 values of the output format (or fp32).
        order: int64 slot table, length a multiple of inst_k: the k index of each product
            slot (-1 for padding); slots [s, s + n) form one block, in order.
        n, inst_k, frac_bits: products per block, per instruction, fraction bits F.
        p_out, emin_out, emax_out, mode: the block output's precision, exponent range and
            rounding id (0 rne, 2 rtz, 3 rup, 4 rdn).
        c_late: 1 to start each instruction from 0 and add c afterwards.
        promote: 0, or products between fp32 promotions.
        out: (batch, M, N) float64 result.
    """
    nb = a.shape[0]
    m_rows = a.shape[1]
    ncols = b.shape[2]
    nslots = order.size
    two_f = math.ldexp(1.0, frac_bits)
    for r in prange(nb * m_rows):
        bi = r // m_rows
        i = r - bi * m_rows
        pmax = np.empty(_JT, np.float64)
        ssum = np.empty(_JT, np.float64)
        scale = np.empty(_JT, np.float64)
        acc = np.empty(_JT, np.float64)
        part = np.empty(_JT, np.float64)
        tot = np.empty(_JT, np.float64)
        for j0 in range(0, ncols, _JT):
            jn = min(_JT, ncols - j0)
            for jj in range(jn):
                cv = c[bi, i, j0 + jj]
                if promote > 0:
                    tot[jj] = cv
                    acc[jj] = 0.0
                else:
                    acc[jj] = cv
            done = 0
            for q0 in range(0, nslots, inst_k):
                if c_late == 1:
                    for jj in range(jn):
                        part[jj] = 0.0
                    for s0 in range(q0, q0 + inst_k, n):
                        _block(a, pa, b, pb, bi, i, j0, jn, order, s0, n, two_f, part, pmax,
                               ssum, scale, p_out, emin_out, emax_out, mode)
                    for jj in range(jn):
                        x = acc[jj]
                        y = part[jj]
                        s = x + y
                        if math.isfinite(s):
                            bb = s - x
                            err = (x - (s - bb)) + (y - bb)
                            acc[jj] = round_pair(s, err, p_out, emin_out, emax_out, mode, True)
                        else:
                            acc[jj] = s
                else:
                    for s0 in range(q0, q0 + inst_k, n):
                        _block(a, pa, b, pb, bi, i, j0, jn, order, s0, n, two_f, acc, pmax,
                               ssum, scale, p_out, emin_out, emax_out, mode)
                done += inst_k
                if promote > 0 and done % promote == 0:
                    for jj in range(jn):
                        tot[jj] = np.float32(tot[jj] + acc[jj])
                        acc[jj] = 0.0
            if promote > 0:
                if done % promote != 0:
                    for jj in range(jn):
                        tot[jj] = np.float32(tot[jj] + acc[jj])
                for jj in range(jn):
                    out[bi, i, j0 + jj] = tot[jj]
            else:
                for jj in range(jn):
                    out[bi, i, j0 + jj] = acc[jj]
