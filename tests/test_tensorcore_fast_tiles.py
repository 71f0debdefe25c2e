"""The fast tensor-core kernel's register tiles (4 rows x 16 columns, K in blocks): every
edge (rows not a multiple of 4 or of the task's 32, columns not a multiple of 8 or 16, K
not a multiple of the block or instruction, int32 runs shorter than a block) gives the
reference kernel's bits, on one and two threads."""

import numba
import numpy as np
import pytest

import lowprec
import lowprec.gemm as lgemm
from lowprec.hardware import select_block


def _bits(x):
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), np.uint32(0x7FC00000), x.view(np.uint32))


def _data(fmt, shape, rng, zeros=0.1):
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-3, 4, shape)
    x = np.where(rng.random(shape) < zeros, 0.0, x)
    return np.asarray(lowprec.quantize(x, fmt), np.float64)


def _fast_and_slow(monkeypatch, a, b, c, fmt, blk):
    from lowprec._kernels import tensorcore_fast as tcf

    prep = tcf.prepare(blk, lowprec.get_format(fmt).precision, lowprec.get_format(fmt).precision,
                       a[None], b[None], lowprec.get_format(fmt).emin,
                       lowprec.get_format(fmt).emin)
    assert prep is not None  # the fast kernel runs
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    fast = np.asarray(lowprec.matmul(a, b, c=c, inputs=fmt, model=blk), np.float32)
    monkeypatch.setattr(lgemm, "_TC_FAST", False)
    slow = np.asarray(lowprec.matmul(a, b, c=c, inputs=fmt, model=blk), np.float32)
    monkeypatch.setattr(lgemm, "_TC_FAST", True)
    return fast, slow, prep[4]


# (gpu, input format, changes): blocks of 32 (F = 13), of 8 (F = 24), c_mode "late" with RNE,
# and blocks of 32 with F = 25 whose int32 runs are 16 slots (sub < n: float64 totals)
CASES = [("h100", "e4m3", {}), ("a100", "bf16", {}), ("b200", "e4m3", {}),
         ("h100", "bf16", {"n": 32, "rounding": "rne"}),
         ("a100", "fp16", {"promote_every": 16, "rounding": "rup"})]
SHAPES = [(1, 1, 1), (3, 31, 7), (4, 33, 8), (5, 64, 15), (7, 70, 16), (9, 8, 17),
          (33, 100, 24), (37, 47, 33)]


@pytest.mark.parametrize("gpu,fmt,changes", CASES)
def test_tile_edges_match_reference_kernel(monkeypatch, gpu, fmt, changes):
    rng = np.random.default_rng(abs(hash((gpu, fmt, tuple(changes)))) % 2 ** 32)
    blk = select_block(gpu, fmt).with_(**changes)
    runs = set()
    for (m, k, n) in SHAPES:
        a, b = _data(fmt, (m, k), rng), _data(fmt, (k, n), rng)
        c = (rng.standard_normal((m, n)) * 4).astype(np.float32)
        c[rng.random((m, n)) < 0.2] = 0.0
        fast, slow, sub = _fast_and_slow(monkeypatch, a, b, c, fmt, blk)
        runs.add(sub < blk.n)
        assert (_bits(fast) == _bits(slow)).all(), (m, k, n)
    if changes.get("n") == 32 and fmt == "bf16":
        assert runs == {True}  # the case meant to split blocks into int32 runs does


def test_threads_and_serial_twin_agree_on_edges(monkeypatch):
    from lowprec._kernels import gemm_serial

    rng = np.random.default_rng(21)
    a, b = _data("bf16", (37, 70), rng), _data("bf16", (70, 33), rng)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        r1 = lowprec.matmul(a, b, inputs="bf16", model="a100")
        monkeypatch.setattr(gemm_serial, "SERIAL_BELOW", 0)
        r2 = lowprec.matmul(a, b, inputs="bf16", model="a100")
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        r3 = lowprec.matmul(a, b, inputs="bf16", model="a100")
    finally:
        numba.set_num_threads(old)
    assert (_bits(r1) == _bits(r2)).all() and (_bits(r1) == _bits(r3)).all()
