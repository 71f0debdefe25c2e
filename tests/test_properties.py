"""Hypothesis properties of every conversion into every registered format: monotonic,
idempotent, equal to the exact reference (lowprec.reference, Fraction arithmetic), directed
bounds, nearest for RNE/RNA, ties; driven by lowprec.testing strategies."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lowprec as lp
from lowprec.quantize import seed_key
from lowprec.reference import round_exact
from lowprec.testing import midpoints, tricky_floats

# every registered format: a newly registered one is property-tested without editing this file
FORMATS = [f.name for f in lp.list_formats()]
DETERMINISTIC = [m.value for m in lp.Rounding if m is not lp.Rounding.SR]
# half the profile's examples per (property, format): the format list grows with the registry
per_format = settings(max_examples=max(25, settings.default.max_examples // 2))


def q(x, fmt, mode, **kw):
    return float(lp.quantize(np.float64(x), fmt, rounding=mode, overflow="saturate",
                             nan="zero", **kw))


def _lowest(f):
    """Smallest finite value of a format (E8M0 has neither zero nor negatives)."""
    if isinstance(f, lp.FixedFormat):
        return f.min
    if f.signed:
        return -f.max
    return 0.0 if f.zero else f.min_normal


def _same(a, b):
    """Equal as float64 bit patterns (so -0 != +0), or both NaN."""
    a, b = np.float64(a), np.float64(b)
    return (np.isnan(a) and np.isnan(b)) or a.view(np.uint64) == b.view(np.uint64)


def test_formats_come_from_the_registry():
    assert len(FORMATS) == len(lp.list_formats()) >= 19
    assert {"float32", "tfloat32", "float8_e8m0fnu", "int8", "int32"} <= set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
@per_format
@given(data=st.data())
def test_monotonic(fmt, data):
    x = data.draw(tricky_floats(fmt).filter(lambda v: not math.isnan(v)))
    y = data.draw(tricky_floats(fmt).filter(lambda v: not math.isnan(v)))
    x, y = min(x, y), max(x, y)
    for mode in DETERMINISTIC:
        qx, qy = q(x, fmt, mode), q(y, fmt, mode)
        if not (math.isnan(qx) or math.isnan(qy)):  # E8M0: negatives and zero are NaN
            assert qx <= qy, (mode, x, y, qx, qy)


@pytest.mark.parametrize("fmt", FORMATS)
@per_format
@given(data=st.data())
def test_idempotent_and_matches_reference(fmt, data):
    # quantize (the numba kernels) against round_exact (Fraction arithmetic, which mirrors
    # the random stream of stochastic rounding: a scalar is element 0)
    x = data.draw(tricky_floats(fmt))
    for mode in DETERMINISTIC + ["sr"]:
        kw = {"seed": 1} if mode == "sr" else {}
        v = lp.quantize(np.float64(x), fmt, rounding=mode, nan="zero", **kw)
        again = lp.quantize(v, fmt, rounding=mode, nan="zero", **kw)
        assert _same(v, again), (mode, x, v, again)
        ref = round_exact(x, fmt, rounding=mode, key=seed_key(1) if mode == "sr" else 0, idx=0)
        assert _same(v, float(ref)), (mode, x, v, ref)


@pytest.mark.parametrize("fmt", FORMATS)
@per_format
@given(data=st.data())
def test_directed_bounds_and_nearest(fmt, data):
    f = lp.get_format(fmt)
    x = data.draw(tricky_floats(fmt, dtype=np.float64).filter(
        lambda v: math.isfinite(v) and _lowest(f) <= v <= f.max))
    dn, up, z = q(x, fmt, "rdn"), q(x, fmt, "rup"), q(x, fmt, "rtz")
    assert dn <= x <= up and abs(z) <= abs(x)
    assert z in (dn, up)
    for mode in ("rne", "rna", "rto", "sr"):
        r = q(x, fmt, mode, **({"seed": 3} if mode == "sr" else {}))
        assert r in (dn, up)
    for mode in ("rne", "rna"):
        r = q(x, fmt, mode)
        assert abs(r - x) <= min(abs(dn - x), abs(up - x))


@pytest.mark.parametrize("fmt", FORMATS)
@per_format
@given(data=st.data())
def test_ties(fmt, data):
    f = lp.get_format(fmt)
    m = data.draw(midpoints(fmt, signed=f.signed))
    dn, up = q(m, fmt, "rdn"), q(m, fmt, "rup")
    if up == f.max and abs(m) > up:
        return
    assert q(m, fmt, "rna") == (up if m > 0 else dn)
    if isinstance(f, lp.FloatFormat) and f.man_bits == 0:
        # E8M0: every significand is 1, so there is no even one: ties go up (as ml_dtypes)
        assert q(m, fmt, "rne") == up
        return
    even = lambda v: int(lp.encode(np.float64(v), fmt)) % 2 == 0
    assert even(q(m, fmt, "rne"))
