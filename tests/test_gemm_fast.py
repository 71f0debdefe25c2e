"""The tiled, column-vectorised exact-accumulation kernel (lowprec._kernels.gemm_acc)
against the scalar kernel it replaces (lowprec._kernels.gemm.gemm_acc), bit for bit: every
rounding mode, many shapes, special values, and stochastic rounding independent of the
thread count and the tile size."""

import numba
import numpy as np
import pytest

import lowprec
from lowprec import gemm as G
from lowprec.formats import FloatFormat
from lowprec.quantize import format_tuple, resolve_options
from lowprec.reference import gemm as ref
from lowprec.quantize import seed_key
from lowprec.rounding import parse_rounding

MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto", "sr"]


def _bits(x):
    x = np.asarray(x, np.float64)
    return np.where(np.isnan(x), np.int64(0x7FF8000000000000), x.view(np.int64))


def _scalar(a, b, c, acc, rounding, fma, chunk, seed):
    """The scalar kernel, one output element at a time (the path before the tiled kernel)."""
    from lowprec._kernels.gemm import gemm_acc

    f = lowprec.get_format(acc)
    rnd = parse_rounding(rounding)
    opts = resolve_options(f, rnd, None, True, None, seed)
    out = np.empty(c.shape)
    gemm_acc(a, np.ascontiguousarray(np.swapaxes(b, 1, 2)), c, format_tuple(f), rnd.id,
             opts.overflow.id, opts.key, fma, int(chunk or 0), f.has_inf and f.subnormals,
             f.precision, f.emin, f.emax, out)
    return out


def _tiled(a, b, c, acc, rounding, fma, chunk, seed, jt):
    from lowprec._kernels.gemm_acc import gemm_acc_tiled

    f = lowprec.get_format(acc)
    rnd = parse_rounding(rounding)
    opts = resolve_options(f, rnd, None, True, None, seed)
    out = np.empty(c.shape)
    maxbits = int(np.float64(f.max).view(np.int64))
    minbits = 0 if f.subnormals else int(np.float64(f.min_normal).view(np.int64))
    gemm_acc_tiled(a, np.ascontiguousarray(b), c, format_tuple(f), rnd.id, opts.overflow.id,
                   opts.key, fma, int(chunk or 0), f.has_inf and f.subnormals, f.precision,
                   f.emin, f.emax, maxbits, minbits, f.neg_zero_code is not None, jt, out)
    return out


def _operands(rng, fmt, shape_a, shape_b, lo=-12, hi=12, specials=0.0):
    """Values of ``fmt`` spread over 2^lo .. 2^hi (and NaN/inf/zeros with probability
    ``specials`` each element)."""
    def one(shape):
        x = rng.standard_normal(shape) * 2.0 ** rng.integers(lo, hi + 1, shape)
        if specials:
            pick = rng.random(shape) < specials
            x[pick] = rng.choice([np.inf, -np.inf, np.nan, 0.0, -0.0], int(pick.sum()))
        return lowprec.quantize(x, fmt)
    return one(shape_a), one(shape_b)


def _c(rng, shape):
    return rng.choice([0.0, -0.0, 1.5, 2.0 ** -20, -3.0, 1e4], shape).astype(np.float32)


def _check(a, b, c, acc, rounding, fma, chunk, seed, jt=None):
    c64 = np.ascontiguousarray(np.broadcast_to(c, a.shape[:-1] + b.shape[-1:]), np.float64)
    want = _scalar(a, b, c64, acc, rounding, fma, chunk, seed)
    for t in ([jt] if jt else [3, 128]):
        got = _tiled(a, b, c64, acc, rounding, fma, chunk, seed, t)
        bad = np.flatnonzero(_bits(got) != _bits(want))
        assert bad.size == 0, (acc, rounding, fma, chunk, t, a.shape, b.shape, bad.size,
                               got.ravel()[bad[0]], want.ravel()[bad[0]])


@pytest.mark.parametrize("acc", ["fp16", "bf16", "e4m3", "e5m2", "fp32", "tf32", "e3m4",
                                 "e4m3fnuz", "e2m1"])
@pytest.mark.parametrize("rounding", MODES)
def test_tiled_matches_scalar_kernel(acc, rounding):
    rng = np.random.default_rng(abs(hash((acc, rounding))) % 2**32)
    for trial, (nb, m, k, n) in enumerate([(1, 1, 1, 1), (1, 3, 1, 7), (2, 5, 17, 130),
                                           (1, 9, 64, 33), (3, 2, 40, 5), (1, 4, 0, 3)]):
        fmt = ["bf16", "fp16", "e4m3"][trial % 3]
        a, b = _operands(rng, fmt, (nb, m, k), (nb, k, n))
        c = _c(rng, (nb, m, n))
        for fma in (True, False):
            _check(a, b, c, acc, rounding, fma, None, 11)
        _check(a, b, c, acc, rounding, True, int(rng.integers(1, 9)), 12)


@pytest.mark.parametrize("rounding", MODES)
@pytest.mark.parametrize("acc", ["fp16", "bf16", "e4m3", "e5m2"])
def test_specials_overflow_and_subnormal_sums(acc, rounding):
    rng = np.random.default_rng(3)
    # wide ranges: sums overflow the accumulator (inf, or NaN / saturation by the format's
    # rule) and fall into its subnormals; NaN / inf / signed zeros in the inputs
    for lo, hi, sp in [(-40, 20, 0.0), (-20, 20, 0.05), (-30, -5, 0.0), (0, 16, 0.02)]:
        a, b = _operands(rng, "bf16", (2, 4, 30), (2, 30, 70), lo, hi, sp)
        c = _c(rng, (2, 4, 70))
        for fma in (True, False):
            _check(a, b, c, acc, rounding, fma, None, 5, jt=16)


def test_cancellation_and_signed_zero_sums():
    # exact zero sums: +0 in every mode but rdn, where they are -0 (unless both terms +0)
    x = np.array([[1.0, -1.0, 0.0, -0.0, 2.0 ** -10, -(2.0 ** -10)]])
    a = np.broadcast_to(x, (1, 6, 6)).copy()
    b = np.broadcast_to(np.abs(x).T, (1, 6, 6)).copy()
    b[0, :, 1] = -b[0, :, 1]
    for c in (np.zeros((1, 6, 6)), np.full((1, 6, 6), -0.0)):
        for rounding in MODES:
            for fma in (True, False):
                _check(a, b, c.astype(np.float32), "fp16", rounding, fma, None, 1)


def test_format_without_subnormals_uses_the_scalar_step():
    acc = FloatFormat(exp_bits=4, man_bits=3, bias=7, subnormals=False, name="e4m3_nosub_t")
    rng = np.random.default_rng(4)
    a, b = _operands(rng, "bf16", (1, 5, 25), (1, 25, 40), -20, 2)
    for rounding in MODES:
        _check(a, b, _c(rng, (1, 5, 40)) * 0, acc, rounding, True, None, 2)


@pytest.mark.parametrize("rounding", ["sr", "rne"])
def test_results_do_not_depend_on_threads_or_tiles(rounding):
    rng = np.random.default_rng(5)
    a, b = _operands(rng, "bf16", (2, 7, 50), (50, 300))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = lowprec.matmul(a, b, acc="bf16", acc_rounding=rounding, seed=9, inputs="bf16")
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = lowprec.matmul(a, b, acc="bf16", acc_rounding=rounding, seed=9, inputs="bf16")
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(_bits(one), _bits(two))
    b3 = np.ascontiguousarray(np.broadcast_to(b, (2, 50, 300)))
    c = np.zeros((2, 7, 300))
    tiles = [_tiled(a, b3, c, "bf16", rounding, True, None, 9, jt) for jt in (1, 3, 64, 512)]
    for t in tiles[1:]:
        assert np.array_equal(_bits(t), _bits(tiles[0]))
    assert np.array_equal(_bits(tiles[0]), _bits(one))


@pytest.mark.parametrize("acc,rounding", [("fp16", "sr"), ("bf16", "rtz"), ("e4m3", "rne"),
                                          ("fp16", "rto")])
def test_public_matmul_matches_exact_reference(acc, rounding):
    rng = np.random.default_rng(6)
    a, b = _operands(rng, "bf16", (3, 20), (20, 17), -6, 6)
    c = _c(rng, (3, 17))
    for fma in (True, False):
        got = lowprec.matmul(a, b, c=c, inputs="bf16", acc=acc, acc_rounding=rounding,
                             fma=fma, seed=8)
        want = ref.matmul_acc_ref(a, b, c, acc=lowprec.get_format(acc).name,
                                  rounding=rounding, fma=fma, key=seed_key(8))
        assert np.array_equal(_bits(got.astype(np.float64)), _bits(want))


def test_sr_stream_is_unchanged():
    # results of the scalar kernel's stream: the tiled kernel must draw the same bits, so
    # the rounding of a long fp16 sum of ones (half of the steps random) matches exactly
    a = np.ones((1, 3, 3000))
    b = np.full((1, 3000, 4), 1 + 2.0 ** -7)
    c = np.zeros((1, 3, 4))
    want = _scalar(a, b, c, "fp16", "sr", True, None, 21)
    got = _tiled(a, b, c, "fp16", "sr", True, None, 21, 3)
    assert np.array_equal(_bits(got), _bits(want))
    assert len(np.unique(got)) > 1  # SR really happened
    assert G._ACC_TILE >= 1


# ---- the float32-lane kernel (lowprec._kernels.gemm_acc.gemm_acc_f32) ---------------------

F32_MODES = ["rne", "rna", "rtz", "rup", "rdn", "sr"]  # round to odd stays on the tiled kernel


def _f32(a, b, c, acc, rounding, fma, chunk, seed, jt, kernel=None):
    from lowprec._kernels.gemm_acc import gemm_acc_f32

    gemm_acc_f32 = kernel or gemm_acc_f32
    f = lowprec.get_format(acc)
    rnd = parse_rounding(rounding)
    opts = resolve_options(f, rnd, None, True, None, seed)
    out = np.empty(c.shape)
    gemm_acc_f32(np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32), c,
                 format_tuple(f), rnd.id, opts.overflow.id, opts.key, fma, int(chunk or 0),
                 f.has_inf and f.subnormals, f.precision, f.emin, f.emax,
                 int(np.float32(f.max).view(np.int32)), f.neg_zero_code is not None, jt, out)
    return out


def _check32(a, b, c, acc, rounding, fma, chunk, seed, jts=(3, 64)):
    """The float32-lane kernel equals the scalar kernel bit for bit (products must be exact
    in float32: bf16 operands within float32's range)."""
    c64 = np.ascontiguousarray(np.broadcast_to(c, a.shape[:-1] + b.shape[-1:]), np.float64)
    want = _scalar(a, b, c64, acc, rounding, fma, chunk, seed)
    for jt in jts:
        got = _f32(a, b, c64, acc, rounding, fma, chunk, seed, jt)
        bad = np.flatnonzero(_bits(got) != _bits(want))
        assert bad.size == 0, (acc, rounding, fma, chunk, jt, a.shape, b.shape, bad.size,
                               got.ravel()[bad[0]], want.ravel()[bad[0]])


@pytest.mark.parametrize("acc", ["fp16", "bf16", "e4m3", "e5m2", "tf32", "e4m3fnuz", "e3m4"])
@pytest.mark.parametrize("rounding", F32_MODES)
def test_f32_lanes_match_scalar_kernel(acc, rounding):
    rng = np.random.default_rng(abs(hash(("f32", acc, rounding))) % 2**32)
    # moderate values; wide ranges with NaN / inf / zeros (overflow, the accumulator's
    # subnormals); tiny values (below its subnormals); large ones (overflow rules)
    for lo, hi, sp in [(-6, 6, 0.0), (-20, 20, 0.05), (-30, -5, 0.0), (0, 16, 0.02)]:
        a, b = _operands(rng, "bf16", (2, 5, 40), (2, 40, 37), lo, hi, sp)
        c = _c(rng, (2, 5, 37))
        for fma, chunk in [(True, None), (False, None), (True, int(rng.integers(1, 9)))]:
            _check32(a, b, c, acc, rounding, fma, chunk, 5)


@pytest.mark.parametrize("acc", ["fp16", "e4m3", "bf16"])
@pytest.mark.parametrize("rounding", F32_MODES)
def test_f32_lanes_ties_and_subnormal_grid(acc, rounding):
    # sums on and between the accumulator's smallest grid points: ties at 1.5, 2.5, ...
    # times the smallest subnormal (the kept count's parity), exact zeros, values below it
    f = lowprec.get_format(acc)
    tiny = f.min_subnormal
    rng = np.random.default_rng(7)
    a = rng.integers(-24, 25, (1, 16, 6)) * (tiny / 4)
    a[0, :4] *= 2.0 ** -6
    a[0, 4:8] *= 2.0 ** 9
    b = rng.choice([1.0, -1.0, 0.5, 2.0, 0.75], (1, 6, 40))
    c = rng.choice([0.0, -0.0, tiny, -1.5 * tiny], (1, 16, 40))
    a, b = lowprec.quantize(a, "bf16"), lowprec.quantize(b, "bf16")
    for fma in (True, False):
        _check32(a, b, c, acc, rounding, fma, None, 3)


@pytest.mark.parametrize("acc", ["bf16", "tf32"])
@pytest.mark.parametrize("rounding", F32_MODES)
def test_f32_lanes_near_float32_overflow(acc, rounding):
    # sums from 2^(127 - (24 - precision)) up leave the float rounding (its constant
    # 1.5 * 2^(E + 24 - precision) would overflow float32) for the scalar step; sums just
    # below that, and past the format's largest value, with products still in float32
    rng = np.random.default_rng(11)
    for lo, hi in [(50, 56), (55, 60), (40, 60)]:
        a, b = _operands(rng, "bf16", (1, 6, 30), (1, 30, 20), lo, hi)
        assert np.abs(a).max() * np.abs(b).max() < np.finfo(np.float32).max  # exact products
        _check32(a, b, np.zeros((1, 6, 20)), acc, rounding, True, None, 4)
        _check32(a, b, np.zeros((1, 6, 20)), acc, rounding, False, None, 4)


def test_f32_lanes_undecided_stochastic_roundings():
    # many inexact fp16 steps (a wide exponent spread), so that the stream's top bits meet
    # the discarded fraction (flagged, decided by the scalar step) many times
    rng = np.random.default_rng(8)
    a, b = _operands(rng, "bf16", (1, 8, 400), (1, 400, 48), -12, 12)
    _check32(a, b, np.zeros((1, 8, 48)), "fp16", "sr", True, None, 13, jts=(48,))
    _check32(a, b, np.zeros((1, 8, 48)), "bf16", "sr", False, None, 14, jts=(16,))


@pytest.mark.parametrize("rounding", ["sr", "rne"])
def test_f32_lanes_do_not_depend_on_threads_or_tiles(rounding):
    rng = np.random.default_rng(9)
    a, b = _operands(rng, "bf16", (2, 7, 50), (2, 50, 300))
    c = np.zeros((2, 7, 300))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _f32(a, b, c, "fp16", rounding, True, None, 9, 64)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        tiles = [_f32(a, b, c, "fp16", rounding, True, None, 9, jt) for jt in (1, 3, 64, 512)]
    finally:
        numba.set_num_threads(before)
    from lowprec._kernels.gemm_acc import gemm_acc_f32_auto  # small products: its twin

    tiles.append(_f32(a, b, c, "fp16", rounding, True, None, 9, 64,
                      kernel=gemm_acc_f32_auto.twin()))
    for t in tiles:
        assert np.array_equal(_bits(t), _bits(one))
    assert np.array_equal(_bits(one), _bits(_tiled(a, b, c, "fp16", rounding, True, None, 9,
                                                   128)))


def test_matmul_uses_f32_lanes_only_where_exact(monkeypatch):
    # bf16 operands whose products leave float32's range, fp32 operands and round to odd
    # take the tiled kernel; the results equal the exact reference either way
    from lowprec._kernels import gemm_acc as K

    calls = []
    real = K.gemm_acc_f32_auto
    monkeypatch.setattr(K, "gemm_acc_f32_auto", lambda *x: calls.append(1) or real(*x))
    rng = np.random.default_rng(10)
    a, b = _operands(rng, "bf16", (3, 12), (12, 5), -3, 3)
    for kw, used in [(dict(inputs="bf16"), True), (dict(inputs="fp32"), False),
                     (dict(inputs="bf16", acc_rounding="rto"), False)]:
        calls.clear()
        x = a if kw["inputs"] == "bf16" else a * (1 + 2.0 ** -20)
        got = lowprec.matmul(x, b, acc="fp16", seed=1, **kw)
        want = ref.matmul_acc_ref(lowprec.quantize(x, kw["inputs"]), b, np.zeros((3, 5)),
                                  acc="fp16", rounding=kw.get("acc_rounding", "rne"), fma=True,
                                  key=seed_key(1))
        assert np.array_equal(_bits(got.astype(np.float64)), _bits(want))
        assert bool(calls) == used, kw
    big = a * 2.0 ** 100  # products beyond float32
    calls.clear()
    lowprec.matmul(big, b * 2.0 ** 40, inputs="bf16", acc="bf16")
    assert not calls


@pytest.mark.parametrize("fmt", ["fp32", "bf16", "fp16", "e4m3"])
def test_fp32_direct_path_equals_general_path(fmt, monkeypatch):
    # float32 matrices and float LPArrays into fp32 RNE skip the float64 operands; the bits
    # are the general path's (products exact or not, fused or not, specials)
    from lowprec.lparray import array as lparray

    rng = np.random.default_rng(11)
    lo, hi = (-70, 70) if fmt in ("fp32", "bf16") else (-6, 6)
    a, b = _operands(rng, fmt, (9, 33), (33, 14), lo, hi, 0.02)
    if fmt == "fp32":
        x, y = a.astype(np.float32), b.astype(np.float32)
    else:
        x, y = lparray(a, fmt), lparray(b, fmt)
    for fma in (True, False):
        got = lowprec.matmul(x, y, fma=fma)
        assert got.dtype == np.float32 and got.shape == (9, 14)
        with monkeypatch.context() as mp:
            mp.setattr(G, "_fp32_direct", lambda *args: None)
            want = lowprec.matmul(x, y, fma=fma)
        assert np.array_equal(_bits(got), _bits(want)), (fmt, fma)
        ref_ = ref.matmul_acc_ref(a, b, np.zeros((9, 14)), acc="fp32", rounding="rne",
                                  fma=fma, key=seed_key(0))
        assert np.array_equal(_bits(got.astype(np.float64)), _bits(ref_))
