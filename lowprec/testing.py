"""Tools for property-testing conversions: hypothesis strategies and bitwise assertions.

Strategies produce float64 numbers (or codes) aimed at the places where conversions
go wrong: values of a format, exact ties between neighbours and the points just either
side, the overflow threshold, the subnormal range. ``hypothesis`` is imported only when a
strategy is built, so importing this module costs nothing.

Example::

    from hypothesis import given
    from lowprec.testing import tricky_floats, assert_bitwise_equal

    @given(tricky_floats("e4m3"))
    def test_my_cast(x):
        assert_bitwise_equal(my_cast(x), lowprec.encode(x, "e4m3"))
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from .formats import FloatFormat, Format, get_format
from .quantize import decode, encode

__all__ = ["codes", "values", "midpoints", "near_overflow", "subnormal_range", "tricky_floats",
           "finite_values_array", "assert_bitwise_equal", "ulp_distance", "ordinal"]


def _st():
    import hypothesis.strategies as st

    return st


def finite_values_array(fmt) -> np.ndarray:
    """Sorted distinct finite values of a format of at most 16 bits (one zero), as float64.

    Returns:
        A read-only array (cached per format).

    Raises:
        ValueError: for formats wider than 16 bits.
    """
    return _finite_values(get_format(fmt))


@functools.lru_cache(maxsize=None)
def _finite_values(f: Format) -> np.ndarray:
    v = f.values()
    v = np.unique(v[np.isfinite(v)])  # merges +0 and -0
    v.flags.writeable = False
    return v


def _cached_strategy(fn):
    """Strategies are immutable: build each one once per (format, options)."""
    cached = functools.lru_cache(maxsize=None)(fn)

    @functools.wraps(fn)
    def wrapper(fmt, *args, **kwargs):
        return cached(get_format(fmt), *args, **kwargs)

    return wrapper


@_cached_strategy
def codes(fmt):
    """Strategy: any code of the format (NaN codes included)."""
    f = get_format(fmt)
    return _st().integers(0, (1 << f.bits) - 1)


@_cached_strategy
def values(fmt, finite: bool = True):
    """Strategy: float64 values exactly on the format's grid.

    Args:
        fmt: format or name.
        finite: exclude NaN and infinities.
    """
    f = get_format(fmt)
    st = _st()

    def to_value(c):
        v = float(decode(np.array([c], np.uint32).astype(f.code_dtype), f, dtype=np.float64)[0])
        return v

    s = codes(f).map(to_value)
    if finite:
        s = s.filter(math.isfinite)
    return s


def _grid_neighbour_pair(f: Format):
    """Strategy for (lo, hi) consecutive non-negative grid values."""
    st = _st()
    if f.bits <= 16:
        grid = finite_values_array(f)
        grid = grid[grid >= 0]
        return st.integers(0, len(grid) - 2).map(lambda i: (float(grid[i]), float(grid[i + 1])))
    if not isinstance(f, FloatFormat):  # wide fixed point: the grid is k * resolution
        res = f.resolution
        return st.integers(0, f.max_int - 1).map(lambda k: (k * res, (k + 1) * res))
    # wide float formats: build lo from a random code, hi = next code
    top = int(encode(np.float64(f.max), f))

    def pair(c):
        lo = float(decode(np.array([c], np.uint32), f, dtype=np.float64)[0])
        hi = float(decode(np.array([c + 1], np.uint32), f, dtype=np.float64)[0])
        return lo, hi

    return st.integers(0, top - 1).map(pair)


@_cached_strategy
def midpoints(fmt, signed: bool = True):
    """Strategy: exact midpoints between neighbouring values (round-to-nearest ties)."""
    f = get_format(fmt)
    st = _st()
    s = _grid_neighbour_pair(f).map(lambda p: (p[0] + p[1]) / 2)
    if signed:
        s = st.tuples(s, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])
    return s


@_cached_strategy
def near_overflow(fmt):
    """Strategy: values around max and the round-to-nearest overflow threshold."""
    f = get_format(fmt)
    st = _st()
    mx = f.max
    ulp = 2.0 ** (f.emax - f.man_bits) if isinstance(f, FloatFormat) else f.resolution
    anchors = [mx, mx + ulp / 2, mx + ulp, 2 * mx]
    return st.tuples(st.sampled_from(anchors), st.integers(-3, 3), st.booleans()).map(
        lambda t: (-1 if t[2] else 1) * _step(t[0], t[1]))


@_cached_strategy
def subnormal_range(fmt):
    """Strategy: float64 values in (0, 2 * min_normal], where gradual underflow happens."""
    f = get_format(fmt)
    return _st().floats(min_value=f.min_normal * 2.0 ** -(getattr(f, "man_bits", 0) + 2),
                        max_value=2 * f.min_normal, allow_nan=False, exclude_min=True)


def _step(x: float, n: int, dtype=np.float32) -> float:
    """x moved by n ulps of dtype (float32 by default)."""
    with np.errstate(over="ignore"):  # stepping past max gives inf, which is wanted
        v = dtype(x)
        for _ in range(abs(n)):
            v = np.nextafter(v, dtype(np.inf) if n > 0 else dtype(-np.inf))
    return float(v)


@_cached_strategy
def tricky_floats(fmt, dtype=np.float32):
    """Strategy: values of ``dtype`` concentrated where rounding into ``fmt`` is hard.

    Mixes grid values, ties, the points one or two ulps of ``dtype`` either side of a tie,
    the overflow edge, the subnormal range, specials, and arbitrary floats.
    """
    f = get_format(fmt)
    st = _st()
    dt = np.dtype(dtype).type
    around_ties = st.tuples(midpoints(f), st.integers(-2, 2)).map(
        lambda t: _step(t[0], t[1], dt))
    parts = [values(f), midpoints(f), around_ties, near_overflow(f),
             subnormal_range(f).map(lambda v: float(dt(v))),
             st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]),
             st.floats(width=32 if dt is np.float32 else 64)]
    return st.one_of(*parts).map(lambda v: float(dt(v)))


def ordinal(codes_, fmt) -> np.ndarray:
    """Position of each code on the format's number line (0 for both zeros, +-1 for the
    smallest values, ...). NaN codes give no meaningful ordinal: mask them first."""
    f = get_format(fmt)
    c = np.asarray(codes_).astype(np.int64)
    if isinstance(f, FloatFormat):
        if not f.signed:
            return c
        sb = 1 << (f.bits - 1)
        mag = c & (sb - 1)
        return np.where(c & sb, -mag, mag)
    if f.signed:
        return np.where(c >= 1 << (f.bits - 1), c - (1 << f.bits), c)
    return c


def ulp_distance(a, b, fmt) -> np.ndarray:
    """Number of steps between values a and b on the grid of ``fmt`` (elementwise).

    Values are first rounded into the format (RNE), so for values already on the grid
    this is the count of representable numbers one must step over to get from a to b.

    Returns:
        float64 array (NaN where either side is NaN).
    """
    f = get_format(fmt)
    kw = {} if f.has_nan else {"nan": "zero"}
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    oa = ordinal(encode(a, f, **kw), f)
    ob = ordinal(encode(b, f, **kw), f)
    d = np.abs(oa - ob).astype(np.float64)
    return np.where(np.isnan(a) | np.isnan(b), np.nan, d)


def assert_bitwise_equal(actual, expected, *, nan_payload: bool = False, err_msg: str = "",
                         inputs: Optional[np.ndarray] = None) -> None:
    """Assert two arrays are equal bit for bit.

    Integer arrays (codes) are compared as integers. Float arrays are compared by their
    bit patterns, so +0 and -0 differ; NaNs are equal to each other unless
    ``nan_payload`` (then their bits must match too).

    Args:
        actual, expected: arrays of the same shape and kind.
        nan_payload: compare NaN bit patterns too.
        err_msg: prefix for the failure message.
        inputs: optional inputs to show beside the first mismatches.

    Raises:
        AssertionError: listing the number of mismatches and the first few.
    """
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{err_msg} shape mismatch: {a.shape} vs {e.shape}")
    if a.dtype.kind == "f" or e.dtype.kind == "f":
        if a.dtype != e.dtype:
            raise AssertionError(f"{err_msg} dtype mismatch: {a.dtype} vs {e.dtype}")
        view = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
        bad = a.view(view) != e.view(view)
        if not nan_payload:
            bad &= ~(np.isnan(a) & np.isnan(e))
    else:
        bad = a.astype(np.int64) != e.astype(np.int64)
    if bad.any():
        idx = np.argwhere(bad)[:8]
        lines = []
        for i in map(tuple, idx):
            s = f"  at {i}: got {a[i]!r}, expected {e[i]!r}"
            if a.dtype.kind in "ui":
                s += f" (0x{int(a[i]):x} vs 0x{int(e[i]):x})"
            if inputs is not None:
                s += f" for input {np.asarray(inputs)[i]!r}"
            lines.append(s)
        raise AssertionError(f"{err_msg} {int(bad.sum())} of {bad.size} elements differ:\n"
                             + "\n".join(lines))
