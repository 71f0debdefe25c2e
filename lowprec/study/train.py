"""Training one recipe: the study's MLP on the bundled digits, and the sweep's task entry.

Every recipe trains the same 64-128-128-10 ReLU MLP from the same initial weights on the
same batches (SGD with momentum, a cosine learning rate); only the precision policy
differs. Every GEMM of forward and backward goes through :func:`lowprec.matmul`.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Optional

import numba
import numpy as np
from tqdm import tqdm

from .._kernels.plain import compiling
from ..autograd import Tensor, nn, no_grad, ops, optim
from ..autograd.autocast import Autocast
from ..autograd.instrument import CastStats, History, Tracker
from ..autograd.weight_update import derive_seed
from ..datasets import load_digits
from ..autograd.policy import Policy
from .config import StudyConfig, recipe_policy
from .sweep import Task

__all__ = ["train_recipe", "train_task", "task_policy", "one_thread"]


@contextlib.contextmanager
def one_thread():
    """Run numba kernels on one thread: a study's arrays are a few thousand elements, so
    starting threads costs more than it saves, and a sweep runs one task per core."""
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


def _nan_to_none(x: float) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else float(x)


def _accuracy(model, x, y, ctx) -> float:
    tracker, ctx.tracker = ctx.tracker, None  # evaluation is not part of the statistics
    try:
        with no_grad(), ctx:
            logits = model(Tensor(x)).data
    finally:
        ctx.tracker = tracker
    with np.errstate(invalid="ignore"):
        pred = np.where(np.isfinite(logits).all(axis=1), logits.argmax(axis=1), -1)
    return float((pred == y).mean())


def _policy(recipe) -> "Policy":
    return recipe if isinstance(recipe, Policy) else recipe_policy(recipe)


def _setup(recipe, config: StudyConfig, tracker):
    policy = _policy(recipe)
    model = nn.MLP(list(config.sizes), seed=config.seed)
    ctx = Autocast(policy, seed=derive_seed(config.seed, 2), tracker=tracker)
    opt = optim.SGD(model.parameters(), lr=config.lr * 2.0 ** config.loss_shift,
                    momentum=config.momentum,
                    update=policy.weight_update(derive_seed(config.seed, 1)), tracker=tracker)
    return policy, model, ctx, opt


def _step(model, ctx, opt, scaler, x, y, shift):
    with ctx:
        loss = ops.cross_entropy(model(Tensor(x)), y)
        obj = loss * shift if shift != 1 else loss
    opt.zero_grad()
    (scaler.scale(obj) if scaler is not None else obj).backward()
    if scaler is not None:
        scaler.step(opt)
        skipped, scale = scaler.last_step_skipped, scaler.get_scale()
        scaler.update()
    else:
        opt.step()
        skipped, scale = False, 1.0
    return loss, skipped, scale


def _warm_up(name: str, config: StudyConfig, data, histogram) -> float:
    """One step on a throwaway model, so numba compiles this recipe's kernels (or loads them
    from its cache) before the clock of the run starts. Returns its seconds."""
    t0 = time.perf_counter()
    # with a tracker as the run has: its statistics compile kernels of their own
    _, model, ctx, opt = _setup(name, config, Tracker(histogram=histogram))
    scaler = _policy(name).grad_scaler()
    b = min(config.batch_size, len(data.y_train))
    with compiling():  # not the plain tier: this step is here to compile
        _step(model, ctx, opt, scaler, data.x_train[:b], data.y_train[:b], np.float32(1))
        _accuracy(model, data.x_test[:b], data.y_test[:b], ctx)
    return time.perf_counter() - t0


def train_recipe(name, config: StudyConfig, data=None, progress: bool = False,
                 histogram=("gradient", "activation")):
    """Train the study's MLP under one recipe.

    Args:
        name: a recipe name (see :data:`lowprec.study.RECIPES`) or a
            :class:`~lowprec.autograd.policy.Policy`.
        config: the shared hyper-parameters.
        data: a :class:`lowprec.datasets.Split` (default: the bundled digits split by
            ``config.seed``).
        progress: show a tqdm bar on stderr ("compiling" while numba compiles).
        histogram: roles whose log2|x| histograms are kept, per role and per tensor.

    Returns:
        ``(result, history)``: a dict with ``recipe``, ``seed``, ``test_accuracy`` (0..1),
        ``final_loss`` (mean training loss of the last epoch; None if not finite),
        ``skipped_steps``, ``underflow_fraction`` (gradient values flushed to zero, as a
        fraction of the non-zero ones), ``subnormal_fraction``, ``saturated_fraction`` (of
        all cast values), ``update_lost_fraction`` (non-zero weight updates that left the
        stored weight unchanged), ``update_applied_ratio`` (sum of stored weight changes
        over sum of requested updates), ``seconds`` (training only) and
        ``compile_seconds`` (the warm-up step that compiles this recipe's kernels); and the
        :class:`~lowprec.autograd.instrument.History`.

    Raises:
        ValueError: for an unknown recipe.
    """
    policy = _policy(name)
    name = policy.name
    data = data if data is not None else load_digits(seed=config.seed)
    n = len(data.y_train)
    steps = (n + config.batch_size - 1) // config.batch_size
    bar = tqdm(total=config.epochs * steps, desc=f"{name:>15} compiling", file=sys.stderr,
               disable=not progress, leave=True, dynamic_ncols=True,
               bar_format="{desc}: [{elapsed}]")
    # Overflowing steps (fp16 without enough headroom) carry inf/NaN through the graph on
    # purpose; numpy's warnings about them would only clutter the report.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        compile_s = _warm_up(policy, config, data, histogram)
        bar.set_description(f"{name:>15}", refresh=False)
        bar.bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
        t0 = time.perf_counter()
        tracker = Tracker(histogram=histogram)
        policy, model, ctx, opt = _setup(policy, config, tracker)
        scaler = policy.grad_scaler()
        shift = np.float32(2.0 ** -config.loss_shift)
        hist = History(recipe=name)
        order = np.random.default_rng(derive_seed(config.seed, 3))  # same batches everywhere
        acc, total, step = float("nan"), config.epochs * steps, 0
        try:
            for epoch in range(config.epochs):
                perm = order.permutation(n)
                losses = []
                for s in range(steps):
                    opt.lr = config.lr_at(step, total) * 2.0 ** config.loss_shift
                    idx = perm[s * config.batch_size:(s + 1) * config.batch_size]
                    loss, skipped, scale = _step(model, ctx, opt, scaler, data.x_train[idx],
                                                 data.y_train[idx], shift)
                    losses.append(loss.item())
                    hist.log_step(losses[-1], epoch=epoch, scale=scale, skipped=skipped,
                                  tracker=tracker)
                    bar.update(1)
                    step += 1
                acc = _accuracy(model, data.x_test, data.y_test, ctx)
                mean_loss = float(np.mean(losses))
                hist.log_epoch(epoch, mean_loss, acc, time.perf_counter() - t0)
                bar.set_postfix(loss=f"{mean_loss:.4f}", acc=f"{100 * acc:.1f}%")
        finally:
            bar.close()
    grads = tracker.totals.get("gradient", CastStats())
    every = CastStats()
    for st in tracker.totals.values():
        every.merge(st)
    result = dict(recipe=name, seed=config.seed,
                  test_accuracy=float(acc),
                  final_loss=_nan_to_none(hist.epochs[-1]["train_loss"]) if hist.epochs else None,
                  skipped_steps=hist.skipped_steps,
                  underflow_fraction=grads.flushed_fraction,
                  subnormal_fraction=grads.subnormal_fraction,
                  saturated_fraction=every.saturated_fraction,
                  update_lost_fraction=tracker.update_totals.lost_fraction,
                  update_applied_ratio=tracker.update_totals.applied_ratio,
                  seconds=time.perf_counter() - t0,
                  compile_seconds=compile_s)
    return result, hist


def task_policy(task: Task) -> Policy:
    """The task's recipe, with the changes of its "policy" parameter (a reproduction's
    variant of a recipe, e.g. another fixed-point split)."""
    changes = dict(task.param("policy", ()))
    return Policy.recipe(task.recipe, **changes) if changes else recipe_policy(task.recipe)


def train_task(task: Task) -> dict:
    """The sweep's entry for an MLP run: the task's recipe (and policy changes) and seed
    with its parameters over :class:`StudyConfig`'s defaults, on one numba thread."""
    params = [p for p in task.params if p[0] != "policy"]
    config = StudyConfig(seed=task.seed).with_params(params)
    with one_thread():
        result, hist = train_recipe(task_policy(task), config)
    return {"result": result, "history": hist.compact()}
