"""Correctly rounded arithmetic: kernels against the exact Fraction reference, bit for bit,
for every operation, rounding mode (stochastic included), overflow policy, FTZ/DAZ, and
the IEEE special-value and signed-zero rules."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowprec as lp
from lowprec import arith
from lowprec.reference.arith import OPS, apply
from lowprec.quantize import seed_key
from lowprec.reference import decode_exact

FLOAT_FORMATS = ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                 "float8_e5m2fnuz", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn",
                 "float8_e8m0fnu", "tfloat32", "float32", "float8_e4m3", "float8_e3m4"]
DET_MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto"]
OP_NAMES = sorted(OPS)


def bits(x) -> np.ndarray:
    """float64 bit patterns with every NaN mapped to one pattern."""
    a = np.asarray(x, np.float64).copy()
    a[np.isnan(a)] = np.nan
    return a.view(np.uint64)


def assert_same(actual, expected, msg=""):
    ba, be = bits(actual), bits(expected)
    bad = np.nonzero(ba != be)[0] if ba.ndim else ([0] if ba != be else [])
    assert len(bad) == 0, (f"{msg}: {len(bad)} mismatches, first at {bad[0]}: "
                           f"got {np.asarray(actual).reshape(-1)[bad[0]]!r}, "
                           f"expected {np.asarray(expected).reshape(-1)[bad[0]]!r}")


# --- operand strategies (values exactly representable in float32) ---------------------
def _code_value(f, c):
    return float(decode_exact(c, f))  # pure Python: cheap per draw


def format_values(fmt):
    """Any value of the format (NaN/inf codes included), as a float."""
    f = lp.get_format(fmt)
    return st.integers(0, (1 << f.bits) - 1).map(lambda c: _code_value(f, c))


def edge_values(fmt):
    f = lp.get_format(fmt)
    vals = [0.0, -0.0, f.min_subnormal, f.min_normal, f.max, 1.0, math.nan]
    if f.has_inf:
        vals.append(math.inf)
    vals += [-v for v in vals]
    return st.sampled_from(vals)


def operands(fmt):
    """Values of fmt, its edges, and arbitrary float32 values (huge exponent gaps)."""
    return st.one_of(format_values(fmt), edge_values(fmt), format_values("float32"),
                     st.floats(width=32, allow_subnormal=True))


@st.composite
def cases(draw, modes=DET_MODES + ["sr"], ops=OP_NAMES):
    fmt = draw(st.sampled_from(FLOAT_FORMATS))
    op = draw(st.sampled_from(ops))
    mode = draw(st.sampled_from(modes))
    n = draw(st.integers(1, 12))
    args = [[draw(operands(fmt)) for _ in range(n)] for _ in range(OPS[op])]
    opts = dict(rounding=mode, overflow=draw(st.sampled_from(["inf", "saturate"])),
                subnormals=draw(st.booleans()), daz=draw(st.booleans()))
    if mode == "sr":
        top = 28 if op in ("div", "sqrt") else 63
        opts["sr_bits"] = draw(st.one_of(st.none(), st.integers(1, top)))
        opts["seed"] = draw(st.integers(0, 2**40))
    return fmt, op, args, opts


def reference(fmt, op, args, opts):
    f = lp.get_format(fmt)
    key = seed_key(opts["seed"]) if opts.get("seed") is not None else 0
    kw = {k: v for k, v in opts.items() if k != "seed"}
    out = []
    for i, a in enumerate(zip(*args)):
        r = apply(op, a, f, key=key, idx=i, **kw)
        if math.isnan(r) and not f.has_nan:  # nan="zero" policy
            r = 0.0
        out.append(r)
    return np.array(out)


def run(fmt, op, args, opts):
    fn = getattr(arith, op)
    return fn(*[np.array(a, np.float64) for a in args], fmt, nan="zero", **opts)


@settings(max_examples=400)
@given(cases())
def test_matches_exact_reference(case):
    fmt, op, args, opts = case
    assert_same(run(*case), reference(*case), f"{op} {fmt} {opts}")


_SLOW = pytest.mark.slow
EXHAUSTIVE = ([("float4_e2m1fn", m) for m in DET_MODES]
              + [("float6_e2m3fn", m) for m in ("rne", "rdn")]
              + [pytest.param("float6_e2m3fn", m, marks=_SLOW) for m in ("rna", "rtz", "rup",
                                                                         "rto")]
              + [pytest.param(f, m, marks=_SLOW) for f in ("float8_e4m3fnuz", "float8_e5m2")
                 for m in DET_MODES])


@pytest.mark.parametrize("fmt,mode", EXHAUSTIVE)
def test_exhaustive_small_formats(fmt, mode):
    """Every pair of codes of a small format, every binary op, and fma with a third
    operand sweep, against the reference."""
    f = lp.get_format(fmt)
    v = f.values()
    x, y = np.meshgrid(v, v)
    x, y = x.ravel(), y.ravel()
    for op in ["add", "sub", "mul", "div", "maximum", "minimum"]:
        got = getattr(arith, op)(x, y, f, rounding=mode, nan="zero")
        exp = reference(fmt, op, [x, y], {"rounding": mode})
        assert_same(got, exp, f"{op} {fmt} {mode}")
    for op in ["sqrt", "neg", "abs"]:
        got = getattr(arith, op)(v, f, rounding=mode, nan="zero")
        assert_same(got, reference(fmt, op, [v], {"rounding": mode}), f"{op} {fmt} {mode}")
    z = np.resize(v, x.size)[::-1]
    got = arith.fma(x, y, z, f, rounding=mode, nan="zero")
    assert_same(got, reference(fmt, "fma", [x, y, z], {"rounding": mode}), f"fma {fmt}")


# --- the cases the issue names ----------------------------------------------------------
def test_bf16_plus_tiny_rtz_gives_predecessor():
    a = 1.0
    for b in [-2.0**-30, -2.0**-60, -2.0**-149]:
        r = lp.add(a, b, "bf16", rounding="rtz")
        assert r == 1.0 - 2.0**-8  # the bf16 predecessor of 1
        # rounding the float64 sum instead is wrong here: float64 already rounded to 1.0
        assert lp.quantize(a + b, "bf16", rounding="rtz") == 1.0 or b == -2.0**-30
    assert lp.add(-1.0, 2.0**-60, "bf16", rounding="rtz") == -(1.0 - 2.0**-8)
    assert lp.add(1.0, 2.0**-60, "bf16", rounding="rup") == 1.0 + 2.0**-7
    assert lp.add(1.0, 2.0**-60, "bf16", rounding="rdn") == 1.0
    assert lp.add(1.0, -2.0**-60, "bf16", rounding="rne") == 1.0
    assert lp.add(1.0, -2.0**-60, "bf16", rounding="rto") == 1.0 - 2.0**-8


def test_sub_tiny_from_power_of_two_in_every_binade():
    # The exact value lies just below a power of two: the binade below has half the spacing.
    for k in [-126, -100, -1, 0, 5, 100, 127]:
        p = 2.0**k
        for fmt in ["bf16", "fp32", "fp16", "e4m3fn"]:
            f = lp.get_format(fmt)
            if not f.min_normal <= p <= f.max:
                continue
            tiny = 2.0**-149
            if 2.0**(max(k - 1, f.emin) - f.man_bits) <= tiny:
                continue  # p - tiny is representable: nothing to round
            got = lp.sub(p, tiny, fmt, rounding="rtz")
            assert got == p - 2.0**(max(k - 1, f.emin) - f.man_bits), (fmt, k)
            assert lp.sub(p, tiny, fmt, rounding="rup") == p


def test_fma_single_rounding_differs_from_mul_then_add():
    a = 1.0 + 2.0**-7
    c = -(1.0 + 2.0**-6)
    assert lp.fma(a, a, c, "bf16") == 2.0**-14
    assert lp.add(lp.mul(a, a, "bf16"), c, "bf16") == 0.0


def test_exact_ties_round_per_mode():
    # 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7.
    assert lp.add(1.0, 2.0**-8, "bf16", rounding="rne") == 1.0
    assert lp.add(1.0, 2.0**-8, "bf16", rounding="rna") == 1.0 + 2.0**-7
    assert lp.add(1.0 + 2.0**-7, 2.0**-8, "bf16", rounding="rne") == 1.0 + 2.0**-6
    assert lp.mul(1.5, 1.5, "e2m1") == 2.0  # 2.25 is a tie between 2 and 3 -> even (2)
    assert lp.mul(1.5, 1.5, "e2m1", rounding="rna") == 2.0  # 2.25 < 2.5: below the tie
    assert lp.mul(1.5, 1.5 + 2.0**-1, "e2m1", rounding="rne") == 3.0  # 3 exactly


@pytest.mark.parametrize("mode", DET_MODES + ["sr"])
def test_signed_zero_rules(mode):
    kw = dict(rounding=mode, seed=1)
    zero = lp.add(np.array([1.5, -3.0]), np.array([-1.5, 3.0]), "bf16", **kw)
    want = -0.0 if mode == "rdn" else 0.0
    assert_same(zero, [want, want])
    assert_same(lp.sub(2.0, 2.0, "fp16", **kw), want)
    assert_same(lp.add(-0.0, -0.0, "fp16", **kw), -0.0)
    assert_same(lp.add(0.0, 0.0, "fp16", **kw), 0.0)
    assert_same(lp.add(0.0, -0.0, "fp16", **kw), want)
    assert_same(lp.fma(-0.0, 1.0, 0.0, "fp16", **kw), want)
    assert_same(lp.fma(-0.0, 1.0, -0.0, "fp16", **kw), -0.0)
    assert_same(lp.fma(2.0, 3.0, -6.0, "fp16", **kw), want)
    assert_same(lp.mul(-0.0, 5.0, "fp16", **kw), -0.0)
    assert_same(lp.mul(-2.0, 0.0, "fp16", **kw), -0.0)
    assert_same(lp.div(0.0, -5.0, "fp16", **kw), -0.0)
    assert_same(lp.div(-1.0, np.inf, "fp16", **kw), -0.0)
    assert_same(lp.sqrt(-0.0, "fp16", **kw), -0.0)
    assert_same(lp.neg(0.0, "fp16", **kw), -0.0)
    assert_same(lp.abs(-0.0, "fp16", **kw), 0.0)
    assert_same(lp.maximum(-0.0, 0.0, "fp16"), 0.0)
    assert_same(lp.minimum(0.0, -0.0, "fp16"), -0.0)
    # fnuz formats have no -0
    assert_same(lp.mul(-0.0, 1.0, "e4m3fnuz", **kw), 0.0)


def test_special_values():
    inf, nan = np.inf, np.nan
    assert np.isnan(lp.sub(inf, inf, "fp16"))
    assert np.isnan(lp.add(-inf, inf, "bf16"))
    assert np.isnan(lp.mul(0.0, inf, "fp16"))
    assert np.isnan(lp.div(0.0, 0.0, "fp16"))
    assert np.isnan(lp.div(inf, -inf, "fp16"))
    assert np.isnan(lp.sqrt(-1.0, "fp16"))
    assert np.isnan(lp.sqrt(-inf, "fp16"))
    assert np.isnan(lp.fma(0.0, inf, 1.0, "fp16"))
    assert np.isnan(lp.fma(1.0, inf, -inf, "fp16"))
    for op in ["add", "sub", "mul", "div", "maximum", "minimum"]:
        assert np.isnan(getattr(lp, op)(nan, 1.0, "bf16"))
        assert np.isnan(getattr(lp, op)(1.0, nan, "bf16"))
    assert lp.div(1.0, 0.0, "fp16") == inf
    assert lp.div(1.0, -0.0, "fp16") == -inf
    assert lp.div(-1.0, 0.0, "fp16", overflow="saturate") == -65504.0
    assert lp.sqrt(inf, "fp16") == inf
    assert lp.add(inf, 1.0, "fp16") == inf
    # e4m3fn has no infinity: x/0 is NaN under overflow="inf", +-max when saturating
    assert np.isnan(lp.div(1.0, 0.0, "e4m3fn"))
    assert lp.div(-1.0, 0.0, "e4m3fn", overflow="saturate") == -448.0
    # fp4 has neither: x/0 gives max; 0/0 has no code -> the nan policy
    assert lp.div(1.0, 0.0, "e2m1") == 6.0
    with pytest.raises(ValueError, match="float4_e2m1fn has no NaN"):
        lp.div(0.0, 0.0, "e2m1")
    assert_same(lp.div(0.0, 0.0, "e2m1", nan="zero"), 0.0)
    assert lp.sqrt(-4.0, "e2m1", nan="max") == 6.0


@pytest.mark.parametrize("fmt", ["bf16", "fp16", "e5m2", "e4m3fn", "e2m1", "e4m3fnuz"])
def test_overflow_in_every_mode(fmt):
    f = lp.get_format(fmt)
    mx = f.max
    for mode in DET_MODES:
        for ovf in ["inf", "saturate"]:
            for sign in [1.0, -1.0]:
                got = lp.add(sign * mx, sign * mx, f, rounding=mode, overflow=ovf, nan="zero")
                exp = reference(fmt, "add", [[sign * mx], [sign * mx]],
                                {"rounding": mode, "overflow": ovf})[0]
                assert_same(got, exp, f"{fmt} {mode} {ovf}")
                toward_zero = (mode in ("rtz", "rto") or (mode == "rup" and sign < 0)
                               or (mode == "rdn" and sign > 0))
                if ovf == "saturate" or toward_zero:
                    assert got == sign * mx
                elif f.has_inf:
                    assert got == sign * np.inf
                elif f.has_nan:
                    assert np.isnan(got)
                else:
                    assert got == sign * mx


def test_ftz_and_daz():
    f = lp.get_format("bf16")
    tiny = f.min_normal / 4  # subnormal in bf16
    assert lp.mul(tiny, 1.0, f) == tiny
    assert_same(lp.mul(-tiny, 1.0, f, subnormals=False), -0.0)
    assert lp.add(tiny, f.min_normal, f) == f.min_normal * 1.25
    assert lp.add(tiny, f.min_normal, f, daz=True) == f.min_normal
    assert_same(lp.mul(-tiny, 2.0**10, f, daz=True), -0.0)
    # a result that rounds up to the smallest normal is not flushed
    x = np.array([f.min_normal - f.min_subnormal])
    assert_same(lp.add(x, f.min_subnormal / 2, f, subnormals=False, rounding="rup"),
                [f.min_normal])


# --- stochastic rounding -----------------------------------------------------------------
def test_sr_reproducible_and_index_keyed():
    x = np.full(1000, 1.0)
    y = np.full(1000, 2.0**-10)
    a = lp.add(x, y, "bf16", rounding="sr", seed=7)
    b = lp.add(x, y, "bf16", rounding="sr", seed=7)
    c = lp.add(x, y, "bf16", rounding="sr", seed=8)
    assert_same(a, b)
    assert (a != c).any()
    # element i depends on (seed, i) only, not on the array's size or shape
    assert_same(lp.add(x[:10], y[:10], "bf16", rounding="sr", seed=7), a[:10])
    assert_same(lp.add(x.reshape(10, 100), 2.0**-10, "bf16", rounding="sr", seed=7),
                a.reshape(10, 100))


def test_sr_probability_of_tiny_addend():
    n = 200_000
    got = lp.add(np.ones(n), 2.0**-10, "bf16", rounding="sr", seed=3)
    assert set(np.unique(got)) == {1.0, 1.0 + 2.0**-7}
    p = np.mean(got > 1)
    assert abs(p - 1 / 8) < 6 * math.sqrt(1 / 8 * 7 / 8 / n)
    got = lp.sub(np.ones(n), 2.0**-11, "bf16", rounding="sr", seed=4)  # below 1: gap 2^-8
    p = np.mean(got < 1)
    assert abs(p - 1 / 8) < 6 * math.sqrt(1 / 8 * 7 / 8 / n)


@pytest.mark.parametrize("sr_bits", [None, 3, 12, 40])
def test_sr_product_equals_sr_conversion_of_exact_product(sr_bits):
    # A product of two fp16 values is exact in float64, so SR of the product must be the
    # foundation's SR conversion of that float64 with the same key and index, bit for bit.
    rng = np.random.default_rng(0)
    x = lp.quantize(rng.normal(size=5000), "fp16").astype(np.float64)
    y = lp.quantize(rng.normal(size=5000) * 100, "fp16").astype(np.float64)
    got = lp.mul(x, y, "e4m3fn", rounding="sr", sr_bits=sr_bits, seed=11, overflow="saturate")
    exp = lp.quantize(x * y, "e4m3fn", rounding="sr", sr_bits=sr_bits, seed=11,
                      overflow="saturate")
    assert_same(got, exp)


@settings(max_examples=150)
@given(cases(modes=["sr"]))
def test_sr_bitwise_against_reference(case):
    fmt, op, args, opts = case
    assert_same(run(*case), reference(*case), f"{op} {fmt} {opts}")


# --- API: shapes, dtypes, errors -----------------------------------------------------------
def test_broadcasting_and_result_types():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    r = lp.add(x, np.float32(0.5), "bf16")
    assert r.shape == (2, 3) and r.dtype == np.float32
    assert lp.add(x.astype(np.float64), 1.0, "bf16").dtype == np.float64
    assert lp.mul(np.float16(2), np.float16(3), "fp16").dtype == np.float16
    s = lp.add(1.0, 2.0, "bf16")
    assert np.ndim(s) == 0 and s == 3.0
    assert lp.fma(x, x, x[0], "fp32").shape == (2, 3)
    assert lp.add([1, 2], 3, "fp16").tolist() == [4.0, 5.0]


def test_errors():
    with pytest.raises(ValueError, match="unknown format"):
        lp.add(1.0, 2.0, "bf17")
    with pytest.raises(TypeError, match="fmt is required"):
        lp.add(1.0, 2.0)
    with pytest.raises(TypeError, match="int8"):
        lp.add(1.0, 2.0, "int8")
    with pytest.raises(ValueError, match="broadcast"):
        lp.add(np.ones(3), np.ones(4), "bf16")
    with pytest.raises(ValueError, match="argument y .*float32"):
        lp.mul(1.0, 0.1, "bf16")
    with pytest.raises(TypeError, match="argument x"):
        lp.sqrt(np.array(["a"]), "bf16")
    with pytest.raises(ValueError, match="rounding mode"):
        lp.add(1.0, 2.0, "bf16", rounding="nearest")
    with pytest.raises(ValueError, match="sr_bits"):
        lp.add(1.0, 2.0, "bf16", sr_bits=4)
    with pytest.raises(TypeError, match="daz"):
        lp.add(1.0, 2.0, "bf16", daz="yes")


def test_wide_integer_lparray_operands_are_checked():
    from lowprec.lparray import array

    big = array([2**30 + 1], "int32")
    with pytest.raises(ValueError, match="float32"):
        lp.fma(big, big, 0.0, "fp32")
    assert lp.add(array([3], "int8"), 0.5, "fp16") == 3.5
