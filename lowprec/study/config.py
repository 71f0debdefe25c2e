"""What a study trains with: the recipes and the hyper-parameters shared by every run."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Tuple

import numpy as np

from ..autograd.policy import RECIPES as _POLICIES, Policy

__all__ = ["RECIPES", "DEFAULT_RECIPES", "StudyConfig", "recipe_policy", "recipe_description",
           "SCHEDULES", "MODELS"]

#: The recipes ``lowprec study`` runs by default (the one list of them).
DEFAULT_RECIPES = ("fp32", "bf16", "fp16", "fp16-scaled", "fp8-current", "fp8-delayed",
                   "bf16-pure-rne", "bf16-pure-sr", "bf16-pure-kahan", "fixed16-rn", "fixed16-sr")
#: Every recipe name, the defaults first, from :data:`lowprec.autograd.policy.RECIPES`.
RECIPES = tuple(dict.fromkeys(DEFAULT_RECIPES + tuple(_POLICIES)))
#: Learning-rate schedules: constant, or cosine decay to 0 over the run.
SCHEDULES = ("constant", "cosine")
#: The models a study trains.
MODELS = ("mlp", "transformer")


def recipe_policy(name: str) -> Policy:
    """The :class:`~lowprec.autograd.policy.Policy` of a named recipe.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in _POLICIES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return _POLICIES[name][0]


def recipe_description(name: str) -> str:
    """One line saying what a recipe does.

    Raises:
        ValueError: for an unknown name.
    """
    recipe_policy(name)
    return _POLICIES[name][1]


@dataclass(frozen=True)
class StudyConfig:
    """Hyper-parameters shared by every recipe of an MLP study.

    The defaults train the fp32 baseline to convergence on the bundled digits (about 98 %
    test accuracy over seeds): SGD with momentum, a cosine learning-rate schedule, 30
    epochs.

    Attributes:
        epochs: passes over the training set.
        lr: peak SGD learning rate (before the loss-shift compensation).
        batch_size: examples per step.
        momentum: SGD momentum.
        schedule: "cosine" (decay to 0 over the run) or "constant".
        seed: seeds the split, the initial weights, the batch order and all stochastic
            rounding.
        loss_shift: k: the loss is multiplied by 2^-k and the learning rate by 2^k; an
            fp32 run is unchanged (bit for bit while gradients stay normal in fp32), low
            formats see gradients 2^k times smaller.
        sizes: layer widths of the MLP.
    """

    epochs: int = 30
    lr: float = 0.05
    batch_size: int = 32
    momentum: float = 0.9
    schedule: str = "cosine"
    seed: int = 0
    loss_shift: int = 0
    sizes: Tuple[int, ...] = (64, 128, 128, 10)

    def __post_init__(self):
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, np.integer)) \
                or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not isinstance(self.loss_shift, (int, np.integer)) or not -64 <= self.loss_shift <= 120:
            raise ValueError(f"loss_shift must be an integer in [-64, 120], got {self.loss_shift!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def with_params(self, params) -> "StudyConfig":
        """A copy with the (name, value) pairs of a sweep task applied.

        Raises:
            ValueError: for a name that is not a field.
        """
        names = {f.name for f in fields(self)}
        kw = dict(params)
        bad = sorted(set(kw) - names)
        if bad:
            raise ValueError(f"unknown study parameter(s) {', '.join(bad)}; known: "
                             f"{', '.join(sorted(names))}")
        if "sizes" in kw:
            kw["sizes"] = tuple(kw["sizes"])
        return replace(self, **kw)

    def lr_at(self, step: int, total: int) -> float:
        """The learning rate of optimizer step ``step`` of ``total``."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(total, 1)))
        return self.lr
