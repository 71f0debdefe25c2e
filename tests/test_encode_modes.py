"""Every rounding mode, overflow policy and flush option against the exact reference
(lowprec.reference, Fraction arithmetic), bit for bit, stochastic modes included."""

import numpy as np
import pytest

import lowprec as lp
from lowprec.quantize import seed_key
from lowprec.reference import encode_exact
from lowprec.testing import assert_bitwise_equal

from .conftest import ALL_MODES, FLOAT_FORMATS as _ALL_FLOATS
from .test_encode_rne import tricky_float32

# every registered float format but the 32-bit ones (their reference sweeps are slow)
FLOAT_FORMATS = [n for n in _ALL_FLOATS if lp.get_format(n).bits <= 16]


def _sample(name, n, seed=0):
    x = tricky_float32(name)
    rng = np.random.default_rng(seed)
    return x[rng.choice(x.size, min(n, x.size), replace=False)]


def _check(x, fmt, **kw):
    f = lp.get_format(fmt)
    if not f.has_nan:
        kw.setdefault("nan", "zero")
    seed = kw.pop("seed", None)
    got = lp.encode(x, f, seed=seed, **kw)
    key = seed_key(seed) if kw.get("rounding") == "sr" else 0
    exp = np.array([encode_exact(float(v), f, key=key, idx=i, **kw) for i, v in enumerate(x)],
                   dtype=np.int64)
    assert_bitwise_equal(got.astype(np.int64), exp, err_msg=f"{f.name} {kw}", inputs=x)


@pytest.mark.parametrize("name", FLOAT_FORMATS)
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("overflow", ["inf", "saturate"])
def test_modes_against_reference(name, mode, overflow):
    _check(_sample(name, 250), name, rounding=mode, overflow=overflow,
           seed=11 if mode == "sr" else None)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float16", "bfloat16", "float8_e5m2fnuz"])
@pytest.mark.parametrize("mode", ["rne", "rup", "rdn", "sr"])
def test_flush_to_zero_against_reference(name, mode):
    _check(_sample(name, 300, seed=3), name, rounding=mode, subnormals=False,
           seed=2 if mode == "sr" else None)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "bfloat16", "float4_e2m1fn"])
@pytest.mark.parametrize("sr_bits", [1, 3, 8, 20, 40])
def test_limited_bit_sr_against_reference(name, sr_bits):
    _check(_sample(name, 300, seed=4), name, rounding="sr", sr_bits=sr_bits, seed=7)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_wide_targets_from_float64(mode):
    # float32 and tf32 from float64 inputs: every exponent region including double subnormals
    rng = np.random.default_rng(5)
    x = rng.standard_normal(400) * np.exp2(rng.integers(-1080, 1020, 400))
    x[:6] = [2.0 ** -149 * 0.5, 2.0 ** -149 * 0.75, 3.4028235677973366e38, 1e39, 5e-324, -0.0]
    for name in ("float32", "tfloat32"):
        _check(x, name, rounding=mode, seed=5 if mode == "sr" else None)
        _check(x, name, rounding=mode, overflow="saturate", seed=5 if mode == "sr" else None)


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("name", ["int8", "uint8", "int4", "fixed4_12", "ufixed2_6", "int16"])
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_fixed_point_against_reference(mode, name, overflow):
    rng = np.random.default_rng(6)
    f = lp.get_format(name)
    span = max(abs(f.min), f.max)
    x = np.concatenate([rng.uniform(-1.5 * span, 1.5 * span, 200),
                        (np.arange(-40, 41) / 2) * f.resolution,  # ties
                        [np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 0.49999997]])
    _check(x.astype(np.float64), name, rounding=mode, overflow=overflow,
           seed=9 if mode == "sr" else None)


def test_fixed_point_rne_against_numpy():
    rng = np.random.default_rng(8)
    x = rng.uniform(-200, 200, 100_000)
    x[:5] = [0.5, 1.5, 2.5, -0.5, -2.5]
    exp = np.clip(np.rint(x), -128, 127).astype(np.int8).view(np.uint8)  # rint is RNE
    assert_bitwise_equal(lp.encode(x, "int8"), exp)
    wrapped = ((np.rint(x).astype(np.int64) + 128) % 256 - 128).astype(np.int8).view(np.uint8)
    assert_bitwise_equal(lp.encode(x, "int8", overflow="wrap"), wrapped)
    q = lp.quantize(x / 64, "fixed4_12")
    assert_bitwise_equal(q, np.clip(np.rint(x / 64 * 4096), -32768, 32767) / 4096 + 0.0)  # no -0


def test_e8m0_round_to_odd_is_truncation():
    # E8M0 keeps no mantissa bit: the last kept bit is the implicit 1, odd already, so
    # round-to-odd only truncates (documented in docs/rounding.md)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(1, 0x7F800000, 200_000, dtype=np.uint32).view(np.float32),
                        tricky_float32("float8_e8m0fnu")])
    x = np.abs(x[np.isfinite(x)])
    assert_bitwise_equal(lp.encode(x, "e8m0", rounding="rto"), lp.encode(x, "e8m0", rounding="rtz"))


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "float16", "bfloat16",
                                  "float8_e8m0fnu"])
def test_round_to_odd_overflow_gives_max(name):
    # round to odd never rounds away from the truncated value, so finite overflow is +-max
    # under overflow="inf" too (gfloat's ToOdd gives inf/NaN there; see docs/rounding.md)
    f = lp.get_format(name)
    big = np.array([f.max * 1.5, f.max * 2 ** 20])  # finite float64 beyond the range
    if f.signed:
        big = np.concatenate([big, -big])
    got = lp.quantize(big, f, rounding="rto")
    np.testing.assert_array_equal(np.abs(got), f.max)
