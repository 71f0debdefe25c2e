"""Slow exact references for every accumulation mode of :func:`lowprec.matmul`.

One output element at a time, with :class:`fractions.Fraction` and Python integers, straight
from the definitions: products are exact, each accumulation step is the exact sum rounded
once by :func:`lowprec.reference.round_exact` (stochastic rounding mirrors the kernels'
counter-based stream), and the tensor-core block FMA is the integer alignment / truncation /
normalisation of REFERENCE.md section 4. No numba and no float tricks; the kernels in
:mod:`lowprec._kernels.gemm` and :mod:`lowprec._kernels.tensorcore` are tested against these
functions bit for bit.

Exact values are Fractions when finite and non-zero and floats otherwise (NaN, +-inf, +-0).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional, Sequence

from ..formats import get_format
from ..tensorcore import BlockFMAModel
from .arith import Exact, exact, exact_add, exact_mul
from .conversion import round_exact

__all__ = ["exact_mul", "exact_add", "round_to", "dot_acc", "dot_block", "dot_int",
           "matmul_acc_ref", "matmul_model_ref", "matmul_int_ref", "dot_lanes", "matmul_lanes_ref"]

_ex = exact  # the exact value of an input (arith's representation: Fraction, or a float)


def round_to(x: Exact, fmt, rounding="rne", key: int = 0, idx: int = 0) -> Exact:
    """Round an exact value into a format (IEEE overflow), keeping zeros' signs."""
    if isinstance(x, float) and x == 0.0:
        return x
    r = round_exact(x, fmt, rounding, key=key, idx=idx)
    return _ex(r) if not isinstance(r, float) else r


def _f32(x: Exact) -> Exact:
    return round_to(x, "float32", "rne")


def dot_acc(a: Sequence, b: Sequence, c=0.0, acc="float32", rounding="rne", fma=True,
            chunk: Optional[int] = None, key: int = 0, o: int = 0) -> float:
    """One output element of the IEEE-style accumulation modes.

    d = round(c); for k: d = round(d + round?(a_k b_k)) (sequential in k), or with ``chunk``
    the runs of ``chunk`` products summed from +0 and added into an fp32 total (RNE) that
    starts at c. ``o`` is the flat output index (stochastic rounding stream position).
    """
    K = len(a)
    base = o * (2 * K + 2)
    if chunk:
        tot = _f32(_ex(c))
        d: Exact = 0.0
    else:
        d = round_to(_ex(c), acc, rounding, key, base + 2 * K)
        tot = 0.0
    for k in range(K):
        p = exact_mul(_ex(a[k]), _ex(b[k]))
        if not fma:
            p = round_to(p, acc, rounding, key, base + 2 * k)
        d = round_to(exact_add(d, p, rounding), acc, rounding, key, base + 2 * k + 1)
        if chunk and ((k + 1) % chunk == 0 or k == K - 1):
            tot = _f32(exact_add(tot, d))
            d = 0.0
    return float(tot if chunk else d)


def dot_lanes(a: Sequence, b: Sequence, c=0.0, lanes: int = 4, fma: bool = True) -> float:
    """One output element of ``lanes`` interleaved fp32 accumulators.

    Accumulator l holds round(... round(acc_l + a_k b_k)) over k = l, l + lanes, ... (fp32
    RNE; ``fma=False`` rounds each product to fp32 first); accumulator 0 starts at
    round(c), the others at +0; the result is ((acc_0 + acc_1) + acc_2) + ..., each sum
    rounded to fp32 (RNE).
    """
    accs = [_f32(_ex(c))] + [0.0] * (lanes - 1)
    for k in range(len(a)):
        p = exact_mul(_ex(a[k]), _ex(b[k]))
        if not fma:
            p = _f32(p)
        accs[k % lanes] = _f32(exact_add(accs[k % lanes], p))
    tot = accs[0]
    for x in accs[1:]:
        tot = _f32(exact_add(tot, x))
    return float(tot)


def _exp_clamped(x: Fraction, emin: int) -> int:
    ax = abs(x)
    e = ax.numerator.bit_length() - ax.denominator.bit_length()
    if Fraction(2) ** e > ax:
        e -= 1
    return max(e, emin)


def _round_block(v: Fraction, model: BlockFMAModel) -> Exact:
    """Final normalisation: round an exact non-zero sum into the block's output format."""
    out = get_format(model.out_format)
    p = model.result_frac_bits + 1
    emin, emax = out.emin, out.emax
    av = abs(v)
    e = _exp_clamped(av, emin)
    q = e - (p - 1)
    t = av / Fraction(2) ** q
    f = t.numerator // t.denominator
    rem = t - f
    neg = v < 0
    if model.rounding == "rne":
        up = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and f % 2 == 1)
    elif model.rounding == "rup":
        up = rem > 0 and not neg
    elif model.rounding == "rdn":
        up = rem > 0 and neg
    else:
        up = False
    r = (f + up) * Fraction(2) ** q
    if r >= Fraction(2) ** (emax + 1):
        return -math.inf if neg else math.inf
    if r == 0:
        return -0.0 if neg else 0.0
    return -r if neg else r


def _block(prods, c: Exact, model: BlockFMAModel) -> Exact:
    """One block FMA: prods is a list of (exact product, clamped exponent e_a + e_b)."""
    if isinstance(c, float) and not math.isfinite(c):
        return c
    terms = [(v, e) for v, e in prods if v != 0]
    if c != 0:
        terms.append((c, _exp_clamped(c, -126)))
    if not terms:
        return 0.0
    big_e = max(e for _, e in terms)
    grid = Fraction(2) ** (big_e - model.frac_bits)
    s = 0
    for v, _ in terms:
        t = abs(v) / grid
        t = t.numerator // t.denominator
        s += -t if v < 0 else t
    if s == 0:
        return 0.0
    return _round_block(s * grid, model)


def _slots(K: int, model: BlockFMAModel) -> list:
    """k index of every product slot (None for padding), block after block."""
    ik = model.k_per_instruction
    nblk = ik // model.n
    g = model.interleave
    slots = []
    for q0 in range(0, K + (-K) % ik, ik):
        for s in range(nblk):
            if g:
                ks = [q0 + k for k in range(ik) if (k // g) % nblk == s]
            else:
                ks = list(range(q0 + s * model.n, q0 + (s + 1) * model.n))
            slots.extend(k if k < K else None for k in ks)
    return slots


def dot_block(a: Sequence, b: Sequence, c, model: BlockFMAModel, in_emin_a: int,
              in_emin_b: int) -> float:
    """One output element of a tensor-core model: d = c + sum a_k b_k.

    ``c`` is already a value of the output format (or fp32); ``in_emin_*`` are the smallest
    normal exponents that clamp the inputs' exponents.
    """
    K = len(a)
    vals = [exact_mul(_ex(x), _ex(y)) for x, y in zip(a, b)]
    c = _ex(c)
    special = [v for v in vals + [c] if isinstance(v, float) and not math.isfinite(v)]
    if special:
        if any(math.isnan(v) for v in special):
            return math.nan
        if any(v > 0 for v in special) and any(v < 0 for v in special):
            return math.nan
        return special[0]
    prods = []
    for x, y, v in zip(a, b, vals):
        if v == 0:
            prods.append((0, 0))
        else:
            prods.append((v, _exp_clamped(Fraction(x), in_emin_a)
                          + _exp_clamped(Fraction(y), in_emin_b)))
    slots = _slots(K, model)
    ik = model.k_per_instruction
    promote = model.promote_every or 0
    tot: Exact = _f32(c) if promote else 0.0
    acc: Exact = 0.0 if promote else c
    done = 0
    for q0 in range(0, len(slots), ik):
        inst = slots[q0:q0 + ik]
        blocks = [inst[s:s + model.n] for s in range(0, ik, model.n)]
        cur: Exact = 0.0 if model.c_mode == "late" else acc
        for blk in blocks:
            cur = _block([prods[k] for k in blk if k is not None], cur, model)
        if model.c_mode == "late":
            s = exact_add(acc, cur)
            if isinstance(s, float):
                acc = s
            else:
                acc = _round_block(s, model)
        else:
            acc = cur
        done += ik
        if promote and done % promote == 0:
            tot = _f32(exact_add(tot, acc))
            acc = 0.0
    if promote:
        if done % promote:
            tot = _f32(exact_add(tot, acc))
        return float(tot)
    return float(acc)


def dot_int(a: Sequence[int], b: Sequence[int], c: int = 0, saturate: bool = False) -> int:
    """int8 x int8 -> int32: sequential sum, saturating each partial sum or wrapping."""
    d = int(c)
    for x, y in zip(a, b):
        d += int(x) * int(y)
        if saturate:
            d = max(-2**31, min(2**31 - 1, d))
    if not saturate:
        d = (d + 2**31) % 2**32 - 2**31
    return d


def _grid(a, b, c, f, dtype=float):
    import numpy as np

    a = np.asarray(a)
    b = np.asarray(b)
    M, K = a.shape
    N = b.shape[1]
    c = np.zeros((M, N)) if c is None else np.broadcast_to(np.asarray(c), (M, N))
    out = np.empty((M, N), np.float64 if dtype is float else np.int64)
    for i in range(M):
        for j in range(N):
            out[i, j] = f(i, j, list(a[i]), list(b[:, j]), c[i, j])
    return out


def matmul_acc_ref(a, b, c=None, acc="float32", rounding="rne", fma=True, chunk=None, key=0):
    """2-D matrix of :func:`dot_acc` results (a, b, c: values already in their formats)."""
    N = b.shape[1]
    return _grid(a, b, c, lambda i, j, x, y, cc: dot_acc(x, y, cc, acc, rounding, fma, chunk,
                                                         key, i * N + j))


def matmul_lanes_ref(a, b, c=None, lanes: int = 4, fma: bool = True):
    """2-D matrix of :func:`dot_lanes` results (a, b, c: values already in their formats)."""
    return _grid(a, b, c, lambda i, j, x, y, cc: dot_lanes(x, y, cc, lanes, fma))


def matmul_model_ref(a, b, c, model: BlockFMAModel, in_emin_a: int, in_emin_b: int):
    """2-D matrix of :func:`dot_block` results."""
    return _grid(a, b, c, lambda i, j, x, y, cc: dot_block(x, y, cc, model, in_emin_a,
                                                           in_emin_b))


def matmul_int_ref(a, b, c=None, saturate=False):
    """2-D matrix of :func:`dot_int` results."""
    return _grid(a, b, c, lambda i, j, x, y, cc: dot_int(x, y, int(cc), saturate), int)
