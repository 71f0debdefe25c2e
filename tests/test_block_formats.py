"""Block-format descriptors: the registry against gfloat's BlockFormatInfo, validation,
derived sizes, and the old SCHEMES mapping."""

import dataclasses

import numpy as np
import pytest

import lowprec as lp
from lowprec.block_formats import BlockFormat, get_block_format, list_block_formats
from lowprec.scaled import SCHEMES

MX = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1", "mxint8"]


@pytest.mark.parametrize("name", MX)
def test_mx_registry_matches_gfloat(name):
    """gfloat's formats are independent data: sizes and every element/scale value agree."""
    gf = pytest.importorskip("gfloat")
    from gfloat import formats as gff

    fi = getattr(gff, "format_info_" + name)
    bf = get_block_format(name)
    assert (bf.name, bf.block_size) == (fi.name, fi.k)
    assert (bf.element_bits, bf.scale_bits) == (fi.element_bits, fi.scale_bits)
    assert bf.block_bits == 8 * fi.block_size_bytes
    for ours, theirs in ((bf.element, fi.etype), (bf.scale, fi.stype)):
        want = np.array([gf.decode_float(theirs, c).fval for c in range(1 << theirs.k)])
        got = ours.values()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_array_equal(got[ok], want[ok])


def test_nvfp4_and_sizes():
    nv = get_block_format("nvfp4")
    assert nv.as_tuple() == (lp.float4_e2m1fn, 16, lp.float8_e4m3fn)
    assert nv.bits_per_element == 4.5 and nv.block_bits == 72
    assert get_block_format("mxfp8").bits_per_element == 8.25
    assert get_block_format("mxfp4").bits_per_element == 4.25
    assert get_block_format("mxint8").element.values()[[0, 64, 127, 128]].tolist() == \
        [0.0, 1.0, 127 / 64, -2.0]


def test_names_aliases_and_order():
    assert [b.name for b in list_block_formats()] == MX + ["nvfp4"]
    assert get_block_format("MXFP8") is get_block_format("mxfp8_e4m3")
    assert get_block_format("mxfp6") is get_block_format("mxfp6_e3m2")
    assert get_block_format(" MXFP4-E2M1 ") is get_block_format("mxfp4")
    bf = get_block_format("nvfp4")
    assert get_block_format(bf) is bf
    with pytest.raises(ValueError, match="unknown block format 'mxfp9'.*nvfp4"):
        get_block_format("mxfp9")
    with pytest.raises(TypeError, match="block format"):
        get_block_format(32)


def test_schemes_mapping_is_the_registry_and_read_only():
    assert list(SCHEMES) == [b.name for b in list_block_formats()]
    assert SCHEMES["mxfp8_e4m3"] == (lp.float8_e4m3fn, 32, lp.float8_e8m0fnu)
    assert SCHEMES["mxint8"] == (lp.FixedFormat(2, 6), 32, lp.float8_e8m0fnu)
    assert SCHEMES["nvfp4"] == (lp.float4_e2m1fn, 16, lp.float8_e4m3fn)
    with pytest.raises(TypeError):
        SCHEMES["mine"] = SCHEMES["nvfp4"]


def test_construction_resolves_names_and_equality_ignores_the_name():
    mine = BlockFormat("mine", "e4m3", 32, "e8m0")
    assert mine == get_block_format("mxfp8") and mine.name == "mine"
    assert mine.element is lp.float8_e4m3fn and mine.scale is lp.float8_e8m0fnu
    assert BlockFormat("b", "int8", np.int64(64), "float32").block_size == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        mine.block_size = 16


@pytest.mark.parametrize("args,exc,match", [
    (("", "e4m3", 32, "e8m0"), ValueError, "name"),
    ((3, "e4m3", 32, "e8m0"), TypeError, "name"),
    (("b", "e4m3", 0, "e8m0"), ValueError, "block_size must be positive"),
    (("b", "e4m3", 2.5, "e8m0"), TypeError, "block_size must be an int"),
    (("b", "e4m3", True, "e8m0"), TypeError, "block_size must be an int"),
    (("b", "e4m3", 32, "int8"), ValueError, "scale format must be a float format"),
    (("b", "e9m9", 32, "e8m0"), ValueError, "unknown format 'e9m9'"),
    (("b", None, 32, "e8m0"), TypeError, "element must be a format"),
    (("b", "e4m3", 32, 8), TypeError, "scale must be a format"),
])
def test_construction_errors(args, exc, match):
    with pytest.raises(exc, match=match):
        BlockFormat(*args)
