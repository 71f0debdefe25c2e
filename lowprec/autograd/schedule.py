"""Learning-rate schedules: linear warm-up then cosine decay (nanoGPT's ``get_lr``).

For step t (0-based: the t-th call of ``optimizer.step()``), with W warm-up steps, T total
steps and floor ratio r, the learning rate is ``base * factor(t)``:

* t < W: ``(t + 1) / (W + 1)``, a linear ramp that never starts at zero (torch's
  ``LinearLR(start_factor=1 / (W + 1), total_iters=W)``);
* W <= t <= T: ``r + (1 - r) (1 + cos(pi (t - W) / (T - W))) / 2``, from 1 down to r
  (torch's ``CosineAnnealingLR(T_max=T - W, eta_min=r * base)`` after the warm-up, as
  ``SequentialLR`` chains them);
* t > T: r (nanoGPT holds the floor; torch's cosine would climb again).
"""

from __future__ import annotations

import math
from typing import List

from .optim import Optimizer

__all__ = ["warmup_cosine", "WarmupCosine"]


def _check_args(warmup_steps: int, total_steps: int, min_ratio: float) -> None:
    for name, v in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
    if not 0.0 <= float(min_ratio) <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio!r}")


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int,
                  min_ratio: float = 0.1) -> float:
    """The factor that multiplies the base learning rate at ``step`` (see the module
    docstring).

    Args:
        step: 0-based optimizer step (>= 0).
        warmup_steps: W, steps of linear warm-up (0 for none).
        total_steps: T > W, the step at which the cosine reaches its floor.
        min_ratio: r, the floor as a fraction of the base rate (nanoGPT: 0.1).

    Returns:
        The factor, in (0, 1] (or [r, 1] after the warm-up).

    Raises:
        ValueError: for a negative step or inconsistent arguments.
    """
    _check_args(warmup_steps, total_steps, min_ratio)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if step > total_steps:
        return float(min_ratio)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Sets an optimizer's learning rates by :func:`warmup_cosine`, as a torch LR scheduler:
    each group's rate is its rate at construction times the factor. Construction sets the
    rate of step 0; call :meth:`step` after each ``optimizer.step()``.

    Args:
        optimizer: a :class:`lowprec.autograd.optim.Optimizer`.
        warmup_steps, total_steps, min_ratio: as :func:`warmup_cosine`.

    Raises:
        ValueError: for inconsistent arguments.
        TypeError: for an optimizer that is not one.
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int,
                 min_ratio: float = 0.1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"WarmupCosine needs an Optimizer, got {type(optimizer).__name__}")
        _check_args(warmup_steps, total_steps, min_ratio)
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_ratio = float(min_ratio)
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._set()

    def factor(self, step: int) -> float:
        """The schedule's factor at ``step``."""
        return warmup_cosine(step, warmup_steps=self.warmup_steps,
                             total_steps=self.total_steps, min_ratio=self.min_ratio)

    def _set(self) -> None:
        f = self.factor(self.last_step)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * f

    def step(self) -> None:
        """Advance to the next optimizer step and set its learning rates."""
        self.last_step += 1
        self._set()

    def get_last_lr(self) -> List[float]:
        """The learning rates now set, one per parameter group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """What :meth:`load_state_dict` needs to resume."""
        return dict(last_step=self.last_step, base_lrs=list(self.base_lrs))

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict` (sets the optimizer's rates)."""
        self.last_step = int(state["last_step"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self._set()
