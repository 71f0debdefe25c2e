"""The plain tier (lowprec._kernels.plain): before a kernel is compiled, small calls run its
plain-Python copy (or gemm_f32's numpy twin) and give the compiled kernel's bits."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lowprec as lp
import lowprec.gemm_fast as gemm_fast
from lowprec._kernels import gemm_acc, gemm_serial, plain, tensorcore_fast
from lowprec._kernels.gemm import gemm_f32
from lowprec._kernels.gemm_numpy import gemm_f32_numpy
from lowprec.tensorcore import get_model

quantize_mod = sys.modules["lowprec.quantize"]  # the package exports a function of that name

pytestmark = pytest.mark.skipif(
    __import__("numba").config.DISABLE_JIT, reason="compares plain Python with compiled code")

_FIXED_TIERS = (gemm_serial._PLAIN, gemm_acc.gemm_acc_f32_auto.plain,
                tensorcore_fast.tc_gemm_fast_auto.plain)


@pytest.fixture
def plain_run(monkeypatch):
    """``plain_run(fn)`` -> (fn() with every kernel taken as not compiled, so that small
    calls take the plain tier; the plain seconds spent, > 0 when the tier ran)."""

    def run(fn):
        with monkeypatch.context() as m:
            m.setattr(plain, "has_code", lambda d: False)
            m.setattr(plain, "BUDGET_S", 1e9)
            m.setattr(plain, "ENABLED", True)
            m.setattr(quantize_mod, "_PLAIN_TIERS", {})
            m.setattr(quantize_mod, "_PLANS", {})  # plans keep compiled entry points
            m.setattr(gemm_serial, "_ENTRY", [])
            if gemm_fast._KERNEL:  # (gemm_fast, entry point, ...): no entry point yet
                m.setattr(gemm_fast, "_KERNEL", gemm_fast._KERNEL[:2] + [None]
                          + gemm_fast._KERNEL[3:])
            for t in _FIXED_TIERS:
                m.setattr(t, "closed", False)
                m.setattr(t, "spent", 0.0)
            res = fn()
            spent = sum(t.spent for t in _FIXED_TIERS)
            spent += sum(t.spent for t in quantize_mod._PLAIN_TIERS.values())
        return res, spent

    return run


def _same(x, y):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype and x.shape == y.shape
    assert np.array_equal(x.view(np.uint8), y.view(np.uint8))


def _conversion_inputs(fmt):
    """Every value of the format, the float32 midpoints between neighbours and their
    float32 neighbours (ties and near-ties of every rounding), out-of-range values,
    float32 subnormals and specials."""
    f = lp.get_format(fmt)
    vals = np.unique(lp.decode(np.arange(2 ** f.bits), f).astype(np.float64))
    vals = vals[np.isfinite(vals)]
    if vals.size > 600:  # 16-bit formats: a slice, with both ends of the range
        vals = np.unique(np.concatenate([vals[::vals.size // 300], vals[:20], vals[-20:]]))
    mids = ((vals[1:] + vals[:-1]) / 2).astype(np.float32)
    near = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)),
                           np.nextafter(mids, np.float32(-np.inf))])
    rng = np.random.default_rng(f.bits)
    wide = rng.standard_normal(300) * np.exp2(rng.integers(-150, 127, 300))
    wide = wide.astype(np.float32)
    big = np.float32(min(f.max * 1.0001, 3.4e38))
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1e-40, 3.4e38, -3.4e38,
                        big, -big], np.float32)
    x = np.concatenate([vals.astype(np.float32), -vals.astype(np.float32), near, wide, special])
    return x[np.isfinite(x) | np.isinf(x)]


@pytest.mark.parametrize("fmt", ["e4m3fn", "e5m2", "e2m1", "e3m2", "bf16", "fp16",
                                 "e4m3fnuz"])
@pytest.mark.parametrize("mode", ["rne", "rna", "rtz", "rup", "rdn"])
def test_conversion_plain_copy_matches_compiled(plain_run, fmt, mode):
    x = _conversion_inputs(fmt)
    for kw in ({}, {"overflow": "saturate"}, {"subnormals": False}):
        if lp.get_format(fmt).name == "float8_e4m3fn" and not kw:
            kw = {"nan": "zero"}
        want_q = lp.quantize(x, fmt, rounding=mode, **kw)
        want_e = lp.encode(x, fmt, rounding=mode, **kw)
        (got_q, got_e), spent = plain_run(
            lambda: (lp.quantize(x, fmt, rounding=mode, **kw),
                     lp.encode(x, fmt, rounding=mode, **kw)))
        assert spent > 0, "the plain tier did not run"
        _same(got_q, want_q)
        _same(got_e, want_e)


def test_conversion_plain_copy_counts_nans(plain_run):
    x = np.array([1.0, np.nan, 2.0], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        plain_run(lambda: lp.encode(x, "e2m1"))


def _gemm_operands(rng, m, k, n, scale_exp=(-20, 20)):
    a = (rng.standard_normal((m, k)) * np.exp2(rng.integers(*scale_exp, (m, k))))
    b = (rng.standard_normal((k, n)) * np.exp2(rng.integers(*scale_exp, (k, n))))
    return a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize("fused", [True, False])
def test_gemm_f32_numpy_twin_matches_kernel(fused):
    rng = np.random.default_rng(1)
    for scale in ((-20, 20), (-75, -60), (55, 64)):  # ordinary, subnormal results, overflow
        a, b = _gemm_operands(rng, 3 * 7, 33, 19, scale)
        a3, b3 = a.reshape(3, 7, 33), np.stack([b] * 3)
        c = (rng.standard_normal((3, 7, 19)) * 2.0 ** scale[0]).astype(np.float32)
        want = np.empty_like(c)
        gemm_f32(a3, b3, c, fused, want)
        got = np.empty_like(c)
        assert gemm_f32_numpy(a3, b3, c, fused, got)
        _same(got, want)


def test_gemm_f32_numpy_twin_rounds_once():
    # a b = 2^6 + 4688 * 2^-40 exactly, just above half an ulp of c = 2^30: a float64 sum
    # rounds it to the midpoint 2^30 + 2^6 and then to 2^30; the fused step gives 2^30 + 2^7
    a1 = np.float32(1 + 2896 * 2.0 ** -23)
    b1 = np.float32(2.0 ** 6 * (1 - 2895 * 2.0 ** -23))
    assert float(a1) * float(b1) == 2.0 ** 6 + 4688 * 2.0 ** -40
    signs = np.array([1, -1, 1, -1], np.float32)
    scales = np.exp2(np.array([0, -40, 30, -90])).astype(np.float32)
    a = (a1 * scales)[None, :, None] * np.ones((1, 1, 1), np.float32)
    b = np.full((1, 1, 3), b1, np.float32) * np.array([1, -1, 1], np.float32)
    c = (np.float32(2.0 ** 30) * scales[:, None] * signs[:, None]
         * np.array([1, -1, -1], np.float32)).astype(np.float32)[None]
    want = np.empty_like(c)
    gemm_f32(a, b, c, True, want)
    got = np.empty_like(c)
    assert gemm_f32_numpy(a, b, c, True, got)
    _same(got, want)
    assert abs(float(want[0, 0, 0])) == 2.0 ** 30 + 2.0 ** 7


def test_gemm_f32_numpy_twin_declines_non_finite():
    a = np.ones((1, 2, 2), np.float32)
    a[0, 0, 1] = np.nan
    out = np.full((1, 2, 2), 7.0, np.float32)
    assert not gemm_f32_numpy(a, a.copy(), np.zeros_like(out), True, out)
    assert (out == 7.0).all()


@pytest.mark.parametrize("fma", [True, False])
def test_fp32_matmul_before_compilation(plain_run, fma):
    rng = np.random.default_rng(2)
    a, b = _gemm_operands(rng, 12, 40, 9)
    c = rng.standard_normal((12, 9)).astype(np.float32)
    an = a.copy()
    an[1, 2], an[3, 4] = np.inf, np.nan  # the plain copy's path
    for x, y, cc in ((a, b, None), (a, b, c), (an, b, None)):
        want = lp.matmul(x, y, c=cc, fma=fma)
        got, spent = plain_run(lambda: lp.matmul(x, y, c=cc, fma=fma))
        assert spent > 0
        _same(got, want)
    # the lean layer (transposed operands, as in a backward pass)
    want = gemm_fast.matmul_f32(a.T.copy().T, b.T.copy().T, fused=fma)
    got, spent = plain_run(lambda: gemm_fast.matmul_f32(a.T.copy().T, b.T.copy().T,
                                                        fused=fma))
    assert spent > 0
    _same(got, want)


@pytest.mark.parametrize("acc", ["bf16", "fp16", "e4m3"])
@pytest.mark.parametrize("mode", ["rne", "rna", "rtz", "rup", "rdn", "sr"])
def test_exact_accumulation_before_compilation(plain_run, acc, mode):
    rng = np.random.default_rng(3)
    a, b = _gemm_operands(rng, 6, 24, 10, (-6, 6))
    a[0, :4] = 3e4  # overflow of the accumulator on some columns
    a[1, 1] = np.inf
    kws = [dict(), dict(fma=False), dict(chunk=8)]
    for kw in kws:
        call = lambda: lp.matmul(a, b, inputs="bf16", acc=acc, acc_rounding=mode, seed=5,
                                 **kw)
        want = call()
        got, spent = plain_run(call)
        assert spent > 0
        _same(got, want)


@pytest.mark.parametrize("gpu, fmt, out", [("h100", "e4m3", "fp32"), ("h100", "bf16", "fp32"),
                                           ("b200", "e4m3", "fp32"), ("a100", "fp16", "fp32"),
                                           ("a100", "bf16", "fp32"), ("h100", "fp16", "fp16")])
def test_tensor_core_before_compilation(plain_run, gpu, fmt, out):
    rng = np.random.default_rng(4)
    a, b = _gemm_operands(rng, 5, 64, 7, (-8, 8))
    c = rng.standard_normal((5, 7)).astype(np.float32)
    tiny = (a * 2.0 ** -12).astype(np.float32)  # subnormal fp16 outputs
    for x, cc in ((a, None), (a, c), (tiny, None)):
        call = lambda: lp.matmul(x, b, c=cc, inputs=fmt, model=gpu, out=out)
        want = call()
        got, spent = plain_run(call)
        assert spent > 0
        _same(got, want)


def test_tensor_core_promotion_before_compilation(plain_run):
    rng = np.random.default_rng(5)
    a, b = _gemm_operands(rng, 4, 96, 5, (-4, 4))
    blk = dataclasses.replace(get_model("h100").block("e4m3"), promote_every=32)
    call = lambda: lp.matmul(a, b, inputs="e4m3", model=blk)
    want = call()
    got, spent = plain_run(call)
    assert spent > 0
    _same(got, want)


def test_budget_spent_compiles(plain_run):
    x = np.linspace(-3, 3, 50, dtype=np.float32)
    want = lp.quantize(x, "e4m3")

    def run():
        plain.BUDGET_S = 0.0  # restored with the rest by the fixture
        return lp.quantize(x, "e4m3"), quantize_mod._PLAIN_TIERS["quantize_f32"].closed

    (got, closed), spent = plain_run(run)
    assert closed and spent == 0.0
    _same(got, want)


_TRAIN = """
def train(a):
    # an fp32 training step: the lean GEMM, transposed operands, SGD with momentum
    from lowprec.autograd import Autocast, Policy, Tensor, nn, ops, optim
    m = nn.MLP([16, 24, 10], seed=0)
    opt = optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    y = np.arange(16) % 10
    for _ in range(3):
        with Autocast(Policy("fp32")):
            loss = ops.cross_entropy(m(Tensor(a)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.data for p in m.parameters()]
"""

_COLD = """
import json, sys
import numpy as np, lowprec as lp
""" + _TRAIN + """
from numba.core.event import install_recorder
x = np.linspace(-3, 3, 256, dtype=np.float32)
a = x.reshape(16, 16)
with install_recorder("numba:compile") as rec:
    res = [lp.quantize(x, "e4m3"), lp.matmul(a, a),
           lp.matmul(a, a, inputs="bf16", acc="bf16"),
           lp.matmul(a, a, inputs="e4m3", model="h100")]
    res += train(a)
compiled = sorted({ev.data["dispatcher"].py_func.__qualname__ for _, ev in rec.buffer})
print(json.dumps({"compiled": compiled,
                  "res": [np.asarray(r, np.float32).view(np.uint32).tolist() for r in res]}))
"""


def test_first_small_calls_on_a_cold_cache_compile_nothing(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("LOWPREC_PLAIN", None)
    r = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert got["compiled"] == []
    x = np.linspace(-3, 3, 256, dtype=np.float32)
    a = x.reshape(16, 16)
    scope = {"np": np}
    exec(_TRAIN, scope)
    with plain.compiling():  # the compiled kernels' bits, whatever this process ran before
        want = [lp.quantize(x, "e4m3"), lp.matmul(a, a),
                lp.matmul(a, a, inputs="bf16", acc="bf16"),
                lp.matmul(a, a, inputs="e4m3", model="h100")] + scope["train"](a)
    assert len(got["res"]) == len(want)
    for g, w in zip(got["res"], want):
        assert g == np.asarray(w, np.float32).view(np.uint32).tolist()
