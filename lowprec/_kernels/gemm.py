"""GEMM kernels with an explicit accumulation order and accumulator format.

Order: for every output element, sequential in k: d = c; d = round(d + a[i,k] * b[k,j]).
With ``chunk > 0`` the products are accumulated from +0 in the accumulator format in runs
of ``chunk`` and each run's sum is added into an fp32 total (RNE) that starts at c.

Exactness: inputs hold at most 24 significant bits, so a product is exact in float64; a
sum d + p is carried exactly as the TwoSum pair (s, e) and rounded once by
:func:`lowprec._kernels.convert.round_float_value` (every mode, stochastic included) or, for
the nearest and directed modes into IEEE-like formats (infinities, subnormals), by the
cheaper :func:`lowprec._kernels.tensorcore.round_pair`, which also sees the exact pair.

Stochastic rounding draws from the counter stream at index o * (2K + 2) + 2k (product
rounding, fma=False) and o * (2K + 2) + 2k + 1 (the sum), o the flat output index, and
o * (2K + 2) + 2K for rounding c into the accumulator.
"""

import math

import numpy as np
from .jit import njit, prange

from ..ids import RDN, RTO, SR
from .convert import round_float_value
from .fma import fma32
from .tensorcore import round_pair

_RB = 4     # rows per tile of the float32 kernel
_JT = 512   # columns per tile of the float32 kernel


@njit(cache=True, inline="always")
def _step(x, a, b, fused):
    # fused: one rounding of x + a*b; else the product is rounded to fp32 first. The test
    # is loop-invariant, so LLVM unswitches it out of the vectorised loops.
    if fused:
        return fma32(a, b, x)
    return x + a * b


@njit(cache=True, parallel=True)
def gemm_f32(a, b, c, fused, out):
    """Sequential-in-k float32 accumulation: out = c; out = out + a[:, k] * b[k, :] in float32.

    ``fused``: each step is a float32 fused multiply-add (one rounding); otherwise the
    product is rounded to float32 before the sum (two roundings; the same when every
    product is exact in float32).
    a: (batch, M, K), b: (batch, K, N), c and out: (batch, M, N), all float32.
    Four rows share each load of b; four steps of k are taken per pass over a row tile,
    each element's sum still running k by k (the order is unchanged).
    """
    nb = a.shape[0]
    m_rows = a.shape[1]
    kk = a.shape[2]
    ncols = b.shape[2]
    nrb = (m_rows + _RB - 1) // _RB
    k4 = kk - kk % 4
    for t in prange(nb * nrb):
        bi = t // nrb
        i0 = (t - bi * nrb) * _RB
        rn = min(_RB, m_rows - i0)
        acc0 = np.empty(_JT, np.float32)
        acc1 = np.empty(_JT, np.float32)
        acc2 = np.empty(_JT, np.float32)
        acc3 = np.empty(_JT, np.float32)
        for j0 in range(0, ncols, _JT):
            jn = min(_JT, ncols - j0)
            if rn < _RB:
                for r in range(rn):
                    for jj in range(jn):
                        acc0[jj] = c[bi, i0 + r, j0 + jj]
                    for k in range(kk):
                        av = a[bi, i0 + r, k]
                        brow = b[bi, k, j0:j0 + jn]
                        for jj in range(jn):
                            acc0[jj] = _step(acc0[jj], av, brow[jj], fused)
                    for jj in range(jn):
                        out[bi, i0 + r, j0 + jj] = acc0[jj]
                continue
            for jj in range(jn):
                acc0[jj] = c[bi, i0, j0 + jj]
                acc1[jj] = c[bi, i0 + 1, j0 + jj]
                acc2[jj] = c[bi, i0 + 2, j0 + jj]
                acc3[jj] = c[bi, i0 + 3, j0 + jj]
            for k in range(0, k4, 4):
                a00 = a[bi, i0, k]
                a01 = a[bi, i0, k + 1]
                a02 = a[bi, i0, k + 2]
                a03 = a[bi, i0, k + 3]
                a10 = a[bi, i0 + 1, k]
                a11 = a[bi, i0 + 1, k + 1]
                a12 = a[bi, i0 + 1, k + 2]
                a13 = a[bi, i0 + 1, k + 3]
                a20 = a[bi, i0 + 2, k]
                a21 = a[bi, i0 + 2, k + 1]
                a22 = a[bi, i0 + 2, k + 2]
                a23 = a[bi, i0 + 2, k + 3]
                a30 = a[bi, i0 + 3, k]
                a31 = a[bi, i0 + 3, k + 1]
                a32 = a[bi, i0 + 3, k + 2]
                a33 = a[bi, i0 + 3, k + 3]
                b0 = b[bi, k, j0:j0 + jn]
                b1 = b[bi, k + 1, j0:j0 + jn]
                b2 = b[bi, k + 2, j0:j0 + jn]
                b3 = b[bi, k + 3, j0:j0 + jn]
                for jj in range(jn):
                    v0 = b0[jj]
                    v1 = b1[jj]
                    v2 = b2[jj]
                    v3 = b3[jj]
                    x = acc0[jj]
                    x = _step(x, a00, v0, fused)
                    x = _step(x, a01, v1, fused)
                    x = _step(x, a02, v2, fused)
                    acc0[jj] = _step(x, a03, v3, fused)
                    x = acc1[jj]
                    x = _step(x, a10, v0, fused)
                    x = _step(x, a11, v1, fused)
                    x = _step(x, a12, v2, fused)
                    acc1[jj] = _step(x, a13, v3, fused)
                    x = acc2[jj]
                    x = _step(x, a20, v0, fused)
                    x = _step(x, a21, v1, fused)
                    x = _step(x, a22, v2, fused)
                    acc2[jj] = _step(x, a23, v3, fused)
                    x = acc3[jj]
                    x = _step(x, a30, v0, fused)
                    x = _step(x, a31, v1, fused)
                    x = _step(x, a32, v2, fused)
                    acc3[jj] = _step(x, a33, v3, fused)
            for k in range(k4, kk):
                a0 = a[bi, i0, k]
                a1 = a[bi, i0 + 1, k]
                a2 = a[bi, i0 + 2, k]
                a3 = a[bi, i0 + 3, k]
                brow = b[bi, k, j0:j0 + jn]
                for jj in range(jn):
                    bv = brow[jj]
                    acc0[jj] = _step(acc0[jj], a0, bv, fused)
                    acc1[jj] = _step(acc1[jj], a1, bv, fused)
                    acc2[jj] = _step(acc2[jj], a2, bv, fused)
                    acc3[jj] = _step(acc3[jj], a3, bv, fused)
            for jj in range(jn):
                out[bi, i0, j0 + jj] = acc0[jj]
                out[bi, i0 + 1, j0 + jj] = acc1[jj]
                out[bi, i0 + 2, j0 + jj] = acc2[jj]
                out[bi, i0 + 3, j0 + jj] = acc3[jj]


@njit(cache=True)
def abs_span(x):
    """(smallest, largest) |value| over the finite non-zero elements of a flat array, in one
    pass; (inf, 0) when there are none."""
    lo = np.inf
    hi = 0.0
    for i in range(x.size):
        v = abs(float(x[i]))
        if v != 0.0 and v != np.inf and v == v:
            lo = min(lo, v)
            hi = max(hi, v)
    return lo, hi


@njit(cache=True)
def _rnd(x, lo, fp, mode, ovf, key, idx, fast, p, emin, emax):
    if fast and mode != RTO and mode != SR:
        return round_pair(x, lo, p, emin, emax, mode, False)
    return round_float_value(x, lo, fp, mode, ovf, False, key, idx, 0)


@njit(cache=True)
def _add_round(d, prod, fp, mode, ovf, key, idx, fast, p, emin, emax):
    s = d + prod
    if s == 0.0 and mode == RDN and not (d == 0.0 and prod == 0.0 and math.copysign(1.0, d) > 0
                                       and math.copysign(1.0, prod) > 0):
        s = -0.0  # IEEE 754: an exact zero sum is -0 under round toward -inf
    if not math.isfinite(s):
        return _rnd(s, 0.0, fp, mode, ovf, key, idx, fast, p, emin, emax)
    bb = s - d
    err = (d - (s - bb)) + (prod - bb)
    return _rnd(s, err, fp, mode, ovf, key, idx, fast, p, emin, emax)


@njit(cache=True, parallel=True)
def gemm_acc(a, bt, c, fp, mode, ovf, key, fma, chunk, fast, p, emin, emax, out):
    """Exact accumulation in any float format.

    Args:
        a: (batch, M, K) float64; bt: (batch, N, K) float64 (b transposed, so k is
            contiguous); c: (batch, M, N) float64.
        fp: the accumulator's parameter vector; mode, ovf: rounding and overflow ids;
        key: uint64 generator key; fma: False rounds each product to the accumulator first;
        chunk: 0, or products per fp32 promotion; fast: the format is IEEE-like, so modes
        0..4 may use round_pair (p, emin, emax describe the format).
        out: (batch, M, N) float64.
    """
    nb = a.shape[0]
    m_rows = a.shape[1]
    kk = a.shape[2]
    ncols = bt.shape[1]
    stride = 2 * kk + 2
    for r in prange(nb * m_rows):
        bi = r // m_rows
        i = r - bi * m_rows
        for j in range(ncols):
            o = (bi * m_rows + i) * ncols + j
            base = o * stride
            cv = c[bi, i, j]
            if chunk > 0:
                tot = np.float64(np.float32(cv))
                d = 0.0
            else:
                d = _rnd(cv, 0.0, fp, mode, ovf, key, base + 2 * kk, fast, p, emin, emax)
                tot = 0.0
            for k in range(kk):
                prod = a[bi, i, k] * bt[bi, j, k]
                if not fma:
                    prod = _rnd(prod, 0.0, fp, mode, ovf, key, base + 2 * k, fast, p, emin,
                                emax)
                d = _add_round(d, prod, fp, mode, ovf, key, base + 2 * k + 1, fast, p, emin,
                               emax)
                if chunk > 0 and ((k + 1) % chunk == 0 or k == kk - 1):
                    tot = np.float64(np.float32(tot + d))
                    d = 0.0
            out[bi, i, j] = tot if chunk > 0 else d


@njit(cache=True, parallel=True)
def gemm_int(a, b, c, saturate, out):
    """int8 x int8 -> int32, sequential in k.

    a: (batch, M, K), b: (batch, K, N) int32 holding int8 values; c, out: (batch, M, N)
    int64 / int32. ``saturate`` clamps every partial sum to the int32 range; otherwise
    the sum wraps (two's complement), which equals wrapping once at the end.
    """
    nb = a.shape[0]
    m_rows = a.shape[1]
    kk = a.shape[2]
    ncols = b.shape[2]
    lo = np.int64(-2147483648)
    hi = np.int64(2147483647)
    for r in prange(nb * m_rows):
        bi = r // m_rows
        i = r - bi * m_rows
        acc = np.empty(ncols, np.int64)
        for j in range(ncols):
            acc[j] = c[bi, i, j]
        for k in range(kk):
            av = np.int64(a[bi, i, k])
            if av == 0:
                continue
            if saturate:
                for j in range(ncols):
                    s = acc[j] + av * np.int64(b[bi, k, j])
                    s = hi if s > hi else s
                    acc[j] = lo if s < lo else s
            else:
                for j in range(ncols):
                    acc[j] += av * np.int64(b[bi, k, j])
        for j in range(ncols):
            v = acc[j] & np.int64(0xFFFFFFFF)
            out[bi, i, j] = v - np.int64(4294967296) if v > hi else v
