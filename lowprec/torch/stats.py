"""Per-GEMM statistics of an emulated torch run.

The emulator's Autocast reports every operand cast to a :class:`GemmTracker` (a
:class:`lowprec.autograd.Tracker` that also keeps totals over the whole run), under the
key ``"<gemm name>/<role>"``: the forward operands as roles "activation" (left operand)
and "weight" (right operand), the output gradient of the backward GEMMs as "gradient".
:func:`gemm_stats` groups them per GEMM; :func:`report` prints them as a table.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ..autograd.instrument import CastStats, Tracker
from ..formats import Format

__all__ = ["GemmTracker", "gemm_stats", "report"]


class GemmTracker(Tracker):
    """A :class:`~lowprec.autograd.Tracker` that also keeps, per tracked tensor, the
    :class:`~lowprec.autograd.instrument.CastStats` summed over every cast since it was
    made (or :meth:`reset`) in ``totals_by_key``; ``step`` and :meth:`take_step` keep
    their per-step meaning (see :class:`lowprec.autograd.History`).

    Args:
        histogram: as :class:`~lowprec.autograd.Tracker`.
    """

    def __init__(self, histogram=("gradient",)):
        super().__init__(histogram)
        self.totals_by_key: Dict[str, CastStats] = {}

    def record(self, key: str, role: str, fmt: Optional[Format], x: np.ndarray, q: np.ndarray,
               amax: Optional[float] = None) -> CastStats:
        s = super().record(key, role, fmt, x, q, amax)
        tot = self.totals_by_key.get(key)
        if tot is None:
            self.totals_by_key[key] = CastStats().merge(s)
        else:
            tot.merge(s)
        return s

    def reset(self) -> None:
        """Forget every record (statistics start again from zero)."""
        self.__init__(self.histogram)


def gemm_stats(tracker: GemmTracker) -> Dict[str, Dict[str, dict]]:
    """Statistics per GEMM and operand role over the tracker's life.

    Args:
        tracker: the :class:`GemmTracker` of an emulator.

    Returns:
        ``{gemm name: {role: stats}}``, roles "activation", "weight", "gradient", each
        ``stats`` the fields of :class:`~lowprec.autograd.instrument.CastStats`
        (``count``, ``amax`` (largest finite |value| before scaling), ``flushed_fraction``
        (share of finite non-zero values that became zero), ``saturated_fraction`` (share
        of finite values beyond the format's range), ...) plus ``format``.
    """
    out: Dict[str, Dict[str, dict]] = {}
    for key, s in tracker.totals_by_key.items():
        name, _, role = key.rpartition("/")
        d = s.as_dict()
        d["format"] = tracker.formats.get(key, "fp32")
        out.setdefault(name, {})[role] = d
    return out


def report(tracker: GemmTracker) -> str:
    """A text table of :func:`gemm_stats`: one row per GEMM operand with its format,
    value count, amax and the shares flushed to zero and saturated (in percent)."""
    rows = [("gemm", "role", "format", "count", "amax", "flushed %", "saturated %")]
    for name, roles in gemm_stats(tracker).items():
        for role, d in roles.items():
            rows.append((name, role, d["format"], str(d["count"]), f"{d['amax']:.4g}",
                         f"{100 * d['flushed_fraction']:.3f}",
                         f"{100 * d['saturated_fraction']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in rows)

