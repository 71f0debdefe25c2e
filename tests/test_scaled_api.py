"""The structure of lowprec.scaled: recipe selection by descriptors, the recipes' own
argument checks, block-format objects as input, and layouts at the edges (empty input)."""

import numpy as np
import pytest

import lowprec as lp
from lowprec.block_formats import BlockFormat, get_block_format, list_block_formats
from lowprec.scaled import (RECIPES, Float32ScaleRecipe, IntegerRecipe, MXRecipe,
                            TwoLevelRecipe, mx_quantize, quantize_scaled, recipe_for)


@pytest.mark.parametrize("gran,shape,axis", [("channel", (0, 64), 0), ("channel", (3, 0), 1),
                                             ("channel", (0, 64), 1), ("tensor", (0, 5), -1),
                                             ("block", (4, 0), 0)])
@pytest.mark.parametrize("fmt", ["int8", "e4m3", "e2m1"])
def test_empty_input_every_granularity(fmt, gran, shape, axis):
    x = np.zeros(shape, np.float32)
    t = quantize_scaled(x, fmt, granularity=gran, axis=axis)
    assert t.codes.shape == shape and t.dequantize().shape == shape
    assert t.scales.shape == t._grouping.scale_shape


# a power-of-two scale format narrower than E8M0 (2^-15 .. 2^15), and one without NaN
E5M0 = lp.FloatFormat(5, 0, 15, has_inf=False, nan="all_ones", subnormals=False, signed=False,
                      zero=False, name="e5m0")
E4M0_NO_NAN = lp.FloatFormat(4, 0, 7, has_inf=False, nan="none", subnormals=False, signed=False,
                             zero=False, name="e4m0")


@pytest.mark.parametrize("element,scale,recipe", [
    ("e4m3", "e8m0", MXRecipe), ("int8", "e8m0", MXRecipe), ("fixed2_6", "e8m0", MXRecipe),
    ("e2m1", E5M0, MXRecipe), ("e4m3", "float32", Float32ScaleRecipe),
    ("bf16", "float32", Float32ScaleRecipe), ("e2m1", "e4m3", TwoLevelRecipe),
    ("e2m1", "bf16", TwoLevelRecipe), ("int8", "float32", IntegerRecipe),
    ("uint8", "float32", IntegerRecipe),
])
def test_recipe_is_chosen_by_the_descriptors(element, scale, recipe):
    e, s = lp.get_format(element), lp.get_format(scale)
    assert [r for r in RECIPES if r.applies(e, s)] == [recipe]
    r = recipe_for(e, s)
    assert type(r) is recipe and r.element is e and r.scale is s


def test_exactly_one_recipe_applies_to_every_pair_of_formats():
    fmts = lp.list_formats() + [E5M0, E4M0_NO_NAN, lp.FixedFormat(2, 6)]
    for e in fmts:
        for s in fmts:
            assert sum(r.applies(e, s) for r in RECIPES) == 1, (e.name, s.name)


def test_names_do_not_decide_the_recipe():
    e8m0 = lp.FloatFormat(8, 0, 127, has_inf=False, nan="all_ones", subnormals=False,
                          signed=False, zero=False, name="my_scale")
    single = lp.FloatFormat(8, 23, 127, name="single_precision")
    assert isinstance(recipe_for(lp.float8_e4m3fn, e8m0), MXRecipe)
    assert isinstance(recipe_for(lp.float8_e4m3fn, single), Float32ScaleRecipe)
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    a = quantize_scaled(x, "e4m3", granularity="block", scale_fmt=e8m0)
    b = quantize_scaled(x, "mxfp8")
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.scale_codes, b.scale_codes)


@pytest.mark.parametrize("element,scale,match", [
    ("int8", "e4m3", "float32 or E8M0 scales, not float8_e4m3fn"),
    ("fixed2_6", "float32", "fixed-point elements"),
    ("e4m3", "int8", "scale format must be a float format"),
])
def test_pairs_no_recipe_takes(element, scale, match):
    with pytest.raises(ValueError, match=match):
        recipe_for(lp.get_format(element), lp.get_format(scale))


def test_recipes_check_their_own_arguments():
    mx = recipe_for(lp.float8_e4m3fn, lp.float8_e8m0fnu)
    with pytest.raises(ValueError, match="scale_rule .* one of \\('floor', 'ceil', 'rceil'\\)"):
        mx.validate(scale_rule="nearest")
    with pytest.raises(ValueError, match="zero points"):
        mx.validate(symmetric=False)
    assert mx.validate(scale_rule="RCEIL", saturate=np.False_) == \
        dict(scale_rule="rceil", saturate=False)
    two = recipe_for(lp.float4_e2m1fn, lp.float8_e4m3fn)
    got = two.validate(global_scale=0.01, reciprocal=True)
    assert got["global_scale"] == np.float32(0.01) and type(got["global_scale"]) is np.float32
    assert two.validate(global_scale=None)["global_scale"] is None
    with pytest.raises(ValueError, match="reciprocal overflows"):
        two.validate(global_scale=1e-39, reciprocal=True)
    assert two.validate(global_scale=1e-39, reciprocal=False)["reciprocal"] is False
    with pytest.raises(ValueError, match="not a positive finite float32"):
        two.validate(global_scale=1e-50)
    with pytest.raises(ValueError, match="'auto', a float or None"):
        two.validate(global_scale="max")
    integer = recipe_for(lp.uint8, lp.float32)
    with pytest.raises(ValueError, match="signed"):
        integer.validate()
    assert integer.validate(symmetric=False)["symmetric"] is False
    with pytest.raises(ValueError, match="two-level"):
        integer.validate(reciprocal=False)


@pytest.mark.parametrize("fmt", ["mxfp8", "nvfp4", "int8", "e4m3"])
@pytest.mark.parametrize("option", ["symmetric", "reciprocal"])
def test_boolean_options_are_booleans_for_every_recipe(fmt, option):
    with pytest.raises(TypeError, match=f"{option} must be True or False"):
        quantize_scaled(np.ones(32, np.float32), fmt, **{option: "yes"})


def test_block_format_objects_as_fmt():
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    mine = BlockFormat("mxfp8_b16", "e4m3", 16, "e8m0")
    t = quantize_scaled(x, mine)
    ref = quantize_scaled(x, "e4m3", block_size=16)
    assert t.scheme == "mxfp8_b16" and ref.scheme == "mx_float8_e4m3fn"
    np.testing.assert_array_equal(t.codes, ref.codes)
    np.testing.assert_array_equal(t.scales, ref.scales)
    assert t.bits_per_element == mine.bits_per_element == 8.5
    np.testing.assert_array_equal(mx_quantize(x, mine).codes, t.codes)
    nv = quantize_scaled(x, get_block_format("nvfp4"), global_scale=None)
    np.testing.assert_array_equal(nv.codes, quantize_scaled(x, "nvfp4", global_scale=None).codes)
    with pytest.raises(ValueError, match="mx_quantize needs an MX scheme .*mxint8"):
        mx_quantize(x, "nvfp4")
    with pytest.raises(ValueError, match="block scaled"):
        quantize_scaled(x, mine, granularity="channel")


@pytest.mark.parametrize("bf", list_block_formats(), ids=lambda b: b.name)
def test_storage_cost_is_the_block_formats(bf):
    x = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)
    kw = {} if bf.scale.man_bits == 0 else {"global_scale": None}  # no tensor scale
    t = quantize_scaled(x, bf, **kw)
    assert t.bits_per_element == bf.bits_per_element
    assert isinstance(t.recipe, MXRecipe if bf.scale.man_bits == 0 else TwoLevelRecipe)


def test_narrow_power_of_two_scales_match_the_reference():
    from lowprec.reference.scaled import mx_block_reference

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 32)) * 2.0 ** rng.integers(-30, 30, (40, 1))
    x[0] = 0
    x = x.astype(np.float32)
    for rule in ("floor", "ceil", "rceil"):
        t = quantize_scaled(x, "e2m1", granularity="block", scale_fmt=E5M0, scale_rule=rule)
        assert t.scheme == "mx_float4_e2m1fn" and t.scale_fmt is E5M0
        for i in range(x.shape[0]):
            sc, codes = mx_block_reference([float(v) for v in x[i]], lp.float4_e2m1fn, rule,
                                           scale_fmt=E5M0)
            assert t.scale_codes[i, 0] == sc and list(t.codes[i].astype(int)) == codes, (rule, i)
        e = np.log2(t.scales)
        assert e.min() == -15 and e.max() == 15  # both ends of E5M0 reached, clamped
    bad = x.copy()
    bad[1, 1] = np.nan
    t = quantize_scaled(bad, "e2m1", granularity="block", scale_fmt=E5M0)
    assert t.scale_codes[1, 0] == E5M0.nan_code and np.isnan(t.dequantize()[1]).all()
    with pytest.raises(ValueError, match="e4m0 has no NaN"):
        quantize_scaled(bad, "e2m1", granularity="block", scale_fmt=E4M0_NO_NAN)
    with pytest.raises(ValueError, match="e4m0 has no NaN"):
        quantize_scaled(x, "e2m1", granularity="block", scale_fmt=E4M0_NO_NAN, saturate=False)
    ok = quantize_scaled(x, "e2m1", granularity="block", scale_fmt=E4M0_NO_NAN)
    assert np.isfinite(ok.scales).all() and np.log2(ok.scales).max() == E4M0_NO_NAN.emax
