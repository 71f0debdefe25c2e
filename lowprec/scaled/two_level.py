"""Two-level scaling as NVFP4: low-precision float block scales under a float32 tensor scale.

torchao's ``nvfp4_quantize`` (torchao/prototype/mx_formats/nvfp4_tensor.py), in float32.
With amax the float32 block amax, G the global scale, S_max/E_max the scale and element
format maxima: s = fp32(fp32(amax / E_max) / G), clamped to [smallest normal of the scale
format, S_max] and rounded into the scale format (RNE; "rceil" rounds up); elements
fp32(x * fp32(fp32(1 / G) / s)) (``reciprocal``, torchao >= 0.18) or fp32(x / fp32(G * s)),
clamped to [-E_max, E_max], then cast. G = "auto" is fp32(tensor_amax / fp32(S_max * E_max))
(torchao ``per_tensor_amax_to_scale``).

Deviations, where torchao has no defined answer: a tensor whose finite amax is 0 gets G = 1
(torchao divides 0/0); an automatic G below 2^-126 is raised to 2^-126 (torchao's
fp32(1 / G) would overflow and turn zeros into NaN); blocks holding NaN/inf get the NaN
scale code and element code 0, and are left out of the tensor amax. A block whose
multiplier fp32(fp32(1 / G) / s) overflows (G and s both tiny: 1 / G > 2^128 * s, e.g. an
all-zero block, s at its minimum, under G near 2^-126) has its elements divided by
fp32(G * s) instead: torchao multiplies by inf there, which gives +-E_max for non-zero
elements and NaN for zeros (undefined fp4 codes).
"""

from __future__ import annotations

import functools

from typing import Any, Optional

import numpy as np

from ..formats import FloatFormat, Format, float32
from ..quantize import decode, encode, f32_fast_applies, format_tuple, resolve_options
from ..rounding import Rounding
from .base import Quantized, ScalingRecipe, power_of_two
from .grouping import Grouping, group_amax

__all__ = ["TwoLevelRecipe"]

_TINY32 = float(np.finfo(np.float32).tiny)  # 2^-126


def _fused_applies(x: np.ndarray, grouping: Grouping) -> bool:
    """Whether the one-pass block kernels serve this (float32) input: blocks along the last
    axis of a non-empty array."""
    return (grouping.granularity == "block" and x.ndim >= 1 and x.size > 0
            and grouping.axis == x.ndim - 1)


def _one_row(x2: np.ndarray, bs: int) -> tuple:
    """The shape the kernels see the (rows, n) input as: one row when every block is full
    (their tasks of 64 blocks then span rows: fewer, larger tasks; element indices only
    matter for SR, which these kernels do not serve), else as it is."""
    return (1, x2.size) if x2.shape[1] % bs == 0 else x2.shape


@functools.lru_cache(maxsize=64)
def _consts(efmt: FloatFormat, sfmt: FloatFormat) -> tuple:
    """Per-format constants, once per format pair (each ``.max`` is an exact-fraction
    computation; per call they cost as much as the kernels on small inputs): E_max, S_max,
    the scale format's smallest normal (float32), fp32(S_max * E_max), the scale and
    element parameter tuples."""
    return (np.float32(efmt.max), np.float32(sfmt.max), np.float32(sfmt.min_normal),
            np.float32(sfmt.max * efmt.max), format_tuple(sfmt), format_tuple(efmt))


class TwoLevelRecipe(ScalingRecipe):
    """Float block scales (e.g. E4M3), optionally under a float32 tensor scale (NVFP4).

    Scale rules: "nearest" (default, torchao ``nvfp4_quantize``) or "rceil" (the block scale
    rounded up). Options: ``global_scale`` ("auto", a positive finite float32, or None for
    single-level block scales) and ``reciprocal`` (multiply by the float32 reciprocal of the
    scale, True, or divide by the scale, False).

    Raises:
        ValueError: for a scale format that is not a float format.
    """

    scale_rules = ("nearest", "rceil")
    options = ("global_scale", "reciprocal")

    def __init__(self, element: Format, scale: Format) -> None:
        if not isinstance(scale, FloatFormat):
            raise ValueError(f"scale format must be a float format, got {scale.name}")
        super().__init__(element, scale)

    @classmethod
    def applies(cls, element: Format, scale: Format) -> bool:
        """Float elements with scales neither float32 nor powers of two."""
        return isinstance(element, FloatFormat) and scale != float32 and not power_of_two(scale)

    @property
    def label(self) -> str:
        """``two_level_<element>``."""
        return f"two_level_{self.element.name}"

    def validate(self, scale_rule: Optional[str] = None, saturate=True,
                 **options) -> dict[str, Any]:
        """As :meth:`ScalingRecipe.validate`; ``global_scale`` becomes "auto", None or a
        float32.

        Raises:
            ValueError: also for a ``global_scale`` that is not "auto", None or a positive
                finite float32, or whose float32 reciprocal overflows with ``reciprocal``.
        """
        checked = super().validate(scale_rule, saturate, **options)
        g = checked.get("global_scale", "auto")
        reciprocal = bool(checked.get("reciprocal", True))
        if isinstance(g, str) and g != "auto":
            raise ValueError(f"global_scale must be 'auto', a float or None, got {g!r}")
        if g is not None and not isinstance(g, str):
            if not np.isfinite(float(g)) or float(g) <= 0:
                raise ValueError(f"global_scale must be a positive finite float, got {g!r}")
            with np.errstate(over="ignore"):
                g32 = np.float32(g)
                inv = np.float32(1) / g32 if g32 > 0 else np.float32(np.inf)
            if not (np.isfinite(g32) and g32 > 0):
                raise ValueError(f"global_scale {g!r} is not a positive finite float32")
            if reciprocal and not np.isfinite(inv):
                raise ValueError(f"global_scale {g!r} is so small that its float32 "
                                 f"reciprocal overflows; pass reciprocal=False to divide "
                                 f"instead")
            g = g32
        checked.update(global_scale=g, reciprocal=reciprocal)
        return checked

    def quantize(self, a: np.ndarray, grouping: Grouping, *, scale_rule: str, saturate: bool,
                 rounding, seed, global_scale="auto", reciprocal: bool = True) -> Quantized:
        """See :meth:`ScalingRecipe.quantize` and the module docstring."""
        efmt, sfmt = self.element, self.scale
        x = np.asarray(a, np.float32)  # no copy of float32 input: nothing writes to x
        fused = _fused_applies(x, grouping)
        if fused:  # block amaxes in one pass over contiguous rows
            from .._kernels import scaled as K

            x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
            amax = np.empty((x2.shape[0], grouping.nblocks), np.float32)
            bad = np.empty(amax.shape, np.bool_)
            one = _one_row(x2, grouping.block_size)
            K.block_amax32(x2.reshape(one), grouping.block_size,
                                amax.reshape(one[0], -1), bad.reshape(one[0], -1))
            amax, bad = amax.reshape(-1), bad.reshape(-1)
        else:
            groups = grouping.to_groups(x)
            amax = group_amax(groups)
            bad = ~np.isfinite(amax)
        if bad.any() and not sfmt.has_nan:
            raise ValueError(f"input holds NaN or inf, but scale format {sfmt.name} has no NaN "
                             f"to mark those blocks")
        emax, smax, smin, denom, _, _ = _consts(efmt, sfmt)
        if isinstance(global_scale, str):  # "auto"
            if fused:  # the kernel's amax of a NaN/inf block is 0
                tmax = np.float32(amax.max())
            else:
                finite = amax[~bad]
                tmax = np.float32(finite.max()) if finite.size else np.float32(0)
            g = np.float32(tmax / denom) if tmax > 0 else np.float32(1)
            if not (np.isfinite(g) and g >= np.float32(_TINY32)):
                g = np.float32(_TINY32)
        else:
            g = global_scale
        if fused:
            return self._quantize_fused(x2, a.shape, grouping, amax, bad, g, scale_rule,
                                        saturate, rounding, seed, reciprocal)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            bs = np.where(bad, np.float32(0), amax) / emax
            if g is not None:
                bs = bs / g
            bs = np.clip(bs, smin, smax).astype(np.float32)
        s_codes = encode(bs, sfmt, rounding="rup" if scale_rule == "rceil" else "rne",
                         overflow="saturate")
        s = decode(s_codes, sfmt, dtype=np.float32)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            total = s if g is None else (g * s).astype(np.float32)
            if reciprocal:
                inv = (np.float32(1) / s if g is None else (np.float32(1) / g) / s).astype(
                    np.float32)
                v = x * grouping.expand(inv)
                ovf = ~np.isfinite(inv)  # tiny G and s: the division instead (module doc)
                if ovf.any():
                    v = np.where(grouping.expand(ovf), x / grouping.expand(total), v)
            else:
                v = x / grouping.expand(total)
        if saturate:
            v = np.clip(v, -emax, emax)
        v = np.where(grouping.expand(bad), np.float32(0), v)
        codes = encode(v, efmt, overflow="saturate" if saturate else None, rounding=rounding,
                       seed=seed)
        scales_g = np.where(bad, np.nan, s.astype(np.float64))
        return Quantized(codes, grouping.scales_from_groups(scales_g),
                         global_scale=None if g is None else float(g))

    def _quantize_fused(self, x2, shape, grouping: Grouping, amax, bad, g, scale_rule: str,
                        saturate: bool, rounding, seed, reciprocal: bool) -> Quantized:
        """Scales and elements in one pass per block
        (:func:`lowprec._kernels.scaled.two_level_rows`), the float32 arithmetic of the
        numpy path below, blocks along the last axis."""
        from .._kernels import scaled as K

        efmt, sfmt = self.element, self.scale
        opts = resolve_options(efmt, rounding, "saturate" if saturate else None, True, None,
                               seed, "raise")
        s_mode = (Rounding.RUP if scale_rule == "rceil" else Rounding.RNE).id
        codes = np.empty(x2.shape, efmt.code_dtype)
        scales = np.empty((x2.shape[0], grouping.nblocks), np.float32)
        emax, smax, smin, _, sfp, efp = _consts(efmt, sfmt)
        args = (x2, grouping.block_size, amax.reshape(scales.shape), bad.reshape(scales.shape),
                emax, np.float32(1 if g is None else g), g is not None, smin, smax, sfp, s_mode,
                bool(reciprocal), bool(saturate), efp, opts.rounding.id, opts.overflow.id,
                opts.ftz)
        if f32_fast_applies(efmt, opts.rounding):
            one = _one_row(x2, grouping.block_size)
            r1 = (one[0], -1)
            K.two_level_rows_f32(x2.reshape(one), *args[1:2], args[2].reshape(r1),
                                 args[3].reshape(r1), *args[4:], codes.reshape(one),
                                 scales.reshape(r1))  # NaN/inf blocks: scale NaN
            scales_g = scales.reshape(-1).astype(np.float64)
        else:
            K.two_level_rows(*args, opts.key, opts.sr_bits, codes, scales)
            scales_g = np.where(bad, np.nan, scales.reshape(-1).astype(np.float64))
        return Quantized(codes.reshape(shape), grouping.scales_from_groups(scales_g),
                         global_scale=None if g is None else float(g))

    def dequantize(self, values: np.ndarray, scales: np.ndarray, *,
                   zero_point: Optional[np.ndarray] = None,
                   global_scale: Optional[float] = None) -> np.ndarray:
        """``fp32(element * fp32(global_scale * block_scale))`` as torchao's
        ``NVFP4Tensor.to_dtype``."""
        with np.errstate(invalid="ignore", over="ignore"):
            if global_scale is not None:
                scales = (np.float32(global_scale) * scales.astype(np.float32)).astype(np.float64)
            return (values * scales).astype(np.float32)  # fp32 factors: exact, one rounding
