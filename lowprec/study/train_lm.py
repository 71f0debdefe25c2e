"""Training one recipe on the small transformer: character-level language modelling of the
bundled Shakespeare excerpt (``lowprec study --model transformer``).

The same recipes as the MLP: every GEMM (projections, the batched attention products, the
tied head) goes through the precision policy; softmax, layer norm and the loss stay in
fp32, as under torch autocast. AdamW with decoupled weight decay on matrices only, gradient
clipping by global norm, linear warm-up then a cosine schedule (nanoGPT's recipe); every
run of a seed sees the same initial weights and the same batches.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, fields, replace

import numpy as np
from tqdm import tqdm

from .._kernels.plain import compiling
from ..autograd import no_grad, optim
from ..autograd.autocast import Autocast
from ..autograd.instrument import CastStats, History, Tracker
from ..autograd.schedule import WarmupCosine
from ..autograd.transformer import GPT, GPTConfig
from ..autograd.weight_update import derive_seed
from ..datasets import load_shakespeare, sample_batch, windows
from .sweep import Task
from .train import _policy, one_thread, task_policy

__all__ = ["LMConfig", "train_lm", "train_task"]


@dataclass(frozen=True)
class LMConfig:
    """Hyper-parameters of a transformer study run (the model's sizes are GPTConfig's
    defaults: 2 blocks, d_model 64, 4 heads, context 64).

    Attributes:
        steps: optimizer steps.
        batch_size: sequences per step.
        lr: peak AdamW learning rate.
        warmup: steps of linear warm-up.
        weight_decay: AdamW's decoupled weight decay (matrices only).
        clip: global gradient-norm clip (0: none).
        eval_every: steps between evaluations on the validation windows.
        eval_windows: validation windows per evaluation.
        seed: seeds the initial weights, the batches and all stochastic rounding.
        loss_shift: as :class:`lowprec.study.StudyConfig`'s.
    """

    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 30
    weight_decay: float = 0.1
    clip: float = 1.0
    eval_every: int = 50
    eval_windows: int = 32
    seed: int = 0
    loss_shift: int = 0

    def __post_init__(self):
        for f in ("steps", "batch_size", "eval_every", "eval_windows"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{f} must be a positive integer, got {v!r}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup must be in [0, steps), got {self.warmup!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0 or self.clip < 0:
            raise ValueError("weight_decay and clip must be >= 0")

    def with_params(self, params) -> "LMConfig":
        """A copy with a sweep task's (name, value) pairs applied; the MLP-only ``epochs``
        is read as steps / 100 (so ``--epochs`` scales both models' runs alike).

        Raises:
            ValueError: for a name that is not a field.
        """
        kw = dict(params)
        if "epochs" in kw:
            kw["steps"] = max(int(kw.pop("epochs")) * 10, self.warmup + 1)
        for ignored in ("momentum", "schedule", "sizes"):
            kw.pop(ignored, None)
        names = {f.name for f in fields(self)}
        bad = sorted(set(kw) - names)
        if bad:
            raise ValueError(f"unknown transformer parameter(s) {', '.join(bad)}; known: "
                             f"{', '.join(sorted(names))}")
        return replace(self, **kw)


def _evaluate(model, x, y, ctx):
    tracker, ctx.tracker = ctx.tracker, None
    try:
        with no_grad(), ctx:
            logits = model(x).data
    finally:
        ctx.tracker = tracker
    z = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    t = y.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        m = z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
        loss = float(np.mean(lse - z[np.arange(len(t)), t]))
        acc = float(np.mean(np.where(np.isfinite(z).all(axis=1), z.argmax(axis=1), -1) == t))
    return loss, acc


def train_lm(recipe, config: LMConfig = LMConfig(), progress: bool = False,
             histogram=("gradient", "activation")):
    """Train the small transformer under one recipe.

    Args:
        recipe: a recipe name or a :class:`~lowprec.autograd.policy.Policy`.
        config: the run's hyper-parameters.
        progress: a tqdm bar on stderr ("compiling" during the warm-up step).
        histogram: roles whose log2|x| histograms are kept.

    Returns:
        ``(result, history)`` as :func:`lowprec.study.train_recipe`'s, with
        ``test_accuracy`` the next-character accuracy and ``val_loss`` the cross-entropy on
        the validation windows, ``final_loss`` the mean training loss of the last
        evaluation interval; the History's "epochs" are the evaluations.
    """
    policy = _policy(recipe)
    corpus = load_shakespeare()
    cfg = GPTConfig(vocab_size=corpus.vocab_size)
    xv, yv = windows(corpus.val, cfg.context, limit=config.eval_windows)

    def build(tracker):
        model = GPT(cfg, seed=config.seed)
        ctx = Autocast(policy, seed=derive_seed(config.seed, 2), tracker=tracker)
        opt = optim.AdamW(model.param_groups(config.weight_decay), lr=config.lr,
                          update=policy.weight_update(derive_seed(config.seed, 1)),
                          tracker=tracker)
        return model, ctx, opt

    shift = np.float32(2.0 ** -config.loss_shift)

    def step(model, ctx, opt, scaler, x, y):
        with ctx:
            loss = model.loss(x, y)
            obj = loss * shift if config.loss_shift else loss
        opt.zero_grad()
        (scaler.scale(obj) if scaler is not None else obj).backward()
        if scaler is not None:
            scaler.unscale_(opt)
        if config.clip:
            optim.clip_grad_norm_(model.parameters(), config.clip)
        if scaler is not None:
            scaler.step(opt)
            skipped, scale = scaler.last_step_skipped, scaler.get_scale()
            scaler.update()
        else:
            opt.step()
            skipped, scale = False, 1.0
        return loss, skipped, scale

    bar = tqdm(total=config.steps, desc=f"{policy.name:>15} compiling", file=sys.stderr,
               disable=not progress, dynamic_ncols=True, bar_format="{desc}: [{elapsed}]")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t0 = time.perf_counter()
        # with a tracker as the run has: its statistics compile kernels of their own
        m, c, o = build(Tracker(histogram=histogram))
        xb, yb = sample_batch(corpus.train, 2, cfg.context, 0)
        with compiling():  # not the plain tier: this step is here to compile
            step(m, c, o, policy.grad_scaler(), xb, yb)
            _evaluate(m, xv[:2], yv[:2], c)
        compile_s = time.perf_counter() - t0
        bar.set_description(f"{policy.name:>15}", refresh=False)
        bar.bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
        t0 = time.perf_counter()
        tracker = Tracker(histogram=histogram)
        model, ctx, opt = build(tracker)
        sched = WarmupCosine(opt, config.warmup, config.steps)
        scaler = policy.grad_scaler()
        rng = np.random.default_rng(derive_seed(config.seed, 3))
        hist = History(recipe=policy.name)
        losses, val_loss, acc = [], math.nan, math.nan
        try:
            for s in range(config.steps):
                x, y = sample_batch(corpus.train, config.batch_size, cfg.context, rng)
                loss, skipped, scale = step(model, ctx, opt, scaler, x, y)
                sched.step()
                losses.append(loss.item())
                hist.log_step(losses[-1], epoch=s // config.eval_every, scale=scale,
                              skipped=skipped, tracker=tracker)
                bar.update(1)
                if (s + 1) % config.eval_every == 0 or s + 1 == config.steps:
                    val_loss, acc = _evaluate(model, xv, yv, ctx)
                    hist.log_epoch(s // config.eval_every, float(np.mean(losses)), acc,
                                   time.perf_counter() - t0)
                    bar.set_postfix(val_loss=f"{val_loss:.3f}")
                    losses = []
        finally:
            bar.close()
    grads = tracker.totals.get("gradient", CastStats())
    every = CastStats()
    for st in tracker.totals.values():
        every.merge(st)
    final = hist.epochs[-1]["train_loss"] if hist.epochs else math.nan
    result = dict(recipe=policy.name, seed=config.seed, test_accuracy=acc,
                  val_loss=val_loss if math.isfinite(val_loss) else None,
                  final_loss=final if math.isfinite(final) else None,
                  skipped_steps=hist.skipped_steps,
                  underflow_fraction=grads.flushed_fraction,
                  subnormal_fraction=grads.subnormal_fraction,
                  saturated_fraction=every.saturated_fraction,
                  update_lost_fraction=tracker.update_totals.lost_fraction,
                  update_applied_ratio=tracker.update_totals.applied_ratio,
                  seconds=time.perf_counter() - t0, compile_seconds=compile_s)
    return result, hist


def train_task(task: Task) -> dict:
    """The sweep's entry for a transformer run (one numba thread)."""
    params = [p for p in task.params if p[0] != "policy"]
    config = LMConfig(seed=task.seed).with_params(params)
    with one_thread():
        result, hist = train_lm(task_policy(task), config)
    return {"result": result, "history": hist.compact()}
