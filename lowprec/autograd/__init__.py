"""A tiny autograd engine whose GEMMs run in lowprec's emulated formats.

``Tensor`` and the precision hook it calls (engine), losses and normalisation (ops), layers
(nn), optimizers (optim), precision policies and named recipes (policy), the hook that
applies a policy (autocast), fp8 scaling recipes (scaling), loss scaling (grad_scaler),
low-precision weight updates (weight_update), all re-exported by amp, per-step
statistics (instrument; :mod:`lowprec.plot` draws them), learning-rate schedules
(schedule) and a small decoder-only transformer (transformer).

Example::

    from lowprec.autograd import Tensor, nn, optim, amp, ops
    model = nn.MLP([64, 128, 10], seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with amp.autocast(amp.Policy("bf16")):  # a named recipe (amp.RECIPES)
        loss = ops.cross_entropy(model(Tensor(x)), y)
    opt.zero_grad(); loss.backward(); opt.step()
"""

from . import amp, instrument, nn, ops, optim, schedule, transformer
from .autocast import Autocast, autocast
from .engine import Precision, Tensor, is_grad_enabled, no_grad, tensor, use_precision
from .grad_scaler import GradScaler
from .instrument import History, Tracker
from .ops import cross_entropy, layer_norm, log_softmax, mse, softmax
from .policy import Policy
from .scaling import (CurrentScaling, DelayedScaling, FineGrainedScaling, MXScaling,
                      NVFP4Scaling)
from .transformer import GPT, GPTConfig
from .weight_update import WeightUpdate

__all__ = ["Tensor", "tensor", "no_grad", "is_grad_enabled", "amp", "instrument", "nn", "ops",
           "optim", "Policy", "Autocast", "autocast", "GradScaler", "CurrentScaling",
           "DelayedScaling", "MXScaling", "WeightUpdate", "History", "Tracker", "softmax",
           "log_softmax", "cross_entropy", "mse", "layer_norm", "Precision", "use_precision",
           "FineGrainedScaling", "NVFP4Scaling", "GPT", "GPTConfig", "schedule", "transformer"]
