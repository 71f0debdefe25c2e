"""OCP MX: power-of-two block scales (E8M0).

Each group's scale is 2^E with E from the group's amax and the element format's largest
exponent (``scale_rule``); elements are ``x / 2^E`` cast to the element format (float or
fixed point, MXINT8). The scale format is E8M0, or any float format without mantissa bits,
whose exponent range bounds E.
"""

from __future__ import annotations

import functools

from typing import Optional

import numpy as np

from ..formats import FloatFormat, Format
from ..quantize import encode, f32_fast_applies, format_tuple, resolve_options
from ..rounding import Rounding
from .base import Quantized, ScalingRecipe, power_of_two
from .grouping import Grouping, group_amax

_RULE_IDS = {"floor": 0, "ceil": 1, "rceil": 2}  # lowprec._kernels.scaled.RULE_*

__all__ = ["MXRecipe", "mx_scale_exponents", "emax_elem"]


def emax_elem(efmt: Format) -> int:
    """Exponent of the largest power of two the element format holds (OCP's emax_elem)."""
    if isinstance(efmt, FloatFormat):
        return efmt.emax
    return int(np.frexp(efmt.max)[1]) - 1


def mx_scale_exponents(amax: np.ndarray, efmt: Format, rule: str) -> np.ndarray:
    """Unclamped shared exponents E (scale 2^E) for finite, positive amax values.

    Exponents come from the bits (``np.frexp``), never from ``floor(log2(.))``, which is
    wrong just below powers of two. amax = 0 gives the smallest E8M0 exponent, -127.

    Args:
        amax: float64 array of block amaxes (finite, >= 0).
        efmt: element format.
        rule: "floor", "ceil" or "rceil" (see :func:`lowprec.quantize_scaled`).

    Returns:
        int64 array of exponents (not yet clamped to E8M0's [-127, 127]).
    """
    m, e = np.frexp(amax)  # amax = m * 2^e, m in [0.5, 1)
    e = e.astype(np.int64)
    if rule == "floor":
        out = (e - 1) - emax_elem(efmt)
    elif rule == "ceil":
        out = np.where(m == 0.5, e - 1, e) - emax_elem(efmt)
    else:  # rceil: least E with amax <= max_elem * 2^E, by comparing significands exactly
        mm, em = np.frexp(float(efmt.max))
        out = (e - em) + (m > mm)
    return np.where(amax == 0, -127, out)


def _fused_applies(a: np.ndarray, efmt: Format, grouping: Grouping) -> bool:
    """Whether the one-pass block kernel serves this input: float32/float16 values (their
    quotients by any E8M0 scale stay normal in float64), float elements, blocks along the
    last axis of a non-empty array."""
    return (a.dtype in (np.float32, np.float16) and isinstance(efmt, FloatFormat)
            and grouping.granularity == "block" and a.ndim >= 1 and a.size > 0
            and grouping.axis == a.ndim - 1)


@functools.lru_cache(maxsize=64)
def _element_consts(efmt: FloatFormat) -> tuple:
    """What the fused kernels need of an element format, once per format (Python-side
    work per call costs as much as the kernel on small inputs): emax_elem, frexp of its max
    (for "rceil"), the fill code of NaN blocks, its parameter vector (NaN policy "zero")."""
    mm, em = np.frexp(float(efmt.max))
    fill = int(encode(np.nan, efmt)) if efmt.has_nan else 0
    fp = format_tuple(efmt, resolve_options(efmt, nan="zero").nan)
    return emax_elem(efmt), float(mm), int(em), fill, fp


def _f32_elements(efmt: FloatFormat, sfmt: Format, rounding: Rounding) -> bool:
    """Whether :func:`lowprec._kernels.scaled.mx_rows_f32` serves the fused path: elements
    x * 2^-E in float32 (2^-E a float32: scale exponents within [-127, 127]) rounded by the
    conversion kernels' float32 pass, in modes where a float32-subnormal product (rounded)
    and the exact quotient give the same code: both lie below half the smallest element
    subnormal (> 2^-126), so RNE/RNA/RTZ give the signed zero of either."""
    return (f32_fast_applies(efmt, rounding)
            and rounding in (Rounding.RNE, Rounding.RNA, Rounding.RTZ)
            and efmt.emin - efmt.man_bits > -125
            and -127 <= sfmt.emin and sfmt.emax <= 127)


class MXRecipe(ScalingRecipe):
    """OCP MX v1.0 block scaling: scales 2^E in a power-of-two scale format.

    Scale rules: "floor" (OCP MX v1.0 sec. 6.3: E = floor(log2 amax) - emax_elem), "ceil"
    (torchao ``ScaleCalculationMode.CEIL``) and "rceil" (E = ceil(log2(amax / max_elem)):
    cuDNN/cuBLAS, torchao ``RCEIL``, Transformer Engine MXFP8). E is clamped to the scale
    format's exponent range; a zero block gets the smallest scale. A block holding NaN or
    inf, or (``saturate=False``) one that needs a scale above the largest, gets the NaN
    scale and NaN elements (element code 0 in formats without NaN).
    """

    scale_rules = ("floor", "ceil", "rceil")

    @classmethod
    def applies(cls, element: Format, scale: Format) -> bool:
        """Power-of-two scale formats (E8M0), any element format."""
        return power_of_two(scale)

    @property
    def label(self) -> str:
        """``mx_<element>``."""
        return f"mx_{self.element.name}"

    def quantize(self, a: np.ndarray, grouping: Grouping, *, scale_rule: str, saturate: bool,
                 rounding, seed) -> Quantized:
        """See :meth:`ScalingRecipe.quantize`."""
        efmt, sfmt = self.element, self.scale
        if _fused_applies(a, efmt, grouping):
            return self._quantize_fused(a, grouping, scale_rule, saturate, rounding, seed)
        x = a.astype(np.float64)
        groups = grouping.to_groups(x)
        amax = group_amax(groups)
        bad = ~np.isfinite(amax)
        finite = np.where(bad, 0.0, amax)
        exps = mx_scale_exponents(finite, efmt, scale_rule)
        exps = np.where(finite == 0, sfmt.emin, np.maximum(exps, sfmt.emin))
        over = exps > sfmt.emax
        exps = np.minimum(exps, sfmt.emax)
        nan_scale = bad | (over & (not saturate))
        if nan_scale.any() and not sfmt.has_nan:
            raise ValueError(f"a block holds NaN or inf or needs a scale above "
                             f"{sfmt.max:g}, but scale format {sfmt.name} has no NaN to mark it")
        scales_g = np.where(nan_scale, np.nan, np.ldexp(1.0, exps))
        e_el = grouping.expand(np.where(nan_scale, 0, exps))
        v = np.ldexp(x, -e_el)
        # Quotients below float64's range underflow to 0; keep them non-zero so directed
        # rounding still sees a value strictly between 0 and the element's smallest subnormal.
        lost = (v == 0) & (x != 0)
        if lost.any():
            v[lost] = np.copysign(5e-324, x[lost])
        codes = encode(v, efmt, overflow="saturate" if saturate else None, nan="zero",
                       rounding=rounding, seed=seed)
        if nan_scale.any():
            fill = encode(np.nan, efmt) if efmt.has_nan else 0
            cg = grouping.to_groups(codes)
            cg[nan_scale] = fill
            codes = np.ascontiguousarray(grouping.from_groups(cg))
        return Quantized(codes, grouping.scales_from_groups(scales_g))

    def _quantize_fused(self, a: np.ndarray, grouping: Grouping, scale_rule: str,
                        saturate: bool, rounding, seed) -> Quantized:
        """One pass per block (:func:`lowprec._kernels.scaled.mx_rows`): float32 input,
        float elements, blocks along the last axis. Same codes and scales as the
        vectorised numpy path below."""
        from .._kernels import scaled as K

        efmt, sfmt = self.element, self.scale
        x = np.ascontiguousarray(a, np.float32)
        n = x.shape[-1]
        x2 = x.reshape(-1, n)
        bs = grouping.block_size
        nb = grouping.nblocks
        opts = resolve_options(efmt, rounding, "saturate" if saturate else None, True, None,
                               seed, "zero")
        codes = np.empty(x2.shape, efmt.code_dtype)
        ee, mm, em, fill, fp = _element_consts(efmt)
        args = (x2, bs, _RULE_IDS[scale_rule], ee, mm, em, sfmt.emin, sfmt.emax, bool(saturate),
                fill, fp, opts.rounding.id, opts.overflow.id, opts.ftz)
        if _f32_elements(efmt, sfmt, opts.rounding):
            scales = np.empty((x2.shape[0], nb), np.float64)
            # full blocks only: the rows make one (tasks of 64 blocks span rows; no
            # element index matters without SR)
            one = (1, -1) if n % bs == 0 else x2.shape
            K.mx_rows_f32(x2.reshape(one), *args[1:], codes.reshape(one),
                          scales.reshape(one[0], -1))
            scales_g = scales.reshape(-1)
            any_nan = not sfmt.has_nan and np.isnan(scales_g).any()
        else:
            exps = np.empty((x2.shape[0], nb), np.int64)
            nan_scale = np.empty((x2.shape[0], nb), np.bool_)
            K.mx_rows(*args, opts.key, opts.sr_bits, codes, exps, nan_scale)
            any_nan = nan_scale.any()
            scales_g = np.where(nan_scale, np.nan, np.ldexp(1.0, exps)).reshape(-1)
        if not sfmt.has_nan and any_nan:
            raise ValueError(f"a block holds NaN or inf or needs a scale above "
                             f"{sfmt.max:g}, but scale format {sfmt.name} has no NaN to mark it")
        return Quantized(codes.reshape(a.shape), grouping.scales_from_groups(scales_g))

    def dequantize(self, values: np.ndarray, scales: np.ndarray, *,
                   zero_point: Optional[np.ndarray] = None,
                   global_scale: Optional[float] = None) -> np.ndarray:
        """``element * 2^E`` exactly, in float64 (the scale range fits)."""
        with np.errstate(invalid="ignore", over="ignore"):
            return values * scales
