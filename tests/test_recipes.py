"""GPU numerics in training: tensor-core models and fp32 promotion in every GEMM of a step,
and the fp8/fp4 recipes (DeepSeek-V3 fine-grained scaling, NVFP4), each against a slow
reference written from its definition, with its defining effect at small size."""

from fractions import Fraction

import numpy as np
import pytest

import lowprec
from lowprec import LPArray, reference
from lowprec.autograd import Tensor
from lowprec.autograd.amp import (RECIPES, Autocast, CurrentScaling, FineGrainedScaling,
                                  MXScaling, NVFP4Scaling, Policy)
from lowprec.autograd.scaling import (hadamard_signs, nvfp4_cast, random_hadamard,
                                      tile_quantize)
from lowprec.scaled import fp8_scale
from lowprec.tensorcore import MODELS

E4M3 = lowprec.get_format("float8_e4m3fn")
E5M2 = lowprec.get_format("float8_e5m2")
E2M1 = lowprec.get_format("float4_e2m1fn")
FP8 = dict(activations="float8_e4m3fn", weights="float8_e4m3fn", gradients="float8_e5m2")


def _rng(seed):
    return np.random.default_rng(seed)


def _step(policy, a, b, g, seed=0):
    """y = a @ b and its backward with output gradient g; returns (y, a.grad, b.grad)."""
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    with Autocast(policy, seed=seed):
        y = ta @ tb
    y.backward(g)
    return y.data, ta.grad, tb.grad


def _current(x, fmt):
    """TE current scaling of a tensor, independently: (LPArray of codes, fp32 1/scale)."""
    s = np.float32(fp8_scale(np.float32(np.abs(x).max()), fmt))
    codes = lowprec.encode((x * s).astype(np.float32), fmt, overflow="saturate")
    return LPArray(codes, fmt), np.float32(1) / s


# --- tensor-core models in every GEMM -------------------------------------------------------
@pytest.mark.parametrize("model", ["h100", MODELS["ada"],
                                   MODELS["h100"].block("float8_e4m3fn").with_(frac_bits=9)])
@pytest.mark.parametrize("promote", [None, 64])
def test_step_gemms_are_lowprec_matmul_with_the_model(model, promote):
    """Forward, dgrad (E5M2 x E4M3) and wgrad (E4M3 x E5M2) under Policy(gemm_model=...)
    equal lowprec.matmul(model=..., chunk=...) on the same cast operands, bit for bit."""
    if promote and not isinstance(model, str) and model is MODELS["ada"]:
        promote = 32  # Ada's fp8 instruction takes 16 products
    r = _rng(0)
    a = r.standard_normal((96, 160)).astype(np.float32)  # wgrad's K = 96, forward's 160
    b = r.standard_normal((160, 72)).astype(np.float32)
    g = (r.standard_normal((96, 72)) * 1e-3).astype(np.float32)
    pol = Policy("p", scaling=CurrentScaling(), gemm_model=model, promote_every=promote, **FP8)
    y, ga, gb = _step(pol, a, b, g)
    qa, ia = _current(a, E4M3)
    qb, ib = _current(b, E4M3)
    qg, ig = _current(g, E5M2)
    mm = dict(model=model, chunk=promote)
    np.testing.assert_array_equal(y, lowprec.matmul(qa, qb, scale_a=ia, scale_b=ib, **mm))
    np.testing.assert_array_equal(ga, lowprec.matmul(qg, qb.T, scale_a=ig, scale_b=ib, **mm))
    np.testing.assert_array_equal(gb, lowprec.matmul(qa.T, qg, scale_a=ia, scale_b=ig, **mm))


def test_bf16_step_on_the_h100_model():
    r = _rng(1)
    a, b, g = (r.standard_normal(s).astype(np.float32) for s in ((9, 40), (40, 7), (9, 7)))
    pol = Policy("p", activations="bf16", weights="bf16", gradients="bf16", gemm_model="h100")
    y, ga, gb = _step(pol, a, b, g)
    q = lambda v: lowprec.array(v, "bf16")  # noqa: E731
    np.testing.assert_array_equal(y, lowprec.matmul(q(a), q(b), model="h100"))
    np.testing.assert_array_equal(ga, lowprec.matmul(q(g), q(b).T, model="h100"))
    np.testing.assert_array_equal(gb, lowprec.matmul(q(a).T, q(g), model="h100"))
    # the model is not the IEEE fp32 accumulation
    assert not np.array_equal(y, lowprec.matmul(q(a), q(b)))


@pytest.mark.parametrize("model", ["mi300x", "mi250x", "mi100"])
def test_bf16_step_on_an_amd_matrix_core_model(model):
    """AMD matrix-core models run every GEMM of a step as lowprec.matmul(model=...) does."""
    r = _rng(5)
    a, b, g = (r.standard_normal(s).astype(np.float32) for s in ((9, 40), (40, 7), (9, 7)))
    pol = Policy("p", activations="bf16", weights="bf16", gradients="bf16", gemm_model=model)
    y, ga, gb = _step(pol, a, b, g)
    q = lambda v: lowprec.array(v, "bf16")  # noqa: E731
    np.testing.assert_array_equal(y, lowprec.matmul(q(a), q(b), model=model))
    np.testing.assert_array_equal(ga, lowprec.matmul(q(g), q(b).T, model=model))
    np.testing.assert_array_equal(gb, lowprec.matmul(q(a).T, q(g), model=model))


def test_amd_gemm_model_errors_at_construction():
    with pytest.raises(ValueError, match="forward GEMM"):
        Policy("x", gemm_model="mi300x", **FP8)              # OCP fp8: MI300X takes fnuz
    with pytest.raises(ValueError, match="dgrad GEMM"):
        Policy("x", gemm_model="mi100", activations="bf16", weights="bf16")  # fp32 grads
    with pytest.raises(ValueError, match="promote_every"):
        Policy("x", gemm_model="mi300x", promote_every=128, activations="bf16",
               weights="bf16", gradients="bf16")
    fnuz = dict(activations="float8_e4m3fnuz", weights="float8_e4m3fnuz",
                gradients="float8_e5m2fnuz")
    assert Policy("x", gemm_model="mi300x", scaling=CurrentScaling(), **fnuz).gemm_model


def test_promotion_changes_results_only_where_k_exceeds_it():
    r = _rng(2)
    a = r.random((4, 512)).astype(np.float32)
    b = r.random((512, 64)).astype(np.float32)
    g = r.random((4, 64)).astype(np.float32)
    plain = _step(Policy("fp8-current-h100"), a, b, g)
    promoted = _step(Policy("fp8-current-h100-promote128"), a, b, g)
    assert (plain[0] != promoted[0]).mean() > 0.5   # forward: K = 512 > 128
    np.testing.assert_array_equal(plain[1], promoted[1])  # dgrad: K = 64
    np.testing.assert_array_equal(plain[2], promoted[2])  # wgrad: K = 4


def test_promotion_every_128_cuts_the_hopper_fp8_error_at_k4096():
    """DeepSeek-V3 sec. 3.3.2: fp8 GEMMs with K = 4096 on Hopper lose accuracy to the
    tensor cores' limited accumulation; promoting to fp32 every 128 products fixes it."""
    r = _rng(3)
    a = r.random((8, 4096)).astype(np.float32)
    b = r.random((4096, 8)).astype(np.float32)
    err = {}
    for name in ("fp8-current-h100", "fp8-current-h100-promote128"):
        y, (_, _, qa, qb) = Autocast(Policy(name)).matmul(a, b, "k")
        exact = (qa.values.astype(np.float64) @ qb.values) * np.float64(qa.inv * qb.inv)
        err[name] = np.max(np.abs(y - exact) / np.abs(exact))
    assert err["fp8-current-h100"] > 0.01                      # truncation drift, % level
    assert err["fp8-current-h100-promote128"] < err["fp8-current-h100"] / 20


def test_promote_every_without_a_model_is_matmul_chunk():
    r = _rng(4)
    a, b = r.standard_normal((5, 300)).astype(np.float32), r.standard_normal((300, 3))
    pol = Policy("p", activations="bf16", weights="bf16", acc="bf16", promote_every=32)
    y, _ = Autocast(pol).matmul(a, b.astype(np.float32), "k")
    q = lambda v: lowprec.array(v, "bf16")  # noqa: E731
    np.testing.assert_array_equal(y, lowprec.matmul(q(a), q(b), acc="bf16", chunk=32))
    assert not np.array_equal(y, lowprec.matmul(q(a), q(b), acc="bf16"))


def test_gemm_model_errors_at_construction():
    with pytest.raises(ValueError, match="h100.*float32.*formats it takes"):
        Policy("x", gemm_model="h100")                     # fp32 operands: not a TC input
    with pytest.raises(ValueError, match="a100.*forward.*float8_e4m3fn"):
        Policy("x", gemm_model="a100", **FP8)              # no fp8 tensor cores on Ampere
    with pytest.raises(ValueError, match="dgrad.*bfloat16.*float8_e5m2"):
        Policy("x", activations="bf16", weights="bf16", gradients="float8_e5m2",
               gemm_model="h100")                          # no bf16 x e5m2 instruction
    with pytest.raises(ValueError, match="unknown tensor-core model"):
        Policy("x", gemm_model="h1000", **FP8)
    with pytest.raises(ValueError, match="gemm_model"):
        Policy("x", gemm_model=3, **FP8)
    with pytest.raises(ValueError, match="promote_every=100 must be a multiple"):
        Policy("x", gemm_model="h100", promote_every=100, **FP8)
    for bad in (0, -128, 1.5, True):
        with pytest.raises(ValueError, match="promote_every"):
            Policy("x", promote_every=bad)
    for sc in (MXScaling(), NVFP4Scaling()):
        with pytest.raises(ValueError, match="not modelled"):
            Policy("x", scaling=sc, gemm_model="h100", **FP8)
    with pytest.raises(ValueError, match="acc=None"):
        Policy("x", gemm_model="h100", acc=None, **FP8)
    # a fitted block model takes any float inputs
    assert Policy("x", gemm_model=MODELS["h100"].block("bf16")).gemm_model is not None


# --- per-tensor current scaling and MX: Transformer Engine's definitions --------------------
def test_current_scaling_amax_ignores_nan_as_te():
    """TE's amax kernel reduces with fmaxf, so a NaN does not reset the scale to 1."""
    x = np.array([[0.5, np.nan, -3.0, 1.0]], np.float32)
    q = Autocast(Policy("c", scaling=CurrentScaling(), **FP8)).cast(x, "activation", "t")
    assert q.inv == np.float32(1) / (np.float32(448) / np.float32(3))
    assert np.isnan(q.values[0, 1]) and q.values[0, 2] == -448


def test_mx_scaling_default_is_te_rceil():
    """TE's MXFP8 scale is 2^ceil(log2(amax / 448)): a block with amax 300 keeps scale 1
    (torchao's "ceil" would take 2 and leave e4m3's top binade unused)."""
    x = np.full((1, 32), 1.0, np.float32)
    x[0, 0] = 300.0
    q = Autocast(Policy("m", scaling=MXScaling(), **FP8)).cast(x, "activation", "t", axis=1)
    np.testing.assert_array_equal(q.values, lowprec.quantize(x, E4M3))  # scale 1
    q = Autocast(Policy("m", scaling=MXScaling(scale_rule="ceil"), **FP8)).cast(
        x, "activation", "t", axis=1)
    np.testing.assert_array_equal(q.values, 2 * lowprec.quantize(x / 2, E4M3))
    assert MXScaling().scale_rule == "rceil"


# --- DeepSeek-V3 fine-grained scaling ---------------------------------------------------------
def _tiles_exact(x, fmt, axis, tile, block=None):
    """Slow reference of DeepSeek's tile quantization, one tile and one value at a time:
    s = fp32(amax / max), element = round_exact(fp32(x / s)) with saturation."""
    x = np.asarray(x, np.float32)
    xm = np.moveaxis(x, axis, -1)
    R, K = xm.shape
    codes = np.zeros(xm.shape, np.float64)
    scale = np.zeros(xm.shape, np.float32)
    rb, kb = (1, tile) if block is None else (block, block)
    for r0 in range(0, R, rb):
        for k0 in range(0, K, kb):
            t = xm[r0:r0 + rb, k0:k0 + kb]
            fin = [abs(float(v)) for v in t.ravel() if not np.isnan(v)]
            amax = np.float32(max(fin) if fin else 0.0)
            s = np.float32(amax / np.float32(fmt.max)) if 0 < amax < np.inf else np.float32(1)
            scale[r0:r0 + rb, k0:k0 + kb] = s
            for i in range(t.shape[0]):
                for j in range(t.shape[1]):
                    v = float(np.float32(t[i, j] / s))
                    q = reference.round_exact(v, fmt, overflow="saturate")
                    codes[r0 + i, k0 + j] = float(q)
    return np.moveaxis(codes, -1, axis), np.moveaxis(scale, -1, axis)


@pytest.mark.parametrize("axis,block", [(1, None), (0, None), (0, 8), (1, 8)])
def test_tile_quantize_against_exact_reference(axis, block):
    r = _rng(5)
    x = (r.standard_normal((13, 21)) * np.exp2(r.integers(-12, 12, (13, 21)))).astype(np.float32)
    x[2, 3] = np.nan            # ignored by the amax, stays NaN
    x[:8, 16:] = 0              # an all-zero tile or block: scale 1
    x[5, 7] = 3e5               # saturates nothing: it is the tile's amax
    codes, scale = tile_quantize(x, E4M3, axis=axis, tile=8, block=block)
    ref_vals, ref_scale = _tiles_exact(x, E4M3, axis, 8, block)
    np.testing.assert_array_equal(scale, ref_scale)
    np.testing.assert_array_equal(lowprec.decode(codes, E4M3, np.float64), ref_vals)
    assert np.nanmax(np.abs(ref_vals)) == 448


def _tiles_fast_ref(x, axis, tile=128, block=None):
    """The same tiles with vectorised rounding (for larger reference GEMMs)."""
    x = np.asarray(x, np.float32)
    xm = np.moveaxis(x, axis, -1)
    R, K = xm.shape
    vals = np.zeros(xm.shape, np.float32)
    scale = np.zeros(xm.shape, np.float32)
    rb, kb = (1, tile) if block is None else (block, block)
    for r0 in range(0, R, rb):
        for k0 in range(0, K, kb):
            t = xm[r0:r0 + rb, k0:k0 + kb]
            amax = np.float32(np.abs(t).max())
            s = np.float32(amax / np.float32(448)) if amax > 0 else np.float32(1)
            vals[r0:r0 + rb, k0:k0 + kb] = lowprec.quantize((t / s).astype(np.float32), E4M3,
                                                            overflow="saturate")
            scale[r0:r0 + rb, k0:k0 + kb] = s
    return np.moveaxis(vals, -1, axis), np.moveaxis(scale, -1, axis)


def _tile_gemm_ref(av, sa, bv, sb, model, tile=128):
    """The definition: per K chunk of `tile`, lowprec.matmul of the chunk with the
    model, times the chunk's a-scale (per row) then b-scale (per column), fp32 each,
    added into an fp32 total from +0 in K order."""
    M, K = av.shape
    total = np.zeros((M, bv.shape[1]), np.float32)
    for k0 in range(0, K, tile):
        ks = slice(k0, k0 + tile)
        ca = LPArray(lowprec.encode(av[:, ks], E4M3), E4M3)
        cb = LPArray(lowprec.encode(bv[ks, :], E4M3), E4M3)
        r = lowprec.matmul(ca, cb, model=model, scale_a=sa[:, k0:k0 + 1],
                           scale_b=sb[k0:k0 + 1, :])
        for i in range(M):
            for j in range(total.shape[1]):
                total[i, j] = np.float32(total[i, j] + r[i, j])
    return total


@pytest.mark.parametrize("model", ["h100", None])
def test_fine_grained_step_against_slow_reference(model):
    """Forward, dgrad and wgrad of the DeepSeek-V3 recipe, bit for bit: 1x128 tiles for x
    and g, 128x128 blocks for w, the wgrad activation re-tiled from the forward cast, all
    three GEMMs in E4M3, 128-wide K chunks scaled and summed in fp32."""
    r = _rng(6)
    x = r.standard_normal((136, 200)).astype(np.float32)
    x[:, 7] *= 300  # an outlier channel
    w = (r.standard_normal((200, 144)) * 0.05).astype(np.float32)
    g = (r.standard_normal((136, 144)) * 1e-4).astype(np.float32)
    pol = Policy.recipe("fp8-deepseek", gemm_model=model)
    y, gx, gw = _step(pol, x, w, g)
    xv, xs = _tiles_fast_ref(x, 1)
    wv, ws = _tiles_fast_ref(w, 0, block=128)
    np.testing.assert_array_equal(y, _tile_gemm_ref(xv, xs, wv, ws, model))
    gv, gs = _tiles_fast_ref(g, 1)
    np.testing.assert_array_equal(gx, _tile_gemm_ref(gv, gs, wv.T, ws.T, model))
    x_back = (xv * xs).astype(np.float32)          # read back, dequantized in fp32
    xv2, xs2 = _tiles_fast_ref(x_back, 0)          # re-tiled 128x1 along the tokens
    gv2, gs2 = _tiles_fast_ref(g, 0)
    np.testing.assert_array_equal(gw, _tile_gemm_ref(xv2.T, xs2.T, gv2, gs2, model))


def test_fine_grained_runs_all_gemms_in_e4m3():
    ctx = Autocast(Policy("fp8-deepseek"), trace=True)
    a = Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 2), np.float32), requires_grad=True)
    with ctx:
        y = a @ w
    y.backward(np.ones((3, 2), np.float32))
    assert {f for _, role, f in ctx.events if role != "out"} == {"float8_e4m3fn"}


def test_fine_grained_tiles_beat_per_tensor_scaling_on_an_outlier_channel():
    """One channel 1e4 times larger: per-tensor scaling rounds every value relative to it;
    per-token 1x128 tiles map each token's outlier onto E4M3's largest value. Weights are
    exact in E4M3 under both recipes (every 128x128 block holds 448), so the difference is
    the activation scaling."""
    r = _rng(7)
    x = r.standard_normal((32, 512)).astype(np.float32)
    x[:, 0] *= 1e4
    w = lowprec.quantize(r.standard_normal((512, 16)) * 50, E4M3).astype(np.float32)
    w[::128, 0] = 448
    exact = x.astype(np.float64) @ w
    err = {}
    for name, pol in (("tensor", Policy("fp8-current")),
                      ("tiles", Policy.recipe("fp8-deepseek", gemm_model=None))):
        y, _ = Autocast(pol).matmul(x, w, "k")
        err[name] = np.linalg.norm(y - exact) / np.linalg.norm(exact)
    assert err["tensor"] > 0.005
    assert err["tiles"] < err["tensor"] / 100


def test_batched_operands_pass_through():
    """(..., m, k) @ (..., k, n): tiles and transposes act on the last two axes, so a
    batch of GEMMs equals the GEMMs one by one (fine-grained scaling is per tile), and
    per-tensor scaling equals lowprec.matmul's batched product."""
    r = _rng(8)
    a = r.standard_normal((2, 20, 150)).astype(np.float32)
    b = r.standard_normal((2, 150, 30)).astype(np.float32)
    g = r.standard_normal((2, 20, 30)).astype(np.float32)
    pol = Policy("fp8-deepseek")
    ctx = Autocast(pol)
    y, saved = ctx.matmul(a, b, "k")
    ga, gb = ctx.matmul_backward(g, saved, "k", True, True)
    for i in range(2):
        one = Autocast(pol)
        yi, si = one.matmul(a[i], b[i], "k")
        gai, gbi = one.matmul_backward(g[i], si, "k", True, True)
        np.testing.assert_array_equal(y[i], yi)
        np.testing.assert_array_equal(ga[i], gai)
        np.testing.assert_array_equal(gb[i], gbi)
    ctx = Autocast(Policy("fp8-current-h100"))
    y, saved = ctx.matmul(a, b, "k")
    ga, gb = ctx.matmul_backward(g, saved, "k", True, True)
    qa, ia = _current(a, E4M3)
    qb, ib = _current(b, E4M3)
    qg, ig = _current(g, E5M2)
    sw = lambda q: q.transpose(0, 2, 1)  # noqa: E731
    np.testing.assert_array_equal(y, lowprec.matmul(qa, qb, model="h100", scale_a=ia, scale_b=ib))
    np.testing.assert_array_equal(ga, lowprec.matmul(qg, sw(qb), model="h100", scale_a=ig,
                                                     scale_b=ib))
    np.testing.assert_array_equal(gb, lowprec.matmul(sw(qa), qg, model="h100", scale_a=ia,
                                                     scale_b=ig))


# --- NVFP4 ---------------------------------------------------------------------------------------
def _nvfp4_values(st, axis, n):
    """Block-scaled values (element x E4M3 block scale) of a ScaledTensor and its tensor
    scale."""
    s = np.take(np.repeat(np.asarray(st.scales, np.float32), st.block_size, axis=axis),
                np.arange(n), axis=axis)
    return lowprec.decode(st.codes, E2M1, np.float32) * s, np.float32(st.global_scale)


def test_nvfp4_cast_is_quantize_scaled_nvfp4():
    r = _rng(9)
    x = (r.standard_normal((24, 40)) * np.exp2(r.integers(-6, 6, (24, 1)))).astype(np.float32)
    ctx = Autocast(Policy("nvfp4"))
    for axis in (-1, -2):
        q = ctx.cast(x, "activation", "x", axis=axis)
        st = lowprec.quantize_scaled(x, "nvfp4", axis=axis)
        vals, gs = _nvfp4_values(st, axis % 2, x.shape[axis])
        np.testing.assert_array_equal(q.values, vals)
        assert q.inv == gs and q.fmt is None


def test_nvfp4_weights_use_16x16_blocks():
    """Each 16x16 block shares one E4M3 scale under the tensor scale of the whole weight
    (quantize_scaled of the block with that tensor scale), so the forward weight and the
    transposed weight of dgrad are the same values."""
    r = _rng(10)
    w = (r.standard_normal((40, 24)) * np.exp2(r.integers(-5, 5, (40, 24)))).astype(np.float32)
    ctx = Autocast(Policy("nvfp4"))
    q = ctx.cast(w, "weight", "w", axis=-2)
    gs = np.float32(np.abs(w).max() / np.float32(448 * 6))
    assert q.inv == gs
    for r0 in range(0, 40, 16):
        for c0 in range(0, 24, 16):
            blk = w[r0:r0 + 16, c0:c0 + 16]
            st = lowprec.quantize_scaled(blk.reshape(1, -1), "nvfp4", block_size=blk.size,
                                         global_scale=gs)
            ref = lowprec.decode(st.codes, E2M1, np.float32) * np.float32(st.scales[0, 0])
            np.testing.assert_array_equal(q.values[r0:r0 + 16, c0:c0 + 16], ref.reshape(blk.shape))
    qt = ctx.cast(w.T, "weight", "w", axis=-1)
    np.testing.assert_array_equal(qt.values, q.values.T)
    one_d = Autocast(Policy("p", scaling=NVFP4Scaling(weight_2d=False), weights="float4_e2m1fn"))
    assert not np.array_equal(one_d.cast(w.T, "weight", "w", axis=-1).values, q.values.T)


def test_random_hadamard_against_exact_reference():
    r = _rng(11)
    x = r.standard_normal((37, 3)).astype(np.float32)
    d = hadamard_signs(16, 4)
    assert set(d) == {-1.0, 1.0} and np.array_equal(d, hadamard_signs(16, 4))
    y = random_hadamard(x, 0, d)
    assert y.shape == (48, 3) and y.dtype == np.float32   # padded to a multiple of 16
    xp = np.zeros((48, 3))
    xp[:37] = x
    for c in range(3):
        for b0 in range(0, 48, 16):
            for i in range(16):
                exact = sum(Fraction((-1) ** bin(i & j).count("1")) * Fraction(int(d[j]))
                            * Fraction(float(xp[b0 + j, c])) for j in range(16)) / 4
                assert Fraction(float(y[b0 + i, c])) == reference.round_exact(exact, "float32")
    # orthogonal: the product over the transformed axis is unchanged (up to fp32 rounding)
    z = r.standard_normal((37, 5)).astype(np.float32)
    np.testing.assert_allclose(y.T.astype(np.float64) @ random_hadamard(z, 0, d),
                               x.T.astype(np.float64) @ z, rtol=0, atol=1e-5)


def test_nvfp4_step_against_reference():
    """Forward, dgrad and wgrad of the NVFP4 recipe (RNE gradients to compare bit for
    bit): 1x16 blocks for x and g along each GEMM's K, 16x16 blocks for w, the random
    Hadamard transform on both wgrad operands, the tensor scales as the GEMM's alpha."""
    r = _rng(12)
    x = r.standard_normal((40, 48)).astype(np.float32)
    w = (r.standard_normal((48, 24)) * 0.1).astype(np.float32)
    g = (r.standard_normal((40, 24)) * 1e-3).astype(np.float32)
    sc = NVFP4Scaling(stochastic_gradients=False, hadamard_seed=3)
    fp4 = "float4_e2m1fn"
    pol = Policy("p", activations=fp4, weights=fp4, gradients=fp4, scaling=sc)
    y, gx, gw = _step(pol, x, w, g)

    def one_d(v, axis):
        return _nvfp4_values(lowprec.quantize_scaled(v, "nvfp4", axis=axis), axis, v.shape[axis])

    codes, bs, gws = nvfp4_cast(w, E2M1, axis=0, two_d=True)
    wv = lowprec.decode(codes, E2M1, np.float32) * bs
    xv, gxs = one_d(x, 1)
    np.testing.assert_array_equal(y, lowprec.matmul(xv, wv, scale_a=gxs, scale_b=gws))
    gv, ggs = one_d(g, 1)
    np.testing.assert_array_equal(gx, lowprec.matmul(gv, wv.T, scale_a=ggs, scale_b=gws))
    d = hadamard_signs(16, 3)
    xh, xhs = one_d(random_hadamard(x, 0, d), 0)
    gh, ghs = one_d(random_hadamard(g, 0, d), 0)
    np.testing.assert_array_equal(gw, lowprec.matmul(xh.T, gh, scale_a=xhs, scale_b=ghs))
    # the transform leaves the product near the untransformed one
    exact = x.T.astype(np.float64) @ g
    assert np.linalg.norm(gw - exact) / np.linalg.norm(exact) < 0.3


def test_nvfp4_gradient_sr_is_unbiased_and_reproducible():
    r = _rng(13)
    row = (r.standard_normal(64) * 1e-3).astype(np.float32)
    g = np.tile(row, (4000, 1))  # 4000 draws of the same blocks (one tensor scale)
    ctx = Autocast(Policy("nvfp4"), seed=5)
    q = ctx.cast(g, "gradient", "g", axis=-1)
    draws = q.values.astype(np.float64) * np.float64(q.inv)
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    # the scaled element before rounding is v = fp32(x * fp32(fp32(1 / G) / s)), within
    # 2^-22 of x / (G s), so its expected dequantized value is x up to that; a block's
    # amax can exceed 6 when its E4M3 scale rounds down, and saturates (as in TE), so
    # only elements with |v| <= 6 are unbiased
    st = lowprec.quantize_scaled(row[None], "nvfp4")
    s = np.repeat(st.scales[0], 16).astype(np.float32)
    v = row * ((np.float32(1) / np.float32(st.global_scale)) / s)
    inside = np.abs(v) <= 6
    assert inside.sum() >= 60
    z = np.abs(mean - row) / (sd / np.sqrt(len(draws)) + 2.0 ** -22 * np.abs(row))
    assert z[inside].max() < 5                                # unbiased
    assert (sd > 0).mean() > 0.8                              # and really random
    rne = Autocast(Policy("nvfp4")).cast(g[:1], "activation", "g", axis=-1)  # RNE: biased
    bias = np.abs(rne.values[0] * np.float64(rne.inv) - row)
    assert (bias > 10 * sd / np.sqrt(len(draws))).sum() > 20
    again = Autocast(Policy("nvfp4"), seed=5).cast(g, "gradient", "g", axis=-1)
    np.testing.assert_array_equal(again.values, q.values)     # same seed, same bits
    other = Autocast(Policy("nvfp4"), seed=6).cast(g, "gradient", "g", axis=-1)
    assert not np.array_equal(other.values, q.values)


def test_nvfp4_training_step_reproducible_with_seeds():
    r = _rng(14)
    x, w, g = (r.standard_normal(s).astype(np.float32) for s in ((32, 48), (48, 16), (32, 16)))
    first = _step(Policy("nvfp4"), x, w, g, seed=1)
    second = _step(Policy("nvfp4"), x, w, g, seed=1)
    other = _step(Policy("nvfp4"), x, w, g, seed=2)
    for u, v in zip(first, second):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(first[0], other[0])          # forward: no SR
    assert not np.array_equal(first[1], other[1])              # gradients: SR


# --- the named recipes ------------------------------------------------------------------------
def test_new_recipes_are_registered_not_default():
    from lowprec.study import DEFAULT_RECIPES
    for name in ("fp8-current-h100", "fp8-current-h100-promote128", "fp8-deepseek", "nvfp4"):
        pol, desc = RECIPES[name]
        assert Policy(name) == pol and desc and name not in DEFAULT_RECIPES
    assert Policy("fp8-current-h100-promote128").promote_every == 128
    assert isinstance(Policy("fp8-deepseek").scaling, FineGrainedScaling)
    assert Policy("nvfp4").format("gradient") == E2M1
    with pytest.raises(ValueError, match="multiple of tile"):
        FineGrainedScaling(tile=128, weight_block=192)
    with pytest.raises(ValueError, match="power of two"):
        NVFP4Scaling(hadamard_size=12)
