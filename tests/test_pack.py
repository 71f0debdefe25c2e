"""pack/unpack: two 4-bit codes per byte, low nibble first (torch.float4_e2m1fn_x2 layout)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lowprec.scaled import nvfp4_quantize, pack, quantize_scaled, unpack


def test_layout_low_nibble_first():
    assert pack(np.array([0x1, 0x2], np.uint8)).tolist() == [0x21]
    assert pack(np.array([0xF, 0x0, 0x3], np.uint8)).tolist() == [0x0F, 0x03]
    assert unpack(np.array([0x21, 0x03], np.uint8), 3).tolist() == [1, 2, 3]


def test_matches_pytorch_pack_uint4():
    """PyTorch's test_matmul_cuda.py / torchao's pack_uint4 build float4_e2m1fn_x2 data as
    ``data[1::2] << 4 | data[::2]``."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    c = rng.integers(0, 16, (5, 32)).astype(np.uint8)
    t = torch.from_numpy(c).reshape(-1)
    want = (t[1::2] << 4 | t[::2]).reshape(5, 16).numpy()
    np.testing.assert_array_equal(pack(c), want)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    q = nvfp4_quantize(x)
    assert pack(q.codes).shape == (4, 16)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=7),
                  elements=st.integers(0, 15)), st.data())
def test_roundtrip_any_axis_and_length(c, data):
    axis = data.draw(st.integers(-c.ndim, c.ndim - 1))
    p = pack(c, axis=axis)
    n = c.shape[axis]
    assert p.shape[axis] == (n + 1) // 2 and p.dtype == np.uint8
    np.testing.assert_array_equal(unpack(p, n, axis=axis), c)
    if n % 2:  # the padding nibble is zero
        last = np.take(p, [-1], axis=axis)
        assert (last >> 4 == 0).all()


def test_int4_codes_pack():
    x = np.linspace(-1, 1, 33).astype(np.float32)
    t = quantize_scaled(x, "int4")
    np.testing.assert_array_equal(unpack(pack(t.codes), 33), t.codes)


def test_errors():
    with pytest.raises(ValueError, match="0..15"):
        pack(np.array([16], np.uint8))
    with pytest.raises(ValueError, match="0..15"):
        pack(np.array([-1], np.int8))
    with pytest.raises(TypeError, match="integers"):
        pack(np.array([1.0]))
    with pytest.raises(ValueError, match="out of range"):
        pack(np.zeros((2, 2), np.uint8), axis=2)
    with pytest.raises(TypeError, match="uint8"):
        unpack(np.array([1], np.int32))
    with pytest.raises(ValueError, match="does not fit"):
        unpack(np.array([1, 2], np.uint8), 5)
    with pytest.raises(ValueError, match="at least one"):
        pack(np.uint8(3))
