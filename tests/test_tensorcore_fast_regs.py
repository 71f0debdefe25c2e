"""The tensor-core kernel's float32 register path (tensorcore_fast._fast_block/_round8):
it covers the benchmark models, and every case it flags (results near overflow or
subnormal, infinite accumulators, int32 overflow of the sums, c alone in a block far below
the grid) gives the reference kernel's bits, in every rounding mode and output width."""

import numpy as np
import pytest

import lowprec
import lowprec.gemm as lgemm
from lowprec.formats import get_format
from lowprec.hardware import select_block
from lowprec.ids import RNE
from lowprec.rounding import parse_rounding


def _bits(x):
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


def _same(monkeypatch, a, b, **kw):
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    fast = np.asarray(lowprec.matmul(a, b, **kw), np.float32)
    monkeypatch.setattr(lgemm, "_TC_FAST", False)
    slow = np.asarray(lowprec.matmul(a, b, **kw), np.float32)
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    assert (_bits(fast) == _bits(slow)).all(), np.argwhere(_bits(fast) != _bits(slow))[:5]
    return fast


def _regs(blk) -> bool:
    from lowprec._kernels import tensorcore_fast as tcf

    out = get_format(blk.out_format)
    return tcf.registers_round(blk.result_frac_bits + 1, out.emin, out.emax, blk.frac_bits,
                               blk.c_mode == "late", blk.c_stage_frac_bits + 1,
                               parse_rounding(blk.c_stage_rounding).id)


@pytest.mark.parametrize("gpu,fmt", [("h100", "e4m3"), ("h100", "bf16"), ("b200", "e4m3"),
                                     ("a100", "bf16"), ("a100", "fp16")])
def test_benchmark_models_take_the_register_path(gpu, fmt):
    assert _regs(select_block(gpu, fmt))


def test_register_path_conditions():
    blk = select_block("h100", "bf16")
    assert _regs(blk.with_(out_frac_bits=21))  # 22 bits: round to odd has two spare bits
    assert not _regs(blk.with_(out_frac_bits=22))  # 23 bits: one spare bit only
    assert not _regs(blk.with_(out_frac_bits=0))  # 1-bit results
    late = select_block("b200", "e4m3")
    assert _regs(late) and late.c_mode == "late"
    assert not _regs(late.with_(c_rounding="rtz"))  # c stage is not float32's addition
    assert not _regs(late.with_(c_frac_bits=13))
    assert not _regs(select_block("h100", "e4m3", "fp16"))  # fp16 late stage


ROUNDINGS = ["rtz", "rne", "rup", "rdn"]


@pytest.mark.parametrize("rnd", ROUNDINGS)
@pytest.mark.parametrize("out_bits", [None, 13, 21])
def test_rounding_modes_and_widths(monkeypatch, rnd, out_bits):
    rng = np.random.default_rng(ROUNDINGS.index(rnd) * 7 + (out_bits or 0))
    blk = select_block("h100", "bf16").with_(rounding=rnd, out_frac_bits=out_bits)
    assert _regs(blk)
    a = rng.standard_normal((9, 70)) * np.exp(rng.standard_normal((9, 1)) * 3)
    b = rng.standard_normal((70, 21))
    c = (rng.standard_normal((9, 21)) * 8).astype(np.float32)
    c[0] = 0.0
    c[1] = -c[1] * 1e6  # c above the products: the block truncates most of them away
    _same(monkeypatch, a, b, c=c, inputs="bf16", model=blk)


@pytest.mark.parametrize("rnd", ROUNDINGS)
def test_fp32_top_binade_overflow_and_infinite_accumulators(monkeypatch, rnd):
    # c in fp32's top binade: some results overflow to inf (RTZ/directed: by the model's
    # rule), and the infinite accumulator then meets later blocks
    rng = np.random.default_rng(40 + ROUNDINGS.index(rnd))
    blk = select_block("a100", "bf16").with_(rounding=rnd)
    a = rng.standard_normal((6, 40)) * 2.0 ** 60
    b = np.abs(rng.standard_normal((40, 17))) * 2.0 ** 60
    c = np.full((6, 17), 3.3e38, np.float32)
    c[1] = -c[1]
    c[2] = 1.7e38
    _same(monkeypatch, a, b, c=c, inputs="bf16", model=blk)


@pytest.mark.parametrize("rnd", ROUNDINGS)
def test_fp16_outputs_subnormal_and_overflowing(monkeypatch, rnd):
    # fp16 results: subnormal (small inputs), overflowing (large inputs), and normal
    rng = np.random.default_rng(50 + ROUNDINGS.index(rnd))
    blk = select_block("a100", "fp16", "fp16").with_(rounding=rnd)
    assert _regs(blk)
    a = rng.standard_normal((8, 48))
    a[:3] *= 2.0 ** -9
    a[3:5] *= 150.0
    b = rng.standard_normal((48, 19))
    b[:, :5] *= 2.0 ** -8
    b[:, 5:8] *= 200.0
    c = (rng.standard_normal((8, 19)) * 2.0 ** -16).astype(np.float32)
    _same(monkeypatch, a, b, c=c, inputs="fp16", model=blk, out="fp16")


def test_int32_overflow_between_runs(monkeypatch):
    # b200 e4m3 (F = 25): a block of 32 largest products sums past 2^31 over its two
    # int32 runs; and |S| >= 2^30 within one run (h100 bf16, 16 largest products plus c)
    blk = select_block("b200", "e4m3")
    from lowprec._kernels import tensorcore_fast as tcf

    a = np.full((5, 64), 448.0)
    a[1] = -448.0
    a[2, ::2] = -448.0  # cancelling runs: no overflow, a zero sum
    b = np.full((64, 18), 448.0)
    r = _same(monkeypatch, a, b, inputs="e4m3", model=blk)
    assert r[2, 0] == 0.0 and np.isfinite(r).all()
    big = 1.9921875
    a = np.full((4, 48), big)
    a[1] = -big
    b = np.full((48, 16), big)
    c = np.full((4, 16), 3.9, np.float32)
    c[1] = -3.9
    _same(monkeypatch, a, b, c=c, inputs="bf16", model="h100")
    assert tcf.registers_round(24, -126, 127, 25, False, 24, RNE)


@pytest.mark.parametrize("gpu,fmt", [("h100", "e4m3"), ("a100", "bf16")])
def test_c_alone_far_below_the_grid(monkeypatch, gpu, fmt):
    # rows of a that are zero: the block is c alone; c tiny (fp32 subnormals) puts E below
    # F - 126, where c's scale leaves float32; c = 0 there gives +0
    rng = np.random.default_rng(60)
    a = rng.standard_normal((7, 40))
    a[2:6] = 0.0
    b = rng.standard_normal((40, 20))
    c = (rng.standard_normal((7, 20)) * 2.0 ** -135).astype(np.float32)
    c[4] = 0.0
    c[5] = -0.0
    c[3] = np.float32(2.0 ** -100) * np.sign(c[3])
    r = _same(monkeypatch, a, b, c=c, inputs=fmt, model=gpu)
    assert (_bits(r[4]) == 0).all()


def test_k_padding_slots_point_at_zero_columns(monkeypatch):
    # K not a multiple of the instruction (padding slots), with interleaved blocks
    from lowprec._kernels import tensorcore_fast as tcf

    rng = np.random.default_rng(70)
    for k in (1, 13, 33, 70):
        a, b = rng.standard_normal((5, k)), rng.standard_normal((k, 9))
        for gpu, fmt, out in (("h100", "e4m3", None), ("h100", "e4m3", "fp16"),
                              ("a100", "bf16", None), ("b200", "e4m3", None)):
            _same(monkeypatch, a, b, inputs=fmt, model=gpu, out=out)
    a32 = np.ones((1, 2, 3), np.float32)
    pan = np.ones((1, 1, 3, 16), np.float32)
    order = np.array([0, 1, 2, -1, -1, 1], np.int64)
    a2, pa2, b2, pb2, o2 = tcf.pad_slots(a32, a32, pan, pan, order)
    assert a2.shape == (1, 2, 5) and b2.shape == (1, 1, 5, 16)
    assert (o2 == [0, 1, 2, 3, 4, 1]).all() and (a2[..., 3:] == 0).all()
    assert (b2[:, :, 3:] == 0).all() and (order == [0, 1, 2, -1, -1, 1]).all()
    same = tcf.pad_slots(a32, a32, pan, pan, order[:3])
    assert same[0] is a32 and same[2] is pan
