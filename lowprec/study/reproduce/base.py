"""What a paper reproduction is: the paper's claims, ours measured beside them, and whether
each holds by its confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from ...stats import Estimate

__all__ = ["Claim", "Reproduction", "Report", "estimate_text"]


def estimate_text(e: Estimate, scale: float = 100.0, unit: str = " %", digits: int = 1) -> str:
    """``mean +- half`` of an estimate (in percent by default)."""
    return e.format(scale, digits, unit)


@dataclass
class Claim:
    """One claim of the paper, measured here.

    Attributes:
        claim: the claim in our words (what is tested).
        paper: what the paper reports (its figure or sentence).
        measured: what we measured: numbers (means, interval ends, per-seed values).
        holds: whether the claim holds here, decided by the confidence interval(s) (None
            when the run cannot decide, e.g. a single seed).
        why: how ``holds`` was decided.
    """

    claim: str
    paper: str
    measured: Dict[str, object]
    holds: Optional[bool]
    why: str = ""

    def as_dict(self) -> dict:
        return {"claim": self.claim, "paper": self.paper, "measured": self.measured,
                "holds": self.holds, "why": self.why}


@dataclass
class Report:
    """A reproduction's outcome: the JSON of ``lowprec reproduce NAME --json`` is
    ``{"name", "claims": [...]}`` plus the setup fields."""

    name: str
    title: str
    citation: str
    setup: str
    differences: str
    seeds: int
    claims: List[Claim] = field(default_factory=list)
    seconds: float = math.nan
    quick: bool = False

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "citation": self.citation,
                "setup": self.setup, "differences": self.differences, "seeds": self.seeds,
                "quick": self.quick, "claims": [c.as_dict() for c in self.claims],
                "seconds": None if math.isnan(self.seconds) else round(self.seconds, 1)}

    def text(self) -> str:
        """The report as readable text: setup, then each claim with the paper's figure and
        ours, and whether it holds."""
        lines = [f"{self.title}", f"  {self.citation}", "", f"setup: {self.setup}",
                 f"differences from the paper: {self.differences}",
                 f"seeds: {self.seeds} (intervals: 95 %, Student's t)"
                 + ("; QUICK run: shortened training, wider intervals" if self.quick else ""),
                 ""]
        for i, c in enumerate(self.claims, 1):
            verdict = {True: "HOLDS", False: "does not hold", None: "undecided"}[c.holds]
            lines.append(f"{i}. {c.claim}  [{verdict}]")
            lines.append(f"   paper: {c.paper}")
            ours = "; ".join(f"{k}: {v}" for k, v in c.measured.items()
                             if isinstance(v, str) and k != "diff_text")
            lines.append(f"   here:  {ours}")
            if c.why:
                lines.append(f"   why:   {c.why}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Reproduction:
    """A registered reproduction.

    Attributes:
        name: the command-line name.
        title: the paper's title and year.
        citation: authors, venue, identifier.
        setup: our experiment in one paragraph.
        differences: how ours differs from the paper's (data, model size, ...).
        run: ``run(seeds, workers, scheduler, progress, quick) -> list[Claim]``.
        default_seeds: seeds when none are asked for.
    """

    name: str
    title: str
    citation: str
    setup: str
    differences: str
    run: Callable
    default_seeds: int = 8
