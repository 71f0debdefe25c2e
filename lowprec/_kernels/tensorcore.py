"""Block-FMA kernel modelling NVIDIA tensor cores (see :mod:`lowprec.tensorcore`).

Every quantity is a float64 that holds its value exactly: products of two inputs of at most
24 significant bits; powers of two 2^e for the clamped exponents (``pa``/``pb``, 0 for a zero
input), so that the largest product exponent of a block is a max of products of powers of
two; the aligned, truncated terms trunc(p * 2^(F - E)) (integers below 2^53); and their
sum. Nothing is rounded until the block's final normalisation, which is done on integer
significands. Loops over j are innermost so that they vectorise.
"""

import math

import numpy as np
from .jit import njit, prange

from ..ids import C_LATE, RDN, RNA, RNE, RTZ, RUP

_JT = 64  # columns per tile
_RBT = 16  # rows per task: they share the tile's panel of b while it is in cache


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
    if mode == RNE or mode == RNA:
        if rem > 0.5:
            up = True
        elif rem == 0.5:
            if tl > 0.0:
                up = True
            elif tl == 0.0:
                up = mode == RNA or f - 2.0 * math.floor(0.5 * f) == 1.0
    elif mode == RUP:
        up = (not neg) and (rem > 0.0 or tl > 0.0)
    elif mode == RDN:
        up = neg and (rem > 0.0 or tl > 0.0)
    r = math.ldexp(f + 1.0 if up else f, q)
    if r >= math.ldexp(1.0, emax + 1):
        toward_zero = mode == RTZ or (mode == RUP and neg) or (mode == RDN and not neg)
        if inf_on_overflow or not toward_zero:
            r = math.inf
        else:
            r = math.ldexp(math.ldexp(1.0, p) - 1.0, emax + 1 - p)
    return -r if neg else r


_EXP_MASK = np.int64(0x7FF0000000000000)
_MAN_MASK = np.int64(0x000FFFFFFFFFFFFF)
_POW2_M126 = math.ldexp(1.0, -126)


@njit(cache=True)
def _block(a, pa, b, pb, bi, i, j0, jn, order, s0, n, two_f, cur, curi, pmax, pmaxi, ssum,
           scale, vt, vti, p_out, emin_out, emax_out, mode, norm=False):
    """One block FMA for columns j0..j0+jn of row i: cur <- round(cur + sum of the block).

    ``curi``, ``pmaxi`` and ``vti`` are int64 views of ``cur``, ``pmax`` and ``vt``: powers
    of two and the final rounding are taken from the float64 bits, so the loops vectorise.
    ``norm``: align products by 2^floor(log2|a b|) instead of 2^(e_a + e_b).
    """
    for jj in range(jn):
        # 2^exponent of c as an fp32 value (clamped at -126); 0 for zero and non-finite c
        eb = curi[jj] & _EXP_MASK
        pw = 0 if (eb == 0 or eb == _EXP_MASK) else eb
        pmaxi[jj] = pw
        if pw != 0 and pmax[jj] < _POW2_M126:
            pmax[jj] = _POW2_M126
    for s in range(s0, s0 + n):
        k = order[s]
        if k < 0:
            continue
        pak = pa[bi, i, k]
        if pak == 0.0:
            continue
        for jj in range(jn):
            x = pak * pb[bi, k, j0 + jj]
            if norm and x != 0.0:
                # the product's own exponent (exact: a product of two inputs is a float64)
                x = math.ldexp(1.0, math.frexp(abs(a[bi, i, k] * b[bi, k, j0 + jj]))[1] - 1)
            pmax[jj] = x if x > pmax[jj] else pmax[jj]
    for jj in range(jn):
        pm = pmax[jj]
        sc = two_f / pm if pm > 0.0 else 0.0
        scale[jj] = sc
        cv = cur[jj]
        ssum[jj] = np.trunc(cv * sc) if (curi[jj] & _EXP_MASK) != _EXP_MASK else 0.0
    for s in range(s0, s0 + n):
        k = order[s]
        if k < 0:
            continue
        ak = a[bi, i, k]
        if ak == 0.0:
            continue
        for jj in range(jn):
            ssum[jj] += np.trunc(ak * b[bi, k, j0 + jj] * scale[jj])
    # Final normalisation from the bits of v = S * 2^(E - F) (exact, a normal float64):
    # drop 52 - (p - 1) mantissa bits with the block's rounding; results below 2^emin_out
    # (output subnormals) and overflow go through round_pair.
    sh = np.int64(53 - p_out)
    low = (np.int64(1) << sh) - 1
    half = np.int64(1) << (sh - 1)
    # the last kept significand bit, for ties to even: a stored bit, or with p_out = 1 the
    # implicit leading 1 (odd); bit 52 of the float64 is the exponent's, not the significand's
    odd1 = np.int64(1) if p_out == 1 else np.int64(0)
    for jj in range(jn):
        sv = ssum[jj]
        vt[jj] = sv / scale[jj] if sv != 0.0 else 0.0
    for jj in range(jn):
        if (curi[jj] & _EXP_MASK) == _EXP_MASK:
            continue  # an overflowed accumulator stays infinite
        bits = vti[jj]
        if bits == 0:
            cur[jj] = 0.0
            continue
        e = ((bits & _EXP_MASK) >> 52) - 1023
        if e < emin_out:
            cur[jj] = round_pair(vt[jj], 0.0, p_out, emin_out, emax_out, mode, True)
            continue
        neg = bits < 0
        if mode == RTZ:
            r = bits & ~low
        elif mode == RNE:
            r = (bits + (half - 1) + (((bits >> sh) & 1) | odd1)) & ~low
        elif (mode == RUP) != neg:
            r = (bits + low) & ~low
        else:
            r = bits & ~low
        if ((r & _EXP_MASK) >> 52) - 1023 > emax_out:
            r = (r & ~(_EXP_MASK | _MAN_MASK)) | _EXP_MASK
        curi[jj] = r


@njit(cache=True, parallel=True)
def tc_gemm(a, pa, b, pb, c, order, n, inst_k, frac_bits, p_out, emin_out, emax_out, mode,
            c_mode, promote, out, c_p_out=0, c_round=-1, norm=False):
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
        c_mode: lowprec.ids.C_BLOCK (c aligned with the products) or C_LATE (each
            instruction starts from 0 and c is added afterwards).
        promote: 0, or products between fp32 promotions.
        out: (batch, M, N) float64 result.
        c_p_out, c_round: precision and rounding id of the c-addition stage of C_LATE
            (0 / -1: ``p_out`` / ``mode``).
        norm: align products by their own exponents (BlockFMAModel.normalise_products).
    """
    cp = c_p_out if c_p_out > 0 else p_out
    cr = c_round if c_round >= 0 else mode
    nb = a.shape[0]
    m_rows = a.shape[1]
    ncols = b.shape[2]
    nslots = order.size
    two_f = math.ldexp(1.0, frac_bits)
    nrb = (m_rows + _RBT - 1) // _RBT
    for r in prange(nb * nrb):
        bi = r // nrb
        i_lo = (r - bi * nrb) * _RBT
        i_hi = min(i_lo + _RBT, m_rows)
        pmax = np.empty(_JT, np.float64)
        pmaxi = pmax.view(np.int64)
        ssum = np.empty(_JT, np.float64)
        scale = np.empty(_JT, np.float64)
        vt = np.empty(_JT, np.float64)
        vti = vt.view(np.int64)
        acc = np.empty(_JT, np.float64)
        acci = acc.view(np.int64)
        part = np.empty(_JT, np.float64)
        parti = part.view(np.int64)
        tot = np.empty(_JT, np.float64)
        for j0 in range(0, ncols, _JT):
            jn = min(_JT, ncols - j0)
            for i in range(i_lo, i_hi):
                for jj in range(jn):
                    cv = c[bi, i, j0 + jj]
                    if promote > 0:
                        tot[jj] = cv
                        acc[jj] = 0.0
                    else:
                        acc[jj] = cv
                done = 0
                for q0 in range(0, nslots, inst_k):
                    if c_mode == C_LATE:
                        for jj in range(jn):
                            part[jj] = 0.0
                        for s0 in range(q0, q0 + inst_k, n):
                            _block(a, pa, b, pb, bi, i, j0, jn, order, s0, n, two_f, part,
                                   parti,
                                   pmax, pmaxi, ssum, scale, vt, vti, p_out, emin_out, emax_out,
                                   mode, norm)
                        for jj in range(jn):
                            x = acc[jj]
                            y = part[jj]
                            s = x + y
                            if math.isfinite(s):
                                bb = s - x
                                err = (x - (s - bb)) + (y - bb)
                                acc[jj] = round_pair(s, err, cp, emin_out, emax_out, cr, True)
                            else:
                                acc[jj] = s
                    else:
                        for s0 in range(q0, q0 + inst_k, n):
                            _block(a, pa, b, pb, bi, i, j0, jn, order, s0, n, two_f, acc, acci,
                                   pmax, pmaxi, ssum, scale, vt, vti, p_out, emin_out, emax_out,
                                   mode, norm)
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
