"""Paper reproductions: ``lowprec reproduce NAME [--json] [--seeds N]``.

Each prints the paper's claims and figures beside ours, with the setup and how it differs
from the paper's; a claim holds when its confidence interval says so.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional

from . import deepseek2024, gupta2015, micikevicius2018, micikevicius2022, zamirai2020
from .base import Claim, Report, Reproduction

__all__ = ["REPRODUCTIONS", "get", "list_reproductions", "reproduce", "Claim", "Report",
           "Reproduction"]

#: name -> Reproduction, in publication order.
REPRODUCTIONS: Dict[str, Reproduction] = {
    m.REPRODUCTION.name: m.REPRODUCTION
    for m in (gupta2015, micikevicius2018, zamirai2020, micikevicius2022, deepseek2024)}


def list_reproductions() -> List[str]:
    """Names of the reproductions."""
    return list(REPRODUCTIONS)


def get(name: str) -> Reproduction:
    """A reproduction by name.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in REPRODUCTIONS:
        raise ValueError(f"unknown reproduction {name!r}; known: {', '.join(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


def reproduce(name: str, seeds: Optional[int] = None, *, workers: int = 0,
              scheduler: Optional[str] = None, progress: bool = False, quick: bool = False,
              out=None) -> Report:
    """Run a reproduction.

    Args:
        name: see :func:`list_reproductions`.
        seeds: runs per variant (default: the reproduction's own: 8, deepseek2024 3).
        workers, scheduler: as :func:`lowprec.study.run_study` (Dask).
        progress: progress bars.
        quick: a much shorter run (for tests and a first look; intervals are wider).
        out: a folder to keep finished tasks in (a rerun skips them).

    Returns:
        A :class:`Report`.

    Raises:
        ValueError: unknown name, seeds < 1.
    """
    rep = get(name)
    n = rep.default_seeds if seeds is None else seeds
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    t0 = time.perf_counter()
    claims = rep.run(list(range(n)), workers=workers, scheduler=scheduler, progress=progress,
                     quick=quick, out=out)
    return Report(rep.name, rep.title, rep.citation, rep.setup, rep.differences, n, claims,
                  time.perf_counter() - t0, quick)
