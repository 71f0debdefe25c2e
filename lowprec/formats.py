"""Format descriptors: what a number format is, as plain data.

Every float format in lowprec is one :class:`FloatFormat` instance; integer and
fixed-point formats are :class:`IntFormat` and :class:`FixedFormat`. Kernels never
see these objects: :mod:`lowprec.quantize` unpacks them into scalar parameters.
Adding a format is one line in :data:`_NAMED` below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Union

import numpy as np

from . import ids
from .rounding import NaNPolicy, parse_nan_policy

__all__ = [
    "FloatFormat",
    "IntFormat",
    "FixedFormat",
    "Format",
    "get_format",
    "list_formats",
    "aliases",
    "NAN_ENCODINGS",
    # the named formats
    "float32", "tfloat32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3", "float8_e3m4", "float6_e3m2fn",
    "float6_e2m3fn", "float4_e2m1fn", "float8_e8m0fnu", "int8", "uint8", "int4", "int16",
    "int32",
]

#: How a float format encodes NaN:
#: ``"ieee"``: exponent all ones and a non-zero mantissa (so the all-ones exponent with a
#: zero mantissa is infinity); ``"all_ones"``: only the code with every non-sign bit set
#: (OCP E4M3, E8M0); ``"neg_zero"``: only the code 1000...0 that would be -0 (the "fnuz"
#: formats, which therefore have no -0); ``"none"``: no NaN at all (MX FP6/FP4).
NAN_ENCODINGS = ids.NAN_ENCODINGS


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format, fully described by a few numbers.

    Value of a normal code: ``(-1)^s * 2^(E - bias) * 1.m``; of a subnormal code
    (exponent field 0): ``(-1)^s * 2^(1 - bias) * 0.m``.

    Args:
        exp_bits: width of the exponent field.
        man_bits: width of the stored mantissa (fraction) field.
        bias: exponent bias.
        has_inf: whether the all-ones exponent with a zero mantissa is infinity
            (only with ``nan="ieee"``).
        nan: NaN encoding, one of :data:`NAN_ENCODINGS`.
        subnormals: whether exponent field 0 holds subnormals (``False``: it holds only
            zero, and the smallest normal is the smallest non-zero value).
        signed: whether there is a sign bit.
        zero: whether the format has a zero. ``False`` (E8M0) makes exponent field 0
            an ordinary binade.
        name: display name; derived from the numbers when omitted. Names do not take
            part in equality: two descriptors with the same numbers are the same format.

    Raises:
        ValueError: for inconsistent parameters.
    """

    exp_bits: int
    man_bits: int
    bias: int
    has_inf: bool = True
    nan: str = "ieee"
    subnormals: bool = True
    signed: bool = True
    zero: bool = True
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for arg in ("exp_bits", "man_bits", "bias"):
            _check_int(self, arg)
        for arg in ("has_inf", "subnormals", "signed", "zero"):
            _check_bool(self, arg)
        if not isinstance(self.nan, str):
            raise TypeError(f"FloatFormat nan must be one of {NAN_ENCODINGS}, got {self.nan!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"FloatFormat name must be a string, got {self.name!r}")
        if self.exp_bits < 1 or self.man_bits < 0:
            raise ValueError(f"FloatFormat needs exp_bits >= 1 and man_bits >= 0, got "
                             f"exp_bits={self.exp_bits}, man_bits={self.man_bits}")
        if self.bits > 32 or self.man_bits > 23:
            raise ValueError(f"FloatFormat supports up to 32 bits and 23 mantissa bits "
                             f"(float32's), got {self.bits} bits / {self.man_bits} mantissa bits")
        if self.nan not in NAN_ENCODINGS:
            raise ValueError(f"nan must be one of {NAN_ENCODINGS}, got {self.nan!r}")
        if self.has_inf and self.nan != "ieee":
            raise ValueError("infinities need the IEEE layout (nan='ieee')")
        if self.nan == "ieee" and self.man_bits == 0:
            raise ValueError("nan='ieee' needs at least one mantissa bit")
        if self.nan == "neg_zero" and not self.signed:
            raise ValueError("nan='neg_zero' needs a sign bit")
        if not self.zero and (self.subnormals or self.signed):
            raise ValueError("a format without zero must be unsigned and have no subnormals")
        if self.emax < self.emin:
            raise ValueError("format has no normal binade")
        # every value, subnormals included, must be a normal float64, so that products and
        # error-free transformations stay exact
        if self.emax > 1000 or self.emin - self.man_bits < -1000:
            raise ValueError(f"FloatFormat with exp_bits={self.exp_bits}, bias={self.bias} "
                             f"spans 2^{self.emin - self.man_bits} .. 2^{self.emax + 1}; lowprec "
                             f"supports formats within 2^-1000 .. 2^1000 (bias in "
                             f"{self.max_exp_field - 1000} .. {1000 + (1 if self.zero else 0) - self.man_bits})")
        if not self.name:
            object.__setattr__(self, "name", _derived_name(self))

    # --- layout -----------------------------------------------------------------
    @property
    def bits(self) -> int:
        """Total width in bits."""
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def precision(self) -> int:
        """Significand precision p in bits, the implicit bit included."""
        return self.man_bits + 1

    @property
    def max_exp_field(self) -> int:
        """Largest exponent field value that holds finite numbers."""
        top = (1 << self.exp_bits) - 1
        if self.nan == "ieee" or (self.nan == "all_ones" and self.man_bits == 0):
            return top - 1
        return top

    @property
    def max_significand(self) -> int:
        """Integer significand (implicit bit included) of the largest finite value."""
        full = (1 << (self.man_bits + 1)) - 1
        if self.nan == "all_ones" and self.man_bits > 0:
            return full - 1
        return full

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest binade."""
        return self.max_exp_field - self.bias

    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal binade."""
        return (1 if self.zero else 0) - self.bias

    # --- values -----------------------------------------------------------------
    @property
    def max(self) -> float:
        """Largest finite value."""
        return float(self.max_exact)

    @property
    def max_exact(self) -> Fraction:
        """Largest finite value as an exact fraction."""
        return Fraction(self.max_significand) * Fraction(2) ** (self.emax - self.man_bits)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value, 2^emin."""
        return 2.0 ** self.emin

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (the smallest normal when there are no subnormals)."""
        if self.subnormals:
            return 2.0 ** (self.emin - self.man_bits)
        return self.min_normal

    @property
    def eps(self) -> float:
        """Distance from 1 to the next larger value, 2^-man_bits."""
        return 2.0 ** -self.man_bits

    @property
    def has_nan(self) -> bool:
        """Whether any code is NaN."""
        return self.nan != "none"

    @property
    def code_dtype(self) -> np.dtype:
        """Unsigned integer dtype that holds one code (uint8, uint16 or uint32)."""
        return _code_dtype(self.bits)

    # --- code facts (what the kernels and the references need to know) -----------
    @property
    def nan_id(self) -> int:
        """The NaN encoding as a kernel id (:data:`lowprec.ids.NAN_IEEE` ...)."""
        return NAN_ENCODINGS.index(self.nan)

    @property
    def sign_bit(self) -> int:
        """Value of the sign bit in a code (0 for unsigned formats)."""
        return (1 << (self.bits - 1)) if self.signed else 0

    @property
    def exp_mask(self) -> int:
        """All-ones exponent field, ``(1 << exp_bits) - 1``."""
        return (1 << self.exp_bits) - 1

    @property
    def man_mask(self) -> int:
        """All-ones mantissa field, ``(1 << man_bits) - 1``."""
        return (1 << self.man_bits) - 1

    @property
    def max_code(self) -> int:
        """Code of the largest finite value (+max)."""
        return ((self.emax + self.bias) << self.man_bits) | (self.max_significand
                                                             - (1 << self.man_bits))

    @property
    def inf_code(self) -> Optional[int]:
        """Code of +inf, or None when the format has no infinity."""
        return (self.exp_mask << self.man_bits) if self.has_inf else None

    @property
    def nan_code(self) -> Optional[int]:
        """The canonical NaN code (positive sign where there is a choice), or None."""
        if self.nan == "ieee":
            return (self.exp_mask << self.man_bits) | (1 << (self.man_bits - 1))
        if self.nan == "all_ones":
            return (self.exp_mask << self.man_bits) | self.man_mask
        if self.nan == "neg_zero":
            return self.sign_bit
        return None

    @property
    def neg_zero_code(self) -> Optional[int]:
        """Code of -0, or None when the format has none (unsigned, fnuz, no zero)."""
        if not (self.signed and self.zero) or self.nan == "neg_zero":
            return None
        return self.sign_bit

    def is_nan_code(self, codes):
        """Whether codes (an int or an integer array) are NaN codes of this format."""
        c = np.asarray(codes).astype(np.int64) & ((1 << self.bits) - 1)
        mag = c & ~self.sign_bit
        if self.nan == "ieee":
            res = mag > self.inf_code
        elif self.nan == "all_ones":
            res = mag == self.nan_code
        elif self.nan == "neg_zero":
            res = c == self.nan_code
        else:
            res = np.zeros(c.shape, bool)
        return bool(res) if np.ndim(res) == 0 else res

    def nan_code_for(self, negative: bool, policy: "str | NaNPolicy" = "raise") -> int:
        """The code a NaN input with the given sign becomes.

        Formats with NaN give their NaN code (with the sign where the encoding has one);
        formats without NaN follow ``policy``: "zero" (+0), "max" (+max), "ml_dtypes" (a
        zero of the opposite sign, as ml_dtypes gives) or "raise" (+0 here; the public
        functions raise before any code is produced).
        """
        if self.nan_code is not None:
            return self.nan_code | (self.sign_bit if negative and self.nan != "neg_zero" else 0)
        pol = parse_nan_policy(policy)
        if pol is NaNPolicy.MAX:
            return self.max_code
        if pol is NaNPolicy.ML_DTYPES and not negative and self.neg_zero_code is not None:
            return self.neg_zero_code
        return 0

    def decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """float64 values of integer codes (any width up to 32 bits), in numpy.

        The plain-array twin of the kernels' decoder: :func:`lowprec.decode` uses it for
        formats of at most 16 bits (as a table) and the kernels for wider ones; a test
        checks that the two agree on every code.
        """
        c = np.asarray(codes).astype(np.int64) & ((1 << self.bits) - 1)
        neg = (c & self.sign_bit) != 0 if self.signed else np.zeros(c.shape, bool)
        mag = c & ~self.sign_bit if self.signed else c
        ef = mag >> self.man_bits
        mf = (mag & self.man_mask).astype(np.float64)
        one = float(1 << self.man_bits)
        if self.zero:
            sub = ef == 0
            low = np.ldexp(mf, self.emin - self.man_bits) if self.subnormals else 0.0 * mf
            v = np.where(sub, low, np.ldexp(mf + one, np.where(sub, 1, ef) - self.bias
                                             - self.man_bits))
        else:  # no zero (E8M0): exponent field 0 is an ordinary binade
            v = np.ldexp(mf + one, ef - self.bias - self.man_bits)
        if self.has_inf:
            v = np.where(mag == self.inf_code, np.inf, v)
        nan = self.is_nan_code(c)
        return np.where(nan, np.nan, np.where(neg, -v, v))

    def values(self, dtype=np.float64) -> np.ndarray:
        """All values, indexed by code (formats of at most 16 bits).

        Returns:
            Array of length 2**bits; NaN codes give NaN.

        Raises:
            ValueError: for formats wider than 16 bits.
        """
        return self.decode_codes(self.codes()).astype(dtype)

    def codes(self) -> np.ndarray:
        """Every code of the format, in increasing order (formats of at most 16 bits).

        Raises:
            ValueError: for formats wider than 16 bits.
        """
        if self.bits > 16:
            raise ValueError(f"{self.name} has {self.bits} bits; enumeration is for formats "
                             f"of at most 16 bits")
        return np.arange(1 << self.bits, dtype=np.uint32).astype(self.code_dtype)

    def __repr__(self) -> str:
        return (f"FloatFormat({self.name!r}: e{self.exp_bits}m{self.man_bits} bias={self.bias}"
                f" max={self.max:g} inf={self.has_inf} nan={self.nan!r})")


@dataclass(frozen=True)
class FixedFormat:
    """A fixed-point format <IL, FL> (Gupta et al. 2015), saturating by default.

    A signed format has word length ``int_bits + frac_bits`` (the sign bit counts
    among the integer bits), resolution 2^-FL and range
    [-2^(IL-1), 2^(IL-1) - 2^-FL]. Codes are two's complement words.

    Args:
        int_bits: integer bits IL (including the sign bit when signed).
        frac_bits: fraction bits FL (may be negative for coarse grids).
        signed: two's complement when True, plain binary otherwise.
        name: display name; derived when omitted; not part of equality.

    Raises:
        ValueError: for word lengths outside 1..32.
    """

    int_bits: int
    frac_bits: int
    signed: bool = True
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_int(self, "int_bits")
        _check_int(self, "frac_bits")
        _check_bool(self, "signed")
        if not isinstance(self.name, str):
            raise TypeError(f"{type(self).__name__} name must be a string, got {self.name!r}")
        if not -1000 <= self.frac_bits <= 1000:
            raise ValueError(f"fixed-point frac_bits must be in -1000..1000, got {self.frac_bits}")
        if not 1 <= self.bits <= 32:
            raise ValueError(f"fixed-point word length must be 1..32 bits, got {self.bits}")
        if self.signed and self.int_bits < 1:
            raise ValueError("a signed fixed-point format needs int_bits >= 1 (the sign bit)")
        if not self.name:
            s = "" if self.signed else "u"
            object.__setattr__(self, "name", f"{s}fixed{self.int_bits}_{self.frac_bits}")

    @property
    def bits(self) -> int:
        """Word length in bits."""
        return self.int_bits + self.frac_bits

    @property
    def min_int(self) -> int:
        """Smallest integer code value (two's complement)."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        """Largest integer code value."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def resolution(self) -> float:
        """Distance between neighbouring values, 2^-frac_bits."""
        return 2.0 ** -self.frac_bits

    @property
    def max(self) -> float:
        """Largest value."""
        return self.max_int * self.resolution

    @property
    def min(self) -> float:
        """Smallest (most negative) value."""
        return self.min_int * self.resolution

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (the resolution)."""
        return self.resolution

    min_normal = min_subnormal
    eps = resolution

    @property
    def has_inf(self) -> bool:  # noqa: D401 - uniform interface with FloatFormat
        """Fixed-point formats have no infinities."""
        return False

    @property
    def has_nan(self) -> bool:
        """Fixed-point formats have no NaN."""
        return False

    @property
    def code_dtype(self) -> np.dtype:
        """Unsigned integer dtype that holds one code."""
        return _code_dtype(self.bits)

    def codes(self) -> np.ndarray:
        """Every code (formats of at most 16 bits), in code order."""
        if self.bits > 16:
            raise ValueError(f"{self.name} has {self.bits} bits; enumeration is for formats "
                             f"of at most 16 bits")
        return np.arange(1 << self.bits, dtype=np.uint32).astype(self.code_dtype)

    @property
    def word_mask(self) -> int:
        """All-ones word, ``(1 << bits) - 1``."""
        return (1 << self.bits) - 1

    @property
    def max_code(self) -> int:
        """Code (word) of the largest value."""
        return self.max_int & self.word_mask

    @property
    def min_code(self) -> int:
        """Code (two's complement word) of the smallest value."""
        return self.min_int & self.word_mask

    def nan_code_for(self, negative: bool, policy: "str | NaNPolicy" = "raise") -> int:
        """The word a NaN input becomes: +max under "max", 0 otherwise (fixed point has
        no NaN; "raise" is checked by the public functions before any code is produced)."""
        return self.max_code if parse_nan_policy(policy) is NaNPolicy.MAX else 0

    def decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """float64 values of words (two's complement when signed), in numpy."""
        v = np.asarray(codes).astype(np.int64) & self.word_mask
        if self.signed:
            v = np.where(v >= (1 << (self.bits - 1)), v - (1 << self.bits), v)
        return np.ldexp(v.astype(np.float64), -self.frac_bits)

    def values(self, dtype=np.float64) -> np.ndarray:
        """All values, indexed by code (formats of at most 16 bits)."""
        return self.decode_codes(self.codes()).astype(dtype)


class IntFormat(FixedFormat):
    """An integer format: fixed point with no fraction bits.

    Args:
        bits: word length.
        signed: two's complement when True.
    """

    def __init__(self, bits: int, signed: bool = True, name: str = "") -> None:
        if not name:
            name = f"{'' if signed else 'u'}int{bits}"
        super().__init__(int_bits=bits, frac_bits=0, signed=signed, name=name)

    def __repr__(self) -> str:
        return f"IntFormat({self.name!r}: [{self.min_int}, {self.max_int}])"


Format = Union[FloatFormat, FixedFormat]


def _check_int(obj, arg: str) -> None:
    v = getattr(obj, arg)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{type(obj).__name__} {arg} must be an int, got {v!r}")
    object.__setattr__(obj, arg, int(v))


def _check_bool(obj, arg: str) -> None:
    v = getattr(obj, arg)
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{type(obj).__name__} {arg} must be True or False, got {v!r}")
    object.__setattr__(obj, arg, bool(v))


def _code_dtype(bits: int) -> np.dtype:
    if bits <= 8:
        return np.dtype(np.uint8)
    if bits <= 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _derived_name(f: FloatFormat) -> str:
    suffix = ""
    if not f.has_inf:
        suffix += "fn"
    if f.nan == "neg_zero":
        suffix += "uz"
    if not f.signed:
        suffix += "u"
    return f"float{f.bits}_e{f.exp_bits}m{f.man_bits}{suffix}"


# The named formats, one line each. Sources: REFERENCE.md sec. 1, OCP OFP8 rev 1.0, OCP MX
# v1.0, ml_dtypes.
float32 = FloatFormat(8, 23, 127, name="float32")
tfloat32 = FloatFormat(8, 10, 127, name="tfloat32")
float16 = FloatFormat(5, 10, 15, name="float16")
bfloat16 = FloatFormat(8, 7, 127, name="bfloat16")
float8_e4m3fn = FloatFormat(4, 3, 7, has_inf=False, nan="all_ones", name="float8_e4m3fn")
float8_e5m2 = FloatFormat(5, 2, 15, name="float8_e5m2")
float8_e4m3fnuz = FloatFormat(4, 3, 8, has_inf=False, nan="neg_zero", name="float8_e4m3fnuz")
float8_e5m2fnuz = FloatFormat(5, 2, 16, has_inf=False, nan="neg_zero", name="float8_e5m2fnuz")
# ml_dtypes' IEEE-like 8-bit formats (with infinities); not the OCP E4M3.
float8_e4m3 = FloatFormat(4, 3, 7, name="float8_e4m3")
float8_e3m4 = FloatFormat(3, 4, 3, name="float8_e3m4")
float6_e3m2fn = FloatFormat(3, 2, 3, has_inf=False, nan="none", name="float6_e3m2fn")
float6_e2m3fn = FloatFormat(2, 3, 1, has_inf=False, nan="none", name="float6_e2m3fn")
float4_e2m1fn = FloatFormat(2, 1, 1, has_inf=False, nan="none", name="float4_e2m1fn")
float8_e8m0fnu = FloatFormat(8, 0, 127, has_inf=False, nan="all_ones", subnormals=False,
                             signed=False, zero=False, name="float8_e8m0fnu")
int8 = IntFormat(8)
uint8 = IntFormat(8, signed=False)
int4 = IntFormat(4)
int16 = IntFormat(16)
int32 = IntFormat(32)

# Registry order and aliases.
_NAMED: list[tuple[FloatFormat | FixedFormat, tuple[str, ...]]] = [
    (float32, ("fp32", "binary32", "single", "float")),
    (tfloat32, ("tf32",)),
    (float16, ("fp16", "half", "binary16")),
    (bfloat16, ("bf16",)),
    (float8_e4m3fn, ("fp8_e4m3", "e4m3", "e4m3fn", "fp8_e4m3fn")),
    (float8_e5m2, ("fp8_e5m2", "e5m2")),
    (float8_e4m3fnuz, ("e4m3fnuz", "fp8_e4m3fnuz")),
    (float8_e5m2fnuz, ("e5m2fnuz", "fp8_e5m2fnuz")),
    (float8_e4m3, ("e4m3_ieee",)),
    (float8_e3m4, ("e3m4",)),
    (float6_e3m2fn, ("fp6_e3m2", "e3m2", "mxfp6_e3m2")),
    (float6_e2m3fn, ("fp6_e2m3", "e2m3", "mxfp6_e2m3")),
    (float4_e2m1fn, ("fp4", "fp4_e2m1", "e2m1", "mxfp4")),
    (float8_e8m0fnu, ("e8m0", "ue8m0", "e8m0fnu")),
    (int8, ("i8",)),
    (uint8, ("u8",)),
    (int4, ("i4",)),
    (int16, ("i16",)),
    (int32, ("i32",)),
]

_REGISTRY: dict[str, FloatFormat | FixedFormat] = {}
_ALIASES: dict[str, str] = {}
for _fmt, _aliases in _NAMED:
    _REGISTRY[_fmt.name] = _fmt
    for _a in _aliases:
        _ALIASES[_a] = _fmt.name

_FIXED_PREFIXES = ("fixed", "ufixed")


def aliases(fmt: "str | Format") -> tuple[str, ...]:
    """The registry's aliases of a named format, in registry order (empty for unnamed ones).

    Raises:
        ValueError: for an unknown name.
    """
    name = get_format(fmt).name
    return tuple(a for a, n in _ALIASES.items() if n == name)


def list_formats() -> list[FloatFormat | FixedFormat]:
    """All named formats, in registry order."""
    return list(_REGISTRY.values())


def get_format(name: "str | Format | np.dtype | type") -> Format:
    """Resolve a format name, alias, numpy/ml_dtypes dtype, or descriptor.

    Names are case-insensitive. Besides the registry names and aliases, ``"fixedI_F"``
    and ``"ufixedI_F"`` name fixed-point formats with I integer and F fraction bits.

    Args:
        name: e.g. ``"bf16"``, ``"float8_e4m3fn"``, ``"e2m1"``, ``np.float16``, or a format.

    Returns:
        The format descriptor.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
        TypeError: for an argument that is neither a name, a dtype nor a format.
    """
    if isinstance(name, (FloatFormat, FixedFormat)):
        return name
    if name is None:
        raise TypeError("expected a format name, dtype or descriptor, got None")
    if not isinstance(name, str):
        try:
            name = np.dtype(name).name
        except TypeError:
            raise TypeError(f"expected a format name or descriptor, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    for prefix in _FIXED_PREFIXES:
        if key.startswith(prefix):
            parts = key[len(prefix):].split("_")
            if len(parts) == 2 and all(p.lstrip("-").isdigit() for p in parts):
                return FixedFormat(int(parts[0]), int(parts[1]), signed=(prefix == "fixed"))
    raise ValueError(f"unknown format {name!r}; known formats: {', '.join(_REGISTRY)}; "
                     f"aliases: {', '.join(sorted(_ALIASES))}; and fixedI_F / ufixedI_F "
                     f"for fixed point")
