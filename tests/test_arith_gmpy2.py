"""Second oracle: MPFR (gmpy2) with the target's precision and exponent range and
subnormalize=True, for the IEEE-layout formats (all-ones significand at max, infinities),
in the four directed/nearest modes MPFR shares with IEEE 754."""

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowprec as lp
from lowprec import arith
from lowprec.reference.arith import apply
from lowprec.reference import decode_exact

gmpy2 = pytest.importorskip("gmpy2")

IEEE_FORMATS = ["float16", "bfloat16", "float8_e5m2", "tfloat32", "float32", "float8_e4m3",
                "float8_e3m4"]
MODES = {"rne": "RoundToNearest", "rtz": "RoundToZero", "rup": "RoundUp", "rdn": "RoundDown"}
OPS = {"add": 2, "sub": 2, "mul": 2, "div": 2, "fma": 3, "sqrt": 1}


def mpfr_context(fmt, mode):
    f = lp.get_format(fmt)
    return gmpy2.context(precision=f.precision, emin=f.emin - f.man_bits + 1,
                         emax=f.emax + 1, subnormalize=True,
                         round=getattr(gmpy2, MODES[mode]))


def mpfr_op(op, args, ctx):
    xs = [gmpy2.mpfr(float(a), 64) for a in args]  # exact: operands have <= 24 bits
    fn = {"add": ctx.add, "sub": ctx.sub, "mul": ctx.mul, "div": ctx.div, "fma": ctx.fma,
          "sqrt": ctx.sqrt}[op]
    return float(fn(*xs))


def bits(x):
    a = np.asarray(x, np.float64).copy()
    a[np.isnan(a)] = np.nan
    return a.view(np.uint64)


def random_values(fmt, n, rng):
    """Random codes of fmt plus every special, as float64."""
    f = lp.get_format(fmt)
    c = rng.integers(0, 1 << f.bits, n, dtype=np.uint64).astype(f.code_dtype)
    v = lp.decode(c, f, np.float64)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, f.max, -f.max, f.min_subnormal,
               -f.min_subnormal, f.min_normal, 1.0]
    v[: len(special)] = special
    return rng.permutation(v)


@pytest.mark.parametrize("fmt", IEEE_FORMATS)
@pytest.mark.parametrize("mode", list(MODES))
def test_kernels_match_mpfr(fmt, mode):
    rng = np.random.default_rng(zlib.crc32(f"{fmt}-{mode}".encode()))
    ctx = mpfr_context(fmt, mode)
    n = 1500
    for op, k in OPS.items():
        args = [random_values(fmt, n, rng) for _ in range(k)]
        if op in ("add", "sub", "fma"):  # make cancellation and near-cancellation common
            args[-1][: n // 3] = -args[0][: n // 3] * rng.choice([1.0, 1.0 + 2.0**-5], n // 3)
            args[-1][: n // 3] = lp.quantize(args[-1][: n // 3], fmt)
        got = getattr(arith, op)(*args, fmt, rounding=mode)
        exp = np.array([mpfr_op(op, a, ctx) for a in zip(*args)])
        bad = np.nonzero(bits(got) != bits(exp))[0]
        assert len(bad) == 0, (op, [a[bad[0]] for a in args], got[bad[0]], exp[bad[0]])


@pytest.mark.parametrize("fmt", ["float16", "bfloat16"])
@pytest.mark.parametrize("mode", list(MODES))
def test_tiny_addends_and_huge_exponent_gaps(fmt, mode):
    """Operands from all of float32 against a 16-bit target: the sum is rarely exact in
    float64 only when the gap is huge, which is where directed modes go wrong."""
    rng = np.random.default_rng(5)
    ctx = mpfr_context(fmt, mode)
    n = 3000
    a = lp.quantize(rng.normal(size=n) * 2.0 ** rng.integers(-20, 20, n), fmt)
    b = (rng.normal(size=n) * 2.0 ** rng.integers(-149, 0, n)).astype(np.float32)
    b = b.astype(np.float64)
    for op in ("add", "sub"):
        got = getattr(arith, op)(a, b, fmt, rounding=mode)
        exp = np.array([mpfr_op(op, t, ctx) for t in zip(a, b)])
        assert (bits(got) == bits(exp)).all(), op
    c = (rng.normal(size=n) * 2.0 ** rng.integers(-140, 0, n)).astype(np.float32)
    got = arith.fma(a, a, c.astype(np.float64), fmt, rounding=mode)
    exp = np.array([mpfr_op("fma", t, ctx) for t in zip(a, a, c)])
    assert (bits(got) == bits(exp)).all(), "fma"


@pytest.mark.parametrize("mode", list(MODES))
def test_sqrt_every_fp16_value(mode):
    ctx = mpfr_context("float16", mode)
    v = lp.float16.values()
    got = arith.sqrt(v, "fp16", rounding=mode)
    exp = np.array([mpfr_op("sqrt", [x], ctx) for x in v])
    assert (bits(got) == bits(exp)).all()


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_sqrt_every_bf16_and_div_every_e5m2_pair(mode):
    ctx = mpfr_context("bfloat16", mode)
    v = lp.bfloat16.values()
    got = arith.sqrt(v, "bf16", rounding=mode)
    assert (bits(got) == bits([mpfr_op("sqrt", [x], ctx) for x in v])).all()
    ctx = mpfr_context("float8_e5m2", mode)
    v = lp.float8_e5m2.values()
    x, y = (g.ravel() for g in np.meshgrid(v, v))
    for op in ("add", "mul", "div"):
        got = getattr(arith, op)(x, y, "e5m2", rounding=mode)
        assert (bits(got) == bits([mpfr_op(op, t, ctx) for t in zip(x, y)])).all(), op


@settings(max_examples=150)
@given(fmt=st.sampled_from(IEEE_FORMATS), mode=st.sampled_from(list(MODES)),
       op=st.sampled_from(list(OPS)), data=st.data())
def test_fraction_reference_agrees_with_mpfr(fmt, mode, op, data):
    """The two oracles agree (so the Fraction reference is itself checked)."""
    f = lp.get_format(fmt)
    vals = st.one_of(st.integers(0, (1 << f.bits) - 1).map(
        lambda c: float(decode_exact(c, f))),
        st.floats(width=32))
    args = [data.draw(vals) for _ in range(OPS[op])]
    ref = apply(op, args, f, rounding=mode)
    exp = mpfr_op(op, args, mpfr_context(fmt, mode))
    assert bits(ref) == bits(exp) or (math.isnan(ref) and math.isnan(exp)), (args, ref, exp)
