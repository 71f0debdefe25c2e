"""The fast tensor-core kernel (lowprec._kernels.tensorcore_fast) gives the reference
kernel's bits (and the exact reference's) wherever lowprec.matmul dispatches to it."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lowprec
import lowprec.gemm as lgemm
from lowprec.hardware import BlockFMAModel, get_model, list_models, select_block
from lowprec.lparray import array as lparray
from lowprec.reference import gemm as ref


def _bits(x):
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


def _both(monkeypatch, *args, **kw):
    """(fast-dispatch result, reference-kernel result) of lowprec.matmul as float32."""
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    fast = np.asarray(lowprec.matmul(*args, **kw), np.float32)
    monkeypatch.setattr(lgemm, "_TC_FAST", False)
    slow = np.asarray(lowprec.matmul(*args, **kw), np.float32)
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    return fast, slow


def _uses_fast(a, b, blk, fa, fb):
    """Whether _run_model takes the fast kernel for these (finite) operands."""
    from lowprec._kernels import tensorcore_fast as tcf

    fa, fb = lowprec.get_format(fa), lowprec.get_format(fb)
    conv = lowprec.get_format(blk.convert_inputs) if blk.convert_inputs else None
    a = np.where(np.isfinite(a), a, 0.0)
    b = np.where(np.isfinite(b), b, 0.0)
    pa = lgemm._pow2_exponents(a, (conv or fa).emin)
    pb = lgemm._pow2_exponents(b, (conv or fb).emin)
    return tcf.plan(blk, fa.precision, fb.precision, a, pa, b, pb) is not None


PATHS = sorted({(g, i, o) for g in list_models() for (i, o) in get_model(g).paths})


def _data(fmt, shape, rng, scale=1.0, zeros=0.1):
    x = rng.standard_normal(shape) * scale
    x = np.where(rng.random(shape) < zeros, 0.0, x)
    return np.asarray(lowprec.quantize(x, fmt), np.float64)


@pytest.mark.parametrize("gpu,fin,out", PATHS)
def test_every_named_path_matches_reference_kernel(monkeypatch, gpu, fin, out):
    rng = np.random.default_rng(abs(hash((gpu, fin, out))) % 2**32)
    blk = select_block(gpu, fin, out)
    o = "fp16" if out == "float16" else None
    used = 0
    # odd shapes, K below, at and past the block and instruction sizes, column tiles
    for (m, k, n) in [(1, 1, 1), (3, 7, 5), (5, 33, 70), (17, 65, 131), (2, 130, 64),
                      (4, 300, 3)]:
        a, b = _data(fin, (m, k), rng), _data(fin, (k, n), rng)
        c = rng.standard_normal((m, n)).astype(np.float32) * 4
        c[rng.random((m, n)) < 0.2] = 0.0
        fast, slow = _both(monkeypatch, a, b, c=c, inputs=fin, model=gpu, out=o)
        assert (_bits(fast) == _bits(slow)).all(), (m, k, n)
        used += _uses_fast(a, b, blk, fin, fin)
    assert used == 6  # ordinary data takes the fast kernel on every named path


@pytest.mark.parametrize("gpu,fin,out", [p for p in PATHS if p[0] in ("v100", "a100", "ada",
                                                                      "h100", "b200")])
def test_named_paths_match_exact_reference(gpu, fin, out):
    rng = np.random.default_rng(7)
    blk = select_block(gpu, fin, out)
    f = lowprec.get_format(blk.convert_inputs or fin)
    o = "fp16" if out == "float16" else None
    for k in (5, 40):
        a, b = _data(fin, (3, k), rng), _data(fin, (k, 4), rng)
        c = (rng.standard_normal((3, 4)) * 3).astype(np.float32)
        assert _uses_fast(a, b, blk, fin, fin)
        got = lowprec.matmul(a, b, c=c, inputs=fin, model=gpu, out=o)
        cc = lowprec.quantize(c, "fp16") if o else c
        want = ref.matmul_model_ref(a, b, np.asarray(cc, np.float64), blk, f.emin, f.emin)
        assert (_bits(got) == _bits(want)).all(), (k, np.asarray(got), want)


@pytest.mark.parametrize("gpu", ["h100", "h200", "b200", "ada"])
def test_mixed_fp8_pairs(monkeypatch, gpu):
    rng = np.random.default_rng(3)
    a = lparray(rng.standard_normal((9, 77)).astype(np.float32), "e4m3")
    b = lparray(rng.standard_normal((77, 66)).astype(np.float32), "e5m2")
    for o in ([None, "fp16"] if gpu in ("h100", "h200") else [None]):
        fast, slow = _both(monkeypatch, a, b, model=gpu, out=o)
        assert (_bits(fast) == _bits(slow)).all()
        fast, slow = _both(monkeypatch, b.T, a.T, model=gpu, out=o)
        assert (_bits(fast) == _bits(slow)).all()


def test_specials_and_overflow(monkeypatch):
    rng = np.random.default_rng(11)
    # bf16 products near 2^126: block sums overflow fp32 (inf chained along K); NaN/inf inputs
    a = _data("bf16", (6, 70), rng, scale=2.0 ** 61, zeros=0.0)
    b = np.abs(_data("bf16", (70, 67), rng, scale=2.0 ** 61, zeros=0.0))
    a[:4] = np.abs(a[:4])
    a[0, 3] = np.nan
    a[1, 5] = np.inf
    b[7, 2] = -np.inf
    c = rng.standard_normal((6, 67)).astype(np.float32)
    c[2, 4] = np.inf
    c[3, 1] = np.nan
    blk = select_block("h100", "bf16")
    assert _uses_fast(a, b, blk, "bf16", "bf16")
    for gpu in ("h100", "a100"):
        fast, slow = _both(monkeypatch, a, b, c=c, inputs="bf16", model=gpu)
        assert np.isinf(slow).sum() > 50 and np.isnan(slow).any()
        assert (_bits(fast) == _bits(slow)).all()
    for rnd in ("rup", "rdn", "rne", "rtz"):
        m = blk.with_(rounding=rnd)
        fast, slow = _both(monkeypatch, a, b, c=c, inputs="bf16", model=m)
        assert (_bits(fast) == _bits(slow)).all(), rnd
    # fp16 output: overflow to inf and subnormal results, late c (h100 fp8 -> fp16)
    for gpu, fin, scale in (("a100", "fp16", 60.0), ("a100", "fp16", 2.0 ** -9),
                            ("h100", "e4m3", 200.0), ("h100", "e4m3", 2.0 ** -5)):
        a = _data(fin, (5, 90), rng, scale=scale)
        b = _data(fin, (90, 70), rng, scale=scale)
        c = (rng.standard_normal((5, 70)) * scale).astype(np.float32)
        assert _uses_fast(a, b, select_block(gpu, fin, "fp16"), fin, fin)
        fast, slow = _both(monkeypatch, a, b, c=c, inputs=fin, model=gpu, out="fp16")
        assert (_bits(fast) == _bits(slow)).all(), (gpu, scale)


def test_subnormal_c_and_zero_rows(monkeypatch):
    rng = np.random.default_rng(12)
    a = _data("bf16", (4, 40), rng)
    a[1] = 0.0
    b = _data("bf16", (40, 9), rng)
    b[:, 2] = 0.0
    c = np.full((4, 9), 3e-41, np.float32)  # fp32 subnormal: survives only where a*b is 0
    c[0, 0] = -0.0
    c[1, 0] = -3e-41
    fast, slow = _both(monkeypatch, a, b, c=c, inputs="bf16", model="h100")
    assert (_bits(fast) == _bits(slow)).all()
    assert fast[1, 3] == np.float32(3e-41)


@pytest.mark.parametrize("gpu,fin", [("h100", "e4m3"), ("a100", "bf16"), ("b200", "e5m2"),
                                     ("v100", "fp16")])
def test_promotion_chunk_and_scales(monkeypatch, gpu, fin):
    rng = np.random.default_rng(13)
    a, b = _data(fin, (7, 515), rng), _data(fin, (515, 65), rng)
    c = rng.standard_normal((7, 65)).astype(np.float32)
    sa = rng.random((7, 1)).astype(np.float32) + 0.5
    sb = np.float32(0.75)
    for chunk in (None, 128, 256):
        fast, slow = _both(monkeypatch, a, b, c=c, inputs=fin, model=gpu, chunk=chunk,
                           scale_a=sa, scale_b=sb)
        assert (_bits(fast) == _bits(slow)).all(), chunk
    if gpu == "h100":  # the fp16-output fp8 path with a promotion interval
        fast, slow = _both(monkeypatch, a, b, c=c, inputs=fin, model=gpu, chunk=64, out="fp16")
        assert (_bits(fast) == _bits(slow)).all()


def test_batched_broadcast(monkeypatch):
    rng = np.random.default_rng(14)
    a = _data("fp16", (3, 1, 6, 40), rng)
    b = _data("fp16", (2, 40, 70), rng)
    c = rng.standard_normal((6, 70)).astype(np.float32)
    fast, slow = _both(monkeypatch, a, b, c=c, inputs="fp16", model="h100")
    assert fast.shape == (3, 2, 6, 70)
    assert (_bits(fast) == _bits(slow)).all()


@st.composite
def _models(draw):
    n = draw(st.sampled_from([1, 2, 4, 8, 16, 32]))
    mult = draw(st.sampled_from([1, 2]))
    inter = draw(st.sampled_from([0, 1, 2]))
    ik = n * mult
    c_mode = draw(st.sampled_from(["block", "late"]))
    late = c_mode == "late"
    return BlockFMAModel(
        n, draw(st.integers(-2, 30)), draw(st.sampled_from(["rtz", "rne", "rup", "rdn"])),
        draw(st.sampled_from(["fp32", "fp16"])),
        out_frac_bits=draw(st.sampled_from([None, 5, 10])),
        c_mode=c_mode, instruction_k=ik,
        interleave=inter if inter and ik % (inter * mult) == 0 else 0,
        promote_every=(ik * draw(st.sampled_from([0, 1, 3]))) or None,
        convert_inputs=draw(st.sampled_from([None, "fp16"])),
        c_rounding=draw(st.sampled_from([None, "rtz", "rne", "rup", "rdn"])) if late else None,
        c_frac_bits=draw(st.sampled_from([None, 4, 10])) if late else None,
        normalise_products=draw(st.booleans()))


@settings(max_examples=60, deadline=None)
@given(model=_models(), fmt=st.sampled_from(["fp16", "bf16", "e4m3", "e5m2", "tf32"]),
       k=st.integers(0, 70), n=st.integers(1, 70), scale=st.sampled_from([1.0, 2.0 ** -10,
                                                                          2.0 ** 10]),
       seed=st.integers(0, 2**31))
def test_random_models_match_reference_kernel(model, fmt, k, n, scale, seed):
    if model.convert_inputs and fmt not in ("e4m3", "e5m2", "fp16"):
        model = model.with_(convert_inputs=None)  # conversion must be exact
    rng = np.random.default_rng(seed)
    a, b = _data(fmt, (3, k), rng, scale), _data(fmt, (k, n), rng, scale)
    c = (rng.standard_normal((3, n)) * scale).astype(np.float32)
    o = "fp16" if model.out_format == "float16" else None
    fast = np.asarray(lowprec.matmul(a, b, c=c, inputs=fmt, model=model, out=o), np.float32)
    lgemm._TC_FAST = False
    try:
        slow = np.asarray(lowprec.matmul(a, b, c=c, inputs=fmt, model=model, out=o), np.float32)
    finally:
        lgemm._TC_FAST = True
    assert (_bits(fast) == _bits(slow)).all()


def test_fallbacks(monkeypatch):
    from lowprec._kernels import tensorcore_fast as tcf

    rng = np.random.default_rng(15)
    blk = select_block("a100", "bf16")
    a, b = _data("bf16", (4, 20), rng), _data("bf16", (20, 5), rng)
    assert _uses_fast(a, b, blk, "bf16", "bf16")
    # products leaving float32's range: the reference kernel (same bits either way)
    big = a.copy()
    big[0, 0] = 2.0 ** 126
    tiny = a.copy()
    tiny[1, 1] = 2.0 ** -126
    for x in (big, tiny):
        assert not _uses_fast(x, b, blk, "bf16", "bf16")
        fast, slow = _both(monkeypatch, x, b, inputs="bf16", model="a100")
        assert (_bits(fast) == _bits(slow)).all()
    # fp32 inputs (products not exact in float32), F too small or too large
    assert not _uses_fast(a, b, blk, "fp32", "fp32")
    assert not _uses_fast(a, b, blk.with_(frac_bits=0), "bf16", "bf16")
    assert not _uses_fast(a, b, blk.with_(frac_bits=30), "bf16", "bf16")


def test_unknown_model_fields_fall_back():
    from lowprec._kernels import tensorcore_fast as tcf

    @dataclasses.dataclass(frozen=True)
    class Extended(BlockFMAModel):
        unknown_stage: str = "none"  # a behaviour the fast kernel does not know

    blk = select_block("h100", "bf16")
    same = Extended(**{f.name: getattr(blk, f.name) for f in dataclasses.fields(blk)})
    assert tcf.handles_model(blk) and tcf.handles_model(same)
    assert not tcf.handles_model(same.with_(unknown_stage="rne"))
    # the fitter's candidate fields are implemented
    assert tcf.handles_model(blk.with_(c_mode="late", c_rounding="rne", c_frac_bits=23,
                                       normalise_products=True))


@pytest.mark.parametrize("rnd", ["rtz", "rne", "rup", "rdn"])
@pytest.mark.parametrize("c_rnd,c_bits,norm", [(None, None, False), ("rtz", 13, False),
                                               ("rup", None, True), ("rne", 23, True)])
def test_late_c_stage_and_normalised_products(monkeypatch, rnd, c_rnd, c_bits, norm):
    # the separate c stage (b200 fp8 -> fp32 and the fitter's candidates): c far above the
    # block (inexact float64 sums), c far below it, opposite signs cancelling to 0,
    # results near fp32's overflow and in its subnormals, infinite and NaN c
    rng = np.random.default_rng(17)
    blk = select_block("b200", "e4m3").with_(rounding=rnd, c_rounding=c_rnd,
                                             c_frac_bits=c_bits, normalise_products=norm)
    a, b = _data("e4m3", (9, 100), rng), _data("e4m3", (100, 70), rng)
    c = (rng.standard_normal((9, 70)) * 4).astype(np.float32)
    c[1] *= np.float32(2.0 ** 60)
    c[2] *= np.float32(2.0 ** -60)
    c[3] = np.float32(3.4e38) * np.sign(c[3])
    c[4] = np.float32(2.0 ** -140)
    c[5, :3] = (np.inf, -np.inf, np.nan)
    c[6] = 0.0
    assert _uses_fast(a, b, blk, "e4m3", "e4m3")
    fast, slow = _both(monkeypatch, a, b, c=c, inputs="e4m3", model=blk)
    assert (_bits(fast) == _bits(slow)).all()
    # cancellation: c = -(the exact product) on row 7 gives exact zeros (sign by the mode)
    c[7] = -np.asarray(lowprec.matmul(a[7:8], b, inputs="e4m3", model=blk))[0]
    fast, slow = _both(monkeypatch, a, b, c=c, inputs="e4m3", model=blk)
    assert (_bits(fast) == _bits(slow)).all()
    # and the exact reference on a corner (every kind of row, a few columns; c finite)
    rows = [0, 1, 2, 3, 4, 6, 7]
    want = ref.matmul_model_ref(a[rows], b[:, :4], np.asarray(c[rows, :4], np.float64), blk,
                                -6, -6)
    assert (_bits(fast[rows, :4]) == _bits(want)).all()


def test_thread_count_does_not_change_bits(monkeypatch):
    # one thread and small products run the serial twin; SERIAL_BELOW = 0 forces the
    # threaded kernel onto the same product
    import numba

    from lowprec._kernels import gemm_serial

    rng = np.random.default_rng(16)
    a, b = _data("bf16", (70, 100), rng), _data("bf16", (100, 130), rng)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        r1 = lowprec.matmul(a, b, inputs="bf16", model="h100")
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        r2 = lowprec.matmul(a, b, inputs="bf16", model="h100")
        monkeypatch.setattr(gemm_serial, "SERIAL_BELOW", 0)
        r3 = lowprec.matmul(a, b, inputs="bf16", model="h100")
    finally:
        numba.set_num_threads(old)
    assert (_bits(r1) == _bits(r2)).all() and (_bits(r1) == _bits(r3)).all()


@pytest.mark.parametrize("emin", [-126, -14, -6])
def test_float32_powers_match_pow2_exponents(emin):
    # prepare()'s powers of two from float32 exponent bits equal gemm._pow2_exponents':
    # normals, float32 subnormals (clamped to 2^emin), signed zeros, negative values
    from lowprec._kernels import tensorcore_fast as tcf

    rng = np.random.default_rng(18)
    x = (rng.standard_normal(20000) * 2.0 ** rng.integers(-140, 120, 20000)).astype(np.float32)
    x[::7] = 0.0
    x[::11] = -x[::11]
    x[5] = -0.0
    x[:20] = np.float32(1e-45) * np.arange(20)
    want = lgemm._pow2_exponents(x.astype(np.float64), emin)
    assert (tcf._pow2_f32(x.copy(), emin).astype(np.float64) == want).all()
