"""A tiny autograd engine whose GEMMs run in lowprec's emulated formats.

``Tensor`` (engine), the fp32-kept ops (ops), layers (nn), optimizers (optim), precision
policies, loss scaling, fp8 recipes and low-precision weight updates (amp), and
per-step statistics with plots (instrument).

Example::

    from lowprec.autograd import Tensor, nn, optim, amp, ops
    model = nn.MLP([64, 128, 10], seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with amp.autocast(amp.Policy("bf16")):  # a named recipe (amp.RECIPES)
        loss = ops.cross_entropy(model(Tensor(x)), y)
    opt.zero_grad(); loss.backward(); opt.step()
"""

from . import amp, instrument, nn, ops, optim
from .amp import (Autocast, CurrentScaling, DelayedScaling, GradScaler, MXScaling, Policy,
                  WeightUpdate, autocast)
from .engine import Tensor, is_grad_enabled, no_grad, tensor
from .instrument import History, Tracker
from .ops import cross_entropy, layer_norm, log_softmax, mse, softmax

__all__ = ["Tensor", "tensor", "no_grad", "is_grad_enabled", "amp", "instrument", "nn", "ops",
           "optim", "Policy", "Autocast", "autocast", "GradScaler", "CurrentScaling",
           "DelayedScaling", "MXScaling", "WeightUpdate", "History", "Tracker", "softmax",
           "log_softmax", "cross_entropy", "mse", "layer_norm"]
