"""Rounding modes and overflow / NaN policies, as enums with stable integer ids.

The string values are what users type (``rounding="rne"``); the integer ids kernels
receive come from :mod:`lowprec.ids`.
"""

from __future__ import annotations

import enum

from . import ids

__all__ = ["Rounding", "Overflow", "NaNPolicy", "parse_rounding", "parse_overflow",
           "parse_nan_policy"]


class Rounding(str, enum.Enum):
    """How a value between two neighbours of a format is rounded.

    RNE: nearest, ties to even. RNA: nearest, ties away from zero. RTZ: toward zero.
    RUP: toward +inf. RDN: toward -inf. RTO: round to odd (truncate, then set the last
    kept bit if anything was discarded). SR: stochastic (up with probability equal to
    the distance from the lower neighbour, in units of the gap).
    """

    RNE = "rne"
    RNA = "rna"
    RTZ = "rtz"
    RUP = "rup"
    RDN = "rdn"
    RTO = "rto"
    SR = "sr"

    @property
    def id(self) -> int:
        """Integer id used by the kernels."""
        return _ROUNDING_IDS[self]


class Overflow(str, enum.Enum):
    """What happens to values beyond a format's range.

    INF: IEEE 754 behaviour: overflow gives +-inf where the format has infinities, NaN
    where it has only NaN, and the largest value where it has neither; directed modes
    never round a finite value past max in the direction they do not round.
    SATURATE: finite overflow and +-inf give +-max (CUDA satfinite, ONNX, torch's e4m3fn).
    WRAP: integer formats only: two's complement wrap-around.
    """

    INF = "inf"
    SATURATE = "saturate"
    WRAP = "wrap"

    @property
    def id(self) -> int:
        """Integer id used by the kernels."""
        return _OVERFLOW_IDS[self]


class NaNPolicy(str, enum.Enum):
    """What NaN inputs become in a format that has no NaN code.

    RAISE (default): ValueError. ZERO: +0. MAX: +max. ML_DTYPES: the code ml_dtypes
    produces (a zero whose sign is the opposite of the NaN's sign bit).
    """

    RAISE = "raise"
    ZERO = "zero"
    MAX = "max"
    ML_DTYPES = "ml_dtypes"

    @property
    def id(self) -> int:
        """Integer id used by the kernels."""
        return _NAN_POLICY_IDS[self]


_ROUNDING_IDS = {m: ids.ROUNDING_NAMES.index(m.value) for m in Rounding}
_OVERFLOW_IDS = {m: ids.OVERFLOW_NAMES.index(m.value) for m in Overflow}
_NAN_POLICY_IDS = {m: ids.NAN_POLICY_NAMES.index(m.value) for m in NaNPolicy}


def _parse(enum_cls, value, what: str):
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        try:
            return enum_cls(value.strip().lower())
        except ValueError:
            pass
    known = ", ".join(repr(m.value) for m in enum_cls)
    raise ValueError(f"unknown {what} {value!r}; expected one of {known}")


def parse_rounding(value: "str | Rounding") -> Rounding:
    """Resolve a rounding mode name or enum member.

    Raises:
        ValueError: for an unknown name.
    """
    return _parse(Rounding, value, "rounding mode")


def parse_overflow(value: "str | Overflow") -> Overflow:
    """Resolve an overflow policy name or enum member.

    Raises:
        ValueError: for an unknown name.
    """
    return _parse(Overflow, value, "overflow policy")


def parse_nan_policy(value: "str | NaNPolicy") -> NaNPolicy:
    """Resolve a NaN policy name or enum member.

    Raises:
        ValueError: for an unknown name.
    """
    return _parse(NaNPolicy, value, "NaN policy")
