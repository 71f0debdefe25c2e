"""Tensor-core models: real-GPU outputs, PeerJ vectors, and the kernel against the exact
block-FMA reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lowprec
from lowprec.reference import gemm as ref
from lowprec.hardware import (BlockFMAModel, get_model, list_datasets, load_dataset,
                              select_block)


def _bits(x):
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


# Every shipped data set, B200's fp8 sets and the fp16-output files of Ada's and B200's fp8
# sets included (their paths were fitted by `lowprec fit`, docs/hardware.md).
DATASETS = list_datasets()


def test_all_datasets_present():
    assert {(g, f) for g, f, _ in DATASETS} == {("V100", "fp16"), ("A100", "fp16"),
                                              ("A100", "bf16"), ("H100", "fp16"),
                                              ("H100", "bf16"), ("H100", "E4M3"),
                                              ("Ada", "E4M3"), ("Ada", "E5M2"),
                                              ("B200", "E4M3"), ("B200", "E5M2")}
    assert len(DATASETS) == 18


@pytest.mark.parametrize("gpu,folder,out", DATASETS)
def test_models_reproduce_gpu_outputs(gpu, folder, out):
    ds = load_dataset(gpu, folder, out)
    assert ds.cases == (1000 if gpu in ("Ada", "B200") else 2500)
    got = lowprec.matmul(ds.a[:, None, :], ds.b[:, :, None], c=ds.c[:, None, None],
                         inputs=ds.input_format, model=ds.model_name,
                         out="fp16" if out == "float16" else None)
    got = np.asarray(got, np.float32).reshape(-1)
    bad = np.flatnonzero(_bits(got) != _bits(ds.d))
    assert bad.size == 0, f"{bad.size} cases differ, first {bad[:5]}"


@pytest.mark.parametrize("gpu,folder,out", DATASETS)
def test_reference_reproduces_gpu_outputs(gpu, folder, out):
    ds = load_dataset(gpu, folder, out, limit=60)
    blk = select_block(ds.model_name, ds.input_format, out)
    fmt = lowprec.get_format(blk.convert_inputs or ds.input_format)
    for i in range(ds.cases):
        r = ref.dot_block(ds.a[i].tolist(), ds.b[i].tolist(), float(ds.c[i]), blk, fmt.emin,
                          fmt.emin)
        assert np.float32(r).view(np.uint32) == ds.d[i].view(np.uint32), i


def test_simple_block_model_misses_h100_fp8_fp16_output():
    # The evidence for the fp16-datapath model: the plain block (n=32, F=13, RNE to fp16)
    # cannot explain the GPU's fp16 outputs.
    ds = load_dataset("H100", "E4M3", "fp16", limit=300)
    naive = BlockFMAModel(32, 13, "rne", "fp16")
    got = lowprec.matmul(ds.a[:, None, :], ds.b[:, :, None], c=ds.c[:, None, None],
                         inputs="e4m3", model=naive, out="fp16")
    got = np.asarray(got, np.float32).reshape(-1)
    assert (_bits(got) != _bits(ds.d)).sum() > 50


PEERJ = [  # (a, b, c, V100 result, A100 result): REFERENCE.md sec. 4, fp32 out, one block
    ([1.0], [1.0], -(1 - 2.0 ** -24), 2.0 ** -23, 2.0 ** -24),
    ([1.0, 1.0], [1.0, -2.0 ** -24], -1 + 2.0 ** -24, 2.0 ** -23, 0.0),
    ([1.0] * 4, [2.0 ** -24] * 4, 1.0, 1.0, 1 + 2.0 ** -22),
    ([1.0] * 4, [1.0, 1.5, 1.75, 1.875], 1.875, 8.0, 8.0),
]


@pytest.mark.parametrize("a,b,c,v100,a100", PEERJ)
def test_peerj_vectors(a, b, c, v100, a100):
    A = np.array([a], np.float32)
    B = np.array(b, np.float32)[:, None]
    C = np.array([[c]], np.float32)
    assert lowprec.quantize(np.array(a + b), "fp16").tolist() == a + b  # 2^-24: subnormal
    assert lowprec.matmul(A, B, c=C, inputs="fp16", model="v100")[0, 0] == np.float32(v100)
    assert lowprec.matmul(A, B, c=C, inputs="fp16", model="a100")[0, 0] == np.float32(a100)


def test_h100_fp8_fp32_result_keeps_13_fraction_bits():
    a = np.array([[1.0, 2.0 ** -9]], np.float32)
    b = np.array([[1.0], [2.0 ** -6]], np.float32)
    r = lowprec.matmul(a, b, inputs="e4m3", model="h100")[0, 0]
    assert r == np.float32(1.0)  # 2^-15 is below the 13 fraction bits kept
    assert lowprec.matmul(a, b, inputs="e4m3", model="b200")[0, 0] == np.float32(1 + 2.0 ** -15)


def _model_strategy():
    return st.builds(
        lambda n, f, rnd, out, late, mult, inter, prom: BlockFMAModel(
            n, f, rnd, out, c_mode="late" if late else "block", instruction_k=n * mult,
            interleave=inter if inter and (n * mult) % (inter * mult) == 0 else 0,
            promote_every=(n * mult * prom) or None),
        st.sampled_from([1, 2, 4, 8, 16]), st.integers(-2, 27),
        st.sampled_from(["rtz", "rne", "rup", "rdn"]), st.sampled_from(["fp32", "fp16"]),
        st.booleans(), st.sampled_from([1, 2]), st.sampled_from([0, 1, 2]),
        st.sampled_from([0, 1, 3]))


@settings(max_examples=40)
@given(model=_model_strategy(), fmt=st.sampled_from(["fp16", "bf16", "e4m3", "e5m2", "tf32"]),
       k=st.integers(0, 37), specials=st.booleans(), seed=st.integers(0, 2**31))
def test_kernel_matches_reference(model, fmt, k, specials, seed):
    f = lowprec.get_format(fmt)
    rng = np.random.default_rng(seed)
    vals = f.values() if f.bits <= 16 else None

    def draw(shape):
        if vals is not None:
            x = vals[rng.integers(0, len(vals), shape)]
        else:
            x = lowprec.quantize(rng.standard_normal(shape) * 2.0 ** rng.integers(-140, 120, shape),
                                 f)
        pick = rng.random(shape)
        x = np.where(pick < 0.15, 0.0, x)
        x = np.where((pick > 0.15) & (pick < 0.3), rng.choice([1.0, -1.0, f.min_subnormal,
                                                              f.max, -f.max], shape), x)
        if not specials:
            x = np.where(np.isfinite(x), x, 1.0)
        return x.astype(np.float64)

    a, b = draw((2, k)), draw((k, 3))
    c = rng.choice([0.0, -0.0, 1.0, -2.5, 1e-40, 3e38, 65504.0, -7.0], (2, 3)).astype(np.float32)
    if specials:
        c[0, 0] = rng.choice([np.inf, -np.inf, np.nan, 1.0])
    out = "fp16" if model.out_format == "float16" else None
    got = lowprec.matmul(a, b, c=c, inputs=fmt, model=model, out=out)
    cc = lowprec.quantize(c, "fp16") if out else c
    want = ref.matmul_model_ref(a, b, cc.astype(np.float64), model, f.emin, f.emin)
    if out and model.promote_every:  # the promoted total is fp32; out= rounds it (RNE)
        want = lowprec.quantize(want, "fp16")
    g, w = _bits(np.asarray(got, np.float32)), _bits(want)
    assert (g == w).all(), (np.asarray(got), want)


def test_k_not_multiple_of_block_pads_with_zeros():
    rng = np.random.default_rng(5)
    a = lowprec.quantize(rng.standard_normal((3, 21)), "fp16")
    b = lowprec.quantize(rng.standard_normal((21, 2)), "fp16")
    apad = np.concatenate([a, np.zeros((3, 3))], axis=1)
    bpad = np.concatenate([b, np.zeros((3, 2))], axis=0)
    for m in ("v100", "a100", "h100"):
        assert (_bits(lowprec.matmul(a, b, inputs="fp16", model=m))
                == _bits(lowprec.matmul(apad, bpad, inputs="fp16", model=m))).all()


def test_promotion_interval_via_chunk():
    rng = np.random.default_rng(6)
    a = lowprec.quantize(rng.standard_normal((2, 256)), "e4m3")
    b = lowprec.quantize(rng.standard_normal((256, 2)), "e4m3")
    blk = select_block("h100", "e4m3").with_(promote_every=128)
    r1 = lowprec.matmul(a, b, inputs="e4m3", model="h100", chunk=128)
    r2 = lowprec.matmul(a, b, inputs="e4m3", model=blk)
    assert (_bits(r1) == _bits(r2)).all()
    want = ref.matmul_model_ref(a, b, None, blk, -6, -6)
    assert (_bits(r1) == _bits(want)).all()


def test_model_special_values():
    a = np.array([[np.inf, 1.0], [np.inf, 1.0], [np.nan, 0.0], [1.0, 1.0]])
    b = np.array([[1.0], [1.0]])
    c = np.array([[0.0], [-np.inf], [0.0], [np.inf]], np.float32)
    r = lowprec.matmul(a, b, c=c, inputs="fp16", model="a100")
    assert r[0, 0] == np.inf and np.isnan(r[1, 0]) and np.isnan(r[2, 0]) and r[3, 0] == np.inf
    # fp16 output overflow of the block is inf
    r = lowprec.matmul(np.array([[60000.0, 60000.0]]), np.array([[1.0], [1.0]]),
                       inputs="fp16", model="a100", out="fp16")
    assert np.asarray(r, np.float32)[0, 0] == np.inf


def test_model_names_and_errors():
    for name in ("v100", "a100", "a2", "a30", "ada", "l40s", "h100", "h200", "b200"):
        assert get_model(name).name == name
    with pytest.raises(ValueError, match="known: a100, a2"):
        lowprec.matmul(np.ones((1, 4)), np.ones((4, 1)), inputs="fp16", model="rtx9000")
    with pytest.raises(ValueError, match="do not take bfloat16"):
        lowprec.matmul(np.ones((1, 4)), np.ones((4, 1)), inputs="bf16", model="v100")
    with pytest.raises(ValueError, match="do not take float32"):
        lowprec.matmul(np.ones((1, 4)), np.ones((4, 1)), model="h100")
    with pytest.raises(ValueError, match="not float16"):
        lowprec.matmul(np.ones((1, 4)), np.ones((4, 1)), inputs="bf16", model="h100", out="fp16")
    with pytest.raises(ValueError, match="not float16"):
        lowprec.matmul(np.ones((1, 4)), np.ones((4, 1)), inputs="tf32", model="ada", out="fp16")
    with pytest.raises(ValueError):
        BlockFMAModel(0, 23)
    with pytest.raises(ValueError):
        BlockFMAModel(8, 24, instruction_k=12)
    with pytest.raises(ValueError):
        BlockFMAModel(8, 24, rounding="sr")
    assert select_block("h200", "e5m2").out_frac_bits == 13
