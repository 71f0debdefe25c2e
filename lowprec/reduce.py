"""Reductions with an explicit accumulator format and summation order: sums and dot
products in which every addition (and product) rounds once into the accumulator.

Rows are independent outputs; the reduction axis is walked in the documented order
(:mod:`lowprec._kernels.reduce`): ``"sequential"`` (left to right), ``"pairwise"``
(level-by-level tree) or ``"kahan"`` (compensated, every step rounded). :class:`LPArray`'s
``sum``, ``mean`` and ``dot`` are built on these.
"""

from __future__ import annotations

import numpy as np

from .formats import FloatFormat, get_format
from .ids import OP_DIV, ORDERS
from .quantize import format_tuple, resolve_options

__all__ = ["sum_rows", "dot_rows", "divide_by_count", "ORDERS"]


def _setup(fmt, order, rounding, overflow, subnormals, sr_bits, seed, nan, what):
    f = get_format(fmt)
    if not isinstance(f, FloatFormat):
        raise TypeError(f"{what}: the accumulator must be a float format, got {f.name}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {sorted(ORDERS)}, got {order!r}")
    opts = resolve_options(f, rounding, overflow, subnormals, sr_bits, seed, nan)
    return f, opts


def _rows(x, what: str) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim != 2:
        raise ValueError(f"{what} takes a 2-D array (rows, terms), got shape {a.shape}")
    return np.ascontiguousarray(a)


def sum_rows(x, fmt, *, order: str = "sequential", rounding="rne", overflow=None,
             subnormals: bool = True, daz: bool = False, sr_bits=None, seed=None,
             nan="raise") -> np.ndarray:
    """Sum each row of ``x`` with every addition rounded once into ``fmt``.

    Args:
        x: (rows, n) values (exactly representable in float32; lowprec formats' values are).
        fmt: accumulator format (a float format).
        order: "sequential", "pairwise" or "kahan".
        rounding, overflow, subnormals, sr_bits, seed, nan: as :func:`lowprec.add`.
        daz: treat subnormal terms as zero.

    Returns:
        float64 array of the rows' sums (on ``fmt``'s grid; an empty row sums to +0).

    Raises:
        ValueError: unknown order or options, x not 2-D. TypeError: a fixed-point ``fmt``.
    """
    f, opts = _setup(fmt, order, rounding, overflow, subnormals, sr_bits, seed, nan, "sum")
    from ._kernels.reduce import sum_rows as kernel  # numba loads on first use

    a = _rows(x, "sum_rows")
    out = np.empty(a.shape[0], np.float64)
    kernel(a, ORDERS[order], format_tuple(f), opts.rounding.id, opts.overflow.id, opts.ftz,
           bool(daz), opts.key, opts.sr_bits, out)
    return out


def dot_rows(a, b, fmt, *, order: str = "sequential", rounding="rne", overflow=None,
             subnormals: bool = True, daz: bool = False, sr_bits=None, seed=None,
             nan="raise") -> np.ndarray:
    """Row-wise dot products of ``a`` and ``b`` with an explicit accumulator.

    "sequential" is a fused multiply-add chain (one rounding per step); "pairwise" and
    "kahan" round each product into ``fmt`` and then sum in that order.

    Args:
        a, b: (rows, n) values of equal shape.
        fmt, order, rounding, overflow, subnormals, daz, sr_bits, seed, nan: as
            :func:`sum_rows`.

    Returns:
        float64 array of the rows' dot products.

    Raises:
        ValueError: shapes differ, unknown order or options. TypeError: a fixed-point fmt.
    """
    f, opts = _setup(fmt, order, rounding, overflow, subnormals, sr_bits, seed, nan, "dot")
    from ._kernels.reduce import dot_rows as kernel  # numba loads on first use

    x, y = _rows(a, "dot_rows"), _rows(b, "dot_rows")
    if x.shape != y.shape:
        raise ValueError(f"dot_rows: a and b differ in shape, {x.shape} and {y.shape}")
    out = np.empty(x.shape[0], np.float64)
    kernel(x, y, ORDERS[order], format_tuple(f), opts.rounding.id, opts.overflow.id,
           opts.ftz, bool(daz), opts.key, opts.sr_bits, out)
    return out


def divide_by_count(sums, n: int, fmt, *, rounding="rne", overflow=None,
                    subnormals: bool = True, sr_bits=None, seed=None,
                    nan="raise") -> np.ndarray:
    """``sums / n`` rounded once into ``fmt`` (the last step of a mean).

    Unlike :func:`lowprec.div`, the count may be any non-negative integer (it need not be
    a float32 value): the quotient of two float64 values is rounded exactly once.

    Args:
        sums: values on ``fmt``'s grid.
        n: the count (0 gives 0/0 = NaN, as numpy's mean of nothing).
        fmt, rounding, overflow, subnormals, sr_bits, seed, nan: as :func:`sum_rows`.

    Returns:
        float64 array of the quotients.
    """
    f, opts = _setup(fmt, "sequential", rounding, overflow, subnormals, sr_bits, seed, nan,
                     "mean")
    from ._kernels.arith import binary_array  # numba loads on first use

    num = np.ascontiguousarray(np.asarray(sums, np.float64).reshape(-1))
    out = np.empty(num.size, np.float64)
    binary_array(OP_DIV, num, np.full(num.size, float(n)), format_tuple(f), opts.rounding.id,
                 opts.overflow.id, opts.ftz, False, opts.key, opts.sr_bits, out)
    return out.reshape(np.shape(sums))
