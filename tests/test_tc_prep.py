"""The fast tensor-core kernel's operands built from LPArray codes (lowprec._kernels.tc_prep)
are the ones tensorcore_fast.prepare builds from float64 values, and lowprec.matmul on
LPArrays with a model (the direct path) gives the reference kernel's bits."""

import numpy as np
import pytest

import lowprec
import lowprec.gemm as lgemm
from lowprec._kernels import plain, tc_prep
from lowprec._kernels import tensorcore_fast as tcf
from lowprec.hardware import BlockFMAModel, get_model, list_models, select_block
from lowprec.lparray import LPArray, array as lparray
from lowprec.quantize import decode


def _bits(x):
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


def _same(x, y):
    x, y = np.asarray(x), np.asarray(y)
    return x.shape == y.shape and x.dtype == y.dtype and (_bits(x) == _bits(y)).all()


def _codes(fmt, shape, rng, *, zeros=0.1, scale=1.0, special=0.0, tiny=0.0):
    """Codes of random values of fmt: normal data, zeros, the format's subnormals (tiny),
    NaN / inf (special)."""
    f = lowprec.get_format(fmt)
    x = rng.standard_normal(shape) * scale
    x = np.where(rng.random(shape) < zeros, 0.0, x)
    sub = f.min_subnormal * rng.integers(1, 4, shape) * rng.choice([-1, 1], shape)
    x = np.where(rng.random(shape) < tiny, sub, x)
    codes = np.asarray(lowprec.encode(x, f, overflow="saturate"))
    bad = np.flatnonzero(~np.isfinite(f.values()))  # NaN and inf codes
    if special and bad.size:
        codes = np.where(rng.random(shape) < special, rng.choice(bad, shape), codes)
    return codes.astype(f.code_dtype)


def _tabs(fmt, dtype, emin, norm):
    return lgemm._code_tables(lowprec.get_format(fmt), np.dtype(dtype), emin, norm)


FORMATS = ["e4m3", "e5m2", "bf16", "fp16", "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn",
           "float8_e3m4", "float8_e4m3fnuz"]


def _prep_all_ways(codes, tab, ptab, jt):
    """prep_codes by the compiled kernel, the numpy twin and the plain-Python copy."""
    nb, rows, cols = codes.shape
    nt = -(-cols // jt)
    res = []
    for fn in (tc_prep.prep_codes, tc_prep._numpy, plain.copy_of(tc_prep.prep_codes)):
        for mark in (True, False):  # stats from the seen codes / from the elements
            vals = np.full(nb * nt * rows * jt, np.nan, np.float32)  # every element written
            pows = np.full_like(vals, np.nan)
            seen = np.zeros(tab.size if mark else 0, np.uint8)
            stats = np.full(3, -1.0)
            fn(codes.reshape(-1), tab, ptab, rows, cols, jt, vals, pows, seen, stats)
            res.append((vals.reshape(nb, nt, rows, jt), pows.reshape(nb, nt, rows, jt),
                        seen, stats))
    return res


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("norm", [False, True])
def test_prep_codes_matches_numpy_decode_and_packing(fmt, norm):
    rng = np.random.default_rng(abs(hash((fmt, norm))) % 2**32)
    f = lowprec.get_format(fmt)
    emin = max(f.emin, -126) if not norm else f.emin
    tabs = _tabs(fmt, f.code_dtype, emin, norm)
    assert tabs is not None
    for shape in [(1, 1, 1), (2, 7, 5), (1, 33, 17), (3, 5, 40), (1, 64, 32)]:
        for special in (0.0, 0.05):
            codes = _codes(fmt, shape, rng, tiny=0.1, special=special)
            x = decode(codes, f, dtype=np.float64)
            fin = np.isfinite(x)
            x32 = np.where(fin, x, 0.0).astype(np.float32)
            assert (x32 == np.where(fin, x, 0.0)).all()  # the format fits float32
            p32 = np.abs(x32) if norm else tcf._pow2_f32(x32.copy(), emin)
            span = tcf._span(x32)
            for jt in (shape[2], tcf._JT):
                ways = _prep_all_ways(codes, *tabs, jt)
                for vals, pows, seen, stats in ways:
                    want_v = x.astype(np.float32)
                    want_p = p32
                    if jt == tcf._JT:
                        want_v, want_p = tcf.pack_panels(want_v), tcf.pack_panels(want_p)
                    else:
                        want_v, want_p = want_v[:, None], want_p[:, None]
                    assert _same(vals, want_v) and _same(pows[..., :], np.where(
                        np.isfinite(want_v), want_p, 0.0).astype(np.float32))
                    if seen.size:
                        assert set(np.flatnonzero(seen)) == set(codes.reshape(-1).tolist())
                    assert stats[2] == (0.0 if fin.all() else 1.0)
                    assert (stats[0], stats[1]) == (span if span else (np.inf, 0.0))
                for other in ways[1:]:
                    for i in (0, 1, 3):  # values, powers, stats
                        assert _same(ways[0][i], other[i])


def test_tables_ignore_high_code_bits():
    """A code's bits above its format's width are ignored (as decode does)."""
    f = lowprec.get_format("float4_e2m1fn")
    tab, ptab = _tabs(f, np.uint8, f.emin, False)
    assert tab.size == 256
    codes = np.arange(256, dtype=np.uint8)
    assert _same(tab, decode(codes, f, dtype=np.float32))
    assert _same(ptab[:16], ptab[16:32])


def _old_prepare(blk, fa, fb, ca, cb):
    """What _run_model gives tc_gemm_fast for (finite) operands: tensorcore_fast.prepare on
    float64 values."""
    fa, fb = lowprec.get_format(fa), lowprec.get_format(fb)
    conv = lowprec.get_format(blk.convert_inputs) if blk.convert_inputs else None
    av, bv = decode(ca, fa, dtype=np.float64), decode(cb, fb, dtype=np.float64)
    return tcf.prepare(blk, fa.precision, fb.precision, av, bv, (conv or fa).emin,
                       (conv or fb).emin)


def _new_prepare(blk, fa, fb, ca, cb):
    fa, fb = lowprec.get_format(fa), lowprec.get_format(fb)
    conv = lowprec.get_format(blk.convert_inputs) if blk.convert_inputs else None
    ea, eb = (conv or fa).emin, (conv or fb).emin
    ta = _tabs(fa, ca.dtype, ea, blk.normalise_products)
    tb = _tabs(fb, cb.dtype, eb, blk.normalise_products)
    if ta is None or tb is None:
        return None
    return tc_prep.prepare_codes(blk, fa.precision, fb.precision, ca, ta, cb, tb, ea, eb)


def _agree(old, new):
    if old is None or new is None:
        return old is None and new is None
    return all(_same(u, v) for u, v in zip(old[:4], new[:4])) and old[4] == new[4]


BLOCKS = [select_block("h100", "e4m3", "fp32"), select_block("b200", "e4m3", "fp32"),
          select_block("a100", "bf16", "fp32"), select_block("v100", "fp16", "fp32"),
          select_block("b200", "e4m3", "fp16"),  # convert_inputs fp16
          BlockFMAModel(8, 20, "rne", "fp32", normalise_products=True),
          BlockFMAModel(4, 18, "rtz", "fp32"),
          BlockFMAModel(4, 30, "rtz", "fp32"),  # int32 sums could overflow: declined
          BlockFMAModel(16, 0, "rtz", "fp32")]  # frac_bits < 1: declined


@pytest.mark.parametrize("blk", BLOCKS, ids=lambda b: b.name or f"n{b.n}f{b.frac_bits}")
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "bf16", "fp16"])
def test_prepare_codes_matches_prepare(blk, fmt):
    rng = np.random.default_rng(abs(hash((blk, fmt))) % 2**32)
    decided = set()
    for (nb, m, k, n) in [(1, 1, 1, 1), (1, 5, 33, 70), (2, 17, 9, 16), (3, 4, 40, 33)]:
        for kind in ("plain", "zeros", "tiny", "wide", "allzero"):
            kw = dict(zeros=0.3 if kind == "zeros" else 0.1, tiny=0.2 if kind == "tiny" else 0,
                      scale=2.0 ** 60 if kind == "wide" else 1.0)
            ca = _codes(fmt, (nb, m, k), rng, **kw)
            cb = _codes(fmt, (nb, k, n), rng, **(dict(kw, scale=2.0 ** -60) if kind == "wide"
                                                 else kw))
            if kind == "allzero":
                ca = np.zeros_like(ca)
            old, new = _old_prepare(blk, fmt, fmt, ca, cb), _new_prepare(blk, fmt, fmt, ca, cb)
            assert _agree(old, new), (nb, m, k, n, kind)
            decided.add(new is None)
    takes = 1 <= blk.frac_bits <= 25
    if not takes:
        assert decided == {True}
    elif fmt in ("e4m3", "e5m2", "fp16"):
        assert decided == {False}  # the fast kernel takes every one of these
    else:
        assert decided == {False, True}  # wide bf16 data: products beyond float32


def test_prepare_codes_declines_non_finite():
    rng = np.random.default_rng(3)
    blk = select_block("h100", "fp16", "fp32")
    tabs = _tabs("fp16", np.uint16, -14, False)
    ca = _codes("fp16", (1, 4, 20), rng)
    cb = _codes("fp16", (1, 20, 5), rng)
    assert tc_prep.prepare_codes(blk, 11, 11, ca, tabs, cb, tabs, -14, -14) is not None
    for x in (ca, cb):
        x[0, 1, 2] = 0x7C00  # +inf
        assert tc_prep.prepare_codes(blk, 11, 11, ca, tabs, cb, tabs, -14, -14) is None
        x[0, 1, 2] = 0x7E00  # NaN
        assert tc_prep.prepare_codes(blk, 11, 11, ca, tabs, cb, tabs, -14, -14) is None
        x[0, 1, 2] = 0


def test_code_tables_decline_formats_beyond_float32():
    wide = lowprec.FloatFormat(10, 5, 511, name="test_e10m5_tcprep")  # 16 bits, beyond fp32
    assert lgemm._code_tables(wide, np.dtype(np.uint16), -126, False) is None
    f32 = lowprec.get_format("fp32")
    assert lgemm._code_tables(f32, np.dtype(np.uint32), -126, False) is None
    e8m0 = lowprec.get_format("float8_e8m0fnu")
    assert lgemm._code_tables(e8m0, np.dtype(np.uint8), e8m0.emin, False) is None  # emin -127


# --- end to end: lowprec.matmul on LPArrays ---------------------------------------------


def _spy(monkeypatch):
    """Records whether each matmul took the direct path (prepare_codes gave operands)."""
    took = []
    real = tc_prep.prepare_codes

    def spy(*args):
        res = real(*args)
        took.append(res is not None)
        return res

    monkeypatch.setattr(tc_prep, "prepare_codes", spy)
    return took


def _both(monkeypatch, a, b, **kw):
    """(direct-path result, reference-kernel result) of lowprec.matmul."""
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    fast = lowprec.matmul(a, b, **kw)
    monkeypatch.setattr(lgemm, "_TC_FAST", False)
    slow = lowprec.matmul(a, b, **kw)
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    return fast, slow


PATHS = sorted({(g, i) for g in list_models() for (i, o) in get_model(g).paths
                if o == "float32" and i != "tfloat32"})


@pytest.mark.parametrize("gpu,fin", PATHS)
def test_lparrays_on_every_named_path_match_reference_kernel(monkeypatch, gpu, fin):
    rng = np.random.default_rng(abs(hash((gpu, fin))) % 2**32)
    took = _spy(monkeypatch)
    tiny = 0.0 if fin == "bfloat16" else 0.05  # bf16 subnormal products leave float32
    for (m, k, n) in [(1, 1, 1), (3, 7, 5), (5, 33, 70), (17, 65, 131), (2, 130, 64),
                      (33, 300, 3)]:
        la = LPArray(_codes(fin, (m, k), rng, tiny=tiny), fin)
        lb = LPArray(_codes(fin, (k, n), rng, tiny=tiny), fin)
        fast, slow = _both(monkeypatch, la, lb, model=gpu)
        assert type(fast) is np.ndarray and fast.dtype == np.float32
        assert _same(fast, slow), (m, k, n)
    assert took == [True] * 6


@pytest.mark.parametrize("gpu", ["h100", "ada", "b200"])
def test_mixed_fp8_lparrays(monkeypatch, gpu):
    rng = np.random.default_rng(5)
    took = _spy(monkeypatch)
    la = LPArray(_codes("e4m3", (9, 70), rng), "e4m3")
    lb = LPArray(_codes("e5m2", (70, 20), rng), "e5m2")
    fast, slow = _both(monkeypatch, la, lb, model=gpu)
    assert _same(fast, slow) and took == [True]


def test_batches_chunk_and_transposed_views(monkeypatch):
    rng = np.random.default_rng(8)
    took = _spy(monkeypatch)
    a3 = LPArray(_codes("bf16", (3, 6, 40), rng), "bf16")
    b3 = LPArray(_codes("bf16", (3, 40, 21), rng), "bf16")
    b2 = LPArray(_codes("bf16", (40, 21), rng), "bf16")
    a1 = LPArray(_codes("bf16", (1, 6, 40), rng), "bf16")
    for a, b, shape in [(a3, b3, (3, 6, 21)), (a3, b2, (3, 6, 21)), (a1, b3, (3, 6, 21))]:
        fast, slow = _both(monkeypatch, a, b, model="h100")
        assert fast.shape == shape and _same(fast, slow)
    fast, slow = _both(monkeypatch, a3, b3, model="a100", chunk=16)  # promotion interval
    assert _same(fast, slow)
    at = LPArray(np.ascontiguousarray(_codes("bf16", (40, 6), rng)).T, "bf16")  # a view
    fast, slow = _both(monkeypatch, at, b2, model="h100")
    assert _same(fast, slow)
    assert took == [True] * 5


def test_specials_and_declined_plans_take_the_general_path(monkeypatch):
    rng = np.random.default_rng(9)
    took = _spy(monkeypatch)
    ca = _codes("bf16", (8, 40), rng)
    cb = _codes("bf16", (40, 12), rng)
    ca[2, 3] = 0x7F80  # +inf
    cb[5, 7] = 0x7FC0  # NaN
    fast, slow = _both(monkeypatch, LPArray(ca, "bf16"), LPArray(cb, "bf16"), model="h100")
    assert _same(fast, slow) and np.isnan(fast).any() and np.isinf(fast).any()
    wa = LPArray(_codes("bf16", (8, 40), rng, scale=2.0 ** 100), "bf16")
    wb = LPArray(_codes("bf16", (40, 12), rng, scale=2.0 ** 40), "bf16")
    fast, slow = _both(monkeypatch, wa, wb, model="h100")  # products beyond float32
    assert _same(fast, slow)
    assert took == [False, False]


def test_addend_and_scales(monkeypatch):
    """c (arrays, broadcast rows, LPArrays, subnormal and large values), promotion and
    scales take the direct path; a non-finite c the general one."""
    rng = np.random.default_rng(15)
    took = _spy(monkeypatch)
    la = LPArray(_codes("fp16", (2, 9, 70), rng), "fp16")
    lb = LPArray(_codes("fp16", (70, 20), rng), "fp16")
    c = (rng.standard_normal((9, 20)) * 8).astype(np.float32)
    c[0, :5] = [0.0, -0.0, 1e-40, 3e38, -2.0 ** -130]
    cases = [dict(c=c), dict(c=c[0]), dict(c=c.astype(np.float64) * (1 + 2.0 ** -30)),
             dict(c=LPArray(_codes("bf16", (9, 20), rng), "bf16")),
             dict(c=c, chunk=16), dict(scale_a=np.float32(0.3)),
             dict(c=c, scale_a=rng.random((9, 1)).astype(np.float32),
                  scale_b=rng.random((1, 20)).astype(np.float32))]
    for gpu in ("h100", "a100", "b200"):
        for kw in cases:
            fast, slow = _both(monkeypatch, la, lb, model=gpu, **kw)
            assert _same(fast, slow), (gpu, kw)
    assert took == [True] * (3 * len(cases))
    bad = c.copy()
    bad[1, 2] = np.inf
    fast, slow = _both(monkeypatch, la, lb, model="h100", c=bad)
    assert _same(fast, slow) and np.isinf(fast[:, 1, 2]).all()
    assert len(took) == 3 * len(cases)  # the general path: prepare_codes not called
    with pytest.raises(ValueError, match="does not broadcast"):
        lowprec.matmul(la, lb, model="h100", c=np.zeros((3, 20)))
    with pytest.raises(ValueError, match="scale_a"):
        lowprec.matmul(la, lb, model="h100", scale_a=np.ones(4))


def test_other_arguments_keep_the_general_path(monkeypatch):
    """out=, inputs=, 1-D operands and matrix-core models are the general path's."""
    rng = np.random.default_rng(10)
    took = _spy(monkeypatch)
    la = LPArray(_codes("fp16", (4, 24), rng), "fp16")
    lb = LPArray(_codes("fp16", (24, 5), rng), "fp16")
    c = rng.standard_normal((4, 5)).astype(np.float32)
    for kw in (dict(c=c, out="fp16"), dict(out="bf16"), dict(inputs="fp16")):
        fast, slow = _both(monkeypatch, la, lb, model="h100", **kw)
        assert _same(np.asarray(fast, np.float32), np.asarray(slow, np.float32))
    v = LPArray(_codes("fp16", (24,), rng), "fp16")
    fast, slow = _both(monkeypatch, v, lb, model="h100")
    assert _same(fast, slow) and fast.shape == (5,)
    lowprec.matmul(la, lb, model="mi300x")
    assert took == []
    with pytest.raises(ValueError, match="tensor cores do not take"):
        lowprec.matmul(la, LPArray(_codes("bf16", (24, 5), rng), "bf16"), model="h100")
    with pytest.raises(ValueError):
        lowprec.matmul(la, LPArray(_codes("fp16", (23, 5), rng), "fp16"), model="h100")


def test_direct_path_matches_float_operands(monkeypatch):
    """The same values as plain arrays with inputs= (the general path) give the same bits."""
    rng = np.random.default_rng(11)
    took = _spy(monkeypatch)
    for gpu, fmt in [("h100", "e4m3"), ("a100", "bf16"), ("b200", "fp16")]:
        tiny = 0.0 if fmt == "bf16" else 0.1
        la = LPArray(_codes(fmt, (2, 19, 70), rng, tiny=tiny), fmt)
        lb = LPArray(_codes(fmt, (70, 35), rng, tiny=tiny), fmt)
        direct = lowprec.matmul(la, lb, model=gpu)
        general = lowprec.matmul(decode(la.codes, fmt, np.float64),
                                 decode(lb.codes, fmt, np.float64), inputs=fmt, model=gpu)
        assert _same(direct, general)
    assert took == [True] * 3


def test_numpy_twin_runs_before_compilation(monkeypatch):
    """run() gives the same operands through the numpy twin (the plain tier) and the
    compiled kernel."""
    rng = np.random.default_rng(12)
    codes = _codes("e5m2", (2, 9, 37), rng)
    tabs = _tabs("e5m2", np.uint8, -14, False)
    entry = tc_prep._ENTRIES[np.dtype(np.uint8)]
    compiled = tc_prep.run(codes, *tabs, tcf._JT)
    monkeypatch.setattr(entry, "_entry", None)
    monkeypatch.setattr(entry.tier, "closed", False)
    monkeypatch.setattr(entry.tier, "spent", 0.0)
    monkeypatch.setattr(plain, "ENABLED", True)
    monkeypatch.setattr(plain, "has_code", lambda d: False)
    calls = []
    real = tc_prep._numpy
    monkeypatch.setattr(entry.tier, "twin", lambda *a: calls.append(1) or real(*a))
    twin = tc_prep.run(codes, *tabs, tcf._JT)
    assert calls == [1]
    assert all(_same(u, v) for u, v in zip(compiled[:2], twin[:2]))
    assert compiled[2:] == twin[2:]


def test_scratch_pool_reuses_without_sharing():
    pool = tc_prep.ScratchPool(max_each=1 << 12, max_bytes=1 << 13)
    x, y = pool.take((4, 8), np.float32), pool.take((4, 8), np.float32)
    assert x is not y and x.shape == (4, 8) and x.flags.c_contiguous
    pool.give(x.reshape(32))
    z = pool.take((2, 16), np.float32)  # the same memory, reshaped
    assert z.base is x or z.base is x.base or np.shares_memory(z, x)
    assert not np.shares_memory(pool.take((2, 16), np.float32), x)  # taken once only
    big = np.empty(2048, np.float32)  # over max_each: never kept
    pool.give(big)
    assert not np.shares_memory(pool.take((2048,), np.float32), big)
    pool.give(np.empty(1024, np.float32), np.empty(1024, np.float32),
              np.empty(1024, np.float32))  # over max_bytes: the pool starts afresh
    assert pool._bytes <= 1 << 13
    zz = pool.zeros((3, 5), np.float64)
    assert zz is pool.zeros((3, 5), np.float64) and not zz.any() and zz.flags.writeable


def test_results_do_not_alias_scratch(monkeypatch):
    """A result stays as it was after later calls reuse the scratch arrays; the shared
    zero addend stays zero."""
    rng = np.random.default_rng(13)
    took = _spy(monkeypatch)
    la = LPArray(_codes("e4m3", (40, 64), rng), "e4m3")
    lb = LPArray(_codes("e4m3", (64, 48), rng), "e4m3")
    first = lowprec.matmul(la, lb, model="h100")
    keep = first.copy()
    for s in range(3):
        lc = LPArray(_codes("e4m3", (40, 64), rng, scale=4.0 ** s), "e4m3")
        again = lowprec.matmul(lc, lb, model="h100")
        assert not np.shares_memory(again, first)
    assert _same(first, keep)
    assert not tc_prep.POOL.zeros((1, 40, 48), np.float64).any()
    assert _same(lowprec.matmul(la, lb, model="h100"), keep)
    assert took == [True] * 5


# --- float64 operands: prepare_values (the general path's) ------------------------------


def _values(shape, rng, kind):
    """float64 operands: float32 values (with zeros, -0, float32 subnormals) or ones that
    are not float32 values (between two, beyond the range)."""
    x = rng.standard_normal(shape).astype(np.float32).astype(np.float64)
    x[rng.random(shape) < 0.1] = 0.0
    x[rng.random(shape) < 0.05] = -0.0
    x = np.where(rng.random(shape) < 0.05, 2.0 ** -140 * rng.integers(1, 100, shape), x)
    if x.size == 0:
        return x
    if kind == "between":
        x.flat[rng.integers(x.size)] = 1.0 + 2.0 ** -30
    elif kind == "huge":
        x.flat[rng.integers(x.size)] = 2.0 ** 130
    elif kind == "tiny":
        x.flat[rng.integers(x.size)] = 2.0 ** -160
    return x


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("kind", ["f32", "between", "huge", "tiny"])
def test_prep_values_kernel_twin_and_plain_copy_agree(norm, kind):
    rng = np.random.default_rng(abs(hash((norm, kind))) % 2**32)
    for shape in [(1, 1, 1), (2, 7, 5), (1, 33, 17), (3, 5, 40)]:
        x = _values(shape, rng, kind)
        for emin in (-126, -14, -6):
            for jt in (shape[2], tcf._JT):
                nb, rows, cols = shape
                nt = -(-cols // jt)
                res = []
                for fn in (tc_prep.prep_values, tc_prep._values_numpy,
                           plain.copy_of(tc_prep.prep_values)):
                    vals = np.full(nb * nt * rows * jt, np.nan, np.float32)
                    pows = np.full_like(vals, np.nan)
                    stats = np.full(3, -1.0)
                    with np.errstate(over="ignore"):
                        fn(x.reshape(-1), emin, norm, rows, cols, jt, vals, pows, stats)
                    res.append((vals, pows, stats))
                assert res[0][2][2] == (0.0 if kind == "f32" else 1.0)
                for other in res[1:]:
                    assert _same(other[2], res[0][2])
                    if kind == "f32":  # the values and powers are used only then
                        assert _same(other[0], res[0][0]) and _same(other[1], res[0][1])
                if kind == "f32":
                    x32 = x.astype(np.float32)
                    want = tcf.pack_panels(x32) if jt == tcf._JT else x32[:, None]
                    assert _same(res[0][0].reshape(want.shape), want)


@pytest.mark.parametrize("blk", BLOCKS, ids=lambda b: b.name or f"n{b.n}f{b.frac_bits}")
def test_prepare_values_matches_prepare(blk):
    rng = np.random.default_rng(abs(hash(blk)) % 2**32)
    decided = set()
    for (nb, m, k, n) in [(1, 1, 1, 1), (1, 5, 33, 70), (2, 17, 9, 16), (3, 4, 40, 33),
                          (1, 3, 0, 4)]:
        for kind in ("f32", "between", "huge", "tiny", "wide", "zeros"):
            for fmt in ("fp16", "bf16", "e4m3"):
                f = lowprec.get_format(fmt)
                conv = lowprec.get_format(blk.convert_inputs) if blk.convert_inputs else f
                av = _values((nb, m, k), rng, kind if kind != "wide" else "f32")
                bv = _values((nb, k, n), rng, "f32")
                if kind == "wide":
                    av *= 2.0 ** 70
                    bv *= 2.0 ** 60
                if kind == "zeros":
                    av[:] = 0.0
                args = (blk, f.precision, f.precision, av, bv, conv.emin, conv.emin)
                with np.errstate(over="ignore"):
                    old = tcf.prepare(*args)
                new = tc_prep.prepare_values(*args)
                assert _agree(old, new), (nb, m, k, n, kind, fmt)
                decided.add(new is None)
    assert decided == ({True} if not 1 <= blk.frac_bits <= 25 else {True, False})


def test_prepare_values_compiled_on_large_operands(monkeypatch):
    """The compiled prep_values (not the numpy twin) on operands of a few thousand
    elements, through run_values, against tensorcore_fast.prepare."""
    rng = np.random.default_rng(21)
    tc_prep._VALUES.compiled()
    blk = select_block("h100", "bf16", "fp32")
    for kind in ("f32", "between"):
        av, bv = _values((2, 70, 90), rng, kind), _values((2, 90, 45), rng, "f32")
        args = (blk, 8, 8, av, bv, -126, -126)
        assert _agree(tcf.prepare(*args), tc_prep.prepare_values(*args))


def test_direct_path_same_bits_at_one_and_two_threads(monkeypatch):
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(22)
    took = _spy(monkeypatch)
    la = LPArray(_codes("e4m3", (70, 256), rng), "e4m3")
    lb = LPArray(_codes("e4m3", (256, 67), rng), "e4m3")  # > 2^20 products: threads
    old = numba.get_num_threads()
    try:
        res = []
        for th in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(th)
            res.append(lowprec.matmul(la, lb, model="b200"))
    finally:
        numba.set_num_threads(old)
    monkeypatch.setattr(lgemm, "_TC_FAST", False)
    ref = lowprec.matmul(la, lb, model="b200")
    assert _same(res[0], res[1]) and _same(res[0], ref) and took == [True, True]
