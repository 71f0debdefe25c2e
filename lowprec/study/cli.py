"""``lowprec study``: train the study's model under several precision recipes, from several
seeds, on Dask, and report mean +- 95 % CI side by side."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict
from typing import List, Optional, Sequence

from .config import DEFAULT_RECIPES, MODELS, RECIPES, SCHEDULES, StudyConfig, recipe_description
from .report import aggregate, format_table, write_outputs
from .sweep import Task, jsonable, run_tasks

__all__ = ["StudyResult", "run_study", "study_tasks", "register", "main", "TRAINERS"]

#: model -> the sweep entry ("module:function") that trains it.
TRAINERS = {"mlp": "lowprec.study.train:train_task",
            "transformer": "lowprec.study.train_lm:train_task"}


class StudyResult:
    """Every run of a study and its aggregation.

    Attributes:
        runs: one dict per task (``task``, ``result``, ``history``), in grid order.
        groups: :class:`lowprec.study.report.Group` per recipe and setting.
        baseline: the recipe effects are measured against.
    """

    def __init__(self, runs: List[dict], baseline: str = "fp32"):
        self.runs = runs
        self.baseline = baseline
        self.groups = aggregate(runs, baseline)

    def table(self) -> str:
        """The printed table."""
        return format_table(self.groups, self.baseline)

    def group(self, recipe: str):
        """The (first) group of a recipe.

        Raises:
            KeyError: when the study did not run it.
        """
        for g in self.groups:
            if g.recipe == recipe:
                return g
        raise KeyError(recipe)


def study_tasks(recipes: Sequence[str], seeds: Sequence[int], models: Sequence[str] = ("mlp",),
                grid: Optional[dict] = None, params: Optional[dict] = None) -> List[Task]:
    """The grid as tasks: every model x every combination of ``grid`` values x recipe x seed.

    Args:
        recipes: recipe names.
        seeds: the seeds each recipe runs from.
        models: "mlp" and/or "transformer".
        grid: parameter -> list of values to sweep (e.g. {"lr": [0.01, 0.05]}).
        params: parameters fixed for every task (e.g. {"epochs": 10}).

    Raises:
        ValueError: unknown recipes or models.
    """
    for r in recipes:
        if r not in RECIPES:
            raise ValueError(f"unknown recipe {r!r}; choose from {', '.join(RECIPES)}")
    for m in models:
        if m not in MODELS:
            raise ValueError(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    combos = [{}]
    for name, values in (grid or {}).items():
        combos = [dict(c, **{name: v}) for c in combos for v in values]
    fixed = dict(params or {})
    tasks = []
    for m in models:
        for combo in combos:
            p = tuple(sorted({**fixed, **combo}.items()))
            for r in recipes:
                for s in seeds:
                    tasks.append(Task(TRAINERS[m], r, int(s), m, p))
    return tasks


def run_study(recipes: Sequence[str] = DEFAULT_RECIPES, config: StudyConfig = StudyConfig(),
              *, seeds: int = 1, models: Sequence[str] = ("mlp",),
              grid: Optional[dict] = None, out: Optional[str] = None, workers: int = 0,
              scheduler: Optional[str] = None, progress: bool = False,
              baseline: str = "fp32", pictures: bool = True) -> StudyResult:
    """Train every recipe from ``seeds`` seeds (``config.seed``, ``config.seed + 1``, ...)
    and aggregate; optionally write ``summary.json``, the pictures and every finished task
    to ``out`` (a rerun with the same ``out`` skips finished tasks).

    Args:
        recipes: recipe names.
        config: hyper-parameters (fields that differ from :class:`StudyConfig`'s defaults
            travel with each task).
        seeds: runs per recipe.
        models: "mlp" and/or "transformer".
        grid: parameter -> values to sweep (e.g. {"lr": [0.01, 0.05]}).
        out: output folder, or None.
        workers: 0: serial in this process; N: a local Dask cluster of N workers.
        scheduler: address of a Dask scheduler to run on instead ("tcp://host:port").
        progress: progress bars (stderr).
        baseline: the recipe effects are measured against.
        pictures: write the PNG pictures with the summary.

    Returns:
        A :class:`StudyResult`.

    Raises:
        ValueError: unknown recipes/models, bad parameters, an unusable ``out``.
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    defaults = asdict(StudyConfig())
    fixed = {k: v for k, v in asdict(config).items() if k != "seed" and v != defaults[k]}
    for name in (grid or {}):
        StudyConfig().with_params({name: grid[name][0]})  # validates names and values
    if out is not None:
        check_out_dir(out)
    tasks = study_tasks(recipes, range(config.seed, config.seed + seeds), models, grid, fixed)
    runs = run_tasks(tasks, out=out, workers=workers, scheduler=scheduler, progress=progress)
    res = StudyResult(runs, baseline)
    if out is not None:
        settings = {"recipes": list(recipes), "seeds": seeds, "models": list(models),
                    "grid": grid or {}, "config": jsonable(asdict(config)),
                    "title": _title(models, config, seeds)}
        write_outputs(out, runs, res.groups, settings, pictures=pictures)
    return res


def _title(models, config: StudyConfig, seeds: int) -> str:
    m = "MLP " + "-".join(map(str, config.sizes)) + " on the UCI digits" \
        if list(models) == ["mlp"] else ", ".join(models)
    return (f"{m}: {config.epochs} epochs, SGD lr {config.lr:g} ({config.schedule}), momentum "
            f"{config.momentum:g}, batch {config.batch_size}, {seeds} seed(s)")


def check_out_dir(path: str) -> None:
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


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
def _floats(text: str) -> List[float]:
    try:
        v = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    if not v:
        raise argparse.ArgumentTypeError("expected at least one number")
    return v


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``study`` subcommand (``help``: its one-line help, from
    :data:`lowprec.cli.COMMANDS`)."""
    d = StudyConfig()
    opt_in = [r for r in RECIPES if r not in DEFAULT_RECIPES]
    p = sub.add_parser(
        name, help=help, description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="recipes:\n" + "\n".join(f"  {r:28s} {recipe_description(r)}" for r in RECIPES)
        + "\n\nscale out: --workers N starts a local Dask cluster of N processes; "
          "--scheduler tcp://HOST:PORT runs the same tasks on your Dask cluster (its "
          "workers need lowprec installed). With --out, finished tasks are kept in "
          "DIR/tasks and a rerun skips them.")
    p.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                   help=f"comma-separated recipe names (default: all but the opt-in "
                        f"{', '.join(opt_in) or 'none'})")
    p.add_argument("--model", default="mlp",
                   help=f"comma-separated models: {', '.join(MODELS)} (default mlp)")
    p.add_argument("--seeds", type=int, default=3, help="runs per recipe, from --seed on "
                                                        "(default 3)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"first seed (default {d.seed})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--lr", type=_floats, default=[d.lr],
                   help=f"peak learning rate; several (comma-separated) sweep them "
                        f"(default {d.lr})")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help=f"learning-rate schedule (default {d.schedule})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--momentum", type=float, default=d.momentum, help=f"default {d.momentum}")
    p.add_argument("--loss-shift", type=int, default=d.loss_shift, metavar="K",
                   help="multiply the loss by 2^-K and the learning rate by 2^K: fp32 is "
                        "unchanged, low formats see smaller gradients (default 0)")
    p.add_argument("--baseline", default="fp32", help="effects are differences against this "
                                                      "recipe (default fp32)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local Dask worker processes (default: one per core; 0: serial, in "
                        "this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the tasks on an existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--out", metavar="DIR", help="write summary.json, the pictures and every "
                                                "finished task here")
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
    import json

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if not recipes:
        return _error("--recipes is empty")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        return _error(f"unknown recipe(s) {', '.join(map(repr, unknown))}; choose from "
                      f"{', '.join(RECIPES)}")
    if len(set(recipes)) != len(recipes):
        return _error("--recipes names a recipe twice")
    bad = [m for m in models if m not in MODELS]
    if not models or bad:
        return _error(f"unknown model(s) {', '.join(map(repr, bad))}; choose from "
                      f"{', '.join(MODELS)}")
    workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    if workers < 0:
        return _error(f"--workers must be >= 0, got {workers}")
    if args.seeds < 1:
        return _error(f"--seeds must be a positive integer, got {args.seeds}")
    try:
        config = StudyConfig(epochs=args.epochs, lr=args.lr[0], batch_size=args.batch_size,
                             momentum=args.momentum, schedule=args.schedule, seed=args.seed,
                             loss_shift=args.loss_shift)
        for lr in args.lr:
            StudyConfig(lr=lr)
        if args.out is not None:
            check_out_dir(args.out)
    except ValueError as e:
        return _error(str(e))
    grid = {"lr": args.lr} if len(args.lr) > 1 else None
    tasks = len(recipes) * args.seeds * len(models) * len(args.lr)
    if not args.json:
        where = (f"on {args.scheduler}" if args.scheduler else
                 f"on a local Dask cluster of {workers} workers" if workers else "serially")
        print(f"lowprec study: {_title(models, config, args.seeds)}; {tasks} tasks {where}",
              file=sys.stderr)
    t0 = time.perf_counter()
    try:
        res = run_study(recipes, config, seeds=args.seeds, models=models, grid=grid,
                        out=args.out, workers=workers, scheduler=args.scheduler,
                        progress=not args.no_progress, baseline=args.baseline)
    except KeyboardInterrupt:
        kept = f"; finished tasks are kept in {args.out}/tasks" if args.out else ""
        print(f"lowprec study: interrupted{kept}", file=sys.stderr)
        return 130
    if args.json:
        json.dump(jsonable([g.as_dict() for g in res.groups]), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(res.table())
        print(f"total {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if args.out:
            print(f"wrote {args.out}/summary.json and pictures", file=sys.stderr)
    return 0
