"""Means with confidence intervals, for results over several seeds.

A study runs each recipe from N seeds; a table shows the mean +- the half-width of a 95 %
confidence interval from Student's t distribution (the seeds are few, so not the normal
one), and an effect is the difference against the baseline *paired by seed* (both runs of a
seed share the split, the initial weights and the batches), with its own interval. A claim
"holds" when the interval says so, not by eye: the whole interval lies on the claimed side.

No scipy: the t quantile comes from the regularized incomplete beta function (continued
fraction, Numerical Recipes 6.4) and a bisection, which is plenty for the few degrees of
freedom a study has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = ["Estimate", "mean_ci", "paired_difference", "t_quantile", "t_cdf"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < eps:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) \
        + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betai(0.5 * df, 0.5, x)
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (e.g. p = 0.975 for a two-sided 95 % interval).

    Raises:
        ValueError: for p outside (0, 1) or df <= 0.
    """
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds and its confidence interval.

    Attributes:
        mean: the sample mean (NaN without values).
        half_width: half the width of the interval (NaN with fewer than two values).
        n: how many values.
        level: the confidence level (0.95).
    """

    mean: float
    half_width: float
    n: int
    level: float = 0.95

    @property
    def low(self) -> float:
        """Lower end of the interval."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper end of the interval."""
        return self.mean + self.half_width

    def above(self, value: float = 0.0) -> Optional[bool]:
        """Whether the whole interval lies above ``value`` (None without an interval)."""
        return None if math.isnan(self.half_width) else self.low > value

    def below(self, value: float = 0.0) -> Optional[bool]:
        """Whether the whole interval lies below ``value`` (None without an interval)."""
        return None if math.isnan(self.half_width) else self.high < value

    def format(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """``mean +- half`` (just the mean when there is no interval)."""
        m = self.mean * scale
        if math.isnan(self.half_width):
            return f"{m:.{digits}f}{unit}"
        return f"{m:.{digits}f} +- {self.half_width * scale:.{digits}f}{unit}"

    def as_dict(self) -> dict:
        """JSON-ready fields (None for NaN)."""
        nn = lambda v: None if math.isnan(v) else v  # noqa: E731
        return {"mean": nn(self.mean), "half_width": nn(self.half_width), "low": nn(self.low),
                "high": nn(self.high), "n": self.n, "level": self.level}


def mean_ci(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean and the t-interval of a list of values (non-finite values are dropped: a run
    that diverged has no accuracy to average; count them separately)."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    n = len(v)
    if n == 0:
        return Estimate(math.nan, math.nan, 0, level)
    m = math.fsum(v) / n
    if n == 1:
        return Estimate(m, math.nan, 1, level)
    var = math.fsum((x - m) ** 2 for x in v) / (n - 1)
    half = t_quantile(0.5 + level / 2.0, n - 1) * math.sqrt(var / n)
    return Estimate(m, half, n, level)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean of a[i] - b[i] over pairs where both are finite, with its t-interval.

    Raises:
        ValueError: for lists of different lengths.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_difference needs lists of equal length, got {len(a)} and "
                         f"{len(b)}")
    d = [x - y for x, y in zip(a, b) if x is not None and y is not None
         and math.isfinite(x) and math.isfinite(y)]
    return mean_ci(d, level)
