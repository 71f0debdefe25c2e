"""A study's results over seeds: the table (mean +- 95 % CI, effects against the baseline
paired by seed), ``summary.json`` and the pictures."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from .. import plot
from ..stats import Estimate, mean_ci, paired_difference
from .sweep import jsonable

__all__ = ["Group", "aggregate", "format_table", "write_outputs", "METRICS"]

#: The per-run numbers a study aggregates, with how the table shows them.
METRICS = OrderedDict([
    ("test_accuracy", ("test acc", 100.0, 1, "%")),
    ("final_loss", ("final loss", 1.0, 4, "")),
    ("underflow_fraction", ("grad flushed", 100.0, 2, "%")),
    ("saturated_fraction", ("saturated", 100.0, 2, "%")),
    ("update_applied_ratio", ("update applied", 100.0, 1, "%")),
    ("skipped_steps", ("skipped", 1.0, 0, "")),
    ("seconds", ("seconds", 1.0, 1, "")),
])


class Group:
    """The runs of one recipe under one setting (model and hyper-parameters), over seeds.

    Attributes:
        label: "recipe" or "recipe lr=0.01 ..." when the grid varies more than recipes.
        recipe, model, params: what the runs share.
        runs: the task results (dicts with ``task``, ``result``, ``history``), in seed
            order.
        estimates: metric -> :class:`~lowprec.stats.Estimate` over the seeds.
        effect: the paired difference of test accuracy against the baseline of the same
            setting, or None for the baseline itself or when it was not run.
        diverged: runs whose final loss is not finite.
    """

    def __init__(self, label: str, runs: List[dict]):
        self.label = label
        t = runs[0]["task"]
        self.recipe, self.model, self.params = t["recipe"], t["model"], tuple(
            tuple(p) for p in t["params"])
        self.runs = sorted(runs, key=lambda r: r["task"]["seed"])
        self.estimates: Dict[str, Estimate] = {
            m: mean_ci([_num(r["result"].get(m)) for r in self.runs]) for m in METRICS}
        self.effect: Optional[Estimate] = None
        self.diverged = sum(1 for r in self.runs if r["result"].get("final_loss") is None)

    @property
    def seeds(self) -> List[int]:
        return [r["task"]["seed"] for r in self.runs]

    def values(self, metric: str) -> List[float]:
        return [_num(r["result"].get(metric)) for r in self.runs]

    def histories(self) -> list:
        """The runs' compact histories with their recipe names."""
        return [dict(r["history"], recipe=self.label) for r in self.runs]

    def as_dict(self) -> dict:
        d = {"label": self.label, "recipe": self.recipe, "model": self.model,
             "params": [list(p) for p in self.params], "seeds": self.seeds,
             "diverged": self.diverged,
             "estimates": {m: e.as_dict() for m, e in self.estimates.items()},
             "per_seed": {m: self.values(m) for m in METRICS}}
        if self.effect is not None:
            d["accuracy_vs_baseline"] = self.effect.as_dict()
        return d


def _num(v) -> float:
    return math.nan if v is None else float(v)


def aggregate(results: Sequence[dict], baseline: str = "fp32") -> List[Group]:
    """Group task results by (model, parameters, recipe) and attach each group's effect:
    the paired-by-seed difference of test accuracy against ``baseline`` under the same
    model and parameters.

    Returns:
        Groups in the order their first run appears.
    """
    by = OrderedDict()
    for r in results:
        t = r["task"]
        key = (t["model"], tuple(tuple(p) for p in t["params"]), t["recipe"])
        by.setdefault(key, []).append(r)
    vary_model = len({k[0] for k in by}) > 1
    vary_params = len({k[1] for k in by}) > 1
    groups = []
    for (model, params, recipe), runs in by.items():
        label = recipe
        if vary_model:
            label = f"{model} {label}"
        if vary_params:
            label += " " + " ".join(f"{k}={v}" for k, v in params)
        groups.append(Group(label, runs))
    base = {(g.model, g.params): g for g in groups if g.recipe == baseline}
    for g in groups:
        b = base.get((g.model, g.params))
        if b is None or b is g:
            continue
        mine = dict(zip(g.seeds, g.values("test_accuracy")))
        theirs = dict(zip(b.seeds, b.values("test_accuracy")))
        common = sorted(set(mine) & set(theirs))
        g.effect = paired_difference([mine[s] for s in common], [theirs[s] for s in common])
    return groups


def format_table(groups: Sequence[Group], baseline: str = "fp32") -> str:
    """The table ``lowprec study`` prints: each metric as mean +- 95 % CI over the seeds,
    and the accuracy difference against the baseline (paired by seed)."""
    head = ["recipe", "seeds"] + [METRICS[m][0] for m in METRICS] + [f"acc vs {baseline}"]
    rows = []
    for g in groups:
        cells = [g.label, str(len(g.runs)) + (f" ({g.diverged} diverged)" if g.diverged else "")]
        for m, (_, scale, digits, unit) in METRICS.items():
            cells.append(g.estimates[m].format(scale, digits, unit))
        cells.append("-" if g.effect is None else
                     f"{100 * g.effect.mean:+.1f}" + ("" if math.isnan(g.effect.half_width)
                                                      else f" +- {100 * g.effect.half_width:.1f}"))
        rows.append(cells)
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i])  # noqa: E731
                                   for i, c in enumerate(cells))
    foot = "values: mean +- half-width of the 95 % confidence interval over seeds (Student's t)"
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows]
                     + [foot])


def _pictures(groups: Sequence[Group], tmp: str, title: str) -> List[str]:
    names = []
    runs = OrderedDict((g.label, g.histories()) for g in groups)
    plot.save(plot.curves_with_ci(runs, title=title), os.path.join(tmp, "curves.png"))
    names.append("curves.png")
    ref = next((g for g in groups if g.recipe == "fp32"), groups[0] if groups else None)
    if ref is not None and ref.runs and ref.runs[0]["history"].get("hist_by_key"):
        h = dict(ref.runs[0]["history"], recipe=f"{ref.label}, seed {ref.seeds[0]}")
        plot.save(plot.tensor_histograms(h), os.path.join(tmp, "tensor_histograms.png"))
        names.append("tensor_histograms.png")
    for what in ("flushed", "saturated"):
        worst = max(groups, key=lambda g: g.estimates["underflow_fraction" if what == "flushed"
                                                     else "saturated_fraction"].mean
                    if not math.isnan(g.estimates["underflow_fraction" if what == "flushed"
                                                  else "saturated_fraction"].mean) else -1,
                    default=None)
        if worst is not None and worst.runs[0]["history"].get("shares"):
            h = dict(worst.runs[0]["history"], recipe=f"{worst.label}, seed {worst.seeds[0]}")
            plot.save(plot.share_heatmap(h, what), os.path.join(tmp, f"{what}_heatmap.png"))
            names.append(f"{what}_heatmap.png")
    return names


def write_outputs(out: str, results: Sequence[dict], groups: Sequence[Group],
                  settings: dict, pictures: bool = True) -> List[str]:
    """Write ``summary.json`` (settings, groups with their estimates, every run's result
    and compact history) and the pictures into ``out``, all or nothing.

    Returns:
        The paths written.
    """
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".study-", dir=out)
    names = []
    try:
        summary = {"settings": settings, "groups": [g.as_dict() for g in groups],
                   "runs": [{"task": r["task"], "result": r["result"], "history": r["history"]}
                            for r in results]}
        with open(os.path.join(tmp, "summary.json"), "w") as f:
            json.dump(jsonable(summary), f, indent=1, allow_nan=False)
        names.append("summary.json")
        if pictures and groups:
            names += _pictures(groups, tmp, settings.get("title", ""))
        for n in names:
            os.replace(os.path.join(tmp, n), os.path.join(out, n))
    finally:
        for n in os.listdir(tmp):
            os.remove(os.path.join(tmp, n))
        os.rmdir(tmp)
    return [os.path.join(out, n) for n in names]
