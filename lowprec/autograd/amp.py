"""Mixed precision for the autograd engine: precision policies (an autocast analogue),
loss scaling, fp8 scaling recipes and low-precision weight updates.

* :class:`Policy` names the formats: GEMM inputs in forward (activations, weights) and
  backward (output gradients), the accumulator and its rounding, the storage format of
  activations, the master-weight format and how updates are rounded into it, and an
  optional per-tensor or per-block scaling recipe. Softmax, log_softmax, layer_norm,
  losses, exp/log and reductions always run in fp32, as torch autocast forces them.
* :class:`Autocast` applies a policy: ``with Autocast(policy): loss = model(x)``. Every
  GEMM of forward and backward goes through :func:`lowprec.matmul` with its operands cast
  as the policy says; each cast reports to an optional
  :class:`~lowprec.autograd.instrument.Tracker`.
* :class:`CurrentScaling`, :class:`DelayedScaling` and :class:`MXScaling` are Transformer
  Engine's fp8 recipes (``transformer_engine/common/recipe``), for any float format.
* :class:`GradScaler` is ``torch.amp.GradScaler``'s algorithm with its defaults;
  ``dynamic=False`` gives static loss scaling.
* :class:`WeightUpdate` keeps weights only in a low format (bf16, fp16, fixed point) and
  rounds each update into it by RNE, stochastic rounding or Kahan-compensated summation.
"""

from __future__ import annotations

import contextvars
from collections import deque
from dataclasses import dataclass, fields
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from ..formats import FixedFormat, FloatFormat, Format, get_format
from ..quantize import decode, encode, quantize
from .instrument import Tracker

__all__ = ["Policy", "RECIPES", "FIXED16", "Autocast", "autocast", "current", "CurrentScaling", "DelayedScaling",
           "MXScaling", "GradScaler", "WeightUpdate", "derive_seed", "ROLES"]

#: The three kinds of GEMM operand a policy assigns formats to.
ROLES = ("activation", "weight", "gradient")
_UPDATES = ("rne", "sr", "kahan")
_F32MAX = np.float32(np.finfo(np.float32).max)


def derive_seed(*parts: int) -> int:
    """A reproducible 63-bit seed from non-negative integers (numpy SeedSequence)."""
    ss = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def _fmt(name) -> Optional[Format]:
    if name is None or (isinstance(name, str) and name.lower() in ("fp32", "float32", "none")):
        return None
    return get_format(name)


# --------------------------------------------------------------------------------------
# fp8 scaling recipes
# --------------------------------------------------------------------------------------
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
    """

    block_size: int = 32
    scale_rule: str = "ceil"

    def __post_init__(self):
        if int(self.block_size) < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size!r}")
        if self.scale_rule not in ("ceil", "floor", "rceil"):
            raise ValueError(f"scale_rule must be 'ceil', 'floor' or 'rceil', got {self.scale_rule!r}")


Scaling = Union[CurrentScaling, DelayedScaling, MXScaling]


class _AmaxHistory:
    """Delayed-scaling state of one tensor."""

    __slots__ = ("amaxes", "scale")

    def __init__(self, length: int):
        self.amaxes: deque = deque(maxlen=length)
        self.scale = np.float32(1.0)

    def push(self, amax: np.float32, recipe: DelayedScaling, fmax: float) -> None:
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


# --------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """Which format every tensor of a training step is in.

    Args:
        name: a named recipe (:data:`RECIPES`: ``Policy("bf16")`` is the bf16 recipe; an
            unknown name alone is an error), or the label of a policy whose fields are
            given (it must not be a recipe name unless the fields are that recipe's).
            Unnamed: "fp32" when no field is set, else "custom". Use
            :meth:`Policy.recipe` to start from a recipe and change some fields.
        activations: format of activations entering a GEMM (forward, and the saved copy
            the weight-gradient GEMM uses). None or "fp32": not rounded.
        weights: format of weights entering a GEMM (the low-precision copy of the master
            weights).
        gradients: format of output gradients entering the backward GEMMs.
        acc: accumulator format of :func:`lowprec.matmul` ("fp32", "fp16", "bf16", ...),
            or "fp64" for a float64 reference product (gradient checks only: it is not an
            emulated accumulator).
        acc_rounding: rounding of each accumulation step ("rne", "rtz", "sr", ...).
        fma: passed to :func:`lowprec.matmul`: True rounds once per step
            (round(d + a*b)); False rounds each product to the accumulator first. The two
            agree whenever products are exact in the accumulator (every low-precision
            input format with an fp32 accumulator).
        gemm_model: a hardware accumulation model name passed to :func:`lowprec.matmul`
            (overrides ``acc``), or None.
        storage: format activations are stored in (GEMM outputs and relu/gelu/tanh/sigmoid
            outputs are rounded to it), as autocast keeps them in the low dtype. None: fp32.
        cast_rounding: rounding of the operand casts ("rne" or "sr").
        overflow: overflow rule of the operand casts; None means "saturate" under a scaling
            recipe or for a format without infinities, IEEE "inf" otherwise (so loss
            scaling sees overflow).
        scaling: None, :class:`CurrentScaling`, :class:`DelayedScaling` or
            :class:`MXScaling`; it applies to every operand with a low format.
        master: format the weights are stored in. None: fp32 master weights, with the
            low-precision copies made at each GEMM. A low format: weights live only there.
        update: how an update is rounded into a low ``master``: "rne", "sr" (stochastic
            rounding) or "kahan" (Kahan-compensated summation, float formats only).
        loss_scale: None, a number (static loss scaling) or "dynamic" (GradScaler).

    Raises:
        ValueError: unknown formats or options.
    """

    name: str = ""
    activations: Optional[str] = None
    weights: Optional[str] = None
    gradients: Optional[str] = None
    acc: str = "fp32"
    acc_rounding: str = "rne"
    fma: bool = True
    gemm_model: Optional[str] = None
    storage: Optional[str] = None
    cast_rounding: str = "rne"
    overflow: Optional[str] = None
    scaling: Optional[Scaling] = None
    master: Optional[str] = None
    update: str = "rne"
    loss_scale: Union[None, float, str] = None

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ValueError(f"Policy name must be a string, got {self.name!r}")
        if not self.name:  # unnamed: fp32 when nothing is set, else a custom policy
            object.__setattr__(self, "name", "fp32" if self._is_bare_name() else "custom")
        if self._is_bare_name() and self.name != "fp32":
            # Policy("bf16") means the named recipe; an unknown bare name is an error, never
            # a label on the fp32 default
            if self.name not in RECIPES:
                raise ValueError(f"Policy({self.name!r}): unknown recipe; named recipes: "
                                 f"{', '.join(RECIPES)}. To define your own, pass formats, "
                                 f"e.g. Policy({self.name!r}, activations='bf16', ...)")
            for f in fields(self):
                object.__setattr__(self, f.name, getattr(RECIPES[self.name][0], f.name))
            return
        if self.name in RECIPES and self != RECIPES[self.name][0]:
            raise ValueError(f"Policy({self.name!r}, ...): {self.name!r} names a built-in "
                             f"recipe with other settings; start from it with "
                             f"Policy.recipe({self.name!r}, **changes) or choose another name")
        for arg in ("activations", "weights", "gradients", "storage", "master"):
            v = getattr(self, arg)
            try:
                _fmt(v)
            except (ValueError, TypeError) as e:
                raise ValueError(f"Policy {self.name!r}: bad {arg}={v!r}: {e}") from None
        if self.update not in _UPDATES:
            raise ValueError(f"Policy {self.name!r}: update must be one of {_UPDATES}, got "
                             f"{self.update!r}")
        if self.update == "kahan" and isinstance(_fmt(self.master), FixedFormat):
            raise ValueError(f"Policy {self.name!r}: Kahan summation needs a float master "
                             f"format, got {self.master!r}")
        if self.cast_rounding not in ("rne", "sr"):
            raise ValueError(f"Policy {self.name!r}: cast_rounding must be 'rne' or 'sr'")
        if self.scaling is not None and not isinstance(self.scaling, (CurrentScaling,
                                                                      DelayedScaling, MXScaling)):
            raise ValueError(f"Policy {self.name!r}: scaling must be a CurrentScaling, "
                             f"DelayedScaling or MXScaling, got {self.scaling!r}")
        ls = self.loss_scale
        if not (ls is None or ls == "dynamic" or (isinstance(ls, (int, float))
                                                  and not isinstance(ls, bool) and ls > 0)):
            raise ValueError(f"Policy {self.name!r}: loss_scale must be None, a positive "
                             f"number or 'dynamic', got {ls!r}")

    def _is_bare_name(self) -> bool:
        return all(getattr(self, f.name) == f.default for f in fields(self) if f.name != "name")

    @classmethod
    def recipe(cls, name: str, **changes) -> "Policy":
        """A named recipe (see :data:`RECIPES`), optionally with some fields changed.

        Raises:
            ValueError: for an unknown recipe name or bad field values.
        """
        if name not in RECIPES:
            raise ValueError(f"unknown recipe {name!r}; named recipes: {', '.join(RECIPES)}")
        base = RECIPES[name][0]
        if not changes:
            return base
        kw = {f.name: getattr(base, f.name) for f in fields(base)}
        kw.update(changes)
        kw.setdefault("name", name)
        if kw["name"] == name:
            kw["name"] = name + "*"  # a changed recipe is no longer the named one
        return cls(**kw)

    def format(self, role: str) -> Optional[Format]:
        """The format of GEMM operands of a role ("activation", "weight", "gradient")."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        return _fmt({"activation": self.activations, "weight": self.weights,
                     "gradient": self.gradients}[role])

    def grad_scaler(self) -> Optional["GradScaler"]:
        """A fresh loss scaler for this policy's ``loss_scale`` (None without one)."""
        if self.loss_scale is None:
            return None
        if self.loss_scale == "dynamic":
            return GradScaler()
        return GradScaler(init_scale=float(self.loss_scale), dynamic=False)

    def weight_update(self, seed: int = 0) -> Optional["WeightUpdate"]:
        """The update rule for this policy's master format (None for fp32 masters)."""
        m = _fmt(self.master)
        return None if m is None else WeightUpdate(m, self.update, seed=seed)


# --------------------------------------------------------------------------------------
# named recipes
# --------------------------------------------------------------------------------------
#: Word length split of the fixed16 recipes: <IL, FL> = <8, 8> (sign included in IL):
#: range [-128, 128), resolution 2^-8, one of the splits of Gupta et al. (2015).
FIXED16 = "fixed8_8"


def _named_recipes() -> dict:
    def mixed(name, fmt, **kw):
        return Policy(name, activations=fmt, weights=fmt, gradients=fmt, storage=fmt, **kw)

    def fp8(name, scaling):
        return Policy(name, activations="float8_e4m3fn", weights="float8_e4m3fn",
                      gradients="float8_e5m2", scaling=scaling)

    table = {
        "fp32": (Policy(), "reference: float32 everywhere"),
        "bf16": (mixed("bf16", "bf16"), "bf16 GEMM inputs/activations, fp32 accumulate and "
                                         "master"),
        "fp16": (mixed("fp16", "fp16"), "fp16 GEMM inputs/activations, no loss scaling"),
        "fp16-scaled": (mixed("fp16-scaled", "fp16", loss_scale="dynamic"),
                        "fp16 with dynamic loss scaling (GradScaler)"),
        "fp8-current": (fp8("fp8-current", CurrentScaling()),
                        "E4M3 fwd / E5M2 grads, per-tensor current scaling"),
        "fp8-delayed": (fp8("fp8-delayed", DelayedScaling()),
                        "E4M3 fwd / E5M2 grads, delayed scaling (amax history 1024, max)"),
        "bf16-pure-rne": (mixed("bf16-pure-rne", "bf16", master="bf16", update="rne"),
                          "weights only in bf16, update rounded to nearest"),
        "bf16-pure-sr": (mixed("bf16-pure-sr", "bf16", master="bf16", update="sr"),
                         "weights only in bf16, stochastically rounded update"),
        "bf16-pure-kahan": (mixed("bf16-pure-kahan", "bf16", master="bf16", update="kahan"),
                            "weights only in bf16, Kahan-compensated update"),
        "fixed16-rn": (Policy("fixed16-rn", master=FIXED16, update="rne"),
                       f"weights only in fixed point {FIXED16}, update rounded to nearest"),
        "fixed16-sr": (Policy("fixed16-sr", master=FIXED16, update="sr"),
                       f"weights only in fixed point {FIXED16}, stochastically rounded update"),
        "fp8-mx": (fp8("fp8-mx", MXScaling()), "E4M3 fwd / E5M2 grads, MX blocks of 32, E8M0 "
                                                "scales"),
    }
    return table


RECIPES: Dict[str, Tuple[Policy, str]] = {}
RECIPES.update(_named_recipes())


# --------------------------------------------------------------------------------------
# applying a policy
# --------------------------------------------------------------------------------------
class QTensor(NamedTuple):
    """A GEMM operand after its cast: ``values`` (float32; with a format, the values of
    ``codes``) times ``inv`` (the per-tensor dequantization factor, None for 1)."""

    values: np.ndarray
    fmt: Optional[Format]
    inv: Optional[np.float32]
    codes: Optional[np.ndarray] = None

    @property
    def T(self) -> "QTensor":
        return QTensor(self.values.T, self.fmt, self.inv,
                       None if self.codes is None else self.codes.T)

    def operand(self):
        """What :func:`lowprec.matmul` gets: the codes with their format (so they are not
        rounded again), or the float32 values."""
        if self.fmt is None:
            return np.ascontiguousarray(self.values)
        return _Coded(np.ascontiguousarray(self.codes), self.fmt)


class _Coded(NamedTuple):
    """Codes plus format, which :func:`lowprec.matmul` accepts as it accepts an LPArray:
    the casts here need nothing else of an LPArray (context, operators)."""

    codes: np.ndarray
    fmt: Format


_CURRENT: contextvars.ContextVar = contextvars.ContextVar("lowprec_autocast", default=None)


class Autocast:
    """A policy at work: per-tensor scaling state, instrumentation, reproducible seeds.

    Use as a context manager around the forward pass; the backward pass of each op uses
    the Autocast that was active when the op ran forward, as torch does.

    Args:
        policy: the :class:`Policy` (default: fp32 everywhere).
        seed: seed of every stochastic rounding this context makes (operand casts with
            ``cast_rounding="sr"``, stochastic accumulation).
        tracker: an :class:`~lowprec.autograd.instrument.Tracker` that receives the
            statistics of every cast, or None.
        trace: record ``(op, role, format)`` for every op in ``.events`` (to check which
            op saw which format).
    """

    def __init__(self, policy: Optional[Policy] = None, *, seed: int = 0,
                 tracker: Optional[Tracker] = None, trace: bool = False):
        self.policy = policy if policy is not None else Policy()
        self.seed = int(seed)
        self.tracker = tracker
        self.events: Optional[List[Tuple[str, str, str]]] = [] if trace else None
        self._fmts = {r: self.policy.format(r) for r in ROLES}
        self._storage = _fmt(self.policy.storage)
        self._delayed: Dict[str, _AmaxHistory] = {}
        self._calls = 0
        self._tokens: List[contextvars.Token] = []

    def __enter__(self) -> "Autocast":
        self._tokens.append(_CURRENT.set(self))
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self._tokens.pop())

    def __repr__(self) -> str:
        return f"Autocast({self.policy.name!r})"

    # -- bookkeeping ------------------------------------------------------------------
    def note(self, op: str, role: str, fmt: Optional[Format]) -> None:
        """Record that ``op`` saw (or produced) ``role`` in ``fmt`` (when tracing)."""
        if self.events is not None:
            self.events.append((op, role, "fp32" if fmt is None else fmt.name))

    def _next_seed(self) -> int:
        self._calls += 1
        return derive_seed(self.seed, self._calls)

    def _overflow(self, fmt: Format) -> str:
        if self.policy.overflow is not None:
            return self.policy.overflow
        if self.policy.scaling is not None or not fmt.has_inf:
            return "saturate"
        return "inf"

    def _round(self, x: np.ndarray, fmt: Format) -> Tuple[np.ndarray, np.ndarray]:
        """(codes, float32 values) of x rounded into fmt as the policy says."""
        rnd = self.policy.cast_rounding
        seed = self._next_seed() if rnd == "sr" else None
        codes = encode(x, fmt, rounding=rnd, overflow=self._overflow(fmt), seed=seed,
                       nan="zero" if not fmt.has_nan else "raise")
        return codes, decode(codes, fmt, dtype=np.float32)

    # -- non-GEMM ops -------------------------------------------------------------------
    def fp32(self, data: np.ndarray, op: str) -> np.ndarray:
        """An op that autocast keeps in fp32: returned unchanged, noted for tracing."""
        self.note(op, "out", None)
        return data

    def store(self, data: np.ndarray, op: str, exact: bool = False) -> np.ndarray:
        """An activation: rounded to the storage format (unchanged when it is fp32, or
        when ``exact`` says the op cannot leave its input's format, as relu)."""
        self.note(op, "out", self._storage)
        if self._storage is None or data.dtype == np.float64 or exact:
            return data
        return self._round(data, self._storage)[1]

    # -- casts ------------------------------------------------------------------------
    def cast(self, x: np.ndarray, role: str, key: str, axis: int = -1) -> QTensor:
        """Cast a GEMM operand as the policy says for ``role``.

        Args:
            x: the operand (float32; float64 passes through unrounded when the policy
                has no format for the role).
            role: "activation", "weight" or "gradient".
            key: tracked-tensor name (delayed-scaling state, instrumentation).
            axis: the GEMM's reduction axis of ``x`` (used by block scaling).

        Returns:
            A :class:`QTensor`.
        """
        fmt = self._fmts[role]
        tk = f"{key}/{role}"
        if fmt is None:
            if self.tracker is not None:
                self.tracker.record(tk, role, None, x, x)
            return QTensor(x, None, None)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        sc = self.policy.scaling
        if isinstance(sc, MXScaling):
            return self._cast_mx(x, fmt, role, tk, axis, sc)
        amax = None
        if sc is None:
            xs, inv = x, None
        else:
            ax = np.abs(x)
            amax_seen = np.float32(ax.max()) if x.size else np.float32(0)  # NaN/inf propagate
            finite = np.isfinite(ax)
            amax = amax_seen if np.isfinite(amax_seen) else (
                np.float32(ax[finite].max()) if finite.any() else np.float32(0))
            if isinstance(sc, CurrentScaling):
                from ..scaled import fp8_scale
                s = np.float32(fp8_scale(amax_seen, fmt))
            else:
                h = self._delayed.get(tk)
                if h is None:
                    h = self._delayed[tk] = _AmaxHistory(int(sc.amax_history_len))
                s = h.scale
                h.push(amax_seen, sc, fmt.max)
            with np.errstate(over="ignore", invalid="ignore"):
                xs = x * s
            inv = np.float32(np.float32(1) / s)
        codes, q = self._round(xs, fmt)
        if self.tracker is not None:
            self.tracker.record(tk, role, fmt, xs, q, amax)
        return QTensor(q, fmt, inv, codes)

    def _cast_mx(self, x, fmt, role, tk, axis, sc: MXScaling) -> QTensor:
        from ..scaled import quantize_scaled
        from ..quantize import decode

        ax = axis % x.ndim
        st = quantize_scaled(x, fmt, granularity="block", axis=ax, block_size=sc.block_size,
                             scale_fmt="float8_e8m0fnu", scale_rule=sc.scale_rule,
                             rounding=self.policy.cast_rounding, saturate=True,
                             seed=self._next_seed() if self.policy.cast_rounding == "sr" else None)
        deq = st.dequantize(np.float32)
        if self.tracker is not None:
            s = np.repeat(np.asarray(st.scales, np.float64), sc.block_size, axis=ax)
            s = np.take(s, np.arange(x.shape[ax]), axis=ax)
            with np.errstate(invalid="ignore"):
                xs = x.astype(np.float64) / s
            self.tracker.record(tk, role, fmt, xs, decode(st.codes, fmt, np.float64))
        # Block scales are powers of two, so the dequantized elements are exact float32
        # values and the products are exact: the GEMM sees them as fp32 inputs.
        return QTensor(deq, None, None)

    # -- GEMMs ------------------------------------------------------------------------
    def _gemm(self, a: QTensor, b: QTensor) -> np.ndarray:
        p = self.policy
        if p.acc == "fp64":
            out = np.matmul(a.values.astype(np.float64), b.values.astype(np.float64))
            if a.inv is not None or b.inv is not None:
                out = out * np.float64(a.inv if a.inv is not None else 1) \
                    * np.float64(b.inv if b.inv is not None else 1)
            return out
        from ..gemm import matmul
        seed = self._next_seed() if p.acc_rounding == "sr" else None
        # Per-tensor dequantization as torch._scaled_mm: (r * scale_a) * scale_b in fp32.
        return matmul(a.operand(), b.operand(), acc=p.acc, acc_rounding=p.acc_rounding,
                      fma=p.fma, model=p.gemm_model, seed=seed, scale_a=a.inv, scale_b=b.inv)

    def matmul_forward(self, a: np.ndarray, b: np.ndarray, key: str):
        """Forward GEMM ``a @ b`` (a: activations m x k, b: weights k x n).

        Returns:
            ``(output, saved)``: the output (rounded to the storage format) and what the
            backward pass needs.
        """
        qa = self.cast(a, "activation", key, axis=1)
        qb = self.cast(b, "weight", key, axis=0)
        self.note("matmul", "activation", self._fmts["activation"])
        self.note("matmul", "weight", self._fmts["weight"])
        out = self._gemm(qa, qb).astype(a.dtype, copy=False)  # float32 GEMMs upcast exactly
        out = self.store(out, "matmul")
        return out, (a, b, qa, qb)

    def matmul_backward(self, g: np.ndarray, saved, key: str, need_a: bool, need_b: bool):
        """Backward GEMMs: ``g @ b.T`` (data gradient) and ``a.T @ g`` (weight gradient)."""
        a, b, qa, qb = saved
        ga = gb = None
        if not (need_a or need_b):
            return ga, gb
        if isinstance(self.policy.scaling, MXScaling):
            # Block scales run along each GEMM's reduction axis, which differs between
            # forward and backward: cast again, as MX hardware keeps both layouts.
            if need_a:
                ga = self._gemm(self.cast(g, "gradient", key, axis=1),
                                self.cast(b, "weight", key, axis=1).T)
            if need_b:
                gb = self._gemm(self.cast(a, "activation", key, axis=0).T,
                                self.cast(g, "gradient", key, axis=0))
        else:
            qg = self.cast(g, "gradient", key, axis=1)
            if need_a:
                ga = self._gemm(qg, qb.T)
            if need_b:
                gb = self._gemm(qa.T, qg)
        gfmt = self._fmts["gradient"]
        if need_a:
            self.note("matmul.dgrad", "gradient", gfmt)
        if need_b:
            self.note("matmul.wgrad", "gradient", gfmt)
        ga = None if ga is None else ga.astype(a.dtype, copy=False)
        gb = None if gb is None else gb.astype(b.dtype, copy=False)
        return ga, gb


_DEFAULT: Optional[Autocast] = None


def current() -> Autocast:
    """The active :class:`Autocast` (a plain fp32 one outside any ``with`` block)."""
    ac = _CURRENT.get()
    if ac is not None:
        return ac
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Autocast(Policy())
    return _DEFAULT


def autocast(policy: Optional[Policy] = None, **kw) -> Autocast:
    """``with autocast(policy): ...``; keyword arguments as :class:`Autocast`."""
    return Autocast(policy, **kw)


# --------------------------------------------------------------------------------------
# loss scaling
# --------------------------------------------------------------------------------------
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

    def scale(self, loss):
        """``loss * scale`` (a Tensor or array)."""
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
    d = getattr(x, "data", x)
    return np.asarray(d).dtype if np.asarray(d).dtype.kind == "f" else np.dtype(np.float32)


# --------------------------------------------------------------------------------------
# weights stored in a low format
# --------------------------------------------------------------------------------------
class WeightUpdate:
    """Weights kept only in a low format; each update ``w + delta`` is rounded into it.

    * ``"rne"``: round to nearest even. Updates smaller than half a unit in the last place
      of the weight are lost (stagnation; Micikevicius et al. 2018, Zamirai et al. 2020).
    * ``"sr"``: stochastic rounding of the exact sum: the expected weight follows the
      exact update (Gupta et al. 2015). Random bits come from (seed, parameter index,
      update count, element), so runs are reproducible.
    * ``"kahan"``: Kahan-compensated summation with the compensation also stored in the
      format: y = rnd(delta - c); t = rnd(w + y); c = rnd(rnd(t - w) - y); w = t.

    Float formats round the exact sum once (:func:`lowprec.add`). Fixed-point formats are a uniform grid, so SR(w + d) equals
    w + SR(d) for w on the grid (saturating at the ends), and RNE rounds the float64 sum,
    which is exact for the word lengths supported.

    Args:
        fmt: the weight format (a float or fixed-point format or name).
        rounding: "rne", "sr" or "kahan".
        seed: seed of stochastic rounding.

    Raises:
        ValueError: unknown rounding, or Kahan with a fixed-point format.
    """

    def __init__(self, fmt, rounding: str = "rne", seed: int = 0):
        self.fmt = get_format(fmt)
        if rounding not in _UPDATES:
            raise ValueError(f"rounding must be one of {_UPDATES}, got {rounding!r}")
        if rounding == "kahan" and not isinstance(self.fmt, FloatFormat):
            raise ValueError(f"Kahan summation needs a float format, got {self.fmt.name}")
        self.rounding = rounding
        self.seed = int(seed)
        self._count: Dict[int, int] = {}
        self._comp: Dict[int, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"WeightUpdate({self.fmt.name}, {self.rounding!r})"

    def cast(self, x: np.ndarray) -> np.ndarray:
        """Round weights into the format (RNE, saturating): the initial conversion."""
        return quantize(np.asarray(x), self.fmt, rounding="rne", overflow="saturate").astype(
            np.asarray(x).dtype, copy=False)

    def _sum(self, w: np.ndarray, d: np.ndarray, mode: str, seed: Optional[int]) -> np.ndarray:
        """round(w + d) into the format, from the exact sum (float64 result)."""
        f = self.fmt
        if isinstance(f, FixedFormat):
            w64 = np.asarray(w, np.float64)
            d64 = np.asarray(d, np.float64)
            if mode == "sr":
                # Round d on the same grid with the widest word, so SR(d) never saturates
                # before w is added (w + d may be in range while d alone is not).
                wide = FixedFormat(max(32 - f.frac_bits, 1), f.frac_bits)
                r = quantize(d64, wide, rounding="sr", overflow="saturate", seed=seed)
                return np.clip(w64 + r, f.min, f.max)  # exact: both on the 2^-FL grid
            return quantize(w64 + d64, f, rounding=mode, overflow="saturate")
        from ..arith import add
        return add(np.asarray(w, np.float32), np.asarray(d, np.float32), f, rounding=mode,
                   overflow="saturate", seed=seed).astype(np.float64)

    def apply(self, index: int, w: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The new stored weight after adding ``delta`` to weight array number ``index``.

        Args:
            index: the parameter's position in its optimizer (keys state and random bits).
            w: current weights (on the format's grid).
            delta: the update the optimizer computed (in float32/float64).

        Returns:
            New weights in ``w``'s dtype, on the format's grid.
        """
        n = self._count.get(index, 0)
        self._count[index] = n + 1
        if self.rounding == "kahan":
            c = self._comp.get(index)
            if c is None:
                c = np.zeros(np.shape(w), np.float64)
            y = self._sum(delta, -c, "rne", None)
            t = self._sum(w, y, "rne", None)
            self._comp[index] = self._sum(self._sum(t, -np.asarray(w), "rne", None), -y,
                                          "rne", None)
            new = t
        elif self.rounding == "sr":
            new = self._sum(w, delta, "sr", derive_seed(self.seed, index, n))
        else:
            new = self._sum(w, delta, "rne", None)
        return new.astype(np.asarray(w).dtype, copy=False)

    def state_dict(self) -> dict:
        return dict(count=dict(self._count), comp={k: v.copy() for k, v in self._comp.items()})

    def load_state_dict(self, state: dict) -> None:
        self._count = dict(state["count"])
        self._comp = {int(k): np.asarray(v, np.float64) for k, v in state["comp"].items()}
