"""LPArray: construction, numpy feel, operators rounded once per element (checked against
the lowprec functions, which test_arith checks against the exact reference), no silent
format mixing, reproducible stochastic rounding, display."""

import numpy as np
import pytest

import lowprec as lp
from lowprec import arith
from lowprec.lparray import LPArray, RoundingContext, array, concatenate, stack


def bits(x):
    a = np.asarray(x, np.float64).copy()
    a[np.isnan(a)] = np.nan
    return a.view(np.uint64)


def same(a, b):
    return np.array_equal(bits(a), bits(b))


@pytest.fixture
def a():
    return array([[0.1, 1.0, -3.5], [1e30, -0.0, np.inf]], "bf16")


def test_construction_and_properties(a):
    x = np.array([[0.1, 1.0, -3.5], [1e30, -0.0, np.inf]])
    assert np.array_equal(a.codes, lp.encode(x, "bf16"))
    assert a.codes.dtype == np.uint16
    assert a.fmt is lp.bfloat16 and a.dtype is lp.bfloat16
    assert a.shape == (2, 3) and a.ndim == 2 and a.size == 6 and len(a) == 2
    assert a.nbytes == 12
    assert same(np.asarray(a), lp.quantize(x.astype(np.float32), "bf16"))
    assert np.asarray(a).dtype == np.float32
    assert a.to_numpy(np.float64).dtype == np.float64
    assert same(a.to_numpy(np.float64), lp.quantize(x, "bf16"))
    b = array(a)
    assert np.array_equal(b.codes, a.codes) and b.codes is not a.codes
    c = array(a, "fp16")
    assert same(c.to_numpy(np.float64), lp.quantize(a.to_numpy(np.float64), "fp16"))
    d = LPArray.from_codes(a.codes, "bf16", rounding="rtz")
    assert d.rounding == "rtz" and np.array_equal(d.codes, a.codes)
    assert array(3, "e4m3fn").item() == 3.0 and array(3, "e4m3fn").shape == ()
    i16 = array([1.4, -300.0, 7], "int16")
    assert i16.to_numpy().tolist() == [1.0, -300.0, 7.0]


def test_construction_rounds_with_the_context():
    x = np.full(4000, 1.0 + 2.0**-10)
    r = array(x, "bf16", rounding="rtz")
    assert (r.to_numpy() == 1.0).all()
    s1 = array(x, "bf16", rounding="sr", seed=5).to_numpy()
    s2 = array(x, "bf16", rounding="sr", seed=5).to_numpy()
    assert same(s1, s2) and 0.08 < np.mean(s1 > 1) < 0.17


def test_indexing_and_shape_ops(a):
    assert isinstance(a[0, 1], LPArray) and a[0, 1].shape == () and float(a[0, 1]) == 1.0
    assert a[1].shape == (3,) and a[:, 0].shape == (2,)
    assert same(a[::-1].to_numpy(), a.to_numpy()[::-1])
    assert a.reshape(3, 2).shape == (3, 2) and a.reshape((6,)).shape == (6,)
    assert same(a.T.to_numpy(), a.to_numpy().T)
    assert same(a.transpose(1, 0).to_numpy(), a.to_numpy().T)
    assert a.ravel().shape == (6,) and a.flatten().shape == (6,)
    c = a.copy()
    c[0, 0] = 2.0
    assert float(c[0, 0]) == 2.0 and float(a[0, 0]) != 2.0
    c[1] = [1, 2, 3]
    assert c[1].tolist() == [1.0, 2.0, 3.0]
    c[0, :2] = a[1, :2]
    assert same(c[0, :2].to_numpy(), a[1, :2].to_numpy())
    rows = list(a)
    assert len(rows) == 2 and rows[1].shape == (3,)
    with pytest.raises(TypeError, match="bfloat16 and float16"):
        c[0] = array([1, 2, 3], "fp16")
    with pytest.raises(TypeError, match="len"):
        len(a[0, 0])
    cat = concatenate([a, a[:1]], axis=0)
    assert cat.shape == (3, 3) and cat.fmt == a.fmt
    st = stack([a[0], a[1]], axis=1)
    assert st.shape == (3, 2) and same(st.to_numpy(), a.to_numpy().T)
    with pytest.raises(TypeError, match="bfloat16 and float16"):
        concatenate([a, array(a, "fp16")])
    with pytest.raises(TypeError, match="LPArrays"):
        stack([a, np.zeros((2, 3))])


def test_astype_rounds_once_with_given_rounding():
    x = lp.quantize(np.random.default_rng(0).normal(size=500) * 100, "fp32")
    a = array(x, "fp32")
    for mode in ["rne", "rtz", "rup", "rdn", "rna", "rto"]:
        b = a.astype("e4m3fn", rounding=mode)
        assert b.fmt == lp.float8_e4m3fn and b.rounding == mode
        assert np.array_equal(b.codes, lp.encode(x, "e4m3fn", rounding=mode))
    s1 = a.astype("e5m2", rounding="sr", seed=3)
    s2 = a.astype("e5m2", rounding="sr", seed=3)
    assert np.array_equal(s1.codes, s2.codes)


FORMATS = ["bf16", "fp16", "e4m3fn", "e5m2", "e2m1", "e4m3fnuz"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["rne", "rtz", "rup", "rdn"])
def test_operators_round_once_like_the_functions(fmt, mode):
    f = lp.get_format(fmt)
    rng = np.random.default_rng(1)
    v = f.values()
    v = v[~np.isnan(v)]
    x = rng.choice(v, 300)
    y = rng.choice(v, 300)
    y[:20] = 0.0
    a = array(x, f, rounding=mode, nan="zero")
    b = array(y, f, rounding=mode, nan="zero")
    kw = dict(rounding=mode, nan="zero")
    for got, fn in [(a + b, arith.add), (a - b, arith.sub), (a * b, arith.mul),
                    (a / b, arith.div), (np.maximum(a, b), arith.maximum),
                    (np.minimum(a, b), arith.minimum), (np.add(a, b), arith.add),
                    (np.subtract(a, b), arith.sub), (np.multiply(a, b), arith.mul),
                    (np.divide(a, b), arith.div)]:
        assert isinstance(got, LPArray) and got.fmt == f and got.rounding == mode
        assert same(got.to_numpy(np.float64), fn(x, y, f, **kw)), fn.__name__
    for got, fn in [(-a, arith.neg), (abs(a), arith.abs), (np.negative(a), arith.neg),
                    (np.absolute(a), arith.abs), (np.sqrt(a), arith.sqrt)]:
        assert isinstance(got, LPArray)
        assert same(got.to_numpy(np.float64), fn(x, f, **kw)), fn.__name__
    assert same((a ** 2).to_numpy(np.float64), arith.mul(x, x, f, **kw))
    assert same((a ** 0.5).to_numpy(np.float64), arith.sqrt(x, f, **kw))
    assert same(np.positive(a).to_numpy(), a.to_numpy())


def test_scalars_take_the_array_format():
    a = array([1.0, 2.0, 3.0], "bf16", rounding="rtz")
    tenth = float(lp.quantize(0.1, "bf16"))  # NEP 50: 0.1 becomes bf16(0.1) (RNE) first
    assert same((a + 0.1).to_numpy(np.float64), arith.add(a.to_numpy(np.float64), tenth,
                                                         "bf16", rounding="rtz"))
    assert same((1 - a).to_numpy(), [0.0, -1.0, -2.0])
    assert same((2 / a).to_numpy(np.float64), arith.div(2.0, a.to_numpy(np.float64), "bf16",
                                                        rounding="rtz"))
    assert same((a * np.float32(3)).to_numpy(), [3.0, 6.0, 9.0])
    assert same((np.float64(3) * a).to_numpy(), [3.0, 6.0, 9.0])
    assert same((a * np.array(3.0)).to_numpy(), [3.0, 6.0, 9.0])
    assert (a == 2).tolist() == [False, True, False]
    assert (a < 2.5).tolist() == [True, True, False]
    assert (a >= a).all() and not (a != a).any()
    assert a[0] == 1.0 and bool(a[0] == 1.0)
    assert (a == "x") is False


def test_no_silent_format_mixing():
    a = array([1.0, 2.0], "bf16")
    b = array([1.0, 2.0], "fp16")
    for op in [lambda: a + b, lambda: a * b, lambda: np.add(a, b), lambda: a < b,
               lambda: lp.add(a, b), lambda: a.dot(b)]:
        with pytest.raises(TypeError, match="bfloat16 and float16"):
            op()
    with pytest.raises(TypeError, match="numpy array of dtype float64"):
        a + np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="numpy array"):
        np.array([1.0, 2.0]) * a
    with pytest.raises(TypeError, match="not supported on LPArray"):
        np.exp(a)
    with pytest.raises(TypeError, match="not supported on LPArray"):
        np.add.reduce(a)
    with pytest.raises(TypeError, match=r"\*\* 2"):
        a ** 3
    # an explicit fmt decides: the exact sum of a bf16 and an fp16 value, rounded to fp32
    c = lp.add(array([1.0], "bf16"), array([2.0**-20], "fp16"), "fp32")
    assert isinstance(c, LPArray) and c.fmt == lp.float32 and c.item() == 1.0 + 2.0**-20
    d = a.astype("fp16") + b
    assert d.fmt == lp.float16


def test_functions_take_context_from_lparray():
    a = array([1.0], "bf16", rounding="rup")
    assert lp.add(a, 2.0**-20).item() == 1.0 + 2.0**-7
    assert lp.add(a, 2.0**-20, rounding="rne").item() == 1.0
    assert lp.sqrt(a).fmt == lp.bfloat16


def test_stochastic_context_is_reproducible():
    def program():
        a = array(np.full(2000, 1.0), "bf16", rounding="sr", seed=42)
        b = a + 2.0**-10
        c = a + 2.0**-10  # a fresh key: not a copy of b
        return b.to_numpy(), c.to_numpy()

    b1, c1 = program()
    b2, c2 = program()
    assert same(b1, b2) and same(c1, c2)
    assert not same(b1, c1)
    assert 0.08 < np.mean(b1 > 1) < 0.17


def test_display(a):
    r = repr(a)
    # every value is shown exactly (bf16(0.1) is 0.10009765625, not "0.1")
    assert r.startswith("LPArray([[0.10009765625, 1.0, -3.5],") and "fmt=bfloat16" in r
    assert "1.0002555517425873e+30" in r and "-0.0" in r and "inf" in r
    s = a.to_string(codes=True)
    assert "codes=[[0x3dcd, 0x3f80, 0xc060]" in s
    assert list(a.hex()[0]) == ["0x3dcd", "0x3f80", "0xc060"]
    h = a._repr_html_()
    assert "<table>" in h and 'title="0x3dcd"' in h and "bfloat16" in h
    e = array([0.1], "e4m3fn", rounding="sr", seed=1)
    assert "rounding='sr'" in repr(e) and "seed=1" in repr(e)
    big = array(np.zeros((30, 30)), "fp16")
    assert "<pre>" in big._repr_html_()
    assert "0x3" in array([1.5], "e2m1").to_string(codes=True)


def test_errors():
    with pytest.raises(TypeError, match="needs a format"):
        array([1.0])
    with pytest.raises(ValueError, match="unknown format"):
        array([1.0], "fp7")
    with pytest.raises(ValueError, match="rounding mode"):
        array([1.0], "bf16", rounding="up")
    with pytest.raises(TypeError, match="numbers"):
        array(["a"], "bf16")
    with pytest.raises(ValueError, match="ambiguous"):
        bool(array([1.0, 2.0], "bf16"))
    with pytest.raises(ValueError, match="no NaN"):
        array([0.0], "e2m1") / 0.0
    assert array([0.0], "e2m1", nan="zero").__truediv__(0.0).item() == 0.0
    with pytest.raises(TypeError, match="float formats"):
        array([1, 2], "int8") + 1
    with pytest.raises(TypeError):
        RoundingContext(subnormals="no")


def test_matmul_delegates_to_gemm():
    gemm = pytest.importorskip("lowprec.gemm", reason="lowprec/gemm.py (GEMM issue) missing")
    rng = np.random.default_rng(2)
    x = lp.quantize(rng.normal(size=(4, 8)), "bf16")
    y = lp.quantize(rng.normal(size=(8, 3)), "bf16")
    a, b = array(x, "bf16"), array(y, "bf16")
    c = a @ b
    assert isinstance(c, LPArray) and c.fmt == lp.bfloat16 and c.shape == (4, 3)
    ref = gemm.matmul(a, b, out="bf16")
    assert np.array_equal(c.codes, ref.codes)
    with pytest.raises(TypeError, match="bfloat16 and float16"):
        a @ array(y, "fp16")


@pytest.mark.parametrize("fmt", ["bf16", "fp16", "e5m2", "e4m3", "fp32", "fixed8_8", "e8m0"])
def test_display_is_exact(fmt):
    # issue 10: 16.25 printed as "16.2" and bf16(1.1) = 1.1015625 as "1.1"
    x = np.array([16.25, 1.1, 1.1015625, 0.1, 3e-39, -2.0 ** -20, 100.5, 7.0])
    f = lp.get_format(fmt)
    a = lp.array(x, f, overflow="saturate")
    body = a.to_string().split("[", 1)[1].split("]", 1)[0]
    shown = [float(t) for t in body.replace("\n", " ").split(",")]
    np.testing.assert_array_equal(shown, a.to_numpy(np.float64))  # NaN shows as nan
    if fmt == "bf16":
        assert "16.25" in body and "1.1015625" in body and "1.1," not in body
