"""The fast pass of the arithmetic kernels (lowprec._kernels.arith.fast_array) against the
scalar kernels it replaces, bit for bit: every operation, format, rounding mode (stochastic
included, exact and with r random bits), overflow policy, FTZ/DAZ, on random operands mixed
with specials, subnormals, ties, huge exponent gaps and overflowing results; and stochastic
rounding independent of the thread count and of the chunking."""

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

import lowprec as lp
from lowprec.ids import BINARY_OPS, UNARY_OPS
from lowprec.quantize import format_tuple, resolve_options, seed_key

FORMATS = ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
           "float8_e5m2fnuz", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn", "tfloat32",
           "float32", "float8_e4m3", "float8_e3m4"]
MODES = ["rne", "rna", "rtz", "rup", "rdn", "sr"]
OPS = ["add", "sub", "mul", "div", "fma", "sqrt", "neg", "abs"]


def _grid(fmt, n, rng):
    """Values of fmt (random codes, NaN/inf codes included) as float32."""
    f = lp.get_format(fmt)
    codes = rng.integers(0, 1 << f.bits, n)
    return lp.decode(codes.astype(f.code_dtype), f, np.float32)


def operands(fmt, n, rng):
    """A mix: format values, their negatives, random float32 values over a wide exponent
    range (exponent gaps beyond 2^29), exact small integers (ties, exact results),
    specials, float32 subnormals."""
    f = lp.get_format(fmt)
    parts = [
        _grid(fmt, n, rng),
        (rng.standard_normal(n) * np.exp2(rng.integers(-40, 40, n))).astype(np.float32),
        rng.integers(-64, 65, n).astype(np.float32) * np.float32(0.25),
        rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, f.max, -f.max,
                             f.min_subnormal, f.min_normal, 1e-45, -1e-45, 2.0 ** -149,
                             3.0e38, 1.0 + 2.0 ** -20], np.float32), n),
        # NaNs with the largest payloads: rounding their bits can carry into the sign
        np.array([0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00001], np.uint32).view(np.float32),
    ]
    x = np.concatenate(parts)
    return x[rng.permutation(x.size)]


def _scalar(op, args, f, opts, daz):
    """The scalar kernels (the path before the fast pass) on float64 operands."""
    from lowprec._kernels import arith as K

    vals = [np.asarray(a, np.float64) for a in args]
    out = np.empty(vals[0].size, np.float64)
    rest = (format_tuple(f), opts.rounding.id, opts.overflow.id, opts.ftz, daz, opts.key,
            opts.sr_bits, out)
    if op in BINARY_OPS:
        K.binary_array(BINARY_OPS[op], vals[0], vals[1], *rest)
    elif op == "fma":
        K.fma_array(vals[0], vals[1], vals[2], *rest)
    else:
        K.unary_array(UNARY_OPS[op], vals[0], *rest)
    return out


def _fast(op, args, f, opts, daz, parallel=True, dtype=np.float32):
    from lowprec._kernels import arith as K

    fp = format_tuple(f)
    assert K.fast_applies(fp, opts.rounding.id)
    if op in BINARY_OPS:
        kind, code = K.KIND_BINARY, BINARY_OPS[op]
    elif op == "fma":
        kind, code = K.KIND_FMA, 0
    else:
        kind, code = K.KIND_UNARY, UNARY_OPS[op]
    ops = [np.ascontiguousarray(a, dtype) for a in args]
    ops += [ops[0]] * (3 - len(ops))
    out = np.empty(ops[0].size, np.float64)
    kern = K.fast_array if parallel else K.fast_serial
    kern(kind, code, ops[0], ops[1], ops[2], fp, opts.rounding.id, opts.overflow.id, opts.ftz,
         daz, opts.key, opts.sr_bits, out)
    return out


def _bits(x):
    a = np.asarray(x, np.float64).copy()
    a[np.isnan(a)] = np.nan
    return a.view(np.uint64)


def _check(got, want, msg):
    bad = np.flatnonzero(_bits(got) != _bits(want))
    assert bad.size == 0, f"{msg}: {bad.size} mismatches, first at {bad[0]}: got " \
                          f"{got[bad[0]]!r}, expected {want[bad[0]]!r}"


def _nargs(op):
    return 3 if op == "fma" else (1 if op in UNARY_OPS else 2)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", MODES)
def test_fast_pass_matches_scalar_kernels(fmt, mode):
    rng = np.random.default_rng(abs(hash((fmt, mode))) % 2**32)
    f = lp.get_format(fmt)
    for op in OPS:
        configs = [("inf", True, False, None), ("saturate", False, True, 8),
                   ("inf", True, True, 40)]
        if mode == "sr":  # DAZ with exact stochastic rounding
            configs.append(("saturate", True, True, None))
        for overflow, subnormals, daz, sr_bits in configs:
            opts = resolve_options(f, mode, overflow, subnormals,
                                   sr_bits if mode == "sr" else None, 12345, "zero")
            args = [operands(fmt, 300, rng) for _ in range(_nargs(op))]
            if op == "sqrt":
                args = [np.abs(args[0])]
            want = _scalar(op, args, f, opts, daz)
            for parallel in (True, False):
                got = _fast(op, args, f, opts, daz, parallel)
                _check(got, want, f"{fmt} {mode} {op} {overflow} ftz={not subnormals} "
                                  f"daz={daz} sr_bits={sr_bits} parallel={parallel}")
            got = _fast(op, args, f, opts, daz, dtype=np.float64)
            _check(got, want, f"{fmt} {mode} {op} float64 operands")


@pytest.mark.parametrize("op", OPS)
def test_public_api_matches_scalar_kernels_and_reference(op):
    """lowprec's public functions (which take the fast pass) against the scalar kernels and,
    on a slice, the exact Fraction reference."""
    from lowprec.reference.arith import apply

    rng = np.random.default_rng(7)
    for fmt, mode in [("bfloat16", "rne"), ("float8_e4m3fn", "rtz"), ("float16", "sr"),
                      ("float8_e5m2", "rup")]:
        f = lp.get_format(fmt)
        args = [operands(fmt, 20000, rng) for _ in range(_nargs(op))]  # parallel kernels
        if op == "sqrt":
            args = [np.abs(args[0])]
        got = getattr(lp, op)(*args, fmt, rounding=mode, seed=5)
        assert got.dtype == np.float32
        opts = resolve_options(f, mode, None, True, None, 5, "raise")
        _check(got.astype(np.float64), _scalar(op, args, f, opts, False), f"{op} {fmt} {mode}")
        for i in range(0, 20000, 997):
            want = apply(op, [float(a[i]) for a in args], f, rounding=mode,
                         key=int(seed_key(5)), idx=i)
            _check(np.array([got[i]], np.float64), np.array([want], np.float64),
                   f"{op} {fmt} {mode} element {i} vs reference")


def test_sr_independent_of_threads_and_chunking():
    import numba

    rng = np.random.default_rng(3)
    x = operands("bfloat16", 30000, rng)
    y = operands("bfloat16", 30000, rng)
    old = numba.get_num_threads()
    try:
        res = []
        for th in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(th)
            for sr_bits in (None, 12):
                res.append(lp.add(x, y, "bf16", rounding="sr", seed=9, sr_bits=sr_bits))
                res.append(lp.div(x, y, "e4m3fn", rounding="sr", seed=9, sr_bits=sr_bits,
                                  overflow="saturate"))
    finally:
        numba.set_num_threads(old)
    n = len(res) // 2
    for a, b in zip(res[:n], res[n:]):
        _check(a.astype(np.float64), b.astype(np.float64), "1 vs 2 threads")
    # chunking: element i's result does not depend on where the array starts
    whole = lp.mul(x, y, "e5m2", rounding="sr", seed=4)
    opts = resolve_options(lp.get_format("e5m2"), "sr", None, True, None, 4, "raise")
    ref = _scalar("mul", [x, y], lp.get_format("e5m2"), opts, False)
    _check(whole.astype(np.float64), ref, "whole array vs scalar kernels")


def test_tail_boundaries_take_the_exact_path():
    """Inexact float64 results that lie on a midpoint or on the grid: the tail decides."""
    one = np.float32(1.0)
    tiny = np.float32(2.0 ** -40)
    x = np.full(8, one)
    y = np.array([tiny, -tiny, 2.0 ** -9 + 2.0 ** -40, -(2.0 ** -9) - 2.0 ** -40,
                  2.0 ** -9, -(2.0 ** -9), 2.0 ** -60, -(2.0 ** -60)], np.float32)
    f = lp.get_format("bf16")
    for mode in MODES:
        for sr_bits in (None, 5, 60):
            opts = resolve_options(f, mode, None, True, sr_bits if mode == "sr" else None, 1,
                                   "raise")
            _check(_fast("add", [x, y], f, opts, False), _scalar("add", [x, y], f, opts,
                                                                  False), f"add {mode}")
    # division and square root with results just off a midpoint
    a = np.array([1.0, 3.0, 2.0, 10.0, 1.0 + 2 ** -7], np.float32)
    b = np.array([3.0, 7.0, 1.0 + 2 ** -23, 3.0, 1.0 - 2 ** -24], np.float32)
    for mode in MODES:
        opts = resolve_options(f, mode, None, True, None, 2, "raise")
        _check(_fast("div", [a, b], f, opts, False), _scalar("div", [a, b], f, opts, False),
               f"div {mode}")
        _check(_fast("sqrt", [a], f, opts, False), _scalar("sqrt", [a], f, opts, False),
               f"sqrt {mode}")


@pytest.mark.parametrize("fmt", ["bfloat16", "float16", "float8_e4m3fn", "tfloat32"])
def test_div_sqrt_near_boundaries(fmt):
    """The fast pass rounds the float64 quotient/root without its remainder in
    deterministic modes and exact SR (a float32 quotient or root is never within half a
    float64 ulp of a boundary it is not equal to): operands built to land next to
    midpoints and grid points of fmt, checked against the scalar kernels."""
    rng = np.random.default_rng(11)
    f = lp.get_format(fmt)
    n = 4000
    # boundaries: grid points and midpoints of fmt (one more significant bit) in [1, 2)
    m = int(f.man_bits) + 1
    bnd = 1.0 + rng.integers(0, 1 << m, n) / float(1 << m)
    bnd = bnd * np.exp2(rng.integers(-4, 5, n))
    y = (rng.uniform(1.0, 2.0, n) * np.exp2(rng.integers(-6, 6, n))).astype(np.float32)
    x = (bnd * y.astype(np.float64)).astype(np.float32)  # x / y next to (or on) bnd
    sq = (bnd * bnd).astype(np.float32)  # sqrt(sq) next to (or on) bnd
    x[::7] = (bnd[::7] * y[::7]).astype(np.float32)  # some exact, via small integers
    for mode in MODES:
        for sr_bits in ((None, 3, 20) if mode == "sr" else (None,)):
            opts = resolve_options(f, mode, "saturate", True, sr_bits, 6, "zero")
            _check(_fast("div", [x, y], f, opts, False),
                   _scalar("div", [x, y], f, opts, False), f"div {fmt} {mode} {sr_bits}")
            _check(_fast("sqrt", [sq], f, opts, False), _scalar("sqrt", [sq], f, opts, False),
                   f"sqrt {fmt} {mode} {sr_bits}")


def test_inlined_random_stream_matches_rand64():
    """The inlined stream of the fast pass (random.word_base, counter, rand64_at,
    mix64_inline, stepped by STEP) is rand64 bit for bit."""
    from numba import njit

    from lowprec._kernels import random as R

    @njit
    def both(key, word, start, n):
        a = np.empty(n, np.uint64)
        b = np.empty(n, np.uint64)
        c = np.empty(n, np.uint64)
        base = R.word_base(key, word)
        z = R.counter(base, start)
        for j in range(n):
            a[j] = R.rand64(key, start + j, word)
            b[j] = R.rand64_at(base, start + j)
            c[j] = R.mix64_inline(z)
            z += R.STEP
        return a, b, c

    rng = np.random.default_rng(5)
    for _ in range(5):
        key = np.uint64(rng.integers(0, 2**63, dtype=np.uint64)) | np.uint64(1 << 63)
        a, b, c = both(key, int(rng.integers(0, 3)), int(rng.integers(0, 2**40)), 1000)
        assert (a == b).all() and (a == c).all()
        assert np.unique(a).size == a.size  # not a constant stream
