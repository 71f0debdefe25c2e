"""Mixed precision for the autograd engine, in one namespace (the names live in small
modules; this one re-exports them so ``from lowprec.autograd.amp import X`` keeps working):

* :mod:`~lowprec.autograd.policy`: :class:`Policy` (which format every tensor of a
  training step is in) and the named recipes :data:`RECIPES`.
* :mod:`~lowprec.autograd.autocast`: :class:`Autocast` applies a policy to the engine
  (``with Autocast(policy): loss = model(x)``); :func:`autocast`, :func:`current`.
* :mod:`~lowprec.autograd.scaling`: Transformer Engine's fp8 recipes
  :class:`CurrentScaling`, :class:`DelayedScaling` and OCP MX :class:`MXScaling`,
  DeepSeek-V3's :class:`FineGrainedScaling` and NVIDIA's :class:`NVFP4Scaling`.
* :mod:`~lowprec.autograd.grad_scaler`: :class:`GradScaler`, ``torch.amp.GradScaler``'s
  algorithm.
* :mod:`~lowprec.autograd.weight_update`: :class:`WeightUpdate` keeps weights only in a
  low format and rounds each update into it (RNE, stochastic rounding, Kahan).
"""

from .autocast import Autocast, QTensor, autocast, current
from .grad_scaler import GradScaler
from .instrument import Tracker
from .policy import FIXED16, RECIPES, ROLES, Policy, rounded_format
from .scaling import (AmaxHistory, CurrentScaling, DelayedScaling, FineGrainedScaling, MXScaling,
                      NVFP4Scaling, Scaling)
from .weight_update import UPDATE_RULES, WeightUpdate, derive_seed

__all__ = ["Policy", "RECIPES", "FIXED16", "Autocast", "autocast", "current", "CurrentScaling",
           "DelayedScaling", "MXScaling", "FineGrainedScaling", "NVFP4Scaling", "GradScaler",
           "WeightUpdate", "derive_seed", "ROLES", "QTensor", "Scaling", "AmaxHistory", "Tracker", "UPDATE_RULES", "rounded_format"]
