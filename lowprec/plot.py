"""Training plots: plain functions that take data or a training
:class:`~lowprec.autograd.instrument.History` (and optionally a matplotlib Axes) and
return the Figure, and :func:`save`, which every picture of lowprec uses.

matplotlib is imported inside each function (it is needed only to draw), with the Agg
backend when no backend has been chosen, so ``import lowprec.plot`` does not load it.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .autograd.instrument import HIST_LO, History
from .formats import FloatFormat, get_format

__all__ = ["training_curves", "loss_curves", "accuracy_curves", "log2_histogram",
           "gradient_histogram", "format_ranges", "save"]


def _plt():
    """pyplot, choosing the Agg backend only when nothing has chosen one yet (so a
    user's GUI or notebook backend is kept, and headless runs never need a display)."""
    import matplotlib

    chosen = bool(os.environ.get("MPLBACKEND")) or "matplotlib.pyplot" in sys.modules
    if not chosen:
        get = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
        chosen = get is not None and get() is not None
    if not chosen:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(ax, figsize=(6.4, 4.0)):
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _runs(histories) -> Dict[str, object]:
    """name -> run of one History, a mapping, or a sequence of Histories."""
    if isinstance(histories, History):
        return {histories.recipe or "run": histories}
    if isinstance(histories, Mapping):
        return dict(histories)
    return {h.recipe or f"run{i}": h for i, h in enumerate(histories)}


def _epochs(h) -> list:
    """The epoch records of a History or of its ``to_dict()``."""
    return h.epochs if isinstance(h, History) else h["epochs"]


def _style(i: int) -> dict:
    """Distinct colour and line style for the i-th run (more runs than one palette holds)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return dict(color=cmap(i % 10), linestyle=("-", "--", ":", "-.")[(i // 10) % 4])


def loss_curves(histories, ax=None, log: bool = True):
    """Training loss per epoch, one line per run.

    Args:
        histories: a History, a mapping name -> History (or its ``to_dict()``), or a
            sequence of Histories (named by their ``recipe``).
        ax: an Axes to draw into (default: a new figure).
        log: logarithmic y axis.

    Returns:
        The Figure.
    """
    fig, ax = _axes(ax)
    for i, (name, h) in enumerate(_runs(histories).items()):
        ep = _epochs(h)
        ax.plot([e["epoch"] + 1 for e in ep], [e["train_loss"] for e in ep], marker=".", label=name,
                **_style(i))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    return fig


def accuracy_curves(histories, ax=None):
    """Test accuracy per epoch, one line per run (arguments as :func:`loss_curves`)."""
    fig, ax = _axes(ax)
    for i, (name, h) in enumerate(_runs(histories).items()):
        ep = _epochs(h)
        ax.plot([e["epoch"] + 1 for e in ep], [100 * e["test_accuracy"] for e in ep], marker=".",
                label=name, **_style(i))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    return fig


def training_curves(histories, axes=None):
    """Loss and accuracy per epoch side by side, one line per run.

    Args:
        histories: as :func:`loss_curves` (one History draws one run).
        axes: an optional pair of Axes (default: a new figure).

    Returns:
        The Figure.
    """
    plt = _plt()
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    else:
        fig = axes[0].figure
    loss_curves(histories, ax=axes[0])
    accuracy_curves(histories, ax=axes[1])
    fig.tight_layout()
    return fig


def format_ranges(formats: Sequence) -> Dict[str, tuple]:
    """log2 of (smallest subnormal, smallest normal, largest finite) of each format.

    Fixed-point formats give (log2 resolution, log2 resolution, log2 max).
    """
    out = {}
    for f in formats:
        fm = get_format(f)
        if isinstance(fm, FloatFormat):
            out[fm.name] = (np.log2(fm.min_subnormal), np.log2(fm.min_normal), np.log2(fm.max))
        else:
            r = np.log2(fm.resolution)
            out[fm.name] = (r, r, np.log2(fm.max))
    return out


def log2_histogram(counts: np.ndarray, lo: int, formats: Sequence = ("fp16", "bf16", "e4m3", "e5m2"),
                   zeros: int = 0, title: Optional[str] = None, ax=None):
    """Histogram of log2|value| with each format's representable range shaded, as in
    Micikevicius et al. (2018), Fig. 3.

    Args:
        counts: counts per integer exponent floor(log2|x|), starting at ``lo``.
        lo: exponent of ``counts[0]``.
        formats: formats whose ranges are shaded: a dark band from the smallest normal to
            the largest value, a light band over the subnormals.
        zeros: number of exact zeros (shown in the legend; log2 0 has no bin).
        title: axes title.
        ax: Axes to draw into (default: a new figure).

    Returns:
        The Figure.
    """
    counts = np.asarray(counts, dtype=np.float64)
    fig, ax = _axes(ax, figsize=(9, 4.5))
    e = np.arange(lo, lo + len(counts))
    nz = np.nonzero(counts)[0]
    total = counts.sum() + zeros
    frac = counts / total if total else counts
    ax.bar(e + 0.5, frac, width=1.0, color="0.3", label=f"values ({int(total)}, {zeros} exact zeros)")
    ranges = format_ranges(formats)
    n = max(len(ranges), 1)
    colors = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
    for i, (name, (sub, norm, top)) in enumerate(ranges.items()):
        c = colors[i % len(colors)]
        y0, y1 = 1 - (i + 1) * 0.06, 1 - i * 0.06  # one strip per format along the top
        ax.axvspan(norm, top, ymin=y0, ymax=y1, color=c, alpha=0.55,
                   label=f"{name}: normal 2^{norm:.0f}..{2 ** top:.4g}")
        if sub < norm:
            ax.axvspan(sub, norm, ymin=y0, ymax=y1, color=c, alpha=0.2)
        ax.axvline(sub, color=c, lw=0.8, ls=":")  # below this the format flushes to zero
    if len(nz):
        # Frame the data and the narrow formats; wide ones (bf16, fp32) run off the edges.
        narrow = [r for r in ranges.values() if r[2] - r[0] < 80]
        left = min([e[nz[0]]] + [r[0] for r in narrow]) - 3
        right = max([e[nz[-1]] + 1] + [r[2] for r in narrow]) + 3
        ax.set_xlim(left, right)
    ax.set_ylim(0, max(frac.max() if len(frac) else 1, 1e-9) / (1 - n * 0.06 - 0.02))
    ax.set_xlabel("log2 |value|")
    ax.set_ylabel("fraction of values")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="center right")
    return fig


def gradient_histogram(history: History, formats: Sequence = ("fp16", "bf16", "e4m3", "e5m2"),
                       role: str = "gradient", ax=None):
    """Histogram of log2|value| of one role's casts during a training run, with each
    format's range shaded (see :func:`log2_histogram`).

    Args:
        history: the run (its tracker histogrammed ``role``).
        formats: formats whose ranges are shaded.
        role: "gradient" (what a Tracker histograms by default), "activation" or "weight".
        ax: Axes to draw into (default: a new figure).

    Returns:
        The Figure.

    Raises:
        ValueError: when the run recorded no histogram for ``role``.
    """
    h = history.hist.get(role)
    if h is None:
        raise ValueError(f"no histogram recorded for role {role!r}; have {sorted(history.hist)}")
    return log2_histogram(h, HIST_LO, formats=formats, zeros=history.zeros.get(role, 0),
                          title=f"{history.recipe}: {role} values", ax=ax)


def save(fig, path: str, dpi: int = 110) -> None:
    """Write a figure to ``path`` (format from the suffix) and close it."""
    plt = _plt()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
