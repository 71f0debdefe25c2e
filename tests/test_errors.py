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


# --- issue 10: silent wrong answers and obscure errors ------------------------------------
@pytest.mark.parametrize("kw,exc,msg", [
    (dict(exp_bits=4, man_bits=3, bias=7, has_inf="no"), TypeError, "has_inf must be True or False"),
    (dict(exp_bits=4.0, man_bits=3, bias=7), TypeError, "exp_bits must be an int"),
    (dict(exp_bits=4, man_bits=3, bias=7.5), TypeError, "bias must be an int"),
    (dict(exp_bits=4, man_bits=True, bias=7), TypeError, "man_bits must be an int"),
    (dict(exp_bits=4, man_bits=3, bias=10 ** 6), ValueError, "bias in"),
    (dict(exp_bits=4, man_bits=3, bias=-10 ** 6), ValueError, "bias in"),
    (dict(exp_bits=4, man_bits=3, bias=7, subnormals=1), TypeError, "subnormals"),
    (dict(exp_bits=4, man_bits=3, bias=7, nan=None, has_inf=False), TypeError, "nan must be"),
])
def test_float_format_fields_validated_at_construction(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        lp.FloatFormat(**kw)


def test_fixed_format_fields_validated():
    with pytest.raises(TypeError, match="int_bits must be an int"):
        lp.FixedFormat(8.0, 8)
    with pytest.raises(TypeError, match="signed"):
        lp.FixedFormat(8, 8, signed="yes")
    with pytest.raises(ValueError, match="frac_bits"):
        lp.FixedFormat(10 ** 6, -10 ** 6 + 8)


def test_get_format_none():
    with pytest.raises(TypeError, match="got None"):
        lp.get_format(None)


def test_fp8_scale_takes_a_magnitude():
    s = lp.fp8_scale(np.array([-3.0, 3.0]))
    assert s[0] == s[1] > 0
    assert float(lp.fp8_scale(-448.0)) == 1.0


def test_policy_names_mean_recipes_or_are_rejected():
    from lowprec.autograd.amp import RECIPES, Policy

    assert Policy("bf16") == RECIPES["bf16"][0]
    assert Policy("bf16").activations == "bf16" and Policy("bf16").storage == "bf16"
    assert Policy() == Policy("fp32") and Policy().activations is None
    with pytest.raises(ValueError, match="unknown recipe.*bf16"):
        Policy("bf17")
    with pytest.raises(ValueError, match="built-in recipe"):
        Policy("bf16", activations="fp16")
    custom = Policy("mine", activations="fp16")
    assert custom.name == "mine" and Policy(activations="fp16").name == "custom"
    changed = Policy.recipe("bf16", storage=None)
    assert changed.storage is None and changed.activations == "bf16" and changed.name == "bf16*"


@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp4", "nvfp4", "mxint8"])
@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 64)])
def test_scaled_quantization_of_empty_input(fmt, shape):
    st = lp.quantize_scaled(np.zeros(shape, np.float32), fmt)
    assert st.codes.shape == shape and st.dequantize().shape == shape


def test_linear_with_no_features():
    from lowprec.autograd import nn

    for args in ((0, 3), (3, 0), (2.5, 3)):
        with pytest.raises(ValueError, match="positive int"):
            nn.Linear(*args)


def test_tensor_rejects_complex_and_non_numbers():
    from lowprec.autograd import Tensor

    with pytest.raises(TypeError, match="complex"):
        Tensor(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="real numbers"):
        Tensor(None)
