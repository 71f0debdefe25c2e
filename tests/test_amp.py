"""Precision policies, fp8 scaling recipes, loss scaling (parity with torch.amp.GradScaler),
low-format weight updates and the instrumentation counts."""

import json
from fractions import Fraction

import numpy as np
import pytest

import lowprec
from lowprec import reference
from lowprec.autograd import Tensor, amp, instrument, nn, ops, optim
from lowprec.autograd.amp import (Autocast, CurrentScaling, DelayedScaling, GradScaler,
                                  MXScaling, Policy, WeightUpdate)
from lowprec.quantize import seed_key

BF16 = Policy("bf16", activations="bf16", weights="bf16", gradients="bf16", storage="bf16")
FP8 = dict(activations="float8_e4m3fn", weights="float8_e4m3fn", gradients="float8_e5m2")


def _step(policy, seed=0, tracker=None):
    """One forward/backward of a small MLP under a policy; returns (ctx, model, x)."""
    m = nn.MLP([6, 5, 3], seed=seed)
    x = np.random.default_rng(seed).random((4, 6)).astype(np.float32)
    ctx = Autocast(policy, trace=True, tracker=tracker)
    with ctx:
        loss = ops.cross_entropy(m(Tensor(x)), np.array([0, 1, 2, 1]))
    loss.backward()
    return ctx, m, x


# --- which op saw which format -----------------------------------------------------------
def test_trace_bf16_autocast():
    ctx, _, _ = _step(BF16)
    ev = ctx.events
    assert ev[:3] == [("matmul", "activation", "bfloat16"), ("matmul", "weight", "bfloat16"),
                      ("matmul", "out", "bfloat16")]
    assert ("relu", "out", "bfloat16") in ev                  # activations stored in bf16
    assert ("cross_entropy", "out", "fp32") in ev             # losses stay fp32
    assert ev.count(("matmul.wgrad", "gradient", "bfloat16")) == 2
    assert ev.count(("matmul.dgrad", "gradient", "bfloat16")) == 1  # input needs no grad


def test_trace_fp8_hybrid_and_fp32_ops():
    ctx, _, _ = _step(Policy("fp8", scaling=CurrentScaling(), **FP8))
    fwd = {(op, role, f) for op, role, f in ctx.events if op == "matmul"}
    assert fwd == {("matmul", "activation", "float8_e4m3fn"), ("matmul", "weight", "float8_e4m3fn"),
                   ("matmul", "out", "fp32")}
    assert {f for op, r, f in ctx.events if op.startswith("matmul.")} == {"float8_e5m2"}
    ctx = Autocast(BF16, trace=True)
    with ctx:
        t = Tensor(np.ones((2, 3), np.float32))
        ops.layer_norm(t).softmax().log_softmax()
        t.exp().log()
        ops.mse(t, np.zeros((2, 3)))
    assert [f for _, _, f in ctx.events] == ["fp32"] * 6


def test_gemm_operands_are_the_policy_casts():
    """The forward output and both backward GEMMs equal lowprec.matmul on independently
    quantized operands, bit for bit."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal((7, 3)).astype(np.float32)
    g = rng.standard_normal((5, 3)).astype(np.float32)
    pol = Policy("p", activations="fp16", weights="bf16", gradients="float8_e5m2", acc="fp16",
                 overflow="saturate")
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    with Autocast(pol):
        y = ta @ tb
    y.backward(g)
    qa, qb = lowprec.quantize(a, "fp16"), lowprec.quantize(b, "bf16")
    qg = lowprec.quantize(g, "float8_e5m2", overflow="saturate")
    np.testing.assert_array_equal(y.data, lowprec.matmul(qa, qb, acc="fp16"))
    np.testing.assert_array_equal(ta.grad, lowprec.matmul(qg, qb.T, acc="fp16"))
    np.testing.assert_array_equal(tb.grad, lowprec.matmul(qa.T, qg, acc="fp16"))
    assert not isinstance(lowprec.array, type(lowprec))  # still the function, not the module


def test_fp32_policy_is_plain_fp32_gemm():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 9)).astype(np.float32)
    b = rng.standard_normal((9, 2)).astype(np.float32)
    y = Tensor(a) @ Tensor(b)  # no autocast: the default fp32 policy (fma=True)
    np.testing.assert_array_equal(y.data, lowprec.matmul(a, b))


def _exact_linear_case(seed=0, m=16, k=24, n=8):
    """Integer operands and a quarter-integer bias whose sums are exact in fp32 but not
    in bf16 (up to 12 significant bits): any fp32 accumulation order gives the same sum,
    so results differ only in where they are rounded to bf16."""
    r = np.random.default_rng(seed)
    x = r.integers(-15, 16, (m, k)).astype(np.float32)
    w = r.integers(-15, 16, (k, n)).astype(np.float32)
    b = (r.integers(-255, 256, n) / 4).astype(np.float32)  # exact in bf16
    return x, w, b


def test_fused_bias_rounds_once_under_bf16():
    x, w, b = _exact_linear_case()
    exact = x.astype(np.float64) @ w + b
    tx, tw, tb = Tensor(x), Tensor(w), Tensor(b)
    with Autocast(Policy("bf16")):
        fused = ops.linear(tx, tw, tb, fuse_bias=True)
        unfused = ops.linear(tx, tw, tb)
        layer = nn.Linear(24, 8, fuse_bias=True)
        layer.weight.data, layer.bias.data = w, b
        mod = layer(tx)
    np.testing.assert_array_equal(fused.data, lowprec.quantize(exact, "bf16"))
    np.testing.assert_array_equal(mod.data, fused.data)
    # unfused: the product is rounded to bf16, then the bias is added in fp32
    np.testing.assert_array_equal(unfused.data, lowprec.quantize(exact - b, "bf16") + b)
    assert (fused.data != unfused.data).sum() > 10
    assert repr(layer) == "Linear(24, 8, bias=True, fuse_bias=True)"


@pytest.mark.torch
def test_fused_linear_matches_torch_bf16_autocast():
    """torch's CPU autocast linear (addmm, the bias inside the fp32 accumulation, one
    rounding to bf16) equals ops.linear(..., fuse_bias=True) under the bf16 recipe."""
    torch = pytest.importorskip("torch")
    x, w, b = _exact_linear_case(seed=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = torch.nn.functional.linear(torch.tensor(x), torch.tensor(w.T.copy()),
                                         torch.tensor(b))
    assert ref.dtype == torch.bfloat16
    with Autocast(Policy("bf16")):
        got = ops.linear(Tensor(x), Tensor(w), Tensor(b), fuse_bias=True)
    np.testing.assert_array_equal(got.data, ref.float().numpy())


@pytest.mark.torch
def test_fused_linear_gradients_match_torch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(2)
    x, w, b, g = (r.standard_normal(s) for s in ((6, 5), (5, 4), (4,), (6, 4)))
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w.T.copy(), b))
    torch.nn.functional.linear(tx, tw, tb).backward(torch.tensor(g))
    ex, ew, eb = (Tensor(v, requires_grad=True) for v in (x, w, b))
    with Autocast(Policy("f64", acc=None)):
        y = ops.linear(ex, ew, eb, fuse_bias=True)
    y.backward(g)
    np.testing.assert_allclose(y.data, (tx @ tw.T + tb).detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(ex.grad, tx.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(ew.grad, tw.grad.numpy().T, rtol=1e-13)
    np.testing.assert_allclose(eb.grad, tb.grad.numpy(), rtol=1e-13)  # sum of g over the batch


def test_fused_bias_follows_the_dequantization_scales():
    """Under per-tensor scaling the bias is added to the dequantized product (as
    torch._scaled_mm's epilogue), not scaled with it."""
    r = np.random.default_rng(5)
    x = r.standard_normal((4, 32)).astype(np.float32)
    w = r.standard_normal((32, 3)).astype(np.float32)
    b = r.standard_normal(3).astype(np.float32)
    pol = Policy("c", scaling=CurrentScaling(), **FP8)
    ctx = Autocast(pol)
    qx, qw = ctx.cast(x, "activation", "k", axis=1), ctx.cast(w, "weight", "k", axis=0)
    with Autocast(pol):
        y = ops.linear(Tensor(x), Tensor(w), Tensor(b), key="k", fuse_bias=True)
    prod = lowprec.matmul(qx.values, qw.values, scale_a=qx.inv, scale_b=qw.inv)
    np.testing.assert_array_equal(y.data, prod + b)
    # without scales, c is the accumulator's starting value (lowprec.matmul's c)
    with Autocast(Policy("p", activations="bf16", weights="bf16", acc="bf16")):
        y = ops.linear(Tensor(x), Tensor(w), Tensor(b), fuse_bias=True)
    q = lambda v: lowprec.quantize(v, "bf16")  # noqa: E731
    np.testing.assert_array_equal(y.data, lowprec.matmul(q(x), q(w), c=b, acc="bf16"))


def test_fp32_roles_and_the_reference_accumulator():
    """A role is unrounded when its format is float32 (by descriptor, whatever the
    spelling); acc=None is numpy's float64 product; "fp64" is no format."""
    for spelling in ("fp32", "float32", "binary32", lowprec.get_format("single")):
        assert Policy("p", activations=spelling).format("activation") is None
    assert Policy("p", master="float32").weight_update() is None
    r = np.random.default_rng(6)
    a, b = r.standard_normal((3, 5)), r.standard_normal((5, 2))
    with Autocast(Policy("f64", acc=None)):
        y = Tensor(a) @ Tensor(b)
    np.testing.assert_array_equal(y.data, a @ b)
    with pytest.raises(ValueError, match="acc=None"):
        Policy("x", acc="fp64")


def test_policy_validation():
    with pytest.raises(ValueError, match="activations"):
        Policy("x", activations="fp17")
    with pytest.raises(ValueError, match="update"):
        Policy("x", master="bf16", update="stochastic")
    with pytest.raises(ValueError, match="Kahan"):
        Policy("x", master="fixed4_12", update="kahan")
    with pytest.raises(ValueError, match="loss_scale"):
        Policy("x", loss_scale=-1)
    with pytest.raises(ValueError, match="scaling"):
        Policy("x", scaling="current")
    with pytest.raises(ValueError, match="amax_compute_algo"):
        DelayedScaling(amax_compute_algo="mean")
    assert Policy().format("weight") is None
    assert BF16.format("gradient").name == "bfloat16"
    assert Policy(loss_scale="dynamic").grad_scaler().get_scale() == 65536.0
    assert Policy(loss_scale=8).grad_scaler().dynamic is False


# --- fp8 recipes ---------------------------------------------------------------------------
def test_current_scaling_cast():
    x = np.array([[0.001, -0.5, 3.0, 2e-9]], np.float32)
    ctx = Autocast(Policy("c", scaling=CurrentScaling(), **FP8), tracker=instrument.Tracker())
    q = ctx.cast(x, "activation", "t")
    s = np.float32(448) / np.float32(3.0)  # TE: fp32(fp8_max / amax)
    np.testing.assert_array_equal(q.values, lowprec.quantize(x * s, "float8_e4m3fn"))
    assert q.inv == np.float32(1) / s
    assert q.values.max() == 448  # the amax maps onto the format's largest value
    st = ctx.tracker.step["t/activation"]
    assert st.amax == np.float32(3.0) and st.flushed == 1  # 2e-9 * 149 underflows e4m3
    z = ctx.cast(np.zeros((2, 2), np.float32), "gradient", "z")
    assert z.inv == 1.0  # amax 0: scale 1


def test_delayed_scaling_history():
    """The scale of step t comes from the amaxes of earlier steps: window max, most
    recent, margin; the first cast uses 1; amax 0 keeps the previous scale."""
    amaxes = [2.0, 8.0, 1.0, 0.0, 0.5, 0.25]
    for recipe, expect in [
        (DelayedScaling(amax_history_len=2), [1, 448 / 2, 448 / 8, 448 / 8, 448 / 1, 448 / 0.5]),
        (DelayedScaling(amax_compute_algo="most_recent"), [1, 448 / 2, 448 / 8, 448, 448, 448 / 0.5]),
        (DelayedScaling(margin=2), [1, 112 / 2, 112 / 8, 112 / 8, 112 / 8, 112 / 8]),
    ]:
        ctx = Autocast(Policy("d", scaling=recipe, **FP8))
        got = []
        for a in amaxes:
            q = ctx.cast(np.array([[a, -a / 4]], np.float32), "weight", "w")
            got.append(float(np.float32(1) / q.inv))
        np.testing.assert_allclose(got, expect, rtol=1e-7, err_msg=repr(recipe))
    # tensors keep separate histories
    ctx = Autocast(Policy("d", scaling=DelayedScaling(), **FP8))
    ctx.cast(np.full((1, 2), 4.0, np.float32), "weight", "a")
    assert ctx.cast(np.ones((1, 2), np.float32), "weight", "b").inv == 1.0


def test_fp8_casts_saturate():
    """A stale delayed scale makes values overflow e4m3: they saturate to 448, never NaN."""
    ctx = Autocast(Policy("d", scaling=DelayedScaling(), **FP8), tracker=instrument.Tracker())
    ctx.cast(np.array([[1.0, 0.5]], np.float32), "activation", "x")  # sets scale 448
    q = ctx.cast(np.array([[4.0, -0.5]], np.float32), "activation", "x")
    np.testing.assert_array_equal(q.values, [[448.0, -224.0]])
    assert ctx.tracker.step["x/activation"].saturated == 1
    # without a scaling recipe e4m3fn (no inf) saturates too; fp16 overflows to inf
    q = Autocast(Policy("p", **FP8)).cast(np.array([[1e6]], np.float32), "weight", "w")
    assert q.values[0, 0] == 448
    q = Autocast(Policy("p", gradients="fp16")).cast(np.array([[1e6]], np.float32), "gradient", "g")
    assert np.isinf(q.values[0, 0])


def test_mx_block_scaling():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3, 70)) * np.exp2(rng.integers(-20, 20, (3, 1)))).astype(np.float32)
    ctx = Autocast(Policy("mx", scaling=MXScaling(), **FP8))
    q = ctx.cast(x, "activation", "x", axis=1)
    assert q.fmt is None and q.inv is None  # dequantized exact fp32 values
    e4m3 = lowprec.get_format("float8_e4m3fn")
    for r in range(3):
        for b0 in range(0, 70, 32):
            blk, qb = x[r, b0:b0 + 32].astype(np.float64), q.values[r, b0:b0 + 32].astype(np.float64)
            amax = np.abs(blk).max()
            m, e = np.frexp(amax / 448.0)
            k = e if m != 0.5 else e - 1  # 2^ceil(log2(amax / 448))
            elems = qb / 2.0 ** k
            np.testing.assert_array_equal(elems, lowprec.quantize(blk / 2.0 ** k, e4m3))
            assert np.abs(elems).max() <= 448
    # the backward GEMMs re-block along their own reduction axis
    ctx = Autocast(Policy("mx", scaling=MXScaling(), **FP8), trace=True)
    a = Tensor(rng.standard_normal((40, 33)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((33, 5)).astype(np.float32), requires_grad=True)
    with ctx:
        y = a @ w
    y.backward(np.ones((40, 5), np.float32))
    assert np.isfinite(a.grad).all() and np.isfinite(w.grad).all()
    ref = np.ones((40, 5)) @ w.data.T
    assert np.abs(a.grad - ref).max() < 0.1 * np.abs(ref).max()


# --- loss scaling ----------------------------------------------------------------------------
def _torch_scaler_run(torch, found, grads, **kw):
    p = torch.nn.Parameter(torch.zeros(grads.shape[1], dtype=torch.float32))
    opt = torch.optim.SGD([p], lr=0.0)
    sc = torch.amp.GradScaler("cpu", **kw)
    scales, skipped, unscaled = [], [], []
    for inf, g in zip(found, grads):
        opt.zero_grad()
        sc.scale((p * torch.tensor(g)).sum()).backward()
        if inf:
            with torch.no_grad():
                p.grad[0] = float("inf")
        before = opt.state_dict()["state"].get(0)
        sc.unscale_(opt)
        unscaled.append(p.grad.detach().numpy().copy())
        r = sc.step(opt)
        skipped.append(sc._found_inf_per_device(opt)[torch.device("cpu")].item() == 1.0)
        sc.update()
        scales.append(sc.get_scale())
    return scales, skipped, unscaled


@pytest.mark.torch
@pytest.mark.parametrize("kw", [dict(), dict(growth_interval=3),
                                dict(init_scale=2.0 ** 126, growth_interval=2),
                                dict(init_scale=3.0, growth_factor=3.0, backoff_factor=0.25,
                                     growth_interval=2)])
def test_grad_scaler_matches_torch(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    found = rng.random(40) < 0.3
    found[5:12] = False  # a long clean run so the scale grows
    grads = rng.standard_normal((40, 4)).astype(np.float32)
    t_scales, t_skipped, t_unscaled = _torch_scaler_run(torch, found, grads, **kw)
    p = Tensor(np.zeros(4, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.0)
    sc = GradScaler(**kw)
    scales, skipped = [], []
    for i, (inf, g) in enumerate(zip(found, grads)):
        opt.zero_grad()
        sc.scale((p * Tensor(g)).sum()).backward()
        if inf:
            p.grad[0] = np.inf
        sc.unscale_(opt)
        np.testing.assert_array_equal(p.grad, t_unscaled[i])  # same float32 unscaling
        sc.step(opt)
        skipped.append(sc.last_step_skipped)
        sc.update()
        scales.append(sc.get_scale())
    assert scales == t_scales
    assert skipped == t_skipped
    assert sc.skipped_steps == sum(t_skipped)


def test_grad_scaler_defaults_and_errors():
    sc = GradScaler()
    assert sc.get_scale() == 65536.0 and sc._growth_interval == 2000
    assert sc._growth_factor == 2.0 and sc._backoff_factor == 0.5
    p = Tensor(np.zeros(2, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(2, np.float32)
    sc.unscale_(opt)
    with pytest.raises(RuntimeError, match="already"):
        sc.unscale_(opt)
    sc.update()
    static = GradScaler(init_scale=8.0, dynamic=False)
    for g in (np.inf, 1.0, np.nan):
        p.grad = np.full(2, g, np.float32)
        static.step(opt)
        static.update()
    assert static.get_scale() == 8.0 and static.skipped_steps == 2
    assert GradScaler(enabled=False).scale(3.0) == 3.0
    with pytest.raises(ValueError):
        GradScaler(backoff_factor=1.5)


# --- weight updates ---------------------------------------------------------------------------
def test_rne_update_stagnates_sr_and_kahan_do_not():
    w0 = np.ones(4000, np.float32)
    d = np.full(4000, 2.0 ** -10, np.float32)  # a quarter of bf16's ulp at 1
    out = {}
    for rule in ("rne", "sr", "kahan"):
        u = WeightUpdate("bf16", rule, seed=3)
        w = w0.copy()
        for _ in range(64):
            w = u.apply(0, w, d)
        out[rule] = w
    assert (out["rne"] == 1.0).all()  # every update lost
    exact = 1 + 64 * 2.0 ** -10
    assert abs(out["sr"].mean() - exact) < 0.002  # unbiased (std of the mean ~ 2e-4)
    assert (np.abs(out["kahan"] - exact) <= 2.0 ** -7).all()  # within one bf16 ulp


def test_sr_update_bitwise_against_exact_reference():
    rng = np.random.default_rng(4)
    w = lowprec.quantize(rng.standard_normal(300).astype(np.float32), "bf16")
    d = (rng.standard_normal(300) * 10.0 ** rng.integers(-12, -1, 300)).astype(np.float32)
    d[:4] = [2.0 ** -40, -2.0 ** -40, 0.0, 2.0 ** -9]
    w[:4] = [1.0, 1.0, 0.5, 1.0]  # just below/above a power of two, no-op, a tie
    u = WeightUpdate("bf16", "sr", seed=11)
    new = u.apply(2, w, d)
    seed = amp.derive_seed(11, 2, 0)
    key = seed_key(seed)
    for i in range(300):
        ref = reference.round_exact(Fraction(float(w[i])) + Fraction(float(d[i])), "bf16", "sr",
                                    overflow="saturate", key=key, idx=i)
        assert Fraction(float(new[i])) == ref, i
    u2 = WeightUpdate("bf16", "sr", seed=11)
    np.testing.assert_array_equal(u2.apply(2, w, d), new)  # reproducible
    assert not np.array_equal(u2.apply(2, w, d), new)  # next step draws new bits


def test_fixed_point_updates():
    f = lowprec.get_format("fixed4_12")
    res = 2.0 ** -12
    w = lowprec.quantize(np.linspace(-7, 7, 5000), f).astype(np.float32)
    d = np.full(5000, 0.3 * res, np.float32)
    rn = WeightUpdate(f, "rne").apply(0, w, d)
    np.testing.assert_array_equal(rn, w)  # below half the resolution: lost
    sr = WeightUpdate(f, "sr", seed=1).apply(0, w, d)
    steps = (sr.astype(np.float64) - w) / res
    assert set(np.unique(steps)) <= {0.0, 1.0}
    assert abs(steps.mean() - 0.3) < 0.03  # P(up) = 0.3, std of the mean ~ 0.0065
    # saturation at the ends; a large update whose sum is in range is not clipped early
    big = WeightUpdate(f, "sr", seed=1).apply(0, np.array([-7.5, 7.9], np.float32),
                                              np.array([15.0, 1.0], np.float32))
    np.testing.assert_array_equal(big, [7.5, f.max])
    with pytest.raises(ValueError, match="Kahan"):
        WeightUpdate(f, "kahan")


def test_optimizer_with_low_format_master():
    p = Tensor(np.array([1.0, 0.3], np.float32), requires_grad=True, name="w")
    tr = instrument.Tracker()
    opt = optim.SGD([p], lr=1.0, update=WeightUpdate("bf16", "rne"), tracker=tr)
    assert p.data[1] == lowprec.quantize(np.float32(0.3), "bf16")  # rounded at start
    p.grad = np.array([2.0 ** -10, 0.25], np.float32)
    opt.step()
    assert p.data[0] == 1.0 and p.data[1] != np.float32(lowprec.quantize(np.float32(0.3), "bf16"))
    st = tr.step["w/update"]
    assert (st.count, st.nonzero, st.lost) == (2, 2, 1)


# --- instrumentation ----------------------------------------------------------------------------
def test_cast_stats_counts_on_constructed_tensor():
    fp16 = lowprec.get_format("fp16")
    x = np.array([0.0, 1e-8, -2.0 ** -25, 3e-8, 1e-5, 1.0, 65519.0, 7e4, -1e6, np.inf, np.nan],
                 np.float32)
    q = lowprec.quantize(x, fp16)
    s = instrument.cast_stats(x, q, fp16)
    assert s.count == 11 and s.nonfinite == 2
    assert s.nonzero == 8           # finite and non-zero
    assert s.flushed == 2           # 1e-8 and -2^-25 (a tie, to even: zero)
    assert s.subnormal == 2         # 3e-8 -> 2^-25*... and 1e-5
    assert s.saturated == 3         # 65519 (> max 65504, rounds down), 7e4 and -1e6 (inf)
    assert s.amax == 1e6
    assert s.flushed_fraction == 2 / 8 and s.saturated_fraction == 3 / 9
    fx = lowprec.get_format("fixed4_12")
    y = np.array([1e-5, -9.0, 7.99999, 0.5], np.float32)
    s = instrument.cast_stats(y, lowprec.quantize(y, fx), fx)
    assert (s.flushed, s.subnormal, s.saturated) == (1, 0, 2)


def test_log2_histogram_and_tracker_totals():
    h = instrument.log2_histogram(np.array([0.0, 1.0, 1.5, -0.25, 2.0 ** -200, np.inf, 3e6]))
    lo = instrument.HIST_LO
    assert h[0 - lo] == 2 and h[-2 - lo] == 1 and h[0] == 1 and h[-1] == 1 and h.sum() == 5
    tr = instrument.Tracker()
    _step(BF16, tracker=tr)
    assert set(tr.totals) == {"activation", "weight", "gradient"}
    assert tr.totals["weight"].count == 6 * 5 + 5 * 3
    hist = instrument.History("bf16")
    hist.log_step(1.5, tracker=tr)
    hist.log_epoch(0, 1.5, 0.5, 0.1)
    d = json.loads(json.dumps(hist.to_dict(steps=True)))
    assert d["epochs"][0]["test_accuracy"] == 0.5 and d["steps"][0]["tensors"]["0/weight"]["count"] == 30
    assert tr.step == {}  # taken by log_step


def test_history_plots(tmp_path):
    from lowprec import plot
    tr = instrument.Tracker()
    _step(BF16, tracker=tr)
    h = instrument.History("bf16")
    h.log_step(1.0, tracker=tr)
    h.log_epoch(0, 1.0, 0.4, 0.1)
    h.log_epoch(1, 0.5, 0.6, 0.2)
    fig = plot.training_curves(h)  # one History is one run
    assert len(fig.axes) == 2
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["bf16"]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), [1.0, 0.5])
    plot.save(fig, str(tmp_path / "c.png"))
    fig = plot.gradient_histogram(h)
    bars = fig.axes[0].containers[0]  # the histogram (the shaded ranges are patches too)
    counts = h.hist["gradient"]
    total = counts.sum() + h.zeros["gradient"]
    assert len(bars) == len(counts)
    np.testing.assert_allclose([b.get_height() for b in bars], counts / total)
    assert fig.axes[0].get_title() == "bf16: gradient values"
    plot.save(fig, str(tmp_path / "g.png"))
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "g.png").stat().st_size > 1000
    r = plot.format_ranges(["fp16", "fixed4_12"])
    assert r["float16"] == (-24.0, -14.0, np.log2(65504.0)) and r["fixed4_12"][0] == -12
    with pytest.raises(ValueError, match="no histogram"):
        plot.gradient_histogram(h, role="nope")


def test_instrument_does_not_plot():
    """History holds data; lowprec.plot draws it (autograd sits below plot)."""
    assert not hasattr(instrument.History, "plot")
    assert not hasattr(instrument.History, "plot_gradients")
