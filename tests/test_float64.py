"""float64 inputs are rounded from their own bits: double-rounding traps, and agreement with
MPFR (gmpy2, subnormalize=True) in every IEEE-defined mode for the IEEE-layout formats."""

import gmpy2
import numpy as np
import pytest

import lowprec as lp
from lowprec.testing import assert_bitwise_equal, finite_values_array

MPFR_MODES = {"rne": gmpy2.RoundToNearest, "rtz": gmpy2.RoundToZero,
              "rup": gmpy2.RoundUp, "rdn": gmpy2.RoundDown}
IEEE_FORMATS = ["float16", "bfloat16", "float8_e5m2", "float8_e4m3", "float8_e3m4",
                "tfloat32", "float32"]


def mpfr_round(x: float, fmt, mode: str) -> float:
    f = lp.get_format(fmt)
    p = f.precision
    ctx = gmpy2.context(precision=p, emin=f.emin - p + 2, emax=f.emax + 1,
                        subnormalize=True, round=MPFR_MODES[mode])
    with gmpy2.context(ctx):
        return float(gmpy2.mpfr(x))


def test_documented_double_rounding_trap():
    x = 1 + 2.0 ** -8 + 2.0 ** -40  # just above the bf16 tie at 1 + 2^-8
    assert lp.quantize(np.float64(x), "bf16") == 1.0078125
    assert lp.quantize(np.float32(x), "bf16") == 1.0  # the float32 detour lands on the tie
    assert lp.quantize(np.float64(1 + 2.0 ** -11 + 2.0 ** -50), "fp16") == 1 + 2.0 ** -10


def _trap_inputs(name):
    """Values just off every tie of the format, by less than float32 can express."""
    f = lp.get_format(name)
    if f.bits <= 16:
        g = finite_values_array(f)
    else:
        rng = np.random.default_rng(2)
        codes = rng.integers(0, 1 << (f.bits - 1), 3000).astype(np.uint32)
        g = np.unique(lp.decode(codes, f, dtype=np.float64))
        g = g[np.isfinite(g)]
    g = g[g >= 0]
    mids = (g[:-1] + g[1:]) / 2
    gaps = g[1:] - g[:-1]
    offs = np.concatenate([mids + gaps * 2.0 ** -30, mids - gaps * 2.0 ** -30,
                           mids + gaps * 2.0 ** -45, mids, g])
    offs = offs[np.isfinite(offs)]
    return np.concatenate([offs, -offs])


@pytest.mark.parametrize("name", IEEE_FORMATS)
@pytest.mark.parametrize("mode", list(MPFR_MODES))
def test_against_mpfr(name, mode):
    x = _trap_inputs(name)
    rng = np.random.default_rng(0)
    if x.size > 3000:
        x = x[rng.choice(x.size, 3000, replace=False)]
    extra = rng.standard_normal(1000) * np.exp2(rng.integers(-200, 200, 1000))
    x = np.concatenate([x, extra])
    exp = np.array([mpfr_round(float(v), name, mode) for v in x])
    got = lp.quantize(x, name, rounding=mode)
    assert_bitwise_equal(got, exp, err_msg=f"{name} {mode}", inputs=x)


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e4m3fnuz", "float6_e2m3fn",
                                  "float4_e2m1fn", "float8_e5m2fnuz"])
def test_non_ieee_formats_float64_traps_against_reference(name):
    from lowprec.reference import encode_exact

    x = _trap_inputs(name)
    f = lp.get_format(name)
    for mode in ("rne", "rna", "rtz", "rup", "rdn", "rto"):
        exp = np.array([encode_exact(float(v), f, rounding=mode) for v in x])
        assert_bitwise_equal(lp.encode(x, f, rounding=mode).astype(np.int64), exp,
                             err_msg=f"{name} {mode}", inputs=x)
