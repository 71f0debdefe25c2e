"""The training fast paths give the general paths' bits.

* :func:`lowprec.gemm_fast.matmul_f32` against :func:`lowprec.matmul` (fp32 accumulator,
  RNE, fma on and off) over random shapes, batches, broadcasting, strided operands,
  addends and special values, in both orientations it may choose.
* Training steps under each policy the fast paths touch, run with the shortcuts and with
  Autocast's general path (a subclass that turns them off), parameters compared bit for
  bit after every step; the tracker's statistics compared too.
* The engine's graph walk visits nodes in the order it always did (the order in which a
  gradient's contributions are summed).
"""

from __future__ import annotations

import numpy as np
import pytest

import lowprec
from lowprec import gemm_fast
from lowprec.autograd import Autocast, Policy, Tensor, Tracker, nn, ops, optim
from lowprec.gemm_fast import matmul_f32

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.0e38, -3.0e38, 1e-45, -1e-45,
                     1.2e-38, 65504.0], np.float32)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def _assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(_bits(got), _bits(want))


def _operand(rng, shape, special: bool) -> np.ndarray:
    x = (rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 20)).astype(np.float32)
    if special and x.size:
        idx = rng.integers(0, x.size, max(1, x.size // 8))
        x.flat[idx] = rng.choice(SPECIALS, idx.size)
    return x


def _layout(rng, x: np.ndarray) -> np.ndarray:
    """x itself, or the same values through a transposed (strided) view."""
    if x.ndim >= 2 and rng.random() < 0.5:
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -2)), -1, -2)
    return x


@pytest.mark.parametrize("seed", range(6))
def test_matmul_f32_matches_matmul(seed):
    rng = np.random.default_rng(seed)
    for t in range(40):
        m, k, n = (int(v) for v in rng.integers(0, 24, 3))
        if t % 5 == 0:
            n = int(rng.integers(1, 4))  # skinny outputs take the transposed orientation
        batch = [(), (3,), (2, 2)][t % 3]
        bb = batch if rng.random() < 0.7 else (1,) * len(batch)  # broadcast b's batch
        special = t % 2 == 0
        a = _layout(rng, _operand(rng, batch + (m, k), special))
        b = _layout(rng, _operand(rng, bb + (k, n), special))
        c = None
        if t % 4 == 1:
            c = _operand(rng, (n,), special)  # a bias
        elif t % 4 == 3:
            c = rng.standard_normal((m, n))  # float64: rounded to float32 first
        for fused in (True, False):
            want = lowprec.matmul(a, b, c=c, fma=fused)
            for _ in range(2):  # the second call runs from the cached plan
                _assert_bits(matmul_f32(a, b, c, fused=fused), want)


def test_matmul_f32_both_orientations():
    # the same products computed directly and transposed give the same bits
    rng = np.random.default_rng(7)
    cost = gemm_fast._cost
    try:
        for flip in (False, True):
            gemm_fast._PLANS.clear()
            gemm_fast._cost = (lambda m, k, n, f=flip, M=9: (0 if (m == M) != f else 10 ** 9))
            for special in (False, True):
                a = _operand(rng, (9, 33), special)
                b = _operand(rng, (33, 17), special)
                c = _operand(rng, (9, 17), special)
                _assert_bits(matmul_f32(a, b), lowprec.matmul(a, b))
                _assert_bits(matmul_f32(a, b, c), lowprec.matmul(a, b, c=c))
                _assert_bits(matmul_f32(a, b.T.copy().T), lowprec.matmul(a, b))
    finally:
        gemm_fast._cost = cost
        gemm_fast._PLANS.clear()


def test_matmul_f32_subnormals_and_overflow():
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((8, 40)) * 1e-20).astype(np.float32)
    b = (rng.standard_normal((40, 12)) * 1e-20).astype(np.float32)  # products underflow
    _assert_bits(matmul_f32(a, b), lowprec.matmul(a, b))
    a = (rng.standard_normal((8, 40)) * 1e20).astype(np.float32)
    b = (rng.standard_normal((40, 12)) * 1e20).astype(np.float32)  # products overflow
    _assert_bits(matmul_f32(a, b), lowprec.matmul(a, b))


def test_matmul_f32_errors():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError):
        matmul_f32(a.astype(np.float64), a.T)
    with pytest.raises(TypeError):
        matmul_f32([[1.0]], a)
    with pytest.raises(ValueError):
        matmul_f32(a, a)
    with pytest.raises(ValueError):
        matmul_f32(a[0], a.T)
    with pytest.raises(ValueError):
        matmul_f32(np.ones((2, 2, 3), np.float32), np.ones((3, 3, 2), np.float32))
    with pytest.raises(ValueError):
        matmul_f32(a, a.T.copy(), c=np.ones(3, np.float32))


class _General(Autocast):
    """Autocast with its shortcuts turned off: every cast and every GEMM the long way."""

    def _fast_paths(self, policy):
        return False, False


def _run(policy, hook_cls, steps, opt_name, tracker, fused_bias=False):
    rng = np.random.default_rng(11)
    if fused_bias:  # the bias enters the GEMM (after the scales under per-tensor scaling)
        model = nn.Sequential(nn.Linear(20, 24, seed=1, fuse_bias=True), nn.ReLU(),
                              nn.Linear(24, 16, seed=2, fuse_bias=True), nn.Tanh(),
                              nn.Linear(16, 5, seed=3, fuse_bias=True))
    else:
        model = nn.MLP([20, 24, 16, 5], seed=3)
    x = rng.standard_normal((12, 20)).astype(np.float32)
    y = rng.integers(0, 5, 12)
    upd = policy.weight_update(seed=5)
    if opt_name == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3,
                        update=upd, tracker=tracker)
    else:
        opt = optim.AdamW(model.parameters(), lr=1e-2, update=upd, tracker=tracker)
    scaler = policy.grad_scaler()
    ctx = hook_cls(policy, seed=9, tracker=tracker)
    params, stats = [], []
    for _ in range(steps):
        with ctx:
            loss = ops.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        params.append([p.data.copy() for p in model.parameters()])
        if tracker is not None:
            stats.append(tracker.take_step())
    return params, stats


@pytest.mark.parametrize("recipe", ["fp32", "bf16", "fp16-scaled", "fp8-current",
                                    "bf16-pure-sr", "fp8-delayed"])
@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_training_fast_equals_general(recipe, opt_name, monkeypatch):
    import importlib

    ac = importlib.import_module("lowprec.autograd.autocast")  # not the function autocast
    calls = [0]

    def counted(*a, **k):
        calls[0] += 1
        return matmul_f32(*a, **k)

    monkeypatch.setattr(ac, "matmul_f32", counted)
    policy = Policy(recipe)
    for with_tracker in (False, True):
        calls[0] = 0
        fast = _run(policy, Autocast, 3, opt_name, Tracker() if with_tracker else None)
        assert calls[0] > 0  # the shortcut ran
        slow = _run(policy, _General, 3, opt_name, Tracker() if with_tracker else None)
        assert calls[0] == 3 * 8  # ... and only there: 8 GEMMs a step (no dgrad of x)
        for pf, ps in zip(fast[0], slow[0]):
            for a, b in zip(pf, ps):
                _assert_bits(a, b)
        assert fast[1] == slow[1]


def test_fp32_fma_false_and_traced():
    policy = Policy("nofma", fma=False)
    fast = _run(policy, Autocast, 3, "sgd", None)[0]
    slow = _run(policy, _General, 3, "sgd", None)[0]
    for pf, ps in zip(fast, slow):
        for a, b in zip(pf, ps):
            _assert_bits(a, b)
    ev = []
    for cls in (Autocast, _General):
        ctx = cls(Policy(), trace=True)
        m = nn.MLP([4, 3, 2], seed=0)
        with ctx:
            loss = ops.cross_entropy(m(Tensor(np.ones((2, 4), np.float32))), np.array([0, 1]))
        loss.backward()
        ev.append(ctx.events)
    assert ev[0] == ev[1] and len(ev[0]) > 0


def test_default_hook_equals_fp32_autocast():
    # outside any Autocast, the engine's own hook takes the fast GEMM too
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 7)).astype(np.float32)
    w = Tensor(rng.standard_normal((7, 5)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    out = Tensor(x).matmul(w, c=b)
    (out * out).sum().backward()
    with _General(Policy()):
        ref = Tensor(x).matmul(w2 := Tensor(w.data, requires_grad=True),
                               c=(b2 := Tensor(b.data, requires_grad=True)))
    (ref * ref).sum().backward()
    _assert_bits(out.data, ref.data)
    _assert_bits(w.grad, w2.grad)
    _assert_bits(b.grad, b2.grad)


def _old_topo(root):
    """The engine's graph walk as it was written before (the reference order)."""
    topo, seen, stack = [], set(), [(root, False)]
    while stack:
        v, done = stack.pop()
        if done:
            topo.append(v)
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.append((v, True))
        stack.extend((p, False) for p in v._prev if p.requires_grad and id(p) not in seen)
    return topo


@pytest.mark.parametrize("seed", range(5))
def test_backward_order_unchanged(seed):
    rng = np.random.default_rng(seed)
    leaves = [Tensor(rng.standard_normal(3).astype(np.float32), requires_grad=bool(i % 3))
              for i in range(5)]
    nodes = list(leaves)
    for _ in range(25):
        a, b = (nodes[int(i)] for i in rng.integers(0, len(nodes), 2))
        nodes.append([a + b, a * b, a - b][int(rng.integers(0, 3))])
    root = nodes[-1]
    for v in nodes[-8:-1]:
        root = root + v
    root = root.sum()
    want = [id(v) for v in reversed(_old_topo(root)) if v._prev]
    calls = []
    for v in _old_topo(root):
        if v._prev:
            f = v._backward
            v._backward = (lambda f=f, i=id(v): (calls.append(i), f()))
    root.backward()
    assert calls == want and len(calls) > 5


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_select_bits(dtype):
    # relu and its gradient are where(x > 0, v, +0), bit for bit (NaN, -0, inf, subnormals)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 9)).astype(dtype)
    x.flat[:8] = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45], dtype)
    g = rng.standard_normal((7, 9)).astype(dtype)
    g.flat[10:15] = np.array([np.nan, -0.0, np.inf, -np.inf, -np.nan], dtype)
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    for xx in (x, np.asfortranarray(x)):
        t = Tensor(xx, requires_grad=True)
        y = t.relu()
        y.backward(g)
        want_y = np.where(x > 0, x, np.zeros_like(x))
        want_g = np.where(x > 0, g, np.zeros_like(g))
        np.testing.assert_array_equal(np.ascontiguousarray(y.data).view(bits), want_y.view(bits))
        np.testing.assert_array_equal(np.ascontiguousarray(t.grad).view(bits),
                                      want_g.view(bits))


def _sgd_reference(ws, grads_per_step, lr, momentum, dampening, wd, nesterov):
    """torch.optim.SGD's formulas, out of place, in float32 (the optimizer's old code)."""
    dt = np.float32
    ws = [w.copy() for w in ws]
    bufs = [None] * len(ws)
    for grads in grads_per_step:
        for i, (w, g) in enumerate(zip(ws, grads)):
            if wd:
                g = g + dt(wd) * w
            if momentum:
                if bufs[i] is None:
                    bufs[i] = g.copy()
                else:
                    bufs[i] = dt(momentum) * bufs[i] + dt(1 - dampening) * g
                g = g + dt(momentum) * bufs[i] if nesterov else bufs[i]
            ws[i] = (w + -dt(lr) * g).astype(np.float32)
    return ws


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf on purpose
@pytest.mark.parametrize("momentum,dampening,wd,nesterov",
                         [(0.9, 0.0, 0.0, False), (0.9, 0.1, 1e-2, False),
                          (0.8, 0.0, 1e-3, True), (0.0, 0.0, 0.0, False)])
def test_sgd_in_place_buffers_match_reference(momentum, dampening, wd, nesterov):
    rng = np.random.default_rng(8)
    ws = [rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in ws] for _ in range(5)]
    grads[2][0][0, 0] = np.nan  # specials travel the same way
    grads[3][1][1] = -np.inf
    params = [Tensor(w.copy(), requires_grad=True) for w in ws]
    opt = optim.SGD(params, lr=0.1, momentum=momentum, dampening=dampening, weight_decay=wd,
                    nesterov=nesterov)
    saved = None
    for t, gs in enumerate(grads):
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()
        if t == 1:
            saved = opt.state_dict()
    want = _sgd_reference(ws, grads, 0.1, momentum, dampening, wd, nesterov)
    for p, w in zip(params, want):
        _assert_bits(p.data, w)
    if momentum:
        # a loaded state is copied: stepping on does not change the caller's arrays
        before = {i: s["momentum_buffer"].copy() for i, s in saved["state"].items()}
        opt.load_state_dict(saved)
        for p, g in zip(params, grads[0]):
            p.grad = g.copy()
        opt.step()
        for i, s in saved["state"].items():
            _assert_bits(s["momentum_buffer"], before[i])


def test_matmul_f32_thread_count_does_not_matter(monkeypatch):
    import numba

    rng = np.random.default_rng(12)
    a = _operand(rng, (2, 37, 29), True)
    b = _operand(rng, (2, 29, 45), True)
    want = lowprec.matmul(a, b)
    prev = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            for small in (0, 1 << 30):  # always the threads given / always one
                monkeypatch.setattr(gemm_fast, "SMALL", small)
                _assert_bits(matmul_f32(a, b), want)
                assert numba.get_num_threads() == threads  # restored
    finally:
        numba.set_num_threads(prev)


def _old_cast_stats(x, q, fmt, amax=None):
    """instrument.cast_stats as it was written before (the reference)."""
    from lowprec.formats import FixedFormat, FloatFormat, float32

    f = float32 if fmt is None else fmt
    ax = np.abs(x)
    finite = np.isfinite(x)
    n = x.size
    n_fin = int(np.count_nonzero(finite))
    nz = finite & (x != 0)
    n_nz = int(np.count_nonzero(nz))
    flushed = int(np.count_nonzero(nz & (q == 0))) if fmt is not None else 0
    if isinstance(f, FloatFormat) and f.subnormals:
        aq = np.abs(q)
        sub = int(np.count_nonzero((aq < f.min_normal) & (aq > 0)))
    else:
        sub = 0
    if isinstance(f, FixedFormat):
        sat = int(np.count_nonzero(finite & ((x > f.max) | (x < f.min))))
    else:
        sat = int(np.count_nonzero(finite & (ax > f.max)))
    if amax is None:
        amax = float(ax[finite].max()) if n_fin else 0.0
    return (n, n_nz, flushed, sub, sat, n - n_fin, float(amax))


def _old_histogram(x):
    from lowprec.autograd.instrument import HIST_HI, HIST_LO

    v = x[np.isfinite(x) & (x != 0)]
    _, e = np.frexp(v)
    e = np.clip(e.astype(np.int64) - 1, HIST_LO, HIST_HI) - HIST_LO
    return np.bincount(e, minlength=HIST_HI - HIST_LO + 1), int(np.count_nonzero(x == 0))


@pytest.mark.parametrize("seed", range(4))
def test_instrument_statistics_unchanged(seed):
    from dataclasses import astuple

    from lowprec import quantize
    from lowprec.autograd import instrument
    from lowprec.formats import get_format

    rng = np.random.default_rng(seed)
    for dtype in (np.float32, np.float64):
        for special in (False, True):
            x = (rng.standard_normal((13, 17)) * 2.0 ** rng.integers(-140, 30, (13, 17)))
            x = x.astype(dtype)
            if special:
                x.flat[rng.integers(0, x.size, 20)] = rng.choice(
                    [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -3e-39, 3e38], 20)
            xs = [x, x[:, ::2]]  # contiguous and strided
            for xx in xs:
                assert astuple(instrument.cast_stats(xx, xx, None)) == _old_cast_stats(xx, xx, None)
                h, z = instrument._histogram_and_zeros(xx)
                hw, zw = _old_histogram(xx)
                np.testing.assert_array_equal(h, hw)
                assert h.dtype == hw.dtype and z == zw
                np.testing.assert_array_equal(instrument.log2_histogram(xx), hw)
                for name in ("bf16", "fp16", "float8_e4m3fn", "fixed8_8"):
                    fmt = get_format(name)
                    with np.errstate(all="ignore"):
                        q = quantize(np.nan_to_num(xx.astype(np.float64), nan=0.0), fmt,
                                     overflow="saturate")
                    got = astuple(instrument.cast_stats(xx, q, fmt))
                    assert got == _old_cast_stats(xx, q, fmt)
                    assert astuple(instrument.cast_stats(xx, q, fmt, amax=2.5)) == \
                        _old_cast_stats(xx, q, fmt, amax=2.5)


def test_transposed_copies_in_strips():
    # long rows take the strip-wise copy; values and bits as numpy's copy, GEMMs as matmul's
    rng = np.random.default_rng(13)
    for shape in [(1, 150, 140), (3, 70, 300), (2, 129, 129), (1, 9, 1024)]:
        src = _operand(rng, shape, True)
        view = np.swapaxes(src, 1, 2)
        got = gemm_fast._c3(view)
        assert got.flags.c_contiguous
        _assert_bits(got, np.ascontiguousarray(view))
    w = _operand(rng, (150, 140), True)
    g = _operand(rng, (5, 140), True)
    x = _operand(rng, (5, 150), True)
    _assert_bits(matmul_f32(g, w.T), lowprec.matmul(g, w.T))  # dgrad
    _assert_bits(matmul_f32(x.T, g), lowprec.matmul(x.T, g))  # wgrad
    _assert_bits(matmul_f32(w.T, w), lowprec.matmul(w.T, w))


@pytest.mark.parametrize("recipe", ["fp32", "bf16", "fp8-current", "fp8-mx"])
def test_fused_bias_fast_equals_general(recipe):
    policy = Policy(recipe)
    fast = _run(policy, Autocast, 3, "sgd", Tracker(), fused_bias=True)
    slow = _run(policy, _General, 3, "sgd", Tracker(), fused_bias=True)
    for pf, ps in zip(fast[0], slow[0]):
        for a, b in zip(pf, ps):
            _assert_bits(a, b)
    assert fast[1] == slow[1]


def test_integer_operand_formats_keep_matmul(monkeypatch):
    # an integer operand format goes to lowprec.matmul (its integer path), not the shortcut
    import importlib

    ac = importlib.import_module("lowprec.autograd.autocast")
    calls = []
    monkeypatch.setattr(ac, "matmul_f32", lambda *a, **k: calls.append(1))
    pol = Policy("int8-acts", activations="int8", weights="int8")
    x = Tensor(np.array([[1.0, -2.0, 3.0]], np.float32))
    w = Tensor(np.array([[1.0], [2.0], [-1.0]], np.float32), requires_grad=True)
    with Autocast(pol):
        try:
            x.matmul(w)
        except (ValueError, TypeError):
            pass  # whatever lowprec.matmul says about it, it is lowprec.matmul that says it
    assert not calls


def test_serial_twin_matches_parallel_kernel():
    # the serial twin is the parallel kernel's own code compiled without threads: same bits,
    # specials and both step kinds included, and through lowprec.matmul's selector
    from lowprec._kernels.gemm import gemm_f32
    from lowprec._kernels.gemm_serial import gemm_f32_auto, gemm_f32_serial

    rng = np.random.default_rng(14)
    for shape in [(1, 5, 7, 3), (2, 9, 33, 17), (1, 4, 8, 520)]:
        nb, m, k, n = shape
        a = _operand(rng, (nb, m, k), True)
        b = _operand(rng, (nb, k, n), True)
        a.flat[rng.integers(0, a.size, 3)] = [np.inf, np.nan, -0.0]
        c = _operand(rng, (nb, m, n), True)
        for fused in (True, False):
            want = np.empty((nb, m, n), np.float32)
            gemm_f32(a, b, c, fused, want)
            for kern in (gemm_f32_serial, gemm_f32_auto):
                got = np.empty_like(want)
                kern(a, b, c, fused, got)
                _assert_bits(got, want)


def test_sgd_momentum_kernel_matches_numpy():
    # the one-pass update against numpy's four operations, specials included; the
    # compiled entry point, the plain-Python copy and the numpy twin
    from lowprec._kernels import plain, update

    rng = np.random.default_rng(11)
    n = 1000
    w, g, buf = (_operand(rng, (n,), True) for _ in range(3))
    mom, neg_lr = np.float32(0.9), -np.float32(0.003)
    want_buf = buf.copy()
    want = np.empty(n, np.float32)
    with np.errstate(all="ignore"):
        update._numpy(w, g, want_buf, mom, neg_lr, want)
    # NaNs: which of two NaN operands an instruction passes on is the CPU's choice
    one = lambda x: np.where(np.isnan(x), np.uint32(0x7FC00000), _bits(x))  # noqa: E731
    for run in (update.ENTRY.compiled(), plain.copy_of(update.sgd_momentum)):
        b, out = buf.copy(), np.empty(n, np.float32)
        with np.errstate(all="ignore"):
            run(w, g, b, mom, neg_lr, out)
        np.testing.assert_array_equal(one(out), one(want))
        np.testing.assert_array_equal(one(b), one(want_buf))
    assert np.isnan(want).any() and np.isinf(want).any()


def test_sgd_fused_step_takes_strided_parameters_and_gradients():
    # Fortran-ordered parameters and transposed gradients: the one-pass update reads
    # their values in logical order, as numpy's operations do
    rng = np.random.default_rng(12)
    w0 = rng.standard_normal((6, 5)).astype(np.float32)
    grads = [rng.standard_normal((5, 6)).astype(np.float32).T for _ in range(3)]
    p = Tensor(np.asfortranarray(w0), requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    for g in grads:
        p.grad = g
        opt.step()
    want = _sgd_reference([w0], [[np.ascontiguousarray(g)] for g in grads], 0.1, 0.9, 0.0, 0.0,
                          False)[0]
    _assert_bits(np.ascontiguousarray(p.data), want)


@pytest.mark.parametrize("bias_shape,bias_dtype", [((6,), np.float32), ((4, 6), np.float32),
                                                   ((1, 6), np.float32), ((6,), np.float64),
                                                   ((3, 4, 6), np.float32)])
@pytest.mark.parametrize("policy", ["fp32", "bf16"])
def test_matmul_bias_is_product_plus_bias(bias_shape, bias_dtype, policy):
    # matmul(bias=) (one graph node when it can) gives (x @ w) + bias's values and
    # gradients, bit for bit, and falls back to two nodes for broadcasting or promotion
    rng = np.random.default_rng(13)
    xs = rng.standard_normal((4, 5)).astype(np.float32)
    ws = rng.standard_normal((5, 6)).astype(np.float32)
    bs = rng.standard_normal(bias_shape).astype(bias_dtype)
    g = rng.standard_normal(np.broadcast_shapes((4, 6), bias_shape))
    results = []
    for fused in (True, False):
        x, w, b = (Tensor(v.copy(), requires_grad=True) for v in (xs, ws, bs))
        with Autocast(Policy(policy)):
            y = x.matmul(w, bias=b) if fused else x.matmul(w) + b
        y.backward(g.astype(y.data.dtype))
        results.append([y.data, x.grad, w.grad, b.grad])
    for got, want in zip(*results):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


def test_relu_kernel_matches_numpy():
    # the one-pass ReLU (compiled, plain copy) against numpy's four operations: every
    # special, bit for bit, values and masks
    from lowprec._kernels import plain, update

    rng = np.random.default_rng(14)
    x = _operand(rng, (999,), True)
    x[:6] = [np.nan, -np.nan, -0.0, 0.0, 1e-45, -1e-45]
    want_y, want_m = np.empty_like(x), np.empty(x.shape, np.uint32)
    update._relu_numpy(x, want_y, want_m)
    assert (want_m[:6] == [0, 0, 0, 0, 0xFFFFFFFF, 0]).all()
    for run in (update.RELU.compiled(), plain.copy_of(update.relu_select)):
        y, m = np.empty_like(x), np.empty(x.shape, np.uint32)
        run(x, y, m)
        _assert_bits(y, want_y)
        np.testing.assert_array_equal(m, want_m)
