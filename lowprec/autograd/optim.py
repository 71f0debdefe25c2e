"""Optimizers: SGD (momentum, weight decay, Nesterov), Adam and AdamW, as torch.optim
defines them.

Each step computes an update ``delta`` per parameter in the parameter's dtype and hands
it to the weight store: fp32 master weights add it (``w + delta`` rounded to float32);
a :class:`~lowprec.autograd.weight_update.WeightUpdate` rounds it into a low format by RNE,
stochastic rounding or Kahan summation. Optimizer state (momentum, moments) is kept in
the parameter's dtype.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .engine import Tensor
from .instrument import Tracker
from .weight_update import WeightUpdate

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


class Optimizer:
    """Holds the parameters and applies updates through the weight store.

    Args:
        params: tensors to optimise.
        update: None (fp32 master weights) or a :class:`WeightUpdate`; with one, the
            parameters are rounded into its format now.
        tracker: optional Tracker receiving per-parameter update statistics (how many
            non-zero updates were lost to rounding).

    Raises:
        ValueError: for an empty parameter list.
    """

    def __init__(self, params: Iterable[Tensor], update: Optional[WeightUpdate] = None,
                 tracker: Optional[Tracker] = None):
        self.params: List[Tensor] = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.update = update
        self.tracker = tracker
        self.state: Dict[int, dict] = {}
        if update is not None:
            for p in self.params:
                p.data = update.cast(p.data)

    def zero_grad(self) -> None:
        """Drop every gradient (they are recreated by the next backward)."""
        for p in self.params:
            p.grad = None

    def _apply(self, i: int, p: Tensor, delta: np.ndarray) -> None:
        old = p.data
        if self.update is None:
            new = (old + delta).astype(old.dtype, copy=False)
        else:
            new = self.update.apply(i, old, delta)
        if self.tracker is not None:
            self.tracker.record_update(p.name or f"param{i}", delta, old, new)
        p.data = new

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        d = dict(state={i: {k: (v.copy() if isinstance(v, np.ndarray) else v)
                            for k, v in s.items()} for i, s in self.state.items()})
        if self.update is not None:
            d["update"] = self.update.state_dict()
        return d

    def load_state_dict(self, state: dict) -> None:
        self.state = {int(i): dict(s) for i, s in state["state"].items()}
        if self.update is not None and "update" in state:
            self.update.load_state_dict(state["update"])


def _check(name: str, value: float, lo: float = 0.0, hi: Optional[float] = None) -> float:
    v = float(value)
    if not (v >= lo and (hi is None or v < hi)) or math.isnan(v):
        rng = f"[{lo}, {hi})" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return v


class SGD(Optimizer):
    """Stochastic gradient descent as ``torch.optim.SGD``:
    g = grad + wd * w; buf = g on the first step, then momentum * buf + (1 - dampening) * g;
    g = g + momentum * buf (Nesterov) or buf; w <- w - lr * g.

    Args:
        params, update, tracker: as :class:`Optimizer`.
        lr: learning rate. momentum, dampening, weight_decay: >= 0. nesterov: bool.

    Raises:
        ValueError: for negative hyper-parameters, or Nesterov without momentum.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False,
                 update: Optional[WeightUpdate] = None, tracker: Optional[Tracker] = None):
        self.lr = _check("lr", lr)
        self.momentum = _check("momentum", momentum)
        self.dampening = _check("dampening", dampening)
        self.weight_decay = _check("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening 0")
        self.nesterov = bool(nesterov)
        super().__init__(params, update, tracker)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            dt = p.data.dtype.type
            g = p.grad
            if self.weight_decay:
                g = g + dt(self.weight_decay) * p.data
            if self.momentum:
                st = self.state.setdefault(i, {})
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = g.copy()
                else:
                    buf = dt(self.momentum) * buf + dt(1 - self.dampening) * g
                st["momentum_buffer"] = buf
                g = g + dt(self.momentum) * buf if self.nesterov else buf
            self._apply(i, p, -dt(self.lr) * g)


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (L2 weight decay added to the gradient):
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    w <- w - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    Args:
        params, update, tracker: as :class:`Optimizer`.
        lr, betas, eps, weight_decay: as torch.

    Raises:
        ValueError: for hyper-parameters out of range.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 update: Optional[WeightUpdate] = None, tracker: Optional[Tracker] = None):
        self.lr = _check("lr", lr)
        self.betas = (_check("betas[0]", betas[0], 0.0, 1.0), _check("betas[1]", betas[1], 0.0, 1.0))
        self.eps = _check("eps", eps)
        self.weight_decay = _check("weight_decay", weight_decay)
        super().__init__(params, update, tracker)

    def step(self) -> None:
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            dt = p.data.dtype.type
            g = p.grad
            if self.weight_decay and not self.decoupled:
                g = g + dt(self.weight_decay) * p.data
            st = self.state.setdefault(i, {"step": 0, "exp_avg": np.zeros_like(p.data),
                                           "exp_avg_sq": np.zeros_like(p.data)})
            st["step"] += 1
            t = st["step"]
            m = st["exp_avg"] = dt(b1) * st["exp_avg"] + dt(1 - b1) * g
            v = st["exp_avg_sq"] = dt(b2) * st["exp_avg_sq"] + dt(1 - b2) * g * g
            step_size = dt(self.lr / (1 - b1 ** t))
            denom = np.sqrt(v) / dt(math.sqrt(1 - b2 ** t)) + dt(self.eps)
            delta = -step_size * m / denom
            if self.weight_decay and self.decoupled:
                delta = delta - dt(self.lr * self.weight_decay) * p.data
            self._apply(i, p, delta)


class AdamW(Adam):
    """Adam with decoupled weight decay as ``torch.optim.AdamW`` (default decay 0.01):
    w <- w - lr * wd * w, then the Adam step (both applied as one update here)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01,
                 update: Optional[WeightUpdate] = None, tracker: Optional[Tracker] = None):
        super().__init__(params, lr, betas, eps, weight_decay, update, tracker)
