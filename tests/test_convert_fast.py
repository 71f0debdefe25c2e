"""The float32 fast pass (lowprec._kernels.convert, "float32 fast pass") against the general
conversion kernel it bypasses, bit for bit: every eligible format (named and odd custom
ones), every mode it takes, both overflow policies, flush-to-zero, all NaN policies, over
random bit patterns (NaN payloads, infinities, subnormals included), values spread over
each format's range and the hard cases of lowprec.testing; quantize's direct float32
values against decode(encode()); the small-array entry points against the dispatcher and
the threaded kernels; the cached plans against changing formats and options."""

import sys

import numba
import numpy as np
import pytest

import lowprec as lp
from lowprec._kernels import convert as K
from lowprec.reference import encode_exact
from lowprec.rounding import NaNPolicy, Overflow, Rounding

Q = sys.modules["lowprec.quantize"]  # the module (lowprec.quantize is the function)

FAST_MODES = ["rne", "rna", "rtz", "rup", "rdn"]
CUSTOM = [
    lp.FloatFormat(8, 22, 127, name="e8m22"),  # 31 bits, uint32 codes, float32's range
    lp.FloatFormat(3, 5, -20, has_inf=False, nan="none", name="e3m5_b-20"),  # above 1
    lp.FloatFormat(6, 9, 40, has_inf=False, nan="neg_zero", name="e6m9fnuz_b40"),
    lp.FloatFormat(2, 0, 1, has_inf=False, nan="none", name="e2m0"),  # no mantissa
]
NAMED = [f for f in lp.list_formats() if isinstance(f, lp.FloatFormat)]
ELIGIBLE = [f for f in NAMED + CUSTOM if Q.f32_fast_applies(f, Rounding.RNE)]
ELIGIBLE_IDS = [f.name for f in ELIGIBLE]


def test_eligible_formats():
    names = set(ELIGIBLE_IDS)
    for n in ("bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn",
              "float8_e4m3fnuz", "float6_e2m3fn", "tfloat32", "e8m22"):
        assert n in names
    for n in ("float32", "float8_e8m0fnu"):  # as wide as the input; no zero/subnormals
        assert n not in names
    assert not Q.f32_fast_applies(lp.get_format("bf16"), Rounding.RTO)
    assert not Q.f32_fast_applies(lp.get_format("bf16"), Rounding.SR)
    assert not Q.f32_fast_applies(lp.get_format("int8"), Rounding.RNE)


def _inputs(f, n=6000, seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    lo = max(f.emin - f.man_bits - 3, -149)
    hi = min(f.emax + 3, 127)
    spread = (rng.uniform(1, 2, n) * np.exp2(rng.integers(lo, hi + 1, n))).astype(np.float32)
    spread *= rng.choice(np.array([-1, 1], np.float32), n)
    sub32 = (rng.integers(0, 1 << 23, 200, dtype=np.uint32)
             | (rng.integers(0, 2, 200, dtype=np.uint32) << 31)).view(np.float32)
    tricky = _tricky(f, rng)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, f.max, -f.max,
                        f.min_subnormal, f.min_subnormal / 2, 3.4e38, 1e-45], np.float32)
    payloads = np.array([0x7F800001, 0xFF800001, 0x7FC00001, 0xFFFFFFFF, 0x7FBFFFFF],
                        np.uint32).view(np.float32)
    return np.concatenate([raw, spread, sub32, tricky, special, payloads])


def _tricky(f, rng):
    """Grid values, midpoints between neighbours and float32 values 1-2 ulps either side."""
    top = (1 << (f.bits - 1)) - 1
    c = np.arange(top + 1) if top < 4096 else rng.integers(0, top + 1, 4096)
    with np.errstate(all="ignore"):
        v = f.decode_codes(c)
        w = f.decode_codes(np.minimum(c + 1, top))
        ok = np.isfinite(v) & np.isfinite(w)
        mid = ((v[ok] + w[ok]) / 2).astype(np.float32)
        base = np.concatenate([v[ok].astype(np.float32), mid])
        parts = [base]
        for k in (1, 2):
            parts.append(np.nextafter(parts[-1] if k == 2 else base, np.float32(np.inf)))
        parts.append(np.nextafter(base, np.float32(-np.inf)))
        parts.append(np.nextafter(parts[-1], np.float32(-np.inf)))
    x = np.concatenate(parts)
    return np.concatenate([x, -x])


def _general_codes(x, f, mode, ovf, ftz, nan):
    """The general kernel (encode_float_serial) on float32 bits: what the fast pass replaces."""
    out = np.empty(x.size, f.code_dtype)
    K.encode_float_serial(x.view(np.uint32), 23, 8, 127, Q.format_params(f, nan),
                          Rounding(mode).id, ovf.id, ftz, np.uint64(0), 0, out)
    return out


@pytest.mark.parametrize("f", ELIGIBLE, ids=ELIGIBLE_IDS)
@pytest.mark.parametrize("mode", FAST_MODES)
def test_encode_matches_general_kernel(f, mode):
    x = _inputs(f)
    nan = "zero" if not f.has_nan else "raise"
    for overflow in ("inf", "saturate"):
        for subnormals in (True, False):
            got = lp.encode(x, f, rounding=mode, overflow=overflow, subnormals=subnormals,
                            nan=nan)
            want = _general_codes(x, f, mode, Overflow(overflow), not subnormals,
                                  NaNPolicy(nan))
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (f.name, mode, overflow, subnormals,
                                   x[bad[:5]].view(np.uint32), got[bad[:5]], want[bad[:5]])


@pytest.mark.parametrize("f", ELIGIBLE, ids=ELIGIBLE_IDS)
@pytest.mark.parametrize("mode", FAST_MODES)
def test_encode_matches_exact_reference_sample(f, mode):
    x = _inputs(f, n=40, seed=1)[::7]
    x = x[~np.isnan(x)] if not f.has_nan else x
    got = lp.encode(x, f, rounding=mode)
    for i in range(x.size):
        want = encode_exact(float(x[i]), f, Rounding(mode), Overflow.INF, True)
        assert got[i] == want, (f.name, mode, float(x[i]), int(got[i]), want)


@pytest.mark.parametrize("f", [f for f in ELIGIBLE if Q._fits(f, np.dtype(np.float32))],
                         ids=lambda f: f.name)
@pytest.mark.parametrize("mode", FAST_MODES)
def test_quantize_values_match_decode_of_codes(f, mode):
    x = _inputs(f, seed=2)
    nan = "zero" if not f.has_nan else "raise"
    for overflow in ("inf", "saturate"):
        for subnormals in (True, False):
            kw = dict(rounding=mode, overflow=overflow, subnormals=subnormals, nan=nan)
            got = lp.quantize(x, f, **kw)
            assert got.dtype == np.float32
            want = lp.decode(_general_codes(x, f, mode, Overflow(overflow), not subnormals,
                                            NaNPolicy(nan)), f, np.float32)
            bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
            assert bad.size == 0, (f.name, mode, overflow, subnormals,
                                   x[bad[:5]].view(np.uint32), got[bad[:5]], want[bad[:5]])


@pytest.mark.parametrize("name", ["ml_dtypes", "max", "zero"])
def test_nan_policies_of_formats_without_nan(name):
    x = _inputs(lp.get_format("e2m1"), n=500)
    for fmt in ("e2m1", "float6_e3m2fn"):
        f = lp.get_format(fmt)
        got = lp.encode(x, f, nan=name)
        want = _general_codes(x, f, "rne", Overflow.INF, False, NaNPolicy(name))
        assert np.array_equal(got, want)
        assert np.array_equal(lp.quantize(x, f, nan=name).view(np.uint32),
                              lp.decode(want, f, np.float32).view(np.uint32))


@pytest.mark.parametrize("n", [1, 5, 100])
def test_nan_raises_on_the_fast_path(n):
    x = np.ones(n, np.float32)
    x[-1] = np.nan
    for fn in (lp.encode, lp.quantize):
        with pytest.raises(ValueError, match="float4_e2m1fn has no NaN"):
            fn(x, "e2m1")
        with pytest.raises(ValueError, match="float4_e2m1fn has no NaN"):
            fn(np.tile(x, (2, 1)), "e2m1")  # the general layout path too
    assert lp.encode(x, "e4m3")[-1] == 0x7F


SIZES = [0, 1, 3, 8, 100, 1000, Q.F32_PARALLEL_THRESHOLD - 1, Q.F32_PARALLEL_THRESHOLD,
         Q.F32_PARALLEL_THRESHOLD + 4097]


@pytest.mark.parametrize("n", SIZES)
def test_sizes_entry_points_and_threads(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(np.float32)
    x[::97] = np.nan
    x[::101] = -np.inf
    for fmt in ("e4m3", "bf16", "fp16", "e5m2"):
        f = lp.get_format(fmt)
        want = _general_codes(x, f, "rne", Overflow.INF, False, NaNPolicy.RAISE)
        qwant = lp.decode(want, f, np.float32).view(np.uint32)
        old = numba.get_num_threads()
        try:
            for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
                numba.set_num_threads(threads)
                for _ in range(2):  # the first call goes through the dispatcher
                    assert np.array_equal(lp.encode(x, f), want), (fmt, n, threads)
                    assert np.array_equal(lp.quantize(x, f).view(np.uint32), qwant)
        finally:
            numba.set_num_threads(old)


def test_layouts_and_shapes():
    rng = np.random.default_rng(5)
    base = (rng.standard_normal((6, 40)) * 300).astype(np.float32)
    f = lp.get_format("e4m3")
    want = _general_codes(base.reshape(-1), f, "rne", Overflow.INF, False,
                          NaNPolicy.RAISE).reshape(base.shape)
    qwant = lp.decode(want, f, np.float32)
    ro = base.copy()
    ro.flags.writeable = False
    views = {"2d": (base, want), "readonly": (ro, want), "strided": (base[:, ::3], want[:, ::3]),
             "fortran": (np.asfortranarray(base), want), "row": (base[2], want[2]),
             "col": (base[:, 7], want[:, 7]), "0d": (base[1, 1].reshape(()), want[1, 1])}
    for name, (x, w) in views.items():
        for _ in range(2):
            got = lp.encode(x, f)
            assert got.shape == x.shape and np.array_equal(got, w), name
            q = lp.quantize(x, f)
            assert q.shape == x.shape and q.dtype == np.float32
            assert np.array_equal(q.view(np.uint32),
                                  lp.decode(w, f, np.float32).view(np.uint32)), name
    # unaligned float32 data (a view into a byte buffer at an odd offset)
    buf = np.zeros(base.size * 4 + 1, np.uint8)
    un = buf[1:].view(np.float32)
    un[:] = base.reshape(-1)
    assert not un.flags.aligned
    for _ in range(2):
        assert np.array_equal(lp.encode(un, f), want.reshape(-1))
        assert np.array_equal(lp.quantize(un, f).view(np.uint32),
                              qwant.reshape(-1).view(np.uint32))
    # scalars and lists keep taking the general entry
    assert lp.encode(np.float32(300.0), f) == lp.encode(np.array([300.0], np.float32), f)[0]
    assert lp.quantize([1.1, 2.2], "bf16").dtype == np.float64


def test_plans_follow_format_and_options():
    x = np.array([1.3, -70000.0, 3e-6, 0.1], np.float32)
    a = lp.FloatFormat(4, 3, 7, name="a")
    b = lp.FloatFormat(5, 2, 15, name="b")
    for fmt in (a, b, a, "e5m2", "e4m3fn", a):
        f = lp.get_format(fmt)
        for mode in FAST_MODES:
            for ovf in (None, "saturate"):
                want = _general_codes(x, f, mode, Overflow(ovf or "inf"), False,
                                      NaNPolicy.RAISE)
                assert np.array_equal(lp.encode(x, fmt, rounding=mode, overflow=ovf), want)
    # a transient format object whose id may be reused by the next one
    for bias in (3, 7, 11, 3):
        f = lp.FloatFormat(4, 3, bias)
        want = _general_codes(x, f, "rne", Overflow.INF, False, NaNPolicy.RAISE)
        assert np.array_equal(lp.encode(x, f), want)
    # option errors still come from the general validation
    with pytest.raises(ValueError, match="unknown rounding"):
        lp.encode(x, "e4m3", rounding="nearest")
    with pytest.raises(ValueError, match="sr_bits"):
        lp.encode(x, "e4m3", sr_bits=4)
    with pytest.raises(ValueError, match="wrap"):
        lp.quantize(x, "e4m3", overflow="wrap")
    lp.encode(x, "e4m3", subnormals=True)
    with pytest.raises(TypeError, match="subnormals"):
        lp.encode(x, "e4m3", subnormals=1)


def test_sr_and_rto_are_untouched():
    # the fast pass never takes them: results equal the general kernel's
    x = _inputs(lp.get_format("bf16"), n=3000)
    for fmt in ("bf16", "e4m3"):
        f = lp.get_format(fmt)
        got = lp.encode(x, f, rounding="rto")
        assert np.array_equal(got, _general_codes(x, f, "rto", Overflow.INF, False,
                                                  NaNPolicy.RAISE))
        key = Q.seed_key(9)
        want = np.empty(x.size, f.code_dtype)
        K.encode_float_serial(x.view(np.uint32), 23, 8, 127, Q.format_params(f), Rounding.SR.id,
                              Overflow.INF.id, False, np.uint64(key), 0, want)
        assert np.array_equal(lp.encode(x, f, rounding="sr", seed=9), want)
