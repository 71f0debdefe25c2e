"""Precision policies: which format every tensor of a training step is in, and the named
recipes (:data:`RECIPES`) that ``lowprec study`` compares.

A :class:`Policy` is plain settings; :class:`lowprec.autograd.autocast.Autocast` applies
it to the engine, :meth:`Policy.grad_scaler` and :meth:`Policy.weight_update` give the
loss scaler and the low-format weight store it asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..formats import FixedFormat, Format, float32, get_format
from ..matrixcore import MatrixCoreModel, MatrixCorePath, get_mc_model, is_mc_model, select_path_pair
from ..tensorcore import BlockFMAModel, TensorCoreModel, get_model, select_block_pair
from .grad_scaler import GradScaler
from .scaling import (SCALINGS, CurrentScaling, DelayedScaling, FineGrainedScaling, MXScaling,
                      NVFP4Scaling, Scaling)
from .weight_update import UPDATE_RULES, WeightUpdate

__all__ = ["Policy", "RECIPES", "FIXED16", "ROLES", "GEMMS", "rounded_format"]

#: The three kinds of GEMM operand a policy assigns formats to.
ROLES = ("activation", "weight", "gradient")

#: The GEMMs of a linear layer and the roles of their operands (a, b): forward
#: ``x @ w``, data gradient ``g @ w.T``, weight gradient ``x.T @ g``.
GEMMS = (("forward", "activation", "weight"), ("dgrad", "gradient", "weight"),
         ("wgrad", "activation", "gradient"))


def rounded_format(value) -> Optional[Format]:
    """The format a policy field names, or None when values are not rounded.

    Args:
        value: None, a format or a format name.

    Returns:
        None for None or a format equal to float32 (float32 values need no rounding),
        else the format.

    Raises:
        ValueError: for an unknown format name.
    """
    if value is None:
        return None
    f = get_format(value)
    return None if f == float32 else f


# Filled below with the named recipes. It exists before them because building a Policy
# looks its name up here (a recipe name must mean that recipe).
RECIPES: Dict[str, Tuple["Policy", str]] = {}


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
            the weight-gradient GEMM uses). None or float32: not rounded (see
            :func:`rounded_format`).
        weights: format of weights entering a GEMM (the low-precision copy of the master
            weights).
        gradients: format of output gradients entering the backward GEMMs.
        acc: accumulator format of :func:`lowprec.matmul` ("fp32", "fp16", "bf16", ...),
            or None for a float64 reference product with numpy (gradient checks only: it
            is not an emulated accumulator; operands cast by the policy are still cast;
            not with a ``gemm_model``).
        acc_rounding: rounding of each accumulation step ("rne", "rtz", "sr", ...).
        fma: passed to :func:`lowprec.matmul`: True rounds once per step
            (round(d + a*b)); False rounds each product to the accumulator first. The two
            agree whenever products are exact in the accumulator (every low-precision
            input format with an fp32 accumulator).
        gemm_model: a tensor-core model passed to :func:`lowprec.matmul` as ``model=`` for
            every forward and backward GEMM (overrides ``acc``, ``acc_rounding`` and
            ``fma``): a GPU name of :data:`lowprec.tensorcore.MODELS` ("h100", ...), a
            :class:`~lowprec.tensorcore.TensorCoreModel` or a fitted
            :class:`~lowprec.tensorcore.BlockFMAModel`; an AMD matrix-core model of
            :mod:`lowprec.matrixcore` ("mi300x", ...; no ``promote_every``); or None. Each GEMM's operand
            formats (forward: activations x weights; dgrad: gradients x weights; wgrad:
            activations x gradients, e.g. E4M3 x E5M2) must be ones the model takes
            together; float32 (a role without a format) is not a tensor-core input.
        storage: format activations are stored in (GEMM outputs and relu/gelu/tanh/sigmoid
            outputs are rounded to it), as autocast keeps them in the low dtype. None: fp32.
        cast_rounding: rounding of the operand casts ("rne" or "sr").
        overflow: overflow rule of the operand casts; None means "saturate" under a scaling
            recipe or for a format without infinities, IEEE "inf" otherwise (so loss
            scaling sees overflow).
        scaling: None or a recipe of :mod:`lowprec.autograd.scaling`:
            :class:`CurrentScaling`, :class:`DelayedScaling`, :class:`MXScaling`,
            :class:`FineGrainedScaling` (DeepSeek-V3) or :class:`NVFP4Scaling`; it applies
            to every operand with a low format. The block-scaled MX and NVFP4 GEMMs take
            no ``gemm_model``.
        master: format the weights are stored in. None: fp32 master weights, with the
            low-precision copies made at each GEMM. A low format: weights live only there.
        update: how an update is rounded into a low ``master``: "rne", "sr" (stochastic
            rounding) or "kahan" (Kahan-compensated summation, float formats only).
        loss_scale: None, a number (static loss scaling) or "dynamic" (GradScaler).
        promote_every: None, or N: every GEMM adds its partial sum into an fp32 total
            (RNE) every N products of K and restarts, as :func:`lowprec.matmul`'s
            ``chunk=N`` does (with a ``gemm_model``: the model's fp32 promotion interval,
            a multiple of its instruction's K, e.g. DeepSeek-V3's N_C = 128 on Hopper).

    Raises:
        ValueError: unknown formats or options, a ``gemm_model`` that does not take a
            GEMM's operand formats or the promotion interval, a block-scaled recipe with
            a ``gemm_model``.
    """

    name: str = ""
    activations: Optional[str] = None
    weights: Optional[str] = None
    gradients: Optional[str] = None
    acc: Optional[str] = "fp32"
    acc_rounding: str = "rne"
    fma: bool = True
    gemm_model: Union[None, str, TensorCoreModel, BlockFMAModel, MatrixCoreModel,
                      MatrixCorePath] = None
    storage: Optional[str] = None
    cast_rounding: str = "rne"
    overflow: Optional[str] = None
    scaling: Optional[Scaling] = None
    master: Optional[str] = None
    update: str = "rne"
    loss_scale: Union[None, float, str] = None
    promote_every: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ValueError(f"Policy name must be a string, got {self.name!r}")
        bare = self._is_bare_name()
        if not self.name:  # unnamed: the fp32 default when nothing is set, else custom
            object.__setattr__(self, "name", "fp32" if bare else "custom")
            if bare:
                return
        elif bare:
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
                rounded_format(v)
            except (ValueError, TypeError) as e:
                raise ValueError(f"Policy {self.name!r}: bad {arg}={v!r}: {e}") from None
        if self.acc is not None:
            try:
                get_format(self.acc)
            except (ValueError, TypeError) as e:
                raise ValueError(f"Policy {self.name!r}: bad acc={self.acc!r}: {e} (acc=None "
                                 f"gives a float64 reference product)") from None
        if self.update not in UPDATE_RULES:
            raise ValueError(f"Policy {self.name!r}: update must be one of {UPDATE_RULES}, got "
                             f"{self.update!r}")
        if self.update == "kahan" and isinstance(rounded_format(self.master), FixedFormat):
            raise ValueError(f"Policy {self.name!r}: Kahan summation needs a float master "
                             f"format, got {self.master!r}")
        if self.cast_rounding not in ("rne", "sr"):
            raise ValueError(f"Policy {self.name!r}: cast_rounding must be 'rne' or 'sr'")
        if self.scaling is not None and not isinstance(self.scaling, SCALINGS):
            raise ValueError(f"Policy {self.name!r}: scaling must be one of "
                             f"{', '.join(c.__name__ for c in SCALINGS)}, got {self.scaling!r}")
        ls = self.loss_scale
        if not (ls is None or ls == "dynamic" or (isinstance(ls, (int, float))
                                                  and not isinstance(ls, bool) and ls > 0)):
            raise ValueError(f"Policy {self.name!r}: loss_scale must be None, a positive "
                             f"number or 'dynamic', got {ls!r}")
        pe = self.promote_every
        if pe is not None and (isinstance(pe, bool) or not isinstance(pe, (int, np.integer))
                               or pe < 1):
            raise ValueError(f"Policy {self.name!r}: promote_every must be None or a positive "
                             f"int, got {pe!r}")
        if self.gemm_model is not None:
            self._check_gemm_model()

    def _check_gemm_model(self) -> None:
        """Every GEMM's operand formats (and the promotion interval) must be ones the
        tensor-core model takes: the error comes here, not at the first GEMM."""
        if is_mc_model(self.gemm_model):
            self._check_mc_model()
            return
        try:
            model = get_model(self.gemm_model)
        except (ValueError, TypeError) as e:
            raise ValueError(f"Policy {self.name!r}: bad gemm_model={self.gemm_model!r}: "
                             f"{e}") from None
        label = model.name or repr(model)
        if self.acc is None:
            raise ValueError(f"Policy {self.name!r}: acc=None (a float64 reference product) "
                             f"cannot run on gemm_model {label!r}; drop one of them")
        if isinstance(self.scaling, (MXScaling, NVFP4Scaling)):
            raise ValueError(f"Policy {self.name!r}: {type(self.scaling).__name__} GEMMs run "
                             f"on block-scaled values; block-scaled tensor-core GEMMs are not "
                             f"modelled, so gemm_model must be None (got {label!r})")
        for gemm, ra, rb in GEMMS:
            fa, fb = self.format(ra) or float32, self.format(rb) or float32
            try:
                blk = select_block_pair(model, fa, fb, "fp32")
                if self.promote_every is not None:
                    blk.with_(promote_every=int(self.promote_every))
            except ValueError as e:
                hint = (f"; give the {ra}s and {rb}s formats it takes" if float32 in (fa, fb)
                        else "")
                raise ValueError(f"Policy {self.name!r}: gemm_model {label!r} cannot run the "
                                 f"{gemm} GEMM ({ra}s in {fa.name} x {rb}s in {fb.name}): "
                                 f"{e}{hint}") from None

    def _check_mc_model(self) -> None:
        """The same checks for an AMD matrix-core model (no promotion interval: its
        instructions chain in fp32 already)."""
        model = get_mc_model(self.gemm_model)
        label = getattr(model, "name", None) or repr(model)
        if self.acc is None or self.promote_every is not None:
            raise ValueError(f"Policy {self.name!r}: gemm_model {label!r} (AMD matrix cores) "
                             f"takes neither acc=None nor promote_every")
        if isinstance(self.scaling, (MXScaling, NVFP4Scaling)):
            raise ValueError(f"Policy {self.name!r}: block-scaled GEMMs are not modelled on "
                             f"{label!r}; gemm_model must be None")
        for gemm, ra, rb in GEMMS:
            fa, fb = self.format(ra) or float32, self.format(rb) or float32
            try:
                select_path_pair(model, fa, fb)
            except ValueError as e:
                raise ValueError(f"Policy {self.name!r}: gemm_model {label!r} cannot run the "
                                 f"{gemm} GEMM ({ra}s in {fa.name} x {rb}s in {fb.name}): "
                                 f"{e}") from None

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
        """The format of GEMM operands of a role ("activation", "weight", "gradient"), None
        when they are not rounded.

        Raises:
            ValueError: for an unknown role.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        return rounded_format({"activation": self.activations, "weight": self.weights,
                     "gradient": self.gradients}[role])

    def grad_scaler(self) -> Optional[GradScaler]:
        """A fresh loss scaler for this policy's ``loss_scale`` (None without one)."""
        if self.loss_scale is None:
            return None
        if self.loss_scale == "dynamic":
            return GradScaler()
        return GradScaler(init_scale=float(self.loss_scale), dynamic=False)

    def weight_update(self, seed: int = 0) -> Optional[WeightUpdate]:
        """The update rule for this policy's master format (None for fp32 masters)."""
        m = rounded_format(self.master)
        return None if m is None else WeightUpdate(m, self.update, seed=seed)


#: Word length split of the fixed16 recipes: <IL, FL> = <8, 8> (sign included in IL):
#: range [-128, 128), resolution 2^-8, one of the splits of Gupta et al. (2015).
FIXED16 = "fixed8_8"


def _named_recipes() -> Dict[str, Tuple[Policy, str]]:
    """Every named recipe with its one-line description (the order ``lowprec study``
    lists them in)."""
    def mixed(name, fmt, **kw):
        return Policy(name, activations=fmt, weights=fmt, gradients=fmt, storage=fmt, **kw)

    def fp8(name, scaling, **kw):
        return Policy(name, activations="float8_e4m3fn", weights="float8_e4m3fn",
                      gradients="float8_e5m2", scaling=scaling, **kw)

    def same(name, fmt, scaling, **kw):  # one format for all three GEMM operand roles
        return Policy(name, activations=fmt, weights=fmt, gradients=fmt, scaling=scaling, **kw)

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
        "fp8-current-h100": (fp8("fp8-current-h100", CurrentScaling(), gemm_model="h100"),
                             "fp8-current with every GEMM on the H100 tensor-core model"),
        "fp8-current-h100-promote128": (
            fp8("fp8-current-h100-promote128", CurrentScaling(), gemm_model="h100",
                promote_every=128),
            "fp8-current-h100, partial sums promoted to fp32 every 128 products"),
        "fp8-deepseek": (same("fp8-deepseek", "float8_e4m3fn", FineGrainedScaling(),
                              gemm_model="h100"),
                         "DeepSeek-V3: E4M3 everywhere, 1x128 tiles / 128x128 weight blocks, "
                         "H100 model, fp32 every 128"),
        "nvfp4": (same("nvfp4", "float4_e2m1fn", NVFP4Scaling()),
                  "NVFP4: E2M1 in 16-blocks, E4M3 block + fp32 tensor scales, 16x16 weight "
                  "blocks, SR grads, RHT on wgrad"),
    }
    return table


RECIPES.update(_named_recipes())
