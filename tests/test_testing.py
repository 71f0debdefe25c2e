"""The public lowprec.testing helpers do what they promise."""

import math

import numpy as np
import pytest
from hypothesis import given, settings

import lowprec as lp
from lowprec.testing import (assert_bitwise_equal, codes, midpoints, near_overflow, ordinal,
                             subnormal_range, tricky_floats, ulp_distance, values)


@given(values("e4m3fn"))
def test_values_are_on_grid(v):
    assert lp.quantize(np.float64(v), "e4m3fn") == v


@given(midpoints("bf16"))
def test_midpoints_are_ties(m):
    dn = lp.quantize(np.float64(m), "bf16", rounding="rdn")
    up = lp.quantize(np.float64(m), "bf16", rounding="rup")
    assert dn < m < up and m - dn == up - m


@given(codes("fp16"))
def test_codes_in_range(c):
    assert 0 <= c < 2**16


@settings(max_examples=50)
@given(subnormal_range("fp16"))
def test_subnormal_range(v):
    assert 0 < v <= 2 * lp.float16.min_normal


@settings(max_examples=50)
@given(near_overflow("e5m2"))
def test_near_overflow(v):
    assert abs(v) > lp.float8_e5m2.max / 2


@settings(max_examples=50)
@given(tricky_floats("e2m1"))
def test_tricky_floats_are_float32(v):
    assert math.isnan(v) or float(np.float32(v)) == v


def test_assert_bitwise_equal_catches_signed_zero_and_codes():
    assert_bitwise_equal(np.float32([np.nan, 1.0]), np.float32([-np.nan, 1.0]))
    with pytest.raises(AssertionError, match="1 of 2 elements differ"):
        assert_bitwise_equal(np.float32([0.0, 1.0]), np.float32([-0.0, 1.0]))
    with pytest.raises(AssertionError, match="0x7e vs 0x7f"):
        assert_bitwise_equal(np.uint8([0x7E]), np.uint8([0x7F]))
    with pytest.raises(AssertionError, match="dtype mismatch"):
        assert_bitwise_equal(np.float32([1.0]), np.float64([1.0]))
    with pytest.raises(AssertionError):
        assert_bitwise_equal(np.float32([np.nan]), np.float32([-np.nan]), nan_payload=True)


def test_ulp_distance_and_ordinal():
    # e4m3fn around 1: spacing 1/8 above 1, 1/16 below
    assert ulp_distance(1.0, 1.125, "e4m3fn") == 1
    assert ulp_distance(1.0, 0.9375, "e4m3fn") == 1
    assert ulp_distance(-2 ** -9, 2 ** -9, "e4m3fn") == 2
    assert ulp_distance(0.0, -0.0, "e4m3fn") == 0
    assert ulp_distance(448, -448, "e4m3fn") == 2 * 126
    assert np.isnan(ulp_distance(np.nan, 1.0, "e4m3fn"))
    assert ulp_distance(0.0, 65504.0, "fp16") == 0x7BFF
    assert ordinal(np.uint8([0xFF]), "int8")[0] == -1
