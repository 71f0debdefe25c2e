"""float32 scales for float elements: fp8 "current scaling" as Transformer Engine.

One float32 multiplier per group, ``fmt.max / amax`` (:func:`fp8_scale`); elements are
``fmt(fp32(x * scale))`` and the stored dequantization scale is ``fp32(1 / scale)``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..formats import FloatFormat, Format, float32, get_format
from ..quantize import encode
from .base import Quantized, ScalingRecipe
from .grouping import Grouping, group_amax

__all__ = ["Float32ScaleRecipe", "fp8_scale"]

_MAX32 = float(np.finfo(np.float32).max)


def fp8_scale(amax, fmt="float8_e4m3fn", *, pow2: bool = False) -> np.ndarray:
    """Transformer Engine's quantization multiplier for a float8 (or any float) format.

    ``compute_scale_from_amax`` (transformer_engine/common/recipe/recipe_common.cuh):
    scale = fp32(fmt.max / amax); 1 when amax is 0, infinite or NaN; float32 max when the
    quotient overflows; with ``pow2`` the scale is truncated to a power of two (mantissa bits
    cleared). Elements are then cast as ``fmt(fp32(x * scale))`` and dequantized with
    ``fp32(1 / scale)``.

    Args:
        amax: float32-representable amax value(s) (converted to float32); a magnitude,
            so its sign is ignored.
        fmt: element format.
        pow2: power-of-two scales.

    Returns:
        float32 array of multipliers (shape of ``amax``).

    Raises:
        ValueError: for an unknown format name.
    """
    f = get_format(fmt)
    am = np.abs(np.asarray(amax, dtype=np.float32))  # amax is a magnitude
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.float32(f.max) / am
    s = np.where(np.isinf(s), np.float32(_MAX32), s)
    s = np.where(np.isnan(s) | np.isinf(am) | (am == 0), np.float32(1), s).astype(np.float32)
    if pow2:
        s = (s.view(np.uint32) & np.uint32(0xFF800000)).view(np.float32)
    return s


class Float32ScaleRecipe(ScalingRecipe):
    """Float elements with float32 scales (per tensor, channel or block).

    Scale rules: "amax" (default: :func:`fp8_scale`) or "pow2" (Transformer Engine
    ``force_pow_2_scales``).
    """

    scale_rules = ("amax", "pow2")

    @classmethod
    def applies(cls, element: Format, scale: Format) -> bool:
        """Float elements, float32 scales."""
        return isinstance(element, FloatFormat) and scale == float32

    @property
    def label(self) -> str:
        """``<element>_scaled``."""
        return f"{self.element.name}_scaled"

    def quantize(self, a: np.ndarray, grouping: Grouping, *, scale_rule: str, saturate: bool,
                 rounding, seed) -> Quantized:
        """See :meth:`ScalingRecipe.quantize`; ``quant_multiplier`` holds the multipliers."""
        efmt = self.element
        x = a.astype(np.float32)
        amax = group_amax(grouping.to_groups(x))
        mult = fp8_scale(amax, efmt, pow2=(scale_rule == "pow2"))
        with np.errstate(over="ignore", invalid="ignore"):
            v = x * grouping.expand(mult)
            inv = (np.float32(1) / mult).astype(np.float32)
        codes = encode(v, efmt, overflow="saturate" if saturate else None, rounding=rounding,
                       seed=seed)
        return Quantized(codes, grouping.scales_from_groups(inv.astype(np.float64)),
                         quant_multiplier=grouping.scales_from_groups(mult))

    def dequantize(self, values: np.ndarray, scales: np.ndarray, *,
                   zero_point: Optional[np.ndarray] = None,
                   global_scale: Optional[float] = None) -> np.ndarray:
        """``fp32(element * scale)``."""
        with np.errstate(invalid="ignore", over="ignore"):
            return (values * scales).astype(np.float32)  # fp32 factors: exact, one rounding
