"""What a scaling recipe is: the interface every recipe implements.

A recipe is bound to an element format and a scale format. It says which ``scale_rule``
values it takes, checks the arguments of :func:`lowprec.quantize_scaled` that concern it
(:meth:`ScalingRecipe.validate`), and turns the rows of a :class:`~.grouping.Grouping` into
element codes and scales (:meth:`~ScalingRecipe.quantize`) and back
(:meth:`~ScalingRecipe.dequantize`). :mod:`.recipes` picks the recipe for a pair of formats.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from ..formats import FixedFormat, FloatFormat, Format
from .grouping import Grouping

__all__ = ["ScalingRecipe", "Quantized", "OPTIONS", "power_of_two"]

#: Keyword options of :func:`lowprec.quantize_scaled` that only some recipes take:
#: name -> (default, what the option is for). A recipe that does not take an option
#: accepts only its default.
OPTIONS: dict[str, tuple[Any, str]] = {
    "symmetric": (True, "symmetric=False (zero points) is for integer formats"),
    "global_scale": ("auto", "global_scale is for two-level scaling (e.g. nvfp4)"),
    "reciprocal": (True, "reciprocal=False is for two-level scaling (e.g. nvfp4)"),
}


def power_of_two(scale: Format) -> bool:
    """Whether every value of a scale format is a power of two (E8M0: no mantissa bits)."""
    return isinstance(scale, FloatFormat) and scale.man_bits == 0


@dataclass
class Quantized:
    """What a recipe's :meth:`~ScalingRecipe.quantize` returns (the fields of
    :class:`~lowprec.scaled.ScaledTensor` that depend on the recipe).

    Attributes:
        codes: element codes, shape of the input.
        scales: float64 dequantization scales, in the grouping's ``scale_shape``.
        zero_point: int64 zero points like ``scales``, or None.
        global_scale: the float32 tensor scale of two-level scaling, or None.
        quant_multiplier: the float32 factor elements were multiplied by, like ``scales``,
            or None.
    """

    codes: np.ndarray
    scales: np.ndarray
    zero_point: Optional[np.ndarray] = None
    global_scale: Optional[float] = None
    quant_multiplier: Optional[np.ndarray] = None


class ScalingRecipe(abc.ABC):
    """One way of deriving scales and casting elements, for one element and scale format.

    Args:
        element: element format.
        scale: scale format.

    Raises:
        ValueError: when the recipe cannot use this pair of formats (subclasses check).
    """

    #: The ``scale_rule`` values the recipe takes; the first is the default.
    scale_rules: ClassVar[tuple[str, ...]]
    #: The names in :data:`OPTIONS` the recipe takes.
    options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, element: Format, scale: Format) -> None:
        self.element = element
        self.scale = scale

    @classmethod
    @abc.abstractmethod
    def applies(cls, element: Format, scale: Format) -> bool:
        """Whether this is the recipe for an element and a scale format (exactly one recipe
        applies to any pair)."""

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """Name of the result when no named block format was asked for."""

    def validate(self, scale_rule: Optional[str] = None, saturate=True,
                 **options) -> dict[str, Any]:
        """Check the recipe's arguments of :func:`lowprec.quantize_scaled`.

        Args:
            scale_rule: one of :attr:`scale_rules`, or None for the default.
            saturate: True or False; element formats without infinities (fixed point)
                always saturate.
            **options: the values given for the names in :data:`OPTIONS`.

        Returns:
            The keyword arguments of :meth:`quantize`: ``scale_rule``, ``saturate`` and the
            recipe's own options.

        Raises:
            ValueError: for a rule the recipe does not take, ``saturate=False`` with
                fixed-point elements, or an option the recipe does not take set to anything
                but its default.
            TypeError: for a non-boolean ``saturate`` or boolean option.
        """
        rule = self.scale_rules[0] if scale_rule is None else str(scale_rule).lower()
        if rule not in self.scale_rules:
            raise ValueError(f"scale_rule for {self.element.name} elements with "
                             f"{self.scale.name} scales must be one of {self.scale_rules}, got "
                             f"{scale_rule!r}")
        if not isinstance(saturate, (bool, np.bool_)):
            raise TypeError(f"saturate must be True or False, got {saturate!r}")
        if isinstance(self.element, FixedFormat) and not saturate:
            raise ValueError(f"{self.element.name} elements always saturate (clamp to "
                             f"[{self.element.min:g}, {self.element.max:g}]); saturate=False "
                             f"is not supported")
        own = {}
        for name, value in options.items():
            default, purpose = OPTIONS[name]
            if isinstance(default, bool) and not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
            if name in self.options:
                own[name] = value
                continue
            same = bool(value) == default if isinstance(default, bool) else \
                isinstance(value, str) and value == default
            if not same:
                raise ValueError(f"{purpose}, not {self.element.name} with {self.scale.name} "
                                 f"scales")
        return dict(scale_rule=rule, saturate=bool(saturate), **own)

    @abc.abstractmethod
    def quantize(self, a: np.ndarray, grouping: Grouping, *, scale_rule: str, saturate: bool,
                 rounding, seed, **options) -> Quantized:
        """Element codes and scales of a real array.

        Args:
            a: float16/32/64 array.
            grouping: its scaling groups.
            scale_rule: as validated.
            saturate: as validated.
            rounding: element rounding mode (as :func:`lowprec.encode`).
            seed: seed for stochastic rounding.
            **options: the recipe's own options, as :meth:`validate` returns them.

        Returns:
            A :class:`Quantized`.
        """

    @abc.abstractmethod
    def dequantize(self, values: np.ndarray, scales: np.ndarray, *,
                   zero_point: Optional[np.ndarray] = None,
                   global_scale: Optional[float] = None) -> np.ndarray:
        """Values represented by element values and their scales.

        Args:
            values: float64 element values, one per element.
            scales: float64 scales, one per element (NaN for a block that held NaN/inf).
            zero_point: float64 zero points, one per element, or None.
            global_scale: the tensor scale of two-level scaling, or None.

        Returns:
            float64 or float32 array, the caller casts it once more to the dtype asked for.
        """
