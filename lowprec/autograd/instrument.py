"""What happens to numbers during low-precision training: per-cast statistics and a
history of every step.

A :class:`Tracker` is handed to :class:`lowprec.autograd.autocast.Autocast`; every cast of a
GEMM operand (and every rounded weight update) reports to it. Per tracked tensor and step
it keeps how many values were flushed to zero, became subnormal, saturated or overflowed,
and the largest magnitude (amax); per role it accumulates a histogram of log2|value| as
in Micikevicius et al. (2018), Fig. 3. :class:`History` stores the per-step records,
the loss, the loss scale and skipped steps, and the per-epoch curves;
:func:`lowprec.plot.training_curves` and :func:`lowprec.plot.gradient_histogram` draw it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional

import numpy as np

from ..formats import FixedFormat, FloatFormat, Format, float32

__all__ = ["CastStats", "UpdateStats", "cast_stats", "update_stats", "Tracker", "History",
           "HIST_LO", "HIST_HI"]

#: Range of the log2|x| histogram: integer exponents HIST_LO..HIST_HI (inclusive); values
#: outside are counted in the end bins. float32's smallest subnormal is 2^-149.
HIST_LO = -150
HIST_HI = 20


def _add_fields(record, other, skip=()) -> None:
    """Add other's dataclass fields into record's (all but ``skip``)."""
    names = _FIELD_NAMES.get(type(record))
    if names is None:  # dataclasses.fields() is slow enough to matter per cast
        names = _FIELD_NAMES[type(record)] = tuple(f.name for f in fields(record))
    for name in names:
        if name not in skip:
            setattr(record, name, getattr(record, name) + getattr(other, name))


_FIELD_NAMES: Dict[type, tuple] = {}


@dataclass
class CastStats:
    """Counts for values rounded into a format.

    Attributes:
        count: values cast.
        nonzero: finite non-zero inputs (the denominator of ``flushed`` and ``subnormal``).
        flushed: finite non-zero inputs that became zero (underflow).
        subnormal: non-zero results in the format's subnormal range.
        saturated: finite inputs beyond the format's finite range (rounded to the largest
            finite value or overflowed to inf/NaN).
        nonfinite: inf or NaN inputs.
        amax: largest finite |input| before any per-tensor scaling.
    """

    count: int = 0
    nonzero: int = 0
    flushed: int = 0
    subnormal: int = 0
    saturated: int = 0
    nonfinite: int = 0
    amax: float = 0.0

    def merge(self, other: "CastStats") -> "CastStats":
        """Add another record's counts to this one (amax is the larger); returns self."""
        _add_fields(self, other, skip=("amax",))
        self.amax = max(self.amax, other.amax)
        return self

    @property
    def flushed_fraction(self) -> float:
        return self.flushed / self.nonzero if self.nonzero else 0.0

    @property
    def subnormal_fraction(self) -> float:
        return self.subnormal / self.nonzero if self.nonzero else 0.0

    @property
    def saturated_fraction(self) -> float:
        finite = self.count - self.nonfinite
        return self.saturated / finite if finite else 0.0

    def as_dict(self) -> dict:
        return dict(count=self.count, nonzero=self.nonzero, flushed=self.flushed,
                    subnormal=self.subnormal, saturated=self.saturated, nonfinite=self.nonfinite,
                    amax=self.amax, flushed_fraction=self.flushed_fraction,
                    subnormal_fraction=self.subnormal_fraction,
                    saturated_fraction=self.saturated_fraction)


@dataclass
class UpdateStats:
    """Weight updates: how many non-zero updates left the stored weight unchanged.

    Attributes:
        count: weights updated.
        nonzero: non-zero updates.
        lost: non-zero updates after which the stored weight did not change. Under
            stochastic rounding most small updates leave the weight unchanged on a given
            step yet are not lost on average: see ``applied_ratio``.
        requested: sum of |update| the optimizer asked for.
        applied: sum of |new weight - old weight| actually stored.
    """

    count: int = 0
    nonzero: int = 0
    lost: int = 0
    requested: float = 0.0
    applied: float = 0.0

    def merge(self, other: "UpdateStats") -> "UpdateStats":
        _add_fields(self, other)
        return self

    @property
    def lost_fraction(self) -> float:
        return self.lost / self.nonzero if self.nonzero else 0.0

    @property
    def applied_ratio(self) -> float:
        """sum |stored change| / sum |requested update|: about 1 when updates survive on
        average (fp32, stochastic rounding, Kahan), well below 1 under stagnation."""
        return self.applied / self.requested if self.requested else 1.0

    def as_dict(self) -> dict:
        return dict(count=self.count, nonzero=self.nonzero, lost=self.lost,
                    requested=self.requested, applied=self.applied,
                    lost_fraction=self.lost_fraction, applied_ratio=self.applied_ratio)


def _limits(f: Format) -> tuple:
    """(min_normal or None without subnormals, max, min or None) of a format: the bounds
    cast_stats compares with (computed once per format: ``max`` is an exact fraction)."""
    hit = _LIMITS.get(id(f))  # by identity: hashing a format hashes all its fields
    if hit is not None and hit[0] is f:
        return hit[1]
    sub = f.min_normal if isinstance(f, FloatFormat) and f.subnormals else None
    lim = (sub, f.max, f.min if isinstance(f, FixedFormat) else None)
    if len(_LIMITS) > 256:
        _LIMITS.clear()
    _LIMITS[id(f)] = (f, lim)  # holding f keeps its id from being reused
    return lim


_LIMITS: Dict[int, tuple] = {}
_F32_MAX = float(np.finfo(np.float32).max)


def cast_stats(x: np.ndarray, q: np.ndarray, fmt: Optional[Format], amax: Optional[float] = None
               ) -> CastStats:
    """Statistics of one cast.

    Args:
        x: the values as they entered the rounding (after any scaling).
        q: the rounded values (same shape).
        fmt: the target format; None means no rounding happened (float32 values), and
            subnormals are then float32's.
        amax: largest finite |value| before scaling; defaults to that of ``x``.

    Returns:
        A :class:`CastStats`.
    """
    f = float32 if fmt is None else fmt
    min_normal, fmax, fmin = _limits(f)
    ax = np.abs(x)
    finite = np.isfinite(x)
    n = x.size
    n_fin = int(np.count_nonzero(finite))
    every = n_fin == n  # the usual case: no mask needed
    nz = (x != 0) if every else finite & (x != 0)
    n_nz = int(np.count_nonzero(nz))
    flushed = int(np.count_nonzero(nz & (q == 0))) if fmt is not None else 0
    if min_normal is not None:
        aq = ax if q is x else np.abs(q)
        sub = int(np.count_nonzero((aq < min_normal) & (aq > 0)))
    else:
        sub = 0
    if fmin is not None:
        sat = int(np.count_nonzero(finite & ((x > fmax) | (x < fmin))))
    elif fmax == _F32_MAX and x.dtype == np.float32:
        sat = 0  # no finite float32 exceeds float32's largest value
    else:
        big = ax > fmax
        sat = int(np.count_nonzero(big if every else finite & big))
    if amax is None:
        if not n_fin:
            amax = 0.0
        else:
            amax = float(ax.max() if every else ax[finite].max())
    return CastStats(n, n_nz, flushed, sub, sat, n - n_fin, float(amax))


def update_stats(delta: np.ndarray, old: np.ndarray, new: np.ndarray) -> UpdateStats:
    """Statistics of one rounded weight update ``new = round(old + delta)``."""
    nz = delta != 0
    return UpdateStats(delta.size, int(np.count_nonzero(nz)),
                       int(np.count_nonzero(nz & (new == old))),
                       float(np.abs(delta).sum(dtype=np.float64)),
                       float(np.abs(new.astype(np.float64) - old).sum()))


def log2_histogram(x: np.ndarray) -> np.ndarray:
    """Counts of floor(log2|x|) over exponents HIST_LO..HIST_HI for finite non-zero x."""
    return _histogram_and_zeros(x)[0]


# the histogram bin of each float32 exponent field 1..254 (the normal binades)
_NORMAL_BINS = np.clip(np.arange(1, 255) - 127, HIST_LO, HIST_HI) - HIST_LO


def _histogram_and_zeros(x: np.ndarray) -> tuple:
    """(:func:`log2_histogram` of x, how many elements of x are zero)."""
    nbins = HIST_HI - HIST_LO + 1
    if x.dtype == np.float32:
        # float32: floor(log2|x|) of a normal value is its biased exponent field - 127, so
        # one bincount over that field replaces frexp; subnormals (field 0, rare) go
        # through frexp
        xc = np.ascontiguousarray(x).reshape(-1)
        b = xc.view(np.uint32)
        mag = b & np.uint32(0x7FFFFFFF)
        field = np.bincount((mag >> np.uint32(23)).astype(np.intp), minlength=256)
        is_sub = (mag - np.uint32(1)) < np.uint32(0x7FFFFF)  # 0 < mag < 2^23 (wraps at 0)
        n_sub = int(np.count_nonzero(is_sub))
        h = np.bincount(_NORMAL_BINS, weights=field[1:255], minlength=nbins).astype(np.int64)
        if n_sub:
            _, es = np.frexp(xc[is_sub])
            h += np.bincount(np.clip(es.astype(np.int64) - 1, HIST_LO, HIST_HI) - HIST_LO,
                             minlength=nbins)
        return h, int(field[0]) - n_sub
    v = x[np.isfinite(x) & (x != 0)]
    _, e = np.frexp(v)
    e = np.clip(e.astype(np.int64) - 1, HIST_LO, HIST_HI) - HIST_LO
    return np.bincount(e, minlength=nbins), int(np.count_nonzero(x == 0))


class Tracker:
    """Collects cast and update statistics for one step at a time, and totals per role.

    Args:
        histogram: the roles whose log2|x| histograms are accumulated, per role and per
            tensor (default: gradients, the ones Micikevicius et al. plot); True for every
            role, False for none.
    """

    def __init__(self, histogram=("gradient",)):
        self.histogram = histogram
        self.step: Dict[str, object] = {}  # key -> CastStats / UpdateStats of this step
        self.roles: Dict[str, str] = {}
        self.formats: Dict[str, str] = {}
        self.totals: Dict[str, CastStats] = {}
        self.update_totals = UpdateStats()
        self.hist: Dict[str, np.ndarray] = {}
        self.zeros: Dict[str, int] = {}
        self.hist_by_key: Dict[str, np.ndarray] = {}  # per tensor, over the whole run

    def record(self, key: str, role: str, fmt: Optional[Format], x: np.ndarray, q: np.ndarray,
               amax: Optional[float] = None) -> CastStats:
        """Record one cast of tensor ``key`` (role "activation", "weight" or "gradient")."""
        s = cast_stats(x, q, fmt, amax)
        prev = self.step.get(key)
        self.step[key] = s if prev is None else prev.merge(s)
        self.roles[key] = role
        self.formats[key] = "fp32" if fmt is None else fmt.name
        self.totals.setdefault(role, CastStats()).merge(s)
        if self.histogram is True or (self.histogram and role in self.histogram):
            h, zeros = _histogram_and_zeros(x)
            self.hist[role] = self.hist[role] + h if role in self.hist else h
            self.zeros[role] = self.zeros.get(role, 0) + zeros
            prev_h = self.hist_by_key.get(key)
            self.hist_by_key[key] = h if prev_h is None else prev_h + h
        return s

    def record_update(self, key: str, delta: np.ndarray, old: np.ndarray, new: np.ndarray
                      ) -> UpdateStats:
        """Record one rounded weight update of parameter ``key``."""
        s = update_stats(delta, old, new)
        prev = self.step.get(key + "/update")
        self.step[key + "/update"] = s if prev is None else prev.merge(s)
        self.roles[key + "/update"] = "update"
        self.update_totals.merge(s)
        return s

    def take_step(self) -> Dict[str, dict]:
        """This step's records as plain dicts, clearing them for the next step."""
        out = {k: v.as_dict() for k, v in self.step.items()}
        self.step = {}
        return out


@dataclass
class History:
    """Everything recorded while training one recipe.

    Attributes:
        recipe: the recipe's name.
        steps: one dict per optimizer step: ``step``, ``epoch``, ``loss``, ``scale``
            (loss scale, 1 without scaling), ``skipped`` and ``tensors`` (per tracked
            tensor, the :class:`CastStats` / :class:`UpdateStats` fields).
        epochs: one dict per epoch: ``epoch``, ``train_loss``, ``test_accuracy``,
            ``seconds``.
        hist: per role, counts of floor(log2|x|) over HIST_LO..HIST_HI.
        zeros: per role, exact zeros seen (not in the histogram).
        totals: per role, :class:`CastStats` over the whole run.
        update_totals: :class:`UpdateStats` over the whole run.
        formats: per tracked tensor, the format it was cast to.
        hist_by_key: per tracked tensor whose role is histogrammed, counts of
            floor(log2|x|) over HIST_LO..HIST_HI over the whole run.
    """

    recipe: str = ""
    steps: List[dict] = field(default_factory=list)
    epochs: List[dict] = field(default_factory=list)
    hist: Dict[str, np.ndarray] = field(default_factory=dict)
    zeros: Dict[str, int] = field(default_factory=dict)
    totals: Dict[str, CastStats] = field(default_factory=dict)
    update_totals: UpdateStats = field(default_factory=UpdateStats)
    formats: Dict[str, str] = field(default_factory=dict)
    hist_by_key: Dict[str, np.ndarray] = field(default_factory=dict)

    def log_step(self, loss: float, *, epoch: int = 0, scale: float = 1.0, skipped: bool = False,
                 tracker: Optional[Tracker] = None) -> None:
        """Append one step; takes (and clears) the tracker's per-step records."""
        tensors = tracker.take_step() if tracker is not None else {}
        self.steps.append(dict(step=len(self.steps), epoch=epoch, loss=float(loss),
                               scale=float(scale), skipped=bool(skipped), tensors=tensors))
        if tracker is not None:
            self.hist, self.zeros, self.totals = tracker.hist, tracker.zeros, tracker.totals
            self.update_totals, self.formats = tracker.update_totals, tracker.formats
            self.hist_by_key = tracker.hist_by_key

    def log_epoch(self, epoch: int, train_loss: float, test_accuracy: float, seconds: float) -> None:
        """Append one epoch's summary."""
        self.epochs.append(dict(epoch=epoch, train_loss=float(train_loss),
                                test_accuracy=float(test_accuracy), seconds=float(seconds)))

    @property
    def skipped_steps(self) -> int:
        return sum(s["skipped"] for s in self.steps)

    def series(self, key: str, field_: str) -> np.ndarray:
        """Per-step values of one field of one tracked tensor (NaN where absent)."""
        return np.array([s["tensors"].get(key, {}).get(field_, np.nan) for s in self.steps])

    def summary(self) -> dict:
        """Totals over the run: per role cast statistics, update stagnation, skips."""
        return dict(recipe=self.recipe, skipped_steps=self.skipped_steps,
                    roles={r: s.as_dict() for r, s in self.totals.items()},
                    updates=self.update_totals.as_dict())

    def to_dict(self, steps: bool = False) -> dict:
        """A JSON-ready dict: summary, epoch curves, per-step loss/scale/skips, histograms
        (and every per-step tensor record with ``steps=True``)."""
        d = self.summary()
        d.update(epochs=self.epochs,
                 loss=[s["loss"] for s in self.steps],
                 scale=[s["scale"] for s in self.steps],
                 skipped=[s["skipped"] for s in self.steps],
                 hist_lo=HIST_LO, hist_hi=HIST_HI,
                 hist={r: h.tolist() for r, h in self.hist.items()},
                 zeros=dict(self.zeros), formats=dict(self.formats))
        if steps:
            d["steps"] = self.steps
        return d

    def compact(self) -> dict:
        """What a study keeps of a run, in a few kB: epoch curves, per-step loss, loss
        scale and skips, per tensor the per-step shares flushed to zero and saturated, the
        histograms per role and per tensor, and the totals (JSON-ready)."""
        keys = sorted({k for st in self.steps for k in st["tensors"]
                       if not k.endswith("/update")})
        shares = {}
        for k in keys:
            fl = [st["tensors"].get(k, {}).get("flushed_fraction") for st in self.steps]
            sa = [st["tensors"].get(k, {}).get("saturated_fraction") for st in self.steps]
            shares[k] = {"flushed": [None if v is None else round(v, 6) for v in fl],
                         "saturated": [None if v is None else round(v, 6) for v in sa]}
        d = self.summary()
        d.update(epochs=self.epochs, loss=[s["loss"] for s in self.steps],
                 scale=[s["scale"] for s in self.steps],
                 skipped=[s["skipped"] for s in self.steps], shares=shares,
                 hist_lo=HIST_LO, hist_hi=HIST_HI,
                 hist={r: h.tolist() for r, h in self.hist.items()},
                 hist_by_key={k: h.tolist() for k, h in self.hist_by_key.items()},
                 zeros=dict(self.zeros), formats=dict(self.formats))
        return d

    def to_json(self, path: str, steps: bool = False) -> None:
        """Write :meth:`to_dict` to a file."""
        with open(path, "w") as f:
            json.dump(self.to_dict(steps), f)
