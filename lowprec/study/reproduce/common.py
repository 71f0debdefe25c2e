"""Running the variants a reproduction compares, on the study's sweep machinery."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from ...stats import Estimate, mean_ci, paired_difference
from ..cli import TRAINERS
from ..sweep import Task, run_tasks

__all__ = ["Variant", "run_variants", "metric", "diff", "within", "pct"]

#: A label -> (recipe, policy changes) pair, e.g. ("fixed16-sr", {"master": "fixed6_10"}).
Variant = Tuple[str, dict]


def run_variants(variants: Dict[str, Variant], seeds: Sequence[int], params: dict, *,
                 workers: int = 0, scheduler: Optional[str] = None, out=None,
                 progress: bool = False, model: str = "mlp") -> Dict[str, List[dict]]:
    """Train every variant from every seed; label -> the runs' result dicts in seed order."""
    tasks, labels = [], []
    fixed = tuple(sorted(params.items()))
    for label, (recipe, changes) in variants.items():
        extra = (("policy", tuple(sorted(changes.items()))),) if changes else ()
        for s in seeds:
            tasks.append(Task(TRAINERS[model], recipe, int(s), model,
                              tuple(sorted(fixed + extra))))
            labels.append(label)
    runs = run_tasks(tasks, out=out, workers=workers, scheduler=scheduler, progress=progress)
    res: Dict[str, List[dict]] = {k: [] for k in variants}
    for label, r in zip(labels, runs):
        res[label].append(r["result"])
    return res


def metric(runs: List[dict], name: str = "test_accuracy") -> Estimate:
    """Mean +- CI of one metric over a variant's runs."""
    return mean_ci([r.get(name) for r in runs])


def diff(a: List[dict], b: List[dict], name: str = "test_accuracy") -> Estimate:
    """a - b paired by seed (both lists in seed order)."""
    return paired_difference([r.get(name) for r in a], [r.get(name) for r in b])


def within(e: Estimate, margin: float) -> Optional[bool]:
    """Whether the whole interval lies inside [-margin, margin] (an equivalence test);
    None without an interval."""
    if e.n < 2:
        return None
    return -margin <= e.low and e.high <= margin


def pct(e: Estimate, digits: int = 1) -> str:
    """An estimate of a fraction as "mean +- half %" (points)."""
    return e.format(100.0, digits, " %")
