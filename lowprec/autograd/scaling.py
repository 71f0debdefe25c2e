"""fp8 scaling recipes: Transformer Engine's per-tensor current and delayed scaling and
OCP MX block scaling (``transformer_engine/common/recipe``), for any float format, and the
amax history that delayed scaling keeps per tensor.

The recipes are plain settings; :class:`lowprec.autograd.autocast.Autocast` applies them
when it casts a GEMM operand.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Union

import numpy as np

__all__ = ["CurrentScaling", "DelayedScaling", "MXScaling", "Scaling", "AmaxHistory"]

_F32MAX = np.float32(np.finfo(np.float32).max)


@dataclass(frozen=True)
class CurrentScaling:
    """Per-tensor scaling from the tensor's own amax (TE ``Float8CurrentScaling``).

    scale = fp32(fmt.max / amax), 1 when amax is 0, inf or NaN, float32 max when the
    quotient overflows (``compute_scale_from_amax``). Values are cast as
    ``fmt(fp32(x * scale))``; the GEMM result is multiplied by ``fp32(1/scale_a) *
    fp32(1/scale_b)``.
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
    """Block scaling (OCP MX): each block of ``block_size`` consecutive values along the
    GEMM's reduction axis shares one E8M0 power-of-two scale.

    Args:
        block_size: values per block (32 in MX).
        scale_rule: "ceil" (default; TE/torchao: 2^ceil(log2(amax / fmt.max)), so no
            element saturates), "floor" (OCP MX v1.0: floor(log2 amax) - emax_elem) or
            "rceil" (see :func:`lowprec.quantize_scaled`).

    Raises:
        ValueError: for a block size below 1 or an unknown scale rule.
    """

    block_size: int = 32
    scale_rule: str = "ceil"

    def __post_init__(self):
        if int(self.block_size) < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size!r}")
        if self.scale_rule not in ("ceil", "floor", "rceil"):
            raise ValueError(f"scale_rule must be 'ceil', 'floor' or 'rceil', got {self.scale_rule!r}")


#: Any of the scaling recipes a :class:`~lowprec.autograd.policy.Policy` accepts.
Scaling = Union[CurrentScaling, DelayedScaling, MXScaling]


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
