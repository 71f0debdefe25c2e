"""LPArray: low-precision codes + their format + a rounding context, feeling like numpy.

Arithmetic on LPArrays rounds every result once per element in the array's format with
the array's rounding context (:mod:`lowprec.arith`). Formats never mix silently: combining
a bfloat16 array with a float16 array (or with a numpy array) raises TypeError; convert
explicitly with :meth:`LPArray.astype` or call a ``lowprec`` function with ``fmt=``.

Python and numpy scalars are weak, as in NumPy's NEP 50: they are first converted into the
array's format (round to nearest even), so ``a + 0.1`` adds bf16(0.1) for a bf16 array.

Stochastic rounding is reproducible through a counter-based generator in the context:
``lowprec.array(x, fmt, rounding="sr", seed=s)`` gives the k-th stochastically rounded
operation (the conversion itself being the first) the key of (s, k), shared by every array
derived from it, so re-running the same program gives the same bits.
"""

from __future__ import annotations

import html
from typing import Optional, Sequence

import numpy as np

from . import arith, reduce
from .coded import CodedArray, RoundingContext, encode_with_context
from .formats import FixedFormat, FloatFormat, Format, get_format
from .gemm import matmul
from .quantize import _fits, decode, encode

__all__ = ["LPArray", "array", "concatenate", "stack", "RoundingContext"]


def _default_dtype(fmt: Format) -> np.dtype:
    return np.dtype(np.float32) if _fits(fmt, np.dtype(np.float32)) else np.dtype(np.float64)


def _short(v: float, fmt: Format) -> str:
    """The value exactly: the shortest decimal whose float64 is this value (every value of
    every lowprec format is a float64), so no two codes print alike and none is rounded."""
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "-inf" if v < 0 else "inf"
    return repr(float(v))


class LPArray(CodedArray):
    """An array of values of one low-precision format (codes + format + rounding context).

    Build one with :func:`lowprec.array`. Operators ``+ - * /``, ``** 2``, unary minus,
    ``abs`` and comparisons work with scalars and LPArrays of the same format; numpy's
    add, subtract, multiply, divide, sqrt, negative, absolute, maximum and minimum ufuncs
    return LPArrays. Every arithmetic result is rounded once per element.
    """

    __array_priority__ = 1000
    __slots__ = ("_codes", "_fmt", "_ctx")
    __hash__ = None

    def __init__(self, codes: np.ndarray, fmt, context: Optional[RoundingContext] = None):
        f = get_format(fmt)
        c = np.asarray(codes)
        if c.dtype.kind not in "ui":
            raise TypeError(f"LPArray codes must be integers, got dtype {c.dtype}")
        self._codes = c.astype(f.code_dtype, copy=False)
        self._fmt = f
        self._ctx = context if context is not None else RoundingContext()

    @classmethod
    def _from_codes(cls, codes, fmt, ctx):
        obj = cls.__new__(cls)
        obj._codes = codes
        obj._fmt = fmt
        obj._ctx = ctx if ctx is not None else RoundingContext()
        return obj

    @classmethod
    def from_codes(cls, codes, fmt, **context) -> "LPArray":
        """Wrap existing codes (copied) with a format and rounding options.

        Args:
            codes: integer codes of ``fmt``.
            fmt: format or name.
            **context: options of :func:`lowprec.array` (rounding, overflow, ...).
        """
        return cls(np.array(codes, copy=True), fmt, RoundingContext(**context))

    # --- what it is ------------------------------------------------------------------
    @property
    def codes(self) -> np.ndarray:
        """The codes (unsigned integers of the format's code dtype)."""
        return self._codes

    @property
    def fmt(self) -> Format:
        """The format."""
        return self._fmt

    @property
    def dtype(self) -> Format:
        """The format (LPArray's dtype-like descriptor: .name, .bits, .max, .eps, ...)."""
        return self._fmt

    @property
    def context(self) -> RoundingContext:
        """The rounding context used by arithmetic on this array."""
        return self._ctx

    @property
    def rounding(self) -> str:
        """The context's rounding mode."""
        return self._ctx.rounding

    @property
    def shape(self) -> tuple:
        return self._codes.shape

    @property
    def ndim(self) -> int:
        return self._codes.ndim

    @property
    def size(self) -> int:
        return self._codes.size

    @property
    def nbytes(self) -> int:
        """Bytes the values would take packed at the format's width."""
        return (self.size * self._fmt.bits + 7) // 8

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d LPArray")
        return self.shape[0]

    # --- conversion -----------------------------------------------------------------
    def to_numpy(self, dtype=None) -> np.ndarray:
        """Values as a numpy float array (float32 by default when the format fits in it,
        else float64; every float format of lowprec fits in float32 exactly)."""
        return decode(self._codes, self._fmt, _default_dtype(self._fmt) if dtype is None
                      else dtype)

    def __array__(self, dtype=None, copy=None):
        return self.to_numpy(dtype)

    def astype(self, fmt, *, rounding=None, overflow=None, subnormals=None, sr_bits=None,
               seed=None, nan=None) -> "LPArray":
        """Convert into another format, rounding each value once.

        Args:
            fmt: target format or name.
            rounding, overflow, subnormals, sr_bits, seed, nan: conversion options; None
                keeps this array's context. The new array's context has these options.

        Returns:
            LPArray in ``fmt``.
        """
        f = get_format(fmt)
        ctx = self._ctx.replace(rounding=rounding, overflow=overflow, subnormals=subnormals,
                                sr_bits=sr_bits, seed=seed, nan=nan)
        return _convert(self.to_numpy(np.float64), f, ctx)

    def item(self) -> float:
        """The value of a one-element array as a Python float."""
        if self.size != 1:
            raise ValueError(f"item() needs an array of size 1, got shape {self.shape}")
        return float(self.to_numpy(np.float64).reshape(-1)[0])

    def __float__(self) -> float:
        return self.item()

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError("the truth value of an LPArray with more than one element is "
                             "ambiguous")
        return bool(self.item())

    def tolist(self):
        """Values as nested Python lists of floats."""
        return self.to_numpy(np.float64).tolist()

    # --- shape ----------------------------------------------------------------------
    def _like(self, codes) -> "LPArray":
        return LPArray._from_codes(np.asarray(codes), self._fmt, self._ctx)

    def __getitem__(self, key) -> "LPArray":
        return self._like(self._codes[key])

    def __setitem__(self, key, value) -> None:
        if isinstance(value, LPArray):
            _check_same_format(self, value, "assignment")
            self._codes[key] = value.codes
            return
        v = np.asarray(value)
        if v.dtype.kind not in "fiu":
            raise TypeError(f"cannot assign values of dtype {v.dtype} to an LPArray")
        self._codes[key] = encode_with_context(v.astype(np.float64), self._fmt, self._ctx)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def reshape(self, *shape) -> "LPArray":
        """Same values with a new shape (numpy rules)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._like(self._codes.reshape(shape))

    def transpose(self, *axes) -> "LPArray":
        """Permuted axes (numpy rules)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return self._like(self._codes.transpose(*axes) if axes else self._codes.T)

    @property
    def T(self) -> "LPArray":
        return self.transpose()

    def ravel(self) -> "LPArray":
        return self._like(self._codes.ravel())

    def flatten(self) -> "LPArray":
        return self._like(self._codes.flatten())

    def squeeze(self, axis=None) -> "LPArray":
        return self._like(self._codes.squeeze(axis))

    def copy(self) -> "LPArray":
        """A copy with its own codes (the rounding context is shared)."""
        return self._like(self._codes.copy())

    # --- arithmetic -----------------------------------------------------------------
    def _coerce(self, other, what: str) -> "LPArray":
        if isinstance(other, LPArray):
            _check_same_format(self, other, what)
            return other
        if isinstance(other, (bool, np.bool_)):
            raise TypeError(f"{what}: cannot combine LPArray({self._fmt.name}) with a bool")
        if isinstance(other, (int, float, np.integer, np.floating)) or (
                isinstance(other, np.ndarray) and other.ndim == 0 and other.dtype.kind in "fiu"):
            kw = {} if self._fmt.has_nan else {"nan": self._ctx.nan}
            if isinstance(self._fmt, FixedFormat):
                kw = {}
            codes = np.asarray(encode(np.float64(other), self._fmt, **kw))
            return LPArray._from_codes(codes, self._fmt, self._ctx)
        if isinstance(other, (np.ndarray, list, tuple)):
            dt = np.asarray(other).dtype
            raise TypeError(f"{what}: cannot combine LPArray({self._fmt.name}) with a numpy "
                            f"array of dtype {dt}; convert it with lowprec.array(x, "
                            f"{self._fmt.name!r}) (formats are never promoted silently)")
        raise TypeError(f"{what}: unsupported operand type {type(other).__name__} for "
                        f"LPArray({self._fmt.name})")

    def _binary(self, other, fn, what, reflected=False):
        try:
            o = self._coerce(other, what)
        except TypeError:
            if isinstance(other, (LPArray, np.ndarray, list, tuple, int, float, np.number)):
                raise
            return NotImplemented
        return fn(o, self) if reflected else fn(self, o)

    def __add__(self, other):
        return self._binary(other, arith.add, "+")

    def __radd__(self, other):
        return self._binary(other, arith.add, "+", True)

    def __sub__(self, other):
        return self._binary(other, arith.sub, "-")

    def __rsub__(self, other):
        return self._binary(other, arith.sub, "-", True)

    def __mul__(self, other):
        return self._binary(other, arith.mul, "*")

    def __rmul__(self, other):
        return self._binary(other, arith.mul, "*", True)

    def __truediv__(self, other):
        return self._binary(other, arith.div, "/")

    def __rtruediv__(self, other):
        return self._binary(other, arith.div, "/", True)

    def __neg__(self):
        return arith.neg(self)

    def __pos__(self):
        return self.copy()

    def __abs__(self):
        return arith.abs(self)

    def __pow__(self, exponent):
        if isinstance(exponent, (int, float, np.integer, np.floating)):
            if exponent == 2:
                return arith.mul(self, self)
            if exponent == 1:
                return self.copy()
            if exponent == 0.5:
                return arith.sqrt(self)
        raise TypeError(f"LPArray supports ** 2, ** 1 and ** 0.5 (each correctly rounded); "
                        f"got ** {exponent!r}")

    def __matmul__(self, other):
        return _matmul(self, other)

    def __rmatmul__(self, other):
        return _matmul(self._coerce(other, "@"), self)

    def _compare(self, other, npop, what):
        try:
            o = self._coerce(other, what)
        except TypeError:
            if what in ("==", "!=") and not isinstance(other, (LPArray, np.ndarray, list,
                                                                tuple)):
                return NotImplemented
            raise
        return npop(self.to_numpy(np.float64), o.to_numpy(np.float64))

    def __eq__(self, other):
        return self._compare(other, np.equal, "==")

    def __ne__(self, other):
        return self._compare(other, np.not_equal, "!=")

    def __lt__(self, other):
        return self._compare(other, np.less, "<")

    def __le__(self, other):
        return self._compare(other, np.less_equal, "<=")

    def __gt__(self, other):
        return self._compare(other, np.greater, ">")

    def __ge__(self, other):
        return self._compare(other, np.greater_equal, ">=")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = _UFUNCS.get(ufunc)
        if fn is None or method != "__call__" or kwargs:
            names = ", ".join(sorted(u.__name__ for u in _UFUNCS))
            extra = f" with {sorted(kwargs)}" if kwargs else ""
            raise TypeError(f"numpy.{ufunc.__name__}.{method}{extra} is not supported on "
                            f"LPArray (supported ufunc calls: {names}); use np.asarray(a) "
                            f"for plain float arithmetic")
        ops = [self._coerce(x, f"numpy.{ufunc.__name__}") for x in inputs]
        return fn(*ops)

    # --- reductions -----------------------------------------------------------------
    def sum(self, axis=None, *, acc=None, order: str = "sequential", dtype=None, out=None,
            keepdims: bool = False) -> "LPArray":
        """Sum with an explicit accumulator, each addition rounded once into ``acc``.

        Args:
            axis: None (all elements) or an int axis.
            acc: accumulator format (default: this array's format, as hardware adders
                do). The result is an LPArray in ``acc``.
            order: "sequential" (left to right), "pairwise" (level-by-level tree) or
                "kahan" (compensated, every step rounded in ``acc``); see
                :mod:`lowprec._kernels.reduce`.
            dtype, out: accepted for numpy compatibility, must be None.
            keepdims: keep the reduced axis with length 1.

        Returns:
            LPArray in the accumulator format.

        Raises:
            ValueError: unknown order, bad axis. TypeError: dtype/out given, fixed-point
                accumulator.
        """
        _numpy_compat(dtype, out, "sum")
        vals, keep_shape, out_shape = self._rows(axis, keepdims)
        res = _reduce("sum", vals, None, self, acc, order)
        return res.reshape(keep_shape if keepdims else out_shape)

    def mean(self, axis=None, *, acc=None, order: str = "sequential", dtype=None, out=None,
             keepdims: bool = False) -> "LPArray":
        """Mean: :meth:`sum` in ``acc``, then one correctly rounded division by the count.

        Args and Returns: as :meth:`sum` (an empty mean is 0/0 = NaN).
        """
        _numpy_compat(dtype, out, "mean")
        vals, keep_shape, out_shape = self._rows(axis, keepdims)
        s = _reduce("sum", vals, None, self, acc, order)
        n = vals.shape[1]
        ctx = self._ctx
        seed = ctx.next_seed() if ctx.rounding == "sr" else None
        res = reduce.divide_by_count(s.to_numpy(np.float64), n, s.fmt, rounding=ctx.rounding,
                                     overflow=ctx.overflow, subnormals=ctx.subnormals,
                                     sr_bits=ctx.sr_bits, seed=seed, nan=ctx.nan)
        res = _from_values(res, s.fmt, ctx.replace(), "mean")
        return res.reshape(keep_shape if keepdims else out_shape)

    def dot(self, other, *, acc=None, order: str = "sequential") -> "LPArray":
        """Inner product of two 1-D arrays of the same format with an explicit accumulator.

        Products are exact; "sequential" is a fused multiply-add chain (one rounding per
        step), "pairwise" and "kahan" round each product into ``acc`` and then sum.

        Returns:
            0-d LPArray in ``acc`` (default: this array's format).

        Raises:
            ValueError: not 1-D or different lengths. TypeError: different formats.
        """
        o = self._coerce(other, "dot")
        if self.ndim != 1 or o.ndim != 1 or self.shape != o.shape:
            raise ValueError(f"dot needs two 1-D arrays of equal length, got shapes "
                             f"{self.shape} and {o.shape}; use @ (lowprec.matmul) for "
                             f"matrices")
        a = self.to_numpy(np.float64).reshape(1, -1)
        b = o.to_numpy(np.float64).reshape(1, -1)
        return _reduce("dot", a, b, self, acc, order).reshape(())

    def _rows(self, axis, keepdims):
        v = self.to_numpy(np.float64)
        if axis is None:
            return v.reshape(1, -1), (1,) * self.ndim, ()
        if not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be None or an int, got {axis!r}")
        if not -self.ndim <= axis < self.ndim:
            raise ValueError(f"axis {axis} is out of bounds for an array of dimension "
                             f"{self.ndim}")
        ax = int(axis) % self.ndim
        moved = np.moveaxis(v, ax, -1)
        out_shape = moved.shape[:-1]
        keep = list(self.shape)
        keep[ax] = 1
        return np.ascontiguousarray(moved.reshape(-1, self.shape[ax])), tuple(keep), out_shape

    # --- display --------------------------------------------------------------------
    def hex(self) -> np.ndarray:
        """Codes as hex strings (e.g. '0x3f80'), with the array's shape."""
        w = (self._fmt.bits + 3) // 4
        return np.vectorize(lambda c: f"0x{int(c):0{w}x}", otypes=[object])(self._codes)

    def to_string(self, codes: bool = False) -> str:
        """A readable description: shortest round-tripping values, format, context, and
        with ``codes=True`` the hex codes."""
        f = self._fmt
        vals = self.to_numpy(np.float64)
        body = np.array2string(vals, separator=", ", prefix="LPArray(",
                               formatter={"float_kind": lambda v: _short(v, f)})
        extra = self._ctx.describe()
        s = f"LPArray({body}, fmt={f.name}" + (f", {extra}" if extra else "")
        if codes:
            w = (f.bits + 3) // 4
            hx = np.array2string(self._codes, separator=", ", prefix="      codes=",
                                 formatter={"int": lambda c: f"0x{int(c):0{w}x}"})
            s += f",\n      codes={hx}"
        return s + ")"

    def __repr__(self) -> str:
        return self.to_string()

    def __str__(self) -> str:
        return self.to_string()

    def _repr_html_(self) -> str:
        f = self._fmt
        head = (f"<b>LPArray</b> {html.escape(str(self.shape))} <code>{html.escape(f.name)}"
                f"</code> {html.escape(self._ctx.describe() or 'rounding=rne')}")
        if self.ndim > 2 or self.size > 400:
            return f"<div>{head}<pre>{html.escape(self.to_string())}</pre></div>"
        vals = np.atleast_2d(self.to_numpy(np.float64))
        hx = np.atleast_2d(self.hex())
        rows = []
        for vr, hr in zip(vals, hx):
            cells = "".join(f'<td title="{h}" style="text-align:right">'
                            f"{html.escape(_short(v, f))}</td>" for v, h in zip(vr, hr))
            rows.append(f"<tr>{cells}</tr>")
        return (f"<div>{head}<table><tbody>{''.join(rows)}</tbody></table>"
                f"<small>hover a value for its code</small></div>")


def _check_same_format(a: LPArray, b: LPArray, what: str) -> None:
    if a.fmt != b.fmt:
        raise TypeError(f"{what}: mixed formats {a.fmt.name} and {b.fmt.name}; convert one "
                        f"with .astype() or use a lowprec function with fmt= (formats are "
                        f"never promoted silently)")


def _numpy_compat(dtype, out, what):
    if dtype is not None or out is not None:
        raise TypeError(f"LPArray.{what}: dtype= and out= are not supported; choose the "
                        f"accumulator with acc= and convert with .astype()")


def _from_values(vals: np.ndarray, f: Format, ctx: RoundingContext, what: str) -> LPArray:
    """LPArray from float64 values already on f's grid (NaN handled by the policy)."""
    if not f.has_nan and np.isnan(vals).any() and ctx.nan == "raise":
        raise ValueError(f"{what}: a result is NaN but {f.name} has no NaN code; use a "
                         f"context with nan='zero', 'max' or 'ml_dtypes'")
    kw = {} if f.has_nan else {"nan": ctx.nan}
    return LPArray._from_codes(encode(vals, f, **kw), f, ctx)


def _reduce(kind, a, b, src: LPArray, acc, order) -> LPArray:
    f = src.fmt if acc is None else get_format(acc)
    ctx = src.context
    if not isinstance(f, FloatFormat):
        raise TypeError(f"emulated arithmetic needs a float format, got {f.name}")
    seed = ctx.next_seed() if ctx.rounding == "sr" else None
    kw = dict(order=order, rounding=ctx.rounding, overflow=ctx.overflow,
              subnormals=ctx.subnormals, daz=ctx.daz, sr_bits=ctx.sr_bits, seed=seed,
              nan=ctx.nan)
    out = reduce.sum_rows(a, f, **kw) if kind == "sum" else reduce.dot_rows(a, b, f, **kw)
    return _from_values(out, f, ctx if f == src.fmt else ctx.replace(), kind)


def _convert(vals: np.ndarray, f: Format, ctx: RoundingContext) -> LPArray:
    codes = np.asarray(encode_with_context(vals, f, ctx))
    return LPArray._from_codes(codes, f, ctx)


def _matmul(a: LPArray, b) -> LPArray:
    o = a._coerce(b, "@")
    ctx = a.context
    seed = ctx.next_seed() if ctx.rounding == "sr" else None
    res = matmul(a, o, out=a.fmt, out_rounding=ctx.rounding, seed=seed)
    return LPArray._from_codes(res.codes, res.fmt, ctx)


def array(x, fmt=None, rounding="rne", *, overflow=None, subnormals=True, daz=False,
          sr_bits=None, seed=None, nan="raise") -> LPArray:
    """Round values into a format and hold them as an LPArray.

    Args:
        x: numbers, nested lists, a numpy array, or an LPArray (converted when ``fmt``
            differs from its format, else copied).
        fmt: format or name (required unless x is an LPArray).
        rounding: rounding of this conversion and of all arithmetic on the result
            ("rne", "rna", "rtz", "rup", "rdn", "rto", "sr").
        overflow, subnormals, sr_bits, nan: as :func:`lowprec.encode`; kept in the context.
        daz: arithmetic treats subnormal operands as zero.
        seed: seeds the context's stochastic-rounding generator (see the module notes).

    Returns:
        LPArray with x's shape.

    Raises:
        TypeError: no fmt for plain values, non-numeric input.
        ValueError: unknown format or option, NaN into a format without NaN under
            nan="raise".
    """
    ctx = RoundingContext(rounding, overflow, subnormals, daz, sr_bits, seed, nan)
    if isinstance(x, LPArray):
        f = x.fmt if fmt is None else get_format(fmt)
        if f == x.fmt:
            return LPArray._from_codes(x.codes.copy(), f, ctx)
        return _convert(x.to_numpy(np.float64), f, ctx)
    if fmt is None:
        raise TypeError("lowprec.array needs a format for plain values, e.g. "
                        "lowprec.array(x, 'bf16')")
    f = get_format(fmt)
    v = np.asarray(x)
    if v.dtype.kind not in "fiu":
        raise TypeError(f"lowprec.array needs numbers, got dtype {v.dtype}")
    if v.dtype not in (np.float16, np.float32, np.float64):
        v = v.astype(np.float64)
    return _convert(v, f, ctx)


def _gather(arrays: Sequence[LPArray], what: str):
    arrays = list(arrays)
    if not arrays:
        raise ValueError(f"{what} needs at least one array")
    for a in arrays:
        if not isinstance(a, LPArray):
            raise TypeError(f"{what} takes LPArrays, got {type(a).__name__}; convert with "
                            f"lowprec.array(x, fmt)")
    for a in arrays[1:]:
        _check_same_format(arrays[0], a, what)
    return arrays


def concatenate(arrays: Sequence[LPArray], axis: int = 0) -> LPArray:
    """Join LPArrays of one format along an existing axis (numpy rules).

    Raises:
        TypeError: non-LPArray input or mixed formats. ValueError: shape mismatch.
    """
    arrays = _gather(arrays, "concatenate")
    return arrays[0]._like(np.concatenate([a.codes for a in arrays], axis=axis))


def stack(arrays: Sequence[LPArray], axis: int = 0) -> LPArray:
    """Join LPArrays of one format along a new axis (numpy rules).

    Raises:
        TypeError: non-LPArray input or mixed formats. ValueError: shape mismatch.
    """
    arrays = _gather(arrays, "stack")
    return arrays[0]._like(np.stack([a.codes for a in arrays], axis=axis))


_UFUNCS = {
    np.add: arith.add, np.subtract: arith.sub, np.multiply: arith.mul,
    np.true_divide: arith.div, np.sqrt: arith.sqrt, np.negative: arith.neg,
    np.absolute: arith.abs, np.maximum: arith.maximum, np.minimum: arith.minimum,
    np.positive: LPArray.copy,
}
