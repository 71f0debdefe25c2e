"""Scaled and block quantization: int8/int4, per-tensor fp8, OCP MX and NVFP4.

One entry point, :func:`quantize_scaled`, splits an array into *scaling groups* (the whole
tensor, one channel, or one block of consecutive values along an axis), derives one scale
per group from the group's absolute maximum (amax), and casts every element with the
foundation's :func:`lowprec.encode`. The result is a :class:`ScaledTensor` holding the
element codes, the scales and everything needed to :meth:`~ScaledTensor.dequantize`.

Which recipe runs is decided by the element format and the scale format (their
descriptors, :func:`~lowprec.scaled.recipes.recipe_for`):

==================  ==============  ===========================================================
element format      scale format    recipe
==================  ==============  ===========================================================
float or fixed      E8M0            OCP MX (power-of-two scales; ``scale_rule`` floor/ceil/rceil)
float               float32         per-tensor fp8 "current scaling" (Transformer Engine)
float               other float     two-level scaling as NVFP4 (E4M3 block scales under a
                                    float32 per-tensor scale)
integer             float32         int8/int4 symmetric (zero point 0) or asymmetric
==================  ==============  ===========================================================

Any scale format without mantissa bits counts as E8M0 (its exponent range bounds the
scales). Named block formats (:mod:`lowprec.block_formats`) fill in the element format,
block size and scale format: ``mxfp8_e4m3`` (alias ``mxfp8``), ``mxfp8_e5m2``,
``mxfp6_e3m2``, ``mxfp6_e2m3``, ``mxfp4_e2m1`` (alias ``mxfp4``), ``mxint8`` (blocks of 32,
E8M0 scales) and ``nvfp4`` (e2m1, blocks of 16, E4M3 scales, float32 tensor scale).

Layout rules, shared by every recipe:

* ``granularity="tensor"``: one scale; ``scales`` has shape ``()``.
* ``granularity="channel"``: one scale per index along ``axis`` (PyTorch's
  ``quantize_per_channel`` convention: the amax runs over all other axes); ``scales`` keeps
  the input's rank with size 1 on every other axis, so it broadcasts against the input.
* ``granularity="block"``: blocks of ``block_size`` consecutive values *along* ``axis``;
  a block never straddles two rows (two index tuples that differ off ``axis``).
  ``scales`` has the input's shape with ``axis`` replaced by the number of blocks.
  **Padding rule:** when ``block_size`` does not divide the axis, the last block of each row
  is shorter; it is quantized exactly as if zero-padded to ``block_size`` (zeros do not change
  the amax), and nothing is stored for the padding. Pass ``pad=False`` to get a ValueError
  instead.

Element codes always have the input's shape (one code per element, in ``fmt.code_dtype``);
:func:`pack` / :func:`unpack` (:mod:`lowprec.packing`) store 4-bit codes two per byte.

The package: :mod:`~lowprec.scaled.api` (the entry points), :mod:`~lowprec.scaled.grouping`
(scaling groups and the layout of the scales), :mod:`~lowprec.scaled.tensor`
(:class:`ScaledTensor`), :mod:`~lowprec.scaled.recipes` (which recipe runs) and one module
per recipe: :mod:`~lowprec.scaled.mx`, :mod:`~lowprec.scaled.two_level`,
:mod:`~lowprec.scaled.float32_scale`, :mod:`~lowprec.scaled.integer`, on the interface of
:mod:`~lowprec.scaled.base`.
"""

from ..packing import pack, unpack
from .api import SCHEMES, mx_quantize, nvfp4_quantize, quantize_scaled
from .base import Quantized, ScalingRecipe
from .float32_scale import Float32ScaleRecipe, fp8_scale
from .integer import IntegerRecipe
from .mx import MXRecipe, mx_scale_exponents
from .recipes import RECIPES, recipe_for
from .tensor import ScaledTensor
from .two_level import TwoLevelRecipe

__all__ = ["quantize_scaled", "ScaledTensor", "pack", "unpack", "mx_quantize",
           "nvfp4_quantize", "fp8_scale", "SCHEMES", "mx_scale_exponents", "ScalingRecipe",
           "Quantized", "MXRecipe", "TwoLevelRecipe", "Float32ScaleRecipe", "IntegerRecipe",
           "RECIPES", "recipe_for"]
