"""How to reproduce each ecosystem's casts (the table in README.md and docs/conversion.md),
each claim checked against the real library where it is installed."""

import ml_dtypes
import numpy as np
import pytest
from packaging.version import Version

import lowprec as lp
from lowprec.testing import assert_bitwise_equal, finite_values_array

from .conftest import ML_DTYPES_FORMATS, SMALL_FLOAT_FORMATS, ml_dtype
from .test_encode_rne import ML_DTYPES, ml_dtypes_e8m0_deviation, tricky_float32

# ml_dtypes 0.7.0 rounds float64 inputs directly into every format; up to 0.6 it converted
# them to float32 first (double rounding)
FLOAT64_DIRECT = Version("0.7.0")

TABLE_INPUTS = np.array([448, 464, 465, 1e9, np.inf, -np.inf, np.nan, 61440, 2.0 ** -10,
                         -465, 57344, 1e30], np.float32)


def _nan_as_nan(codes, fmt):
    return np.where(np.isnan(lp.decode(codes, fmt)), -1, codes.astype(np.int64))


@pytest.mark.parametrize("name", SMALL_FLOAT_FORMATS)
def test_ml_dtypes_astype_is_the_default(name):
    f = lp.get_format(name)
    x = np.concatenate([TABLE_INPUTS, tricky_float32(name)])
    with np.errstate(all="ignore"):
        exp = x.astype(ml_dtype(name)).view(f.code_dtype)
    kw = {} if f.has_nan else {"nan": "ml_dtypes"}
    got = lp.encode(x, f, **kw)
    keep = ~ml_dtypes_e8m0_deviation(name, x)
    assert_bitwise_equal(_nan_as_nan(got, f)[keep], _nan_as_nan(exp, f)[keep], inputs=x[keep])


def test_reference_table_values():
    # REFERENCE.md sec. 3 for ml_dtypes / lowprec's default
    c = lp.encode(TABLE_INPUTS[:9], "e4m3fn")
    assert c.tolist() == [0x7E, 0x7E, 0x7F, 0x7F, 0x7F, 0xFF, 0x7F, 0x7F, 0x00]
    assert lp.encode(np.float32([np.inf, np.nan, 61440]), "e5m2").tolist() == [0x7C, 0x7E, 0x7C]
    # CUDA __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3): finite overflow and inf -> max,
    # NaN -> 0x7F (NVIDIA cuda_fp8.h documentation); lowprec: overflow="saturate"
    s = lp.encode(TABLE_INPUTS[:9], "e4m3fn", overflow="saturate")
    assert s.tolist() == [0x7E, 0x7E, 0x7E, 0x7E, 0x7E, 0xFE, 0x7F, 0x7E, 0x00]
    s5 = lp.encode(np.float32([61440, np.inf, -1e9, np.nan]), "e5m2", overflow="saturate")
    assert s5.tolist() == [0x7B, 0x7B, 0xFB, 0x7E]


def _double_rounding_traps(name):
    """float64 inputs on which rounding through float32 first changes the result: the
    format's midpoints nudged by less than half a float32 ulp, and their float64 neighbours."""
    g = finite_values_array(name)
    mids = (g[:-1] + g[1:]) / 2
    mids = mids[mids != 0]
    x = np.concatenate([mids * (1 + 2.0 ** -30), mids * (1 - 2.0 ** -30),
                        np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf), mids])
    return np.concatenate([x, -x])


def test_float64_inputs_in_ml_dtypes():
    # lowprec rounds float64 from its own bits; quantize(x.astype(float32)) rounds twice
    x = np.array([1 + 2.0 ** -8 + 2.0 ** -40])
    assert lp.quantize(x, "bf16")[0] == 1.0078125
    assert lp.quantize(x.astype(np.float32), "bf16")[0] == 1.0
    got = x.astype(ml_dtypes.bfloat16).astype(np.float64)[0]
    if ML_DTYPES < FLOAT64_DIRECT:
        assert got == 1.0, f"ml_dtypes {ML_DTYPES} was expected to round float64 via float32"
    else:
        assert got == 1.0078125, f"ml_dtypes {ML_DTYPES} was expected to round float64 directly"


@pytest.mark.parametrize("name", ML_DTYPES_FORMATS)
def test_ml_dtypes_float64_casts(name):
    # up to 0.6: ml_dtypes == lowprec on x.astype(float32); from 0.7: == lowprec on x
    f = lp.get_format(name)
    x = _double_rounding_traps(name)
    via32 = x.astype(np.float32)
    kw = {} if f.has_nan else {"nan": "ml_dtypes"}
    assert (lp.encode(x, f, **kw) != lp.encode(via32, f, **kw)).any()  # the traps bite
    with np.errstate(all="ignore"):
        exp = x.astype(ml_dtype(name)).view(f.code_dtype)
    if ML_DTYPES < FLOAT64_DIRECT:
        got, keep = lp.encode(via32, f, **kw), ~ml_dtypes_e8m0_deviation(name, via32)
    else:
        got, keep = lp.encode(x, f, **kw), np.ones(x.shape, bool)
    assert_bitwise_equal(_nan_as_nan(got, f)[keep], _nan_as_nan(exp, f)[keep], inputs=x[keep],
                         err_msg=f"ml_dtypes {ML_DTYPES}, float64 -> {name}:")


class TestTorch:
    torch = pytest.importorskip("torch")

    @pytest.mark.parametrize("name,overflow", [("float8_e4m3fn", "saturate"),
                                               ("float8_e5m2", "inf"),
                                               ("float8_e4m3fnuz", "inf"),
                                               ("float8_e5m2fnuz", "inf"),
                                               ("bfloat16", "inf"), ("float16", "inf")])
    def test_torch_to(self, name, overflow):
        torch = self.torch
        f = lp.get_format(name)
        x = np.concatenate([TABLE_INPUTS, tricky_float32(name)])
        tdt = getattr(torch, name)
        t = torch.from_numpy(x).to(tdt)
        view = {1: torch.uint8, 2: torch.int16}[f.code_dtype.itemsize]
        exp = t.view(view).numpy().view(f.code_dtype)
        got = lp.encode(x, f, overflow=overflow)
        assert_bitwise_equal(_nan_as_nan(got, f), _nan_as_nan(exp, f), inputs=x)

    def test_torch_e8m0(self):
        torch = self.torch
        pats = np.arange(0x00800000, 0x7F800000, 1021, dtype=np.uint32)  # positive normals
        x = pats.view(np.float32)
        exp = torch.from_numpy(x).to(torch.float8_e8m0fnu).view(torch.uint8).numpy()
        assert_bitwise_equal(lp.encode(x, "e8m0"), exp, inputs=x)
        # documented differences: torch maps 0 to 2^-127 and drops the sign; lowprec (like
        # ml_dtypes) gives NaN, since E8M0 has neither zero nor negative values
        odd = np.float32([0.0, -1.0, -4.0])
        t = torch.from_numpy(odd).to(torch.float8_e8m0fnu).view(torch.uint8).numpy()
        assert t.tolist() == [0, 127, 129]
        assert lp.encode(odd, "e8m0").tolist() == [255, 255, 255]
        assert lp.encode(np.abs(odd[1:]), "e8m0").tolist() == [127, 129]

    def test_torch_float64_inputs_go_through_float32(self):
        torch = self.torch
        x = np.array([1 + 2.0 ** -8 + 2.0 ** -40, 1 + 2.0 ** -4 + 2.0 ** -40])
        for name in ("bfloat16", "float8_e4m3fn"):
            t = torch.from_numpy(x).to(getattr(torch, name)).to(torch.float64).numpy()
            assert_bitwise_equal(t, lp.quantize(x.astype(np.float32), name).astype(np.float64))
            assert not np.array_equal(t, lp.quantize(x, name))
