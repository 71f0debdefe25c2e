"""The one-pass block kernels of lowprec.scaled (MX and two-level/NVFP4) against the
vectorised numpy path they replace and the exact MX reference, bit for bit: every float MX
element format, scale rule and rounding mode (stochastic included, 1 vs 2 threads), partial
last blocks, NaN/inf/zero/subnormal/huge blocks, saturate=False, NVFP4 with automatic,
calibrated and no global scale, reciprocal and division."""

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

import lowprec as lp
from lowprec.scaled import SCHEMES, quantize_scaled
from lowprec.scaled import mx as mx_mod
from lowprec.scaled import two_level as tl_mod
from lowprec.reference.scaled import mx_block_reference

MX_FLOAT = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1"]
MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto", "sr"]


def _data(rng, rows, n, dtype=np.float32):
    """Rows with per-row magnitudes from 2^-140 to 2^100, zeros, exact powers of two,
    values just below powers of two, float32 subnormals and a few NaN/inf."""
    x = rng.standard_normal((rows, n)) * np.exp2(rng.integers(-140, 100, (rows, 1)))
    x[rng.random((rows, n)) < 0.05] = 0.0
    p = rng.random((rows, n)) < 0.03
    x[p] = np.exp2(rng.integers(-30, 30, p.sum()))
    q = rng.random((rows, n)) < 0.03
    x[q] = np.nextafter(np.exp2(rng.integers(-30, 30, q.sum())), 0)
    x[rng.random((rows, n)) < 0.01] = 1e-40
    x[1, 3] = np.nan
    x[2, -1] = np.inf
    x[3, 0] = -np.inf
    x[4, :] = 0.0
    x[5, :] = -0.0
    return x.astype(dtype)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True) and \
            np.array_equal(np.signbit(a), np.signbit(b))
    return np.array_equal(a, b)


def _both(monkeypatch, mod, fn):
    """fn() by the fused kernels and by the numpy path."""
    fused = fn()
    with monkeypatch.context() as mp:
        mp.setattr(mod, "_fused_applies", lambda *a: False)
        slow = fn()
    return fused, slow


def _check(t1, t2, msg):
    assert _same(t1.codes, t2.codes), f"{msg}: codes differ at " \
        f"{np.argwhere(np.asarray(t1.codes) != np.asarray(t2.codes))[:3]}"
    assert _same(t1.scales, t2.scales), f"{msg}: scales differ"
    assert t1.global_scale == t2.global_scale, msg


@pytest.mark.parametrize("scheme", MX_FLOAT)
@pytest.mark.parametrize("mode", MODES)
def test_mx_fused_matches_numpy_path(scheme, mode, monkeypatch):
    rng = np.random.default_rng(abs(hash((scheme, mode))) % 2**32)
    for shape, rule, saturate in [((40, 96), "floor", True), ((17, 70), "ceil", True),
                                  ((9, 33), "rceil", False), ((6, 8), "floor", False)]:
        x = _data(rng, *shape)
        for dtype in (np.float32, np.float16):
            xx = x.astype(dtype)
            f = lambda: quantize_scaled(xx, scheme, scale_rule=rule, saturate=saturate,
                                        rounding=mode, seed=11)
            try:
                t1, t2 = _both(monkeypatch, mx_mod, f)
            except ValueError as e:  # both paths must refuse alike
                with pytest.raises(ValueError, match=str(e)[:30]):
                    with monkeypatch.context() as mp:
                        mp.setattr(mx_mod, "_fused_applies", lambda *a: False)
                        f()
                continue
            _check(t1, t2, f"{scheme} {mode} {shape} {rule} saturate={saturate} {dtype}")


@pytest.mark.parametrize("scheme", MX_FLOAT)
def test_mx_fused_matches_exact_reference(scheme):
    rng = np.random.default_rng(5)
    x = _data(rng, 24, 64)
    efmt = SCHEMES[scheme][0]
    for rule in ("floor", "ceil", "rceil"):
        t = quantize_scaled(x, scheme, scale_rule=rule)
        for i in range(x.shape[0]):
            for j in range(2):
                sc, codes = mx_block_reference([float(v) for v in x[i, 32 * j:32 * j + 32]],
                                               efmt, rule)
                assert t.scale_codes[i, j] == sc, (scheme, rule, i, j)
                assert list(t.codes[i, 32 * j:32 * j + 32].astype(int)) == codes, \
                    (scheme, rule, i, j)


@pytest.mark.parametrize("mode", MODES)
def test_two_level_fused_matches_numpy_path(mode, monkeypatch):
    rng = np.random.default_rng(abs(hash(mode)) % 2**32)
    x = _data(rng, 30, 80)
    x[x == 1e-40] = 3e-39
    finite = np.where(np.isfinite(x), x, 0)
    for kw in [dict(), dict(scale_rule="rceil"), dict(global_scale=None),
               dict(global_scale=0.37), dict(reciprocal=False), dict(saturate=False),
               dict(block_size=24)]:
        for xx in (x, finite, finite * np.float32(1e-30), x[:, :17]):
            f = lambda: quantize_scaled(xx, "nvfp4", rounding=mode, seed=3, **kw)
            t1, t2 = _both(monkeypatch, tl_mod, f)
            _check(t1, t2, f"nvfp4 {mode} {kw} shape {xx.shape}")


def test_sr_independent_of_threads():
    import numba

    rng = np.random.default_rng(8)
    x = _data(rng, 300, 256)
    old = numba.get_num_threads()
    res = []
    try:
        for th in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(th)
            # SR (the float64 kernels) and RNE (the float32 ones, whose tasks span rows)
            res.append([quantize_scaled(x, s, rounding=m, seed=21).codes
                        for s in ("mxfp8_e4m3", "mxfp4_e2m1", "nvfp4") for m in ("sr", "rne")])
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*res):
        assert np.array_equal(a, b)
    # the stream of element i is (seed, flat index): the same as encoding the scaled values
    t = quantize_scaled(x, "mxfp8_e5m2", rounding="sr", seed=21)
    finite_rows = np.isfinite(x).all(axis=1)
    v = x / np.repeat(t.scales, 32, axis=1)
    want = lp.encode(v.astype(np.float64), "e5m2", rounding="sr", seed=21, nan="zero",
                     overflow="saturate")
    assert np.array_equal(t.codes[finite_rows], want[finite_rows])


def _overflow_case():
    """Rows of 16-element NVFP4 blocks under a calibrated G = 1e-37 (fp32(1 / G) ~ 2^123,
    finite): tiny blocks and all-zero blocks get s near its minimum 2^-6, so that
    fp32(fp32(1 / G) / s) overflows; ordinary blocks beside them do not."""
    rng = np.random.default_rng(12)
    x = np.zeros((6, 64), np.float32)
    x[:, 0:16] = rng.standard_normal((6, 16)) * 2e-39  # tiny (subnormal): multiplier inf
    x[:, 16:32] = 0.0  # zero block: s = 2^-6, multiplier inf
    x[:, 32:48] = rng.standard_normal((6, 16)) * 1e-36  # s around 1: no overflow
    x[:, 48:64] = rng.standard_normal((6, 16)) * 3e-38  # s near 2^-5: no overflow
    x[0, 20] = -0.0
    return x, np.float32(1e-37)


@pytest.mark.parametrize("mode", MODES)
def test_two_level_reciprocal_overflow_divides(mode, monkeypatch):
    """A block whose fp32(fp32(1 / G) / s) overflows is divided by fp32(G * s), in the fused
    kernels (float32 pass and SR/RTO pass) and the numpy path alike; zeros stay zeros
    (x * inf would make them NaN, which e2m1 cannot hold), -0 included."""
    x, g = _overflow_case()
    f = lambda rec: quantize_scaled(x, "nvfp4", global_scale=g, reciprocal=rec,  # noqa: E731
                                    rounding=mode, seed=5)
    t1, t2 = _both(monkeypatch, tl_mod, lambda: f(True))
    _check(t1, t2, f"nvfp4 {mode} overflowing multiplier")
    s = t1.scales.astype(np.float32)
    with np.errstate(over="ignore"):
        mult = (np.float32(1) / g) / s
    over = ~np.isfinite(mult)
    assert over[:, :2].all() and not over[:, 2:].any(), \
        "the case must overflow in the tiny and zero blocks only"
    div = f(False)
    assert np.array_equal(div.scales, t1.scales)
    cols = np.repeat(over, 16, axis=1)
    assert np.array_equal(t1.codes[cols], div.codes[cols])
    assert np.array_equal(t1.codes[:, 16:32], np.where(np.signbit(x[:, 16:32]), 8, 0)), \
        "zeros must stay signed zeros"
    # the division really is the elements' quotient rounded once to float32 and clamped
    want = lp.encode(np.clip(x / (g * s).repeat(16, axis=1), -6, 6).astype(np.float64),
                     "e2m1", rounding=mode, seed=5, overflow="saturate")
    if mode != "sr":  # SR's stream belongs to the flat index either way; checked above
        assert np.array_equal(t1.codes[cols], want[cols])


def test_two_level_overflow_against_torchao():
    """torchao 0.18 multiplies by fp32(fp32(1 / G) / s) even when it overflows: the blocks
    that do not overflow match it bit for bit, in the overflowing ones its non-zero
    elements become +-6 (x * inf, clamped) and its zeros NaN (undefined fp4 codes), where
    lowprec divides (see lowprec.scaled.two_level)."""
    torch = pytest.importorskip("torch")
    nv = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")
    x, g = _overflow_case()
    t = quantize_scaled(x, "nvfp4", global_scale=g)
    ts, tq = nv.nvfp4_quantize(torch.from_numpy(x), 16, torch.tensor(g))
    tq = tq.numpy()
    tcodes = np.empty(x.shape, np.uint8)
    tcodes[:, 0::2] = tq & 0xF
    tcodes[:, 1::2] = tq >> 4
    assert np.array_equal(ts.float().numpy().reshape(t.scales.shape), t.scales)
    assert np.array_equal(tcodes[:, 32:], t.codes[:, 32:])
    nz = x[:, :16] != 0
    assert np.all((tcodes[:, :16][nz] & 7) == 7)  # torchao: |x * inf| clamped to 6
    assert not np.all((t.codes[:, :16][nz] & 7) == 7)  # lowprec: the quotients
