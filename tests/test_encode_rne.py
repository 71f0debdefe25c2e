"""float32/float64 -> every format with round-to-nearest-even, bit for bit against
ml_dtypes and numpy: all grid values, their float32 neighbours, every midpoint and the
points just either side of it, the overflow and underflow edges, and a strided sweep over
all 2^32 float32 patterns (the complete sweep is in test_exhaustive.py, marked slow)."""

import ml_dtypes
import numpy as np
import pytest
from packaging.version import Version

import lowprec as lp
from lowprec.testing import assert_bitwise_equal, finite_values_array

from .conftest import SMALL_FLOAT_FORMATS, ml_dtype

ML_DTYPES = Version(ml_dtypes.__version__)
# ml_dtypes 0.7.0 fixed E8M0 rounding of subnormal float32/bfloat16 inputs (see below)
E8M0_SUBNORMALS_FIXED = Version("0.7.0")


def _nudge(x, n, dtype=np.float32):
    with np.errstate(over="ignore"):
        out = x.astype(dtype)
    for _ in range(abs(n)):
        out = np.nextafter(out, dtype(np.inf) if n > 0 else dtype(-np.inf))
    return out


def tricky_float32(name):
    """All the hard float32 inputs for one format (signed)."""
    f = lp.get_format(name)
    g = finite_values_array(f)
    g = g[g >= 0]
    mids = (g[:-1] + g[1:]) / 2
    mx, top_ulp = f.max, 2.0 ** (f.emax - f.man_bits)
    edges = np.array([mx + top_ulp / 2, mx + top_ulp, 2 * mx, f.min_subnormal / 2,
                      f.min_subnormal / 4, f.min_normal, np.inf, np.nan, 0.0])
    base = np.concatenate([g, mids, edges])
    parts = [_nudge(base, n) for n in (-2, -1, 0, 1, 2)]
    x = np.concatenate(parts)
    x = x[~np.isnan(x) | np.isnan(x)]  # keep NaN once per nudge: fine
    return np.concatenate([x, -x])


# ml_dtypes up to 0.6 rounds float32 *subnormal* inputs in (2^-127, 1.5*2^-127) to E8M0
# 2^-126 although 2^-127 is nearer; 0.7.0 rounds them to nearest, as lowprec does (checked
# against the exact reference in test_encode_modes.py). Everything else matches.
def ml_dtypes_e8m0_deviation(name, x):
    """Mask of the inputs where the installed ml_dtypes is known to round E8M0 wrongly."""
    if name == "float8_e8m0fnu" and ML_DTYPES < E8M0_SUBNORMALS_FIXED:
        a = np.abs(x)  # float32 inputs; both bounds are float32 values
        return (a > 2.0 ** -127) & (a < 1.5 * 2.0 ** -127)
    return np.zeros(x.shape, bool)


def _compare_to_oracle(name, x):
    f = lp.get_format(name)
    with np.errstate(all="ignore"):
        exp = x.astype(ml_dtype(name)).view(f.code_dtype)
    got = lp.encode(x, f, nan="ml_dtypes" if not f.has_nan else "raise")
    # numpy keeps (truncated) NaN payloads, lowprec writes the canonical quiet NaN: NaN
    # inputs are compared as NaN, except for NaN-less formats where the code is the point.
    nan_in = np.isnan(x) if f.has_nan else np.zeros(x.shape, bool)
    keep = ~ml_dtypes_e8m0_deviation(name, x) & ~nan_in
    assert_bitwise_equal(got[keep], exp[keep], err_msg=name, inputs=x[keep])
    assert np.isnan(lp.decode(got[nan_in], f)).all()


def test_oracle_formats_come_from_the_registry():
    # conftest derives the list from lowprec.list_formats(); guard against it coming out empty
    assert {"float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float6_e3m2fn",
            "float4_e2m1fn", "float8_e8m0fnu"} <= set(SMALL_FLOAT_FORMATS)


@pytest.mark.parametrize("name", SMALL_FLOAT_FORMATS)
def test_tricky_float32_inputs(name):
    _compare_to_oracle(name, tricky_float32(name))


@pytest.mark.parametrize("name", SMALL_FLOAT_FORMATS)
def test_strided_sweep_of_all_float32_patterns(name):
    # stride 2^12+3 visits ~1M patterns covering every exponent and sign
    pats = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    _compare_to_oracle(name, pats.view(np.float32))


def test_ml_dtypes_e8m0_subnormal_inputs():
    # every float32 in (2^-127, 1.5 * 2^-127) is nearer 2^-127 (code 0) than 2^-126 (code 1)
    pats = np.arange(0x00400001, 0x00600000, dtype=np.uint32)
    x = pats.view(np.float32)
    assert (lp.encode(x, "e8m0") == 0).all()
    assert (lp.encode(np.float32([1.5 * 2.0 ** -127]), "e8m0") == 1).all()  # the tie goes up
    ml = x.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8)
    if ML_DTYPES < E8M0_SUBNORMALS_FIXED:
        assert (ml == 1).all(), (f"ml_dtypes {ML_DTYPES} was expected to show the E8M0 deviation "
                                 f"of versions before {E8M0_SUBNORMALS_FIXED}")
    else:
        assert_bitwise_equal(ml, lp.encode(x, "e8m0"), inputs=x,
                             err_msg=f"ml_dtypes {ML_DTYPES} (fixed in {E8M0_SUBNORMALS_FIXED}):")
    assert ml_dtypes_e8m0_deviation("float8_e8m0fnu", x).all() == (ML_DTYPES < E8M0_SUBNORMALS_FIXED)


@pytest.mark.parametrize("name", ["float16", "float32"])
def test_float64_inputs_against_numpy(name):
    # numpy's float64 -> float16/float32 casts are correctly rounded (RNE)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300_000) * np.exp2(rng.integers(-160, 140, 300_000))
    dt = np.float16 if name == "float16" else np.float32
    f = lp.get_format(name)
    g = finite_values_array("float16").astype(np.float64) if name == "float16" else \
        _nudge(np.array([1.0, 2.0 ** -126, 2.0 ** -149, 3.0, 65504.0]), 0, np.float32).astype(np.float64)
    # exact float64 midpoints and their float64 neighbours
    mids = ((g[:-1] + g[1:]) / 2) if name == "float16" else g
    x = np.concatenate([x, mids, _nudge(mids, 1, np.float64), _nudge(mids, -1, np.float64),
                        [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e300, -1e300, 5e-324]])
    with np.errstate(all="ignore"):
        exp = x.astype(dt).view(f.code_dtype)
    assert_bitwise_equal(lp.encode(x, f), exp, inputs=x)


def test_quantize_returns_input_dtype():
    x32 = np.array([1.1, 500.0], np.float32)
    assert lp.quantize(x32, "e4m3").dtype == np.float32
    assert lp.quantize(x32.astype(np.float64), "e4m3").dtype == np.float64
    assert lp.quantize(np.float16([1.1]), "e4m3").dtype == np.float16
    assert lp.quantize(np.float16([1.1]), "bf16").dtype == np.float32
    assert lp.quantize([1, 2, 3], "e4m3").dtype == np.float64
    assert lp.quantize(np.float32([3.0]), "int32").dtype == np.float64
    assert isinstance(lp.quantize(1.1, "fp16"), np.floating)
    assert lp.encode(1.0, "fp16") == 0x3C00 and lp.encode([[1.0]], "e4m3").shape == (1, 1)


@pytest.mark.parametrize("name", SMALL_FLOAT_FORMATS)
def test_quantize_against_oracle_values(name):
    # quantize is built from encode and decode, so it is checked against the oracle's values
    # (x.astype(dtype).astype(x.dtype)), not against decode(encode(x)); float64 inputs that
    # are float32 values must give the same values (one rounding either way)
    f = lp.get_format(name)
    x = np.concatenate([tricky_float32(name),
                        np.arange(0, 2**32, 65521, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    with np.errstate(all="ignore"):
        exp = x.astype(ml_dtype(name)).astype(np.float32)
    kw = {} if f.has_nan else {"nan": "ml_dtypes"}
    keep = ~ml_dtypes_e8m0_deviation(name, x)
    got = lp.quantize(x, f, **kw)
    assert got.dtype == np.float32
    assert_bitwise_equal(got[keep], exp[keep], err_msg=name, inputs=x[keep])
    with np.errstate(invalid="ignore"):  # float32 signalling NaNs -> float64
        x64, exp64 = x.astype(np.float64), exp.astype(np.float64)
    got64 = lp.quantize(x64, f, **kw)
    assert got64.dtype == np.float64
    assert_bitwise_equal(got64[keep], exp64[keep], err_msg=name, inputs=x[keep])
