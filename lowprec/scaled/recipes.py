"""Which recipe quantizes a pair of element and scale formats.

Decided by the descriptors (never by names), as the table in :mod:`lowprec.scaled` says:

==================  =========================  ========================================
element format      scale format               recipe
==================  =========================  ========================================
float or fixed      power of two (E8M0)        :class:`~.mx.MXRecipe`
float               float32                    :class:`~.float32_scale.Float32ScaleRecipe`
float               any other float            :class:`~.two_level.TwoLevelRecipe`
integer             float32                    :class:`~.integer.IntegerRecipe`
==================  =========================  ========================================
"""

from __future__ import annotations

from ..formats import Format
from .base import ScalingRecipe
from .float32_scale import Float32ScaleRecipe
from .integer import IntegerRecipe
from .mx import MXRecipe
from .two_level import TwoLevelRecipe

__all__ = ["RECIPES", "recipe_for"]

#: Every recipe; for any pair of formats exactly one applies.
RECIPES: tuple[type[ScalingRecipe], ...] = (MXRecipe, Float32ScaleRecipe, TwoLevelRecipe,
                                            IntegerRecipe)


def recipe_for(element: Format, scale: Format) -> ScalingRecipe:
    """The recipe for an element and a scale format.

    Args:
        element: element format descriptor.
        scale: scale format descriptor.

    Returns:
        The recipe, bound to the two formats.

    Raises:
        ValueError: for a pair no recipe can quantize (e.g. integer elements with E4M3
            scales, fixed-point elements with fraction bits and float32 scales).
    """
    (recipe,) = [r for r in RECIPES if r.applies(element, scale)]
    return recipe(element, scale)
