"""Correctly rounded emulated arithmetic: each operation rounds its exact result once.

``lowprec.add(x, y, "bf16", rounding="rtz")`` is what a bf16 adder with round-toward-zero
returns: the exact sum, rounded once into bfloat16. The kernels keep the exact residual
of every operation (error-free transformations, see :mod:`lowprec._kernels.arith`), so
directed and stochastic modes are right even where float64 itself would have rounded.

Operands may be plain numbers/arrays or :class:`lowprec.LPArray` (then ``fmt`` may be
omitted and the rounding options default to the array's context). Plain operands must be
exactly representable in float32, which every value of every lowprec float format is; they
need not lie on ``fmt``'s grid (an fp32 value rounded into bf16 by ``neg`` is fine), the
result is always the single rounding of the exact result.

Special values follow IEEE 754-2019: NaN propagates; inf - inf, 0 * inf, 0/0, inf/inf and
sqrt(x < 0) give NaN; x/0 gives a signed infinity; an exactly cancelling sum is +0 (-0 under
``rounding="rdn"``); zero products and quotients take the XOR of the signs. An infinite
result, like an overflow, becomes what the format and ``overflow`` policy give (e4m3fn: NaN
under ``overflow="inf"``, +-max under ``"saturate"``, as conversions do). Formats without
NaN (fp6, fp4) cannot hold a NaN result: by default that raises ValueError; ``nan="zero"``,
``"max"`` or ``"ml_dtypes"`` map it as :func:`lowprec.encode` does.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .coded import CodedArray, coded_values, make_array
from .formats import FloatFormat, Format, get_format
from .ids import BINARY_OPS, UNARY_OPS
from .quantize import (PARALLEL_THRESHOLD, _fits, decode, encode, format_tuple,
                       resolve_options)
from .rounding import Rounding, parse_rounding

# `abs` below shadows the builtin inside this module on purpose (lowprec.abs).
__all__ = ["add", "sub", "mul", "div", "fma", "sqrt", "neg", "abs", "maximum", "minimum"]


def _operand_values(x, name: str, op: str) -> np.ndarray:
    """float32 or float64 values of one operand, checked to be exactly representable in
    float32."""
    if isinstance(x, CodedArray):
        if isinstance(x.fmt, FloatFormat):
            return coded_values(x)  # every float format's values fit in float32
        x = coded_values(x)  # wide integer/fixed values may not: checked below
    a = np.asarray(x)
    if a.dtype.kind == "b" or a.dtype.kind not in "fiu":
        raise TypeError(f"{op}: argument {name} must be numbers or an LPArray, got dtype "
                        f"{a.dtype}")
    if a.dtype == np.float32:
        return a  # the kernels read float32 directly: no widening pass
    if a.dtype == np.float16:
        return a.astype(np.float32)
    v = a.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        bad = (v.astype(np.float32).astype(np.float64) != v) & ~np.isnan(v)
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:
        bad |= v.astype(a.dtype) != a
    if bad.any():
        example = a[bad].flat[0] if a.ndim else a[()]
        raise ValueError(f"{op}: argument {name} holds values that are not exactly "
                         f"representable in float32 (e.g. {example!r}); operands must be "
                         f"values of a lowprec format: round them first, e.g. "
                         f"lowprec.quantize(x, fmt)")
    return v


def _resolve(op: str, operands, fmt, rounding, overflow, subnormals, daz, sr_bits, seed,
             nan):
    """Pick the format and options; LPArray operands supply defaults."""
    lps = [o for o in operands if isinstance(o, CodedArray)]
    if fmt is None:
        if not lps:
            raise TypeError(f"{op}: fmt is required when no operand is an LPArray")
        names = sorted({o.fmt.name for o in lps})
        if len({o.fmt for o in lps}) > 1:
            raise TypeError(f"{op}: operands have different formats ({' and '.join(names)}); "
                            f"convert one with .astype() or pass fmt= to choose the result "
                            f"format")
        f = lps[0].fmt
    else:
        f = get_format(fmt)
    if not isinstance(f, FloatFormat):
        raise TypeError(f"{op}: emulated arithmetic is defined for float formats; {f.name} "
                        f"is a fixed-point/integer format")
    ctx = lps[0].context if lps else None
    if ctx is not None:
        rounding = ctx.rounding if rounding is None else rounding
        overflow = ctx.overflow if overflow is None else overflow
        subnormals = ctx.subnormals if subnormals is None else subnormals
        daz = ctx.daz if daz is None else daz
        sr_bits = ctx.sr_bits if sr_bits is None else sr_bits
        nan = ctx.nan if nan is None else nan
    rounding = "rne" if rounding is None else rounding
    subnormals = True if subnormals is None else subnormals
    daz = False if daz is None else daz
    nan = "raise" if nan is None else nan
    if not isinstance(daz, (bool, np.bool_)):
        raise TypeError(f"{op}: daz must be True or False, got {daz!r}")
    if seed is None and ctx is not None and parse_rounding(rounding) is Rounding.SR:
        seed = ctx.next_seed()
    opts = resolve_options(f, rounding, overflow, subnormals, sr_bits, seed, nan)
    return f, opts, bool(daz), ctx, bool(lps)


def _result_dtype(operands, f: Format) -> np.dtype:
    dts = [np.asarray(o).dtype for o in operands]
    floats = [d for d in dts if d.kind == "f"]
    dt = np.result_type(*floats) if floats and len(floats) == len(dts) else np.dtype(np.float64)
    if dt == np.float16 and not _fits(f, dt):
        dt = np.dtype(np.float32)
    if dt == np.float32 and not _fits(f, dt):
        dt = np.dtype(np.float64)
    if dt not in (np.float16, np.float32, np.float64):
        dt = np.dtype(np.float64)
    return dt


def _kernel(op: str, flat: list, f: FloatFormat, opts, daz: bool, out: np.ndarray) -> None:
    """Run the kernel of ``op`` over flat operands of equal size into ``out``."""
    from ._kernels import arith as K

    fp = format_tuple(f)
    args = (fp, opts.rounding.id, opts.overflow.id, opts.ftz, daz, opts.key, opts.sr_bits, out)
    fast = op not in ("maximum", "minimum") and K.fast_applies(fp, opts.rounding.id)
    if fast:
        if op in BINARY_OPS:
            kind, code = K.KIND_BINARY, BINARY_OPS[op]
        elif op == "fma":
            kind, code = K.KIND_FMA, 0
        else:
            kind, code = K.KIND_UNARY, UNARY_OPS[op]
        ops = flat + [flat[0]] * (3 - len(flat))  # unused operands: any array of the dtype
        kern = K.fast_array if out.size >= PARALLEL_THRESHOLD else K.fast_serial
        kern(kind, code, ops[0], ops[1], ops[2], *args)
    elif op in BINARY_OPS:
        K.binary_array(BINARY_OPS[op], flat[0], flat[1], *args)
    elif op == "fma":
        K.fma_array(flat[0], flat[1], flat[2], *args)
    else:
        K.unary_array(UNARY_OPS[op], flat[0], *args)


def _run(op: str, operands, names, fmt, rounding, overflow, subnormals, daz, sr_bits, seed,
         nan):
    f, opts, daz, ctx, any_lp = _resolve(op, operands, fmt, rounding, overflow, subnormals,
                                         daz, sr_bits, seed, nan)
    vals = [_operand_values(x, n, op) for x, n in zip(operands, names)]
    try:
        bc = np.broadcast_arrays(*vals)
    except ValueError:
        shapes = ", ".join(f"{n}: {v.shape}" for n, v in zip(names, vals))
        raise ValueError(f"{op}: operand shapes do not broadcast ({shapes})") from None
    shape = bc[0].shape
    # one dtype for all operands (float32 when every operand is), so that the kernels are
    # compiled for two signatures only
    same = np.float32 if all(b.dtype == np.float32 for b in bc) else np.float64
    flat = [np.ascontiguousarray(b, same).reshape(-1) for b in bc]
    res_dt = None if any_lp else _result_dtype(operands, f)
    # the kernels write the result dtype directly (float16 results via float32)
    out_dt = np.float64 if res_dt is None or res_dt == np.float64 else np.float32
    if any_lp and _fits(f, np.dtype(np.float32)):
        out_dt = np.float32
    out = np.empty(flat[0].size, out_dt)
    _kernel(op, flat, f, opts, daz, out)
    out = out.reshape(shape)
    if not f.has_nan:
        bad = np.isnan(out)
        if bad.any():
            if opts.nan.value == "raise":
                raise ValueError(f"{op}: a result is NaN (e.g. 0/0, sqrt of a negative number "
                                 f"or a NaN operand) but {f.name} has no NaN code; pass "
                                 f"nan='zero', 'max' or 'ml_dtypes' to map it")
            out[bad] = decode(encode(np.nan, f, nan=opts.nan), f, np.float64)
    if any_lp:
        codes = encode(out, f, nan=opts.nan if not f.has_nan else "raise")
        return make_array(codes, f, ctx, like=operands)
    res = out if out.dtype == res_dt else out.astype(res_dt)
    if all(np.ndim(o) == 0 and not isinstance(o, np.ndarray) for o in operands):
        return res[()]
    return res


_OPTIONS_DOC = """
        fmt: result format (name or descriptor); may be omitted when an operand is an
            LPArray (its format; all LPArray operands must share it).
        rounding: "rne", "rna", "rtz", "rup", "rdn", "rto" or "sr" (default: the LPArray
            operand's context, else "rne").
        overflow: "inf" (IEEE, default) or "saturate" (finite overflow and infinities
            give +-max).
        subnormals: False flushes subnormal results to signed zero (FTZ).
        daz: True treats subnormal operands (below fmt's smallest normal) as signed zero.
        sr_bits: with rounding="sr": None for exact stochastic rounding, r in 1..63 for
            the hardware form with r random bits.
        seed: stochastic-rounding seed; the random bits of output element i depend on
            (seed, i) only. None: fresh randomness (for LPArray operands: the next key of
            the array's generator, see :class:`lowprec.LPArray`).
        nan: what a NaN result becomes in a format without NaN: "raise" (default),
            "zero", "max", "ml_dtypes".

    Returns:
        An LPArray in fmt when an operand is an LPArray; otherwise a float array (float32
        for float16/float32 operands when fmt fits in float32, else float64) with the
        broadcast shape of the operands, or a numpy scalar for scalar operands.

    Raises:
        TypeError: no fmt and no LPArray operand, LPArray operands of different formats,
            a fixed-point fmt, non-numeric operands.
        ValueError: unknown format or option, operands that do not broadcast or are not
            exactly representable in float32, a NaN result in a format without NaN
            under nan="raise".
"""


def _with_doc(doc: str):
    def deco(fn):
        fn.__doc__ = doc + _OPTIONS_DOC
        return fn

    return deco


@_with_doc("""x + y, rounded once into fmt.

    Args:
        x, y: operands (broadcast against each other).""")
def add(x, y, fmt=None, *, rounding: Optional[str] = None, overflow: Optional[str] = None,
        subnormals: Optional[bool] = None, daz: Optional[bool] = None,
        sr_bits: Optional[int] = None, seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("add", (x, y), ("x", "y"), fmt, rounding, overflow, subnormals, daz, sr_bits,
                seed, nan)


@_with_doc("""x - y, rounded once into fmt.

    Args:
        x, y: operands (broadcast against each other).""")
def sub(x, y, fmt=None, *, rounding: Optional[str] = None, overflow: Optional[str] = None,
        subnormals: Optional[bool] = None, daz: Optional[bool] = None,
        sr_bits: Optional[int] = None, seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("sub", (x, y), ("x", "y"), fmt, rounding, overflow, subnormals, daz, sr_bits,
                seed, nan)


@_with_doc("""x * y, rounded once into fmt.

    Args:
        x, y: operands (broadcast against each other).""")
def mul(x, y, fmt=None, *, rounding: Optional[str] = None, overflow: Optional[str] = None,
        subnormals: Optional[bool] = None, daz: Optional[bool] = None,
        sr_bits: Optional[int] = None, seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("mul", (x, y), ("x", "y"), fmt, rounding, overflow, subnormals, daz, sr_bits,
                seed, nan)


@_with_doc("""x / y, rounded once into fmt.

    Deterministic modes are exact in every case. Stochastic rounding sees the exact
    sign of the quotient's tail beyond 53 bits and its magnitude to 53 bits, which
    matters only when the random bits equal the discarded bits of the 53-bit quotient
    (probability at most 2^-29 per element) or for sr_bits wider than that field.

    Args:
        x, y: dividend and divisor (broadcast against each other).""")
def div(x, y, fmt=None, *, rounding: Optional[str] = None, overflow: Optional[str] = None,
        subnormals: Optional[bool] = None, daz: Optional[bool] = None,
        sr_bits: Optional[int] = None, seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("div", (x, y), ("x", "y"), fmt, rounding, overflow, subnormals, daz, sr_bits,
                seed, nan)


@_with_doc("""x * y + z with a single rounding into fmt (fused multiply-add).

    Args:
        x, y, z: operands (broadcast against each other).""")
def fma(x, y, z, fmt=None, *, rounding: Optional[str] = None,
        overflow: Optional[str] = None, subnormals: Optional[bool] = None,
        daz: Optional[bool] = None, sr_bits: Optional[int] = None,
        seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("fma", (x, y, z), ("x", "y", "z"), fmt, rounding, overflow, subnormals, daz,
                sr_bits, seed, nan)


@_with_doc("""Square root, rounded once into fmt (sqrt(-0) = -0, sqrt(x < 0) = NaN).

    Stochastic rounding: as :func:`div` (exact sign, 53-bit magnitude of the tail).

    Args:
        x: operand.""")
def sqrt(x, fmt=None, *, rounding: Optional[str] = None, overflow: Optional[str] = None,
         subnormals: Optional[bool] = None, daz: Optional[bool] = None,
         sr_bits: Optional[int] = None, seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("sqrt", (x,), ("x",), fmt, rounding, overflow, subnormals, daz, sr_bits, seed,
                nan)


@_with_doc("""-x, rounded into fmt (exact when x is on fmt's grid and fmt is signed).

    Args:
        x: operand.""")
def neg(x, fmt=None, *, rounding: Optional[str] = None, overflow: Optional[str] = None,
        subnormals: Optional[bool] = None, daz: Optional[bool] = None,
        sr_bits: Optional[int] = None, seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("neg", (x,), ("x",), fmt, rounding, overflow, subnormals, daz, sr_bits, seed,
                nan)


@_with_doc("""|x|, rounded into fmt (exact when x is on fmt's grid).

    Args:
        x: operand.""")
def abs(x, fmt=None, *, rounding: Optional[str] = None, overflow: Optional[str] = None,
        subnormals: Optional[bool] = None, daz: Optional[bool] = None,
        sr_bits: Optional[int] = None, seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("abs", (x,), ("x",), fmt, rounding, overflow, subnormals, daz, sr_bits, seed,
                nan)


@_with_doc("""IEEE 754-2019 maximum (NaN propagates, +0 > -0), rounded into fmt.

    Args:
        x, y: operands (broadcast against each other).""")
def maximum(x, y, fmt=None, *, rounding: Optional[str] = None,
            overflow: Optional[str] = None, subnormals: Optional[bool] = None,
            daz: Optional[bool] = None, sr_bits: Optional[int] = None,
            seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("maximum", (x, y), ("x", "y"), fmt, rounding, overflow, subnormals, daz,
                sr_bits, seed, nan)


@_with_doc("""IEEE 754-2019 minimum (NaN propagates, -0 < +0), rounded into fmt.

    Args:
        x, y: operands (broadcast against each other).""")
def minimum(x, y, fmt=None, *, rounding: Optional[str] = None,
            overflow: Optional[str] = None, subnormals: Optional[bool] = None,
            daz: Optional[bool] = None, sr_bits: Optional[int] = None,
            seed: Optional[int] = None, nan: Optional[str] = None):
    return _run("minimum", (x, y), ("x", "y"), fmt, rounding, overflow, subnormals, daz,
                sr_bits, seed, nan)

