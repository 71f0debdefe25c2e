"""Slow exact reference of the AMD matrix-core models (:mod:`lowprec.matrixcore`).

One output element at a time, from the definitions in :mod:`lowprec.matrixcore`'s
docstring, with :class:`fractions.Fraction` and Python integers: products are exact; the
"exact" scheme sums exactly and rounds once; the "pairwise" scheme is fp32 additions (each
the exact sum rounded by :func:`lowprec.reference.round_exact`) with flushing; the
"aligned" and "odd_even" schemes are integer truncation, floor and one final rounding. The
kernels in :mod:`lowprec._kernels.matrixcore` are tested against these bit for bit.

Values are Python floats (fp32 values, +-0, +-inf, NaN) between blocks; products are
Fractions.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

from ..matrixcore import MatrixCorePath
from .conversion import round_exact
from .core import floor_log2

__all__ = ["dot_mc", "matmul_mc_ref"]

_TINY = Fraction(1, 2 ** 126)  # fp32's smallest normal
_HUGE = Fraction(2 ** 128)  # products at or beyond it overflow fp32


def _f32(x: Fraction) -> float:
    """x rounded to fp32 (RNE, subnormals, overflow to inf); an exact zero is +0."""
    if x == 0:
        return 0.0
    return float(round_exact(x, "float32", "rne"))


def _exp(x: Fraction, emin: int) -> int:
    """max(floor(log2 |x|), emin) for x != 0."""
    return max(floor_log2(abs(x)), emin)


def _floor(x: Fraction) -> int:
    return x.numerator // x.denominator


def _trunc(x: Fraction) -> int:
    return -_floor(-x) if x < 0 else _floor(x)


def _add32(x: float, y: float) -> float:
    """IEEE fp32 addition (RNE) of two fp32 values (or +-0, +-inf)."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return x + y  # inf + finite, inf - inf = NaN: as IEEE
    s = Fraction(x) + Fraction(y)
    if s == 0:  # RNE: -0 only for (-0) + (-0)
        return -0.0 if math.copysign(1.0, x) < 0 and math.copysign(1.0, y) < 0 else 0.0
    return _f32(s)


def _ftz(x: float) -> float:
    """Flush a finite |x| < 2^-126 to zero, keeping its sign."""
    if math.isfinite(x) and abs(x) < 2.0 ** -126:
        return math.copysign(0.0, x)
    return x


def _exact_block(prods, c: float) -> float:
    if not math.isfinite(c):
        return c
    return _f32(Fraction(c) + sum((p for p, _, _ in prods), Fraction(0)))


def _pairwise_block(prods, c: float) -> float:
    terms = []
    for p, _, _ in prods:
        if abs(p) < _TINY:
            terms.append(0.0)  # zero and tiny products become +0
        elif abs(p) >= _HUGE:
            terms.append(math.inf if p > 0 else -math.inf)
        else:
            terms.append(float(p))  # exact: at most 16 significant bits
    while len(terms) > 1:
        terms = [_ftz(_add32(terms[i], terms[i + 1])) for i in range(0, len(terms), 2)]
    if math.isfinite(c) and abs(c) < 2.0 ** -126:
        c = 0.0
    return _ftz(_add32(c, terms[0]))


def _group(prods, frac_bits: int):
    """(E, S): the largest product exponent and the sum of the products truncated to
    ``frac_bits`` fraction bits below it; (None, 0) without non-zero products."""
    nz = [(p, e) for p, e in prods if p != 0]
    if not nz:
        return None, 0
    big = max(e for _, e in nz)
    s = 0
    for p, e in nz:
        t = _floor(abs(p) / Fraction(2) ** (big - frac_bits))
        s += -t if p < 0 else t
    return big, s


def _aligned_block(prods, c: float, path: MatrixCorePath) -> float:
    F = path.frac_bits
    pos = any(p >= _HUGE for p, _, _ in prods)
    neg = any(p <= -_HUGE for p, _, _ in prods)
    if pos or neg or not math.isfinite(c):
        pos = pos or c == math.inf
        neg = neg or c == -math.inf
        return math.nan if pos and neg else (math.inf if pos else -math.inf)
    if path.scheme == "odd_even":
        ge = _group([(p, e) for p, e, k in prods if k % 2 == 0], F)
        go = _group([(p, e) for p, e, k in prods if k % 2 == 1], F)
        if ge[0] is None or go[0] is None:
            big, s = ge if go[0] is None else go
        else:
            (eb, sb), (es, ss) = (ge, go) if ge[0] >= go[0] else (go, ge)
            big, s = eb, sb + _floor(Fraction(ss) / Fraction(2) ** (eb - es))
    else:
        big, s = _group([(p, e) for p, e, _ in prods], F)
    if big is None:  # no non-zero product: c passes through
        return 0.0 if c == 0 else c
    cf = Fraction(c)
    ce = -126 if c == 0 else _exp(cf, -126)
    if ce > big:
        grid = Fraction(2) ** (ce - path.c_frac_bits)
        total = _floor(s * Fraction(2) ** (big - F) / grid) + cf / grid
    else:
        grid = Fraction(2) ** (big - F)
        cq = cf / grid
        if ce == big:
            total = s + cq
        elif path.c_window is not None and ce < big - path.c_window:
            total = s + _trunc(cq)
        else:
            total = s + _floor(cq)
    assert Fraction(total).denominator == 1
    return _f32(total * grid)


def dot_mc(a: Sequence, b: Sequence, c, path: MatrixCorePath, in_emin_a: int,
           in_emin_b: int) -> float:
    """One output element of an AMD matrix-core model: d = c + sum a_k b_k.

    Args:
        a, b: input values (floats of the input formats).
        c: an fp32 value.
        path: the :class:`lowprec.matrixcore.MatrixCorePath`.
        in_emin_a, in_emin_b: the input formats' smallest normal exponents (they clamp the
            products' exponents, and below them the "pairwise" scheme flushes inputs).

    Returns:
        The fp32 result as a float.
    """
    a = [float(x) for x in a]
    b = [float(y) for y in b]
    c = float(c)
    # the whole row first (the MATLAB model's GEMM.m): inf * 0 and NaN inputs give NaN
    special = [x * y for x, y in zip(a, b) if not (math.isfinite(x) and math.isfinite(y))]
    special += [c] if not math.isfinite(c) else []
    if special:
        if any(math.isnan(v) for v in special):
            return math.nan
        if any(v > 0 for v in special) and any(v < 0 for v in special):
            return math.nan
        return special[0]
    if path.ftz:
        a = [x if abs(x) >= 2.0 ** in_emin_a else 0.0 for x in a]
        b = [y if abs(y) >= 2.0 ** in_emin_b else 0.0 for y in b]
    prods = []
    for x, y in zip(a, b):
        p = Fraction(x) * Fraction(y)
        e = _exp(Fraction(x), in_emin_a) + _exp(Fraction(y), in_emin_b) if p != 0 else 0
        prods.append((p, e))
    n = path.n
    K = len(prods)
    prods += [(Fraction(0), 0)] * ((-K) % n)
    acc = c
    for q0 in range(0, len(prods), n):
        blk = [(p, e, k) for k, (p, e) in enumerate(prods[q0:q0 + n])]
        if path.scheme == "exact":
            acc = _exact_block(blk, acc)
        elif path.scheme == "pairwise":
            acc = _pairwise_block(blk, acc)
        else:
            acc = _aligned_block(blk, acc, path)
    return acc


def matmul_mc_ref(a, b, c, path: MatrixCorePath, in_emin_a: int, in_emin_b: int,
                  ) -> "numpy.ndarray":  # noqa: F821
    """2-D matrix of :func:`dot_mc` results (a, b, c: values already in their formats)."""
    import numpy as np

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    M, N = a.shape[0], b.shape[1]
    c = np.zeros((M, N)) if c is None else np.broadcast_to(np.asarray(c, np.float64), (M, N))
    out = np.empty((M, N), np.float64)
    for i in range(M):
        for j in range(N):
            out[i, j] = dot_mc(a[i], b[:, j], c[i, j], path, in_emin_a, in_emin_b)
    return out

