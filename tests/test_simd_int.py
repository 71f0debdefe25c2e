"""The int32 vector operations (lowprec._kernels.simd_int): compiled LLVM code gives the bits
of their plain-Python twins, specials included."""

import numba
import numpy as np
import pytest

from lowprec._kernels import simd, simd_int as si


def _f32(n, rng):
    """float32 values of every kind: normals over the whole range, subnormals, signed
    zeros, infinities, NaNs (two payloads), powers of two."""
    with np.errstate(over="ignore"):  # some overflow to inf: wanted
        x = (rng.standard_normal(n) * 2.0 ** rng.integers(-150, 128, n)).astype(np.float32)
    sp = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 2.0 ** -126,
                   3.4028235e38, -3.4028235e38, 1.0, 0.5, -0.5], np.float32)
    x[:sp.size] = sp
    x[sp.size] = np.uint32(0xFFC00001).view(np.float32)  # a negative NaN with a payload
    x[rng.random(n) < 0.1] = 0.0
    return x


def _i32(n, rng):
    x = rng.integers(-2 ** 31, 2 ** 31, n, dtype=np.int64).astype(np.int32)
    x[:6] = (0, -1, 1, 2 ** 31 - 1, -2 ** 31, 23)
    return x


@numba.njit
def _float_ops(x, y, fo, io):
    for j in range(0, x.size, 8):
        u = simd.load8(x, j)
        v = simd.load8(y, j)
        simd.store8(fo, j, si.max8(u, v))
        si.istore8(io, j, si.bits8(u))


@numba.njit
def _int_ops(x, y, n, out):
    # out: (10 ops, size)
    for j in range(0, x.size, 8):
        u = si.iload8(x, j)
        v = si.iload8(y, j)
        si.istore8(out[0], j, si.iadd8(u, v))
        si.istore8(out[1], j, si.isub8(u, v))
        si.istore8(out[2], j, si.iand8(u, v))
        si.istore8(out[3], j, si.imax8(u, v))
        si.istore8(out[4], j, si.shl8(u, n))
        si.istore8(out[5], j, si.lshr8(u, n))
        si.istore8(out[6], j, si.iadd8(u, si.isplat8(n - 5)))
        simd.store8(out[7].view(np.float32), j, si.from_bits8(u))
        si.istore8(out[8], j, si.zip_lo8(u, v))
        si.istore8(out[9], j, si.zip_hi8(u, v))


@numba.njit
def _ftoi(x, out):
    for j in range(0, x.size, 8):
        si.istore8(out, j, si.ftoi8(simd.load8(x, j)))


def _twin_int_ops(x, y, n, out):
    for j in range(0, x.size, 8):
        u, v = si.iload8(x, j), si.iload8(y, j)
        si.istore8(out[0], j, si.iadd8(u, v))
        si.istore8(out[1], j, si.isub8(u, v))
        si.istore8(out[2], j, si.iand8(u, v))
        si.istore8(out[3], j, si.imax8(u, v))
        si.istore8(out[4], j, si.shl8(u, n))
        si.istore8(out[5], j, si.lshr8(u, n))
        si.istore8(out[6], j, si.iadd8(u, si.isplat8(n - 5)))
        simd.store8(out[7].view(np.float32), j, si.from_bits8(u))
        si.istore8(out[8], j, si.zip_lo8(u, v))
        si.istore8(out[9], j, si.zip_hi8(u, v))


@pytest.mark.parametrize("seed", range(3))
def test_float_ops_match_twins(seed):
    rng = np.random.default_rng(seed)
    x, y = _f32(4096, rng), _f32(4096, rng)
    y[:16] = x[:16][::-1]
    y[16:32] = -x[16:32]  # equal magnitudes, +0 vs -0
    fo = np.empty_like(x)
    io = np.empty(x.size, np.int32)
    _float_ops(x, y, fo, io)
    want = np.concatenate([si.max8(x[j:j + 8], y[j:j + 8]) for j in range(0, x.size, 8)])
    assert (fo.view(np.uint32) == want.view(np.uint32)).all()
    wb = np.concatenate([si.bits8(x[j:j + 8]) for j in range(0, x.size, 8)])
    assert (io == wb).all() and (io == x.view(np.int32)).all()
    # max8 is "a if a > b else b": the second operand for NaN and for equal values
    assert si.max8(np.float32([np.nan] * 8), np.float32([1.0] * 8))[0] == 1.0
    assert np.signbit(si.max8(np.float32([0.0] * 8), np.float32([-0.0] * 8))[0])


@pytest.mark.parametrize("n", [0, 1, 23, 31])
def test_int_ops_match_twins(n):
    rng = np.random.default_rng(n)
    x, y = _i32(2048, rng), _i32(2048, rng)
    got = np.zeros((10, x.size), np.int32)
    want = np.zeros((10, x.size), np.int32)
    _int_ops(x, y, n, got)
    _twin_int_ops(x, y, n, want)
    assert (got == want).all()
    # and against numpy's wrapping int64 arithmetic
    x64, y64 = x.astype(np.int64), y.astype(np.int64)
    assert (got[0] == (x64 + y64).astype(np.int32)).all()
    assert (got[1] == (x64 - y64).astype(np.int32)).all()
    assert (got[3] == np.maximum(x, y)).all()
    assert (got[4] == ((x64 << n) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)).all()
    assert (got[5] == (x.view(np.uint32) >> n).view(np.int32)).all()
    g = x.reshape(-1, 8)
    h = y.reshape(-1, 8)
    assert (got[8].reshape(-1, 4, 2)[:, :, 0] == g[:, :4]).all()
    assert (got[8].reshape(-1, 4, 2)[:, :, 1] == h[:, :4]).all()
    assert (got[9].reshape(-1, 4, 2)[:, :, 0] == g[:, 4:]).all()
    assert (got[9].reshape(-1, 4, 2)[:, :, 1] == h[:, 4:]).all()


def test_zip_with_zero_makes_float64_high_words():
    # the kernel's use: zeros zipped with high words, stored over float64 data
    hw = np.array([(1023 + e) << 20 for e in (-5, 0, 3, 100, -1000, 1000, 1, 2)], np.int32)
    out = np.empty(8, np.float64)
    _store_high_words(hw, out.view(np.int32))
    assert (out == [2.0 ** e for e in (-5, 0, 3, 100, -1000, 1000, 1, 2)]).all()
    twin = np.empty(8, np.float64)
    z = si.isplat8(0)
    si.istore8(twin.view(np.int32), 0, si.zip_lo8(z, hw))
    si.istore8(twin.view(np.int32), 8, si.zip_hi8(z, hw))
    assert (twin.view(np.int64) == out.view(np.int64)).all()


@numba.njit
def _store_high_words(hw, out32):
    z = si.isplat8(0)
    h = si.iload8(hw, 0)
    si.istore8(out32, 0, si.zip_lo8(z, h))
    si.istore8(out32, 8, si.zip_hi8(z, h))


def test_ftoi_matches_twin_in_range():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(8192) * 2.0 ** rng.integers(-150, 31, 8192)).astype(np.float32)
    top = np.float32(2147483520.0)  # the largest float32 below 2^31
    sp = np.array([0.0, -0.0, 1e-45, -1e-45, 0.5, -0.5, 0.99999994, -0.99999994, 1.5, -1.5,
                   2.5, top, -top, -2.0 ** 31, 8388607.5, -8388607.5], np.float32)
    x[:sp.size] = sp
    x = np.clip(x, -2.0 ** 31, top).astype(np.float32)
    got = np.empty(x.size, np.int32)
    _ftoi(x, got)
    want = np.concatenate([si.ftoi8(x[j:j + 8]) for j in range(0, x.size, 8)])
    assert (got == want).all()
    assert (got == np.trunc(x.astype(np.float64)).astype(np.int64)).all()


@numba.njit
def _more_int_ops(x, y, n, out, anys):
    # out: (6 ops, size); anys: one flag per vector of x
    for j in range(0, x.size, 8):
        u = si.iload8(x, j)
        v = si.iload8(y, j)
        si.istore8(out[0], j, si.ior8(u, v))
        si.istore8(out[1], j, si.ixor8(u, v))
        si.istore8(out[2], j, si.ieq8(u, v))
        si.istore8(out[3], j, si.igt8(u, v))
        si.istore8(out[4], j, si.ashr8(u, n))
        simd.store8(out[5].view(np.float32), j, si.itof8(u))
        anys[j // 8] = si.any8(si.iand8(u, v))


def _twin_more_int_ops(x, y, n, out, anys):
    for j in range(0, x.size, 8):
        u, v = si.iload8(x, j), si.iload8(y, j)
        for q, r in enumerate((si.ior8(u, v), si.ixor8(u, v), si.ieq8(u, v), si.igt8(u, v),
                               si.ashr8(u, n))):
            si.istore8(out[q], j, r)
        simd.store8(out[5].view(np.float32), j, si.itof8(u))
        anys[j // 8] = si.any8(si.iand8(u, v))


@pytest.mark.parametrize("n", [0, 1, 23, 31])
def test_more_int_ops_match_twins_and_numpy(n):
    rng = np.random.default_rng(10 + n)
    x, y = _i32(4096, rng), _i32(4096, rng)
    y[64:128] = x[64:128]  # equal lanes for ieq8 / igt8
    y[128:136] = ~x[128:136]  # a vector whose x & y is zero: any8 False
    # values whose int32 -> float32 conversion rounds (ties to even included)
    x[200:208] = (16777217, -16777217, 16777219, 2 ** 31 - 1, -2 ** 31, 33554434, 3, -3)
    got = np.zeros((6, x.size), np.int32)
    want = np.zeros((6, x.size), np.int32)
    ga, wa = np.zeros(x.size // 8, np.bool_), np.zeros(x.size // 8, np.bool_)
    _more_int_ops(x, y, n, got, ga)
    _twin_more_int_ops(x, y, n, want, wa)
    assert (got == want).all() and (ga == wa).all()
    assert (got[0] == (x | y)).all() and (got[1] == (x ^ y)).all()
    assert (got[2] == np.where(x == y, -1, 0)).all()
    assert (got[3] == np.where(x > y, -1, 0)).all()
    assert (got[4] == (x >> n)).all()
    # float64 holds every int32; its float32 rounding is RNE
    assert (got[5].view(np.float32) == x.astype(np.float64).astype(np.float32)).all()
    assert (ga == ((x & y).reshape(-1, 8) != 0).any(1)).all() and not ga[16] and ga.any()
