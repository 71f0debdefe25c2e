"""Pictures of number formats and numerical effects, for the notebooks and the docs.

Plain functions that take data (values, errors, curves) and an optional matplotlib Axes
and return the Figure; they compute nothing themselves beyond what the picture needs, so
what is drawn is exactly what the caller measured. Training plots live in
:mod:`lowprec.plot`.

matplotlib is imported inside each function. When no backend has been chosen (no
``MPLBACKEND``, nothing in matplotlibrc, pyplot not yet imported) the Agg backend is
selected, so these functions work on headless machines; inside Jupyter the kernel's inline
backend is kept.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from .formats import get_format
from .plot import _axes as _plot_axes, _plt, save  # one backend policy, one save()

__all__ = ["number_line", "relative_error", "rounding_modes", "running_sums", "error_vs_k",
           "sr_probability", "curves", "agreement", "ulp_histogram", "save"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _axes(ax, figsize=(7.0, 4.0)):
    return _plot_axes(ax, figsize)


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", **kw)


def _finite_positive(fmt) -> np.ndarray:
    v = get_format(fmt).values(np.float64)
    return np.unique(v[np.isfinite(v) & (v > 0)])


def number_line(formats: Sequence, ax=None, *, scale: str = "linear", positive: bool = False):
    """Every finite value of small formats, one row per format.

    Normal values are drawn as dark ticks, subnormals in orange, the largest finite value
    is labelled. ``scale="log2"`` puts the positive values of all formats on one shared
    log2 axis, where each binade holds the same number of values.

    Args:
        formats: format names or descriptors of at most 16 bits (fp8, fp6, fp4, ...).
        ax: one Axes (``scale="log2"``), or one Axes per format (``scale="linear"``);
            default: a new figure.
        scale: "linear" (each row its own x range, signed values unless ``positive``) or
            "log2".
        positive: linear scale only: draw only values >= 0.

    Returns:
        The Figure.

    Raises:
        ValueError: unknown scale, or a format wider than 16 bits.
    """
    fmts = [get_format(f) for f in formats]
    if scale not in ("linear", "log2"):
        raise ValueError(f"number_line: scale must be 'linear' or 'log2', got {scale!r}")
    plt = _plt()
    if scale == "log2":
        fig, ax = _axes(ax, figsize=(9.0, 0.7 + 0.55 * len(fmts)))
        for i, f in enumerate(fmts):
            v = _finite_positive(f)
            sub = v < f.min_normal
            y = len(fmts) - 1 - i
            ax.vlines(np.log2(v[~sub]), y - 0.3, y + 0.3, color="0.15", lw=0.8)
            ax.vlines(np.log2(v[sub]), y - 0.3, y + 0.3, color="tab:orange", lw=0.8)
            ax.text(np.log2(v[-1]) + 0.3, y, f"max {v[-1]:g}", va="center", fontsize="small")
        ax.set_yticks(range(len(fmts)))
        ax.set_yticklabels([f.name for f in reversed(fmts)])
        ax.set_ylim(-0.6, len(fmts) - 0.4)
        ax.set_xlabel("log2(value)")
        ax.grid(True, axis="x", alpha=0.3)
        return fig
    if ax is None:
        fig, axes = plt.subplots(len(fmts), 1, figsize=(9.0, 0.2 + 1.0 * len(fmts)),
                                 squeeze=False)
        axes = axes[:, 0]
    else:
        axes = np.atleast_1d(ax)
        if len(axes) != len(fmts):
            raise ValueError(f"number_line: got {len(axes)} Axes for {len(fmts)} formats")
        fig = axes[0].figure
    for a, f in zip(axes, fmts):
        v = f.values(np.float64)
        v = np.unique(v[np.isfinite(v)])
        if positive:
            v = v[v >= 0]
        sub = (np.abs(v) < f.min_normal) & (v != 0)
        a.vlines(v[~sub], -1, 1, color="0.15", lw=0.8)
        a.vlines(v[sub], -1, 1, color="tab:orange", lw=0.8)
        a.axhline(0, color="0.6", lw=0.5)
        a.set_yticks([])
        a.set_ylim(-1.5, 1.5)
        a.set_ylabel(f.name, rotation=0, ha="right", va="center", fontsize="small")
        a.set_title(f"{len(v)} finite values, max {v.max():g}, "
                    f"{int(sub.sum())} subnormal (orange)", fontsize="small", loc="left")
        for s in ("top", "right", "left"):
            a.spines[s].set_visible(False)
    fig.tight_layout()
    return fig


def relative_error(x, q, fmt=None, ax=None, *, label: Optional[str] = None, shade: bool = True):
    """Relative rounding error |q - x| / |x| against |x| on log axes.

    With ``fmt``, the regions are shaded: underflow (below the smallest subnormal, where
    values round to zero), the subnormal range (precision shrinks, the error grows),
    and overflow (above the largest finite value); the dashed line is the unit roundoff
    u = 2^-p of the normal range. Non-finite results (overflow to inf/NaN) are left out of
    the curve; the overflow shading marks them.

    Args:
        x: positive inputs (finite).
        q: the rounded values (same shape).
        fmt: the format the values were rounded to (for the shading), or None.
        ax: Axes to draw into (default: a new figure); draw several formats into one Axes
            by passing it again with ``shade=False``.
        label: legend label of the curve.
        shade: draw the regions and the unit roundoff (needs ``fmt``).

    Returns:
        The Figure.

    Raises:
        ValueError: shapes differ.
    """
    x = np.asarray(x, np.float64)
    q = np.asarray(q, np.float64)
    if x.shape != q.shape:
        raise ValueError(f"relative_error: x {x.shape} and q {q.shape} differ in shape")
    fig, ax = _axes(ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(q - x) / np.abs(x)
    err = np.where(np.isfinite(q) & np.isfinite(err), err, np.nan)
    ax.plot(np.abs(x), err, lw=0.7, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("|x|")
    ax.set_ylabel("relative error |q - x| / |x|")
    if fmt is not None and shade:
        f = get_format(fmt)
        lo, hi = np.abs(x).min(), np.abs(x).max()
        if f.min_subnormal < f.min_normal:
            ax.axvspan(f.min_subnormal, f.min_normal, color="tab:orange", alpha=0.15,
                       label="subnormal")
        ax.axvspan(min(lo, f.min_subnormal / 2), f.min_subnormal / 2, color="tab:blue",
                   alpha=0.12, label="underflow (rounds to 0)")
        ax.axvspan(f.max, max(hi, f.max), color="tab:red", alpha=0.12, label="overflow")
        u = 2.0 ** -(getattr(f, "precision", 1))
        ax.axhline(u, color="k", ls="--", lw=0.8, label=f"u = 2^-{f.precision}")
        ax.set_xlim(lo, hi)
        ax.set_ylim(bottom=u * 2.0 ** -12)
    ax.grid(True, alpha=0.3)
    _legend(ax, loc="lower left")
    return fig


def rounding_modes(x, results: Mapping[str, np.ndarray], grid=None, axes=None, *,
                   ncols: int = 4, highlight=None):
    """One panel per rounding mode: output against input, over the same inputs.

    Args:
        x: the inputs (1-D).
        results: mode name -> outputs, shape ``x.shape``, or ``(samples,) + x.shape`` for
            stochastic rounding (samples are drawn as dots, their mean as a line).
        grid: representable values to draw as horizontal lines (e.g. ``fmt.values()``).
        axes: a sequence of at least ``len(results)`` Axes (default: a new figure).
        ncols: panels per row of a new figure.
        highlight: indices into ``x`` (e.g. the exact ties) whose outputs are drawn as
            dots, so single points such as ties are visible on the staircase.

    Returns:
        The Figure.

    Raises:
        ValueError: an output whose trailing shape is not x's.
    """
    plt = _plt()
    x = np.asarray(x, np.float64)
    n = len(results)
    if axes is None:
        rows = (n + ncols - 1) // ncols
        fig, axs = plt.subplots(rows, min(ncols, n), figsize=(3.2 * min(ncols, n), 2.9 * rows),
                                squeeze=False, sharex=True, sharey=True)
        axs = axs.ravel()
        for a in axs[n:]:
            a.set_visible(False)
    else:
        axs = np.ravel(axes)
        fig = axs[0].figure
    lo, hi = x.min(), x.max()
    g = None
    if grid is not None:
        g = np.asarray(grid, np.float64)
        g = g[np.isfinite(g)]
        span = hi - lo
        g = np.unique(g[(g >= lo - 0.5 * span) & (g <= hi + 0.5 * span)])
    for i, (name, r) in enumerate(results.items()):
        a = axs[i]
        r = np.asarray(r, np.float64)
        if r.shape[-x.ndim:] != x.shape:
            raise ValueError(f"rounding_modes: {name} has shape {r.shape}, inputs {x.shape}")
        if g is not None:
            for v in g:
                a.axhline(v, color="0.85", lw=0.6, zorder=0)
        a.plot([lo, hi], [lo, hi], color="0.5", ls=":", lw=0.8)
        if r.ndim > x.ndim:
            xs = np.broadcast_to(x, r.shape)
            a.plot(xs.ravel(), r.ravel(), ".", ms=1.5, alpha=0.25, color=_COLORS[i % 10])
            a.plot(x, r.mean(axis=0), color="k", lw=1.0, label="mean")
            a.legend(fontsize="x-small", loc="upper left")
        else:
            a.plot(x, r, color=_COLORS[i % 10], lw=1.3, drawstyle="steps-mid")
            if highlight is not None:
                h = np.asarray(highlight)
                a.plot(x[h], r[h], "o", ms=4, color="k", zorder=3)
        a.set_title(name, fontsize="medium")
        a.grid(False)
    for a in axs[:n]:
        a.set_xlabel("input x", fontsize="small")
    axs[0].set_ylabel("rounded", fontsize="small")
    fig.tight_layout()
    return fig


def running_sums(steps, sums: Mapping[str, np.ndarray], exact=None, ax=None, *,
                 logy: bool = False, title: Optional[str] = None):
    """Running sums against the step count, one line per method.

    Args:
        steps: step numbers (1-D).
        sums: label -> running sum after each step (same length as ``steps``).
        exact: the exact running sum (drawn dashed black), or None.
        ax: Axes to draw into (default: a new figure).
        logy: logarithmic y axis.
        title: axes title.

    Returns:
        The Figure.
    """
    fig, ax = _axes(ax)
    steps = np.asarray(steps)
    for i, (name, s) in enumerate(sums.items()):
        ax.plot(steps, np.asarray(s, np.float64), lw=1.2, label=name, color=_COLORS[i % 10])
    if exact is not None:
        ax.plot(steps, np.asarray(exact, np.float64), "k--", lw=1.0, label="exact")
    ax.set_xlabel("step")
    ax.set_ylabel("running sum")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return fig


def error_vs_k(ks, errors: Mapping[str, np.ndarray], ax=None, *,
               bounds: Optional[Mapping[str, np.ndarray]] = None,
               ylabel: str = "relative error", title: Optional[str] = None):
    """Error of a dot product / GEMM against the reduction length K, log-log.

    Args:
        ks: the K values (1-D).
        errors: label -> error for each K (NaN points are skipped).
        ax: Axes to draw into (default: a new figure).
        bounds: label -> a reference curve drawn dashed (e.g. ``K * u``).
        ylabel: y axis label.
        title: axes title.

    Returns:
        The Figure.
    """
    fig, ax = _axes(ax)
    ks = np.asarray(ks, np.float64)
    for i, (name, e) in enumerate(errors.items()):
        ax.plot(ks, np.asarray(e, np.float64), marker="o", ms=3.5, lw=1.2, label=name,
                color=_COLORS[i % 10])
    for j, (name, b) in enumerate((bounds or {}).items()):
        ax.plot(ks, np.asarray(b, np.float64), ls="--", lw=0.9, color="0.4",
                alpha=0.6 + 0.4 * (j % 2), label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("K (products summed)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)
    return fig


def sr_probability(position, probs: Mapping[str, np.ndarray], ax=None):
    """Probability of rounding up against the input's position between two neighbours.

    Exact stochastic rounding is the diagonal; with r random bits the probability moves in
    steps of 2^-r, and positions below 2^-r of the gap never round up.

    Args:
        position: positions in [0, 1] between the lower (0) and upper (1) neighbour.
        probs: label -> measured fraction of round-ups at each position.
        ax: Axes to draw into (default: a new figure).

    Returns:
        The Figure.
    """
    fig, ax = _axes(ax, figsize=(5.5, 4.5))
    p = np.asarray(position, np.float64)
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1.0, label="exact: P = position")
    for i, (name, y) in enumerate(probs.items()):
        ax.plot(p, np.asarray(y, np.float64), lw=1.2, label=name, color=_COLORS[i % 10],
                drawstyle="steps-post" if "bit" in name else "default")
    ax.set_xlabel("position of x between its neighbours (0 = lower, 1 = upper)")
    ax.set_ylabel("P(round up)")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return fig


def curves(x, ys: Mapping[str, np.ndarray], ax=None, *, xlabel: str = "", ylabel: str = "",
           logx: bool = False, logy: bool = False, title: Optional[str] = None,
           marker: Optional[str] = None):
    """Several named curves over one x axis (the general case of the plots above).

    Args:
        x: x values (1-D), shared by every curve.
        ys: label -> y values.
        ax: Axes to draw into (default: a new figure).
        xlabel, ylabel, title: labels.
        logx, logy: logarithmic axes.
        marker: matplotlib marker for the points (None: lines only).

    Returns:
        The Figure.
    """
    fig, ax = _axes(ax)
    x = np.asarray(x)
    for i, (name, y) in enumerate(ys.items()):
        ax.plot(x, np.asarray(y, np.float64), lw=1.2, marker=marker, ms=3.5, label=name,
                color=_COLORS[i % 10])
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend(ax)
    return fig


def agreement(table: Mapping[str, Mapping[str, float]], ax=None, *,
              title: str = "cases reproduced bit for bit"):
    """Heat map of how often each model reproduces each data set exactly.

    Args:
        table: data set label -> (model label -> fraction in [0, 1], or NaN where the
            model does not apply).
        ax: Axes to draw into (default: a new figure).
        title: axes title.

    Returns:
        The Figure.
    """
    plt = _plt()
    rows = list(table)
    cols = list(dict.fromkeys(c for r in rows for c in table[r]))
    m = np.array([[table[r].get(c, np.nan) for c in cols] for r in rows], np.float64)
    fig, ax = _axes(ax, figsize=(1.0 + 1.05 * len(cols), 0.9 + 0.5 * len(rows)))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="0.9")
    ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = m[i, j]
            ax.text(j, i, "n/a" if np.isnan(v) else f"{100 * v:.1f}%", ha="center",
                    va="center", fontsize="small")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.set_xlabel("model")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig


def ulp_histogram(diffs: Mapping[str, np.ndarray], ax=None, *, max_ulps: int = 8,
                  xlabel: str = "difference from the GPU result (units in the last place)"):
    """Bar chart of signed differences in ulps, one group of bars per label.

    Differences beyond +-``max_ulps`` are counted in the outermost bars.

    Args:
        diffs: label -> integer differences (e.g. from :func:`lowprec.testing.ulp_distance`
            with a sign, or differences of ordinals).
        ax: Axes to draw into (default: a new figure).
        max_ulps: clip range.
        xlabel: x axis label.

    Returns:
        The Figure.
    """
    fig, ax = _axes(ax)
    edges = np.arange(-max_ulps, max_ulps + 1)
    n = max(len(diffs), 1)
    width = 0.8 / n
    for i, (name, d) in enumerate(diffs.items()):
        d = np.clip(np.asarray(d, np.int64), -max_ulps, max_ulps)
        counts = np.array([(d == e).sum() for e in edges], np.float64)
        frac = counts / max(len(d), 1)
        ax.bar(edges - 0.4 + width * (i + 0.5), frac, width=width, label=name,
               color=_COLORS[i % 10])
    ax.set_xticks(edges)
    labels = [str(e) for e in edges]
    labels[0], labels[-1] = f"<={-max_ulps}", f">={max_ulps}"
    ax.set_xticklabels(labels, fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of cases")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax)
    return fig
