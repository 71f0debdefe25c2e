"""The result of scaled quantization: element codes, scales and how to read them back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..formats import Format
from ..quantize import decode, encode
from .base import ScalingRecipe
from .grouping import Grouping
from .recipes import recipe_for

__all__ = ["ScaledTensor"]


@dataclass(repr=False, eq=False)
class ScaledTensor:
    """Element codes plus scales: the result of :func:`lowprec.quantize_scaled`.

    Attributes:
        codes: element codes, shape of the input, dtype ``fmt.code_dtype`` (integer formats:
            two's complement words, as :func:`lowprec.encode` gives them).
        scales: float64 array of *dequantization* scales (value = element value * scale),
            each exactly representable in ``scale_fmt``; NaN marks a block whose input held
            NaN or infinity. Shape: see :mod:`lowprec.scaled`. For NVFP4 these are the E4M3
            block scales *before* the global scale is applied.
        fmt: element format.
        scale_fmt: scale format.
        scheme: the named block format, or the recipe's label (``mx_float8_e4m3fn``,
            ``int8_scaled`` ...).
        granularity: "tensor", "channel" or "block".
        axis: the (non-negative) axis of channels or blocks; None for "tensor".
        block_size: elements per block; None unless "block".
        zero_point: int64 array like ``scales`` (asymmetric integer quantization) or None.
        global_scale: the float32 per-tensor scale of two-level (NVFP4) scaling, or None.
        quant_multiplier: for the float32-scale recipes (fp8 current scaling, integers) the
            float32 factor the elements were multiplied by before the cast, or None.
        scale_rule: how the scales were derived.
        rounding: element rounding mode.
    """

    codes: np.ndarray
    scales: np.ndarray
    fmt: Format
    scale_fmt: Format
    granularity: str
    axis: Optional[int]
    block_size: Optional[int]
    scheme: str
    scale_rule: str
    rounding: str = "rne"
    zero_point: Optional[np.ndarray] = None
    global_scale: Optional[float] = None
    quant_multiplier: Optional[np.ndarray] = None
    _grouping: Optional[Grouping] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._grouping is None:  # built by hand rather than by quantize_scaled
            self._grouping = Grouping(self.codes.shape, self.granularity,
                                      self.axis if self.axis is not None else 0,
                                      self.block_size or 1)

    @property
    def shape(self) -> tuple:
        """Shape of the quantized tensor (of ``codes``)."""
        return self.codes.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self.codes.ndim

    @property
    def recipe(self) -> ScalingRecipe:
        """The recipe of the element and scale formats (see :mod:`lowprec.scaled.recipes`)."""
        return recipe_for(self.fmt, self.scale_fmt)

    @property
    def scale_codes(self) -> np.ndarray:
        """The scales as codes of ``scale_fmt`` (E8M0 bytes for MX, E4M3 bytes for NVFP4)."""
        return encode(self.scales, self.scale_fmt, nan="raise")

    @property
    def bits_per_element(self) -> float:
        """Storage cost: element bits plus scale (and zero-point) bits spread over elements."""
        n = self.codes.size
        if n == 0:
            return float(self.fmt.bits)
        extra = self.scales.size * self.scale_fmt.bits
        if self.zero_point is not None:
            extra += self.zero_point.size * self.fmt.bits
        if self.global_scale is not None:
            extra += 32
        return self.fmt.bits + extra / n

    def dequantize(self, dtype=np.float32) -> np.ndarray:
        """Values represented by the codes and scales.

        MX: ``element * 2^E`` exactly (then rounded once to ``dtype``). NVFP4 and other
        two-level recipes: ``fp32(element * fp32(global_scale * block_scale))`` as torchao's
        ``NVFP4Tensor.to_dtype``. float32-scale recipes: ``fp32(element * scale)``; integers:
        ``fp32((q - zero_point) * scale)`` as ``torch.dequantize``.

        Args:
            dtype: float32 (default) or float64 (float16 is allowed and rounds once more).

        Returns:
            Array of the tensor's shape; blocks with a NaN scale are all NaN.

        Raises:
            TypeError: for a non-float dtype.
            ValueError: for a tensor built by hand whose formats no recipe takes.
        """
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"dtype must be a float dtype, got {dt}")
        g = self._grouping
        values = decode(self.codes, self.fmt, dtype=np.float64)
        scales = g.expand(g.scales_to_groups(self.scales).astype(np.float64))
        zp = None if self.zero_point is None else \
            g.expand(g.scales_to_groups(self.zero_point).astype(np.float64))
        out = self.recipe.dequantize(values, scales, zero_point=zp,
                                     global_scale=self.global_scale)
        return out.astype(dt)

    def __repr__(self) -> str:
        if self.granularity == "block":
            where = f"blocks of {self.block_size} along axis {self.axis}"
        elif self.granularity == "channel":
            where = f"per channel along axis {self.axis}"
        else:
            where = "per tensor"
        extra = ""
        if self.zero_point is not None:
            extra += ", asymmetric"
        if self.global_scale is not None:
            extra += f", global_scale={self.global_scale!r}"
        return (f"ScaledTensor({self.scheme}: shape={self.shape}, elements={self.fmt.name}, "
                f"{where}, scales={self.scale_fmt.name}{list(np.shape(self.scales))} "
                f"({self.scale_rule}){extra})")
