"""The eight-lane vectors (:mod:`lowprec._kernels.simd`) and the register-tiled float32 GEMM
built on them, against plain Python and numpy, bit for bit.

* Every vector operation compiled against its Python definition (which is what the kernels'
  plain copies and NUMBA_DISABLE_JIT run), on random values mixed with specials; masked
  loads and stores touch exactly their ``w`` lanes.
* ``gemm_f32`` (threaded) and its serial twin over shapes that cross every edge of the
  tiling: rows around multiples of 4 and 32, columns around multiples of 8 and 24, K around
  the 256-step passes, K = 0, batches, a strided left operand; fused and unfused steps;
  against the numpy twin (finite operands) and a per-element Python loop (specials).
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from lowprec._kernels import simd
from lowprec._kernels.fma import fma32
from lowprec._kernels.gemm import gemm_f32
from lowprec._kernels.gemm_numpy import gemm_f32_numpy
from lowprec._kernels.gemm_serial import gemm_f32_serial

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.0e38, -3.0e38, 1e-45, -1e-45,
                     1.2e-38, 65504.0], np.float32)


def _bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def _values(rng, n, special=True):
    x = (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 30, n)).astype(np.float32)
    if special:
        i = rng.integers(0, n, n // 4)
        x[i] = rng.choice(SPECIALS, i.size)
    return x


@njit(cache=True)
def _ops_jit(x, y, z, out):
    a = simd.load8(x, 0)
    b = simd.load8(y, 0)
    c = simd.load8(z, 0)
    simd.store8(out, 0, simd.fma8(a, b, c))
    simd.store8(out, 8, simd.mul8(a, b))
    simd.store8(out, 16, simd.add8(a, c))
    simd.store8(out, 24, simd.canon8(simd.add8(a, b)))
    simd.store8(out, 32, simd.splat8(x[3]))


def _ops_py(x, y, z, out):
    a, b, c = simd.load8(x, 0), simd.load8(y, 0), simd.load8(z, 0)
    out[0:8] = simd.fma8(a, b, c)
    out[8:16] = simd.mul8(a, b)
    out[16:24] = simd.add8(a, c)
    out[24:32] = simd.canon8(simd.add8(a, b))
    out[32:40] = simd.splat8(x[3])


def _nan_as_one(x):
    return np.where(np.isnan(x), np.uint32(0x7FC00000), _bits(x))


def test_vector_ops_match_python():
    rng = np.random.default_rng(1)
    for _ in range(300):
        x, y, z = (_values(rng, 8) for _ in range(3))
        got, want = np.empty(40, np.float32), np.empty(40, np.float32)
        _ops_jit(x, y, z, got)
        _ops_py(x, y, z, want)
        # NaN operands: which one an instruction passes on is the CPU's (and LLVM's) choice;
        # canon8 (lanes 24..31) and every other bit are compared exactly
        np.testing.assert_array_equal(_nan_as_one(got), _nan_as_one(want))
        np.testing.assert_array_equal(_bits(got[24:32]), _bits(want[24:32]))
        assert not (np.isnan(got[24:32]) & (_bits(got[24:32]) != 0x7FC00000)).any()
    # the fused lanes are one rounding: a case where rounding the product first differs
    a, b, c = np.float32(1 + 2 ** -12), np.float32(1 + 2 ** -12), np.float32(-1)
    assert fma32(a, b, c) != np.float32(a * b) + c
    got = np.empty(40, np.float32)
    _ops_jit(np.full(8, a), np.full(8, b), np.full(8, c), got)
    assert (got[:8] == fma32(a, b, c)).all()


@njit(cache=True)
def _masked_jit(x, out, j, w):
    simd.store8_m(out, j, simd.load8_m(x, j, w), w)


@pytest.mark.parametrize("w", range(9))
def test_masked_lanes(w):
    x = np.arange(1, 21, dtype=np.float32)
    for j in (0, 5, 12):  # the last rows end at x[19]: lanes past w are never touched
        got = np.full(20, -1, np.float32)
        _masked_jit(x[: j + w], got, j, w)
        want = np.full(20, -1, np.float32)
        simd.store8_m(want, j, simd.load8_m(x, j, w), w)
        np.testing.assert_array_equal(got, want)
        assert (got[j:j + w] == x[j:j + w]).all() and (np.delete(got, range(j, j + w)) == -1).all()
    v = simd.load8_m(x, 0, w)
    assert (v[w:] == 0).all() and not np.signbit(v[w:]).any()


def test_loads_need_c_contiguous_float32():
    from numba.core.errors import TypingError

    with pytest.raises(TypingError, match="C-contiguous float32"):
        _masked_jit(np.arange(16, dtype=np.float64), np.zeros(16), 0, 8)


def _run(kernel, a, b, c, fused):
    out = np.full(c.shape, np.float32(7), np.float32)
    kernel(a, b, c, fused, out)
    return out


def _python_gemm(a, b, c, fused):
    """Every element's chain in Python scalars: d = c; d = step(d, a, b) for each k."""
    out = np.empty(c.shape, np.float32)
    with np.errstate(all="ignore"):
        for idx in np.ndindex(*c.shape):
            bi, i, j = idx
            d = np.float32(c[idx])
            for k in range(a.shape[2]):
                d = fma32(a[bi, i, k], b[bi, k, j], d) if fused \
                    else np.float32(d + np.float32(a[bi, i, k] * b[bi, k, j]))
            out[idx] = np.float32(np.nan) if np.isnan(d) else d
    return out


SHAPES = [(1, 1, 1), (3, 7, 8), (4, 5, 24), (5, 9, 25), (33, 3, 47), (36, 17, 49),
          (4, 0, 30), (7, 255, 23), (6, 256, 24), (5, 257, 26), (9, 600, 50), (64, 40, 72)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("kernel", [gemm_f32, gemm_f32_serial], ids=["threaded", "serial"])
def test_tiles_match_numpy_twin(m, k, n, kernel):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    for batch in (1, 2):
        a = _values(rng, batch * m * k, False).reshape(batch, m, k)
        b = _values(rng, batch * k * n, False).reshape(batch, k, n)
        c = _values(rng, batch * m * n, False).reshape(batch, m, n)
        # a strided left operand (a transposed copy seen through its transpose)
        at = np.ascontiguousarray(a.swapaxes(1, 2)).swapaxes(1, 2)
        for fused in (True, False):
            want = np.empty(c.shape, np.float32)
            assert gemm_f32_numpy(a, b, c, fused, want)
            np.testing.assert_array_equal(_bits(_run(kernel, a, b, c, fused)), _bits(want))
            np.testing.assert_array_equal(_bits(_run(kernel, at, b, c, fused)), _bits(want))


@pytest.mark.parametrize("m,k,n", [(5, 9, 25), (3, 7, 8), (6, 30, 24), (2, 260, 3)])
def test_specials_match_python(m, k, n):
    rng = np.random.default_rng(k)
    a = _values(rng, 2 * m * k).reshape(2, m, k)
    b = _values(rng, 2 * k * n).reshape(2, k, n)
    c = _values(rng, 2 * m * n).reshape(2, m, n)
    for fused in (True, False):
        want = _bits(_python_gemm(a, b, c, fused))
        for kernel in (gemm_f32, gemm_f32_serial):
            np.testing.assert_array_equal(_bits(_run(kernel, a, b, c, fused)), want)


def test_overflow_nan_written_as_canonical():
    # finite operands: unfused, the products overflow to +inf and -inf and their sum is
    # the CPU's default NaN (sign bit set on x86); the numpy twin and the kernel both write
    # 0x7FC00000. Fused, the exact product meets the overflowed sum: +inf.
    a = np.array([[[3e38, 3e38, -3e38, -3e38, -3e38]]], np.float32)
    b = np.full((1, 5, 1), 2, np.float32)
    c = np.zeros((1, 1, 1), np.float32)
    for fused, expect in ((False, 0x7FC00000), (True, 0x7F800000)):
        want = np.empty_like(c)
        assert gemm_f32_numpy(a, b, c, fused, want)
        got = _run(gemm_f32_serial, a, b, c, fused)
        assert _bits(got)[0, 0, 0] == expect
        np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 128, 128), (2, 13, 21), (3, 1, 9),
                                   (1, 17, 8), (2, 8, 30), (1, 0, 5)])
def test_transpose_kernel(shape):
    from lowprec._kernels import plain, transpose

    rng = np.random.default_rng(sum(shape))
    x = _values(rng, int(np.prod(shape)) or 1)[: int(np.prod(shape))].reshape(shape)
    want = np.ascontiguousarray(x.swapaxes(1, 2))
    for run in (transpose.ENTRY.compiled(), plain.copy_of(transpose.transpose_f32),
                transpose.transpose_f32):
        out = np.full(want.shape, 7, np.float32)
        run(x, out)
        np.testing.assert_array_equal(_bits(out), _bits(want))  # a copy: every bit, NaNs too


def test_transposed_operands_use_the_kernel():
    # gemm_fast copies a transposed C array with the block kernel, other views with numpy
    from lowprec import gemm_fast

    rng = np.random.default_rng(3)
    w = _values(rng, 40 * 24, False).reshape(1, 40, 24)
    got = gemm_fast._c3(w.swapaxes(1, 2))
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(_bits(got), _bits(w.swapaxes(1, 2)))
    v = w[:, ::2, :].swapaxes(1, 2)  # not the transpose of a C array
    np.testing.assert_array_equal(_bits(gemm_fast._c3(v)), _bits(v))
