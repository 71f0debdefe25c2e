"""fp8 and fp4 scaling recipes, for any float element format:

* :class:`CurrentScaling` and :class:`DelayedScaling`: Transformer Engine's per-tensor
  recipes (``transformer_engine/common/recipe``), with the amax history
  (:class:`AmaxHistory`) that delayed scaling keeps per tensor;
* :class:`MXScaling`: OCP MX block scaling as TE's ``MXFP8BlockScaling``;
* :class:`FineGrainedScaling`: DeepSeek-V3's 1x128 tiles and 128x128 blocks with fp32
  scales (:func:`tile_quantize`);
* :class:`NVFP4Scaling`: NVIDIA's NVFP4 training recipe (:func:`nvfp4_cast`,
  :func:`random_hadamard`).

The recipes are plain settings; :class:`lowprec.autograd.autocast.Autocast` applies them
when it casts a GEMM operand. The functions here are the casts they name, on numpy arrays.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from ..formats import Format
from ..quantize import encode
from ..scaled import quantize_scaled

__all__ = ["CurrentScaling", "DelayedScaling", "MXScaling", "FineGrainedScaling",
           "NVFP4Scaling", "Scaling", "SCALINGS", "AmaxHistory", "tile_quantize",
           "nvfp4_cast", "hadamard_signs", "random_hadamard"]

_F32MAX = np.float32(np.finfo(np.float32).max)


@dataclass(frozen=True)
class CurrentScaling:
    """Per-tensor scaling from the tensor's own amax (TE ``Float8CurrentScaling``).

    amax is the largest |x| with NaN ignored (TE's amax kernel reduces with ``fmaxf``); an
    infinity is kept. scale = fp32(fmt.max / amax), 1 when amax is 0, inf or NaN, float32
    max when the quotient overflows (``compute_scale_from_amax`` in
    ``recipe_common.cuh``). Values are cast as ``fmt(fp32(x * scale))``; the GEMM result is
    multiplied by ``fp32(1/scale_a) * fp32(1/scale_b)``.
    """


@dataclass(frozen=True)
class DelayedScaling:
    """Per-tensor scaling from a history of earlier amaxes (TE ``DelayedScaling``).

    Each tracked tensor keeps the last ``amax_history_len`` amaxes. A cast uses the
    current scale, then records its amax and recomputes the scale for the next cast:
    amax = max of the window (``"max"``) or the latest amax (``"most_recent"``);
    scale = fp32(fp32(fmt.max * 2^-margin) / amax), unchanged when that amax is 0 or not
    finite (``delayed_scaling.cu``). The first cast of a tensor uses scale 1.

    Args:
        margin: extra headroom in binades.
        amax_history_len: window length (TE's default 1024).
        amax_compute_algo: "max" (default) or "most_recent".

    Raises:
        ValueError: for an unknown ``amax_compute_algo`` or a window shorter than 1.
    """

    margin: int = 0
    amax_history_len: int = 1024
    amax_compute_algo: str = "max"

    def __post_init__(self):
        if self.amax_compute_algo not in ("max", "most_recent"):
            raise ValueError(f"amax_compute_algo must be 'max' or 'most_recent', got "
                             f"{self.amax_compute_algo!r}")
        if int(self.amax_history_len) < 1:
            raise ValueError(f"amax_history_len must be >= 1, got {self.amax_history_len!r}")


@dataclass(frozen=True)
class MXScaling:
    """Block scaling (OCP MX v1.0; TE ``MXFP8BlockScaling``): each block of ``block_size``
    consecutive values along the GEMM's reduction axis shares one E8M0 power-of-two scale.

    Each GEMM gets its operands quantized along its own reduction axis from the
    high-precision tensor (forward and backward layouts differ), as TE does "to avoid
    double quantization errors". The dequantized elements are exact float32 values, and
    the GEMM runs on them with the policy's accumulator.

    Args:
        block_size: values per block (32 in MX).
        scale_rule: "rceil" (default; TE's MXFP8 cast: the E8M0 conversion of
            ``amax * fp32(1 / fmt.max)`` rounded up, ``float_to_e8m0`` in TE's
            ``ptx.cuh``; for E4M3 and E5M2, whose maxima are 7 * 2^k, that fp32 product
            never crosses a power of two that amax / fmt.max does not, so it is
            2^ceil(log2(amax / fmt.max)) exactly: no element saturates), "ceil" (torchao
            ``ScaleCalculationMode.CEIL``: 2^(ceil(log2 amax) - emax_elem), which can
            leave the top binade unused) or "floor" (OCP MX v1.0 sec. 6.3:
            2^(floor(log2 amax) - emax_elem); large elements saturate). See
            :func:`lowprec.quantize_scaled`.

    Raises:
        ValueError: for a block size below 1 or an unknown scale rule.
    """

    block_size: int = 32
    scale_rule: str = "rceil"

    def __post_init__(self):
        if isinstance(self.block_size, bool) or int(self.block_size) < 1:
            raise ValueError(f"MXScaling block_size must be >= 1, got {self.block_size!r}")
        if self.scale_rule not in ("ceil", "floor", "rceil"):
            raise ValueError(f"MXScaling scale_rule must be 'rceil', 'ceil' or 'floor', got "
                             f"{self.scale_rule!r}")


@dataclass(frozen=True)
class FineGrainedScaling:
    """DeepSeek-V3's fine-grained fp8 scaling (DeepSeek-AI, "DeepSeek-V3 Technical
    Report", arXiv:2412.19437, sec. 3.3.2; the quantization kernels of
    ``deepseek-ai/DeepSeek-V3/inference/kernel.py``).

    Activations and output gradients are scaled per 1 x ``tile`` tile along the GEMM's
    reduction axis (per token and 128 channels in the forward GEMM; 128 tokens x 1 channel
    in the weight-gradient GEMM), weights per ``weight_block`` x ``weight_block`` block (so
    the transposed weight of the data-gradient GEMM has the same quantized values). The
    scale of a tile is its current amax: s = fp32(amax / fmt.max) (1 when amax is 0 or
    not finite: DeepSeek's kernel divides by 0 there), elements ``fmt(fp32(x / s))``,
    saturating (:func:`tile_quantize`). DeepSeek runs all three GEMMs of a linear layer
    in E4M3.

    As in the paper's backward pass, the activation the weight-gradient GEMM needs is the
    forward cast read back (dequantized in fp32, ``fp32(q * s)``), transposed and quantized
    again into tiles along the token axis; output gradients are quantized from the
    high-precision gradient for each GEMM.

    The GEMM (:meth:`lowprec.autograd.autocast.Autocast` applies it) is split into chunks
    of ``tile`` values of K, as DeepSeek's kernel does (promotion to fp32 on CUDA cores
    every N_C = 128 elements): each chunk's product runs through :func:`lowprec.matmul`
    with the policy's accumulator or tensor-core model, is multiplied by the a-tile scale
    and then by the b-tile scale (fp32 RNE each), and is added into an fp32 total (RNE)
    that starts at +0, chunks in K order. A fused bias is added to the total afterwards.

    Args:
        tile: tile length along the reduction axis (128), also the GEMM's chunk length.
        weight_block: side of the square weight blocks (128); a multiple of ``tile``.

    Raises:
        ValueError: for sizes below 1 or a weight block that is not a multiple of the tile.
    """

    tile: int = 128
    weight_block: int = 128

    def __post_init__(self):
        for name in ("tile", "weight_block"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"FineGrainedScaling {name} must be a positive int, got {v!r}")
        if self.weight_block % self.tile:
            raise ValueError(f"FineGrainedScaling weight_block={self.weight_block} must be a "
                             f"multiple of tile={self.tile} (a GEMM chunk must not straddle "
                             f"two weight blocks)")


@dataclass(frozen=True)
class NVFP4Scaling:
    """NVIDIA's NVFP4 training recipe (NVIDIA, "Pretraining Large Language Models with
    NVFP4", arXiv:2509.25149; Transformer Engine ``NVFP4BlockScaling``).

    Elements (the policy's formats, E2M1 in NVFP4) in blocks of ``block_size`` values
    along the GEMM's reduction axis, each block with an E4M3 scale, under an fp32 tensor
    scale from the tensor's current amax: exactly :func:`lowprec.quantize_scaled` with
    ``scale_fmt="float8_e4m3fn"`` and ``global_scale="auto"`` (for E2M1 elements,
    ``quantize_scaled(x, "nvfp4")``). Weights use ``block_size`` x ``block_size`` 2-D
    blocks (``weight_2d``), so the forward and the data-gradient GEMM see the same
    quantized weights; activations and gradients are quantized from the high-precision
    tensor for each GEMM along its reduction axis (TE's row-wise and column-wise copies).
    Output gradients are rounded stochastically (``stochastic_gradients``; the seeds come
    from the :class:`~lowprec.autograd.autocast.Autocast`). Both operands of the weight-
    gradient GEMM go through a random Hadamard transform along the token axis first
    (``hadamard``; :func:`random_hadamard` with ``hadamard_signs(hadamard_size,
    hadamard_seed)``), which leaves the exact product unchanged and spreads outliers.

    The GEMM runs on the block-scaled elements (element x E4M3 scale, exact in fp32) with
    the policy's accumulator, and the product is multiplied by the two tensor scales
    (fp32, a's then b's) as the ``alpha`` of a block-scaled GEMM. Tensor-core models of
    block-scaled fp4 GEMMs do not exist here, so a policy with this recipe takes no
    ``gemm_model``. Which layers stay in bf16 (the paper keeps the last few) is the
    model's choice: run them under another :class:`~lowprec.autograd.autocast.Autocast`.

    Args:
        block_size: values per block (16).
        weight_2d: square 2-D blocks for weights.
        stochastic_gradients: round output gradients stochastically.
        hadamard: random Hadamard transform of the weight-gradient GEMM's operands.
        hadamard_size: transform size, a power of two (16).
        hadamard_seed: seed of the fixed random sign vector.

    Raises:
        ValueError: for a block size below 1 or a transform size that is not a power of two.
    """

    block_size: int = 16
    weight_2d: bool = True
    stochastic_gradients: bool = True
    hadamard: bool = True
    hadamard_size: int = 16
    hadamard_seed: int = 0

    def __post_init__(self):
        b = self.block_size
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"NVFP4Scaling block_size must be a positive int, got {b!r}")
        h = self.hadamard_size
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 2 or h & (h - 1):
            raise ValueError(f"NVFP4Scaling hadamard_size must be a power of two >= 2, got "
                             f"{h!r}")

    def signs(self) -> np.ndarray:
        """The random sign vector of the Hadamard transform (see :func:`hadamard_signs`)."""
        return hadamard_signs(self.hadamard_size, self.hadamard_seed)


#: Any of the scaling recipes a :class:`~lowprec.autograd.policy.Policy` accepts.
Scaling = Union[CurrentScaling, DelayedScaling, MXScaling, FineGrainedScaling, NVFP4Scaling]
#: The scaling recipe classes (for isinstance checks).
SCALINGS = (CurrentScaling, DelayedScaling, MXScaling, FineGrainedScaling, NVFP4Scaling)


class AmaxHistory:
    """Delayed-scaling state of one tensor: its last amaxes and the scale of its next cast.

    Args:
        length: window length (``DelayedScaling.amax_history_len``).
    """

    __slots__ = ("amaxes", "scale")

    def __init__(self, length: int):
        self.amaxes: deque = deque(maxlen=length)
        self.scale = np.float32(1.0)

    def push(self, amax: np.float32, recipe: DelayedScaling, fmax: float) -> None:
        """Record one cast's amax and recompute the scale for the next cast.

        Args:
            amax: largest |value| of the cast (inf/NaN are kept: they leave the scale).
            recipe: the delayed-scaling settings.
            fmax: largest finite value of the target format.
        """
        self.amaxes.append(np.float32(amax))
        a = (np.fmax.reduce(np.array(self.amaxes, np.float32))
             if recipe.amax_compute_algo == "max" else self.amaxes[-1])
        if np.isfinite(a) and a > 0:
            scaled_max = np.float32(np.float32(fmax) * np.float32(2.0 ** -recipe.margin))
            with np.errstate(over="ignore"):
                s = np.float32(scaled_max / np.float32(a))
            # TE's delayed path has no guard here; an infinite scale would turn zeros into
            # NaN, so use the float32 maximum as its current-scaling path does.
            self.scale = s if np.isfinite(s) else _F32MAX


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def _matrix_axis(x: np.ndarray, axis, two_d: bool) -> int:
    """The non-negative reduction axis; a 2-D block needs it to be one of the last two."""
    if x.ndim == 0:
        raise ValueError("tile scaling needs an array with at least one dimension")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of shape {x.shape}")
    ax = int(axis) % x.ndim
    if two_d and (x.ndim < 2 or ax < x.ndim - 2):
        raise ValueError(f"2-D blocks need a matrix axis (one of the last two), got axis "
                         f"{axis} of shape {x.shape}")
    return ax


def _pad_to(a: np.ndarray, axis: int, multiple: int) -> np.ndarray:
    extra = -a.shape[axis] % multiple
    if not extra:
        return a
    width = [(0, 0)] * a.ndim
    width[axis] = (0, extra)
    return np.pad(a, width)


def tile_quantize(x, fmt: Format, *, axis: int = -1, tile: int = 128,
                  block: Optional[int] = None, rounding: str = "rne",
                  seed: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """DeepSeek-V3's fine-grained quantization (see :class:`FineGrainedScaling`).

    With ``block=None`` each run of ``tile`` values along ``axis`` (the last one of a row
    may be shorter) shares one scale; with ``block=b`` each b x b block of the matrix
    formed by ``axis`` and the other of the last two axes does. The scale is
    s = fp32(amax / fmt.max), amax the block's largest |x| with NaN ignored; s = 1 when
    amax is 0 or not finite or the quotient underflows to 0. Elements are
    ``fmt(fp32(x / s))`` with ``rounding``, saturating to fmt.max (DeepSeek's
    ``act_quant``/``weight_quant``: ``s = amax / 448.; y = x / s``).

    Args:
        x: array (converted to float32).
        fmt: element format (float8_e4m3fn in DeepSeek-V3).
        axis: the reduction axis the tiles run along.
        tile: tile length (1-D tiles).
        block: side of square 2-D blocks, or None for 1-D tiles.
        rounding: element rounding ("rne", "sr", ...).
        seed: seed for stochastic rounding.

    Returns:
        ``(codes, scale)``: element codes and the float32 dequantization scale of every
        element (value = element * scale), both of x's shape.

    Raises:
        ValueError: for a bad axis, tile or block size.
        TypeError: for an axis that is not an int.
    """
    x = np.asarray(x, np.float32)
    ax = _matrix_axis(x, axis, block is not None)
    xm = np.moveaxis(x, ax, -1)  # (..., R, K): for 2-D blocks R is the other matrix axis
    K = xm.shape[-1]
    with np.errstate(invalid="ignore"):
        mag = np.where(np.isnan(xm), np.float32(0), np.abs(xm))
    if block is None:
        t = _positive_int(tile, "tile")
        g = _pad_to(mag, -1, t)
        amax = g.reshape(g.shape[:-1] + (g.shape[-1] // t, t)).max(axis=-1)

        def per_elem(s):
            return np.repeat(s, t, axis=-1)[..., :K]
    else:
        b = _positive_int(block, "block")
        R = xm.shape[-2]
        g = _pad_to(_pad_to(mag, -1, b), -2, b)
        lead = g.shape[:-2]
        amax = g.reshape(lead + (g.shape[-2] // b, b, g.shape[-1] // b, b)).max(axis=(-3, -1))

        def per_elem(s):
            return np.repeat(np.repeat(s, b, axis=-2), b, axis=-1)[..., :R, :K]
    fmax = np.float32(fmt.max)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        s = (amax / fmax).astype(np.float32)
    s = np.where(np.isfinite(amax) & (amax > 0) & (s > 0), s, np.float32(1)).astype(np.float32)
    se = per_elem(s)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        v = (xm / se).astype(np.float32)
    codes = encode(v, fmt, rounding=rounding, overflow="saturate", seed=seed,
                   nan="zero" if not fmt.has_nan else "raise")
    return np.moveaxis(codes, -1, ax), np.moveaxis(se, -1, ax)


def nvfp4_cast(x, fmt: Format, *, axis: int = -1, block_size: int = 16, two_d: bool = False,
               rounding: str = "rne", seed: Optional[int] = None
               ) -> Tuple[np.ndarray, np.ndarray, np.float32]:
    """NVFP4 quantization of a GEMM operand (see :class:`NVFP4Scaling`).

    1-D blocks along ``axis`` are ``quantize_scaled(x, fmt, granularity="block",
    axis=axis, block_size=block_size, scale_fmt="float8_e4m3fn", global_scale="auto")``.
    With ``two_d``, each ``block_size`` x ``block_size`` block of the last two axes
    shares one E4M3 scale: the blocks are laid out as rows and quantized by the same
    call with one block per row (the tensor scale comes from the same amax), so the
    arithmetic is :func:`lowprec.quantize_scaled`'s.

    Args:
        x: array (float32 values).
        fmt: element format (float4_e2m1fn in NVFP4).
        axis: reduction axis the 1-D blocks run along (with ``two_d``, one of the last two).
        block_size: block length (side of the 2-D blocks).
        two_d: square 2-D blocks.
        rounding: element rounding ("rne" or "sr").
        seed: seed for stochastic rounding.

    Returns:
        ``(codes, block_scale, tensor_scale)``: element codes (x's shape), the float32 E4M3
        block scale of every element, and the float32 tensor scale; a value is
        element * block_scale * tensor_scale.

    Raises:
        ValueError: as :func:`lowprec.quantize_scaled`, or for a bad axis.
    """
    x = np.asarray(x, np.float32)
    b = _positive_int(block_size, "block_size")
    ax = _matrix_axis(x, axis, two_d)
    kw = dict(granularity="block", scale_fmt="float8_e4m3fn", global_scale="auto",
              rounding=rounding, seed=seed, saturate=True)
    if not two_d:
        st = quantize_scaled(x, fmt, axis=ax, block_size=b, **kw)
        scale = np.repeat(np.asarray(st.scales, np.float32), b, axis=ax)
        scale = np.take(scale, np.arange(x.shape[ax]), axis=ax)
        return st.codes, scale, np.float32(st.global_scale)
    A, B = x.shape[-2:]
    g = _pad_to(_pad_to(x, -1, b), -2, b)
    lead, nA, nB = g.shape[:-2], g.shape[-2] // b, g.shape[-1] // b
    rows = g.reshape(lead + (nA, b, nB, b)).swapaxes(-3, -2).reshape(-1, b * b)
    st = quantize_scaled(rows, fmt, axis=-1, block_size=b * b, **kw)

    def back(v):  # rows of blocks -> the padded matrix -> x's shape
        m = v.reshape(lead + (nA, nB, b, b)).swapaxes(-3, -2).reshape(g.shape)
        return m[..., :A, :B]

    scale = np.broadcast_to(np.asarray(st.scales, np.float32).reshape(-1, 1), rows.shape)
    return back(st.codes), back(scale), np.float32(st.global_scale)


def hadamard_signs(size: int = 16, seed: int = 0) -> np.ndarray:
    """The fixed random sign vector of a random Hadamard transform.

    Args:
        size: transform size.
        seed: numpy ``default_rng`` seed.

    Returns:
        float64 array of +1 and -1 (``size`` values).
    """
    bits = np.random.default_rng(int(seed)).integers(0, 2, _positive_int(size, "size"))
    return np.where(bits == 1, -1.0, 1.0)


def random_hadamard(x, axis: int, signs: np.ndarray) -> np.ndarray:
    """Blockwise random Hadamard transform along ``axis``: y = H D x / sqrt(n) per block of
    n = len(signs) values, D = diag(signs), H the Sylvester Hadamard matrix
    (H[i, j] = (-1)^popcount(i & j)).

    The axis is padded with zeros to a multiple of n (the padded values join the product:
    the transform is orthogonal, so sum_k a_k b_k = sum_k (Qa)_k (Qb)_k over the padded
    axis). Computed in float64 with the butterfly (log2 n stages of pairwise sums and
    differences, elementwise: no BLAS, no dependence on threads), then multiplied by
    1/sqrt(n) (exact for n a power of 4) and rounded once to float32. When a block's
    values span few enough binades for the float64 sums to be exact (about 29), the result
    is the exactly rounded transform.

    Args:
        x: array.
        axis: the axis to transform.
        signs: the random signs (:func:`hadamard_signs`); their length n is a power of two.

    Returns:
        float32 array, x's shape with ``axis`` padded to a multiple of n.

    Raises:
        ValueError: for a sign vector whose length is not a power of two.
    """
    d = np.asarray(signs, np.float64).reshape(-1)
    n = d.size
    if n < 1 or n & (n - 1):
        raise ValueError(f"random_hadamard: len(signs) must be a power of two, got {n}")
    xm = _pad_to(np.moveaxis(np.asarray(x, np.float32), axis, -1).astype(np.float64), -1, n)
    shape = xm.shape
    v = xm.reshape(shape[:-1] + (shape[-1] // n, n)) * d
    lead = v.shape[:-1]
    h = 1
    while h < n:
        w = v.reshape(lead + (n // (2 * h), 2, h))
        v = np.stack((w[..., 0, :] + w[..., 1, :], w[..., 0, :] - w[..., 1, :]),
                     axis=-2).reshape(lead + (n,))
        h *= 2
    y = (v * (1.0 / np.sqrt(n))).astype(np.float32).reshape(shape)
    return np.moveaxis(y, -1, axis)
