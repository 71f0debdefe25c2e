"""LPArray reductions (sum, dot, mean) with an explicit accumulator format and order,
against the step-by-step exact references in lowprec.reference.arith, bit for bit."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowprec as lp
from lowprec.reference.arith import apply, dot_reference, sum_reference
from lowprec.lparray import LPArray, RoundingContext
from lowprec.quantize import seed_key
from lowprec.reference import decode_exact

FORMATS = ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn",
           "float6_e3m2fn"]
ACCS = [None, "float32", "bfloat16", "float16", "float8_e5m2"]
ORDERS = ["sequential", "pairwise", "kahan"]
MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto", "sr"]


def bits(x):
    a = np.asarray(x, np.float64).copy()
    a[np.isnan(a)] = np.nan
    return a.view(np.uint64)


def sr_key(seed, k=1):
    """Key of the k-th stochastic operation of a context seeded with ``seed``."""
    ctx = RoundingContext("sr", seed=seed)
    for _ in range(k - 1):
        ctx.next_seed()
    return seed_key(ctx.next_seed())


@st.composite
def reductions(draw):
    fmt = lp.get_format(draw(st.sampled_from(FORMATS)))
    n = draw(st.integers(0, 40))
    codes = draw(st.lists(st.integers(0, (1 << fmt.bits) - 1), min_size=n, max_size=n))
    vals = [float(decode_exact(c, fmt)) for c in codes]
    if not fmt.has_nan:
        vals = [v for v in vals if not math.isnan(v)]
    acc = draw(st.sampled_from(ACCS))
    order = draw(st.sampled_from(ORDERS))
    mode = draw(st.sampled_from(MODES))
    seed = draw(st.integers(0, 2**32))
    return fmt, vals, acc, order, mode, seed


def lparray(vals, fmt, mode, seed):
    codes = lp.encode(np.array(vals, np.float64), fmt)
    return LPArray.from_codes(codes, fmt, rounding=mode, seed=seed, overflow="saturate")


@settings(max_examples=150)
@given(reductions())
def test_sum_matches_reference(case):
    fmt, vals, acc, order, mode, seed = case
    a = lparray(vals, fmt, mode, seed)
    got = a.sum(acc=acc, order=order)
    accf = lp.get_format(acc) if acc else fmt
    assert got.fmt == accf and got.shape == ()
    key = sr_key(seed) if mode == "sr" else 0
    exp = sum_reference(vals, accf, order, mode, "saturate", key=key)
    assert bits(got.item()) == bits(exp), (vals, got.item(), exp)


@settings(max_examples=150)
@given(reductions(), st.data())
def test_dot_matches_reference(case, data):
    fmt, vals, acc, order, mode, seed = case
    other = data.draw(st.permutations(vals))
    a, b = lparray(vals, fmt, mode, seed), lparray(other, fmt, mode, seed)
    got = a.dot(b, acc=acc, order=order)
    accf = lp.get_format(acc) if acc else fmt
    key = sr_key(seed) if mode == "sr" else 0
    exp = dot_reference(vals, list(other), accf, order, mode, "saturate", key=key)
    assert bits(got.item()) == bits(exp), (vals, other, got.item(), exp)


@settings(max_examples=80)
@given(reductions())
def test_mean_is_sum_then_one_division(case):
    fmt, vals, acc, order, mode, seed = case
    if mode == "sr" or not vals:
        return
    a = lparray(vals, fmt, mode, seed)
    accf = lp.get_format(acc) if acc else fmt
    s = sum_reference(vals, accf, order, mode, "saturate")
    exp = apply("div", [s, float(len(vals))], accf, mode, "saturate")
    if math.isnan(exp) and not accf.has_nan:
        with pytest.raises(ValueError, match="no NaN"):
            a.mean(acc=acc, order=order)
        return
    assert bits(a.mean(acc=acc, order=order).item()) == bits(exp)


def test_axis_keepdims_and_numpy_sum():
    rng = np.random.default_rng(0)
    x = lp.quantize(rng.normal(size=(3, 4, 5)), "bf16")
    from lowprec.lparray import array

    a = array(x, "bf16", rounding="rtz")
    for axis in [0, 1, 2, -1]:
        got = a.sum(axis=axis, acc="fp32", order="pairwise")
        moved = np.moveaxis(x, axis, -1)
        assert got.shape == moved.shape[:-1] and got.fmt == lp.float32
        exp = np.array([sum_reference(r, "fp32", "pairwise", "rtz")
                        for r in moved.reshape(-1, moved.shape[-1])]).reshape(got.shape)
        assert (bits(got.to_numpy(np.float64)) == bits(exp)).all()
        assert a.sum(axis=axis, keepdims=True).shape == tuple(
            1 if i == axis % 3 else s for i, s in enumerate(x.shape))
    assert a.sum(keepdims=True).shape == (1, 1, 1)
    assert a.mean(axis=1).shape == (3, 5)
    np_sum = np.sum(a)
    assert isinstance(np_sum, LPArray) and np_sum.item() == a.sum().item()
    with pytest.raises(ValueError, match="out of bounds"):
        a.sum(axis=3)
    with pytest.raises(ValueError, match="order"):
        a.sum(order="random")
    with pytest.raises(TypeError, match="acc="):
        a.sum(dtype=np.float64)
    with pytest.raises(ValueError, match="1-D"):
        a.dot(a)


def test_orders_differ_where_they_should():
    from lowprec.lparray import array

    # 1 followed by many halves of an ulp: sequential RNE never leaves 1 (each step is a
    # tie to even), pairwise adds the small terms together first, Kahan compensates.
    x = np.array([1.0] + [2.0**-8] * 64)
    a = array(x, "bf16")
    assert a.sum().item() == 1.0
    assert a.sum(order="pairwise").item() == sum_reference(x, "bf16", "pairwise") > 1.2
    assert a.sum(order="kahan").item() == sum_reference(x, "bf16", "kahan") > 1.2
    assert a.sum(acc="fp32").item() == 1.25
    assert a.dot(array(np.ones(65), "bf16")).item() == 1.0


def test_stochastic_reductions_reproducible():
    from lowprec.lparray import array

    def run():
        a = array(np.full(500, 2.0**-9), "bf16", rounding="sr", seed=9)
        return a.sum().item(), a.sum().item()

    (s1, t1), (s2, t2) = run(), run()
    assert s1 == s2 and t1 == t2
    # SR keeps the sum unbiased where RNE stagnates: 500 * 2^-9 = 0.9765625
    assert 0.9 < s1 < 1.05
