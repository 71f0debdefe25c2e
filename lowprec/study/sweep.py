"""A grid of independent training runs, on Dask: serial, a local cluster, or a user's cluster.

A sweep is a list of :class:`Task` (recipe x seed x model x hyper-parameters); each task is a
pure function of its fields (:func:`run_task`), so its result is the same whether it runs in
this process, on a local cluster (``workers=N``) or on a remote one (``scheduler=
"tcp://host:port"``). Scheduling, retries and worker failures are Dask's
(``dask.distributed``): a task whose worker dies is rerun elsewhere, and ``retries`` reruns
a task that raised. With an output folder every finished task is written there as it
completes (``tasks/<key>.json``) and skipped on a rerun, so an interrupted sweep loses
nothing it finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional

from tqdm import tqdm

__all__ = ["Task", "run_tasks", "task_path", "execute", "jsonable"]


@dataclass(frozen=True)
class Task:
    """One training run.

    Attributes:
        fn: the trainer, as "module:function" (importable on every worker); it takes the
            task and returns a JSON-ready dict.
        recipe: the precision recipe's name.
        seed: seeds the data split, the initial weights, the batches and all stochastic
            rounding.
        model: "mlp" or "transformer" (what the trainer builds).
        params: sorted (name, value) pairs of hyper-parameters that differ from the
            trainer's defaults (e.g. (("lr", 0.01),)).
    """

    fn: str
    recipe: str
    seed: int
    model: str = "mlp"
    params: tuple = ()

    @property
    def key(self) -> str:
        """A stable, readable identifier (file name and Dask key)."""
        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        digest = hashlib.sha1(blob).hexdigest()[:10]
        return f"{self.model}-{self.recipe}-s{self.seed}-{digest}"

    def param(self, name: str, default=None):
        """The value of one hyper-parameter (``default`` when not set)."""
        return dict(self.params).get(name, default)


def _resolve(fn: str) -> Callable:
    mod, _, name = fn.partition(":")
    return getattr(__import__(mod, fromlist=[name]), name)


def execute(task: Task) -> dict:
    """Run one task in this process (what every worker calls): the trainer's result with
    the task (and its key) attached."""
    res = _resolve(task.fn)(task)
    return jsonable({"task": dict(asdict(task), key=task.key), **res})


def task_path(out: Path, task: Task) -> Path:
    """Where a finished task's result lives in an output folder."""
    return Path(out) / "tasks" / f"{task.key}.json"


def _load(out: Optional[Path], task: Task) -> Optional[dict]:
    if out is None:
        return None
    p = task_path(out, task)
    if not p.is_file():
        return None
    try:
        res = json.loads(p.read_text())
    except (OSError, ValueError):
        return None  # a torn write from an interrupted run: compute again
    return res if res.get("task", {}).get("key") == task.key else None


def jsonable(x):
    """x with numpy scalars as Python numbers and non-finite floats as None (JSON has no
    NaN: a diverged loss is recorded as missing)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _store(out: Optional[Path], task: Task, res: dict) -> None:
    if out is None:
        return
    p = task_path(out, task)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".task-", dir=p.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(res, fh, allow_nan=False)
    os.replace(tmp, p)  # atomic: a result file is whole or absent


def _bar(total: int, done: int, progress: bool):
    # Until the first task finishes, the workers are compiling numba kernels: an ETA from
    # that would read hours, so the bar says "compiling" and shows no rate until then.
    return tqdm(total=total, initial=done, desc="compiling kernels, first tasks", unit="task",
                file=sys.stderr, disable=not progress, dynamic_ncols=True,
                bar_format="{desc}: {n_fmt}/{total_fmt} tasks [{elapsed}]")


def _finished(bar) -> None:
    if bar.disable:
        return
    if bar.desc.startswith("compiling"):
        bar.set_description("training", refresh=False)
        bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} tasks " \
                         "[{elapsed}<{remaining}]"
    bar.update(1)


def run_tasks(tasks: Iterable[Task], *, out=None, workers: int = 0,
              scheduler: Optional[str] = None, progress: bool = False,
              retries: int = 1) -> List[dict]:
    """Run every task (skipping those already finished in ``out``) and return the results
    in task order.

    Args:
        tasks: the grid.
        out: an output folder: finished results are read from and written to
            ``out/tasks/`` (None: nothing kept).
        workers: 0 runs the tasks one after the other in this process; N > 0 starts a
            local Dask cluster of N single-threaded worker processes.
        scheduler: the address of an existing Dask scheduler ("tcp://host:port"); the
            workers there need lowprec installed. Overrides ``workers``.
        progress: a progress bar counting finished tasks (stderr).
        retries: Dask reruns a task that raised this many times (a worker that dies has
            its tasks rerun in any case).

    Returns:
        One result dict per task, in the order given.

    Raises:
        ValueError: for a negative worker count or two equal tasks.
        ImportError: when Dask is needed but not installed.
    """
    tasks = list(tasks)
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweep names the same task twice")
    out = Path(out) if out is not None else None
    results = {t.key: _load(out, t) for t in tasks}
    todo = [t for t in tasks if results[t.key] is None]
    bar = _bar(len(tasks), len(tasks) - len(todo), progress)
    try:
        if todo and scheduler is None and workers == 0:
            for t in todo:
                res = execute(t)
                _store(out, t, res)
                results[t.key] = res
                _finished(bar)
        elif todo:
            _run_dask(todo, out, workers, scheduler, retries, results, bar)
    finally:
        bar.close()
    return [results[k] for k in keys]


def _run_dask(todo, out, workers, scheduler, retries, results, bar) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler is not None:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        futures = {client.submit(execute, t, key=f"lowprec-study-{t.key}", retries=retries,
                                 pure=False): t for t in todo}
        for fut in as_completed(futures):
            t = futures[fut]
            res = fut.result()
            _store(out, t, res)
            results[t.key] = res
            _finished(bar)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
