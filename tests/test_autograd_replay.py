"""lowprec.autograd.replay: a torch-autocast training step of an MLP on the engine (no torch
needed here; tests/test_capture.py checks it against torch's own step)."""

import numpy as np
import pytest

import lowprec as lp
from lowprec.autograd import Tensor, nn, ops, optim
from lowprec.autograd.policy import Policy
from lowprec.autograd.replay import BIAS_MODES, autocast_policy, held, replay_mlp_step


def _mlp(seed=0, sizes=(6, 9, 4), batch=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    ws = [(rng.standard_normal((o, i)) * 0.5).astype(np.float32)
          for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [(rng.standard_normal(o) * 0.5).astype(np.float32) for o in sizes[1:]]
    return x, y, ws, bs


def _autocast(x, y, ws, bs, bias="in", **gemm):
    policy, fuse = autocast_policy("bfloat16", bias, **gemm)
    return replay_mlp_step(x, y, ws, bs, 0.1, policy, fuse_bias=fuse)


def _bf16(x):
    return np.asarray(lp.quantize(np.asarray(x, np.float32), "bfloat16"), np.float32)


def test_fp32_policy_is_a_plain_engine_step():
    # no low format: the replay is nn.Linear + relu + cross_entropy + backward + SGD
    x, y, ws, bs = _mlp()
    got = replay_mlp_step(x, y, ws, bs, 0.1, Policy())
    layers = []
    for w, b in zip(ws, bs):
        lin = nn.Linear(w.shape[1], w.shape[0], fuse_bias=True)
        lin.weight = Tensor(w.T.copy(), requires_grad=True, name="w")
        lin.bias = Tensor(b.copy(), requires_grad=True, name="b")
        layers.append(lin)
    h = layers[0](Tensor(x))
    h.retain_grad()
    a = h.relu()
    a.retain_grad()
    z = layers[1](a)
    z.retain_grad()
    loss = ops.cross_entropy(z, y)
    loss.backward()
    params = [p for lin in layers for p in (lin.weight, lin.bias)]
    grads = [p.grad.copy() for p in params]
    optim.SGD(params, lr=0.1).step()
    want = {"h1": h.data, "a1": a.data, "z": z.data, "loss": loss.data, "gh1": h.grad,
            "ga1": a.grad, "gz": z.grad, "gw1": grads[0].T, "gb1": grads[1],
            "gw2": grads[2].T, "gb2": grads[3], "w1_new": params[0].data.T,
            "b1_new": params[1].data, "w2_new": params[2].data.T, "b2_new": params[3].data}
    for k, v in want.items():
        assert np.array_equal(got[k], v), k
    assert got["gw1"].shape == ws[0].shape and got["w2_new"].shape == ws[1].shape


@pytest.mark.parametrize("bias", BIAS_MODES)
def test_bias_modes(bias):
    # one layer: z = x W^T + b under bf16 autocast, the bias entering three ways
    x, y, ws, bs = _mlp(1, sizes=(40, 7))
    policy, fuse = autocast_policy("bfloat16", bias)
    got = replay_mlp_step(x, y, ws, bs, 0.1, policy, fuse_bias=fuse)
    xb, wb, bb = _bf16(x), _bf16(ws[0].T), _bf16(bs[0])
    if bias == "in":
        want = _bf16(lp.matmul(xb, wb, c=np.broadcast_to(bb, (x.shape[0], 7))))
    elif bias == "after":
        want = _bf16(np.asarray(lp.matmul(xb, wb), np.float32) + bb)
    else:
        want = _bf16(_bf16(lp.matmul(xb, wb)) + bb)
    assert np.array_equal(got["z"], want)
    others = {m: _autocast(x, y, ws, bs, m)["z"] for m in BIAS_MODES}
    assert not np.array_equal(others["in"], others["out"])  # the modes are told apart


def test_held_tensors_have_low_gradients():
    x, y, ws, bs = _mlp(2)
    got = _autocast(x, y, ws, bs)
    for k in ("h1", "a1", "z", "gz", "ga1", "gh1", "gw1", "gb1", "gw2", "gb2"):
        assert np.array_equal(_bf16(got[k]), got[k]), k
    assert not np.array_equal(_bf16(got["w1_new"]), got["w1_new"])  # fp32 masters
    # the same step without rounding the gradients differs (they are rounded in torch)
    fp32 = replay_mlp_step(x, y, ws, bs, 0.1, Policy())
    assert not np.array_equal(fp32["gw1"], got["gw1"])


def test_accumulation_is_the_policys():
    x, y, ws, bs = _mlp(3, sizes=(64, 16, 4), batch=8)
    fp32 = _autocast(x, y, ws, bs)
    acc = _autocast(x, y, ws, bs, acc="bfloat16")
    assert not np.array_equal(fp32["h1"], acc["h1"])
    xb, wb, bb = _bf16(x), _bf16(ws[0].T), _bf16(bs[0])
    want = _bf16(lp.matmul(xb, wb, c=np.broadcast_to(bb, (8, 16)), acc="bfloat16",
                           inputs="bfloat16"))
    assert np.array_equal(acc["h1"], want)
    model = _autocast(x, y, ws, bs, gemm_model="h100")
    want = _bf16(lp.matmul(xb, wb, c=np.broadcast_to(bb, (8, 16)), model="h100",
                           inputs="bfloat16"))
    assert np.array_equal(model["h1"], want)


def test_forced_values_feed_what_follows():
    x, y, ws, bs = _mlp(4)
    policy, fuse = autocast_policy("bfloat16")
    own = replay_mlp_step(x, y, ws, bs, 0.1, policy, fuse_bias=fuse)
    h = own["h1"].copy()
    h[0, :] = -1.0  # row 0 all negative: relu gives zeros there
    gz = np.zeros_like(own["gz"])
    gw2 = np.full_like(own["gw2"], 0.5)
    got = replay_mlp_step(x, y, ws, bs, 0.1, policy, fuse_bias=fuse,
                          forced={"h1": h, "gz": gz, "gw2": gw2})
    assert np.array_equal(got["h1"], own["h1"])  # the engine's own value is returned
    assert np.all(got["a1"][0] == 0) and not np.all(own["a1"][0] == 0)
    assert np.all(got["ga1"] == 0) and np.all(got["gb2"] == 0)  # computed from forced gz
    # the engine's own gz (not the forced zeros), from the forced h: row 0 changed only
    assert np.array_equal(got["gz"][1:], own["gz"][1:]) and np.any(got["gz"][0] != own["gz"][0])
    assert np.array_equal(got["w2_new"], (ws[1] + np.float32(-0.1) * gw2).astype(np.float32))


def test_held_op_alone():
    seen = {}
    t = Tensor(np.array([1.0 + 2 ** -10, -3.0], np.float32), requires_grad=True)
    out = held(t, lp.get_format("bfloat16"), "v", seen)
    assert np.array_equal(out.data, [1.0, -3.0]) and np.array_equal(seen["v"], out.data)
    out.backward(np.array([1.0 + 2 ** -12, 2.0], np.float32))
    assert np.array_equal(t.grad, [1.0, 2.0]) and np.array_equal(seen["gv"], t.grad)


def test_errors():
    x, y, ws, bs = _mlp()
    with pytest.raises(ValueError, match="bias must be one of"):
        autocast_policy("bfloat16", "before")
    with pytest.raises(ValueError, match="accumulation fields"):
        autocast_policy("bfloat16", storage="float16")
    with pytest.raises(ValueError, match="one bias per weight"):
        replay_mlp_step(x, y, ws, bs[:1], 0.1, Policy())
    with pytest.raises(ValueError, match="layer 2"):
        replay_mlp_step(x, y, [ws[0], ws[0]], [bs[0], bs[0]], 0.1, Policy())


def test_relu_gradient_of_masked_entries_is_positive_zero():
    # torch's threshold_backward selects: a masked gradient is +0 whatever its sign
    x = Tensor(np.array([-1.0, 2.0, -3.0], np.float32), requires_grad=True)
    x.relu().backward(np.array([-5.0, -6.0, 7.0], np.float32))
    assert np.array_equal(x.grad, [0.0, -6.0, 0.0])
    assert not np.signbit(x.grad[0]) and not np.signbit(x.grad[2])
