"""matmul's IEEE-style and integer accumulation: bit for bit against the exact references."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lowprec
import lowprec as lp
from lowprec.reference import gemm as ref
from lowprec.quantize import seed_key


def _bits(x):
    x = np.asarray(x, np.float32)
    # one NaN pattern for all NaNs; everything else compared bit for bit (zeros' signs too)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


def assert_same(actual, expected):
    a, e = _bits(actual), _bits(expected)
    bad = np.flatnonzero(a.ravel() != e.ravel())
    assert bad.size == 0, (f"{bad.size} of {a.size} differ; first at {bad[0]}: "
                           f"{np.ravel(actual)[bad[0]]!r} vs {np.ravel(expected)[bad[0]]!r}")


@st.composite
def matrices(draw, fmt, max_m=3, max_k=40, max_n=3, specials=False):
    """(a, c-free) operand pair of values in ``fmt``: random codes mixed with values that
    cancel, subnormals and large values."""
    f = lowprec.get_format(fmt)
    m = draw(st.integers(1, max_m))
    k = draw(st.integers(0, max_k))
    n = draw(st.integers(1, max_n))
    nice = [0.0, -0.0, 1.0, -1.0, 2.0 ** -f.man_bits, f.min_subnormal, -f.min_subnormal,
            f.min_normal, f.max, -f.max, 3.0, -0.5]
    if specials and f.has_inf:
        nice += [np.inf, -np.inf, np.nan]
    elif specials and f.has_nan:
        nice += [np.nan]
    vals = f.values() if f.bits <= 16 else None

    def one():
        if vals is not None:
            return st.one_of(st.sampled_from(nice),
                             st.integers(0, (1 << f.bits) - 1).map(lambda c: float(vals[c]))
                             .filter(lambda v: specials or np.isfinite(v)))
        return st.one_of(st.sampled_from(nice),
                         st.floats(-1e6, 1e6, width=32, allow_subnormal=True))

    a = np.array(draw(st.lists(one(), min_size=m * k, max_size=m * k)), np.float64).reshape(m, k)
    b = np.array(draw(st.lists(one(), min_size=k * n, max_size=k * n)), np.float64).reshape(k, n)
    return lowprec.quantize(a, f), lowprec.quantize(b, f)


def _c(draw_c, m, n):
    return np.array(draw_c, np.float32).reshape(m, n)


MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto", "sr"]


@pytest.mark.parametrize("inputs,acc", [("bf16", "fp32"), ("fp16", "fp16"), ("bf16", "bf16"),
                                        ("fp16", "fp32"), ("e4m3", "fp16"), ("fp32", "fp32"),
                                        ("tf32", "bf16"), ("e5m2", "e5m2")])
@pytest.mark.parametrize("fma", [True, False])
@settings(max_examples=8)
@given(data=st.data())
def test_sequential_matches_reference(inputs, acc, fma, data):
    a, b = data.draw(matrices(inputs, specials=data.draw(st.booleans())))
    m, n = a.shape[0], b.shape[1]
    c = np.array(data.draw(st.lists(st.sampled_from([0.0, -0.0, 1.0, -3.5, 1e-40, 65504.0]),
                                    min_size=m * n, max_size=m * n)), np.float32).reshape(m, n)
    rounding = data.draw(st.sampled_from(MODES))
    seed = data.draw(st.integers(0, 2**32))
    got = lowprec.matmul(a, b, c=c, inputs=inputs, acc=acc, acc_rounding=rounding, fma=fma,
                         seed=seed)
    want = ref.matmul_acc_ref(a, b, c, acc=lowprec.get_format(acc).name, rounding=rounding,
                              fma=fma, key=seed_key(seed))
    assert_same(got, want)


@pytest.mark.parametrize("acc,chunk", [("fp16", 4), ("bf16", 7), ("fp32", 3), ("e4m3", 5)])
@settings(max_examples=10)
@given(data=st.data())
def test_chunked_matches_reference(acc, chunk, data):
    a, b = data.draw(matrices("bf16" if acc != "e4m3" else "e4m3"))
    m, n = a.shape[0], b.shape[1]
    rounding = data.draw(st.sampled_from(["rne", "rtz", "sr"]))
    c = np.full((m, n), 0.25, np.float32)
    inputs = "bf16" if acc != "e4m3" else "e4m3"
    got = lowprec.matmul(a, b, c=c, inputs=inputs, acc=acc, acc_rounding=rounding,
                         chunk=chunk, seed=5)
    want = ref.matmul_acc_ref(a, b, c, acc=lowprec.get_format(acc).name, rounding=rounding,
                              chunk=chunk, key=seed_key(5))
    assert_same(got, want)


@settings(max_examples=30)
@given(data=st.data())
def test_fp32_fast_path_matches_reference(data):
    # bf16/fp16 products are exact in float32: the vectorised float32 kernel must agree.
    fmt = data.draw(st.sampled_from(["bf16", "fp16", "e4m3", "tf32"]))
    a, b = data.draw(matrices(fmt, max_m=9, max_n=300, max_k=12, specials=True))
    got = lowprec.matmul(a, b, inputs=fmt)
    want = ref.matmul_acc_ref(a, b)
    assert_same(got, want)


@pytest.mark.parametrize("fma", [True, False])
def test_fp32_equals_plain_float32_loop(fma):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((7, 300)).astype(np.float32)
    b = rng.standard_normal((300, 5)).astype(np.float32)
    c = rng.standard_normal((7, 5)).astype(np.float32)
    if fma:  # bf16 inputs: products exact in float32, so fma and plain float32 agree
        a = lowprec.quantize(a, "bf16")
        b = lowprec.quantize(b, "bf16")
    want = c.copy()
    for k in range(a.shape[1]):
        want = (want + (a[:, k:k + 1] * b[k:k + 1, :]).astype(np.float32)).astype(np.float32)
    got = lowprec.matmul(a, b, c=c, fma=fma)
    assert_same(got, want)
    if not fma:  # and numpy's float32 matmul generally differs (it reorders): a live check
        assert got.dtype == np.float32


def test_fp32_fma_with_fp32_inputs_is_single_rounding():
    # a*b + c rounded once differs from the float32 loop that rounds a*b first
    a = np.array([[1 + 2.0 ** -12]], np.float32)
    b = np.array([[1 + 2.0 ** -12]], np.float32)
    c = np.array([[-(1 + 2.0 ** -11)]], np.float32)
    assert lowprec.matmul(a, b, c=c, fma=True)[0, 0] == np.float32(2.0 ** -24)
    assert lowprec.matmul(a, b, c=c, fma=False)[0, 0] == np.float32(0.0)


@pytest.mark.parametrize("acc,expected", [("fp16", 2048.0), ("bf16", 256.0), ("fp32", 4096.0)])
def test_summing_ones(acc, expected):
    ones_a = np.ones((1, 4096), np.float32)
    ones_b = np.ones((4096, 1), np.float32)
    assert lowprec.matmul(ones_a, ones_b, inputs="bf16", acc=acc)[0, 0] == expected


def test_sr_is_reproducible_and_unbiased():
    a = np.ones((1, 4096), np.float32)
    b = np.ones((4096, 1), np.float32)
    r1 = lowprec.matmul(a, b, inputs="bf16", acc="bf16", acc_rounding="sr", seed=3)
    r2 = lowprec.matmul(a, b, inputs="bf16", acc="bf16", acc_rounding="sr", seed=3)
    assert_same(r1, r2)
    many = lowprec.matmul(np.ones((64, 4096), np.float32), b, inputs="bf16", acc="bf16",
                          acc_rounding="sr", seed=4)
    # RNE stagnates at 256; SR's sum is unbiased: each row is a random walk around 4096
    assert abs(float(many.mean()) - 4096) < 4096 * 0.05
    assert len(np.unique(many)) > 1


def test_batched_broadcasting_matches_per_matrix():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 4, 33)).astype(np.float32)
    b = rng.standard_normal((3, 33, 5)).astype(np.float32)
    got = lowprec.matmul(a, b, inputs="bf16", acc="fp16")
    assert got.shape == (2, 3, 4, 5)
    for i in range(2):
        for j in range(3):
            assert_same(got[i, j], lowprec.matmul(a[i, j], b[j], inputs="bf16", acc="fp16"))
    v = lowprec.matmul(a[0, 0, 0], b[0], inputs="bf16")
    assert v.shape == (5,)
    assert_same(v, lowprec.matmul(a[0, 0, :1], b[0], inputs="bf16")[0])


def test_k_zero_returns_c_in_acc():
    c = np.array([[1 + 2.0 ** -20]], np.float32)
    r = lowprec.matmul(np.zeros((1, 0)), np.zeros((0, 1)), c=c, acc="bf16")
    assert r[0, 0] == 1.0
    assert lowprec.matmul(np.zeros((2, 0)), np.zeros((0, 3))).tolist() == [[0.0] * 3] * 2


def test_nan_inf_propagation():
    a = np.array([[np.inf, 1.0], [np.nan, 1.0], [np.inf, 0.0], [np.inf, -np.inf]])
    b = np.array([[1.0], [1.0]])
    r = lowprec.matmul(a, b, inputs="bf16", acc="fp16")
    assert r[0, 0] == np.inf and np.isnan(r[1, 0]) and r[2, 0] == np.inf and np.isnan(r[3, 0])
    r = lowprec.matmul(np.array([[np.inf]]), np.array([[0.0]]), inputs="fp16")
    assert np.isnan(r[0, 0])
    # accumulator overflow: fp16 accumulation of 60000 + 60000 is inf
    r = lowprec.matmul(np.array([[60000.0, 60000.0]]), np.array([[1.0], [1.0]]), inputs="fp16",
                       acc="fp16")
    assert r[0, 0] == np.inf


@settings(max_examples=30)
@given(st.integers(1, 4), st.integers(0, 60), st.integers(1, 4), st.booleans(),
       st.integers(0, 2**31))
def test_int8_matches_reference(m, k, n, saturate, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    c = rng.integers(-2**31, 2**31, (m, n)).astype(np.int64)
    ovf = "saturate" if saturate else "wrap"
    got = lowprec.matmul(a, b, c=c, overflow=ovf)
    assert got.dtype == np.int32
    want = ref.matmul_int_ref(a.astype(np.int64), b.astype(np.int64), c, saturate)
    np.testing.assert_array_equal(got, want)


def test_int8_wrap_and_saturate_differ_at_overflow():
    a = np.full((1, 3), 127, np.int8)
    b = np.full((3, 1), 127, np.int8)
    c = np.array([[2**31 - 20000]])
    assert lowprec.matmul(a, b, c=c)[0, 0] == (2**31 - 20000 + 3 * 127 * 127) - 2**32
    assert lowprec.matmul(a, b, c=c, overflow="saturate")[0, 0] == 2**31 - 1


def test_scales_follow_scaled_mm_convention():
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (4, 16)).astype(np.int8)
    b = rng.integers(-128, 128, (16, 3)).astype(np.int8)
    sa = rng.random((4, 1)).astype(np.float32)
    sb = rng.random((1, 3)).astype(np.float32)
    r = lowprec.matmul(a, b, scale_a=sa, scale_b=sb)
    acc = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float32)
    want = ((acc * sa).astype(np.float32) * sb).astype(np.float32)
    assert r.dtype == np.float32
    assert_same(r, want)
    f = lowprec.matmul(a.astype(np.float32), b.astype(np.float32), inputs="e4m3", scale_a=2.0)
    assert_same(f, (lowprec.matmul(a.astype(np.float32), b.astype(np.float32), inputs="e4m3")
                    * np.float32(2.0)).astype(np.float32))
    with pytest.raises(ValueError, match="scale_b"):
        lowprec.matmul(a, b, scale_b=np.ones((4, 1)))


def test_out_format_returns_lparray():
    pytest.importorskip("lowprec.lparray")
    a = np.array([[1.0, 2.0 ** -9]], np.float32)
    b = np.array([[1.0], [1.0]], np.float32)
    r = lowprec.matmul(a, b, out="bf16")
    assert r.fmt == lowprec.get_format("bf16")
    assert float(np.asarray(r, np.float64)[0, 0]) == 1.0
    r = lowprec.matmul(a, b, out="bf16", out_rounding="rup")
    assert float(np.asarray(r, np.float64)[0, 0]) == 1 + 2.0 ** -7


def test_lparray_operands():
    lparray = pytest.importorskip("lowprec.lparray").array
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 20))
    y = rng.standard_normal((20, 2))
    la, lb = lparray(x, "fp16"), lparray(y, "fp16")
    assert_same(lowprec.matmul(la, lb, acc="fp16"), lowprec.matmul(x, y, inputs="fp16", acc="fp16"))


def test_errors():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="K=3"):
        lowprec.matmul(a, np.ones((4, 2)))
    with pytest.raises(ValueError, match="does not broadcast"):
        lowprec.matmul(a, np.ones((3, 2)), c=np.ones((3, 3)))
    with pytest.raises(ValueError, match="acc"):
        lowprec.matmul(a, np.ones((3, 2)), acc="int8")
    with pytest.raises(ValueError):
        lowprec.matmul(a, np.ones((3, 2)), acc_rounding="nearest")
    with pytest.raises(ValueError, match="chunk"):
        lowprec.matmul(a, np.ones((3, 2)), chunk=0)
    with pytest.raises(TypeError, match="fma"):
        lowprec.matmul(a, np.ones((3, 2)), fma=1)
    with pytest.raises(ValueError, match="mix"):
        lowprec.matmul(np.ones((2, 3), np.int8), np.ones((3, 2)))
    with pytest.raises(ValueError, match="overflow"):
        lowprec.matmul(np.ones((2, 3), np.int8), np.ones((3, 2), np.int8), overflow="inf")
    with pytest.raises(TypeError):
        lowprec.matmul(np.ones((2, 3), np.int32), np.ones((3, 2), np.int32))


# --- issue 10: inputs= never silently ignored, complex rejected, integers exact ------------
def test_inputs_conflicting_with_lparray_format_raises():
    x = lp.array(np.arange(6.0).reshape(2, 3), "bf16")
    y = lp.array(np.ones((3, 2)), "bf16")
    with pytest.raises(ValueError, match="inputs='float8_e4m3fn'.*bfloat16.*astype"):
        lp.matmul(x, y, inputs="e4m3")
    with pytest.raises(ValueError, match="LPArray in bfloat16"):
        lp.matmul(x.astype("e4m3"), y, inputs="e4m3")  # b conflicts
    # naming the operands' own format is fine and changes nothing
    np.testing.assert_array_equal(lp.matmul(x, y, inputs="bf16"), lp.matmul(x, y))
    # the explicit conversion does what inputs= would have meant
    np.testing.assert_array_equal(
        lp.matmul(x.astype("e4m3"), y.astype("e4m3")),
        lp.matmul(np.asarray(x), np.asarray(y), inputs="e4m3"))


@pytest.mark.parametrize("bad", [np.ones((2, 2), np.complex128), np.array([[1 + 1j, 0], [0, 1]])])
def test_complex_operands_raise(bad):
    with pytest.raises(TypeError, match="complex"):
        lp.matmul(bad, np.ones((2, 2)))
    with pytest.raises(TypeError, match="complex"):
        lp.matmul(np.ones((2, 2)), bad, inputs="bf16")


def test_integer_operands_round_exactly_into_inputs():
    big = 2 ** 60 + 2 ** 36 + 1  # through float64 it is a tie that RNE takes down
    a = np.array([[big]], np.int64)
    got = lp.matmul(a, np.ones((1, 1)), inputs="fp32", acc="fp32")
    assert got.dtype == np.float32
    assert float(got[0, 0]) == float(np.float32(2.0 ** 60 + 2.0 ** 37))


# --- lanes: interleaved fp32 accumulators -------------------------------------------------
@pytest.mark.parametrize("fmt", ["bf16", "fp16", "e4m3", "fp32"])
@settings(max_examples=12)
@given(data=st.data())
def test_lanes_match_reference(fmt, data):
    a, b = data.draw(matrices(fmt, max_m=3, max_k=40, max_n=4,
                              specials=data.draw(st.booleans())))
    m, n = a.shape[0], b.shape[1]
    c = np.array(data.draw(st.lists(st.sampled_from([0.0, -0.0, 1.0, -3.5, 1e-40, 3e38]),
                                    min_size=m * n, max_size=m * n)), np.float32).reshape(m, n)
    lanes = data.draw(st.sampled_from([1, 2, 3, 4, 8, 16, 50]))
    fma = data.draw(st.booleans())
    got = lowprec.matmul(a, b, c=c, inputs=fmt, lanes=lanes, fma=fma)
    assert_same(got, ref.matmul_lanes_ref(a, b, c, lanes=lanes, fma=fma))


def test_lanes_differ_from_sequential_and_lanes1_equals_it():
    rng = np.random.default_rng(5)
    a = lowprec.quantize(rng.standard_normal((6, 200)), "bf16")
    b = lowprec.quantize(rng.standard_normal((200, 7)), "bf16")
    seq = lowprec.matmul(a, b, inputs="bf16")
    assert_same(lowprec.matmul(a, b, inputs="bf16", lanes=1), seq)
    l4 = lowprec.matmul(a, b, inputs="bf16", lanes=4)
    assert not np.array_equal(l4, seq)  # the order is visible (so the tests above can fail)
    assert_same(l4, ref.matmul_lanes_ref(a, b, lanes=4))


def test_lanes_batched_and_broadcast_c():
    rng = np.random.default_rng(6)
    a = lowprec.quantize(rng.standard_normal((2, 3, 5, 37)), "fp16")
    b = lowprec.quantize(rng.standard_normal((3, 37, 4)), "fp16")
    c = rng.standard_normal((1, 4)).astype(np.float32)
    got = lowprec.matmul(a, b, c=c, inputs="fp16", lanes=4)
    assert got.shape == (2, 3, 5, 4)
    for i in range(2):
        for j in range(3):
            assert_same(got[i, j], ref.matmul_lanes_ref(a[i, j], b[j], np.broadcast_to(c, (5, 4)),
                                                        lanes=4))


def _torch_lanes4_verified():
    torch = pytest.importorskip("torch")
    ver = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    key = (ver, torch.backends.cpu.get_cpu_capability())
    # the same claim as tests/test_capture.py VERIFIED_CPU: torch 2.13 on AVX2 sums fp16/bf16
    # products k mod 4 into four fp32 accumulators; elsewhere the order is not claimed
    if key != ("2.13", "AVX2"):
        pytest.skip(f"torch's CPU fp16/bf16 GEMM order was verified only on torch 2.13 / AVX2; "
                    f"this is {key}")
    return torch


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_lanes4_equals_torch_cpu_matmul(dtype):
    torch = _torch_lanes4_verified()
    rng = np.random.default_rng(7)
    fmt = "bf16" if dtype == "bfloat16" else "fp16"
    e = 24 if fmt == "bf16" else 8
    # (K = 2h a multiple of 4: the claim of tests/test_capture.py; torch treats a K tail
    # differently, which this test does not claim)
    for m, h, n in [(16, 50, 16), (5, 18, 3), (9, 64, 33)]:
        x = lowprec.quantize(rng.standard_normal((m, h)) * 2.0 ** rng.integers(-e, e + 1, (m, h)),
                             fmt)
        y = lowprec.quantize(rng.standard_normal((h, n)), fmt)
        # the second half of K cancels the first in reverse order: the exact sums are 0 and
        # each result is the rounding residue of the fp32 order, which shows any other order
        a = np.concatenate([x, -x[:, ::-1]], 1)
        b = np.concatenate([y, y[::-1]], 0)
        ta = torch.tensor(a, dtype=torch.float32).to(getattr(torch, dtype))
        tb = torch.tensor(b, dtype=torch.float32).to(getattr(torch, dtype))
        want = (ta @ tb).float().numpy()  # torch rounds the fp32 sums to its dtype (RNE)

        def ours(lanes):
            return lowprec.quantize(lowprec.matmul(a, b, inputs=fmt, lanes=lanes)
                                    .astype(np.float64), fmt)
        assert_same(ours(4), want)
        for other in (1, 8):  # the comparison is able to fail
            assert (ours(other) != want).mean() > 0.3, other


def test_lanes_errors():
    a = np.ones((2, 3))
    b = np.ones((3, 2))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="lanes"):
            lowprec.matmul(a, b, lanes=bad)
    with pytest.raises(ValueError, match="lanes.*fp32"):
        lowprec.matmul(a, b, lanes=4, acc="fp16")
    with pytest.raises(ValueError, match="lanes.*fp32"):
        lowprec.matmul(a, b, lanes=4, acc_rounding="rtz")
    with pytest.raises(ValueError, match="lanes.*chunk"):
        lowprec.matmul(a, b, lanes=4, chunk=8)
    with pytest.raises(ValueError, match="lanes.*model"):
        lowprec.matmul(a, b, lanes=4, model="h100", inputs="fp16")
    with pytest.raises(ValueError, match="lanes"):
        lowprec.matmul(np.ones((2, 3), np.int8), np.ones((3, 2), np.int8), lanes=4)
