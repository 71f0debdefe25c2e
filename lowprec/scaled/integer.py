"""Integer elements with float32 scales: symmetric or affine, as torch's quantize_per_tensor
and quantize_per_channel."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..formats import FixedFormat, Format, float32
from ..quantize import encode
from .base import Quantized, ScalingRecipe, power_of_two
from .grouping import Grouping, group_amax

__all__ = ["IntegerRecipe"]

_TINY32 = float(np.finfo(np.float32).tiny)  # 2^-126


def _round_fp32_of_sum(p: np.ndarray, z: np.ndarray) -> np.ndarray:
    """fp32(p + z) with a single rounding (a fused multiply-add's result), p, z float64.

    TwoSum gives the exact error of the float64 sum; rounding that sum to odd (nudging an
    even last bit toward the exact value when the sum is inexact) and then to float32 is
    one correct rounding, since 53 >= 24 + 2 (Boldo & Melquiond's round-to-odd).
    """
    s = p + z
    bb = s - p
    err = (p - (s - bb)) + (z - bb)
    even = (s.view(np.uint64) & np.uint64(1)) == 0
    nudge = (err != 0) & even
    if nudge.any():
        s = s.copy()
        s[nudge] = np.nextafter(s[nudge], np.where(err[nudge] > 0, np.inf, -np.inf))
    return s.astype(np.float32)


class IntegerRecipe(ScalingRecipe):
    """int8/int4/uint8 ... elements with float32 scales.

    Symmetric (default): zero point 0, scale fp32(amax / qmax) over the range
    [-(2^(b-1)-1), 2^(b-1)-1]. Affine (``symmetric=False``): scale fp32((max - min) /
    (qmax - qmin)) over the format's full range, with the integer zero point that puts 0.0
    on the grid. Codes are clamp(rint(fp32(x * fp32(1 / scale) + zero_point))), the sum
    rounded once (fbgemm's fused multiply-add). Scale rule: "amax".

    Raises:
        ValueError: for fixed-point elements with fraction bits (they take E8M0 scales) and
            for scale formats other than float32.
    """

    scale_rules = ("amax",)
    options = ("symmetric",)

    def __init__(self, element: Format, scale: Format) -> None:
        if element.frac_bits != 0:
            raise ValueError(f"fixed-point elements ({element.name}) take E8M0 scales (as "
                             f"MXINT8); float32-scaled quantization is for integer formats")
        if scale != float32:
            raise ValueError(f"integer/fixed-point elements ({element.name}) take float32 or "
                             f"E8M0 scales, not {scale.name}")
        super().__init__(element, scale)

    @classmethod
    def applies(cls, element: Format, scale: Format) -> bool:
        """Integer (fixed-point) elements with scales that are not powers of two."""
        return isinstance(element, FixedFormat) and not power_of_two(scale)

    @property
    def label(self) -> str:
        """``<element>_scaled``."""
        return f"{self.element.name}_scaled"

    def validate(self, scale_rule: Optional[str] = None, saturate=True,
                 **options) -> dict[str, Any]:
        """As :meth:`ScalingRecipe.validate`.

        Raises:
            ValueError: also for symmetric quantization into an unsigned format.
        """
        checked = super().validate(scale_rule, saturate, **options)
        checked["symmetric"] = bool(checked.get("symmetric", True))
        if checked["symmetric"] and not self.element.signed:
            raise ValueError(f"symmetric quantization needs a signed format, got "
                             f"{self.element.name}; pass symmetric=False")
        return checked

    def quantize(self, a: np.ndarray, grouping: Grouping, *, scale_rule: str, saturate: bool,
                 rounding, seed, symmetric: bool = True) -> Quantized:
        """See :meth:`ScalingRecipe.quantize`.

        Raises:
            ValueError: for NaN or inf input, or a range whose scale overflows float32.
        """
        efmt = self.element
        if a.size and not np.isfinite(a).all():
            raise ValueError(f"input holds NaN or inf; {efmt.name} has no code for them")
        x = a.astype(np.float32)
        groups = grouping.to_groups(x)
        if symmetric:
            qmax = (1 << (efmt.bits - 1)) - 1
            qmin = -qmax
            amax = group_amax(groups)
            scale = (amax / np.float32(qmax)).astype(np.float32)
            zp = np.zeros(scale.shape, np.int64)
        else:
            qmin, qmax = efmt.min_int, efmt.max_int
            if groups.shape[1]:
                lo = np.minimum(groups.min(axis=1), np.float32(0))
                hi = np.maximum(groups.max(axis=1), np.float32(0))
            else:
                lo = hi = np.zeros(groups.shape[0], np.float32)
            with np.errstate(over="ignore"):
                scale = ((hi - lo).astype(np.float32) / np.float32(qmax - qmin)).astype(np.float32)
        amax0 = scale == 0
        scale = np.where(amax0, np.float32(1), np.maximum(scale, np.float32(_TINY32)))
        if not np.isfinite(scale).all():
            raise ValueError(f"range of the input overflows float32 scales for {efmt.name}")
        scale = scale.astype(np.float32)
        if not symmetric:
            zq = np.rint((lo / scale).astype(np.float32)).astype(np.int64)
            zp = np.clip(qmin - zq, qmin, qmax)
        inv = (np.float32(1) / scale).astype(np.float32)
        p = x.astype(np.float64) * grouping.expand(inv).astype(np.float64)  # exact (24x24 bits)
        y = _round_fp32_of_sum(p, grouping.expand(zp).astype(np.float64)) if not symmetric \
            else p.astype(np.float32)
        q = encode(y, "int32", overflow="saturate", rounding=rounding, seed=seed)
        q = np.clip(q.view(np.int32).astype(np.int64), qmin, qmax)
        codes = (q & ((1 << efmt.bits) - 1)).astype(efmt.code_dtype)
        return Quantized(codes, grouping.scales_from_groups(scale.astype(np.float64)),
                         zero_point=(None if symmetric else
                                     grouping.scales_from_groups(zp.astype(np.int64))),
                         quant_multiplier=grouping.scales_from_groups(inv))

    def dequantize(self, values: np.ndarray, scales: np.ndarray, *,
                   zero_point: Optional[np.ndarray] = None,
                   global_scale: Optional[float] = None) -> np.ndarray:
        """``fp32((q - zero_point) * scale)`` as ``torch.dequantize``."""
        zp = 0.0 if zero_point is None else zero_point
        return ((values - zp) * scales).astype(np.float32)  # exact product, one rounding
