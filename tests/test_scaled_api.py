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
