"""The small transformer: its new ops against central finite differences (float64), the
whole model's loss and gradients against torch, AdamW with parameter groups, gradient
clipping and the warm-up + cosine schedule against torch, the shipped corpus, and
training under fp32 and low-precision policies."""

import hashlib
import math
from importlib import resources

import numpy as np
import pytest

import lowprec
from lowprec import datasets
from lowprec.autograd import Tensor, amp, nn, ops, optim
from lowprec.autograd.schedule import WarmupCosine, warmup_cosine
from lowprec.autograd.transformer import GPT, CausalSelfAttention, GPTConfig, causal_mask
from tests.test_autograd import F64, gradcheck

TINY = GPTConfig(vocab_size=7, context=5, n_layer=2, n_head=2, d_model=4, mlp_ratio=2)
rng = np.random.default_rng(11)
IDX = np.array([[0, 3, 3, 6], [5, 1, 0, 3]])  # token 3 twice in a row: scatter-add
MASK = rng.random((2, 3, 4)) < 0.3


# --- new ops against finite differences (float64 reference policy) -----------------------
OP_CASES = {
    "embedding": (lambda w: ops.embedding(w, IDX), (rng.standard_normal((7, 3)),)),
    "masked_fill": (lambda a: ops.masked_fill(a, MASK, -3.0), (rng.standard_normal((2, 3, 4)),)),
    "causal_softmax": (lambda a: ops.masked_fill(a, causal_mask(4), -np.inf).softmax(),
                       (rng.standard_normal((2, 4, 4)),)),
    "linear_3d": (lambda x, w, b: ops.linear(x, w, b),
                  (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)),
                   rng.standard_normal(5))),
    "linear_3d_fused": (lambda x, w, b: ops.linear(x, w, b, fuse_bias=True),
                        (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)),
                         rng.standard_normal(5))),
    "layer_norm_3d": (lambda x, w, b: ops.layer_norm(x, w, b),
                      (rng.standard_normal((2, 3, 4)), rng.standard_normal(4),
                       rng.standard_normal(4))),
    "gelu_tanh_3d": (lambda x: x.gelu("tanh"), (rng.standard_normal((2, 3, 4)) * 2,)),
    "attention_scores": (lambda q, k: q.matmul(k.transpose(0, 1, 3, 2)) * 0.5,
                         (rng.standard_normal((2, 2, 4, 3)), rng.standard_normal((2, 2, 4, 3)))),
}


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_op_gradients_match_finite_differences(name):
    f, args = OP_CASES[name]
    gradcheck(f, *args)


def test_attention_module_gradient_matches_finite_differences():
    cfg = GPTConfig(vocab_size=5, context=4, n_layer=1, n_head=2, d_model=4)
    att = CausalSelfAttention(cfg, np.random.default_rng(0), dtype=np.float64)
    for p in att.parameters():  # non-trivial biases
        p.data = np.random.default_rng(p.size).standard_normal(p.shape) * 0.5
    gradcheck(lambda x: att(x), rng.standard_normal((2, 4, 4)))


def test_attention_is_causal():
    """Changing a later token leaves the logits of earlier positions unchanged."""
    m = GPT(TINY, seed=1, dtype=np.float64)
    a = m(np.array([[1, 2, 3, 4]])).data
    b = m(np.array([[1, 2, 3, 0]])).data
    np.testing.assert_array_equal(a[:, :3], b[:, :3])
    assert not np.allclose(a[:, 3], b[:, 3])


def test_op_errors():
    w = Tensor(np.ones((4, 2)), requires_grad=True)
    with pytest.raises(ValueError, match=r"indices must be integers in \[0, 4\)"):
        ops.embedding(w, np.array([0, 4]))
    with pytest.raises(ValueError, match="indices"):
        ops.embedding(w, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="2-D weight"):
        ops.embedding(Tensor(np.ones(3)), np.array([0]))
    with pytest.raises(ValueError, match="boolean mask"):
        ops.masked_fill(w, np.ones((4, 2)), 0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        ops.masked_fill(w, np.ones((3, 2), bool), 0.0)
    with pytest.raises(ValueError, match="positive int"):
        nn.Embedding(0, 3)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="must divide d_model"):
        GPTConfig(n_head=3)
    with pytest.raises(ValueError, match="gelu"):
        GPTConfig(gelu="fast")
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(n_layer=0)
    m = GPT(TINY)
    with pytest.raises(ValueError, match="time <= 5"):
        m(np.zeros((1, 6), int))
    with pytest.raises(ValueError, match="batch, time"):
        m(np.zeros(3, int))


# --- structure --------------------------------------------------------------------------
def test_structure_names_init_and_param_groups():
    m = GPT(seed=0)
    names = [n for n, _ in m.named_parameters()]
    assert names[:5] == ["wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias",
                         "h.0.attn.q.weight"]
    assert names[-2:] == ["ln_f.weight", "ln_f.bias"] and "lm_head.weight" not in names
    assert m.num_parameters() == 108352
    p = dict(m.named_parameters())
    assert all(v.name == k and v.dtype == np.float32 for k, v in p.items())
    # nanoGPT init: N(0, 0.02^2), residual projections scaled by 1/sqrt(2 n_layer)
    assert abs(p["h.0.mlp.fc.weight"].data.std() - 0.02) < 0.001
    assert abs(p["h.1.attn.proj.weight"].data.std() - 0.01) < 0.001
    assert (p["h.0.ln_2.weight"].data == 1).all() and (p["h.0.attn.q.bias"].data == 0).all()
    np.testing.assert_array_equal(GPT(seed=0).wte.weight.data, m.wte.weight.data)
    assert not np.array_equal(GPT(seed=1).wte.weight.data, m.wte.weight.data)
    decay, no_decay = m.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(t) for t in decay["params"]} == {id(t) for t in m.parameters() if t.ndim == 2}
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)
    untied = GPT(GPTConfig(tie_weights=False))
    assert [n for n, _ in untied.named_parameters()][-1] == "lm_head.weight"


# --- the whole model against torch -----------------------------------------------------
def _torch_leaves(torch, params):
    return {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}


def _torch_loss(torch, cfg, P, idx, targets):
    """nanoGPT's forward written with torch's own ops (scaled_dot_product_attention with
    is_causal, F.layer_norm, F.gelu(tanh), F.cross_entropy) on the parameter tensors
    ``P`` (weights (in, out) as ours)."""
    F = torch.nn.functional
    b, t = idx.shape
    d, h = cfg.d_model, cfg.n_head
    x = F.embedding(torch.tensor(idx), P["wte.weight"]) + P["wpe.weight"][:t]

    def lin(x, name):
        return F.linear(x, P[name + ".weight"].T, P.get(name + ".bias"))

    def heads(y):
        return y.view(b, t, h, d // h).transpose(1, 2)

    for i in range(cfg.n_layer):
        pre = f"h.{i}."
        y = F.layer_norm(x, (d,), P[pre + "ln_1.weight"], P[pre + "ln_1.bias"], eps=1e-5)
        q, k, v = (heads(lin(y, pre + "attn." + n)) for n in "qkv")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + lin(y.transpose(1, 2).reshape(b, t, d), pre + "attn.proj")
        y = F.layer_norm(x, (d,), P[pre + "ln_2.weight"], P[pre + "ln_2.bias"], eps=1e-5)
        x = x + lin(F.gelu(lin(y, pre + "mlp.fc"), approximate="tanh"), pre + "mlp.proj")
    x = F.layer_norm(x, (d,), P["ln_f.weight"], P["ln_f.bias"], eps=1e-5)
    logits = x @ (P["wte.weight"].T if cfg.tie_weights else P["lm_head.weight"])
    return F.cross_entropy(logits.reshape(b * t, -1), torch.tensor(targets).reshape(-1))


def _randomize(m, seed):
    """Non-trivial values everywhere (biases, norm weights), so every term is exercised."""
    r = np.random.default_rng(seed)
    for p in m.parameters():
        p.data = r.standard_normal(p.shape) * (0.3 if p.ndim == 2 else 0.2) \
            + (1.0 if p.name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0)


@pytest.mark.torch
@pytest.mark.parametrize("tied", [True, False])
def test_model_loss_and_gradients_match_torch(tied):
    torch = pytest.importorskip("torch")
    cfg = GPTConfig(vocab_size=11, context=6, n_layer=2, n_head=2, d_model=8, mlp_ratio=3,
                    tie_weights=tied)
    m = GPT(cfg, seed=3, dtype=np.float64)
    _randomize(m, 4)
    r = np.random.default_rng(5)
    idx, tgt = r.integers(0, 11, (3, 6)), r.integers(0, 11, (3, 6))
    with amp.autocast(F64):
        loss = m.loss(idx, tgt)
    loss.backward()
    P = _torch_leaves(torch, m.state_dict())
    tl = _torch_loss(torch, cfg, P, idx, tgt)
    tl.backward()
    assert abs(loss.item() - tl.item()) <= 1e-12 * abs(tl.item())
    for n, p in m.named_parameters():
        want = P[n].grad.numpy()
        # relative to the tensor's gradient norm: k's bias has a zero gradient in exact
        # arithmetic (softmax ignores a constant added to a row), so both are rounding noise
        err = np.linalg.norm(p.grad - want) / max(np.linalg.norm(want), 1e-300)
        assert err < 1e-10 or np.abs(want).max() < 1e-15, (n, err)
    assert np.abs(P["h.0.attn.k.bias"].grad.numpy()).max() < 1e-15


# --- optimizer, clipping, schedule against torch ---------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("norm_type,max_norm", [(2.0, 0.5), (2.0, 100.0), (math.inf, 0.3)])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(6)
    gs = [r.standard_normal(s) for s in ((3, 4), (5,), (2, 2))]
    ts = [Tensor(np.zeros_like(g), requires_grad=True) for g in gs]
    for t, g in zip(ts, gs):
        t.grad = g.copy()
    tt = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for t, g in zip(tt, gs):
        t.grad = torch.tensor(g)
    total = optim.clip_grad_norm_(ts + [Tensor(np.ones(2), requires_grad=True)], max_norm,
                                  norm_type)
    want = torch.nn.utils.clip_grad_norm_(tt, max_norm, norm_type)
    assert abs(total - float(want)) <= 1e-14 * float(want)
    for t, w in zip(ts, tt):
        np.testing.assert_allclose(t.grad, w.grad.numpy(), rtol=1e-14, atol=0)
    after = (max(np.abs(t.grad).max() for t in ts) if norm_type == math.inf
             else math.sqrt(sum((t.grad ** 2).sum() for t in ts)))
    assert after == pytest.approx(min(total, max_norm), rel=1e-5)  # clipped iff above


def test_clip_grad_norm_errors_and_nonfinite():
    t = Tensor(np.ones(2), requires_grad=True)
    assert optim.clip_grad_norm_([t], 1.0) == 0.0  # no gradients
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm_([t], 0.0)
    with pytest.raises(ValueError, match="norm_type"):
        optim.clip_grad_norm_([t], 1.0, norm_type=1.0)
    t.grad = np.array([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="not finite"):
        optim.clip_grad_norm_([t], 1.0, error_if_nonfinite=True)


@pytest.mark.torch
def test_schedule_matches_torch_linear_then_cosine():
    torch = pytest.importorskip("torch")
    W, T, r, base = 4, 25, 0.1, 3e-3
    p = torch.zeros(1, requires_grad=True)
    o = torch.optim.AdamW([p], lr=base)
    sch = torch.optim.lr_scheduler
    s = sch.SequentialLR(o, [sch.LinearLR(o, start_factor=1 / (W + 1), total_iters=W),
                             sch.CosineAnnealingLR(o, T_max=T - W, eta_min=r * base)],
                         milestones=[W])
    ours = optim.AdamW([Tensor(np.zeros(1), requires_grad=True)], lr=base)
    sched = WarmupCosine(ours, W, T, min_ratio=r)
    for t in range(T + 1):
        want = o.param_groups[0]["lr"]
        assert abs(ours.lr - want) <= 1e-14 * want, t
        assert sched.get_last_lr() == [ours.lr]
        assert ours.lr == base * warmup_cosine(t, warmup_steps=W, total_steps=T, min_ratio=r)
        o.step()
        s.step()
        sched.step()
    sched.step()
    assert ours.lr == pytest.approx(r * base, rel=1e-15)  # held at the floor after T


def test_schedule_shape_state_and_errors():
    f = [warmup_cosine(t, warmup_steps=2, total_steps=6, min_ratio=0.0) for t in range(8)]
    assert f[:3] == [1 / 3, 2 / 3, 1.0] and f[6] == 0.0 and f[7] == 0.0
    assert all(a >= b for a, b in zip(f[2:], f[3:]))
    assert warmup_cosine(0, warmup_steps=0, total_steps=5) == 1.0
    w = Tensor(np.zeros(1), requires_grad=True)
    o = optim.SGD([{"params": [w], "lr": 0.2}])
    s = WarmupCosine(o, 2, 6)
    s.step()
    s.step()
    s.step()
    state = s.state_dict()
    o2 = optim.SGD([{"params": [Tensor(np.zeros(1), requires_grad=True)], "lr": 0.2}])
    s2 = WarmupCosine(o2, 2, 6)
    s2.load_state_dict(state)
    assert o2.lr == o.lr == 0.2 * warmup_cosine(3, warmup_steps=2, total_steps=6)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosine(o, 5, 5)
    with pytest.raises(ValueError, match="min_ratio"):
        warmup_cosine(0, warmup_steps=1, total_steps=3, min_ratio=2.0)
    with pytest.raises(ValueError, match="step"):
        warmup_cosine(-1, warmup_steps=1, total_steps=3)
    with pytest.raises(TypeError, match="Optimizer"):
        WarmupCosine(object(), 1, 3)


def test_param_groups_validation_and_state():
    a, b = (Tensor(np.ones(2), requires_grad=True) for _ in range(2))
    o = optim.AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0, "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in o.param_groups] == [0.1, 0.5]
    assert o.param_groups[0]["weight_decay"] == 0.01 and o.betas == (0.9, 0.999)
    o.lr = 0.2  # sets every group, as schedules do
    assert [g["lr"] for g in o.param_groups] == [0.2, 0.2]
    sd = o.state_dict()
    assert sd["param_groups"][1]["params"] == [1] and sd["param_groups"][1]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="unknown parameter group option"):
        optim.SGD([{"params": [a], "betas": (0.9, 0.9)}])
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": [a]}, {"params": [a]}])
    with pytest.raises(ValueError, match="empty parameter group"):
        optim.SGD([{"params": []}])
    with pytest.raises(TypeError, match="all tensors or all parameter groups"):
        optim.SGD([a, {"params": [b]}])
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([{"params": [a], "lr": -1.0}])
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([{"params": [a], "nesterov": True}], momentum=0.0)


@pytest.mark.torch
def test_training_steps_match_torch():
    """Six steps of nanoGPT's recipe in float64: AdamW with decay only on matrices and
    embeddings, gradient clipping at a norm the gradients exceed, warm-up and cosine; the
    losses and final weights equal torch's to rounding."""
    torch = pytest.importorskip("torch")
    cfg = GPTConfig(vocab_size=9, context=6, n_layer=2, n_head=2, d_model=8, bias=False)
    m = GPT(cfg, seed=7, dtype=np.float64)
    _randomize(m, 8)
    r = np.random.default_rng(9)
    data = [(r.integers(0, 9, (2, 6)), r.integers(0, 9, (2, 6))) for _ in range(6)]
    opt = optim.AdamW(m.param_groups(0.1), lr=0.01, betas=(0.9, 0.95))
    sched = WarmupCosine(opt, 2, 6)
    P = _torch_leaves(torch, m.state_dict())
    decay = [P[n] for n, p in m.named_parameters() if p.ndim >= 2]
    rest = [P[n] for n, p in m.named_parameters() if p.ndim < 2]
    topt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                              {"params": rest, "weight_decay": 0.0}], lr=0.01, betas=(0.9, 0.95))
    sch = torch.optim.lr_scheduler
    tsched = sch.SequentialLR(topt, [sch.LinearLR(topt, start_factor=1 / 3, total_iters=2),
                                     sch.CosineAnnealingLR(topt, T_max=4, eta_min=0.001)],
                              milestones=[2])
    norms = []
    for idx, tgt in data:
        with amp.autocast(F64):
            loss = m.loss(idx, tgt)
        opt.zero_grad()
        loss.backward()
        norms.append(optim.clip_grad_norm_(m.parameters(), 0.5))
        opt.step()
        sched.step()
        tl = _torch_loss(torch, cfg, P, idx, tgt)
        topt.zero_grad()
        tl.backward()
        tn = torch.nn.utils.clip_grad_norm_(list(P.values()), 0.5)
        topt.step()
        tsched.step()
        assert abs(loss.item() - tl.item()) <= 1e-11 * tl.item()
        assert abs(norms[-1] - float(tn)) <= 1e-10 * float(tn)
    assert min(norms) > 0.5  # clipping was active at every step
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.data, P[n].detach().numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=n)


# --- the corpus -------------------------------------------------------------------------
def test_corpus_is_the_cited_text_and_splits_as_documented():
    text = datasets.shakespeare()
    cite = resources.files("lowprec").joinpath("data/SHAKESPEARE-CITATION.txt").read_text()
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    assert digest in cite and "public domain" in cite.lower()
    assert len(text) == 131058 and text.startswith("First Citizen:\nBefore we proceed")
    c = datasets.load_shakespeare()
    assert c.vocab == "".join(sorted(set(text))) and c.vocab_size == 61
    assert len(c.train) == 117952 and len(c.val) == 131058 - 117952  # 90 % / 10 %
    assert c.train.dtype == np.int64 and c.decode(c.train[:14]) == "First Citizen:"
    assert c.decode(np.concatenate([c.train, c.val])) == text
    np.testing.assert_array_equal(c.encode("Speak, speak."),
                                  [c.vocab.index(ch) for ch in "Speak, speak."])
    assert c.decode(c.encode("Speak, speak.")) == "Speak, speak."
    with pytest.raises(ValueError, match="not in the vocabulary"):
        c.encode("X")  # no capital X in the excerpt
    with pytest.raises(ValueError, match="val_fraction"):
        datasets.load_shakespeare(val_fraction=1.0)


def test_batches_are_seeded_next_token_windows():
    c = datasets.load_shakespeare()
    x, y = datasets.sample_batch(c.train, 4, 16, seed=3)
    x2, y2 = datasets.sample_batch(c.train, 4, 16, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == y.shape == (4, 16) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets are the next tokens
    for row, nxt in zip(x, y):  # each window is a piece of the text
        s = c.decode(row) + c.decode(nxt[-1:])
        assert s in datasets.shakespeare()
    g = np.random.default_rng(0)
    a, b = datasets.sample_batch(c.train, 4, 16, g), datasets.sample_batch(c.train, 4, 16, g)
    assert not np.array_equal(a[0], b[0])  # a Generator draws a sequence of batches
    xv, yv = datasets.windows(c.val, 64)
    assert xv.shape == (204, 64) and datasets.windows(c.val, 64, limit=5)[0].shape == (5, 64)
    np.testing.assert_array_equal(xv.reshape(-1), c.val[:204 * 64])
    np.testing.assert_array_equal(yv.reshape(-1), c.val[1:204 * 64 + 1])
    with pytest.raises(ValueError, match="longer than the context"):
        datasets.sample_batch(c.val[:10], 2, 10)
    with pytest.raises(ValueError, match="positive"):
        datasets.sample_batch(c.val, 0, 10)


# --- training ---------------------------------------------------------------------------
def _train(policy, steps, seed=0, batch=16, lr=1e-2):
    """nanoGPT's recipe on the corpus with a one-block model (small, for test time)."""
    c = datasets.load_shakespeare()
    cfg = GPTConfig(vocab_size=c.vocab_size, context=16, n_layer=1, n_head=2, d_model=32)
    m = GPT(cfg, seed=seed)
    opt = optim.AdamW(m.param_groups(0.1), lr=lr, betas=(0.9, 0.95))
    sched = WarmupCosine(opt, steps // 10, steps)
    g = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        x, y = datasets.sample_batch(c.train, batch, cfg.context, g)
        with amp.autocast(policy):
            loss = m.loss(x, y)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return np.array(losses)


def test_trains_in_fp32():
    losses = _train(amp.Policy(), 20)
    assert abs(losses[0] - math.log(61)) < 0.1  # starts at chance
    assert losses[-5:].mean() < losses[0] - 0.7, losses  # (about the unigram entropy)


def test_trains_under_bf16_policy_end_to_end():
    losses = _train(amp.Policy("bf16"), 12)
    assert np.isfinite(losses).all()
    assert losses[-4:].mean() < losses[0] - 0.5, losses


class _Recording(amp.Autocast):
    """An Autocast that keeps each forward GEMM's operands and output by key."""

    def __init__(self, policy):
        super().__init__(policy)
        self.gemms = {}
        self.backward_keys = []

    def matmul(self, a, b, key, c=None):
        out, saved = super().matmul(a, b, key, c)
        self.gemms[key] = (a, b, out)
        return out, saved

    def matmul_backward(self, g, saved, key, need_a, need_b):
        self.backward_keys.append(key)
        return super().matmul_backward(g, saved, key, need_a, need_b)


def _bf16(x):
    """Round to bf16 with ml_dtypes (the rounding oracle)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16)


@pytest.mark.parametrize("gemm_model", [None, "h100"])
def test_attention_gemms_run_in_lowprec_matmul_under_the_policy(gemm_model):
    """Under a bf16 policy (and with the H100 tensor-core model) the batched attention
    GEMMs are lowprec.matmul of the bf16-rounded operands (ml_dtypes as the rounding
    oracle), their outputs rounded to bf16, in forward and backward."""
    pol = amp.Policy("bf16") if gemm_model is None else \
        amp.Policy.recipe("bf16", gemm_model=gemm_model)
    m = GPT(GPTConfig(vocab_size=61, context=16), seed=2)
    x, y = datasets.sample_batch(datasets.load_shakespeare().train, 2, 16, seed=1)
    rec = _Recording(pol)
    with rec:
        loss = m.loss(x, y)
    loss.backward()
    a, b, out = rec.gemms["h.1.attn.scores"]
    assert a.shape == (2, 4, 16, 16) and b.shape == (2, 4, 16, 16)
    want = lowprec.matmul(_bf16(a), _bf16(b), model=gemm_model)
    np.testing.assert_array_equal(out, _bf16(want).astype(np.float32))
    a, b, out = rec.gemms["h.0.attn.context"]
    assert a.shape == (2, 4, 16, 16) and b.shape == (2, 4, 16, 16)
    np.testing.assert_array_equal(
        out, _bf16(lowprec.matmul(_bf16(a), _bf16(b), model=gemm_model)).astype(np.float32))
    for k in ("h.0.attn.scores", "h.0.attn.context", "h.1.attn.q", "lm_head"):
        assert k in rec.gemms and k in rec.backward_keys
    assert rec.gemms["h.0.mlp.fc"][0].shape == (32, 64)  # projections: one 2-D GEMM
    assert all(np.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("recipe", ["bf16", "fp8-mx"])
def test_batched_gemm_under_a_policy_equals_one_gemm_per_entry(recipe):
    """Autocast's batched GEMMs, forward and both gradients, equal the 2-D GEMMs of each
    batch entry bit for bit (element casts and MX blocks along each GEMM's reduction
    axis do not depend on the batch)."""
    r = np.random.default_rng(12)
    a = r.standard_normal((2, 32, 64)).astype(np.float32)
    b = r.standard_normal((2, 64, 32)).astype(np.float32)
    g = r.standard_normal((2, 32, 32)).astype(np.float32)

    def run(a, b, g):
        x, w = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        with amp.autocast(amp.Policy(recipe)):
            out = x.matmul(w, key="k")
        out.backward(g)
        return out.data, x.grad, w.grad

    batched = run(a, b, g)
    for i in range(2):
        for got, want in zip(batched, run(a[i], b[i], g[i])):
            np.testing.assert_array_equal(got[i], want)
