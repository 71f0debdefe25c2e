"""How the named models chain tensor-core instructions along K (issue 14, section 2).

The real-GPU data cover one instruction (K = 32 fp8 products). Along a longer K the models
do what the authors' ``models/tools/GEMM.m`` (MATLAB-tensor-core) does: K is cut into
instructions (zero padded) and each instruction's result, in the output format (fp32, or
fp16 for the fp16-output paths) and rounded as the path rounds it, is the next
instruction's c. With ``c_mode="late"`` (B200 fp8 to fp32; Hopper's and B200's fp8 to fp16)
the instruction sums its products from 0 and the fed-back value is added by the separate
c stage (its own rounding); with ``c_mode="block"`` (Ada fp8) it is aligned with the
products of the instruction's first block. So a K = several instructions product equals
calling the model once per instruction with c = the previous call's result, bit for bit.
"""

import numpy as np
import pytest

import lowprec
from lowprec.reference import gemm as ref
from lowprec.tensorcore import get_model, select_block

# (GPU, input format, output format): every named fp8 path, the fitted ones included
PATHS = [(g, f, o) for g in ("ada", "h100", "b200") for f in ("e4m3", "e5m2")
         for o in ("fp32", "fp16")]


def _bits(x):
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


def _data(fmt, m, k, n, seed, c_scale=1.0):
    rng = np.random.default_rng(seed)
    f = lowprec.get_format(fmt)
    vals = f.values()
    vals = vals[np.isfinite(vals) & (np.abs(vals) <= 4)]  # the data sets' range
    a = vals[rng.integers(0, len(vals), (m, k))]
    b = vals[rng.integers(0, len(vals), (k, n))]
    c = (rng.random((m, n)) * c_scale).astype(np.float32)
    return a, b, c


def _chain(a, b, c, gpu, fmt, out, ik):
    """One model call per instruction, the previous result fed back as c."""
    d = lowprec.quantize(c, out) if out == "fp16" else c
    for q in range(0, a.shape[1], ik):
        d = lowprec.matmul(a[:, q:q + ik], b[q:q + ik], c=d, inputs=fmt, model=gpu,
                           out=out if out == "fp16" else None)
        d = np.asarray(d, np.float32)
    return d


@pytest.mark.parametrize("gpu,fmt,out", PATHS)
def test_k_several_instructions_is_chained_single_instructions(gpu, fmt, out):
    blk = select_block(gpu, fmt, out)
    ik = blk.k_per_instruction
    a, b, c = _data(fmt, 8, 4 * ik, 6, seed=len(gpu) + 7 * len(fmt) + len(out))
    c_in = lowprec.quantize(c, out) if out == "fp16" else c
    full = np.asarray(lowprec.matmul(a, b, c=c_in, inputs=fmt, model=gpu,
                                     out=out if out == "fp16" else None), np.float32)
    chained = _chain(a, b, c, gpu, fmt, out, ik)
    assert (_bits(full) == _bits(chained)).all()
    # and the exact reference, one output element at a time (a few of them)
    f = lowprec.get_format(blk.convert_inputs or fmt)
    for i, j in ((0, 0), (3, 5), (7, 2)):
        r = ref.dot_block(list(a[i]), list(b[:, j]), float(np.float32(c_in[i, j])), blk,
                          f.emin, f.emin)
        assert np.float32(r).view(np.uint32) == _bits(full[i, j]), (i, j)


@pytest.mark.parametrize("gpu,fmt,out", PATHS)
def test_k_not_a_multiple_of_the_instruction_pads_with_zeros(gpu, fmt, out):
    ik = select_block(gpu, fmt, out).k_per_instruction
    a, b, c = _data(fmt, 4, ik + ik // 2 + 3, 5, seed=11)
    pad = (-a.shape[1]) % ik
    ap = np.concatenate([a, np.zeros((4, pad))], axis=1)
    bp = np.concatenate([b, np.zeros((pad, 5))], axis=0)
    c_in = lowprec.quantize(c, out) if out == "fp16" else c
    o = out if out == "fp16" else None
    r = lowprec.matmul(a, b, c=c_in, inputs=fmt, model=gpu, out=o)
    rp = lowprec.matmul(ap, bp, c=c_in, inputs=fmt, model=gpu, out=o)
    assert (_bits(r) == _bits(rp)).all()


def test_fp16_output_feeds_back_fp16_not_fp32():
    # Chaining through an fp32 accumulator instead (the fp32-output path for all but the
    # last instruction) gives other results: the format fed back is part of the model.
    a, b, c = _data("e4m3", 16, 128, 16, seed=3)
    full = lowprec.matmul(a, b, c=lowprec.quantize(c, "fp16"), inputs="e4m3", model="b200",
                          out="fp16")
    d = lowprec.matmul(a[:, :96], b[:96], c=lowprec.quantize(c, "fp16"), inputs="e4m3",
                       model="b200")
    d = lowprec.matmul(a[:, 96:], b[96:], c=lowprec.quantize(d, "fp16"), inputs="e4m3",
                       model="b200", out="fp16")
    assert (_bits(full) != _bits(d)).any()


def test_b200_fp32_chain_is_two_roundings_per_instruction():
    # B200 fp8 to fp32 (fitted): per instruction the 32 products are summed (F = 25, RNE
    # into fp32) and then added to the fed-back value with RNE. Written out here with
    # numpy fp32 arithmetic for products whose sum is exact in fp32.
    blk = select_block("b200", "e4m3", "fp32")
    assert (blk.n, blk.k_per_instruction, blk.c_mode, blk.rounding) == (32, 32, "late", "rne")
    rng = np.random.default_rng(8)
    a = rng.choice([0.0, 1.0, -1.0, 0.5, 2.0], (4, 96))
    b = rng.choice([0.0, 1.0, -0.5, 0.25], (96, 3))
    c = (rng.random((4, 3)) * 1e-3).astype(np.float32)
    want = c.copy()
    for q in range(0, 96, 32):
        part = (a[:, q:q + 32] @ b[q:q + 32]).astype(np.float32)  # exact here
        want = (want + part).astype(np.float32)  # fp32 RNE, one rounding
    got = lowprec.matmul(a, b, c=c, inputs="e4m3", model="b200")
    assert (_bits(got) == _bits(want)).all()
    # the authors' c-in-the-block RTZ model chains differently on the same inputs
    from lowprec.tensorcore import AUTHORS_B200_FP8
    other = lowprec.matmul(a, b, c=c, inputs="e4m3", model=AUTHORS_B200_FP8)
    assert (_bits(other) != _bits(got)).any()


def test_named_models_say_how_they_chain():
    for gpu in ("ada", "l40s", "h100", "h200", "b200"):
        m = get_model(gpu)
        for (fin, out), blk in m.paths.items():
            if lowprec.get_format(fin).bits != 8:
                continue
            assert blk.k_per_instruction == 32 or (gpu in ("ada", "l40s") and blk.n == 16)
            assert blk.promote_every is None  # no promotion inside a model's own chain
