#!/usr/bin/env python3
"""Markdown table of a study's recipes from the ``summary.json`` that ``lowprec study --out
DIR`` writes (``make demo`` writes ``build/study/summary.json``).

The README's recipe table is generated with this from a measured run, never typed by hand:

    make demo && python scripts/study_table.py build/study/summary.json

Usage: python scripts/study_table.py SUMMARY.json
"""

from __future__ import annotations

import json
import math
import sys


def _pm(est: dict, scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
    """``mean +- half`` of an estimate dict, in percent by default."""
    if not est or est.get("mean") is None:
        return "-"
    m = est["mean"] * scale
    text = f"{m:+.{digits}f}" if signed else f"{m:.{digits}f}"
    half = est.get("half_width")
    if half is None or (isinstance(half, float) and math.isnan(half)):
        return text
    return f"{text} +- {half * scale:.{digits}f}"


def table(summary: dict) -> str:
    """One row per recipe: what it is, accuracy, the paired difference against the baseline,
    the share of the requested update that reached the weights, gradients flushed."""
    from lowprec.study import recipe_description

    settings = summary.get("settings", {})
    lines = [f"*{settings.get('title', 'study')}; mean +- 95 % CI over seeds.*", "",
             "| recipe | what it is | test accuracy % | vs baseline (paired), points | "
             "update applied % | grad flushed % |",
             "|---|---|---|---|---|---|"]
    for g in summary["groups"]:
        e = g["estimates"]
        try:
            what = recipe_description(g["recipe"])
        except ValueError:
            what = g["recipe"]
        diff = g.get("accuracy_vs_baseline")
        lines.append(
            f"| {g['label']} | {what.replace('|', '/')} | {_pm(e.get('test_accuracy'))} | "
            f"{_pm(diff, signed=True) if diff else 'baseline'} | "
            f"{_pm(e.get('update_applied_ratio'), digits=0)} | "
            f"{_pm(e.get('underflow_fraction'))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    paths = argv if argv is not None else sys.argv[1:]
    if len(paths) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(paths[0]) as f:
        print(table(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
