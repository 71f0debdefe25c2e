"""The entry points: :func:`quantize_scaled` and its shorthands.

:func:`quantize_scaled` resolves what was asked for (a block format or an element format,
the granularity, the scale format), lets the recipe of the element and scale formats
(:func:`~.recipes.recipe_for`) check its own arguments and quantize the scaling groups of
the input (:class:`~.grouping.Grouping`), and wraps the result in a
:class:`~.tensor.ScaledTensor`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional, Union

import numpy as np

from ..block_formats import BlockFormat, get_block_format, list_block_formats
from ..formats import FloatFormat, Format, float8_e8m0fnu, float32, get_format
from .grouping import Grouping, check_granularity
from .mx import MXRecipe
from .recipes import recipe_for
from .tensor import ScaledTensor

__all__ = ["quantize_scaled", "mx_quantize", "nvfp4_quantize", "SCHEMES"]

#: Named block formats (old form), read-only: name -> (element format, block size, scale
#: format), from the registry of :mod:`lowprec.block_formats`.
SCHEMES: Mapping[str, tuple[Format, int, Format]] = MappingProxyType(
    {bf.name: bf.as_tuple() for bf in list_block_formats()})


def quantize_scaled(x, fmt, *, granularity: Optional[str] = None, axis: int = -1,
                    block_size: Optional[int] = None, scale_fmt=None,
                    scale_rule: Optional[str] = None, symmetric: bool = True,
                    global_scale: Union[str, float, None] = "auto", rounding="rne",
                    saturate: bool = True, pad: bool = True,
                    seed: Optional[int] = None, reciprocal: bool = True) -> ScaledTensor:
    """Quantize an array with one scale per tensor, channel or block.

    Args:
        x: array-like of real numbers (float16/32/64, bfloat16 via ml_dtypes, integers).
        fmt: a block format, by name (``"mxfp8_e4m3"``/``"mxfp8"``, ``"mxfp8_e5m2"``,
            ``"mxfp6_e3m2"``, ``"mxfp6_e2m3"``, ``"mxfp4_e2m1"``/``"mxfp4"``, ``"mxint8"``,
            ``"nvfp4"``) or as a :class:`~lowprec.block_formats.BlockFormat`, or an element
            format (``"int8"``, ``"int4"``, ``"uint8"``, ``"e4m3"``, any
            :class:`~lowprec.FloatFormat`/:class:`~lowprec.FixedFormat`).
        granularity: "tensor", "channel" or "block". Default: "block" for block formats or
            when ``block_size`` is given, "tensor" otherwise.
        axis: for "channel", the channel axis (one scale per index along it); for "block",
            the axis the blocks run along. Ignored for "tensor".
        block_size: values per block (default: the block format's, else 32).
        scale_fmt: scale format. Default: the block format's; E8M0 for float elements in blocks;
            float32 otherwise. E8M0 (any power-of-two format) selects the MX recipe,
            float32 the fp8-current-scaling or integer recipe, any other float format
            two-level (NVFP4-style) scaling (:mod:`lowprec.scaled.recipes`).
        scale_rule: MX: "floor" (default; OCP MX v1.0 sec. 6.3: E = floor(log2 amax) -
            emax_elem), "ceil" (torchao ``ScaleCalculationMode.CEIL``:
            E = ceil(log2 amax) - emax_elem) or "rceil" (cuDNN/cuBLAS block quantization,
            torchao ``RCEIL``, Transformer Engine MXFP8: E = ceil(log2(amax / max_elem)),
            the scale rounded *up* so no element overflows). Two-level: "nearest" (default;
            torchao ``nvfp4_quantize``) or "rceil" (round the block scale up). float32
            scales: "amax" (default) or "pow2" (Transformer Engine ``force_pow_2_scales``).
        symmetric: integer formats only: True for zero point 0 and the symmetric range
            [-(2^(b-1)-1), 2^(b-1)-1] (int8: [-127, 127]); False for an affine zero point
            over the format's full range.
        global_scale: two-level recipes only: "auto" (default; float32 amax / (scale max *
            element max), torchao ``per_tensor_amax_to_scale``), a positive finite float
            (calibrated), or None for single-level block scales.
        rounding: element rounding mode ("rne" default, "rna", "rtz", "rup", "rdn", "rto",
            "sr"). Scales follow ``scale_rule``.
        saturate: True clamps out-of-range elements to the largest finite value (and MX
            scales above 2^127 to 2^127); False lets float elements overflow as the format
            does on overflow (inf, or NaN for e4m3) and gives MX scales above 2^127 the NaN
            code. Integer/fixed elements always saturate; saturate=False is an error there.
        pad: False raises ValueError when ``block_size`` does not divide the axis.
        seed: seed for ``rounding="sr"``.
        reciprocal: two-level recipes only. True (default): elements are multiplied by the
            float32 reciprocal of their scale, ``fp32(x * fp32(fp32(1 / G) / s))`` (``x *
            fp32(1 / s)`` without a global scale), as torchao >= 0.18 computes NVFP4 "to
            match the MSLK Triton kernel", i.e. as the kernels that produce NVFP4 data in
            practice do. False: elements are divided by the scale, ``fp32(x / fp32(G *
            s))`` (torchao <= 0.16; one correctly rounded quotient). The two differ when
            ``x / s`` lands on an element tie and the scale is not a power of two.

    Returns:
        A :class:`ScaledTensor`.

    Raises:
        ValueError: unknown block format/format/granularity/rule, axis out of range, bad block
            size, combinations that do not exist (e.g. an integer format with E8M0 scales is
            fine, with E4M3 scales is not), non-finite or non-positive ``global_scale``,
            NaN/inf input for integer formats, ``saturate=False`` for integer elements.
        TypeError: non-numeric input, non-integer ``block_size`` or ``axis``.
    """
    block_format, efmt = _resolve(fmt)
    a = _as_real_array(x)
    if block_format is not None:
        granularity, block_size, scale_fmt = _block_layout(block_format, granularity,
                                                           block_size, scale_fmt)
    granularity, block_size = check_granularity(granularity, block_size)
    if scale_fmt is None:  # E8M0 blocks for floats (MX), float32 otherwise
        scale_fmt = float8_e8m0fnu if (granularity == "block" and isinstance(efmt, FloatFormat)) \
            else float32
    recipe = recipe_for(efmt, get_format(scale_fmt))
    settings = recipe.validate(scale_rule=scale_rule, saturate=saturate, symmetric=symmetric,
                               global_scale=global_scale, reciprocal=reciprocal)
    grouping = Grouping.for_array(a.shape, granularity, axis, block_size, pad)
    q = recipe.quantize(a, grouping, rounding=rounding, seed=seed, **settings)
    return ScaledTensor(
        codes=q.codes, scales=q.scales, fmt=efmt, scale_fmt=recipe.scale,
        granularity=granularity, axis=None if granularity == "tensor" else grouping.axis,
        block_size=block_size, scheme=recipe.label if block_format is None else block_format.name,
        scale_rule=settings["scale_rule"], rounding=str(getattr(rounding, "value", rounding)),
        zero_point=q.zero_point, global_scale=q.global_scale,
        quant_multiplier=q.quant_multiplier, _grouping=grouping)


def _resolve(fmt) -> tuple[Optional[BlockFormat], Format]:
    """(block format or None, element format) of quantize_scaled's ``fmt``."""
    if isinstance(fmt, BlockFormat):
        return fmt, fmt.element
    if isinstance(fmt, str):
        try:
            bf = get_block_format(fmt)
        except ValueError:
            pass
        else:
            return bf, bf.element
    try:
        return None, get_format(fmt)
    except ValueError as e:
        raise ValueError(f"{e}; scaled schemes: {', '.join(sorted(SCHEMES))}") from None


def _block_layout(bf: BlockFormat, granularity, block_size, scale_fmt):
    """Granularity, block size and scale format of a block format, checked against the
    arguments given with it."""
    if granularity not in (None, "block"):
        raise ValueError(f"scheme {bf.name!r} is block scaled; granularity={granularity!r} "
                         f"does not apply (pass the element format instead)")
    if scale_fmt is not None and get_format(scale_fmt) != bf.scale:
        raise ValueError(f"scheme {bf.name!r} uses {bf.scale.name} scales; pass the "
                         f"element format to choose another scale format")
    return "block", bf.block_size if block_size is None else block_size, bf.scale


def _as_real_array(x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind == "c":
        raise TypeError(f"complex input (dtype {a.dtype}) cannot be quantized")
    if a.dtype in (np.float16, np.float32, np.float64):
        return a
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"cannot convert input of dtype {a.dtype} to floating point") from None


def mx_quantize(x, fmt: Union[str, BlockFormat] = "mxfp8_e4m3", *, axis: int = -1,
                scale_rule: str = "floor", **kw) -> ScaledTensor:
    """OCP MX quantization: shorthand for ``quantize_scaled(x, fmt, axis=axis, ...)``.

    Args:
        x: input array.
        fmt: an MX block format (power-of-two scales), by name or as a
            :class:`~lowprec.block_formats.BlockFormat`.
        axis: the axis blocks run along.
        scale_rule: "floor" (OCP), "ceil" or "rceil".
        **kw: as :func:`quantize_scaled`.

    Returns:
        A :class:`~lowprec.scaled.ScaledTensor`.

    Raises:
        ValueError: when ``fmt`` is not an MX block format, and as :func:`quantize_scaled`.
    """
    bf, _ = _resolve(fmt)
    if bf is None or not MXRecipe.applies(bf.element, bf.scale):
        mx = [b.name for b in list_block_formats() if MXRecipe.applies(b.element, b.scale)]
        raise ValueError(f"mx_quantize needs an MX scheme ({', '.join(mx)}), got {fmt!r}")
    return quantize_scaled(x, bf, axis=axis, scale_rule=scale_rule, **kw)


def nvfp4_quantize(x, *, axis: int = -1, global_scale: Union[str, float, None] = "auto",
                   **kw) -> ScaledTensor:
    """NVFP4: e2m1 elements in blocks of 16, E4M3 block scales, float32 tensor scale.

    Shorthand for ``quantize_scaled(x, "nvfp4", ...)``.

    Args:
        x: input array.
        axis: the axis blocks run along.
        global_scale: "auto" (from the tensor amax), a calibrated positive float, or None
            for single-level block scales.
        **kw: as :func:`quantize_scaled`.

    Returns:
        A :class:`~lowprec.scaled.ScaledTensor`.

    Raises:
        ValueError: as :func:`quantize_scaled`.
    """
    return quantize_scaled(x, "nvfp4", axis=axis, global_scale=global_scale, **kw)
