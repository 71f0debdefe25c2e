"""lowprec.torch: torch models' GEMMs emulated through lowprec.matmul.

Every emulated GEMM is checked bit for bit against lowprec.matmul recomputed here from the
torch operands (casts and per-tensor scales redone independently), gradients against the
lowprec.autograd engine under the same Policy, bf16 GEMMs against torch's own CPU kernels
(where those were verified), statistics against numpy, and small torch models must train.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import lowprec  # noqa: E402
import lowprec.torch as lpt  # noqa: E402
from lowprec import LPArray, decode, encode, get_format  # noqa: E402
from lowprec.autograd import Autocast, Policy, Tensor, ops  # noqa: E402
from lowprec.scaled import fp8_scale  # noqa: E402

E4M3, E5M2, BF16 = (get_format(n) for n in ("float8_e4m3fn", "float8_e5m2", "bfloat16"))


def bits(x) -> np.ndarray:
    """The float32 bit patterns of an array or tensor (NaNs compare by bits too)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().numpy()
    return np.ascontiguousarray(np.asarray(x, np.float32)).view(np.uint32)


def assert_bits(got, want):
    g, w = bits(got), bits(want)
    assert g.shape == w.shape, (g.shape, w.shape)
    bad = np.flatnonzero(g != w)
    assert bad.size == 0, f"{bad.size} of {g.size} differ, first at {bad[0]}"


# -- independent recomputation of one GEMM under a policy --------------------------------

def cast(x: np.ndarray, fmt, scaled: bool):
    """(LPArray operand, dequantization factor or None) of x under per-tensor current
    scaling (scaled) or a plain cast, as lowprec.autograd documents them."""
    x = np.asarray(x, np.float32)
    if fmt is None:
        return np.ascontiguousarray(x), None
    if not scaled:
        ov = "inf" if fmt.has_inf else "saturate"
        return LPArray.from_codes(encode(x, fmt, overflow=ov), fmt), None
    amax = np.float32(np.fmax.reduce(np.abs(x), axis=None)) if x.size else np.float32(0)
    s = np.float32(fp8_scale(amax, fmt))
    codes = encode((x * s).astype(np.float32), fmt, overflow="saturate")
    return LPArray.from_codes(codes, fmt), np.float32(np.float32(1) / s)


def recompute(a, b, c, fa, fb, *, scaled=False, **mm):
    qa, ia = cast(a, fa, scaled)
    qb, ib = cast(b, fb, scaled)
    if ia is None and ib is None:
        return lowprec.matmul(qa, qb, c=c, **mm)
    out = lowprec.matmul(qa, qb, scale_a=ia, scale_b=ib, **mm)
    return out if c is None else (out + np.asarray(c, np.float32)).astype(np.float32)


ROLE_FORMATS = {"forward": ("activation", "weight"), "dgrad": ("gradient", "weight"),
                "wgrad": ("activation", "gradient")}


def check_records(emu, *, scaled, **mm):
    """Every recorded GEMM equals lowprec.matmul recomputed from its operands."""
    fmts = {r: emu.policy.format(r) for r in ("activation", "weight", "gradient")}
    kinds = set()
    for r in emu.records:
        ra, rb = ROLE_FORMATS[r.kind]
        want = recompute(r.a, r.b, r.c, fmts[ra], fmts[rb], scaled=scaled, **mm)
        assert_bits(r.out, want)
        kinds.add(r.kind)
    assert kinds == {"forward", "dgrad", "wgrad"}
    return len(emu.records)


# -- models ---------------------------------------------------------------------------------

class Attention(nn.Module):
    """A tiny causal self-attention block written with F.scaled_dot_product_attention."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class TinyTransformer(nn.Module):
    def __init__(self, vocab=8, d=16, hand_written=False):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.block = (Attention(d, 2) if hand_written else
                      nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True))
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        return self.head(self.block(self.emb(idx)))


def digits_batch(n=128):
    from lowprec.datasets import load_digits
    s = load_digits()
    return torch.from_numpy(s.x_train[:n]), torch.from_numpy(s.y_train[:n])


def train(net, batches, loss_fn, emu, steps, lr=0.05):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for i in range(steps):
        x, y = batches(i)
        opt.zero_grad()
        with emu:
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        emu.log_step(loss.item())
        losses.append(loss.item())
    return losses


# -- import guards ----------------------------------------------------------------------------

def test_import_lowprec_does_not_import_torch():
    code = "import sys, lowprec, lowprec.autograd; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_without_torch_names_the_extra():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import lowprec.torch\nexcept ImportError as e:\n"
            "    assert \"lowprec[torch]\" in str(e), e; print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "ok"


# -- training -------------------------------------------------------------------------------

def test_mlp_trains_under_h100_fp8_emulation():
    torch.manual_seed(0)
    x, y = digits_batch(256)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    emu = lpt.emulate(model="h100", inputs="hybrid", recipe="current", promote_every=128,
                      module=net)
    losses = train(net, lambda i: (x[64 * (i % 4):64 * (i % 4) + 64], y[64 * (i % 4):][:64]),
                   F.cross_entropy, emu, steps=8)
    assert losses[-1] < 0.7 * losses[0], losses
    assert len(emu.history.steps) == 8
    st = emu.stats()
    assert set(st) == {"0:linear", "2:linear"}
    assert set(st["2:linear"]) == {"activation", "weight", "gradient"}
    assert st["0:linear"]["weight"]["format"] == "float8_e4m3fn"
    assert st["2:linear"]["gradient"]["format"] == "float8_e5m2"


@pytest.mark.parametrize("hand_written", [False, True], ids=["TransformerEncoderLayer", "sdpa"])
def test_transformer_trains_under_emulation(hand_written):
    torch.manual_seed(0)
    net = TinyTransformer(hand_written=hand_written)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, 8, (8, 4, 6), generator=g)

    def batches(i):  # predict each token's successor in a fixed cyclic order
        idx = data[i % 4]
        return idx, (idx + 1) % 8

    emu = lpt.emulate(model="h100", inputs="hybrid", recipe="current", module=net)
    losses = train(net, batches, lambda o, t: F.cross_entropy(o.reshape(-1, 8), t.reshape(-1)),
                   emu, steps=10)
    assert losses[-1] < 0.7 * losses[0], losses
    names = set(emu.stats())
    assert any(n.endswith("sdpa.scores") for n in names), names
    assert any(n.endswith("sdpa.context") for n in names), names


# -- every emulated GEMM is lowprec.matmul on the same operands ---------------------------------

@pytest.mark.parametrize("scaled", [False, True], ids=["plain", "current-scaling"])
def test_every_gemm_of_a_training_step_equals_lowprec_matmul(scaled):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    tfm = TinyTransformer(hand_written=False)
    emu = lpt.emulate(model="h100", inputs="hybrid", recipe="current" if scaled else None,
                      promote_every=128, record=True)
    x, y = digits_batch(40)
    idx = torch.randint(0, 8, (3, 5))
    with emu:
        loss = F.cross_entropy(mlp(x), y) + F.cross_entropy(tfm(idx).reshape(-1, 8),
                                                            idx.reshape(-1))
    loss.backward()
    n = check_records(emu, scaled=scaled, model="h100", chunk=128)
    assert n >= 3 * 8
    names = {r.name for r in emu.records}
    assert {"Linear0:linear", "MultiheadAttention0:sdpa.scores",
            "MultiheadAttention0:linear#1"} <= names, names


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def t32(rng, *shape, requires_grad=False):
    return torch.tensor(rng.standard_normal(shape).astype(np.float32),
                        requires_grad=requires_grad)


def test_each_op_returns_lowprec_matmul_of_its_operands(rng):
    """The tensors torch code gets back (not only the records) are lowprec.matmul's."""
    mm = dict(model="h100", chunk=128)
    emu = lpt.emulate(model="h100", inputs="e4m3", promote_every=128)

    def want(a, b, c=None):
        a, b = np.asarray(a.detach()), np.asarray(b.detach())
        cc = None if c is None else np.asarray(c.detach())
        return recompute(a, b, cc, E4M3, E4M3, **mm)

    x, w, bias = t32(rng, 5, 7), t32(rng, 7, 3), t32(rng, 3)
    x3, b3, w3 = t32(rng, 2, 5, 7), t32(rng, 2, 7, 3), t32(rng, 4, 7)
    v = t32(rng, 7)
    with emu:
        got = {"matmul": (torch.matmul(x, w), want(x, w)),
               "@": (x @ w, want(x, w)),
               "Tensor.mm": (x.mm(w), want(x, w)),
               "bmm": (torch.bmm(x3, b3), want(x3, b3)),
               "matmul-fold": (x3 @ w, want(x3.reshape(-1, 7), w).reshape(2, 5, 3)),
               "matmul-batch": (x3 @ b3, want(x3, b3)),
               "matmul-vec": (x @ v, want(x, v[:, None])[:, 0]),
               "vec-matmul": (v @ w, want(v[None], w)[0]),
               "addmm": (torch.addmm(bias, x, w), want(x, w, bias)),
               "baddbmm": (torch.baddbmm(bias, x3, b3), want(x3, b3, bias)),
               "linear": (F.linear(x, w3), want(x, w3.T)),
               "linear-bias-3d": (F.linear(x3, w3, bias[:1].expand(4).contiguous()),
                                  want(x3.reshape(-1, 7), w3.T,
                                       bias[:1].expand(4).contiguous()).reshape(2, 5, 4))}
    for name, (g, w_) in got.items():
        assert g.dtype == torch.float32, name
        assert_bits(g, w_)


def test_backward_gemms_equal_lowprec_matmul(rng):
    emu = lpt.emulate(model="b200", inputs=("e4m3", "e4m3", "e5m2"), recipe="current")
    x, w, b = t32(rng, 6, 9, requires_grad=True), t32(rng, 4, 9, requires_grad=True), \
        t32(rng, 4, requires_grad=True)
    gy = rng.standard_normal((6, 4)).astype(np.float32)
    with emu:
        y = F.linear(x, w, b)
    y.backward(torch.from_numpy(gy))
    xn, wn = x.detach().numpy(), w.detach().numpy()
    kw = dict(scaled=True, model="b200")
    assert_bits(y, recompute(xn, wn.T, b.detach().numpy(), E4M3, E4M3, **kw))
    assert_bits(x.grad, recompute(gy, wn, None, E5M2, E4M3, **kw))       # g @ (w.T).T
    assert_bits(w.grad, recompute(xn.T, gy, None, E4M3, E5M2, **kw).T)   # (x.T @ g).T
    assert_bits(b.grad, gy.sum(axis=0))


def sdpa_reference(q, k, v, mask=None, causal=False, scale=None, gqa=False, gemm=None):
    """torch's math backend written with numpy GEMMs (``gemm``) and torch softmax."""
    L, S, E = q.shape[-2], k.shape[-2], q.shape[-1]
    sf = math.sqrt(1 / math.sqrt(E) if scale is None else scale)
    if gqa:
        r = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(r, -3), v.repeat_interleave(r, -3)
    s = torch.from_numpy(gemm((q * sf).numpy(), (k.transpose(-2, -1) * sf).numpy()))
    if causal:
        mask = torch.ones(L, S, dtype=torch.bool).tril()
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
        s = s + mask
    p = torch.ops.aten._safe_softmax(s, -1)
    return torch.from_numpy(gemm(p.numpy(), v.numpy()))


@pytest.mark.parametrize("case", ["plain", "causal", "bool-mask", "float-mask", "scale", "gqa"])
def test_sdpa_gemms_equal_lowprec_matmul(rng, case):
    q, k, v = t32(rng, 2, 4, 5, 8), t32(rng, 2, 4, 6, 8), t32(rng, 2, 4, 6, 8)
    kw, ref = {}, {}
    if case == "causal":
        k, v = k[:, :, :5], v[:, :, :5]
        kw = ref = {"is_causal": True}
        ref = {"causal": True}
    elif case == "bool-mask":
        m = torch.from_numpy(rng.random((5, 6)) < 0.7)
        m[:, 0] = True
        kw, ref = {"attn_mask": m}, {"mask": m}
    elif case == "float-mask":
        m = t32(rng, 2, 1, 5, 6)
        kw, ref = {"attn_mask": m}, {"mask": m}
    elif case == "scale":
        kw, ref = {"scale": 0.3}, {"scale": 0.3}
    elif case == "gqa":
        k, v = k[:, :2], v[:, :2]
        kw, ref = {"enable_gqa": True}, {"gqa": True}
    emu = lpt.emulate(model="h100", inputs="e4m3", recipe="current")
    with emu:
        got = F.scaled_dot_product_attention(q, k, v, **kw)
    want = sdpa_reference(q, k, v, gemm=lambda a, b: recompute(a, b, None, E4M3, E4M3,
                                                               scaled=True, model="h100"), **ref)
    assert_bits(got, want)
    # and, without rounding, it is torch's own SDPA up to fp32 summation order
    with lpt.emulate():
        plain = F.scaled_dot_product_attention(q, k, v, **kw)
    np.testing.assert_allclose(plain.numpy(), F.scaled_dot_product_attention(q, k, v, **kw),
                               rtol=1e-5, atol=1e-6)


def test_sdpa_dropout_uses_torch_rng_like_the_math_backend(rng):
    q, k, v = t32(rng, 1, 2, 4, 8), t32(rng, 1, 2, 4, 8), t32(rng, 1, 2, 4, 8)
    torch.manual_seed(5)
    with lpt.emulate():
        got = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    torch.manual_seed(5)
    want = torch.ops.aten._scaled_dot_product_attention_math(q, k, v, dropout_p=0.5)[0]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


# -- gradients equal the lowprec.autograd engine's ------------------------------------------

@pytest.mark.parametrize("recipe", ["fp8-current-h100-promote128", "fp8-delayed", "bf16", "fp8-mx",
                                    "fp8-deepseek", "nvfp4"])
def test_mlp_gradients_equal_the_lowprec_engine(recipe, rng):
    W1, b1 = t32(rng, 24, 64) * 0.2, t32(rng, 24) * 0.1
    W2, b2 = t32(rng, 10, 24) * 0.2, t32(rng, 10) * 0.1
    R = rng.standard_normal((3, 16, 10)).astype(np.float32)
    x = rng.random((3, 16, 64)).astype(np.float32)

    net = nn.Sequential(nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
    with torch.no_grad():
        for p, val in zip(net.parameters(), (W1, b1, W2, b2)):
            p.copy_(val)
    emu = lpt.emulate(policy=recipe, module=net)
    ac = Autocast(Policy(recipe))
    eng = [Tensor(np.ascontiguousarray(t.numpy().T if t.ndim == 2 else t.numpy()),
                  requires_grad=True) for t in (W1, b1, W2, b2)]
    for step in range(3):  # three steps: delayed scaling's amax history matters
        net.zero_grad()
        with emu:
            out = net(torch.from_numpy(x[step]))
        (out * torch.from_numpy(R[step])).sum().backward()
        for t in eng:
            t.grad = None
        with ac:
            h = ops.linear(Tensor(x[step]), eng[0], eng[1], key="0:linear", fuse_bias=True).relu()
            o = ops.linear(h, eng[2], eng[3], key="2:linear", fuse_bias=True)
        (o * Tensor(R[step])).sum().backward()
        assert_bits(out, o.data)
        for p, t in zip(net.parameters(), eng):
            assert_bits(p.grad, t.grad.T if t.grad.ndim == 2 else t.grad)


# -- bf16: torch's own CPU kernels -------------------------------------------------------------

#: (torch version, CPU capability) pairs whose CPU bf16 GEMM order was verified: the
#: captured GEMMs in tests/test_capture.py VERIFIED_CPU, and this file's tests.
VERIFIED_LANES4 = {("2.13", "AVX2")}


def _verified_cpu():
    ver = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    key = (ver, torch.backends.cpu.get_cpu_capability())
    if key not in VERIFIED_LANES4:
        pytest.skip(f"torch's CPU bf16 GEMM order was verified only for "
                    f"{sorted(VERIFIED_LANES4)} (torch version, CPU capability); this is {key}")


def bf(rng, *shape, requires_grad=False):
    t = torch.tensor(rng.standard_normal(shape).astype(np.float32)).to(torch.bfloat16)
    return t.requires_grad_(requires_grad)


def _cancelling(rng, m, k, n):
    """bf16 a (m, k), b (k, n) whose products at two random k cancel exactly (2^20
    against each other): the fp32 sum then depends strongly on the accumulation order."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    k1, k2 = rng.choice(k, 2, replace=False)
    a[:, k1] = a[:, k2] = 2.0 ** 10
    b[k1] = 2.0 ** 10 * rng.choice([-1, 1], n) * rng.random(n)
    b[k2] = -b[k1]
    return (torch.tensor(a).to(torch.bfloat16), torch.tensor(b).to(torch.bfloat16))


def _bf16_cases(rng, n_shapes, cancelling):
    """(name, thunk) pairs of bf16 torch GEMM calls (row-major operands) on random shapes,
    small (bmm's own loop) and larger (cpublas)."""
    for _ in range(n_shapes):
        m, k, n = (int(v) for v in rng.integers(2, 40, 3))
        if cancelling:
            a, b = _cancelling(rng, m, k, n)
        else:
            a, b = bf(rng, m, k), bf(rng, k, n)
        c = bf(rng, n)
        a3, b3 = torch.stack([a, a.flip(0)]), torch.stack([b, b.flip(1)])
        yield from {"matmul": lambda a=a, b=b: torch.matmul(a, b),
                    "mm": lambda a=a, b=b: a.mm(b),
                    "bmm": lambda a3=a3, b3=b3: torch.bmm(a3, b3),
                    "matmul-fold": lambda a3=a3, b=b: a3 @ b,
                    "matmul-batch": lambda a3=a3, b3=b3: a3 @ b3,
                    "addmm": lambda a=a, b=b, c=c: torch.addmm(c, a, b),
                    "baddbmm": lambda a3=a3, b3=b3, c=c: torch.baddbmm(c, a3, b3)}.items()


def _differing(emu, cases):
    """(calls, calls equal to torch's bits, elements that differ, elements)."""
    calls = exact = diff = total = 0
    for name, f in cases:
        want = f()
        with emu:
            got = f()
        assert got.dtype == torch.bfloat16, name
        d = int((got.view(torch.int16) != want.view(torch.int16)).sum())
        calls, exact, diff, total = calls + 1, exact + (d == 0), diff + d, total + want.numel()
    return calls, exact, diff, total


@pytest.mark.parametrize("cancelling", [False, True], ids=["normal", "cancelling"])
def test_bf16_gemms_equal_torch_cpu_bit_for_bit(rng, cancelling):
    """accumulate="torch-cpu" is torch 2.13's CPU bf16 matmul / mm / bmm / addmm /
    baddbmm bit for bit, also on data whose products cancel (where the order shows: there
    lowprec.matmul's k-mod-4 lanes and plain sequential fp32 both miss)."""
    _verified_cpu()
    cases = list(_bf16_cases(rng, 8, cancelling))
    calls, exact, diff, total = _differing(lpt.emulate(inputs="bf16", accumulate="torch-cpu"),
                                           cases)
    assert calls == 56 and exact == calls, (exact, diff, total)
    if cancelling:  # the data shows the order: other orders miss (on a third of the calls)
        some = cases[:21]
        for other in (4, None):
            n, ex, d, tot = _differing(lpt.emulate(inputs="bf16", accumulate=other), some)
            assert ex < n and d > 0.01 * tot, (other, ex, d)


def test_bf16_transposed_layouts_are_close_to_torch_cpu(rng):
    """F.linear with nn.Linear's (out, in) weight, and mm's data gradient (g @ b.T), run
    torch kernels for operands contiguous along K whose order is not modelled: on typical
    data they still agree on all but rare elements; this pins the share so a change shows."""
    _verified_cpu()
    emu = lpt.emulate(inputs="bf16", accumulate="torch-cpu")
    diff = total = 0
    for _ in range(6):
        m, k, n = (int(v) for v in rng.integers(1, 48, 3))
        x, w, b, g = bf(rng, m, k), bf(rng, n, k), bf(rng, n), bf(rng, m, n)
        for args in ((x, w), (x, w, b)):
            want = F.linear(*args)
            with emu:
                got = F.linear(*args)
            diff += int((got.view(torch.int16) != want.view(torch.int16)).sum())
            total += want.numel()
        xr = x.clone().requires_grad_()
        torch.mm(xr, w.t()).backward(g)
        want, xr.grad = xr.grad, None
        with emu:
            y = torch.mm(xr, w.t())
        y.backward(g)
        diff += int((xr.grad.view(torch.int16) != want.view(torch.int16)).sum())
        total += want.numel()
    assert diff <= 1e-3 * total, (diff, total)


def test_bf16_tensors_are_upcast_exactly_and_results_rounded(rng):
    """By default the sum is lowprec.matmul's sequential fp32 one, rounded to bf16."""
    a, b = bf(rng, 4, 33), bf(rng, 33, 5)
    with lpt.emulate(inputs="bf16"):
        got = a @ b
    want = lowprec.matmul(a.float().numpy(), b.float().numpy())
    assert torch.equal(got, torch.from_numpy(want).to(torch.bfloat16))


# -- statistics ---------------------------------------------------------------------------------

def test_stats_match_numpy(rng):
    import ml_dtypes
    x = (rng.standard_normal((32, 16)) * np.exp2(rng.integers(-14, 12, (32, 16)))).astype(
        np.float32)
    x[0, :3] = 0.0
    w = (rng.standard_normal((8, 16)) * 0.1).astype(np.float32)
    emu = lpt.emulate(inputs="e4m3")
    with emu:
        for _ in range(2):  # one call site: its statistics add up
            F.linear(torch.from_numpy(x), torch.from_numpy(w))
    st = emu.stats()
    (name,) = st
    assert name.startswith("linear@test_torch_bridge.py:")
    s = st[name]["activation"]
    nz = x != 0
    q = x.astype(ml_dtypes.float8_e4m3fn)
    assert s["count"] == 2 * x.size
    assert s["amax"] == float(np.abs(x).max())
    assert s["flushed_fraction"] == np.count_nonzero(nz & (q == 0)) / np.count_nonzero(nz)
    assert s["saturated_fraction"] == np.count_nonzero(np.abs(x) > 448) / x.size
    assert 0 < s["flushed_fraction"] < 1 and 0 < s["saturated_fraction"] < 1
    assert st[name]["weight"]["amax"] == float(np.abs(w).max())
    assert "flushed %" in emu.report()
    emu.reset_stats()
    assert emu.stats() == {}


def test_module_names_are_stable_across_steps():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    emu = lpt.emulate(inputs="bf16")
    for _ in range(2):
        with emu:
            net(torch.randn(3, 4))
    assert set(emu.stats()) == {"Linear0:linear", "Linear1:linear"}
    assert emu.stats()["Linear0:linear"]["activation"]["count"] == 2 * 12


# -- errors ---------------------------------------------------------------------------------------

def test_clear_errors():
    x = torch.randn(2, 3)
    with lpt.emulate():
        with pytest.raises(ValueError, match="CPU"):
            torch.mm(torch.empty(2, 3, device="meta"), torch.empty(3, 2, device="meta"))
        with pytest.raises(TypeError, match="dtype torch.int64"):
            torch.mm(torch.ones(2, 3, dtype=torch.int64), torch.ones(3, 2, dtype=torch.int64))
        with pytest.raises(TypeError, match="complex"):
            torch.mm(torch.ones(2, 3, dtype=torch.complex64), torch.ones(3, 2,
                                                                         dtype=torch.complex64))
        with pytest.raises(NotImplementedError, match="einsum"):
            torch.einsum("ij,jk->ik", x, x.T)
        with pytest.raises(NotImplementedError, match="out="):
            torch.mm(x, x.T, out=torch.empty(2, 2))
    with lpt.emulate(other_gemms="torch"):
        torch.einsum("ij,jk->ik", x, x.T)
    with pytest.raises(ValueError, match="policy= replaces model"):
        lpt.emulate(model="h100", policy="bf16")
    with pytest.raises(ValueError, match="accumulate='torch-cpu'"):
        lpt.emulate(model="h100", inputs="e4m3", accumulate="torch-cpu")
    with pytest.raises(ValueError, match="accumulate must be"):
        lpt.emulate(inputs="bf16", accumulate="gpu")
    with pytest.raises(ValueError, match="cannot run"):
        lpt.emulate(model="h100")  # fp32 operands are not a tensor-core input
    with pytest.raises(ValueError, match="recipe"):
        lpt.emulate(inputs="e4m3", recipe="sometimes")


def test_backward_outside_the_block_and_inplace_change_detected(rng):
    x, w = t32(rng, 3, 4, requires_grad=True), t32(rng, 4, 2, requires_grad=True)
    emu = lpt.emulate(inputs="e4m3", record=True)
    with emu:
        y = x @ w
    y.sum().backward()  # outside the with block: still emulated (the forward's emulator)
    assert [r.kind for r in emu.records] == ["forward", "dgrad", "wgrad"]
    with emu:
        y = x @ w
    with torch.no_grad():
        w.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_runs_its_gemms_through_the_mode(need_weights):
    """nn.MultiheadAttention's body runs under the mode: its projections and attention
    GEMMs are emulated one by one; without rounding it is torch's up to summation order."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, batch_first=True)
    x = torch.randn(2, 5, 16)
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)  # True: not allowed (MHA's rule)
    want = mha(x, x, x, attn_mask=mask, need_weights=need_weights)[0]
    emu = lpt.emulate(module=mha, record=True)
    with emu:
        got = mha(x, x, x, attn_mask=mask, need_weights=need_weights)[0]
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    ops_seen = {r.name.split(":")[1].split("#")[0] for r in emu.records}
    assert "linear" in ops_seen and len(emu.records) >= 4, ops_seen
    assert ops_seen & ({"bmm", "baddbmm"} if need_weights else {"sdpa.scores"}), ops_seen


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_other_float_dtypes(rng, dtype):
    """float16 is upcast exactly and the result rounded back; float64 operands are rounded
    to float32 by the operand cast (here: no format, so by lowprec.matmul) and the result
    is returned as float64."""
    a = torch.tensor(rng.standard_normal((4, 9))).to(dtype)
    b = torch.tensor(rng.standard_normal((9, 3))).to(dtype)
    with lpt.emulate():
        got = a @ b
    assert got.dtype == dtype
    want = lowprec.matmul(a.numpy().astype(np.float32), b.numpy().astype(np.float32))
    assert torch.equal(got, torch.from_numpy(want).to(dtype))
