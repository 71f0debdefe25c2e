"""AMD CDNA matrix-core models: hand-derived cases for each documented behaviour of the
authors' MATLAB models, and the kernels against the exact reference bit for bit.

Notation in the comments: u = 2^-24 (half an fp32 ulp of 1); "E" is a block's largest
product exponent; grids are the fixed-point steps the models align to.
"""

import numpy as np
import pytest

import lowprec
from lowprec.hardware import MC_MODELS, MatrixCorePath, get_mc_model, list_mc_models, select_path
from lowprec.reference.matrixcore import dot_mc, matmul_mc_ref

U = 2.0 ** -24
GPUS = {"cdna1": "mi100", "cdna2": "mi250x", "cdna3": "mi300x"}


def _bits(x):
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


def mm(gpu, a, b, c=0.0, fmt="fp16"):
    """One dot product c + sum a_k b_k under a GPU model, checked against the reference."""
    a = np.asarray(a, np.float64)[None, :]
    b = np.asarray(b, np.float64)[:, None]
    f = lowprec.get_format(fmt)
    assert np.array_equal(lowprec.quantize(a, f), a) and np.array_equal(lowprec.quantize(b, f), b)
    got = lowprec.matmul(a, b, c=np.float32(c), inputs=fmt, model=gpu)[0, 0]
    want = dot_mc(a[0], b[:, 0], float(np.float32(c)), select_path(gpu, f), f.emin, f.emin)
    assert _bits(got) == _bits(want), (got, want)
    return float(got)


def signbit(x):
    return bool(np.signbit(np.float32(x)))


# ---------------------------------------------------------------- the models' parameters

def test_models_list_and_parameters_from_matlab():
    assert list_mc_models() == ["mi100", "mi210", "mi250", "mi250x", "mi300a", "mi300x"]
    # MI100MC.m: Kulisch accumulation, fma = 4 (fp16), 2 (bf16)
    m = MC_MODELS["mi100"]
    assert m.architecture == "CDNA1" and m.input_formats == ("float16", "bfloat16")
    assert (m.path("fp16").scheme, m.path("fp16").n, m.path("bf16").n) == ("exact", 4, 2)
    # MI210MC.m (MI250MC.m calls it): pair-wise sum, fma = 4, no subnormals in or out
    for g in ("mi210", "mi250", "mi250x"):
        assert {(p.scheme, p.n, p.ftz) for p in MC_MODELS[g].paths.values()} == {
            ("pairwise", 4, True)}
    # MI300MC.m: fma = 8 (fp16, bf16), 4 (xf32), 16 with odd/even grouping (fp8 fnuz);
    # neab = 1 -> F = 24; c added late with 7 more bits; fp8's 25-binade window for c
    for g in ("mi300a", "mi300x"):
        m = MC_MODELS[g]
        assert [(f, p.scheme, p.n, p.frac_bits, p.c_frac_bits, p.c_window)
                for f, p in m.paths.items()] == [
            ("float16", "aligned", 8, 24, 31, None), ("bfloat16", "aligned", 8, 24, 31, None),
            ("tfloat32", "aligned", 4, 24, 31, None),
            ("float8_e4m3fnuz", "odd_even", 16, 24, 31, 25),
            ("float8_e5m2fnuz", "odd_even", 16, 24, 31, 25)]


def test_names_errors_and_input_formats():
    assert get_mc_model("MI300X ") is MC_MODELS["mi300x"]
    one = (np.ones((1, 4)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="mi250x matrix cores do not take tfloat32"):
        lowprec.matmul(*one, inputs="tf32", model="mi250x")
    with pytest.raises(ValueError, match="do not take float8_e4m3fn inputs.*float8_e4m3fnuz"):
        lowprec.matmul(*one, inputs="e4m3", model="mi300x")
    with pytest.raises(ValueError, match="do not take float8_e5m2 inputs.*float8_e5m2fnuz"):
        lowprec.matmul(*one, inputs="e5m2", model="mi300a")
    with pytest.raises(ValueError, match="mi100 matrix cores do not take float8_e4m3fnuz"):
        lowprec.matmul(*one, inputs="e4m3fnuz", model="mi100")
    with pytest.raises(ValueError, match="do not take float32 inputs.*fp32 FMAs"):
        lowprec.matmul(*one, model="mi300x")
    with pytest.raises(ValueError, match="chunk"):
        lowprec.matmul(*one, inputs="fp16", model="mi300x", chunk=8)
    with pytest.raises(ValueError, match="do not take a in float16 with b in bfloat16"):
        lowprec.matmul(lowprec.array(one[0], "fp16"), lowprec.array(one[1], "bf16"),
                       model="mi300x")
    with pytest.raises(ValueError, match="unknown matrix-core model"):
        get_mc_model("mi400")
    with pytest.raises(ValueError):
        MatrixCorePath("pairwise", 6)
    with pytest.raises(ValueError):
        MatrixCorePath("tree", 4)
    with pytest.raises(ValueError, match="frac_bits must be an int in 23..30"):
        MatrixCorePath("aligned", 8, frac_bits=13)
    # mixed fnuz fp8 (MI300X's fp8 x bf8 instructions) is one datapath
    r = lowprec.matmul(lowprec.array(np.ones((1, 4)), "e4m3fnuz"),
                       lowprec.array(np.ones((4, 1)), "e5m2fnuz"), model="mi300x")
    assert r[0, 0] == 4.0
    # model objects are accepted as well as names
    assert lowprec.matmul(*one, inputs="fp16", model=MC_MODELS["mi100"])[0, 0] == 4.0
    assert lowprec.matmul(*one, inputs="fp16", model=MatrixCorePath("exact", 2))[0, 0] == 4.0


# ---------------------------------------------------------------- CDNA1 (MI100): exact

def test_mi100_sums_exactly_and_rounds_once():
    # 2^15 + 2^-24 - 2^15 = 2^-24 exactly (2^-24 = 2^-12 * 2^-12); an aligning datapath
    # (MI300X: E = 15, grid 2^-9) truncates 2^-24 away and gives +0
    a, b = [2.0 ** 15, 2.0 ** -12, -2.0 ** 15, 0.0], [1.0, 2.0 ** -12, 1.0, 0.0]
    assert mm("mi100", a, b) == 2.0 ** -24
    assert mm("mi300x", a, b) == 0.0 and not signbit(mm("mi300x", a, b))
    # 1 + u is a tie between 1 and 1 + 2u: RNE keeps 1; + 2^-48 (2^-24 * 2^-24, fp16
    # subnormals) makes the exact sum lie above the tie: 1 + 2u
    assert mm("mi100", [2.0 ** -12, 0, 0, 0], [2.0 ** -12, 0, 0, 0], c=1.0) == 1.0
    assert mm("mi100", [2.0 ** -12, 2.0 ** -24, 0, 0], [2.0 ** -12, 2.0 ** -24, 0, 0],
              c=1.0) == 1.0 + 2 * U


def test_mi100_far_products_still_break_ties():
    # bf16, one block of 2 with c = 1: 1 + u + 2^-100 (2^-12 * 2^-12 and 2^-50 * 2^-50)
    # lies just above the tie 1 + u: RNE of the exact sum is 1 + 2u; without the far
    # product (or a sticky bit for it) the tie goes to even: 1
    assert mm("mi100", [2.0 ** -12, 2.0 ** -50], [2.0 ** -12, 2.0 ** -50], c=1.0,
              fmt="bf16") == 1.0 + 2 * U
    assert mm("mi100", [2.0 ** -12, -(2.0 ** -50)], [2.0 ** -12, 2.0 ** -50], c=1.0,
              fmt="bf16") == 1.0
    # the same below zero: -1 - u - 2^-100 -> -(1 + 2u)
    assert mm("mi100", [-(2.0 ** -12), -(2.0 ** -50)], [2.0 ** -12, 2.0 ** -50], c=-1.0,
              fmt="bf16") == -1.0 - 2 * U


def test_mi100_block_sizes_chain_along_k():
    # products [1, u, u, 0] (u = 2^-12 * 2^-12): fp16 runs one block of 4, exact 1 + 2u;
    # bf16 runs blocks of 2: [1, u] -> tie -> 1, then 1 + [u, 0] -> tie -> 1
    a, b = [1.0, 2.0 ** -12, 2.0 ** -12, 0.0], [1.0, 2.0 ** -12, 2.0 ** -12, 0.0]
    assert mm("mi100", a, b, fmt="fp16") == 1.0 + 2 * U
    assert mm("mi100", a, b, fmt="bf16") == 1.0


def test_mi100_keeps_subnormals_cdna2_flushes_them():
    # fp16 input 2^-24 is subnormal: MI100 uses it (2^-24 * 2^10 = 2^-14); MI250X flushes
    # it to zero first
    assert mm("mi100", [2.0 ** -24], [2.0 ** 10]) == 2.0 ** -14
    assert mm("mi250x", [2.0 ** -24], [2.0 ** 10]) == 0.0
    # bf16 product 2^-100 * 2^-30 = 2^-130 is an fp32 subnormal: MI100 returns it;
    # MI250X flushes products below 2^-126
    assert mm("mi100", [2.0 ** -100], [2.0 ** -30], fmt="bf16") == 2.0 ** -130
    assert mm("mi250x", [2.0 ** -100], [2.0 ** -30], fmt="bf16") == 0.0
    # a subnormal c: MI100 passes it through, MI250X flushes it to +0
    assert mm("mi100", [0.0], [0.0], c=2.0 ** -130) == 2.0 ** -130
    assert mm("mi250x", [0.0], [0.0], c=2.0 ** -130) == 0.0


def test_mi100_products_beyond_fp32_cancel_exactly():
    # bf16: 2^100 * 2^30 = 2^130 and -2^130: MI100 has no product limit, the exact sum is 0
    a, b = [2.0 ** 100, -2.0 ** 100], [2.0 ** 30, 2.0 ** 30]
    assert mm("mi100", a, b, fmt="bf16", c=1.0) == 1.0
    # MI250X: each product overflows fp32 to +-inf and inf - inf = NaN; MI300X: the block
    # sees products of both signs at or above 2^128: NaN
    assert np.isnan(mm("mi250x", a, b, fmt="bf16"))
    assert np.isnan(mm("mi300x", a, b, fmt="bf16"))
    # one sign only: +-inf (MATLAB's model returns +inf for both signs; see docs/amd.md)
    for g in ("mi250x", "mi300x"):
        assert mm(g, [2.0 ** 100], [2.0 ** 30], fmt="bf16") == np.inf
        assert mm(g, [-2.0 ** 100], [2.0 ** 30], fmt="bf16") == -np.inf
    # a rounded sum at 2^128 overflows to inf: (2 - 2^-7) * 2^127 + 2^127 (bf16)
    assert mm("mi100", [2.0 ** 127 * (2 - 2.0 ** -7), 2.0 ** 127], [1.0, 1.0],
              fmt="bf16") == np.inf


# ---------------------------------------------------------------- CDNA2 (MI210/MI250X)

def test_cdna2_pairwise_tree_then_c():
    # products [1, 0, u, u]: (1 + 0) + (u + u) = 1 + 2u exactly; a sequential fp32 sum
    # gives ((1 + 0) + u) = 1 (tie to even), + u = 1
    a, b = [1.0, 0.0, 2.0 ** -12, 2.0 ** -12], [1.0, 0.0, 2.0 ** -12, 2.0 ** -12]
    assert mm("mi250x", a, b) == 1.0 + 2 * U
    # products [1, u, 0, u]: (1 + u) -> 1, (0 + u) = u, 1 + u -> 1; exact would be 1 + 2u
    a, b = [1.0, 2.0 ** -12, 0.0, 2.0 ** -12], [1.0, 2.0 ** -12, 0.0, 2.0 ** -12]
    assert mm("mi250x", a, b) == 1.0
    assert mm("mi100", a, b) == 1.0 + 2 * U
    # c is added last: c = 1, products [u, u, 0, 0]: tree 2u, 1 + 2u; adding c first
    # would give (1 + u) -> 1, + u -> 1
    a, b = [2.0 ** -12, 2.0 ** -12, 0.0, 0.0], [2.0 ** -12, 2.0 ** -12, 0.0, 0.0]
    assert mm("mi250x", a, b, c=1.0) == 1.0 + 2 * U
    for g in ("mi210", "mi250"):
        assert mm(g, a, b, c=1.0) == 1.0 + 2 * U


def test_cdna2_flushes_c_before_adding():
    # bf16 product 2^-63 * 2^-63 = 2^-126 (normal); c = -2^-127 is subnormal and flushed
    # to +0 first: 2^-126. Adding it unflushed would give 2^-127, flushed to +0.
    # MI100 keeps everything: 2^-127
    assert mm("mi250x", [2.0 ** -63], [2.0 ** -63], c=-(2.0 ** -127), fmt="bf16") == 2.0 ** -126
    assert mm("mi100", [2.0 ** -63], [2.0 ** -63], c=-(2.0 ** -127), fmt="bf16") == 2.0 ** -127


def test_cdna2_flushes_sums_keeping_their_sign():
    # bf16: 2^-125 - 1.5 * 2^-126 = 2^-127 < 2^-126: the tree's sum is flushed to +0
    assert mm("mi250x", [2.0 ** -125, -1.5 * 2.0 ** -126], [1.0, 1.0], fmt="bf16") == 0.0
    assert mm("mi100", [2.0 ** -125, -1.5 * 2.0 ** -126], [1.0, 1.0], fmt="bf16") == 2.0 ** -127
    # c + tree = -2^-125 + 1.5 * 2^-126 = -2^-127: flushed to -0
    r = mm("mi250x", [1.5 * 2.0 ** -126], [1.0], c=-(2.0 ** -125), fmt="bf16")
    assert r == 0.0 and signbit(r)
    # the flushed -0 of a block is c = -0 of the next, flushed to +0: K = 8
    a = [1.5 * 2.0 ** -126, 0, 0, 0, 0, 0, 0, 0]
    r = mm("mi250x", a, [1.0] * 8, c=-(2.0 ** -125), fmt="bf16")
    assert r == 0.0 and not signbit(r)


# ---------------------------------------------------------------- CDNA3 (MI300X)

def test_mi300x_truncates_products_to_24_bits_below_e():
    # 1 + 1.5u: 1.5u = 1.5 * 2^-12 * 2^-12 is 1.5 units of the grid 2^(E - 24) = u,
    # truncated to 1 unit: 1 + u, a tie: 1. Exact (MI100): 1 + 1.5u -> 1 + 2u
    a, b = [1.0, 1.5 * 2.0 ** -12], [1.0, 2.0 ** -12]
    assert mm("mi300x", a, b) == 1.0
    assert mm("mi100", a, b) == 1.0 + 2 * U
    # toward zero for negative products: 1 - 1.5u -> 1 - u (exact fp32);
    # exact: 1 - 1.5u is a tie between 1 - 2u and 1 - u: even -> 1 - 2u
    a = [1.0, -1.5 * 2.0 ** -12]
    assert mm("mi300x", a, b) == 1.0 - U
    assert mm("mi100", a, b) == 1.0 - 2 * U


def test_mi300x_products_are_not_normalised():
    # 1.5 * 1.5 = 2.25 has exponent 0 + 0 = 0 (significand in [0, 4)), so E = 0 and the
    # grid is u: four products 1.5u are 1 unit each after truncation: 2.25 + 4u, exact in
    # fp32 (its grid in [2, 4) is 4u). Normalised products (E = 1, grid 2u) would lose
    # each 0.75 unit: 2.25
    a = [1.5] + [1.5 * 2.0 ** -12] * 4
    b = [1.5] + [2.0 ** -12] * 4
    assert mm("mi300x", a, b) == 2.25 + 4 * U


def test_mi300x_late_c_rounds_products_toward_minus_inf():
    # c = 1 (e_c = 0) above E = -25: grid 2^(0 - 31); products -2^-25 - 2^-40
    # (2^-12 * 2^-13 and 2^-20 * 2^-20, the latter fp16 subnormals) are -64 - 2^-9 units,
    # floored to -65: 1 - 65 * 2^-31 lies below the tie 1 - 2^-25: 1 - u.
    # Truncating toward zero would give -64 units, the tie, and RNE 1.
    a, b = [-(2.0 ** -12), -(2.0 ** -20)], [2.0 ** -13, 2.0 ** -20]
    assert mm("mi300x", a, b, c=1.0) == 1.0 - U
    # positive: 2^-24 + 2^-40 = 128 + 2^-9 units -> 128: 1 + u, a tie -> 1;
    # exact (MI100): above the tie -> 1 + 2u
    a = [2.0 ** -12, 2.0 ** -20]
    b = [2.0 ** -12, 2.0 ** -20]
    assert mm("mi300x", a, b, c=1.0) == 1.0
    assert mm("mi100", a, b, c=1.0) == 1.0 + 2 * U


def test_mi300x_small_c_rounds_toward_minus_inf_onto_product_grid():
    # products 1 and -1 (E = 0, sum 0); c = -2^-30 below E: floored onto the grid
    # u: -1 unit -> -u. c = +2^-30 floors to 0 -> +0. Exact: +-2^-30
    a, b = [1.0, -1.0], [1.0, 1.0]
    assert mm("mi300x", a, b, c=-(2.0 ** -30)) == -U
    r = mm("mi300x", a, b, c=2.0 ** -30)
    assert r == 0.0 and not signbit(r)
    assert mm("mi100", a, b, c=-(2.0 ** -30)) == -(2.0 ** -30)
    # without a non-zero product c passes through unchanged
    assert mm("mi300x", [0.0, 3.0], [5.0, 0.0], c=-(2.0 ** -30)) == -(2.0 ** -30)


def test_mi300x_zero_c_counts_as_exponent_minus_126():
    # bf16 products below 2^-126 (E = -200 < -126): aligned to c = 0's exponent -126 with
    # grid 2^-157 and floored: 2^-200 -> 0 -> +0; -2^-200 -> -1 unit = -2^-157, which
    # rounds to -0 in fp32 (below half of 2^-149)
    r = mm("mi300x", [2.0 ** -100], [2.0 ** -100], fmt="bf16")
    assert r == 0.0 and not signbit(r)
    r = mm("mi300x", [-(2.0 ** -100)], [2.0 ** -100], fmt="bf16")
    assert r == 0.0 and signbit(r)
    # 2^-140 + 2^-150 (E = -140 < -126): on the grid 2^-157 both are exact; in fp32,
    # 2^-150 is half of the subnormal step 2^-149: a tie, to even: 2^-140
    assert mm("mi300x", [2.0 ** -70, 2.0 ** -75], [2.0 ** -70, 2.0 ** -75],
              fmt="bf16") == 2.0 ** -140


def test_mi300x_xf32_blocks_of_4_chain_along_k():
    # products [1, 0, 0, 0 | 1.5u, 0, 0, 0]: tf32 runs blocks of 4: 1, then c = 1 above
    # E = -24: grid 2^-31, 1.5u = 192 units exactly: 1 + 1.5u -> 1 + 2u.
    # fp16 runs one block of 8: E = 0, 1.5u truncated to u: 1 + u, a tie: 1
    a = [1.0, 0, 0, 0, 1.5 * 2.0 ** -12, 0, 0, 0]
    b = [1.0, 0, 0, 0, 2.0 ** -12, 0, 0, 0]
    assert mm("mi300x", a, b, fmt="tf32") == 1.0 + 2 * U
    assert mm("mi300x", a, b, fmt="fp16") == 1.0


def test_mi300x_fp8_odd_even_groups():
    # e5m2fnuz: p0 = 1 (even), p1 = p3 = p5 = p7 = 2^-25 (2^-12 * 2^-13, odd): one
    # aligned group (E = 0, grid u) truncates each 0.5 unit to 0: 1. The odd group sums
    # exactly, 4 * 2^-25 = 2u, then joins the even group's grid: 1 + 2u
    a = [1.0] + [2.0 ** -12, 0.0] * 3 + [2.0 ** -12]
    b = [1.0] + [2.0 ** -13, 0.0] * 3 + [2.0 ** -13]
    assert mm("mi300x", a, b, fmt="e5m2fnuz") == 1.0 + 2 * U
    one_group = MatrixCorePath("aligned", 16)
    x = lowprec.matmul(np.array([a]), np.array([b]).T, inputs="e5m2fnuz", model=one_group)
    assert x[0, 0] == 1.0
    # the smaller group is floored onto the larger's grid: p1 = -3 * 2^-26 (odd, -0.75
    # unit of u) -> -1: 1 - u. One aligned group truncates it toward zero: 1
    a, b = [1.0, -1.5 * 2.0 ** -13], [1.0, 2.0 ** -13]
    assert mm("mi300x", a, b, fmt="e5m2fnuz") == 1.0 - U
    x = lowprec.matmul(np.array([a]), np.array([b]).T, inputs="e5m2fnuz", model=one_group)
    assert x[0, 0] == 1.0


def test_mi300x_fp8_window_for_far_c():
    # E = 0 (product 1). c = -2^-25 is 25 binades below: floored onto the grid u: -1 unit
    # -> 1 - u. c = -2^-26 is 26 below, beyond the window: truncated to 0 -> 1. fp16 has
    # no window: c = -2^-26 is floored -> 1 - u
    assert mm("mi300x", [1.0], [1.0], c=-(2.0 ** -25), fmt="e4m3fnuz") == 1.0 - U
    assert mm("mi300x", [1.0], [1.0], c=-(2.0 ** -26), fmt="e4m3fnuz") == 1.0
    assert mm("mi300x", [1.0], [1.0], c=-(2.0 ** -26), fmt="fp16") == 1.0 - U


def test_mi300x_subnormal_inputs_clamp_the_exponent():
    # fp16 2^-24 is subnormal: its exponent is clamped to -14 (significand 2^-10), so the
    # product 2^-24 * 1 has exponent -14 and E = -14, grid 2^-38. The product
    # (3 * 2^-24) * 2^-24 = 3 * 2^-48 is 3 * 2^-10 units: truncated to 0: 2^-24.
    # Unclamped (E = -24, grid 2^-48) it would be kept, and 2^-24 + 3 * 2^-48 rounds
    # (1.5 units of fp32's 2^-47, a tie) to 2^-24 + 2^-46, which MI100 gives
    a, b = [2.0 ** -24, 3 * 2.0 ** -24], [1.0, 2.0 ** -24]
    assert mm("mi300x", a, b) == 2.0 ** -24
    assert mm("mi100", a, b) == 2.0 ** -24 + 2.0 ** -46


# ---------------------------------------------------------------- all GPUs

@pytest.mark.parametrize("gpu", sorted(set(GPUS.values())))
def test_special_values(gpu):
    a = np.array([[np.inf, 1.0], [np.inf, 1.0], [np.nan, 0.0], [1.0, 1.0], [np.inf, 0.0],
                  [-np.inf, 2.0]])
    b = np.array([[1.0], [1.0]])
    c = np.array([[0.0], [-np.inf], [0.0], [np.inf], [0.0], [1.0]], np.float32)
    r = lowprec.matmul(a, b, c=c, inputs="bf16", model=gpu)[:, 0]
    assert r[0] == np.inf and np.isnan(r[1]) and np.isnan(r[2]) and r[3] == np.inf
    assert r[4] == np.inf and r[5] == -np.inf
    # inf * 0 is NaN even in a later block
    a = np.zeros((1, 20))
    a[0, 17] = np.inf
    assert np.isnan(lowprec.matmul(a, np.zeros((20, 1)), inputs="fp16", model=gpu)[0, 0])


@pytest.mark.parametrize("gpu", sorted(GPUS.values()))
def test_k_padding_and_empty_k(gpu):
    rng = np.random.default_rng(5)
    a = lowprec.quantize(rng.standard_normal((3, 21)), "fp16")
    b = lowprec.quantize(rng.standard_normal((21, 2)), "fp16")
    apad = np.concatenate([a, np.zeros((3, 11))], axis=1)
    bpad = np.concatenate([b, np.zeros((11, 2))], axis=0)
    assert (_bits(lowprec.matmul(a, b, inputs="fp16", model=gpu))
            == _bits(lowprec.matmul(apad, bpad, inputs="fp16", model=gpu))).all()
    c = np.array([[1.5, -2.0]], np.float32)
    r = lowprec.matmul(np.zeros((1, 0)), np.zeros((0, 2)), c=c, inputs="fp16", model=gpu)
    assert (_bits(r) == _bits(c)).all()


def test_chaining_is_recursive_over_blocks():
    # K = 3 n: the result equals running the model on the first 2 n with c, then on the
    # last n with that result as c
    rng = np.random.default_rng(9)
    for gpu, fmt in (("mi100", "bf16"), ("mi250x", "fp16"), ("mi300x", "bf16"),
                     ("mi300x", "e4m3fnuz")):
        n = select_path(gpu, fmt).n
        a = lowprec.quantize(rng.standard_normal((4, 3 * n)) * 4, fmt)
        b = lowprec.quantize(rng.standard_normal((3 * n, 5)), fmt)
        c = rng.standard_normal((4, 5)).astype(np.float32)
        whole = lowprec.matmul(a, b, c=c, inputs=fmt, model=gpu)
        head = lowprec.matmul(a[:, :2 * n], b[:2 * n], c=c, inputs=fmt, model=gpu)
        tail = lowprec.matmul(a[:, 2 * n:], b[2 * n:], c=head, inputs=fmt, model=gpu)
        assert (_bits(whole) == _bits(tail)).all()


def test_cdna2_equals_flushed_numpy_float32_tree():
    # an independent formulation of the pairwise scheme with numpy float32 operations
    rng = np.random.default_rng(11)
    tiny = np.float32(2.0 ** -126)
    for fmt, span in (("fp16", 8), ("bf16", 140)):
        f = lowprec.get_format(fmt)
        a = lowprec.quantize(rng.standard_normal((6, 24)) * 2.0 ** rng.integers(-span, 4, (6, 24)), f)
        b = lowprec.quantize(rng.standard_normal((24, 7)) * 2.0 ** rng.integers(-span, 4, (24, 7)), f)
        c = (rng.standard_normal((6, 7)) * 2.0 ** rng.integers(-130, 2, (6, 7))).astype(np.float32)
        got = lowprec.matmul(a, b, c=c, inputs=fmt, model="mi210")

        def ftz(x):
            return np.where(np.abs(x) < tiny, x * np.float32(0), x).astype(np.float32)

        af = np.where(np.abs(a) < f.min_normal, 0.0, a)
        bf = np.where(np.abs(b) < f.min_normal, 0.0, b)
        acc = np.where(np.abs(c) < tiny, np.float32(0), c)
        for q in range(0, 24, 4):
            p = [(af[:, q + t, None] * bf[None, q + t, :]).astype(np.float32) for t in range(4)]
            p = [np.where(np.abs(x) < tiny, np.float32(0), x) for x in p]
            s = ftz(ftz(p[0] + p[1]) + ftz(p[2] + p[3]))
            acc = ftz(np.where(np.abs(acc) < tiny, np.float32(0), acc) + s)
        assert (_bits(got) == _bits(acc)).all()


def _draw(f, shape, rng, specials):
    """Inputs of a format: random codes (zeros, subnormals, extremes), scaled normals
    (cancellation) and a few exact extremes."""
    if f.bits <= 16:
        vals = f.values()
        x = vals[rng.integers(0, len(vals), shape)]
    else:
        x = rng.standard_normal(shape) * 2.0 ** rng.integers(-140, 120, shape)
    y = rng.standard_normal(shape) * 2.0 ** rng.integers(-3, 3, shape)
    pick = rng.random(shape)
    x = np.where(pick < 0.4, y, x)
    x = np.where((pick > 0.4) & (pick < 0.5), 0.0, x)
    x = np.where((pick > 0.5) & (pick < 0.58), rng.choice(
        [1.0, -1.0, f.min_subnormal, -f.min_subnormal, f.min_normal, f.max, -f.max], shape), x)
    x = lowprec.quantize(x, f).astype(np.float64)
    if not specials:
        x = np.where(np.isfinite(x), x, 1.0)
    else:
        x = np.where(np.isfinite(x) | (rng.random(shape) < 0.1), x, 0.5)
    return x


CASES = [(g, f) for g in ("mi100", "mi250x", "mi300x") for f in MC_MODELS[g].input_formats]


@pytest.mark.parametrize("gpu,fmt", CASES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kernel_matches_reference(gpu, fmt, seed):
    f = lowprec.get_format(fmt)
    rng = np.random.default_rng(seed * 1000 + CASES.index((gpu, fmt)))
    k = int(rng.integers(1, 40))
    specials = seed == 3
    n_cols = 70 if seed == 1 else 5  # more than one 64-column tile
    a, b = _draw(f, (3 if seed == 1 else 18, k), rng, specials), _draw(f, (k, n_cols), rng,
                                                                      specials)
    c = rng.choice([0.0, -0.0, 1.0, -2.5, 1e-40, -3e-39, 3e38, 65504.0, -7.0, 2.0 ** -126],
                   (a.shape[0], n_cols)).astype(np.float32)
    c = np.where(rng.random(c.shape) < 0.5, rng.standard_normal(c.shape), c).astype(np.float32)
    if specials:
        c[0, 0] = np.inf
        c[1, 1] = np.nan
    got = lowprec.matmul(a, b, c=c, inputs=fmt, model=gpu)
    want = matmul_mc_ref(a, b, c.astype(np.float64), select_path(gpu, f), f.emin, f.emin)
    g, w = _bits(got), _bits(want)
    bad = np.argwhere(g != w)
    assert bad.size == 0, (bad[:5], got[tuple(bad[0])], want[tuple(bad[0])])


@pytest.mark.parametrize("gpu,fmt", [("mi100", "bf16"), ("mi250x", "bf16"), ("mi300x", "bf16"),
                                     ("mi300x", "tf32"), ("mi100", "fp16")])
def test_kernel_matches_reference_extreme_ranges(gpu, fmt):
    # products spanning fp32's whole range and beyond (cancellation, overflow, underflow)
    f = lowprec.get_format(fmt)
    rng = np.random.default_rng(77)
    lo, hi = (-133, 127) if f.emax > 100 else (-24, 15)
    a = lowprec.quantize(rng.choice([-1, 1], (8, 12)) * 2.0 ** rng.integers(lo, hi, (8, 12))
                         * rng.choice([1, 1.5, 1.75], (8, 12)), f).astype(np.float64)
    b = lowprec.quantize(rng.choice([-1, 1], (12, 9)) * 2.0 ** rng.integers(lo, hi, (12, 9)),
                         f).astype(np.float64)
    # exact cancellation: the second half of each row repeats the first with a negated b
    a[:, 6:] = a[:, :6]
    b[6:] = -b[:6]
    b[11, :] = 2.0 ** lo
    c = (rng.choice([-1, 1], (8, 9)) * 2.0 ** rng.integers(-149, 127, (8, 9))).astype(np.float32)
    got = lowprec.matmul(a, b, c=c, inputs=fmt, model=gpu)
    want = matmul_mc_ref(a, b, c.astype(np.float64), select_path(gpu, f), f.emin, f.emin)
    assert (_bits(got) == _bits(want)).all()


def test_mixed_fnuz_kernel_matches_reference():
    rng = np.random.default_rng(3)
    fa, fb = lowprec.get_format("e4m3fnuz"), lowprec.get_format("e5m2fnuz")
    a, b = _draw(fa, (5, 33), rng, False), _draw(fb, (33, 6), rng, False)
    got = lowprec.matmul(lowprec.array(a, fa), lowprec.array(b, fb), model="mi300x")
    want = matmul_mc_ref(a, b, None, select_path("mi300x", fa), fa.emin, fb.emin)
    assert (_bits(got) == _bits(want)).all()


def test_results_do_not_depend_on_thread_count():
    import numba

    rng = np.random.default_rng(4)
    a = lowprec.quantize(rng.standard_normal((40, 33)), "fp16")
    b = lowprec.quantize(rng.standard_normal((33, 80)), "fp16")
    for gpu in ("mi100", "mi250x", "mi300x"):
        prev = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            r1 = lowprec.matmul(a, b, inputs="fp16", model=gpu)
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            r2 = lowprec.matmul(a, b, inputs="fp16", model=gpu)
        finally:
            numba.set_num_threads(prev)
        assert (_bits(r1) == _bits(r2)).all()


def _path_strategy():
    from hypothesis import strategies as st

    def build(scheme, n, f, fc, win):
        if scheme == "odd_even" and n % 2:
            n *= 2
        return MatrixCorePath(scheme, n, f, fc, win if scheme == "odd_even" else None)

    return st.builds(build, st.sampled_from(["exact", "pairwise", "aligned", "odd_even"]),
                     st.sampled_from([1, 2, 4, 8, 16]), st.integers(23, 30), st.integers(23, 40),
                     st.one_of(st.none(), st.integers(0, 30)))


def test_any_path_parameters_match_reference():
    # a fitter may build paths with any parameters: the kernels follow them all
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=30, deadline=None)
    @given(path=_path_strategy(), fmt=st.sampled_from(["fp16", "bf16", "e4m3fnuz", "tf32"]),
           k=st.integers(0, 37), seed=st.integers(0, 2 ** 31))
    def check(path, fmt, k, seed):
        f = lowprec.get_format(fmt)
        rng = np.random.default_rng(seed)
        a, b = _draw(f, (2, k), rng, seed % 3 == 0), _draw(f, (k, 3), rng, seed % 3 == 0)
        c = rng.choice([0.0, -0.0, 1.0, -2.5, 1e-40, 3e38, -7.0, 2.0 ** -30],
                       (2, 3)).astype(np.float32)
        got = lowprec.matmul(a, b, c=c, inputs=fmt, model=path)
        want = matmul_mc_ref(a, b, c.astype(np.float64), path, f.emin, f.emin)
        assert (_bits(got) == _bits(want)).all(), (np.asarray(got), want)

    check()


def test_out_format_rounds_the_fp32_result():
    rng = np.random.default_rng(8)
    a = lowprec.quantize(rng.standard_normal((3, 16)), "fp16")
    b = lowprec.quantize(rng.standard_normal((16, 4)), "fp16")
    r32 = lowprec.matmul(a, b, inputs="fp16", model="mi300x")
    r16 = lowprec.matmul(a, b, inputs="fp16", model="mi300x", out="fp16")
    assert (np.asarray(r16, np.float32) == lowprec.quantize(r32, "fp16")).all()


def test_compare_candidates_name_amd_models():
    from lowprec.hardware.candidates import gemm_candidates, parse_candidates, run_candidate

    assert parse_candidates(["MI300X", "mi100"]) == ["mi300x", "mi100"]
    # only when named: the default candidate list is unchanged
    assert "mi300x" not in dict(gemm_candidates("float16", "float16", "float32", 37, None))
    got = dict(gemm_candidates("float16", "float16", "float32", 37, ["mi300x", "mi100"]))
    assert got == {"mi100": {"model": "mi100"}, "mi300x": {"model": "mi300x"}}
    # a model that does not take the inputs is left out
    assert gemm_candidates("float8_e4m3fnuz", "float8_e4m3fnuz", "float32", 37,
                           ["mi250x"]) == []
    rng = np.random.default_rng(2)
    a = lowprec.quantize(rng.standard_normal((3, 20)), "fp16").astype(np.float16)
    b = lowprec.quantize(rng.standard_normal((20, 4)), "fp16").astype(np.float16)
    r = run_candidate(a, b, got["mi300x"], "float32")
    assert (_bits(r) == _bits(lowprec.matmul(a, b, model="mi300x"))).all()
