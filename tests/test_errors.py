"""User errors raise ValueError/TypeError naming the format and the offending argument."""

import numpy as np
import pytest

import lowprec as lp


@pytest.mark.parametrize("call,exc,msg", [
    (lambda: lp.encode([1.0], "fp7"), ValueError, "unknown format 'fp7'"),
    (lambda: lp.encode([1.0], "e4m3", rounding="nearest"), ValueError, "unknown rounding mode 'nearest'.*'rne'"),
    (lambda: lp.encode([1.0], "e4m3", overflow="clip"), ValueError, "unknown overflow policy 'clip'"),
    (lambda: lp.encode([1.0], "e4m3", overflow="wrap"), ValueError, "wrap.*float8_e4m3fn"),
    (lambda: lp.encode([np.nan], "fp4"), ValueError, "NaN input but float4_e2m1fn has no NaN"),
    (lambda: lp.encode([np.nan], "int8"), ValueError, "NaN input but int8"),
    (lambda: lp.encode([1.0], "e4m3", nan="drop"), ValueError, "unknown NaN policy 'drop'"),
    (lambda: lp.encode(["a"], "e4m3"), (TypeError, ValueError), ""),
    (lambda: lp.encode([1.0], "e4m3", subnormals="no"), TypeError, "subnormals"),
    (lambda: lp.quantize([1.0], 12), TypeError, "format name"),
])
def test_user_errors(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


def test_nan_policies_for_formats_without_nan():
    x = np.array([np.nan, -np.nan, 1.0])
    assert lp.encode(x, "fp4", nan="zero").tolist() == [0, 0, 2]
    assert lp.encode(x, "fp4", nan="max").tolist() == [7, 7, 2]
    assert lp.encode(x, "fp4", nan="ml_dtypes").tolist() == [8, 0, 2]
    assert lp.encode(x, "int8", nan="max").tolist() == [127, 127, 1]


def test_enum_arguments_accepted():
    x = np.float32([1.3, 2.7])
    assert np.array_equal(lp.quantize(x, "e4m3", rounding=lp.Rounding.RTZ),
                          lp.quantize(x, "e4m3", rounding="rtz"))
    assert np.array_equal(lp.quantize(x * 1e3, "e4m3", overflow=lp.Overflow.SATURATE),
                          lp.quantize(x * 1e3, "e4m3", overflow="saturate"))
