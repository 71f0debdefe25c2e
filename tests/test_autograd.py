"""The autograd engine: gradients of every op against central finite differences in
float64 and against torch on CPU, broadcasting, fan-out, modules and optimizers."""

import ast
import contextlib
import pathlib

import numpy as np
import pytest

import lowprec
from lowprec.autograd import Precision, Tensor, amp, nn, no_grad, ops, optim, use_precision
from lowprec.autograd.engine import get_precision

F64 = amp.Policy("fp64-reference", acc=None)  # float64 GEMMs: exact enough for checks


def _numeric_grad(f, arrays, i, h=1e-6):
    x = arrays[i]
    g = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        old = x[j]
        x[j] = old + h
        fp = f(*[Tensor(a) for a in arrays]).data
        x[j] = old - h
        fm = f(*[Tensor(a) for a in arrays]).data
        x[j] = old
        g[j] = (fp - fm) / (2 * h)
    return g


def gradcheck(f, *arrays, rtol=1e-6, atol=1e-8, seed=0):
    """Check d(sum(f(...) * W))/d(inputs) against central differences (float64)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    with amp.autocast(F64):
        out = f(*[Tensor(a) for a in arrays])
        w = np.random.default_rng(seed).standard_normal(out.shape)

        def scalar(*ts):
            return (f(*ts) * Tensor(w)).sum()

        ts = [Tensor(a, requires_grad=True) for a in arrays]
        scalar(*ts).backward()
        for i, t in enumerate(ts):
            num = _numeric_grad(scalar, arrays, i)
            np.testing.assert_allclose(t.grad, num, rtol=rtol, atol=atol,
                                       err_msg=f"input {i}")


rng = np.random.default_rng(1)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((3, 4))
P = rng.uniform(0.5, 2.0, (3, 4))  # positive, away from 0 (division, log)
ROW = rng.standard_normal(4)
COL = rng.standard_normal((3, 1))
M = rng.standard_normal((4, 5))
AWAY = np.where(np.abs(A) < 0.1, 0.5, A)  # away from relu's kink

CASES = {
    "add": (lambda a, b: a + b, (A, B)),
    "add_broadcast_row": (lambda a, b: a + b, (A, ROW)),
    "sub_broadcast_col": (lambda a, b: a - b, (A, COL)),
    "mul_broadcast": (lambda a, b: a * b, (COL, ROW)),
    "div": (lambda a, b: a / b, (A, P)),
    "rdiv_scalar": (lambda a: 2.0 / a, (P,)),
    "neg": (lambda a: -a, (A,)),
    "pow": (lambda a: a ** 3, (A,)),
    "scalar_ops": (lambda a: 3.0 * a - 1.5 + a / 4.0, (A,)),
    "fan_out": (lambda a: a * a + a, (A,)),
    "matmul": (lambda a, m: a @ m, (A, M)),
    "matmul_c_row": (lambda a, m, c: a.matmul(m, c=c), (A, M, rng.standard_normal(5))),
    "matmul_c_col": (lambda a, m, c: a.matmul(m, c=c), (A, M, COL)),
    "matmul_c_full": (lambda a, m, c: a.matmul(m, c=c), (A, M, rng.standard_normal((3, 5)))),
    "linear_fused": (lambda a, m, c: ops.linear(a, m, c, fuse_bias=True),
                     (A, M, rng.standard_normal(5))),
    "sum_all": (lambda a: a.sum(), (A,)),
    "sum_axis0": (lambda a: a.sum(axis=0), (A,)),
    "sum_axis1_keepdims": (lambda a: a.sum(axis=1, keepdims=True), (A,)),
    "mean": (lambda a: a.mean(), (A,)),
    "mean_axis": (lambda a: a.mean(axis=1), (A,)),
    "reshape": (lambda a: a.reshape(2, 6) * Tensor(np.arange(12.0).reshape(2, 6)), (A,)),
    "transpose": (lambda a, m: a.T @ a @ m, (A, M)),
    "relu": (lambda a: a.relu(), (AWAY,)),
    "gelu": (lambda a: a.gelu(), (A,)),
    "gelu_tanh": (lambda a: a.gelu("tanh"), (A,)),
    "tanh": (lambda a: a.tanh(), (A,)),
    "sigmoid": (lambda a: a.sigmoid(), (A * 5,)),
    "exp": (lambda a: a.exp(), (A,)),
    "log": (lambda a: a.log(), (P,)),
    "softmax": (lambda a: a.softmax(), (A,)),
    "softmax_axis0": (lambda a: ops.softmax(a, axis=0), (A,)),
    "log_softmax": (lambda a: a.log_softmax(), (A,)),
    "cross_entropy": (lambda a: ops.cross_entropy(a, np.array([0, 3, 1])), (A,)),
    "cross_entropy_sum": (lambda a: ops.cross_entropy(a, np.array([2, 2, 0]), "sum"), (A,)),
    "mse": (lambda a, b: ops.mse(a, b), (A, B)),
    "layer_norm": (lambda a: ops.layer_norm(a), (A,)),
    "layer_norm_affine": (lambda a, w, b: ops.layer_norm(a, w, b), (A, ROW, ROW[::-1].copy())),
    # batched GEMMs (the attention products): (..., m, k) @ (..., k, n), batch axes broadcast
    "matmul_batched": (lambda a, b: a @ b, (rng.standard_normal((2, 3, 4)),
                                            rng.standard_normal((2, 4, 2)))),
    "matmul_batch_broadcast": (lambda a, b: a @ b, (rng.standard_normal((2, 1, 3, 4)),
                                                    rng.standard_normal((3, 4, 2)))),
    "matmul_2d_by_batched": (lambda a, b: a @ b, (A, rng.standard_normal((2, 4, 5)))),
    "matmul_batched_c": (lambda a, b, c: a.matmul(b, c=c),
                         (rng.standard_normal((2, 3, 4)), M, rng.standard_normal((2, 1, 5)))),
    "matmul_batched_transposed": (lambda a: a @ a.transpose(0, 2, 1),
                                  (rng.standard_normal((2, 3, 4)),)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name):
    f, args = CASES[name]
    gradcheck(f, *args)


def test_grads_accumulate_across_backward_calls_and_fan_out():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x  # used twice below: d/dx (x^2 + 3 x^2) = 8x
    (y + y * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [8.0, 16.0])
    (x * 1.0).sum().backward()  # a second backward adds to .grad
    np.testing.assert_array_equal(x.grad, [9.0, 17.0])


def test_no_grad_records_nothing_and_backward_needs_grad():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    with no_grad():
        y = (x * 2.0).sum()
    assert not y.requires_grad and y._prev == ()
    with pytest.raises(ValueError, match="does not require grad"):
        y.backward()


def test_dtypes_are_kept():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = ((x * 0.5 + 1).tanh().exp() / 3).mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float32


def test_bad_inputs():
    with pytest.raises(ValueError, match="matmul needs operands"):
        Tensor(np.ones(3)) @ Tensor(np.ones(3))
    with pytest.raises(ValueError, match="matmul needs operands"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="class indices"):
        ops.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 3]))
    for dt in (np.int8, np.int16, np.int32, np.int64):  # negative indices, every width
        with pytest.raises(ValueError, match="class indices"):
            ops.cross_entropy(Tensor(np.zeros((2, 3))), np.array([-1, 0], dt))
        with pytest.raises(ValueError, match="class indices"):  # a strided view
            ops.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 9, -128, 7], dt)[::2])
    assert ops.cross_entropy(Tensor(np.zeros((2, 3))), np.array([2, 0], np.uint8)).data == \
        pytest.approx(np.log(3))
    with pytest.raises(ValueError, match="targets"):
        ops.cross_entropy(Tensor(np.zeros((2, 3))), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="approximate"):
        Tensor(np.zeros(2)).gelu("fast")
    with pytest.raises(TypeError):
        Tensor(np.ones(2)) ** Tensor(np.ones(2))


# --- modules ---------------------------------------------------------------------------
def test_mlp_structure_names_and_state_dict():
    m = nn.MLP([4, 8, 3], seed=0)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.name for p in m.parameters()] == names
    assert m[0].weight.shape == (4, 8) and isinstance(m[1], nn.ReLU)
    sd = m.state_dict()
    m2 = nn.MLP([4, 8, 3], seed=1)
    assert not np.array_equal(m2[0].weight.data, sd["0.weight"])
    m2.load_state_dict(sd)
    for n, p in m2.named_parameters():
        np.testing.assert_array_equal(p.data, sd[n])
    sd["0.weight"][:] = 7  # a copy: the module is untouched
    assert not (m.state_dict()["0.weight"] == 7).any()
    with pytest.raises(KeyError):
        m2.load_state_dict({"0.weight": sd["0.weight"]})
    with pytest.raises(ValueError, match="shape"):
        m2.load_state_dict({**m.state_dict(), "0.bias": np.zeros(3)})
    assert m.eval().training is False and m[0].training is False
    assert m.train().training and m[2].training
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_init_is_seeded_and_scaled():
    a = nn.MLP([256, 512, 10], seed=5)
    b = nn.MLP([256, 512, 10], seed=5)
    np.testing.assert_array_equal(a[0].weight.data, b[0].weight.data)
    assert abs(a[0].weight.data.std() - np.sqrt(2 / 256)) < 0.01 * np.sqrt(2 / 256) * 5
    x = nn.Linear(300, 100, init="xavier", seed=0).weight.data
    lim = np.sqrt(6 / 400)
    assert x.max() <= lim and x.min() >= -lim and x.max() > 0.95 * lim
    with pytest.raises(ValueError, match="init"):
        nn.Linear(2, 2, init="lecun")
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([2, 2, 2], activation="swish")


def test_layernorm_and_gelu_modules():
    x = np.random.default_rng(0).standard_normal((5, 6))
    ln = nn.LayerNorm(6, dtype=np.float64)
    y = ln(Tensor(x)).data
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=1), 1 / (1 + 1e-5 / x.var(axis=1)), rtol=1e-10)
    seq = nn.Sequential(nn.Linear(6, 4, dtype=np.float64), nn.GELU(), nn.LayerNorm(4, dtype=np.float64))
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


# --- optimizers ------------------------------------------------------------------------
def _quadratic_steps(opt_factory, steps=5):
    w = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True, name="w")
    opt = opt_factory([w])
    traj = []
    for k in range(steps):
        opt.zero_grad()
        ((w * w) * np.array([1.0, 2.0, 0.5]) + w * float(k)).sum().backward()
        opt.step()
        traj.append(w.data.copy())
    return np.array(traj)


def test_sgd_momentum_plain():
    # by hand: grad = 2 c w + k; buf = grad (first), then 0.9 buf + grad
    traj = _quadratic_steps(lambda p: optim.SGD(p, lr=0.1, momentum=0.9), steps=2)
    c = np.array([1.0, 2.0, 0.5])
    w0 = np.array([1.0, -2.0, 3.0])
    g0 = 2 * c * w0
    w1 = w0 - 0.1 * g0
    g1 = 2 * c * w1 + 1
    w2 = w1 - 0.1 * (0.9 * g0 + g1)
    np.testing.assert_allclose(traj, [w1, w2], rtol=1e-15)


def test_optimizer_validation():
    w = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([w], nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([w], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([])


# --- against torch ---------------------------------------------------------------------
TORCH_OPS = {
    "gelu": (lambda t: t.gelu(), lambda T, t: T.nn.functional.gelu(t)),
    "gelu_tanh": (lambda t: t.gelu("tanh"), lambda T, t: T.nn.functional.gelu(t, approximate="tanh")),
    "sigmoid": (lambda t: t.sigmoid(), lambda T, t: T.sigmoid(t)),
    "softmax": (lambda t: t.softmax(), lambda T, t: T.softmax(t, -1)),
    "log_softmax": (lambda t: t.log_softmax(axis=0), lambda T, t: T.log_softmax(t, 0)),
    "layer_norm": (lambda t: ops.layer_norm(t), lambda T, t: T.nn.functional.layer_norm(t, (4,))),
    "cross_entropy": (lambda t: ops.cross_entropy(t, np.array([1, 0, 3])),
                      lambda T, t: T.nn.functional.cross_entropy(t, T.tensor([1, 0, 3]))),
    "mse": (lambda t: ops.mse(t, np.ones((3, 4))),
            lambda T, t: T.nn.functional.mse_loss(t, T.ones(3, 4, dtype=T.float64))),
    "chain": (lambda t: (t.tanh() * t.exp() / (t * t + 1.0)).sum(axis=0).mean(),
              lambda T, t: (T.tanh(t) * T.exp(t) / (t * t + 1)).sum(0).mean()),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(TORCH_OPS))
def test_against_torch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = TORCH_OPS[name]
    x = np.random.default_rng(3).standard_normal((3, 4)) * 2
    w = np.random.default_rng(4).standard_normal(theirs(torch, torch.tensor(x)).shape)
    t = Tensor(x.copy(), requires_grad=True)
    y = ours(t)
    (y * Tensor(w)).sum().backward()
    tt = torch.tensor(x, requires_grad=True)
    ty = theirs(torch, tt)
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.torch
def test_mlp_training_matches_torch():
    """Five SGD-momentum steps of an MLP in float64 agree with torch to rounding."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6))
    y = rng.integers(0, 3, 16)
    m = nn.MLP([6, 8, 3], seed=0, dtype=np.float64)
    tm = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    with torch.no_grad():
        for i in (0, 2):
            tm[i].weight.copy_(torch.tensor(m[i].weight.data.T))
            tm[i].bias.copy_(torch.tensor(m[i].bias.data))
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)
    for _ in range(5):
        with amp.autocast(F64):
            loss = ops.cross_entropy(m(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        topt.zero_grad()
        tl = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        tl.backward()
        topt.step()
        np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-12)
    np.testing.assert_allclose(m[2].weight.data, tm[2].weight.detach().numpy().T, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(m[0].bias.data, tm[0].bias.detach().numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["adam", "adam_l2", "adamw", "sgd_damp"])
def test_optimizers_match_torch(kind):
    torch = pytest.importorskip("torch")
    ours = {"adam": lambda p: optim.Adam(p, lr=0.05),
            "adam_l2": lambda p: optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.1),
            "adamw": lambda p: optim.AdamW(p, lr=0.05, weight_decay=0.1),
            "sgd_damp": lambda p: optim.SGD(p, lr=0.05, momentum=0.5, dampening=0.3,
                                            weight_decay=0.01)}[kind]
    theirs = {"adam": lambda p: torch.optim.Adam(p, lr=0.05),
              "adam_l2": lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), weight_decay=0.1),
              "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
              "sgd_damp": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5, dampening=0.3,
                                                    weight_decay=0.01)}[kind]
    traj = _quadratic_steps(ours, steps=6)
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    opt = theirs([w])
    c = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    for k in range(6):
        opt.zero_grad()
        ((w * w) * c + w * float(k)).sum().backward()
        opt.step()
        np.testing.assert_allclose(traj[k], w.detach().numpy(), rtol=1e-12, atol=1e-14)


# --- a second backward through the same graph (issue 10): as torch ------------------------
@pytest.mark.parametrize("make", [lambda a: (a * 3).sum(), lambda a: (a * a).sum(),
                                  lambda a: ((a * a) * a + a).sum()])
def test_second_backward_as_torch(make):
    torch = pytest.importorskip("torch")
    x = np.array([1.0, -2.0, 0.5])
    a = Tensor(x.copy(), requires_grad=True)
    s = make(a)
    s.backward(retain_graph=True)
    s.backward()
    ta = torch.tensor(x, requires_grad=True)
    ts = make(ta)
    ts.backward(retain_graph=True)
    ts.backward()
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())
    # without retain_graph the graph is freed: both refuse a third pass
    with pytest.raises(RuntimeError):
        ts.backward()
    with pytest.raises(RuntimeError, match="second time"):
        s.backward()


def test_second_backward_without_retain_graph_raises_and_keeps_leaf_grads():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    s = (a * 3).sum()
    s.backward()
    np.testing.assert_array_equal(a.grad, [3.0, 3.0])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        s.backward()
    np.testing.assert_array_equal(a.grad, [3.0, 3.0])  # nothing was added


def test_non_leaf_grads_are_not_kept_unless_retained():
    torch = pytest.importorskip("torch")
    x = np.array([0.5, -1.5])
    a = Tensor(x.copy(), requires_grad=True)
    h = a * a
    h2 = (a * 3).retain_grad()
    (h.sum() + (h2 * h2).sum()).backward()
    assert h.grad is None and not h.is_leaf and a.is_leaf
    ta = torch.tensor(x, requires_grad=True)
    th = ta * ta
    th2 = ta * 3
    th2.retain_grad()
    (th.sum() + (th2 * th2).sum()).backward()
    np.testing.assert_array_equal(h2.grad, th2.grad.numpy())
    np.testing.assert_array_equal(a.grad, ta.grad.numpy())


# --- the precision hook -------------------------------------------------------------------
class _Recorder(Precision):
    """A hook that records what the engine asks of it and marks GEMM outputs."""

    def __init__(self):
        self.calls = []

    def matmul(self, a, b, key, c=None):
        self.calls.append(("matmul", key, c is not None))
        return a @ b + (0 if c is None else c) + 1000, (a, b)

    def matmul_backward(self, g, saved, key, need_a, need_b):
        self.calls.append(("matmul_backward", key, need_a, need_b))
        a, b = saved
        return (g @ b.T if need_a else None), (a.T @ g if need_b else None)

    def activation(self, data, op, exact=False):
        self.calls.append(("activation", op, exact))
        return data

    def fp32(self, data, op):
        self.calls.append(("fp32", op))
        return data


def test_engine_calls_the_active_hook():
    rec = _Recorder()
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    w = Tensor(np.ones((3, 2)), requires_grad=True, name="w")
    with use_precision(rec) as active:
        assert active is rec and get_precision() is rec
        y = (x @ w).relu().tanh().exp()
        z = ops.cross_entropy(y.softmax().log(), np.array([0, 1]))
    assert get_precision() is not rec  # restored on exit
    np.testing.assert_array_equal((x @ w).data, np.full((2, 2), 3.0))  # default hook again
    z.backward()  # after the block: backward uses the hook of the forward pass
    assert rec.calls == [("matmul", "w", False), ("activation", "relu", True),
                         ("activation", "tanh", False), ("fp32", "exp"), ("fp32", "softmax"),
                         ("fp32", "log"), ("fp32", "cross_entropy"),
                         ("matmul_backward", "w", True, True)]
    with pytest.raises(TypeError, match="Precision"):
        with use_precision(amp.Policy("bf16")):
            pass


def test_hooks_nest_and_autocast_is_a_hook():
    rec = _Recorder()
    with use_precision(rec):
        ac = amp.Autocast(amp.Policy("bf16"))
        with ac:
            assert get_precision() is ac and amp.current() is ac
        assert get_precision() is rec
        assert amp.current().policy == amp.Policy()  # not an Autocast: the fp32 one


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_hook_equals_the_fp32_policy(dtype):
    """Outside any block, results equal Autocast(Policy()) bit for bit, forward and
    backward (fp32 GEMMs through lowprec.matmul; float64 operands rounded to fp32)."""
    r = np.random.default_rng(3)
    x = r.standard_normal((5, 7)).astype(dtype)
    b = r.standard_normal(4).astype(dtype)

    def run(ctx):
        m = nn.Sequential(nn.Linear(7, 6, seed=1, dtype=dtype), nn.GELU(),
                          nn.LayerNorm(6, dtype=dtype), nn.Linear(6, 4, seed=2, dtype=dtype))
        t = Tensor(x, requires_grad=True)
        bias = Tensor(b, requires_grad=True)
        with ctx:
            out = ops.linear(m(t).tanh(), m[3].weight.T @ m[3].weight, bias, fuse_bias=True)
            loss = ops.cross_entropy(out, np.array([0, 1, 2, 3, 0]))
        loss.backward()
        return [loss.data, t.grad, bias.grad] + [p.grad for p in m.parameters()]

    for got, want in zip(run(contextlib.nullcontext()), run(amp.Autocast(amp.Policy()))):
        np.testing.assert_array_equal(got, want)
    w = r.standard_normal((7, 3)).astype(dtype)
    np.testing.assert_array_equal((Tensor(x) @ Tensor(w)).data,
                                  lowprec.matmul(x, w).astype(dtype))


def test_batched_matmul_errors():
    with pytest.raises(ValueError, match="batch axes do not broadcast"):
        Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="matmul needs operands"):
        Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        Tensor(np.ones((2, 3, 4))).matmul(Tensor(np.ones((4, 5))), c=np.ones((3, 3, 5)))


@pytest.mark.torch
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 5)),
                                    ((3, 4), (2, 2, 4, 5))])
def test_batched_matmul_against_torch(shapes):
    """Forward and both gradients of a batched product (float64 reference policy) against
    torch.matmul; a broadcast operand's gradient is summed over its broadcast axes."""
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(8)
    a, b = (r.standard_normal(s) for s in shapes)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    ty = ta @ tb
    w = r.standard_normal(tuple(ty.shape))
    (ty * torch.tensor(w)).sum().backward()
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    with amp.autocast(F64):
        out = x @ y
    (out * Tensor(w)).sum().backward()
    np.testing.assert_allclose(out.data, ty.detach().numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(x.grad, ta.grad.numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(y.grad, tb.grad.numpy(), rtol=1e-13, atol=1e-14)


def test_default_hook_batched_equals_one_gemm_per_batch_entry():
    """The default hook's batched GEMMs (forward, data and weight gradients) equal
    lowprec.matmul on each batch entry, bit for bit."""
    r = np.random.default_rng(9)
    a = r.standard_normal((3, 5, 7)).astype(np.float32)
    b = r.standard_normal((3, 7, 4)).astype(np.float32)
    g = r.standard_normal((3, 5, 4)).astype(np.float32)
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    out = x @ y
    out.backward(g)
    for i in range(3):
        np.testing.assert_array_equal(out.data[i], lowprec.matmul(a[i], b[i]))
        np.testing.assert_array_equal(x.grad[i], lowprec.matmul(g[i], b[i].T))
        np.testing.assert_array_equal(y.grad[i], lowprec.matmul(a[i].T, g[i]))


def test_matmul_addend_errors():
    with pytest.raises(ValueError, match="does not broadcast"):
        Tensor(np.ones((2, 3))).matmul(Tensor(np.ones((3, 4))), c=np.ones(3))
    with pytest.raises(ValueError, match="does not broadcast"):
        Tensor(np.ones((2, 3))).matmul(Tensor(np.ones((3, 4))), c=np.ones((1, 2, 4)))


_PKG = pathlib.Path(lowprec.__file__).parent
# (function-level imports across the whole package: tests/test_layers.py)


def test_engine_knows_no_precision_policy():
    tree = ast.parse((_PKG / "autograd" / "engine.py").read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not mods & {"amp", "autocast", "policy", "scaling"}, mods
