"""Conversion between IEEE binary arrays and any lowprec format: encode, decode, quantize.

These functions validate their input, unpack the format into the kernels' parameter
vector (:func:`format_params`) and call the numba kernels in :mod:`lowprec._kernels`.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from typing import NamedTuple, Optional

import numpy as np

from ._kernels import layout as L
from .formats import FixedFormat, FloatFormat, Format, get_format
from .reference import encode_exact
from .rounding import NaNPolicy, Overflow, Rounding, parse_nan_policy, parse_overflow, parse_rounding

__all__ = ["encode", "decode", "quantize", "format_params", "format_tuple", "seed_key",
           "ConversionOptions", "resolve_options", "f32_fast_applies"]

_MASK64 = (1 << 64) - 1
_FLOAT32 = get_format("float32")

# Raw-bit layouts of the IEEE input dtypes: (mantissa bits, exponent bits, bias, uint view).
_INPUT_LAYOUT = {
    np.dtype(np.float16): (10, 5, 15, np.uint16),
    np.dtype(np.float32): (23, 8, 127, np.uint32),
    np.dtype(np.float64): (52, 11, 1023, np.uint64),
}


def _mix64(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def seed_key(seed: Optional[int]) -> int:
    """The 64-bit key the kernels' counter-based generator uses for ``seed``.

    ``None`` draws a fresh key from the operating system (not reproducible).

    Raises:
        TypeError: for a seed that is not an integer.
    """
    if seed is None:
        return _mix64(int.from_bytes(os.urandom(8), "little"))
    if isinstance(seed, (bool, float)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return _mix64(int(seed) + 0x9E3779B97F4A7C15)


class ConversionOptions:
    """Validated rounding options, unpacked for the kernels.

    Attributes: ``rounding`` (Rounding), ``overflow`` (Overflow), ``ftz`` (bool),
    ``sr_bits`` (0 for exact stochastic rounding), ``key`` (uint64 generator key),
    ``nan`` (NaNPolicy).
    """

    __slots__ = ("rounding", "overflow", "ftz", "sr_bits", "key", "nan")

    def __init__(self, rounding, overflow, ftz, sr_bits, key, nan):
        self.rounding = rounding
        self.overflow = overflow
        self.ftz = ftz
        self.sr_bits = sr_bits
        self.key = key
        self.nan = nan


def resolve_options(fmt: Format, rounding="rne", overflow=None, subnormals=True,
                    sr_bits=None, seed=None, nan="raise") -> ConversionOptions:
    """Check conversion options against a format and unpack them.

    Raises:
        ValueError: for unknown names, ``sr_bits`` outside 1..63 or given without
            ``rounding="sr"``, ``overflow="wrap"`` on a float format.
    """
    rnd = parse_rounding(rounding)
    is_float = isinstance(fmt, FloatFormat)
    if overflow is None:
        ovf = Overflow.INF if is_float else Overflow.SATURATE
    else:
        ovf = parse_overflow(overflow)
    if is_float and ovf is Overflow.WRAP:
        raise ValueError(f"overflow='wrap' is for integer and fixed-point formats, not {fmt.name}")
    if not is_float and ovf is Overflow.INF:
        ovf = Overflow.SATURATE  # no infinities: IEEE overflow has nothing else to give
    if sr_bits is not None:
        if rnd is not Rounding.SR:
            raise ValueError(f"sr_bits={sr_bits} needs rounding='sr' (got {rnd.value!r})")
        if isinstance(sr_bits, bool) or not isinstance(sr_bits, (int, np.integer)) \
                or not 1 <= sr_bits <= 63:
            raise ValueError(f"sr_bits must be an int in 1..63 or None (exact), got {sr_bits!r}")
    if not isinstance(subnormals, (bool, np.bool_)):
        raise TypeError(f"subnormals must be True or False, got {subnormals!r}")
    key = seed_key(seed) if rnd is Rounding.SR else 0
    return ConversionOptions(rnd, ovf, not bool(subnormals), int(sr_bits or 0), np.uint64(key),
                             parse_nan_policy(nan))


@functools.lru_cache(maxsize=None)
def format_params(fmt: Format, nan: NaNPolicy = NaNPolicy.RAISE) -> np.ndarray:
    """The int64 parameter vector that carries ``fmt`` into the kernels.

    Every entry is a fact the descriptor states (its code facts) or derives; nothing is
    worked out here.

    Args:
        fmt: a float or fixed-point format.
        nan: what NaN inputs become when the format has no NaN code.

    Returns:
        Read-only int64 array laid out as in :mod:`lowprec._kernels.layout`.
    """
    if isinstance(fmt, FixedFormat):
        xp = np.zeros(L.X_LEN, np.int64)
        xp[L.X_FRAC] = fmt.frac_bits
        xp[L.X_MININT] = fmt.min_int
        xp[L.X_MAXINT] = fmt.max_int
        xp[L.X_BITS] = fmt.bits
        xp[L.X_NAN_CODE] = fmt.nan_code_for(False, nan)
        xp.flags.writeable = False
        return xp
    fp = np.zeros(L.F_LEN, np.int64)
    fp[L.F_MAN] = fmt.man_bits
    fp[L.F_EMIN] = fmt.emin
    fp[L.F_EMAX] = fmt.emax
    fp[L.F_MAXSIG] = fmt.max_significand
    fp[L.F_BIAS] = fmt.bias
    fp[L.F_HAS_INF] = int(fmt.has_inf)
    fp[L.F_HAS_NAN] = int(fmt.has_nan)
    fp[L.F_SIGNED] = int(fmt.signed)
    fp[L.F_ZERO] = int(fmt.zero)
    fp[L.F_SUBN] = int(fmt.subnormals)
    fp[L.F_BITS] = fmt.bits
    fp[L.F_NAN_KIND] = fmt.nan_id
    fp[L.F_NAN_POS] = fmt.nan_code_for(False, nan)
    fp[L.F_NAN_NEG] = fmt.nan_code_for(True, nan)
    fp[L.F_INF] = fmt.inf_code if fmt.has_inf else -1
    fp[L.F_MAXCODE] = fmt.max_code
    fp[L.F_SIGNBIT] = fmt.sign_bit
    fp[L.F_EXPMASK] = fmt.exp_mask
    fp.flags.writeable = False
    return fp


@functools.lru_cache(maxsize=None)
def format_tuple(fmt: Format, nan: NaNPolicy = NaNPolicy.RAISE) -> tuple:
    """:func:`format_params` as a tuple of ints, the form per-element kernels should take.

    A tuple reaches numba as a plain value; an array argument handed on to a helper for
    every element costs an atomic reference-count update per call.
    """
    return tuple(int(v) for v in format_params(fmt, nan))


_EXACT53 = float(2 ** 53)  # integers below this magnitude are exact in float64


class _Input(NamedTuple):
    """An input prepared for the kernels.

    ``hi`` is a native float16/32/64 array with the input's shape. ``lo`` (float64, or None)
    holds exact tails where the input is wider than float64's significand (integers beyond
    2^53, long doubles): the value is ``hi + lo`` with |lo| <= ulp(hi)/2. ``big`` maps flat
    indices to Python ints that not even a float64 pair carries (beyond 64 bits).
    """

    hi: np.ndarray
    lo: Optional[np.ndarray] = None
    big: Optional[dict] = None


def _int_pair(a: np.ndarray) -> tuple:
    """(hi, lo) float64 arrays with hi + lo == a exactly, for int64/uint64 arrays.

    hi is a rounded to nearest (numpy's integer-to-double casts round correctly); the
    residual has at most 11 bits, so it is computed exactly in wrapping uint64 arithmetic.
    """
    if a.dtype.kind == "i":
        a = a.astype(np.int64)
        neg = a < 0
        mag = np.where(neg, ~a.view(np.uint64) + np.uint64(1), a.view(np.uint64))
    else:
        a = a.astype(np.uint64)
        neg = np.zeros(a.shape, bool)
        mag = a
    hi = mag.astype(np.float64)
    hi_u = np.where(hi >= 2.0 ** 64, 0.0, hi).astype(np.uint64)  # 2^64 wraps to 0
    lo = (mag - hi_u).view(np.int64).astype(np.float64)
    return np.where(neg, -hi, hi), np.where(neg, -lo, lo)


def _from_objects(a: np.ndarray) -> "_Input":
    """An object array of Python numbers: floats and ints, ints rounded exactly."""
    flat = a.reshape(-1)
    hi = np.empty(flat.size, np.float64)
    lo = np.zeros(flat.size, np.float64)
    big = {}
    for i, v in enumerate(flat):
        if isinstance(v, (bool, np.bool_)):
            hi[i] = float(v)
            continue
        if not isinstance(v, (int, float, np.integer, np.floating)):
            what = "complex numbers" if isinstance(v, (complex, np.complexfloating)) else \
                f"{type(v).__name__} values"
            raise TypeError(f"expected real numbers, got {what} (e.g. {v!r})")
        if isinstance(v, (int, np.integer)):
            v = int(v)
            if -(1 << 63) <= v < (1 << 64):
                h, t = _int_pair(np.array([v], np.uint64 if v >= (1 << 63) else np.int64))
                hi[i], lo[i] = h[0], t[0]
            else:
                big[i] = v
                hi[i] = 0.0
        else:
            hi[i] = float(v)
    shape = a.shape
    return _Input(hi.reshape(shape), lo.reshape(shape) if lo.any() else None, big or None)


def _prepare(x) -> _Input:
    """Validate an input and bring it into the kernels' form without losing exactness.

    Raises:
        TypeError: None, strings, complex numbers and other non-real input.
    """
    if x is None:
        raise TypeError("expected real numbers, got None")
    if isinstance(x, int) and not isinstance(x, bool):
        return _from_objects(np.array(x, dtype=object))
    if isinstance(x, (list, tuple)):
        # numpy turns a list mixing large Python ints into float64 (rounding them): look first
        obj = np.array(x, dtype=object)
        if any(isinstance(v, int) and not isinstance(v, bool) for v in obj.reshape(-1)):
            return _from_objects(obj)
    a = np.asarray(x)
    kind = a.dtype.kind
    if kind == "c":
        raise TypeError(f"complex input (dtype {a.dtype}) is not supported: lowprec formats "
                        f"are real; pass x.real or abs(x) explicitly")
    if kind == "O":
        return _from_objects(a)
    if kind == "b":
        return _Input(a.astype(np.float64))
    if kind in "iu":
        if a.size == 0 or a.dtype.itemsize < 8 or (np.abs(a.astype(np.float64)).max()
                                                   < _EXACT53):
            return _Input(a.astype(np.float64))
        hi, lo = _int_pair(a)
        return _Input(hi, lo if lo.any() else None)
    if kind != "f":
        raise TypeError(f"cannot convert input of dtype {a.dtype} to floating point")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype in _INPUT_LAYOUT:
        return _Input(a)
    # long double: a float64 pair carries its 64-bit significand exactly
    hi = a.astype(np.float64)
    with np.errstate(invalid="ignore"):
        lo = (a - hi.astype(a.dtype)).astype(np.float64)
    lo = np.where(np.isfinite(hi), lo, 0.0)
    return _Input(hi, lo if lo.any() else None)


def _as_float_array(x) -> np.ndarray:
    """x as a native float16/32/64 array, for callers that need plain values (integers
    beyond 2^53 are rounded to float64 here; :func:`encode` itself rounds them exactly).

    Raises:
        TypeError: for non-real input.
    """
    p = _prepare(x)
    if p.big:
        raise ValueError("integers beyond 64 bits need lowprec.encode/quantize")
    return p.hi if p.lo is None else p.hi + p.lo


# --- the float32 fast path ------------------------------------------------------------
# float32 arrays into the common float formats under RNE/RNA/RTZ/RUP/RDN take one
# branch-free kernel (lowprec._kernels.convert, "float32 fast pass") that writes codes or
# values directly. A call's options are resolved once and cached as a plan, and the small
# kernels are called through their compiled entry points, so that a call on a small array
# costs little more than numpy's own overhead.

_F32 = np.dtype(np.float32)
# C-contiguous and aligned: the input arrays the cached entry points were compiled for
# (read-only ones, see _ro: a writeable array is passed to them as it is, since the
# kernels never write their input)
_FLAGS_OK = 0x1 | 0x100


def _ro(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only view (no copy) for a kernel that only reads it.

    numba compiles a separate specialisation of a kernel, and of every kernel it calls
    with that array, for read-only and writeable arrays of the same dtype and layout
    (seconds each on a cold cache); inputs arrive both ways (``np.broadcast_to`` views,
    decode tables, a user's frozen arrays), so every input is passed read-only.
    """
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a
# Below this many elements the serial fast kernels win: waking numba's threads costs more.
F32_PARALLEL_THRESHOLD = 1 << 17


def f32_fast_applies(f: Format, rounding: Rounding) -> bool:
    """Whether float32 input into ``f`` under ``rounding`` takes the fast kernels.

    They need a signed float format with zero and subnormals, fewer mantissa bits than
    float32 and a smallest normal exponent of at least float32's (-126), and a mode other
    than round-to-odd and stochastic rounding.
    """
    return (isinstance(f, FloatFormat) and f.signed and f.zero and f.subnormals
            and f.emin >= -126 and f.man_bits < 23
            and rounding not in (Rounding.RTO, Rounding.SR))


class _Plan:
    """Everything a fast-path call needs, resolved once per (format, options)."""

    __slots__ = ("fmt", "f", "fp", "mode", "ovf", "ftz", "code_dtype", "raise_nan",
                 "values_f32", "entry")

    def __init__(self, fmt, f: Format, opts: ConversionOptions):
        self.fmt = fmt  # what the caller passed (identity-checked for non-string keys)
        self.f = f
        self.fp = format_params(f, opts.nan)
        self.mode = opts.rounding.id
        self.ovf = opts.overflow.id
        self.ftz = opts.ftz
        self.code_dtype = f.code_dtype
        self.raise_nan = not f.has_nan and opts.nan is NaNPolicy.RAISE
        self.values_f32 = _fits(f, _F32)
        self.entry = {}  # kernel name -> compiled entry point (serial kernels only)


_PLANS: dict = {}


def _fast_plan(fmt, rounding, overflow, subnormals, nan) -> "Optional[_Plan]":
    """The cached plan for float32 input, or None when the fast path does not apply.

    Raises:
        As :func:`resolve_options` (for the first call with bad options).
    """
    # (a plan holds its format, so an id in a key is never reused while the key lives;
    # the type of `subnormals` keeps 1 apart from True, which validation rejects)
    key = (fmt if type(fmt) is str else id(fmt), rounding, overflow, subnormals,
           type(subnormals), nan)
    try:
        plan = _PLANS.get(key, False)
    except TypeError:  # unhashable option: the general path reports it
        return None
    if plan is False or (plan is not None and plan.fmt is not fmt):
        f = get_format(fmt)
        opts = resolve_options(f, rounding, overflow, subnormals, None, None, nan)
        plan = _Plan(fmt, f, opts) if f32_fast_applies(f, opts.rounding) else None
        if len(_PLANS) > 4096:  # many distinct transient format objects: start again
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _nan_error(f: Format) -> ValueError:
    return ValueError(f"NaN input but {f.name} has no NaN code; pass nan='zero', 'max' or "
                      f"'ml_dtypes' to map it")


_K = None  # lowprec._kernels.convert once loaded (numba loads on first use, not on import)


def _kernels():
    global _K
    if _K is None:
        from ._kernels import convert

        _K = convert
    return _K


def _run_f32(plan: _Plan, name: str, x: np.ndarray, out: np.ndarray) -> None:
    """Run the fast kernel ``name`` ("encode_f32" / "quantize_f32") on float32 ``x`` of
    any layout, writing ``out`` (a new C-contiguous array of x's shape)."""
    K = _kernels()
    x = _ro(np.ascontiguousarray(x).reshape(-1))
    args = (x, plan.fp, plan.mode, plan.ovf, plan.ftz, out.reshape(-1))
    if x.size >= F32_PARALLEL_THRESHOLD:
        n = getattr(K, name + "_parallel")(*args)
    else:
        kern = getattr(K, name + "_serial")
        tier = _plain_tier(name, kern)
        n = tier(kern, x.size, *args)
        if n is tier.NOT_RUN:  # compiled (or loaded from numba's cache) on first use
            n = kern(*args)
            if (name not in plan.entry and hasattr(kern, "overloads")  # not under DISABLE_JIT
                    and x.flags.num & _FLAGS_OK == _FLAGS_OK):
                # the compiled function itself, without the dispatcher's type matching
                sig = tuple(kern.typeof_pyval(a) for a in args)
                plan.entry[name] = kern.overloads[sig].entry_point
    if n and plan.raise_nan:
        raise _nan_error(plan.f)


#: Arrays below this many elements may be converted by the plain-Python copy of the kernel
#: while it is not compiled (``_kernels.plain``; about 17 us an element on a 2-core EPYC,
#: against about 4 s to compile the kernel).
PLAIN_BELOW = 1 << 15
_PLAIN_TIERS: dict = {}


def _plain_tier(name: str, kern):
    """The plain tier (``_kernels.plain.Tier``) of the serial kernel ``name``."""
    tier = _PLAIN_TIERS.get(name)
    if tier is None:
        from ._kernels.plain import Tier

        tier = _PLAIN_TIERS[name] = Tier(kern, PLAIN_BELOW)
    return tier


# The two hot paths: a small 1-D array calls the compiled kernel directly.
def _encode_f32(x: np.ndarray, plan: _Plan) -> np.ndarray:
    out = np.empty(x.shape, plan.code_dtype)
    ep = plan.entry.get("encode_f32")
    if (ep is not None and x.ndim == 1 and x.size < F32_PARALLEL_THRESHOLD
            and x.flags.num & _FLAGS_OK == _FLAGS_OK):
        if ep(x, plan.fp, plan.mode, plan.ovf, plan.ftz, out) and plan.raise_nan:
            raise _nan_error(plan.f)
    else:
        _run_f32(plan, "encode_f32", x, out)
    return out


def _quantize_f32(x: np.ndarray, plan: _Plan) -> np.ndarray:
    out = np.empty(x.shape, _F32)
    ep = plan.entry.get("quantize_f32")
    if (ep is not None and x.ndim == 1 and x.size < F32_PARALLEL_THRESHOLD
            and x.flags.num & _FLAGS_OK == _FLAGS_OK):
        if ep(x, plan.fp, plan.mode, plan.ovf, plan.ftz, out) and plan.raise_nan:
            raise _nan_error(plan.f)
    else:
        _run_f32(plan, "quantize_f32", x, out)
    return out


def encode(x, fmt, *, rounding="rne", overflow=None, subnormals=True, sr_bits=None,
           seed=None, nan="raise") -> np.ndarray:
    """Round values into a format and return their codes.

    Args:
        x: float16/32/64 array, scalar or list; other numbers go through float64.
            float64 values are rounded from their own bits (no double rounding).
        fmt: a format or format name (see :func:`lowprec.get_format`).
        rounding: "rne" (default), "rna", "rtz", "rup", "rdn", "rto" or "sr"
            (or a :class:`lowprec.Rounding`).
        overflow: "inf" (IEEE; default for float formats), "saturate" (default for
            integer/fixed formats) or "wrap" (integer/fixed only).
        subnormals: False flushes results below the smallest normal to signed zero.
        sr_bits: with rounding="sr": None for exact stochastic rounding, or r in 1..63
            for the hardware form with r random bits.
        seed: integer seed for stochastic rounding (None: fresh randomness). Random
            bits depend on (seed, flat element index) only.
        nan: for formats without a NaN code: "raise" (default), "zero", "max", or
            "ml_dtypes" (a zero of the opposite sign, as ml_dtypes produces).

    Returns:
        Codes with x's shape: uint8 for formats of at most 8 bits, uint16 up to 16,
        uint32 above. NaN codes: IEEE formats give the quiet NaN with the input's sign
        (e.g. 0x7E00 for float16), OCP E4M3 and E8M0 the all-ones code, fnuz formats 0x80.

    Raises:
        ValueError: unknown format/option names, NaN input for a format without NaN
            under ``nan="raise"``, bad ``sr_bits``.
        TypeError: non-numeric input.
    """
    if type(x) is np.ndarray and x.dtype is _F32 and sr_bits is None:
        plan = _fast_plan(fmt, rounding, overflow, subnormals, nan)
        if plan is not None:
            return _encode_f32(x, plan)
    f = get_format(fmt)
    opts = resolve_options(f, rounding, overflow, subnormals, sr_bits, seed, nan)
    out = _encode(_prepare(x), f, opts)
    return out if isinstance(x, np.ndarray) or np.ndim(x) else out[()]


# Below this many elements the serial kernels win: waking numba's thread pool costs more.
PARALLEL_THRESHOLD = 1 << 15


def _encode(inp: "_Input | np.ndarray", f: Format, opts: ConversionOptions) -> np.ndarray:
    from ._kernels import convert as K

    if isinstance(inp, np.ndarray):
        inp = _Input(inp)
    a = inp.hi
    if not f.has_nan and opts.nan is NaNPolicy.RAISE and a.size and np.isnan(a).any():
        raise _nan_error(f)
    out = np.empty(a.size, f.code_dtype)
    exact = dict(inp.big or {})
    if inp.lo is not None and isinstance(f, FloatFormat):
        K.encode_pair_array(_ro(np.ascontiguousarray(a, np.float64).reshape(-1)),
                            _ro(np.ascontiguousarray(inp.lo).reshape(-1)),
                            format_params(f, opts.nan),
                            opts.rounding.id, opts.overflow.id, opts.ftz, opts.key,
                            opts.sr_bits, out)
    else:
        if inp.lo is not None:  # fixed point: the few wide values take the exact path
            flat_lo = inp.lo.reshape(-1)
            flat_hi = a.reshape(-1)
            for i in np.flatnonzero(flat_lo):
                exact[int(i)] = Fraction(float(flat_hi[i])) + Fraction(float(flat_lo[i]))
        _encode_plain(a, f, opts, out)
    if exact:
        for i, v in exact.items():
            out[i] = encode_exact(v, f, opts.rounding, opts.overflow, not opts.ftz,
                                  opts.sr_bits or None, int(opts.key), i, opts.nan)
    return out.reshape(a.shape)


def _encode_plain(a: np.ndarray, f: Format, opts: ConversionOptions, out: np.ndarray) -> None:
    from ._kernels import convert as K

    if a.dtype == _F32 and f32_fast_applies(f, opts.rounding):
        # NaN inputs of formats without NaN were checked by the caller
        _run_f32(_Plan(f, f, opts), "encode_f32", a, out)
        return
    in_m, in_e, in_bias, view = _INPUT_LAYOUT[a.dtype]
    bits = _ro(np.ascontiguousarray(a).reshape(-1).view(view))
    fp = format_params(f, opts.nan)
    big = bits.size >= PARALLEL_THRESHOLD
    if isinstance(f, FloatFormat):
        kern = K.encode_float_array if big else K.encode_float_serial
        kern(bits, in_m, in_e, in_bias, fp, opts.rounding.id, opts.overflow.id, opts.ftz,
             opts.key, opts.sr_bits, out)
    else:
        kern = K.encode_fixed_array if big else K.encode_fixed_serial
        kern(bits, in_m, in_e, in_bias, fp, opts.rounding.id, opts.overflow.id, opts.key,
             opts.sr_bits, out)


@functools.lru_cache(maxsize=None)
def _value_table(fmt: Format, dtype: np.dtype) -> np.ndarray:
    # formats of at most 16 bits decode through a table of every value (the descriptor's
    # own numpy decoder; tests check it against the kernels' decoder code for code)
    t = fmt.values(dtype)
    t.flags.writeable = False
    return t


def _decode_kernel(codes: np.ndarray, fmt: Format) -> np.ndarray:
    from ._kernels import convert as K

    flat = _ro(np.ascontiguousarray(codes).reshape(-1))
    out = np.empty(flat.size, np.float64)
    if isinstance(fmt, FloatFormat):
        kern = K.decode_float_array if flat.size >= PARALLEL_THRESHOLD else K.decode_float_serial
        kern(flat, format_params(fmt), out)
    else:
        K.decode_fixed_array(flat, format_params(fmt), out)
    return out.reshape(codes.shape)


def decode(codes, fmt, dtype=np.float32) -> np.ndarray:
    """Values of codes in a format.

    Args:
        codes: unsigned integer codes (any integer array; only the low ``fmt.bits`` bits
            are used).
        fmt: a format or format name.
        dtype: float16, float32 (default) or float64. Every float format of lowprec
            decodes exactly into float32; wide fixed-point formats need float64.

    Returns:
        Array of values with the shape of ``codes``; NaN codes give NaN.

    Raises:
        TypeError: for non-integer codes.
        ValueError: for an unknown format.
    """
    f = get_format(fmt)
    c = np.asarray(codes)
    if c.dtype.kind not in "ui":
        raise TypeError(f"codes must be integers, got dtype {c.dtype}")
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype must be a float dtype, got {dt}")
    mask = (1 << f.bits) - 1
    if f.bits <= 16:
        idx = (c.astype(np.int64) & mask) if c.dtype.kind == "i" or c.dtype.itemsize > 2 \
            else (c & c.dtype.type(mask))
        return _value_table(f, dt)[idx]
    if f == _FLOAT32 and dt.itemsize >= 4:  # the code is the value: keeps NaN payloads
        return (c.astype(np.uint32) & np.uint32(mask)).view(np.float32).astype(dt)
    cc = c.astype(np.uint64) & np.uint64(mask)
    return _decode_kernel(cc, f).astype(dt, copy=False)


def _fits(fmt: Format, dtype: np.dtype) -> bool:
    """Whether every value of fmt is exactly representable in the float dtype."""
    fi = np.finfo(dtype)
    if isinstance(fmt, FloatFormat):
        return (fmt.precision <= fi.nmant + 1 and fmt.max <= float(fi.max)
                and fmt.min_subnormal >= float(fi.smallest_subnormal))
    return fmt.bits - (1 if fmt.signed else 0) <= fi.nmant + 1 and fmt.resolution >= float(
        fi.smallest_subnormal)


def quantize(x, fmt, *, rounding="rne", overflow=None, subnormals=True, sr_bits=None,
             seed=None, nan="raise") -> np.ndarray:
    """Round values onto a format's grid and return them as floats.

    Same options as :func:`encode`. Equivalent to ``decode(encode(x, ...), fmt)``.

    Returns:
        Values in x's float dtype (float32 or float64; float16 input gives float32 unless
        the format fits in float16; other input gives float64). When the format's values
        do not all fit in float32, float32 input gives float64 output.

    Raises:
        As :func:`encode`.
    """
    if type(x) is np.ndarray and x.dtype is _F32 and sr_bits is None:
        plan = _fast_plan(fmt, rounding, overflow, subnormals, nan)
        if plan is not None and plan.values_f32:
            return _quantize_f32(x, plan)
    f = get_format(fmt)
    inp = _prepare(x)
    opts = resolve_options(f, rounding, overflow, subnormals, sr_bits, seed, nan)
    if (inp.lo is None and inp.big is None and inp.hi.dtype == _F32
            and f32_fast_applies(f, opts.rounding) and _fits(f, _F32)):
        out = np.empty(inp.hi.shape, _F32)
        _run_f32(_Plan(fmt, f, opts), "quantize_f32", inp.hi, out)
        return out[()] if np.ndim(x) == 0 and not isinstance(x, np.ndarray) else out
    codes = _encode(inp, f, opts)
    dt = inp.hi.dtype if inp.lo is None and inp.big is None else np.dtype(np.float64)
    if dt == np.float16 and not _fits(f, dt):
        dt = np.dtype(np.float32)
    if dt == np.float32 and not _fits(f, dt):
        dt = np.dtype(np.float64)
    out = decode(codes, f, dtype=dt)
    if np.ndim(x) == 0 and not isinstance(x, np.ndarray):
        return out[()]
    return out
