#!/usr/bin/env python3
"""Markdown table of paper reproductions from the JSON of ``lowprec reproduce NAME --json``.

The README's and the docs' reproduction tables are generated with this from measured runs,
never typed by hand:

    for n in gupta2015 micikevicius2018 zamirai2020 micikevicius2022 deepseek2024; do
        lowprec reproduce $n --json > docs/reproductions/$n.json; done
    python scripts/reproductions_table.py docs/reproductions/{gupta2015,micikevicius2018,\
        zamirai2020,micikevicius2022,deepseek2024}.json

(tests/test_scripts.py checks that the README's table is this script's output for the JSON
files in docs/reproductions/, in that order.)

Usage: python scripts/reproductions_table.py FILE.json [FILE.json ...]
"""

from __future__ import annotations

import json
import sys

VERDICT = {True: "holds", False: "does not hold", None: "undecided"}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(reports: list) -> str:
    """One row per claim: paper, claim, the paper's figure, ours, verdict."""
    lines = ["| paper | claim | paper's figure | measured here (mean +- 95 % CI) | verdict |",
             "|---|---|---|---|---|"]
    for rep in reports:
        seeds = rep.get("seeds")
        label = f"{rep['title'].split(',')[0]} ({rep['name']}, {seeds} seeds)"
        for c in rep["claims"]:
            here = c["measured"].get("diff_text") or "; ".join(
                f"{k}: {v}" for k, v in c["measured"].items() if isinstance(v, str))
            lines.append(f"| {_cell(label)} | {_cell(c['claim'])} | {_cell(c['paper'])} | "
                         f"{_cell(here)} | {VERDICT[c['holds']]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    paths = (argv if argv is not None else sys.argv[1:])
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    reports = []
    for p in paths:
        with open(p) as f:
            reports.append(json.load(f))
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
