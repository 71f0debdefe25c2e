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
from .simd import add8, canon8, fma8, get3, load8, load8_m, mul8, splat8, store8, store8_m
from .tensorcore import round_pair

_RB = 4      # rows per micro-tile
_JB = 24     # columns per micro-tile: three vectors of eight lanes
_KC = 256    # steps of k per pass: the pass's 256 x 24 panel of b (24 KiB) stays in L1
_RG = 32     # rows per task: its micro-tiles share each panel of b


@njit(cache=True, inline="always")
def _step8(acc, x, bv, fused):
    # fused: one rounding of acc + x*b per lane; else the product is rounded to fp32 first.
    # The test is loop-invariant, so LLVM unswitches it out of the k loop.
    if fused:
        return fma8(x, bv, acc)
    return add8(acc, mul8(x, bv))


@njit(cache=True, inline="always")
def _tile_rows(b, out, bi, i0, rn, j0, k0):
    """A tile's rows r1..r3 (past rn: the last row again), the flat offsets o0..o3 of their
    first columns in src and out, and the offset in b of row k0's first column."""
    n = b.shape[2]
    r1 = i0 + min(1, rn - 1)
    r2 = i0 + min(2, rn - 1)
    r3 = i0 + min(3, rn - 1)
    o0 = (bi * out.shape[1] + i0) * n + j0
    return (r1, r2, r3, o0, o0 + (r1 - i0) * n, o0 + (r2 - i0) * n, o0 + (r3 - i0) * n,
            (bi * b.shape[1] + k0) * n + j0)


@njit(cache=True, inline="always")
def _tile(a, b, src, out, bi, i0, rn, j0, k0, k1, fused):
    """out[bi, i0:i0+rn, j0:j0+24] = src[same] + a[bi, rows, k] * b[bi, k, cols] for
    k = k0 .. k1-1, one step at a time; rn <= 4 rows.

    The 4 x 24 sums are twelve vectors held in registers through the k loop. Rows past rn
    repeat the tile's last row (read, never stored)."""
    n = b.shape[2]
    r1, r2, r3, o0, o1, o2, o3, bo = _tile_rows(b, out, bi, i0, rn, j0, k0)
    c00 = load8(src, o0)
    c01 = load8(src, o0 + 8)
    c02 = load8(src, o0 + 16)
    c10 = load8(src, o1)
    c11 = load8(src, o1 + 8)
    c12 = load8(src, o1 + 16)
    c20 = load8(src, o2)
    c21 = load8(src, o2 + 8)
    c22 = load8(src, o2 + 16)
    c30 = load8(src, o3)
    c31 = load8(src, o3 + 8)
    c32 = load8(src, o3 + 16)
    for k in range(k0, k1):
        b0 = load8(b, bo)
        b1 = load8(b, bo + 8)
        b2 = load8(b, bo + 16)
        bo += n
        x = splat8(get3(a, bi, i0, k))
        c00 = _step8(c00, x, b0, fused)
        c01 = _step8(c01, x, b1, fused)
        c02 = _step8(c02, x, b2, fused)
        x = splat8(get3(a, bi, r1, k))
        c10 = _step8(c10, x, b0, fused)
        c11 = _step8(c11, x, b1, fused)
        c12 = _step8(c12, x, b2, fused)
        x = splat8(get3(a, bi, r2, k))
        c20 = _step8(c20, x, b0, fused)
        c21 = _step8(c21, x, b1, fused)
        c22 = _step8(c22, x, b2, fused)
        x = splat8(get3(a, bi, r3, k))
        c30 = _step8(c30, x, b0, fused)
        c31 = _step8(c31, x, b1, fused)
        c32 = _step8(c32, x, b2, fused)
    store8(out, o0, canon8(c00))
    store8(out, o0 + 8, canon8(c01))
    store8(out, o0 + 16, canon8(c02))
    if rn > 1:
        store8(out, o1, canon8(c10))
        store8(out, o1 + 8, canon8(c11))
        store8(out, o1 + 16, canon8(c12))
    if rn > 2:
        store8(out, o2, canon8(c20))
        store8(out, o2 + 8, canon8(c21))
        store8(out, o2 + 16, canon8(c22))
    if rn > 3:
        store8(out, o3, canon8(c30))
        store8(out, o3 + 8, canon8(c31))
        store8(out, o3 + 16, canon8(c32))


@njit(cache=True)
def _tile_edge(a, b, src, out, bi, i0, rn, j0, jw, k0, k1, fused):
    """:func:`_tile` for the last, narrower tile of a row (jw < 24 columns): lanes past
    jw are masked (never read or written). Not inlined: it runs once a row of tiles, and
    a second inlined copy of the k loop doubled the kernels' compile time."""
    n = b.shape[2]
    r1, r2, r3, o0, o1, o2, o3, bo = _tile_rows(b, out, bi, i0, rn, j0, k0)
    w0 = min(8, jw)
    w1 = min(8, max(0, jw - 8))
    w2 = max(0, jw - 16)
    c00 = load8_m(src, o0, w0)
    c01 = load8_m(src, o0 + 8, w1)
    c02 = load8_m(src, o0 + 16, w2)
    c10 = load8_m(src, o1, w0)
    c11 = load8_m(src, o1 + 8, w1)
    c12 = load8_m(src, o1 + 16, w2)
    c20 = load8_m(src, o2, w0)
    c21 = load8_m(src, o2 + 8, w1)
    c22 = load8_m(src, o2 + 16, w2)
    c30 = load8_m(src, o3, w0)
    c31 = load8_m(src, o3 + 8, w1)
    c32 = load8_m(src, o3 + 16, w2)
    for k in range(k0, k1):
        b0 = load8_m(b, bo, w0)
        b1 = load8_m(b, bo + 8, w1)
        b2 = load8_m(b, bo + 16, w2)
        bo += n
        x = splat8(get3(a, bi, i0, k))
        c00 = _step8(c00, x, b0, fused)
        c01 = _step8(c01, x, b1, fused)
        c02 = _step8(c02, x, b2, fused)
        x = splat8(get3(a, bi, r1, k))
        c10 = _step8(c10, x, b0, fused)
        c11 = _step8(c11, x, b1, fused)
        c12 = _step8(c12, x, b2, fused)
        x = splat8(get3(a, bi, r2, k))
        c20 = _step8(c20, x, b0, fused)
        c21 = _step8(c21, x, b1, fused)
        c22 = _step8(c22, x, b2, fused)
        x = splat8(get3(a, bi, r3, k))
        c30 = _step8(c30, x, b0, fused)
        c31 = _step8(c31, x, b1, fused)
        c32 = _step8(c32, x, b2, fused)
    store8_m(out, o0, canon8(c00), w0)
    store8_m(out, o0 + 8, canon8(c01), w1)
    store8_m(out, o0 + 16, canon8(c02), w2)
    if rn > 1:
        store8_m(out, o1, canon8(c10), w0)
        store8_m(out, o1 + 8, canon8(c11), w1)
        store8_m(out, o1 + 16, canon8(c12), w2)
    if rn > 2:
        store8_m(out, o2, canon8(c20), w0)
        store8_m(out, o2 + 8, canon8(c21), w1)
        store8_m(out, o2 + 16, canon8(c22), w2)
    if rn > 3:
        store8_m(out, o3, canon8(c30), w0)
        store8_m(out, o3 + 8, canon8(c31), w1)
        store8_m(out, o3 + 16, canon8(c32), w2)


@njit(cache=True, parallel=True)
def gemm_f32(a, b, c, fused, out):
    """Sequential-in-k float32 accumulation: out = c; out = out + a[:, k] * b[k, :] in float32.

    ``fused``: each step is a float32 fused multiply-add (one rounding); otherwise the
    product is rounded to float32 before the sum (two roundings; the same when every
    product is exact in float32).
    a: (batch, M, K) of any strides; b: (batch, K, N), c and out: (batch, M, N),
    C-contiguous; all float32.

    NaN results are written as the quiet NaN 0x7FC00000: which of two NaN operands an x86
    instruction passes on depends on the operand order, which LLVM picks freely (the
    serial and threaded compilations of this code differed in NaN signs).

    Each task takes up to 32 rows by 24 columns; its 4 x 24 micro-tiles keep their sums in
    registers for 256 steps of k at a time (:func:`_tile`), so every element's sum still
    runs k by k (the order never changes) while the panel of b is reused from L1.
    """
    nb = a.shape[0]
    m = a.shape[1]
    kk = a.shape[2]
    n = b.shape[2]
    nrg = (m + _RG - 1) // _RG
    ncb = (n + _JB - 1) // _JB
    per = nrg * ncb
    for t in prange(nb * per):
        bi = t // per
        g = (t - bi * per) // ncb
        j0 = (t - bi * per - g * ncb) * _JB
        jw = min(_JB, n - j0)
        i_end = min(m, (g + 1) * _RG)
        for k0 in range(0, max(kk, 1), _KC):  # K = 0: one pass, out = c
            k1 = min(kk, k0 + _KC)
            src = c if k0 == 0 else out
            for i0 in range(g * _RG, i_end, _RB):
                if jw == _JB:
                    _tile(a, b, src, out, bi, i0, min(_RB, i_end - i0), j0, k0, k1, fused)
                else:
                    _tile_edge(a, b, src, out, bi, i0, min(_RB, i_end - i0), j0, jw, k0, k1,
                               fused)


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
