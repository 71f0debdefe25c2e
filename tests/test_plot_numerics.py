"""lowprec.plot_numerics: what is drawn is exactly the data given (positions, heights,
labels), Axes are reused when passed, and the module is headless-safe and lazy."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import lowprec
from lowprec import plot_numerics as pn

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _vline_x(ax):
    """x positions of every vertical segment drawn with vlines, by colour."""
    out = {}
    for coll in ax.collections:
        segs = coll.get_segments()
        if not segs:
            continue
        key = tuple(np.round(coll.get_color()[0], 3))
        out.setdefault(key, []).extend(s[0][0] for s in segs)
    return {k: np.sort(v) for k, v in out.items()}


def test_import_is_lazy_and_headless_default_is_agg():
    code = ("import sys, lowprec.plot_numerics as pn; assert 'matplotlib' not in sys.modules;"
            "fig = pn.number_line(['fp4']); import matplotlib; print(matplotlib.get_backend())")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["MPLCONFIGDIR"] = os.environ.get("MPLCONFIGDIR", "/tmp/mplconfig-lowprec-tests")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().lower() == "agg"


@pytest.mark.parametrize("name", ["float4_e2m1fn", "float6_e2m3fn", "float8_e4m3fn"])
def test_number_line_draws_every_finite_value_once(name):
    f = lowprec.get_format(name)
    fig = pn.number_line([name])
    ax = fig.axes[0]
    drawn = np.sort(np.concatenate(list(_vline_x(ax).values())))
    v = f.values(np.float64)
    want = np.unique(v[np.isfinite(v)])  # +0 and -0 are one point
    np.testing.assert_array_equal(drawn, want)


def test_number_line_colours_subnormals_apart():
    f = lowprec.float6_e2m3fn  # subnormals 1/8 .. 7/8
    ax = pn.number_line([f], positive=True).axes[0]
    groups = _vline_x(ax)
    orange = tuple(np.round(matplotlib.colors.to_rgba("tab:orange"), 3))
    np.testing.assert_array_equal(groups[orange], np.arange(1, 8) / 8)
    other = np.concatenate([v for k, v in groups.items() if k != orange])
    assert other.min() == 0 and (other[other > 0] >= 1).all()


def test_number_line_log2_shares_one_axis():
    fig = pn.number_line(["fp4", "e3m2"], scale="log2")
    assert len(fig.axes) == 1
    drawn = np.sort(np.concatenate(list(_vline_x(fig.axes[0]).values())))
    want = np.sort(np.concatenate([np.log2(np.unique(v[np.isfinite(v) & (v > 0)]))
                                   for v in (lowprec.float4_e2m1fn.values(),
                                             lowprec.float6_e3m2fn.values())]))
    np.testing.assert_array_equal(drawn, want)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["float6_e3m2fn",
                                                                      "float4_e2m1fn"]


def test_number_line_errors():
    with pytest.raises(ValueError, match="scale"):
        pn.number_line(["fp4"], scale="log10")
    _, axes = plt.subplots(2)
    with pytest.raises(ValueError, match="2 Axes for 1 formats"):
        pn.number_line(["fp4"], ax=axes)
    with pytest.raises(ValueError, match="16 bits"):
        pn.number_line(["float32"])


def test_relative_error_curve_and_regions():
    f = lowprec.float8_e4m3fn
    x = np.geomspace(2.0 ** -14, 2.0 ** 12, 2001)
    q = lowprec.quantize(x, f)  # IEEE overflow: NaN above the threshold
    fig = pn.relative_error(x, q, f, label="e4m3")
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), x)
    y = line.get_ydata()
    with np.errstate(invalid="ignore"):
        want = np.abs(q - x) / x
    finite = np.isfinite(q)
    np.testing.assert_array_equal(y[finite], want[finite])
    assert np.isnan(y[~finite]).all() and (~finite).sum() > 0
    # span edges in data coordinates (x1 = x0 + width is geometry, hence approx)
    xs = {p.get_label(): [p.get_x(), p.get_x() + p.get_width()] for p in ax.patches}
    assert xs["subnormal"] == pytest.approx([f.min_subnormal, f.min_normal], rel=1e-12)
    assert xs["underflow (rounds to 0)"] == pytest.approx([x[0], f.min_subnormal / 2], rel=1e-12)
    assert xs["overflow"] == pytest.approx([f.max, x[-1]], rel=1e-12)
    u = [ln for ln in ax.get_lines() if ln.get_label().startswith("u = ")][0]
    assert u.get_ydata()[0] == 2.0 ** -4


def test_relative_error_reuses_axes_and_checks_shapes():
    fig, ax = plt.subplots()
    x = np.geomspace(1, 2, 5)
    q = lowprec.quantize(x, "fp4")
    assert pn.relative_error(x, q, ax=ax) is fig
    assert pn.relative_error(x, q, "fp16", ax=ax, shade=False) is fig
    assert len(ax.patches) == 0 and len(ax.get_lines()) == 2
    with pytest.raises(ValueError, match="shape"):
        pn.relative_error(x, x[:3])


def test_rounding_modes_panels_and_sr_mean():
    x = np.linspace(1, 3, 41)
    res = {m: lowprec.quantize(x, "fp4", rounding=m) for m in ["rne", "rtz"]}
    draws = np.stack([lowprec.quantize(x, "fp4", rounding="sr", seed=s) for s in range(10)])
    res["sr"] = draws
    ties = np.flatnonzero(np.isin(x, [1.25, 2.5]))
    fig = pn.rounding_modes(x, res, grid=lowprec.float4_e2m1fn.values(), highlight=ties)
    visible = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in visible] == ["rne", "rtz", "sr"]
    rne_lines = [ln for ln in visible[0].get_lines() if list(ln.get_xdata()) != [0, 1]]
    np.testing.assert_array_equal(rne_lines[1].get_ydata(), res["rne"])
    np.testing.assert_array_equal(rne_lines[2].get_ydata(), res["rne"][ties])  # tie dots
    mean = [ln for ln in visible[2].get_lines() if ln.get_label() == "mean"][0]
    np.testing.assert_array_equal(mean.get_ydata(), draws.mean(axis=0))
    grid_y = {ln.get_ydata()[0] for ln in visible[0].get_lines()
              if list(ln.get_xdata()) == [0, 1]}  # axhline: axes x coordinates 0..1
    assert {1.0, 1.5, 2.0, 3.0} <= grid_y
    with pytest.raises(ValueError, match="shape"):
        pn.rounding_modes(x, {"bad": x[:-1]})


def test_running_sums_error_vs_k_and_curves_plot_the_data():
    steps = np.arange(1, 6)
    sums = {"a": steps * 1.0, "b": steps * 2.0}
    ax = pn.running_sums(steps, sums, exact=steps * 1.5, logy=True, title="t").axes[0]
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["a", "b", "exact"]
    np.testing.assert_array_equal(lines[1].get_ydata(), steps * 2.0)
    assert ax.get_yscale() == "log" and ax.get_title() == "t"

    ks = 2 ** np.arange(3, 8)
    ax = pn.error_vs_k(ks, {"fp16": ks * 1e-4}, bounds={"K u": ks * 2.0 ** -11}).axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [ln.get_label() for ln in ax.get_lines()] == ["fp16", "K u"]
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), ks * 2.0 ** -11)

    ax = pn.curves(ks, {"y": ks ** 2}, logx=True, xlabel="K", ylabel="y", marker=".").axes[0]
    assert ax.get_xlabel() == "K" and ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), ks)


def test_sr_probability_draws_the_diagonal_and_measurements():
    pos = np.linspace(0, 1, 9)
    ax = pn.sr_probability(pos, {"2 random bits": np.floor(pos * 4) / 4}).axes[0]
    diag, meas = ax.get_lines()
    np.testing.assert_array_equal(diag.get_xydata(), [[0, 0], [1, 1]])
    np.testing.assert_array_equal(meas.get_ydata(), np.floor(pos * 4) / 4)
    assert meas.get_drawstyle() == "steps-post"


def test_agreement_annotates_every_cell():
    table = {"A100 fp16": {"a100": 1.0, "v100": 0.5}, "A100 bf16": {"a100": 1.0, "v100": np.nan}}
    ax = pn.agreement(table).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["100.0%", "50.0%", "100.0%", "n/a"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a100", "v100"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A100 fp16", "A100 bf16"]
    img = ax.images[0].get_array()
    assert img[0, 1] == 0.5 and np.ma.is_masked(img[1, 1])


def test_ulp_histogram_heights_are_fractions_with_clipping():
    d = np.array([0, 0, 1, -1, 7, -9, 3, 0])
    ax = pn.ulp_histogram({"x": d}, max_ulps=3).axes[0]
    heights = [p.get_height() for p in ax.patches]
    # bins -3..3; 7 and -9 land in the end bins
    assert heights == [1 / 8, 0, 1 / 8, 3 / 8, 1 / 8, 0, 2 / 8]
    assert ax.get_xticklabels()[0].get_text() == "<=-3"


def test_save_writes_a_png(tmp_path):
    fig = pn.number_line(["fp4"])
    p = tmp_path / "x.png"
    pn.save(fig, str(p))
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
