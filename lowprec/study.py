"""Train one MLP on the bundled digits under several precision recipes and report them
side by side (the ``lowprec study`` command).

Every recipe trains the same 64-128-128-10 ReLU MLP from the same initial weights on the
same batches (SGD with momentum); only the precision policy differs. Every GEMM of
forward and backward goes through :func:`lowprec.matmul`.

The recipes are the named policies of :data:`lowprec.autograd.policy.RECIPES` (``lowprec
study --help`` lists them with what each does); :data:`DEFAULT_RECIPES` are the ones run
by default; the others are opt-in with ``--recipes``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from . import plot
from .autograd import Tensor, nn, no_grad, ops, optim
from .autograd.autocast import Autocast
from .autograd.instrument import CastStats, History, Tracker
from .autograd.policy import RECIPES as _POLICIES, Policy
from .autograd.weight_update import derive_seed
from .datasets import load_digits

__all__ = ["RECIPES", "DEFAULT_RECIPES", "StudyConfig", "recipe_policy", "train_recipe",
           "run_study", "format_table", "register", "main"]

#: The recipes ``lowprec study`` runs by default (the one list of them).
DEFAULT_RECIPES = ("fp32", "bf16", "fp16", "fp16-scaled", "fp8-current", "fp8-delayed",
                   "bf16-pure-rne", "bf16-pure-sr", "bf16-pure-kahan", "fixed16-rn", "fixed16-sr")
#: Every recipe name, the defaults first, from :data:`lowprec.autograd.policy.RECIPES`.
RECIPES = tuple(dict.fromkeys(DEFAULT_RECIPES + tuple(_POLICIES)))
_OPT_IN = tuple(r for r in RECIPES if r not in DEFAULT_RECIPES)


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
    """Hyper-parameters shared by every recipe of a study.

    Attributes:
        epochs: passes over the training set.
        lr: SGD learning rate (before the loss-shift compensation).
        batch_size: examples per step.
        momentum: SGD momentum.
        seed: seeds the split, the initial weights, the batch order and all stochastic
            rounding.
        loss_shift: k: the loss is multiplied by 2^-k and the learning rate by 2^k; an
            fp32 run is unchanged (bit for bit while gradients stay normal in fp32), low
            formats see gradients 2^k times smaller.
        sizes: layer widths of the MLP.
    """

    epochs: int = 15
    lr: float = 0.002
    batch_size: int = 32
    momentum: float = 0.9
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
        if not isinstance(self.loss_shift, (int, np.integer)) or not -64 <= self.loss_shift <= 120:
            raise ValueError(f"loss_shift must be an integer in [-64, 120], got {self.loss_shift!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")


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


def train_recipe(name: str, config: StudyConfig, data=None, progress: bool = False):
    """Train the study's MLP under one recipe.

    Args:
        name: a recipe name (see :data:`RECIPES`).
        config: the shared hyper-parameters.
        data: a :class:`lowprec.datasets.Split` (default: the bundled digits split by
            ``config.seed``).
        progress: show a tqdm bar on stderr.

    Returns:
        ``(result, history)``: a dict with ``recipe``, ``test_accuracy`` (0..1),
        ``final_loss`` (mean training loss of the last epoch; None if not finite),
        ``skipped_steps``, ``underflow_fraction`` (gradient values flushed to zero, as a
        fraction of the non-zero ones), ``subnormal_fraction``, ``saturated_fraction`` (of
        all cast values), ``update_lost_fraction`` (non-zero weight updates that left the
        stored weight unchanged), ``update_applied_ratio`` (sum of stored weight changes
        over sum of requested updates) and ``seconds``; and the
        :class:`~lowprec.autograd.instrument.History`.

    Raises:
        ValueError: for an unknown recipe.
    """
    policy = recipe_policy(name)
    data = data if data is not None else load_digits(seed=config.seed)
    t0 = time.perf_counter()
    model = nn.MLP(list(config.sizes), seed=config.seed)
    tracker = Tracker()
    ctx = Autocast(policy, seed=derive_seed(config.seed, 2), tracker=tracker)
    opt = optim.SGD(model.parameters(), lr=config.lr * 2.0 ** config.loss_shift,
                    momentum=config.momentum, update=policy.weight_update(derive_seed(config.seed, 1)),
                    tracker=tracker)
    scaler = policy.grad_scaler()
    shift = np.float32(2.0 ** -config.loss_shift)
    hist = History(recipe=name)
    order = np.random.default_rng(derive_seed(config.seed, 3))  # same batches for every recipe
    n = len(data.y_train)
    steps = (n + config.batch_size - 1) // config.batch_size
    bar = tqdm(total=config.epochs * steps, desc=f"{name:>15}", file=sys.stderr,
               disable=not progress, leave=True, dynamic_ncols=True)
    acc = float("nan")
    # Overflowing steps (fp16 without enough headroom) carry inf/NaN through the graph on
    # purpose; numpy's warnings about them would only clutter the report.
    errstate = np.errstate(over="ignore", invalid="ignore", divide="ignore")
    errstate.__enter__()
    try:
        for epoch in range(config.epochs):
            perm = order.permutation(n)
            losses = []
            for s in range(steps):
                idx = perm[s * config.batch_size:(s + 1) * config.batch_size]
                with ctx:
                    loss = ops.cross_entropy(model(Tensor(data.x_train[idx])), data.y_train[idx])
                    obj = loss * shift if config.loss_shift else loss
                opt.zero_grad()
                (scaler.scale(obj) if scaler is not None else obj).backward()
                if scaler is not None:
                    scaler.step(opt)
                    skipped = scaler.last_step_skipped
                    scale = scaler.get_scale()
                    scaler.update()
                else:
                    opt.step()
                    skipped, scale = False, 1.0
                losses.append(loss.item())
                hist.log_step(losses[-1], epoch=epoch, scale=scale, skipped=skipped, tracker=tracker)
                bar.update(1)
            acc = _accuracy(model, data.x_test, data.y_test, ctx)
            with np.errstate(invalid="ignore"):
                mean_loss = float(np.mean(losses))
            hist.log_epoch(epoch, mean_loss, acc, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{mean_loss:.4f}", acc=f"{100 * acc:.1f}%")
    finally:
        bar.close()
        errstate.__exit__(None, None, None)
    grads = tracker.totals.get("gradient", CastStats())
    every = CastStats()
    for s in tracker.totals.values():
        every.merge(s)
    result = dict(recipe=name,
                  test_accuracy=float(acc),
                  final_loss=_nan_to_none(hist.epochs[-1]["train_loss"]) if hist.epochs else None,
                  skipped_steps=hist.skipped_steps,
                  underflow_fraction=grads.flushed_fraction,
                  subnormal_fraction=grads.subnormal_fraction,
                  saturated_fraction=every.saturated_fraction,
                  update_lost_fraction=tracker.update_totals.lost_fraction,
                  update_applied_ratio=tracker.update_totals.applied_ratio,
                  seconds=time.perf_counter() - t0)
    return result, hist


def format_table(results: Sequence[dict]) -> str:
    """The side-by-side table printed by ``lowprec study``."""
    head = ("recipe", "test acc", "final loss", "skipped", "grad flushed", "saturated",
            "update applied", "seconds")
    rows = []
    for r in results:
        fl = r["final_loss"]
        rows.append((r["recipe"], f"{100 * r['test_accuracy']:.1f}%",
                     "nan" if fl is None else f"{fl:.4f}", str(r["skipped_steps"]),
                     f"{100 * r['underflow_fraction']:.2f}%", f"{100 * r['saturated_fraction']:.2f}%",
                     f"{100 * r['update_applied_ratio']:.1f}%", f"{r['seconds']:.1f}"))
    w = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i])  # noqa: E731
                                   for i, c in enumerate(cells))
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows])


def _check_out_dir(path: str) -> None:
    """Raise ValueError unless ``path`` is (or can be created as) a writable directory.

    Probes by creating and removing a temporary directory in ``path`` or in its nearest
    existing ancestor, so nothing is left behind (and root on a read-only or virtual file
    system is caught too).
    """
    p = os.path.abspath(path)
    if os.path.exists(p) and not os.path.isdir(p):
        raise ValueError(f"--out {path!r} exists and is not a directory")
    probe_in = p
    while not os.path.exists(probe_in):
        probe_in = os.path.dirname(probe_in)
    if not os.path.isdir(probe_in):
        raise ValueError(f"--out {path!r} cannot be created ({probe_in!r} is not a directory)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lowprec-probe-", dir=probe_in))
    except OSError as e:
        what = "is not writable" if probe_in == p else f"cannot be created in {probe_in!r}"
        raise ValueError(f"--out {path!r} {what}: {e.strerror}") from None


def _write_outputs(out: str, results: List[dict], histories: Dict[str, History],
                   config: StudyConfig) -> List[str]:
    """Write summary.json and the plots into ``out`` (all or nothing)."""
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".study-", dir=out)
    names = []
    try:
        summary = dict(config=asdict(config), results=results,
                       histories={k: h.to_dict() for k, h in histories.items()})
        with open(os.path.join(tmp, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1, allow_nan=False, default=_nan_to_none)
        names.append("summary.json")
        plot.save(plot.training_curves(histories), os.path.join(tmp, "curves.png"))
        names.append("curves.png")
        ref = histories.get("fp32") or next(iter(histories.values()), None)
        if ref is not None and "gradient" in ref.hist:
            fig = plot.gradient_histogram(ref, formats=("fp16", "bf16", "float8_e4m3fn",
                                                         "float8_e5m2"))
            plot.save(fig, os.path.join(tmp, "gradient_histogram.png"))
            names.append("gradient_histogram.png")
        for n in names:
            os.replace(os.path.join(tmp, n), os.path.join(out, n))
    finally:
        for n in os.listdir(tmp):
            os.remove(os.path.join(tmp, n))
        os.rmdir(tmp)
    return [os.path.join(out, n) for n in names]


@contextlib.contextmanager
def _one_thread():
    """Run numba kernels on one thread: a study's arrays are a few thousand elements, so
    starting threads costs more than it saves (and far more on a busy machine)."""
    import numba

    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


def run_study(recipes: Sequence[str] = DEFAULT_RECIPES, config: StudyConfig = StudyConfig(),
              out: Optional[str] = None, progress: bool = False):
    """Train every recipe and optionally write summary.json and PNG plots to ``out``.

    Returns:
        ``(results, histories)``: the per-recipe result dicts (see :func:`train_recipe`)
        and a dict recipe -> History.

    Raises:
        ValueError: unknown recipes or an unusable output directory (checked before any
            training).
    """
    for r in recipes:
        recipe_policy(r)
    if out is not None:
        _check_out_dir(out)
    data = load_digits(seed=config.seed)
    results, histories = [], {}
    with _one_thread():
        for r in recipes:
            res, hist = train_recipe(r, config, data, progress=progress)
            results.append(res)
            histories[r] = hist
    if out is not None:
        _write_outputs(out, results, histories, config)
    return results, histories


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``study`` subcommand to an argparse subparsers object (``help``: its
    one-line help, from :data:`lowprec.cli.COMMANDS`)."""
    d = StudyConfig()
    p = sub.add_parser(name, help=help,
                       description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="recipes:\n" + "\n".join(
                           f"  {r:16s} {recipe_description(r)}" for r in RECIPES))
    p.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                   help=f"comma-separated recipe names (default: all but the opt-in "
                        f"{', '.join(_OPT_IN) or 'none'})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"SGD learning rate (default {d.lr})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--momentum", type=float, default=d.momentum, help=f"default {d.momentum}")
    p.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    p.add_argument("--loss-shift", type=int, default=d.loss_shift, metavar="K",
                   help="multiply the loss by 2^-K and the learning rate by 2^K: fp32 is "
                        "unchanged, low formats see smaller gradients (default 0)")
    p.add_argument("--out", metavar="DIR", help="write summary.json, curves.png and "
                                                "gradient_histogram.png here")
    p.add_argument("--json", action="store_true",
                   help="print only a JSON list of per-recipe results on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
    return p


def _error(msg: str) -> int:
    print(f"lowprec study: error: {msg}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    """Run ``lowprec study`` from parsed arguments; returns the exit code (2: bad input)."""
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if not recipes:
        return _error("--recipes is empty")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        return _error(f"unknown recipe(s) {', '.join(map(repr, unknown))}; choose from "
                      f"{', '.join(RECIPES)}")
    if len(set(recipes)) != len(recipes):
        return _error("--recipes names a recipe twice")
    try:
        config = StudyConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                             momentum=args.momentum, seed=args.seed, loss_shift=args.loss_shift)
        if args.out is not None:
            _check_out_dir(args.out)
    except ValueError as e:
        return _error(str(e))
    progress = not args.no_progress
    if not args.json:
        print(f"lowprec study: MLP {'-'.join(map(str, config.sizes))} (ReLU) on the UCI digits, "
              f"{config.epochs} epochs, SGD lr {config.lr:g} momentum {config.momentum:g}, batch "
              f"{config.batch_size}, seed {config.seed}, loss shift 2^-{config.loss_shift}",
              file=sys.stderr)
    t0 = time.perf_counter()
    try:
        results, histories = run_study(recipes, config, out=None, progress=progress)
    except KeyboardInterrupt:
        print("lowprec study: interrupted; nothing written", file=sys.stderr)
        return 130
    written = _write_outputs(args.out, results, histories, config) if args.out else []
    if args.json:
        json.dump([{k: _nan_to_none(v) if isinstance(v, float) else v for k, v in r.items()}
                   for r in results], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_table(results))
        print(f"total {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for w in written:
            print(f"wrote {w}", file=sys.stderr)
    return 0
