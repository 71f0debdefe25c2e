"""Block formats: element format, block size and scale format, as plain data.

A block format stores ``block_size`` consecutive values as element codes that share one
scale: value = element * scale. :class:`BlockFormat` describes one (gfloat's
``BlockFormatInfo`` is the same idea); :func:`lowprec.quantize_scaled` takes one, or its
name, and decides how the scales are derived from the element and scale formats (see
:mod:`lowprec.scaled`). Adding a block format is one line in :data:`_NAMED` below.

The named ones (OCP MX v1.0, NVIDIA NVFP4):

==============  ==================  ==========  ============
name            element             block size  scale
==============  ==================  ==========  ============
``mxfp8_e4m3``  float8_e4m3fn       32          E8M0
``mxfp8_e5m2``  float8_e5m2         32          E8M0
``mxfp6_e3m2``  float6_e3m2fn       32          E8M0
``mxfp6_e2m3``  float6_e2m3fn       32          E8M0
``mxfp4_e2m1``  float4_e2m1fn       32          E8M0
``mxint8``      fixed point <2, 6>  32          E8M0
``nvfp4``       float4_e2m1fn       16          float8_e4m3fn
==============  ==================  ==========  ============

Aliases: ``mxfp8`` (mxfp8_e4m3), ``mxfp6`` (mxfp6_e3m2), ``mxfp4`` (mxfp4_e2m1). NVFP4 adds a
float32 per-tensor scale above its block scales when it is quantized (``global_scale`` of
:func:`lowprec.quantize_scaled`); it is not part of the block layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .formats import FixedFormat, FloatFormat, Format, float4_e2m1fn, float6_e2m3fn, \
    float6_e3m2fn, float8_e4m3fn, float8_e5m2, float8_e8m0fnu, get_format

__all__ = ["BlockFormat", "get_block_format", "list_block_formats", "mxfp8_e4m3",
           "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8", "nvfp4"]


@dataclass(frozen=True)
class BlockFormat:
    """Blocks of ``block_size`` element codes sharing one scale code.

    Args:
        name: display name; not part of equality (two block formats with the same element
            format, block size and scale format are the same block format).
        element: element format (a descriptor or a format name).
        block_size: elements per block (>= 1).
        scale: scale format, a float format (a descriptor or a format name).

    Raises:
        TypeError: for a name that is not a string, a block size that is not an int, or
            formats that are neither descriptors nor names.
        ValueError: for an empty name, a block size below 1, an unknown format name or a
            scale format that is not a float format.
    """

    name: str = field(compare=False)
    element: Format
    block_size: int
    scale: FloatFormat

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"BlockFormat name must be a string, got {self.name!r}")
        if not self.name:
            raise ValueError("BlockFormat name must not be empty")
        object.__setattr__(self, "element", _format_arg(self, "element"))
        object.__setattr__(self, "scale", _format_arg(self, "scale"))
        bs = self.block_size
        if isinstance(bs, (bool, np.bool_)) or not isinstance(bs, (int, np.integer)):
            raise TypeError(f"BlockFormat {self.name!r}: block_size must be an int, got {bs!r}")
        if bs < 1:
            raise ValueError(f"BlockFormat {self.name!r}: block_size must be positive, got {bs}")
        object.__setattr__(self, "block_size", int(bs))
        if not isinstance(self.scale, FloatFormat):
            raise ValueError(f"BlockFormat {self.name!r}: the scale format must be a float "
                             f"format, got {self.scale.name}")

    @property
    def element_bits(self) -> int:
        """Bits of one element code."""
        return self.element.bits

    @property
    def scale_bits(self) -> int:
        """Bits of one scale code."""
        return self.scale.bits

    @property
    def block_bits(self) -> int:
        """Bits of one whole block: its element codes and its scale code."""
        return self.block_size * self.element_bits + self.scale_bits

    @property
    def bits_per_element(self) -> float:
        """Storage cost per element, the scale spread over the block (MXFP8: 8.25)."""
        return self.block_bits / self.block_size

    def as_tuple(self) -> tuple[Format, int, FloatFormat]:
        """``(element, block_size, scale)``: the values of :data:`lowprec.scaled.SCHEMES`."""
        return self.element, self.block_size, self.scale

    def __repr__(self) -> str:
        return (f"BlockFormat({self.name!r}: {self.element.name} x {self.block_size}, "
                f"scale {self.scale.name})")


def _format_arg(bf: BlockFormat, arg: str) -> Format:
    value = getattr(bf, arg)
    if isinstance(value, (FloatFormat, FixedFormat)):
        return value
    if not isinstance(value, str):
        raise TypeError(f"BlockFormat {bf.name!r}: {arg} must be a format or a format name, "
                        f"got {value!r}")
    return get_format(value)


# The named block formats, one line each. Sources: OCP MX v1.0 (table 1), NVIDIA's NVFP4
# (Blackwell tcgen05 block scaling; torchao's NVFP4Tensor).
mxfp8_e4m3 = BlockFormat("mxfp8_e4m3", float8_e4m3fn, 32, float8_e8m0fnu)
mxfp8_e5m2 = BlockFormat("mxfp8_e5m2", float8_e5m2, 32, float8_e8m0fnu)
mxfp6_e3m2 = BlockFormat("mxfp6_e3m2", float6_e3m2fn, 32, float8_e8m0fnu)
mxfp6_e2m3 = BlockFormat("mxfp6_e2m3", float6_e2m3fn, 32, float8_e8m0fnu)
mxfp4_e2m1 = BlockFormat("mxfp4_e2m1", float4_e2m1fn, 32, float8_e8m0fnu)
# MXINT8 elements are 8-bit two's complement with an implicit scale of 2^-6 (values
# -2 .. 1 63/64), i.e. fixed point <2, 6>; gfloat's format_info_ocp_int8 decodes the same
# values. Its emax_elem is 0.
mxint8 = BlockFormat("mxint8", FixedFormat(2, 6, name="mxint8_element"), 32, float8_e8m0fnu)
nvfp4 = BlockFormat("nvfp4", float4_e2m1fn, 16, float8_e4m3fn)

# Registry order and aliases.
_NAMED: list[tuple[BlockFormat, tuple[str, ...]]] = [
    (mxfp8_e4m3, ("mxfp8",)),
    (mxfp8_e5m2, ()),
    (mxfp6_e3m2, ("mxfp6",)),
    (mxfp6_e2m3, ()),
    (mxfp4_e2m1, ("mxfp4",)),
    (mxint8, ()),
    (nvfp4, ()),
]

_REGISTRY: dict[str, BlockFormat] = {}
_ALIASES: dict[str, str] = {}
for _bf, _aliases in _NAMED:
    _REGISTRY[_bf.name] = _bf
    for _a in _aliases:
        _ALIASES[_a] = _bf.name


def list_block_formats() -> list[BlockFormat]:
    """All named block formats, in registry order."""
    return list(_REGISTRY.values())


def get_block_format(name: "str | BlockFormat") -> BlockFormat:
    """Resolve a block-format name or alias (case-insensitive; ``-`` reads as ``_``).

    Args:
        name: e.g. ``"mxfp8"``, ``"mxfp4_e2m1"``, ``"nvfp4"``, or a :class:`BlockFormat`
            (returned as is).

    Returns:
        The block format.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
        TypeError: for an argument that is neither a string nor a block format.
    """
    if isinstance(name, BlockFormat):
        return name
    if not isinstance(name, str):
        raise TypeError(f"expected a block format name or BlockFormat, got "
                        f"{type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    raise ValueError(f"unknown block format {name!r}; known: {', '.join(_REGISTRY)}; "
                     f"aliases: {', '.join(sorted(_ALIASES))}")
