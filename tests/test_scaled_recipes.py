"""NVFP4, fp8 current scaling and int8/int4 scaling against torch (CPU) and exact references,
plus the error messages of quantize_scaled."""

from fractions import Fraction

import numpy as np
import pytest

import lowprec as lp
from lowprec.scaled import fp8_scale, nvfp4_quantize, quantize_scaled
from lowprec.reference.scaled import _rne_float32, int_code_reference


def _data(seed, shape=(8, 64)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.exp(rng.standard_normal(shape) * 2)
    x[0, :16] = 0.0  # a zero block
    x[1, :16] *= 1e-30  # a block whose scale clamps at e4m3's smallest normal
    return x.astype(np.float32)


# --- NVFP4 ---------------------------------------------------------------------------------
def _torch_nvfp4(x, two_level=True, reciprocal=True, global_scale=None):
    """torchao nvfp4_quantize / NVFP4Tensor.to_dtype, transcribed with torch ops; the fp4
    element cast through ml_dtypes (RNE). ``reciprocal``: torchao >= 0.18 (0.19's
    ``_nvfp4_quantize``: ``x * (1.0 / s)``, ``x * ((1.0 / G) / s)``); else torchao <= 0.16
    (``x / s``, ``x / (G * s)``)."""
    torch = pytest.importorskip("torch")
    ml = pytest.importorskip("ml_dtypes")
    t = torch.from_numpy(x).reshape(x.shape[0], -1, 16)
    amax = torch.amax(torch.abs(t), dim=-1)
    bs = amax / 6.0
    tiny = torch.finfo(torch.float8_e4m3fn).tiny
    if two_level:
        pts = (torch.max(torch.abs(t)).to(torch.float32) / (448.0 * 6.0)
               if global_scale is None else torch.tensor(global_scale, dtype=torch.float32))
        s = torch.clamp(bs / pts, min=tiny, max=448.0).to(torch.float8_e4m3fn)
        if reciprocal:
            data = t * ((1.0 / pts) / s.to(torch.float32)).unsqueeze(-1)
        else:
            data = t / (pts * s.to(torch.float32)).unsqueeze(-1)
    else:
        pts = None
        s = torch.clamp(bs, min=tiny, max=448.0).to(torch.float8_e4m3fn)
        if reciprocal:
            data = t * (1.0 / s.to(torch.float32)).unsqueeze(-1)
        else:
            data = t / s.to(torch.float32).unsqueeze(-1)
    data = torch.clamp(data, -6.0, 6.0).reshape(x.shape)
    codes = data.numpy().astype(ml.float4_e2m1fn).view(np.uint8)
    vals = torch.from_numpy(codes.view(ml.float4_e2m1fn).astype(np.float32))
    hp = (pts * s.to(torch.float32)) if two_level else s.to(torch.float32)
    deq = (vals.reshape(x.shape[0], -1, 16) * hp.unsqueeze(-1)).reshape(x.shape)
    return codes, s.view(torch.uint8).numpy(), (None if pts is None else float(pts)), deq.numpy()


@pytest.mark.parametrize("reciprocal", [True, False])
@pytest.mark.parametrize("two_level", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nvfp4_matches_torchao_transcription(seed, two_level, reciprocal):
    x = _data(seed)
    codes, scodes, pts, deq = _torch_nvfp4(x, two_level, reciprocal)
    t = nvfp4_quantize(x, global_scale="auto" if two_level else None, reciprocal=reciprocal)
    np.testing.assert_array_equal(t.codes, codes)
    np.testing.assert_array_equal(t.scale_codes, scodes)
    assert t.global_scale == pts
    np.testing.assert_array_equal(t.dequantize(), deq)
    assert t.scales.shape == (8, 4) and t.block_size == 16


def test_nvfp4_reciprocal_and_division_differ_on_ties():
    # issue 10's block: scale 0.9375 (not a power of two), elements that divide onto fp4 ties
    x = np.zeros((1, 16), np.float32)
    x[0, :3] = [5.625, -1.171875, 4.6875]
    default = nvfp4_quantize(x, global_scale=None)
    assert float(default.scales[0, 0]) == 0.9375
    div = nvfp4_quantize(x, global_scale=None, reciprocal=False)
    assert (default.codes != div.codes).any()
    for reciprocal in (True, False):  # each form is torchao's, of its version
        codes, *_ = _torch_nvfp4(x, two_level=False, reciprocal=reciprocal)
        got = default if reciprocal else div
        np.testing.assert_array_equal(got.codes, codes)
    # blocks of exact fp4 ties under non-power-of-two E4M3 scales: the forms part on some
    rng = np.random.default_rng(4)
    scales = lp.decode(rng.integers(0x30, 0x58, 256), "e4m3").astype(np.float32)
    scales = scales[(scales.view(np.uint32) & 0x7FFFFF) != 0][:64]  # not powers of two
    ties = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], np.float32)
    y = (scales[:, None] * rng.choice(ties, (scales.size, 16))).astype(np.float32)
    y *= rng.choice(np.float32([-1, 1]), y.shape)
    y[:, 0] = 6 * scales  # the block amax sets the scale to exactly s
    a = nvfp4_quantize(y, global_scale=None)
    b = nvfp4_quantize(y, global_scale=None, reciprocal=False)
    np.testing.assert_array_equal(a.scales[:, 0], scales)
    assert 0 < float((a.codes != b.codes).mean()) < 1
    np.testing.assert_array_equal(a.codes, _torch_nvfp4(y, False, True)[0])
    np.testing.assert_array_equal(b.codes, _torch_nvfp4(y, False, False)[0])


def test_nvfp4_special_cases():
    x = np.zeros((2, 32), np.float32)
    t = nvfp4_quantize(x)
    assert t.global_scale == 1.0 and (t.codes == 0).all() and (t.dequantize() == 0).all()
    x = np.ones((2, 32), np.float32)
    x[1, 20] = np.nan
    t = nvfp4_quantize(x)
    assert np.isnan(t.scales[1, 1]) and t.scale_codes[1, 1] == 0x7F
    d = t.dequantize()
    assert np.isnan(d[1, 16:]).all() and np.isfinite(d[:, :16]).all() and np.isfinite(d[0]).all()
    assert (t.codes[1, 16:] == 0).all()
    # calibrated global scale; scales round up under rceil
    y = _data(5)
    a = nvfp4_quantize(y, global_scale=0.01)
    b = nvfp4_quantize(y, global_scale=0.01, scale_rule="rceil")
    assert a.global_scale == np.float32(0.01)
    assert (b.scales >= a.scales).all() and (b.scales > a.scales).any()
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="global_scale"):
            nvfp4_quantize(y, global_scale=bad)


# --- fp8 current scaling -------------------------------------------------------------------
@pytest.mark.parametrize("fmt,tdt", [("float8_e4m3fn", "float8_e4m3fn"),
                                     ("float8_e5m2", "float8_e5m2")])
@pytest.mark.parametrize("gran", ["tensor", "channel"])
def test_fp8_current_scaling_matches_torch(fmt, tdt, gran):
    torch = pytest.importorskip("torch")
    x = _data(11)
    t = quantize_scaled(x, fmt, granularity=gran, axis=0)
    tx = torch.from_numpy(x)
    amax = tx.abs().amax() if gran == "tensor" else tx.abs().amax(dim=1, keepdim=True)
    fmax = torch.finfo(getattr(torch, tdt)).max
    # TE current scaling (__fdiv_rn); not `fmax / amax`, which torch evaluates as
    # amax.reciprocal() * fmax
    scale = torch.where(amax == 0, torch.ones_like(amax),
                        torch.div(torch.full_like(amax, fmax), amax))
    want = (tx * scale).to(getattr(torch, tdt)).view(torch.uint8).numpy()
    np.testing.assert_array_equal(t.codes, want)
    np.testing.assert_array_equal(t.quant_multiplier, scale.numpy().reshape(t.scales.shape))
    inv = (1.0 / scale).numpy()
    deq = torch.from_numpy(want).view(getattr(torch, tdt)).to(torch.float32) * \
        torch.from_numpy(inv)
    np.testing.assert_array_equal(t.dequantize(), deq.numpy())


def test_fp8_scale_edge_cases():
    s = fp8_scale(np.array([0.0, np.inf, np.nan, 1e-45, 448.0, 3.0], np.float32))
    assert s[0] == 1 and s[1] == 1 and s[2] == 1
    assert s[3] == np.finfo(np.float32).max  # 448 / 1e-45 overflows float32
    assert s[4] == 1.0
    assert s[5] == np.float32(448.0) / np.float32(3.0)
    p = fp8_scale(np.array([3.0], np.float32), pow2=True)
    assert p[0] == 128.0  # 149.33 truncated to a power of two
    t = quantize_scaled(np.zeros(8, np.float32), "e4m3")
    assert t.quant_multiplier == 1 and (t.codes == 0).all()


# --- integers ------------------------------------------------------------------------------
def test_int8_symmetric_per_tensor_and_channel_match_torch():
    torch = pytest.importorskip("torch")
    x = _data(21)
    t = quantize_scaled(x, "int8")
    amax = Fraction(float(np.abs(x).max()))
    assert t.scales == float(_rne_float32(amax / 127))  # scale = fp32(amax / 127)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.from_numpy(x), float(t.scales), 0, torch.qint8)
        np.testing.assert_array_equal(t.codes.view(np.int8), q.int_repr().numpy())
        np.testing.assert_array_equal(t.dequantize(), q.dequantize().numpy())
        c = quantize_scaled(x, "int8", granularity="channel", axis=0)
        qc = torch.quantize_per_channel(torch.from_numpy(x),
                                        torch.from_numpy(c.scales.ravel()),
                                        torch.zeros(8, dtype=torch.int64), 0, torch.qint8)
        np.testing.assert_array_equal(c.codes.view(np.int8), qc.int_repr().numpy())
        np.testing.assert_array_equal(c.dequantize(), qc.dequantize().numpy())
    assert c.codes.view(np.int8).min() >= -127 and t.codes.view(np.int8).min() >= -127


@pytest.mark.parametrize("fmt,tdt", [("uint8", "quint8"), ("int8", "qint8")])
def test_asymmetric_per_tensor_matches_torch(fmt, tdt):
    """torch.quantize_per_tensor (fbgemm) computes rint(fma(x, 1/scale, zero_point))."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(5000) * 3 + 1.3).astype(np.float32)
    t = quantize_scaled(x, fmt, symmetric=False)
    zp = int(t.zero_point)
    # values right beside the rounding boundaries k + 1/2, where the fused rounding matters
    k = np.arange(-140, 140)
    b = ((k + 0.5 - zp) * float(t.scales)).astype(np.float32)
    x = np.concatenate([x, b, np.nextafter(b, np.float32(np.inf)),
                        np.nextafter(b, np.float32(-np.inf))])
    t = quantize_scaled(x, fmt, symmetric=False)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.from_numpy(x), float(t.scales), int(t.zero_point),
                                      getattr(torch, tdt))
    np.testing.assert_array_equal(t.codes, q.int_repr().numpy().view(np.uint8))
    np.testing.assert_array_equal(t.dequantize(), q.dequantize().numpy())


@pytest.mark.parametrize("fmt,sym", [("int4", True), ("int4", False), ("int8", False)])
def test_int_codes_match_exact_reference(fmt, sym):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4, 48)) * 5 - 1).astype(np.float32)
    t = quantize_scaled(x, fmt, granularity="block", block_size=16, symmetric=sym)
    f = lp.get_format(fmt)
    qmin, qmax = (-(2 ** (f.bits - 1) - 1), 2 ** (f.bits - 1) - 1) if sym else (f.min_int,
                                                                               f.max_int)
    inv = np.repeat(t.quant_multiplier, 16, axis=1)
    zp = np.zeros_like(inv, np.int64) if sym else np.repeat(t.zero_point, 16, axis=1)
    vals = lp.decode(t.codes, f, np.float64).astype(np.int64)
    for xv, iv, z, q in zip(x.ravel(), inv.ravel(), zp.ravel(), vals.ravel()):
        assert q == int_code_reference(float(xv), float(iv), int(z), qmin, qmax)
    if not sym:  # zero point puts 0.0 exactly on the grid
        zeros = quantize_scaled(np.zeros((1, 16), np.float32), fmt, granularity="block",
                                block_size=16, symmetric=False)
        assert (zeros.dequantize() == 0).all()


def test_int_special_cases():
    t = quantize_scaled(np.zeros(10), "int8")
    assert t.scales == 1.0 and (t.codes == 0).all()
    t = quantize_scaled(np.array([1e-40, -2e-40], np.float32), "int8")
    assert np.isfinite(t.quant_multiplier) and t.scales == np.float32(2.0 ** -126)
    t = quantize_scaled(np.array([1.0, 2.0, 3.0]), "int8", rounding="rtz")
    assert list(t.codes.view(np.int8)) == [42, 84, 127]  # 1 * 127/3 = 42.33 truncates


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(fmt="mxfp9"), ValueError, "scaled schemes"),
    (dict(fmt="int8", granularity="row"), ValueError, "granularity"),
    (dict(fmt="mxfp8", granularity="tensor"), ValueError, "block scaled"),
    (dict(fmt="mxfp8", scale_fmt="float32"), ValueError, "E8M0|e8m0"),
    (dict(fmt="mxfp8", axis=2), ValueError, "out of range"),
    (dict(fmt="mxfp8", axis=1.0), TypeError, "axis"),
    (dict(fmt="mxfp8", block_size=0), ValueError, "positive"),
    (dict(fmt="mxfp8", block_size=2.5), TypeError, "block_size"),
    (dict(fmt="int8", block_size=16, granularity="tensor"), ValueError, "block_size"),
    (dict(fmt="mxfp8", scale_rule="round"), ValueError, "scale_rule"),
    (dict(fmt="int8", saturate=False), ValueError, "always saturate"),
    (dict(fmt="uint8"), ValueError, "signed"),
    (dict(fmt="e4m3", symmetric=False), ValueError, "zero points"),
    (dict(fmt="int8", scale_fmt="e4m3"), ValueError, "scales"),
    (dict(fmt="fixed2_6", scale_fmt="float32"), ValueError, "fixed-point"),
    (dict(fmt="mxfp8", global_scale=1.0), ValueError, "two-level"),
    (dict(fmt="mxfp8", pad=False, block_size=5), ValueError, "does not divide"),
])
def test_errors(kwargs, exc, match):
    x = np.ones((2, 32), np.float32)
    with pytest.raises(exc, match=match):
        quantize_scaled(x, **kwargs)


def test_input_errors():
    with pytest.raises(ValueError, match="NaN or inf"):
        quantize_scaled(np.array([1.0, np.nan]), "int8")
    with pytest.raises(TypeError, match="complex"):
        quantize_scaled(np.array([1j]), "int8")
    with pytest.raises(ValueError, match="scalar"):
        quantize_scaled(np.float32(1), "mxfp8")
    with pytest.raises(ValueError, match="NaN"):  # fp4 per tensor: the format has no NaN
        quantize_scaled(np.array([1.0, np.nan]), "e2m1")
