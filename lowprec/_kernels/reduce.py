"""Reductions with an explicit accumulator format and summation order.

Every addition (and product, for dot) rounds once into the accumulator format with the
scalar operations of :mod:`.arith`. Rows are independent outputs (``prange``); the
reduction axis is always walked in the documented order.

Orders (``n`` terms ``x0 .. x{n-1}``; an empty sum is +0):

- ``ORDER_SEQUENTIAL``: ``s = x0; s = s + x1; ...`` (x0 itself rounded into the accumulator).
- ``ORDER_PAIRWISE``: level-by-level tree: neighbours are added in pairs ``(x0+x1),
  (x2+x3), ...``, an odd last element is carried to the next level unchanged, until one
  value is left.
- ``ORDER_KAHAN``: compensated summation, every step rounded in the accumulator format:
  ``y = x - c; t = s + y; c = (t - s) - y; s = t``.

Dot products: sequential is a fused multiply-add chain ``s = fma(a_j, b_j, s)`` starting
from ``s = a0*b0`` rounded; pairwise and Kahan first round each product into the
accumulator, then sum those in that order.

Stochastic rounding: rounding event k of row r uses stream index ``r * stride + k``.
"""

import numpy as np
from .jit import njit, prange

from ..ids import ORDER_PAIRWISE, ORDER_SEQUENTIAL
from .arith import add_value, flush_input, fma_value, mul_value
from .convert import round_float_value



@njit(cache=True)
def _sum_terms(x, order, fp, mode, ovf, ftz, key, base, sr_bits, buf):
    """Sum of x (already flushed) rounded in the accumulator; events from index base."""
    n = x.size
    if n == 0:
        return round_float_value(0.0, 0.0, fp, mode, ovf, ftz, key, base, sr_bits)
    ev = base
    if order == ORDER_PAIRWISE:
        for j in range(n):
            buf[j] = round_float_value(x[j], 0.0, fp, mode, ovf, ftz, key, ev, sr_bits)
            ev += 1
        m = n
        while m > 1:
            h = m // 2
            for j in range(h):
                buf[j] = add_value(buf[2 * j], buf[2 * j + 1], fp, mode, ovf, ftz, key, ev,
                                   sr_bits)
                ev += 1
            if m % 2 == 1:
                buf[h] = buf[m - 1]
                m = h + 1
            else:
                m = h
        return buf[0]
    s = round_float_value(x[0], 0.0, fp, mode, ovf, ftz, key, ev, sr_bits)
    ev += 1
    if order == ORDER_SEQUENTIAL:
        for j in range(1, n):
            s = add_value(s, x[j], fp, mode, ovf, ftz, key, ev, sr_bits)
            ev += 1
        return s
    c = 0.0
    for j in range(1, n):
        y = add_value(x[j], -c, fp, mode, ovf, ftz, key, ev, sr_bits)
        t = add_value(s, y, fp, mode, ovf, ftz, key, ev + 1, sr_bits)
        d = add_value(t, -s, fp, mode, ovf, ftz, key, ev + 2, sr_bits)
        c = add_value(d, -y, fp, mode, ovf, ftz, key, ev + 3, sr_bits)
        ev += 4
        s = t
    return s


@njit(cache=True)
def stride_for(n):
    """Stream indices reserved per row (an upper bound on rounding events per row)."""
    return np.int64(5) * n + 4


@njit(cache=True, parallel=True)
def sum_rows(x, order, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[r] = sum of row r of the 2-D array x in the given order."""
    rows, n = x.shape
    stride = stride_for(n)
    for r in prange(rows):
        row = np.empty(n, np.float64)
        for j in range(n):
            row[j] = flush_input(x[r, j], fp, daz)
        buf = np.empty(n, np.float64)
        out[r] = _sum_terms(row, order, fp, mode, ovf, ftz, key, r * stride, sr_bits, buf)


@njit(cache=True, parallel=True)
def dot_rows(a, b, order, fp, mode, ovf, ftz, daz, key, sr_bits, out):
    """out[r] = sum_j a[r, j] * b[r, j] in the given order (see the module notes)."""
    rows, n = a.shape
    stride = stride_for(n)
    for r in prange(rows):
        base = r * stride
        if order == ORDER_SEQUENTIAL:
            if n == 0:
                out[r] = round_float_value(0.0, 0.0, fp, mode, ovf, ftz, key, base, sr_bits)
                continue
            s = mul_value(flush_input(a[r, 0], fp, daz), flush_input(b[r, 0], fp, daz), fp,
                          mode, ovf, ftz, key, base, sr_bits)
            for j in range(1, n):
                s = fma_value(flush_input(a[r, j], fp, daz), flush_input(b[r, j], fp, daz), s,
                              fp, mode, ovf, ftz, key, base + j, sr_bits)
            out[r] = s
            continue
        prods = np.empty(n, np.float64)
        for j in range(n):
            prods[j] = mul_value(flush_input(a[r, j], fp, daz), flush_input(b[r, j], fp, daz),
                                 fp, mode, ovf, ftz, key, base + j, sr_bits)
        buf = np.empty(n, np.float64)
        out[r] = _sum_terms(prods, order, fp, mode, ovf, ftz, key, base + n, sr_bits, buf)
