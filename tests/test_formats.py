"""Format descriptors: derived properties against the specs and against ml_dtypes' finfo."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

import lowprec as lp
from lowprec.formats import FixedFormat, FloatFormat, IntFormat

from .conftest import ML_DTYPES_FORMATS

# (name, max, min normal, min subnormal) from REFERENCE.md sec. 1 (OCP OFP8, OCP MX specs)
SPEC = [
    ("float32", 3.4028234663852886e38, 2.0 ** -126, 2.0 ** -149),
    ("tfloat32", (2 - 2.0 ** -10) * 2.0 ** 127, 2.0 ** -126, 2.0 ** -136),
    ("float16", 65504.0, 2.0 ** -14, 2.0 ** -24),
    ("bfloat16", (2 - 2.0 ** -7) * 2.0 ** 127, 2.0 ** -126, 2.0 ** -133),
    ("float8_e4m3fn", 448.0, 2.0 ** -6, 2.0 ** -9),
    ("float8_e5m2", 57344.0, 2.0 ** -14, 2.0 ** -16),
    ("float8_e4m3fnuz", 240.0, 2.0 ** -7, 2.0 ** -10),
    ("float8_e5m2fnuz", 57344.0, 2.0 ** -15, 2.0 ** -17),
    ("float6_e3m2fn", 28.0, 2.0 ** -2, 2.0 ** -4),
    ("float6_e2m3fn", 7.5, 1.0, 2.0 ** -3),
    ("float4_e2m1fn", 6.0, 1.0, 0.5),
    ("float8_e8m0fnu", 2.0 ** 127, 2.0 ** -127, 2.0 ** -127),
]


@pytest.mark.parametrize("name,mx,mn,ms", SPEC)
def test_spec_values(name, mx, mn, ms):
    f = lp.get_format(name)
    assert f.max == mx and f.min_normal == mn and f.min_subnormal == ms


@pytest.mark.parametrize("name", ML_DTYPES_FORMATS)
def test_against_ml_dtypes_finfo(name):
    f = lp.get_format(name)
    fi = ml_dtypes.finfo(getattr(ml_dtypes, name))
    assert f.max == float(fi.max)
    assert f.min_normal == float(fi.smallest_normal)
    assert f.eps == float(fi.eps)
    assert f.bits == fi.bits
    assert f.man_bits == fi.nmant
    if f.subnormals:
        assert f.min_subnormal == float(fi.smallest_subnormal)


def test_layout_properties():
    f = lp.float8_e4m3fn
    assert (f.bits, f.precision, f.emin, f.emax, f.bias) == (8, 4, -6, 8, 7)
    assert not f.has_inf and f.has_nan and f.code_dtype == np.uint8
    assert lp.float16.code_dtype == np.uint16 and lp.tfloat32.code_dtype == np.uint32
    assert lp.tfloat32.bits == 19 and lp.float32.max_exact == Fraction(2**24 - 1) * 2**104
    assert not lp.float4_e2m1fn.has_nan and not lp.float4_e2m1fn.has_inf


@pytest.mark.parametrize("alias,name", [
    ("fp32", "float32"), ("tf32", "tfloat32"), ("fp16", "float16"), ("half", "float16"),
    ("bf16", "bfloat16"), ("fp8_e4m3", "float8_e4m3fn"), ("e4m3", "float8_e4m3fn"),
    ("fp8_e5m2", "float8_e5m2"), ("e5m2", "float8_e5m2"), ("e4m3fnuz", "float8_e4m3fnuz"),
    ("e5m2fnuz", "float8_e5m2fnuz"), ("fp6_e3m2", "float6_e3m2fn"),
    ("fp6_e2m3", "float6_e2m3fn"), ("fp4", "float4_e2m1fn"), ("e2m1", "float4_e2m1fn"),
    ("e8m0", "float8_e8m0fnu"), ("int8", "int8"), ("uint8", "uint8"), ("int4", "int4"),
    ("BF16", "bfloat16"), ("fp8-e4m3", "float8_e4m3fn"),
])
def test_aliases(alias, name):
    assert lp.get_format(alias).name == name
    assert lp.get_format(alias) is getattr(lp, name)


def test_dtype_and_descriptor_resolution():
    assert lp.get_format(np.float16) is lp.float16
    assert lp.get_format(np.dtype("float32")) is lp.float32
    assert lp.get_format(ml_dtypes.float8_e4m3fn) is lp.float8_e4m3fn
    assert lp.get_format(lp.bfloat16) is lp.bfloat16
    assert lp.get_format("fixed4_12") == FixedFormat(4, 12)
    assert lp.get_format("ufixed8_8") == FixedFormat(8, 8, signed=False)


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="unknown format 'fp7'.*float8_e4m3fn.*bf16"):
        lp.get_format("fp7")
    with pytest.raises(TypeError):
        lp.get_format(3.5)


def test_value_semantics_and_hashing():
    g = FloatFormat(5, 10, 15)
    assert g == lp.float16 and hash(g) == hash(lp.float16)
    assert {lp.float16: 1}[g] == 1
    assert g.name == "float16_e5m10"  # derived name, not part of equality
    assert FloatFormat(4, 3, 7, has_inf=False, nan="all_ones") == lp.float8_e4m3fn
    assert lp.float8_e4m3fn != lp.float8_e4m3
    assert IntFormat(8) == lp.int8 and lp.int8 != lp.uint8


@pytest.mark.parametrize("kwargs,msg", [
    (dict(exp_bits=0, man_bits=3, bias=1), "exp_bits"),
    (dict(exp_bits=4, man_bits=3, bias=7, has_inf=True, nan="all_ones"), "IEEE"),
    (dict(exp_bits=4, man_bits=3, bias=7, nan="weird"), "nan must be"),
    (dict(exp_bits=8, man_bits=0, bias=127), "mantissa bit"),
    (dict(exp_bits=8, man_bits=24, bias=127), "23 mantissa"),
    (dict(exp_bits=4, man_bits=3, bias=7, has_inf=False, nan="neg_zero", signed=False), "sign"),
])
def test_invalid_descriptors(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        FloatFormat(**kwargs)


def test_fixed_and_int_properties():
    f = FixedFormat(4, 12)  # Gupta et al. <IL=4, FL=12>
    assert f.bits == 16 and f.resolution == 2.0 ** -12
    assert f.min == -8.0 and f.max == 8.0 - 2.0 ** -12
    assert (lp.int8.min_int, lp.int8.max_int) == (-128, 127)
    assert (lp.uint8.min_int, lp.uint8.max_int) == (0, 255)
    assert (lp.int4.min_int, lp.int4.max_int) == (-8, 7)
    with pytest.raises(ValueError):
        FixedFormat(30, 10)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float4_e2m1fn", "float16", "int4"])
def test_enumeration(name):
    f = lp.get_format(name)
    v = f.values()
    assert v.shape == (1 << f.bits,) and v.dtype == np.float64
    fin = v[np.isfinite(v)]
    assert fin.max() == f.max
    assert fin.min() == (f.min if isinstance(f, FixedFormat) else -f.max)
    with pytest.raises(ValueError):
        lp.float32.values()
