"""Operands that carry their format: the protocol the numerics and LPArray share.

:func:`lowprec.add`, :func:`lowprec.matmul` and friends accept arrays of codes that know
their format (and, for LPArray, a rounding context) and hand back the same kind of array.
This module holds what that needs, below the numerics: the :class:`CodedArray` protocol,
which :class:`lowprec.LPArray` implements, the :class:`RoundingContext` such arrays carry,
and :func:`make_array`, which builds a result of the operands' kind without the numerics
importing the array type. The package root registers LPArray as the kind made when no
operand names one (``matmul(x, y, out="bf16")`` on plain numpy arrays).
"""

from __future__ import annotations

import abc
from typing import Optional

import numpy as np

from .formats import FloatFormat, Format, get_format
from .quantize import decode, encode, seed_key
from .rounding import parse_nan_policy, parse_overflow, parse_rounding

__all__ = ["CodedArray", "Coded", "RoundingContext", "make_array", "register_array_class",
           "coded_values", "encode_with_context"]

_MASK64 = (1 << 64) - 1


class RoundingContext:
    """How an array's arithmetic rounds: the options of :func:`lowprec.add` plus an SR
    generator.

    Attributes: ``rounding`` (str), ``overflow`` (str or None: the format's default),
    ``subnormals`` (False: flush subnormal results), ``daz`` (flush subnormal operands),
    ``sr_bits``, ``seed`` (None: fresh randomness each time), ``nan`` (policy for formats
    without NaN).
    """

    __slots__ = ("rounding", "overflow", "subnormals", "daz", "sr_bits", "seed", "nan",
                 "_count")

    def __init__(self, rounding="rne", overflow=None, subnormals=True, daz=False,
                 sr_bits=None, seed=None, nan="raise"):
        self.rounding = parse_rounding(rounding).value
        self.overflow = None if overflow is None else parse_overflow(overflow).value
        if not isinstance(subnormals, (bool, np.bool_)):
            raise TypeError(f"subnormals must be True or False, got {subnormals!r}")
        if not isinstance(daz, (bool, np.bool_)):
            raise TypeError(f"daz must be True or False, got {daz!r}")
        self.subnormals = bool(subnormals)
        self.daz = bool(daz)
        self.sr_bits = sr_bits
        if seed is not None:
            seed_key(seed)  # validates the type
        self.seed = seed
        self.nan = parse_nan_policy(nan).value
        self._count = 0

    def next_seed(self) -> Optional[int]:
        """Seed for the next stochastically rounded operation (None without a seed)."""
        if self.seed is None:
            return None
        self._count += 1
        return (seed_key(self.seed) + self._count) & _MASK64

    def replace(self, **changes) -> "RoundingContext":
        """A new context with some options changed (and a fresh generator counter)."""
        kw = {k: getattr(self, k) for k in ("rounding", "overflow", "subnormals", "daz",
                                            "sr_bits", "seed", "nan")}
        kw.update({k: v for k, v in changes.items() if v is not None})
        return RoundingContext(**kw)

    def describe(self) -> str:
        """The options that differ from the defaults, as ``key=value`` text."""
        parts = []
        if self.rounding != "rne":
            parts.append(f"rounding={self.rounding!r}")
        if self.sr_bits is not None:
            parts.append(f"sr_bits={self.sr_bits}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        if self.overflow is not None:
            parts.append(f"overflow={self.overflow!r}")
        if not self.subnormals:
            parts.append("subnormals=False")
        if self.daz:
            parts.append("daz=True")
        return ", ".join(parts)

    _describe = describe

    def __repr__(self) -> str:
        return f"RoundingContext({self.describe()})"


class CodedArray(abc.ABC):
    """Values held as codes of one format, optionally with a rounding context.

    Implemented by :class:`lowprec.LPArray`. The numerics read ``codes``, ``fmt`` and
    ``context`` and build results with :meth:`_from_codes` of the operand's own class.
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def codes(self) -> np.ndarray:
        """The codes (unsigned integers of the format's code dtype)."""

    @property
    @abc.abstractmethod
    def fmt(self) -> Format:
        """The format of the codes."""

    @property
    def context(self) -> Optional[RoundingContext]:
        """The rounding context arithmetic on these values uses (None: the defaults)."""
        return None

    @classmethod
    @abc.abstractmethod
    def _from_codes(cls, codes: np.ndarray, fmt: Format, ctx: Optional[RoundingContext]):
        """An array of this class holding ``codes`` of ``fmt`` with context ``ctx``."""


class Coded(CodedArray):
    """Bare codes with their format: an operand that is not rounded again (no context).

    Args:
        codes: integer codes of ``fmt``.
        fmt: a format or name.
    """

    __slots__ = ("_codes", "_fmt")

    def __init__(self, codes, fmt) -> None:
        self._codes = np.asarray(codes)
        self._fmt = get_format(fmt)

    @property
    def codes(self) -> np.ndarray:
        return self._codes

    @property
    def fmt(self) -> Format:
        return self._fmt

    @property
    def T(self) -> "Coded":
        """The transpose."""
        return Coded(self._codes.T, self._fmt)

    @classmethod
    def _from_codes(cls, codes, fmt, ctx):
        return cls(codes, fmt)


_ARRAY_CLASS: list = []


def register_array_class(cls: type) -> None:
    """Set the class results are made of when no operand is a :class:`CodedArray` with a
    class of its own (the package root registers :class:`lowprec.LPArray`)."""
    if not (isinstance(cls, type) and issubclass(cls, CodedArray)):
        raise TypeError(f"expected a CodedArray subclass, got {cls!r}")
    _ARRAY_CLASS[:] = [cls]


def make_array(codes: np.ndarray, fmt: Format, ctx: Optional[RoundingContext],
               like=()) -> CodedArray:
    """A result array of the first operand's class among ``like`` that has one of its own
    (not bare :class:`Coded`), else of the registered class.

    Raises:
        RuntimeError: when no class is registered and no operand names one.
    """
    for x in like:
        if isinstance(x, CodedArray) and type(x) is not Coded:
            return type(x)._from_codes(codes, fmt, ctx)
    if not _ARRAY_CLASS:
        raise RuntimeError("no array class is registered (import lowprec first)")
    return _ARRAY_CLASS[0]._from_codes(codes, fmt, ctx)


def coded_values(x: CodedArray, dtype=np.float64) -> np.ndarray:
    """The values of a coded operand."""
    return decode(np.asarray(x.codes), x.fmt, dtype=dtype)


def encode_with_context(vals, f: Format, ctx: RoundingContext) -> np.ndarray:
    """Codes of ``vals`` rounded into ``f`` as ``ctx`` says (its next SR seed included)."""
    seed = ctx.next_seed() if ctx.rounding == "sr" else None
    kw = {} if isinstance(f, FloatFormat) and f.has_nan else {"nan": ctx.nan}
    return encode(vals, f, rounding=ctx.rounding, overflow=ctx.overflow,
                  subnormals=ctx.subnormals, sr_bits=ctx.sr_bits, seed=seed, **kw)
