"""Optimizers: SGD (momentum, weight decay, Nesterov), Adam and AdamW, as torch.optim
defines them (parameter groups included), and gradient clipping by global norm.

Each step computes an update ``delta`` per parameter in the parameter's dtype and hands
it to the weight store: fp32 master weights add it (``w + delta`` rounded to float32);
a :class:`~lowprec.autograd.weight_update.WeightUpdate` rounds it into a low format by RNE,
stochastic rounding or Kahan summation. Optimizer state (momentum, moments) is kept in
the parameter's dtype.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from .engine import Tensor
from .instrument import Tracker
from .weight_update import WeightUpdate

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_"]

_F32 = np.dtype(np.float32)


class Optimizer:
    """Holds the parameters and applies updates through the weight store.

    Args:
        params: tensors to optimise, or parameter groups as torch's: dicts with a
            ``"params"`` list and any of the optimizer's hyper-parameters, which override
            the defaults for that group (e.g. no weight decay on biases).
        update: None (fp32 master weights) or a :class:`WeightUpdate`; with one, the
            parameters are rounded into its format now.
        tracker: optional Tracker receiving per-parameter update statistics (how many
            non-zero updates were lost to rounding).
        defaults: the hyper-parameters of every group (set by the subclass).

    Attributes:
        param_groups: list of dicts, each with ``"params"`` and every hyper-parameter.
        params: all parameters, group by group (their index keys ``state``).

    Raises:
        ValueError: for an empty parameter list or group, a parameter in two groups, or a
            group option the optimizer does not have.
        TypeError: for a parameter that is not a Tensor, or groups mixed with tensors.
    """

    def __init__(self, params: Iterable[Union[Tensor, Dict[str, Any]]],
                 update: Optional[WeightUpdate] = None, tracker: Optional[Tracker] = None,
                 defaults: Optional[Dict[str, Any]] = None):
        self.defaults = dict(defaults or {})
        items = list(params)
        if not items:
            raise ValueError("optimizer got an empty parameter list")
        if all(isinstance(g, dict) for g in items):
            groups = items
        elif any(isinstance(g, dict) for g in items):
            raise TypeError("optimizer params must be all tensors or all parameter groups")
        else:
            groups = [{"params": items}]
        self.param_groups: List[Dict[str, Any]] = []
        for g in groups:
            extra = set(g) - set(self.defaults) - {"params"}
            if extra:
                raise ValueError(f"unknown parameter group option(s) {sorted(extra)} for "
                                 f"{type(self).__name__}")
            ps = list(g.get("params", ()))
            if not ps:
                raise ValueError("optimizer got an empty parameter group")
            bad = [type(p).__name__ for p in ps if not isinstance(p, Tensor)]
            if bad:
                raise TypeError(f"optimizer params must be Tensors, got {bad[0]}")
            group = {**self.defaults, **{k: v for k, v in g.items() if k != "params"}}
            self._validate(group)
            self.param_groups.append({"params": ps, **group})
        self.params: List[Tensor] = [p for g in self.param_groups for p in g["params"]]
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter appears more than once in the optimizer")
        self._group_of = [g for g in self.param_groups for _ in g["params"]]
        self.update = update
        self.tracker = tracker
        self.state: Dict[int, dict] = {}
        if update is not None:
            for p in self.params:
                p.data = update.cast(p.data)

    def _validate(self, group: Dict[str, Any]) -> None:
        """Check (and normalise in place) one group's hyper-parameters."""

    @property
    def lr(self) -> float:
        """Learning rate of the first group; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        v = _check("lr", value)
        for g in self.param_groups:
            g["lr"] = v

    def __getattr__(self, name: str):
        # Hyper-parameters read as attributes (opt.momentum) come from the first group.
        defaults = self.__dict__.get("defaults", {})
        if name in defaults and self.__dict__.get("param_groups"):
            return self.__dict__["param_groups"][0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

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
        """Optimizer state by parameter index, the groups' hyper-parameters (with their
        parameters' indices, as torch) and the weight store's state."""
        d = dict(state={i: {k: (v.copy() if isinstance(v, np.ndarray) else v)
                            for k, v in s.items()} for i, s in self.state.items()})
        groups, start = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            groups.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        d["param_groups"] = groups
        if self.update is not None:
            d["update"] = self.update.state_dict()
        return d

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (groups' hyper-parameters included
        when present).

        Raises:
            ValueError: when the saved groups do not match this optimizer's.
        """
        # copies: the optimizer updates its buffers in place
        self.state = {int(i): {k: (v.copy() if isinstance(v, np.ndarray) else v)
                               for k, v in s.items()} for i, s in state["state"].items()}
        saved = state.get("param_groups")
        if saved is not None:
            if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
                raise ValueError("loaded state has parameter groups of other sizes")
            for g, sg in zip(self.param_groups, saved):
                g.update({k: v for k, v in sg.items() if k != "params"})
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
        params, update, tracker: as :class:`Optimizer` (groups may set any of the
            hyper-parameters below).
        lr: learning rate. momentum, dampening, weight_decay: >= 0. nesterov: bool.

    Raises:
        ValueError: for negative hyper-parameters, or Nesterov without momentum.
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False,
                 update: Optional[WeightUpdate] = None, tracker: Optional[Tracker] = None):
        super().__init__(params, update, tracker,
                         defaults=dict(lr=lr, momentum=momentum, dampening=dampening,
                                       weight_decay=weight_decay, nesterov=nesterov))

    def _validate(self, group: Dict[str, Any]) -> None:
        for k in ("lr", "momentum", "dampening", "weight_decay"):
            group[k] = _check(k, group[k])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening 0")
        group["nesterov"] = bool(group["nesterov"])

    def step(self) -> None:
        plain = self.update is None and self.tracker is None
        fused = None
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            hp = self._group_of[i]
            w = p.data
            if plain and w.dtype == _F32:
                st = self.state.get(i)
                buf = None if st is None else st.get("momentum_buffer")
                if (buf is not None and hp["momentum"] and not hp["weight_decay"]
                        and not hp["dampening"] and not hp["nesterov"] and g.dtype == _F32
                        and buf.dtype == _F32 and g.shape == w.shape == buf.shape
                        and buf.flags.c_contiguous):
                    # the steady state of SGD with momentum: the loop below's float32
                    # operations in one pass (same bits; the parameter gets a new array)
                    if fused is None:
                        from .._kernels.update import ENTRY  # numba: not at import

                        fused = ENTRY.get()
                    # (ravel: a view of a contiguous array, a copy of any other, which the
                    # kernel only reads; the buffer, written in place, is contiguous)
                    new = np.empty(w.shape, _F32)
                    fused(w.ravel(), g.ravel(), buf.ravel(), _F32.type(hp["momentum"]),
                          -_F32.type(hp["lr"]), new.ravel())
                    p.data = new
                    continue
            dt = w.dtype.type
            if hp["weight_decay"]:
                g = g + dt(hp["weight_decay"]) * p.data
            if hp["momentum"]:
                st = self.state.get(i)
                if st is None:
                    st = self.state[i] = {}
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = g.copy()
                else:
                    # in place (the buffer is the optimizer's own: load_state_dict copies);
                    # (1 - 0) * g is g, so without dampening the product is skipped
                    gd = g if hp["dampening"] == 0 else dt(1 - hp["dampening"]) * g
                    if buf.shape == gd.shape and buf.dtype == gd.dtype:
                        np.multiply(buf, dt(hp["momentum"]), out=buf)
                        buf += gd
                    else:
                        buf = dt(hp["momentum"]) * buf + gd
                st["momentum_buffer"] = buf
                g = g + dt(hp["momentum"]) * buf if hp["nesterov"] else buf
            delta = -dt(hp["lr"]) * g
            old = p.data
            if plain and delta.dtype == old.dtype and delta.shape == old.shape:
                # what _apply does, without the call and into delta's own (new) array: the
                # parameter gets a new array (references to the old one keep its values)
                p.data = np.add(old, delta, out=delta)
            else:
                self._apply(i, p, delta)


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (L2 weight decay added to the gradient):
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    w <- w - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    Args:
        params, update, tracker: as :class:`Optimizer` (groups may set any of the
            hyper-parameters below).
        lr, betas, eps, weight_decay: as torch.

    Raises:
        ValueError: for hyper-parameters out of range.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 update: Optional[WeightUpdate] = None, tracker: Optional[Tracker] = None):
        super().__init__(params, update, tracker,
                         defaults=dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _validate(self, group: Dict[str, Any]) -> None:
        b = group["betas"]
        group["betas"] = (_check("betas[0]", b[0], 0.0, 1.0), _check("betas[1]", b[1], 0.0, 1.0))
        for k in ("lr", "eps", "weight_decay"):
            group[k] = _check(k, group[k])

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            hp = self._group_of[i]
            b1, b2 = hp["betas"]
            lr, wd = hp["lr"], hp["weight_decay"]
            dt = p.data.dtype.type
            g = p.grad
            if wd and not self.decoupled:
                g = g + dt(wd) * p.data
            st = self.state.setdefault(i, {"step": 0, "exp_avg": np.zeros_like(p.data),
                                           "exp_avg_sq": np.zeros_like(p.data)})
            st["step"] += 1
            t = st["step"]
            m = st["exp_avg"] = dt(b1) * st["exp_avg"] + dt(1 - b1) * g
            v = st["exp_avg_sq"] = dt(b2) * st["exp_avg_sq"] + dt(1 - b2) * g * g
            step_size = dt(lr / (1 - b1 ** t))
            denom = np.sqrt(v) / dt(math.sqrt(1 - b2 ** t)) + dt(hp["eps"])
            delta = -step_size * m / denom
            if wd and self.decoupled:
                delta = delta - dt(lr * wd) * p.data
            self._apply(i, p, delta)


class AdamW(Adam):
    """Adam with decoupled weight decay as ``torch.optim.AdamW`` (default decay 0.01):
    w <- w - lr * wd * w, then the Adam step (both applied as one update here, so a
    low-format weight store rounds once). Use parameter groups to exempt biases and
    norm weights from the decay (:meth:`lowprec.autograd.transformer.GPT.param_groups`)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01,
                 update: Optional[WeightUpdate] = None, tracker: Optional[Tracker] = None):
        super().__init__(params, lr, betas, eps, weight_decay, update, tracker)


def clip_grad_norm_(params: Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale the gradients in place so that their global norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_``: the norm of the per-tensor norms; every gradient
    is multiplied by ``min(max_norm / (norm + 1e-6), 1)`` (also when that is 1).

    The norm is a float64 scalar (reductions of the gradients in float64; it models no
    GPU op); the factor is applied in each gradient's dtype. Under loss scaling, unscale
    the gradients first (as with torch's GradScaler).

    Args:
        params: tensors; those without a gradient are skipped.
        max_norm: the largest global norm allowed (> 0).
        norm_type: 2.0 (Euclidean) or ``inf`` (largest magnitude).
        error_if_nonfinite: raise when the norm is NaN or infinite (torch's option);
            otherwise the gradients are scaled by the non-finite factor as torch does.

    Returns:
        The global norm before clipping (0.0 when no tensor has a gradient).

    Raises:
        ValueError: for a max_norm that is not positive or another norm_type.
        RuntimeError: with ``error_if_nonfinite``, for a non-finite norm.
    """
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm!r}")
    if norm_type not in (2, 2.0, math.inf):
        raise ValueError(f"norm_type must be 2.0 or inf, got {norm_type!r}")
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        if norm_type == math.inf:
            total = max(float(np.max(np.abs(g), initial=0.0)) for g in grads)
        else:
            norms = np.array([np.sqrt(np.sum(np.square(g, dtype=np.float64))) for g in grads])
            total = float(np.sqrt(np.sum(norms * norms)))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of the gradients is {total}: not finite")
    coef = max_norm / (total + 1e-6)
    coef = coef if coef < 1.0 or math.isnan(coef) else 1.0
    for g in grads:
        g *= g.dtype.type(coef)
    return total
