"""One compiled specialisation per kernel for the layouts and flags callers pass.

A first use on a cold numba cache compiles every specialisation a call reaches (seconds
each), so the wrappers hand the kernels one array type for the same work: read-only
views of inputs (quantize), any-strides left operands through one entry point (the fp32
GEMM). These tests check the results are those of the other layouts, bit for bit, and
that no second specialisation appears.
"""

import numpy as np
import pytest

import lowprec
from lowprec._kernels import plain
from lowprec.gemm_fast import matmul_f32

pytestmark = pytest.mark.skipif(
    __import__("numba").config.DISABLE_JIT, reason="counts compiled specialisations")


@pytest.fixture(autouse=True)
def _compiled_kernels(monkeypatch):
    """These tests count compiled specialisations: no plain tier (lowprec._kernels.plain)
    before the kernels are compiled, whatever state numba's cache is in."""
    monkeypatch.setattr(plain, "ENABLED", False)


def _readonly(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y.flags.writeable = False
    return y


def _x_types(dispatcher) -> set:
    return {sig[0] for sig in dispatcher.signatures}


@pytest.mark.parametrize("fmt", ["e4m3", "bf16", "fp16"])
def test_quantize_readonly_and_writeable_share_one_kernel(fmt):
    from lowprec._kernels import convert as K

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(300) * 4).astype(np.float32)
    x[:4] = [np.inf, -0.0, 1e-40, 7e4]
    views = (_readonly(x), _readonly(x).reshape(20, 15), x[::2], np.broadcast_to(x, (2, 300)))
    for fn in (lowprec.quantize, lowprec.encode):
        for xx in views:
            got = fn(xx, fmt, overflow="saturate")
            want = fn(np.array(xx), fmt, overflow="saturate")  # writeable, C-contiguous
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    for kern in (K.quantize_f32_serial, K.encode_f32_serial):
        types = _x_types(kern)
        assert types and all(not t.mutable for t in types), types


def test_general_encode_readonly_and_writeable_share_one_kernel():
    from lowprec._kernels import convert as K

    rng = np.random.default_rng(1)
    x = rng.standard_normal(257) * 1e3  # float64: the general path, rounded from its own bits
    want = lowprec.encode(x, "e5m2", rounding="rtz")
    np.testing.assert_array_equal(lowprec.encode(_readonly(x), "e5m2", rounding="rtz"), want)
    np.testing.assert_array_equal(lowprec.encode(np.broadcast_to(x, (2, 257)), "e5m2",
                                                 rounding="rtz")[1], want)
    types = _x_types(K.encode_float_serial)
    assert types and all(not t.mutable for t in types), types


def test_fp32_gemm_one_serial_specialisation():
    from lowprec._kernels.gemm_serial import SIGNATURE, gemm_f32_serial

    before = set(gemm_f32_serial.signatures)  # other tests may call the twin directly
    rng = np.random.default_rng(2)
    a = rng.standard_normal((12, 9)).astype(np.float32)
    b = rng.standard_normal((9, 7)).astype(np.float32)
    want = lowprec.matmul(a, b)
    at = np.ascontiguousarray(a.T)
    for left in (a, at.T, _readonly(a), np.asfortranarray(a)):
        for right in (b, _readonly(b), np.asfortranarray(b)):
            np.testing.assert_array_equal(matmul_f32(left, right).view(np.uint32),
                                          want.view(np.uint32))
    # batched, with a broadcast left operand
    a3 = np.broadcast_to(a, (3, 12, 9))
    np.testing.assert_array_equal(matmul_f32(a3, np.stack([b] * 3)).view(np.uint32),
                                  np.stack([want] * 3).view(np.uint32))
    after = set(gemm_f32_serial.signatures)
    assert SIGNATURE in after and after - before <= {SIGNATURE}
