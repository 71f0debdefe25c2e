"""Every code of every format up to 16 bits decodes to the oracle's value, bit for bit."""

import numpy as np
import pytest

import lowprec as lp
from lowprec.reference import decode_exact
from lowprec.testing import assert_bitwise_equal

from .conftest import SMALL_FLOAT_FORMATS, ml_dtype


@pytest.mark.parametrize("name", SMALL_FLOAT_FORMATS)
def test_all_codes_against_oracle(name):
    f = lp.get_format(name)
    codes = f.codes()
    expected = codes.view(ml_dtype(name)).astype(np.float32)
    assert_bitwise_equal(lp.decode(codes, f), expected, err_msg=name, inputs=codes)
    assert_bitwise_equal(lp.decode(codes, f, dtype=np.float64), expected.astype(np.float64))


@pytest.mark.parametrize("name", SMALL_FLOAT_FORMATS + ["int8", "uint8", "int4", "fixed4_4"])
def test_all_codes_against_exact_reference(name):
    f = lp.get_format(name)
    got = lp.decode(f.codes(), f, dtype=np.float64)
    exp = np.array([float(decode_exact(c, f)) for c in f.codes()])
    assert_bitwise_equal(got, exp, err_msg=name)


def test_float32_and_tfloat32_codes():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    codes[:6] = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0x7F7FFFFF]
    assert_bitwise_equal(lp.decode(codes, "fp32"), codes.view(np.float32))
    t = codes & np.uint32((1 << 19) - 1)
    got = lp.decode(t, "tf32", dtype=np.float64)
    # tf32 is float32 with the low 13 mantissa bits dropped
    assert_bitwise_equal(got, (t.astype(np.uint32) << np.uint32(13)).view(np.float32).astype(np.float64))


def test_int_decode_matches_twos_complement():
    c = np.arange(256, dtype=np.uint8)
    assert_bitwise_equal(lp.decode(c, "int8"), c.view(np.int8).astype(np.float32))
    assert_bitwise_equal(lp.decode(c, "uint8"), c.astype(np.float32))
    c4 = np.arange(16, dtype=np.uint8)
    assert lp.decode(c4, "int4").tolist() == [0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1]


def test_decode_validates():
    with pytest.raises(TypeError, match="integers"):
        lp.decode(np.array([1.0]), "fp16")
    with pytest.raises(TypeError, match="float dtype"):
        lp.decode(np.array([1], np.uint8), "e4m3", dtype=np.int32)
    with pytest.raises(ValueError, match="unknown format"):
        lp.decode(np.array([1], np.uint8), "e9m9")


@pytest.mark.parametrize("fmt", [f for f in lp.list_formats() if f.bits <= 16],
                         ids=lambda f: f.name)
def test_descriptor_decoder_equals_kernel_decoder(fmt):
    # decode() uses the descriptor's numpy decoder (a table) for formats of at most 16 bits
    # and the kernels' decoder above that: both must give every code's value alike
    from lowprec.quantize import _decode_kernel

    codes = fmt.codes()
    assert_bitwise_equal(fmt.decode_codes(codes), _decode_kernel(codes, fmt))
    if isinstance(fmt, lp.FloatFormat) and fmt.has_nan:
        assert fmt.is_nan_code(fmt.nan_code) and np.isnan(fmt.values()[fmt.nan_code])
        assert fmt.is_nan_code(codes).sum() == np.isnan(fmt.values()).sum()
