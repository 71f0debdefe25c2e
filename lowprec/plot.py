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
from .stats import t_quantile

__all__ = ["training_curves", "loss_curves", "accuracy_curves", "log2_histogram",
           "gradient_histogram", "format_ranges", "save", "curves_with_ci",
           "tensor_histograms", "share_heatmap"]


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


def curves_with_ci(runs: Mapping[str, list], level: float = 0.95, axes=None,
                   title: Optional[str] = None):
    """Loss and accuracy per epoch for several recipes, each a mean over seeds with a
    shaded confidence band (Student's t over the seeds).

    Args:
        runs: label -> list of runs of that label (each a :meth:`History.compact` dict or a
            History), one per seed.
        level: confidence level of the bands.
        axes: an optional pair of Axes (default: a new figure).
        title: a suptitle (e.g. the model and the settings).

    Returns:
        The Figure. Each recipe keeps one colour and line style in both panels, and the
        legend sits outside the axes so it hides no curve.
    """
    plt = _plt()
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    else:
        fig = axes[0].figure
    for i, (label, hs) in enumerate(runs.items()):
        eps = [_epochs(h) for h in hs]
        n_ep = min(len(e) for e in eps) if eps else 0
        if not n_ep:
            continue
        x = np.arange(1, n_ep + 1)
        for ax, key, scale in ((axes[0], "train_loss", 1.0), (axes[1], "test_accuracy", 100.0)):
            v = np.array([[np.nan if e[k][key] is None else e[k][key] * scale
                           for k in range(n_ep)] for e in eps], dtype=np.float64)
            ok = np.isfinite(v)
            cnt = ok.sum(axis=0)
            mean = np.where(cnt > 0, np.nansum(np.where(ok, v, 0), axis=0) / np.maximum(cnt, 1),
                            np.nan)
            sd = np.sqrt(np.nansum(np.where(ok, (v - mean) ** 2, 0), axis=0)
                         / np.maximum(cnt - 1, 1))
            tq = np.array([t_quantile(0.5 + level / 2, c - 1) if c > 1 else np.nan for c in cnt])
            half = tq * sd / np.sqrt(np.maximum(cnt, 1))
            st = _style(i)
            ax.plot(x, mean, label=f"{label} (n={int(cnt.max())})", **st)
            if np.isfinite(half).any():
                ax.fill_between(x, mean - half, mean + half, color=st["color"], alpha=0.15,
                                linewidth=0)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("training loss (mean over seeds)")
    axes[1].set_ylabel("test accuracy, % (mean over seeds)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
               fontsize="small", title=f"recipe (band: {int(level * 100)} % CI)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def tensor_histograms(run, keys: Optional[Sequence[str]] = None,
                      formats: Sequence = ("fp16", "bf16", "e4m3", "e5m2"), ncols: int = 3,
                      title: Optional[str] = None):
    """One log2|value| histogram per tracked tensor (per layer and role), each with the
    formats' ranges shaded: normal range dark, subnormals light, the flush-to-zero edge
    dotted (see :func:`log2_histogram`).

    Args:
        run: a :meth:`History.compact` dict or a History whose tracker kept per-tensor
            histograms.
        keys: the tensors to draw (default: every one recorded, layer by layer).
        formats: formats whose ranges are shaded.
        ncols: panels per row.
        title: a suptitle; the default names the run and says the counts cover every step.

    Returns:
        The Figure.

    Raises:
        ValueError: when the run kept no per-tensor histograms.
    """
    hk = run.hist_by_key if isinstance(run, History) else run.get("hist_by_key", {})
    lo = HIST_LO if isinstance(run, History) else run.get("hist_lo", HIST_LO)
    if not hk:
        raise ValueError("the run kept no per-tensor histograms (Tracker(histogram=...))")
    keys = list(keys) if keys is not None else sorted(hk)
    plt = _plt()
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.4 * nrows), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        log2_histogram(np.asarray(hk[k]), lo, formats=formats, title=k, ax=ax)
        ax.legend().remove() if ax is not axes.flat[0] else None
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    name = run.recipe if isinstance(run, History) else run.get("recipe", "")
    fig.suptitle(title or f"{name}: log2|value| of each tensor cast into a GEMM, all steps "
                          f"(shaded: where each format represents it)")
    fig.tight_layout()
    return fig


def share_heatmap(run, what: str = "flushed", title: Optional[str] = None, ax=None):
    """Tensor x step heat map of the share of values flushed to zero (or saturated) by the
    casts of a run.

    Args:
        run: a :meth:`History.compact` dict (its ``shares``) or a History.
        what: "flushed" (non-zero values that became zero) or "saturated" (values beyond
            the format's range).
        title: axes title (default: says what and which run).
        ax: Axes to draw into (default: a new figure).

    Returns:
        The Figure.

    Raises:
        ValueError: for an unknown ``what`` or a run without per-step records.
    """
    if what not in ("flushed", "saturated"):
        raise ValueError(f"what must be 'flushed' or 'saturated', got {what!r}")
    shares = run.compact()["shares"] if isinstance(run, History) else run.get("shares", {})
    if not shares:
        raise ValueError("the run has no per-step cast records")
    keys = sorted(shares)
    m = np.array([[np.nan if v is None else v for v in shares[k][what]] for k in keys],
                 dtype=np.float64)
    fig, ax = _axes(ax, figsize=(10, 0.35 * len(keys) + 1.8))
    im = ax.imshow(100 * m, aspect="auto", interpolation="nearest", cmap="magma",
                   vmin=0, vmax=max(1e-9, float(np.nanmax(100 * m)) if np.isfinite(m).any()
                                    else 1.0))
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(keys, fontsize="small")
    ax.set_xlabel("optimizer step")
    name = run.recipe if isinstance(run, History) else run.get("recipe", "")
    ax.set_title(title or f"{name}: % of values {what} {'to zero ' if what == 'flushed' else ''}"
                          f"per tensor and step")
    fig.colorbar(im, ax=ax, label=f"% {what}")
    return fig


def save(fig, path: str, dpi: int = 110) -> None:
    """Write a figure to ``path`` (format from the suffix) and close it."""
    plt = _plt()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
