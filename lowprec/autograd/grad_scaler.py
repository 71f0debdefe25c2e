"""Loss scaling with ``torch.amp.GradScaler``'s algorithm and defaults; ``dynamic=False``
gives static loss scaling."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from .engine import Tensor

__all__ = ["GradScaler"]


class GradScaler:
    """Loss scaling with ``torch.amp.GradScaler``'s algorithm and defaults.

    ``scale(loss)`` multiplies the loss by the float32 scale. ``unscale_(optimizer)``
    multiplies every gradient by fp32(1/scale) (the reciprocal computed in float64) and
    sets found_inf when any scaled gradient is not finite. ``step(optimizer)`` skips the
    step when found_inf. ``update()``: on found_inf the scale is multiplied by
    ``backoff_factor`` and the growth tracker reset; otherwise the tracker counts up and,
    on reaching ``growth_interval``, the scale is multiplied by ``growth_factor`` (kept
    only if finite) and the tracker reset (``_amp_update_scale_``).

    Args:
        init_scale, growth_factor, backoff_factor, growth_interval: as torch (2^16, 2.0,
            0.5, 2000).
        enabled: False makes every method a pass-through.
        dynamic: False gives static loss scaling: the scale never changes (steps with
            non-finite gradients are still skipped and counted).

    Raises:
        ValueError: for a non-positive scale or factors on the wrong side of 1.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000,
                 enabled: bool = True, dynamic: bool = True):
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale!r}")
        if not growth_factor > 1.0:
            raise ValueError(f"growth_factor should be > 1, got {growth_factor!r}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"backoff_factor should be in (0, 1), got {backoff_factor!r}")
        if int(growth_interval) < 1:
            raise ValueError(f"growth_interval must be >= 1, got {growth_interval!r}")
        self._scale = np.float32(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._enabled = bool(enabled)
        self.dynamic = bool(dynamic)
        self._tracker = 0
        self._found_inf: Optional[bool] = None  # None: not unscaled this step
        self.skipped_steps = 0
        self.last_step_skipped = False

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        """The current scale (1.0 when disabled)."""
        return float(self._scale) if self._enabled else 1.0

    def get_growth_tracker(self) -> int:
        return self._tracker

    def scale(self, loss: Union[Tensor, np.ndarray, float]):
        """``loss * scale`` in the loss's float dtype (a Tensor, an array or a number)."""
        if not self._enabled:
            return loss
        return loss * np.asarray(self._scale, dtype=_dtype_of(loss))

    def unscale_(self, optimizer) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale, in place.

        Raises:
            RuntimeError: when called twice before :meth:`update`.
        """
        if not self._enabled:
            return
        if self._found_inf is not None:
            raise RuntimeError("unscale_() has already been called on this optimizer since "
                               "the last update().")
        inv = np.float32(1.0 / np.float64(self._scale))
        found = False
        for p in optimizer.params:
            if p.grad is None:
                continue
            found = found or not bool(np.isfinite(p.grad).all())
            with np.errstate(over="ignore", invalid="ignore"):
                p.grad = (p.grad * inv).astype(p.grad.dtype, copy=False)
        self._found_inf = found

    def step(self, optimizer) -> Optional[object]:
        """Unscale if needed, then ``optimizer.step()`` unless found_inf (then None)."""
        if not self._enabled:
            return optimizer.step()
        if self._found_inf is None:
            self.unscale_(optimizer)
        self.last_step_skipped = bool(self._found_inf)
        if self._found_inf:
            self.skipped_steps += 1
            return None
        return optimizer.step()

    def update(self, new_scale: Optional[float] = None) -> None:
        """Adjust the scale after a step (see the class docstring)."""
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = np.float32(new_scale)
        elif self.dynamic and self._found_inf is not None:
            if self._found_inf:
                self._scale = np.float32(np.float64(self._scale) * self._backoff_factor)
                self._tracker = 0
            else:
                successful = self._tracker + 1
                if successful == self._growth_interval:
                    with np.errstate(over="ignore"):
                        grown = np.float32(np.float64(self._scale) * self._growth_factor)
                    if np.isfinite(grown):
                        self._scale = grown
                    self._tracker = 0
                else:
                    self._tracker = successful
        self._found_inf = None

    def state_dict(self) -> dict:
        return dict(scale=float(self._scale), growth_factor=self._growth_factor,
                    backoff_factor=self._backoff_factor, growth_interval=self._growth_interval,
                    _growth_tracker=self._tracker)

    def load_state_dict(self, state: dict) -> None:
        self._scale = np.float32(state["scale"])
        self._growth_factor = float(state["growth_factor"])
        self._backoff_factor = float(state["backoff_factor"])
        self._growth_interval = int(state["growth_interval"])
        self._tracker = int(state["_growth_tracker"])


def _dtype_of(x) -> np.dtype:
    """The float dtype a loss is scaled in: the tensor's or array's own, float32 otherwise."""
    d = np.asarray(x.data if isinstance(x, Tensor) else x)
    return d.dtype if d.dtype.kind == "f" else np.dtype(np.float32)
