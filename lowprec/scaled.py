"""Scaled and block quantization: int8/int4, per-tensor fp8, OCP MX and NVFP4.

One entry point, :func:`quantize_scaled`, splits an array into *scaling groups* (the whole
tensor, one channel, or one block of consecutive values along an axis), derives one scale
per group from the group's absolute maximum (amax), and casts every element with the
foundation's :func:`lowprec.encode`. The result is a :class:`ScaledTensor` holding the
element codes, the scales and everything needed to :meth:`~ScaledTensor.dequantize`.

Which recipe runs is decided by the element format and the scale format:

==================  ==============  ===========================================================
element format      scale format    recipe
==================  ==============  ===========================================================
float or fixed      E8M0            OCP MX (power-of-two scales; ``scale_rule`` floor/ceil/rceil)
float               float32         per-tensor fp8 "current scaling" (Transformer Engine)
float               other float     two-level scaling as NVFP4 (E4M3 block scales under a
                                    float32 per-tensor scale)
integer             float32         int8/int4 symmetric (zero point 0) or asymmetric
==================  ==============  ===========================================================

Named schemes fill in the element format, block size and scale format:
``mxfp8_e4m3`` (alias ``mxfp8``), ``mxfp8_e5m2``, ``mxfp6_e3m2``, ``mxfp6_e2m3``,
``mxfp4_e2m1`` (alias ``mxfp4``), ``mxint8`` (blocks of 32, E8M0 scales) and ``nvfp4``
(e2m1, blocks of 16, E4M3 scales, float32 tensor scale).

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
:func:`pack` / :func:`unpack` store 4-bit codes two per byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional, Union

import numpy as np

from .block_formats import get_block_format, list_block_formats
from .formats import FixedFormat, FloatFormat, Format, get_format
from .packing import pack, unpack
from .quantize import decode, encode

__all__ = ["quantize_scaled", "ScaledTensor", "pack", "unpack", "mx_quantize",
           "nvfp4_quantize", "fp8_scale", "SCHEMES"]

_E8M0 = get_format("float8_e8m0fnu")
_F32 = get_format("float32")

#: Named schemes, read-only: name -> (element format, block size, scale format), from the
#: registry of :mod:`lowprec.block_formats`.
SCHEMES: Mapping[str, tuple[Format, int, Format]] = MappingProxyType(
    {bf.name: bf.as_tuple() for bf in list_block_formats()})

_GRANULARITIES = ("tensor", "channel", "block")
_MX_RULES = ("floor", "ceil", "rceil")
_TWO_LEVEL_RULES = ("nearest", "rceil")
_FLOAT32_RULES = ("amax", "pow2")
_INT_RULES = ("amax",)

_TINY32 = float(np.finfo(np.float32).tiny)  # 2^-126
_MAX32 = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------------------
# grouping: a 2-D (groups, members) view of the input and the way back
# --------------------------------------------------------------------------------------
class _Grouping:
    """Rows of ``to_groups`` are scaling groups; ``from_groups`` inverts it."""

    def __init__(self, shape: tuple, granularity: str, axis: int, block_size: int):
        self.shape, self.granularity, self.axis, self.block_size = shape, granularity, axis, \
            block_size
        if granularity == "tensor":
            self.scale_shape = ()
        elif granularity == "channel":
            self.scale_shape = tuple(n if i == axis else 1 for i, n in enumerate(shape))
        else:
            n = shape[axis]
            self.nblocks = -(-n // block_size)
            self.scale_shape = shape[:axis] + (self.nblocks,) + shape[axis + 1:]

    def to_groups(self, a: np.ndarray, fill=0) -> np.ndarray:
        if self.granularity == "tensor":
            return a.reshape(1, -1)
        if self.granularity == "channel":
            return np.moveaxis(a, self.axis, 0).reshape(self.shape[self.axis], -1)
        m = np.moveaxis(a, self.axis, -1)
        n = m.shape[-1]
        m = m.reshape(self._rows(), n)  # explicit row count: -1 is ambiguous for empty input
        padded = self.nblocks * self.block_size
        if padded != n:
            m = np.concatenate([m, np.full((m.shape[0], padded - n), fill, m.dtype)], axis=1)
        return m.reshape(-1, self.block_size)

    def from_groups(self, g: np.ndarray) -> np.ndarray:
        if self.granularity == "tensor":
            return g.reshape(self.shape)
        if self.granularity == "channel":
            moved = (self.shape[self.axis],) + tuple(
                n for i, n in enumerate(self.shape) if i != self.axis)
            return np.moveaxis(g.reshape(moved), 0, self.axis)
        n = self.shape[self.axis]
        rows = g.reshape(self._rows(), self.nblocks * self.block_size)[:, :n]
        moved = tuple(s for i, s in enumerate(self.shape) if i != self.axis) + (n,)
        return np.moveaxis(rows.reshape(moved), -1, self.axis)

    def scales_to_groups(self, s: np.ndarray) -> np.ndarray:
        """Per-group scales (in ``scale_shape``) as a flat vector in group order."""
        if self.granularity == "tensor":
            return np.asarray(s).reshape(1)
        if self.granularity == "channel":
            return np.asarray(s).reshape(-1)
        return np.moveaxis(np.asarray(s), self.axis, -1).reshape(-1)

    def scales_from_groups(self, v: np.ndarray) -> np.ndarray:
        if self.granularity == "tensor":
            return v.reshape(())
        if self.granularity == "channel":
            return v.reshape(self.scale_shape)
        moved = tuple(s for i, s in enumerate(self.shape) if i != self.axis) + (self.nblocks,)
        return np.moveaxis(v.reshape(moved), -1, self.axis)

    def expand(self, v: np.ndarray) -> np.ndarray:
        """Broadcast one value per group to one value per element (input shape)."""
        g = np.broadcast_to(v[:, None], (v.size, self._members()))
        return self.from_groups(g)

    def _rows(self) -> int:
        """Rows of blocks: index tuples off ``axis``."""
        return int(np.prod([n for i, n in enumerate(self.shape) if i != self.axis],
                           dtype=np.int64))

    def _members(self) -> int:
        if self.granularity == "tensor":
            return int(np.prod(self.shape, dtype=np.int64))
        if self.granularity == "channel":
            n = self.shape[self.axis]
            return int(np.prod(self.shape, dtype=np.int64)) // n if n else 0
        return self.block_size


# --------------------------------------------------------------------------------------
# the container
# --------------------------------------------------------------------------------------
@dataclass(repr=False, eq=False)
class ScaledTensor:
    """Element codes plus scales: the result of :func:`quantize_scaled`.

    Attributes:
        codes: element codes, shape of the input, dtype ``fmt.code_dtype`` (integer formats:
            two's complement words, as :func:`lowprec.encode` gives them).
        scales: float64 array of *dequantization* scales (value = element value * scale),
            each exactly representable in ``scale_fmt``; NaN marks a block whose input held
            NaN or infinity. Shape: see the module docstring. For NVFP4 these are the E4M3
            block scales *before* the global scale is applied.
        fmt: element format.
        scale_fmt: scale format.
        scheme: the named scheme or recipe.
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
    _grouping: Optional[_Grouping] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._grouping is None:  # built by hand rather than by quantize_scaled
            self._grouping = _Grouping(self.codes.shape, self.granularity,
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
        """
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"dtype must be a float dtype, got {dt}")
        g = self._grouping
        elem = decode(self.codes, self.fmt, dtype=np.float64)
        s = g.expand(g.scales_to_groups(self.scales).astype(np.float64))
        kind = _kind(self.fmt, self.scale_fmt)
        if kind == "mx":
            with np.errstate(invalid="ignore", over="ignore"):
                out = elem * s  # exact: power-of-two scale, float64 range suffices
            return out.astype(dt)
        if kind == "int":
            zp = 0.0 if self.zero_point is None else \
                g.expand(g.scales_to_groups(self.zero_point).astype(np.float64))
            out = ((elem - zp) * s).astype(np.float32)  # exact product, one rounding
            return out.astype(dt)
        if kind == "two_level" and self.global_scale is not None:
            with np.errstate(invalid="ignore", over="ignore"):
                s = (np.float32(self.global_scale) * s.astype(np.float32)).astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            out = (elem * s).astype(np.float32)  # both factors fp32: exact product, one rounding
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


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
def _kind(fmt: Format, scale_fmt: Format) -> str:
    if scale_fmt == _E8M0:
        return "mx"
    if isinstance(fmt, FixedFormat):
        return "int"
    if scale_fmt == _F32:
        return "float32"
    return "two_level"


def _resolve_scheme(fmt):
    if isinstance(fmt, str):
        try:
            bf = get_block_format(fmt)
        except ValueError:
            pass
        else:
            return bf.name, bf.as_tuple()
    try:
        return None, (get_format(fmt), None, None)
    except ValueError as e:
        raise ValueError(f"{e}; scaled schemes: {', '.join(sorted(SCHEMES))}") from None


def quantize_scaled(x, fmt, *, granularity: Optional[str] = None, axis: int = -1,
                    block_size: Optional[int] = None, scale_fmt=None,
                    scale_rule: Optional[str] = None, symmetric: bool = True,
                    global_scale: Union[str, float, None] = "auto", rounding="rne",
                    saturate: bool = True, pad: bool = True,
                    seed: Optional[int] = None, reciprocal: bool = True) -> ScaledTensor:
    """Quantize an array with one scale per tensor, channel or block.

    Args:
        x: array-like of real numbers (float16/32/64, bfloat16 via ml_dtypes, integers).
        fmt: a named scheme (``"mxfp8_e4m3"``/``"mxfp8"``, ``"mxfp8_e5m2"``,
            ``"mxfp6_e3m2"``, ``"mxfp6_e2m3"``, ``"mxfp4_e2m1"``/``"mxfp4"``, ``"mxint8"``,
            ``"nvfp4"``) or an element format (``"int8"``, ``"int4"``, ``"uint8"``,
            ``"e4m3"``, any :class:`~lowprec.FloatFormat`/:class:`~lowprec.FixedFormat`).
        granularity: "tensor", "channel" or "block". Default: "block" for named schemes or
            when ``block_size`` is given, "tensor" otherwise.
        axis: for "channel", the channel axis (one scale per index along it); for "block",
            the axis the blocks run along. Ignored for "tensor".
        block_size: values per block (default: the scheme's, else 32).
        scale_fmt: scale format. Default: the scheme's; E8M0 for float elements in blocks;
            float32 otherwise. E8M0 selects the MX recipe, float32 the fp8-current-scaling
            or integer recipe, any other float format two-level (NVFP4-style) scaling.
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
        ValueError: unknown scheme/format/granularity/rule, axis out of range, bad block
            size, combinations that do not exist (e.g. an integer format with E8M0 scales is
            fine, with E4M3 scales is not), non-finite or non-positive ``global_scale``,
            NaN/inf input for integer formats, ``saturate=False`` for integer elements.
        TypeError: non-numeric input, non-integer ``block_size`` or ``axis``.
    """
    name, (efmt, scheme_block, scheme_scale) = _resolve_scheme(fmt)
    a = _as_real_array(x)
    if name is not None:
        if granularity not in (None, "block"):
            raise ValueError(f"scheme {name!r} is block scaled; granularity={granularity!r} "
                             f"does not apply (pass the element format instead)")
        if scale_fmt is not None and get_format(scale_fmt) != scheme_scale:
            raise ValueError(f"scheme {name!r} uses {scheme_scale.name} scales; pass the "
                             f"element format to choose another scale format")
        granularity = "block"
        scale_fmt = scheme_scale
        block_size = scheme_block if block_size is None else block_size
    if granularity is None:
        granularity = "block" if block_size is not None else "tensor"
    if granularity not in _GRANULARITIES:
        raise ValueError(f"granularity must be one of {_GRANULARITIES}, got {granularity!r}")
    if granularity == "block":
        block_size = 32 if block_size is None else block_size
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        block_size = int(block_size)
    elif block_size is not None:
        raise ValueError(f"block_size={block_size} needs granularity='block' "
                         f"(got {granularity!r})")
    if scale_fmt is None:
        scale_fmt = _E8M0 if (granularity == "block" and isinstance(efmt, FloatFormat)) \
            else _F32
    scale_fmt = get_format(scale_fmt)
    kind = _kind(efmt, scale_fmt)
    if kind == "int" and efmt.frac_bits != 0:
        raise ValueError(f"fixed-point elements ({efmt.name}) take E8M0 scales (as MXINT8); "
                         f"float32-scaled quantization is for integer formats")
    if kind == "int" and scale_fmt != _F32:
        raise ValueError(f"integer/fixed-point elements ({efmt.name}) take float32 or E8M0 "
                         f"scales, not {scale_fmt.name}")
    if kind == "two_level" and not isinstance(scale_fmt, FloatFormat):
        raise ValueError(f"scale format must be a float format, got {scale_fmt.name}")
    rules = {"mx": _MX_RULES, "two_level": _TWO_LEVEL_RULES, "float32": _FLOAT32_RULES,
             "int": _INT_RULES}[kind]
    scale_rule = rules[0] if scale_rule is None else str(scale_rule).lower()
    if scale_rule not in rules:
        raise ValueError(f"scale_rule for {efmt.name} elements with {scale_fmt.name} scales "
                         f"must be one of {rules}, got {scale_rule!r}")
    if not isinstance(saturate, (bool, np.bool_)):
        raise TypeError(f"saturate must be True or False, got {saturate!r}")
    if isinstance(efmt, FixedFormat) and not saturate:
        raise ValueError(f"{efmt.name} elements always saturate (clamp to "
                         f"[{efmt.min:g}, {efmt.max:g}]); saturate=False is not supported")
    if kind == "int" and symmetric is not True and symmetric is not False:
        raise TypeError(f"symmetric must be True or False, got {symmetric!r}")
    if kind != "int" and symmetric is not True:
        raise ValueError(f"symmetric=False (zero points) is for integer formats, not "
                         f"{efmt.name} with {scale_fmt.name} scales")
    if not isinstance(reciprocal, (bool, np.bool_)):
        raise TypeError(f"reciprocal must be True or False, got {reciprocal!r}")
    if kind != "two_level" and not reciprocal:
        raise ValueError(f"reciprocal=False is for two-level scaling (e.g. nvfp4), not "
                         f"{efmt.name} with {scale_fmt.name} scales")
    if kind != "two_level" and global_scale != "auto":
        raise ValueError(f"global_scale is for two-level scaling (e.g. nvfp4), not "
                         f"{efmt.name} with {scale_fmt.name} scales")
    if kind == "two_level" and global_scale is not None and not isinstance(global_scale, str):
        g = float(global_scale)
        if not np.isfinite(g) or g <= 0:
            raise ValueError(f"global_scale must be a positive finite float, got "
                             f"{global_scale!r}")
    elif kind == "two_level" and global_scale not in ("auto", None):
        raise ValueError(f"global_scale must be 'auto', a float or None, got {global_scale!r}")
    if granularity == "tensor":
        ax = None
    else:
        if a.ndim == 0:
            raise ValueError(f"granularity={granularity!r} needs an array with at least one "
                             f"dimension, got a scalar")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int, got {type(axis).__name__}")
        if not -a.ndim <= axis < a.ndim:
            raise ValueError(f"axis {axis} is out of range for an array of shape {a.shape}")
        ax = int(axis) % a.ndim
        if granularity == "block" and not pad and a.shape[ax] % block_size:
            raise ValueError(f"block_size {block_size} does not divide axis {ax} of length "
                             f"{a.shape[ax]} (shape {a.shape}); pass pad=True to let the last "
                             f"block of each row be partial")
    grouping = _Grouping(a.shape, granularity, ax if ax is not None else 0, block_size or 1)
    opts = dict(rounding=rounding, seed=seed)
    label = name or {"mx": f"mx_{efmt.name}", "two_level": f"two_level_{efmt.name}",
                     "float32": f"{efmt.name}_scaled", "int": f"{efmt.name}_scaled"}[kind]
    common = dict(fmt=efmt, scale_fmt=scale_fmt, granularity=granularity, axis=ax,
                  block_size=block_size if granularity == "block" else None, scheme=label,
                  scale_rule=scale_rule, rounding=str(getattr(rounding, "value", rounding)),
                  _grouping=grouping)
    if kind == "mx":
        codes, scales = _quantize_mx(a, efmt, grouping, scale_rule, saturate, opts)
        return ScaledTensor(codes=codes, scales=scales, **common)
    if kind == "two_level":
        codes, scales, gs = _quantize_two_level(a, efmt, scale_fmt, grouping, scale_rule,
                                                global_scale, saturate, bool(reciprocal), opts)
        return ScaledTensor(codes=codes, scales=scales, global_scale=gs, **common)
    if kind == "float32":
        codes, scales, mult = _quantize_float32(a, efmt, grouping, scale_rule, saturate, opts)
        return ScaledTensor(codes=codes, scales=scales, quant_multiplier=mult, **common)
    codes, scales, zp, mult = _quantize_int(a, efmt, grouping, symmetric, opts)
    return ScaledTensor(codes=codes, scales=scales, zero_point=zp, quant_multiplier=mult,
                        **common)


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


def _amax(groups: np.ndarray) -> np.ndarray:
    """Per-row max |x|; NaN if the row holds a NaN; 0 for empty rows."""
    if groups.shape[1] == 0:
        return np.zeros(groups.shape[0], groups.dtype)
    return np.max(np.abs(groups), axis=1)


def _elem_emax(efmt: Format) -> int:
    """Exponent of the largest power of two the element format holds (OCP's emax_elem)."""
    if isinstance(efmt, FloatFormat):
        return efmt.emax
    return int(np.frexp(efmt.max)[1]) - 1


# --------------------------------------------------------------------------------------
# MX: power-of-two E8M0 scales
# --------------------------------------------------------------------------------------
def mx_scale_exponents(amax: np.ndarray, efmt: Format, rule: str) -> np.ndarray:
    """Unclamped shared exponents E (scale 2^E) for finite, positive amax values.

    Exponents come from the bits (``np.frexp``), never from ``floor(log2(.))``, which is
    wrong just below powers of two. amax = 0 gives the smallest E8M0 exponent, -127.

    Args:
        amax: float64 array of block amaxes (finite, >= 0).
        efmt: element format.
        rule: "floor", "ceil" or "rceil" (see :func:`quantize_scaled`).

    Returns:
        int64 array of exponents (not yet clamped to E8M0's [-127, 127]).
    """
    m, e = np.frexp(amax)  # amax = m * 2^e, m in [0.5, 1)
    e = e.astype(np.int64)
    if rule == "floor":
        out = (e - 1) - _elem_emax(efmt)
    elif rule == "ceil":
        out = np.where(m == 0.5, e - 1, e) - _elem_emax(efmt)
    else:  # rceil: least E with amax <= max_elem * 2^E, by comparing significands exactly
        mm, em = np.frexp(float(efmt.max))
        out = (e - em) + (m > mm)
    return np.where(amax == 0, -127, out)


def _quantize_mx(a, efmt, grouping, rule, saturate, opts):
    x = a.astype(np.float64)
    groups = grouping.to_groups(x)
    amax = _amax(groups)
    bad = ~np.isfinite(amax)
    exps = mx_scale_exponents(np.where(bad, 0.0, amax), efmt, rule)
    exps = np.maximum(exps, -127)
    over = exps > 127
    exps = np.minimum(exps, 127)
    nan_scale = bad | (over & (not saturate))
    scales_g = np.where(nan_scale, np.nan, np.ldexp(1.0, exps))
    e_el = grouping.expand(np.where(nan_scale, 0, exps))
    v = np.ldexp(x, -e_el)
    # Quotients below float64's range underflow to 0; keep them non-zero so directed
    # rounding still sees a value strictly between 0 and the element's smallest subnormal.
    lost = (v == 0) & (x != 0)
    if lost.any():
        v[lost] = np.copysign(5e-324, x[lost])
    codes = encode(v, efmt, overflow="saturate" if saturate else None, nan="zero", **opts)
    if nan_scale.any():
        fill = encode(np.nan, efmt) if efmt.has_nan else 0
        cg = grouping.to_groups(codes)
        cg[nan_scale] = fill
        codes = np.ascontiguousarray(grouping.from_groups(cg))
    return codes, grouping.scales_from_groups(scales_g)


def mx_quantize(x, fmt: str = "mxfp8_e4m3", *, axis: int = -1, scale_rule: str = "floor",
                **kw) -> ScaledTensor:
    """OCP MX quantization: shorthand for ``quantize_scaled(x, fmt, axis=axis, ...)``.

    Args:
        x: input array. fmt: an MX scheme name. axis: the axis blocks run along.
        scale_rule: "floor" (OCP), "ceil" or "rceil". **kw: as :func:`quantize_scaled`.

    Raises:
        ValueError: when ``fmt`` is not an MX scheme, and as :func:`quantize_scaled`.
    """
    name, (_, _, sf) = _resolve_scheme(fmt)
    if name is None or sf != _E8M0:
        raise ValueError(f"mx_quantize needs an MX scheme "
                         f"({', '.join(k for k, v in SCHEMES.items() if v[2] == _E8M0)}), "
                         f"got {fmt!r}")
    return quantize_scaled(x, name, axis=axis, scale_rule=scale_rule, **kw)


# --------------------------------------------------------------------------------------
# two-level scaling (NVFP4): low-precision float block scales under a float32 tensor scale
# --------------------------------------------------------------------------------------
def _quantize_two_level(a, efmt, sfmt, grouping, rule, global_scale, saturate, reciprocal,
                        opts):
    """torchao ``nvfp4_quantize`` (torchao/prototype/mx_formats/nvfp4_tensor.py), in float32.

    With amax the float32 block amax, G the global scale, S_max/E_max the scale and element
    format maxima:  s = fp32(fp32(amax / E_max) / G), clamped to [smallest normal of the
    scale format, S_max] and rounded into the scale format (RNE; "rceil" rounds up);
    elements fp32(x * fp32(fp32(1 / G) / s)) (``reciprocal``, torchao >= 0.18) or
    fp32(x / fp32(G * s)), clamped to [-E_max, E_max], then cast. G = "auto" is
    fp32(tensor_amax / fp32(S_max * E_max)) (torchao ``per_tensor_amax_to_scale``).
    Deviations, where torchao has no defined answer: a tensor whose finite amax is 0 gets
    G = 1 (torchao divides 0/0); an automatic G below 2^-126 is raised to 2^-126 (torchao's
    fp32(1 / G) would overflow and turn zeros into NaN); blocks holding NaN/inf get the NaN
    scale code and element code 0, and are left out of the tensor amax.
    """
    x = a.astype(np.float32)
    groups = grouping.to_groups(x)
    amax = _amax(groups)
    bad = ~np.isfinite(amax)
    if bad.any() and not sfmt.has_nan:
        raise ValueError(f"input holds NaN or inf, but scale format {sfmt.name} has no NaN "
                         f"to mark those blocks")
    emax = np.float32(efmt.max)
    if global_scale == "auto":
        finite = amax[~bad]
        tmax = np.float32(finite.max()) if finite.size else np.float32(0)
        g = np.float32(tmax / np.float32(sfmt.max * efmt.max)) if tmax > 0 else np.float32(1)
        if not (np.isfinite(g) and g >= np.float32(_TINY32)):
            g = np.float32(_TINY32)
    elif global_scale is None:
        g = None
    else:
        g = np.float32(global_scale)
        if not (np.isfinite(g) and g > 0):
            raise ValueError(f"global_scale {global_scale!r} is not a positive finite float32")
        if reciprocal and not np.isfinite(np.float32(1) / g):
            raise ValueError(f"global_scale {global_scale!r} is so small that its float32 "
                             f"reciprocal overflows; pass reciprocal=False to divide instead")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        bs = np.where(bad, np.float32(0), amax) / emax
        if g is not None:
            bs = bs / g
        bs = np.clip(bs, np.float32(sfmt.min_normal), np.float32(sfmt.max)).astype(np.float32)
    s_codes = encode(bs, sfmt, rounding="rup" if rule == "rceil" else "rne",
                     overflow="saturate")
    s = decode(s_codes, sfmt, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if reciprocal:
            inv = np.float32(1) / s if g is None else (np.float32(1) / g) / s
            v = x * grouping.expand(inv.astype(np.float32))
        else:
            total = s if g is None else (g * s).astype(np.float32)
            v = x / grouping.expand(total)
    if saturate:
        v = np.clip(v, -emax, emax)
    v = np.where(grouping.expand(bad), np.float32(0), v)
    codes = encode(v, efmt, overflow="saturate" if saturate else None, **opts)
    scales_g = np.where(bad, np.nan, s.astype(np.float64))
    return codes, grouping.scales_from_groups(scales_g), (None if g is None else float(g))


def nvfp4_quantize(x, *, axis: int = -1, global_scale: Union[str, float, None] = "auto",
                   **kw) -> ScaledTensor:
    """NVFP4: e2m1 elements in blocks of 16, E4M3 block scales, float32 tensor scale.

    Shorthand for ``quantize_scaled(x, "nvfp4", ...)``; see :func:`quantize_scaled`.
    """
    return quantize_scaled(x, "nvfp4", axis=axis, global_scale=global_scale, **kw)


# --------------------------------------------------------------------------------------
# float32 scales: fp8 current scaling (Transformer Engine)
# --------------------------------------------------------------------------------------
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
        fmt: element format. pow2: power-of-two scales.

    Returns:
        float32 array of multipliers (shape of ``amax``).
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


def _quantize_float32(a, efmt, grouping, rule, saturate, opts):
    x = a.astype(np.float32)
    amax = _amax(grouping.to_groups(x))
    mult = fp8_scale(amax, efmt, pow2=(rule == "pow2"))
    with np.errstate(over="ignore", invalid="ignore"):
        v = x * grouping.expand(mult)
        inv = (np.float32(1) / mult).astype(np.float32)
    codes = encode(v, efmt, overflow="saturate" if saturate else None, **opts)
    return (codes, grouping.scales_from_groups(inv.astype(np.float64)),
            grouping.scales_from_groups(mult))


# --------------------------------------------------------------------------------------
# integers: symmetric and affine
# --------------------------------------------------------------------------------------
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


def _quantize_int(a, efmt, grouping, symmetric, opts):
    if a.size and not np.isfinite(a).all():
        raise ValueError(f"input holds NaN or inf; {efmt.name} has no code for them")
    x = a.astype(np.float32)
    groups = grouping.to_groups(x)
    if symmetric:
        if not efmt.signed:
            raise ValueError(f"symmetric quantization needs a signed format, got {efmt.name}; "
                             f"pass symmetric=False")
        qmax = (1 << (efmt.bits - 1)) - 1
        qmin = -qmax
        amax = _amax(groups)
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
    q = encode(y, "int32", overflow="saturate", **opts).view(np.int32).astype(np.int64)
    q = np.clip(q, qmin, qmax)
    codes = (q & ((1 << efmt.bits) - 1)).astype(efmt.code_dtype)
    return (codes, grouping.scales_from_groups(scale.astype(np.float64)),
            grouping.scales_from_groups(zp.astype(np.int64)) if not symmetric else None,
            grouping.scales_from_groups(inv))
