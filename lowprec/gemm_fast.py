"""A lean float32 GEMM for callers that already hold float32 arrays: :func:`matmul_f32`.

:func:`lowprec.matmul` accepts anything (LPArrays, float64, integers, every accumulator and
model) and pays for it on every call: operands go float32 -> float64 -> float32, shapes
are broadcast and copied, formats are resolved. A training step under an fp32 policy makes
eight small GEMMs per MLP step, and that dispatch cost several times the arithmetic.
:func:`matmul_f32` takes float32 arrays only and calls the same compiled kernel
(:func:`lowprec._kernels.gemm.gemm_f32`: sequential in k, one float32 fused multiply-add per
step) with no conversion, so its results are bit for bit those of
``lowprec.matmul(a, b, c=c, fma=fused)`` with the default fp32 accumulator and RNE.

Orientation: every output element is the same chain d = c; d = fma(a[i,k], b[k,j], d),
k = 0..K-1, whether the kernel computes C or C^T = B^T A^T (the product a*b is exact
inside the fma, and rounded the same either way without it, so the order of the two
factors cannot change a bit). The kernel vectorises along its output's columns, so a
skinny output (N = 10 logits) runs much faster transposed; :func:`matmul_f32` picks the
orientation with the smaller estimated cost, counting the copies a strided operand needs.

Layouts and threads (none of which changes a bit): products smaller than :data:`SMALL`
multiply-adds run the kernel's serial twin through one compiled entry point
(:func:`lowprec._kernels.gemm_serial.serial_entry`: cheaper to compile than the threaded
kernel, and one specialisation for every layout, so a first use compiles it once); its
left operand may be any strided view (it is read one element at a time: a transposed
activation costs no copy). The right operand, read in vectors, is copied to rows: the
transpose of a row-major array by an 8 x 8-block kernel, other views by numpy. Bigger
products run the threaded kernel on C-contiguous operands.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["matmul_f32"]

_F32 = np.dtype(np.float32)
_KERNEL: list = []  # the compiled kernel, imported at the first call (no numba at import)
_PLANS: dict = {}   # operand layouts -> (flip, batch size, m, n, result shape)
_ZEROS: dict = {}   # shape -> zero addend


#: Products with fewer multiply-adds than this run the serial kernel: waking the other
#: threads costs more than they save (the study trains on one thread for the same reason).
#: The results do not depend on it (threads split independent outputs).
SMALL = 1 << 20
_PLAN_ZEROS = 1 << 16  # outputs up to this many elements keep their zero addend in the plan


def _kernel():
    if not _KERNEL:
        import numba
        from numba.np.ufunc import parallel

        from ._kernels.gemm import gemm_f32
        from ._kernels.gemm_serial import compiled_entry, serial_entry, serial_small
        from ._kernels.transpose import ENTRY as transpose

        numba.get_num_threads()  # starts the threading layer once
        # numba's public getter takes a lock to check that the threading layer has started
        # (some microseconds, as much as a small GEMM); once it has, the layer's own entry
        # point is a plain C call. The public one is the fallback.
        get = getattr(parallel, "_get_num_threads", None)
        try:
            ok = callable(get) and get() == numba.get_num_threads()
        except Exception:  # noqa: BLE001 - any trouble: the public API
            ok = False
        if not ok:
            get = numba.get_num_threads
        # the serial entry point is compiled at the first small product that needs it
        # (before that, small products may run on numpy: gemm_serial.serial_small)
        _KERNEL.extend((gemm_f32, get, compiled_entry(), serial_small, serial_entry,
                        compiled_entry, transpose.get))
    return _KERNEL[0]


def _run(a, b, c, fused, out) -> None:
    """gemm_f32(a, b, c, fused, out) for a left operand ``a`` of any strides: the serial
    twin's entry point when the product is small (or numba runs one thread), which reads
    ``a`` as it is; otherwise the threaded kernel, on a C-contiguous copy of ``a``."""
    if a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2] < SMALL:
        entry = _KERNEL[2]
        if entry is not None:
            entry(a, b, c, fused, out)
        else:
            _KERNEL[3](a, b, c, fused, out)
            _KERNEL[2] = _KERNEL[5]()
        return
    gemm_f32, get_threads = _KERNEL[0], _KERNEL[1]
    if get_threads() == 1:
        _KERNEL[4]()(a, b, c, fused, out)
    else:
        gemm_f32(_c3(a), b, c, fused, out)


def _cost(m: int, k: int, n: int) -> int:
    """Estimated nanoseconds of the kernel for an (m, k) @ (k, n) product: it takes tiles
    of 4 rows by 24 columns (a narrower last tile costs as much), each step of k about
    3 ns (twelve vector FMAs and the loads), with about 30 ns a tile to load and store
    its sums (measured on the MLP's shapes, 2-core AVX2 machine)."""
    return ((m + 3) // 4) * ((n + 23) // 24) * (3 * k + 30)


def _copy(size: int, transposed: bool) -> int:
    """Estimated nanoseconds of copying ``size`` float32 elements to rows: the transpose
    of a row-major array (the 8 x 8-block kernel, about 1/4 ns an element) or another
    strided view (numpy, about 2/3 ns)."""
    return size // 4 if transposed else (2 * size) // 3


def _c3(x: np.ndarray) -> np.ndarray:
    """x (batch, rows, cols) as a C-contiguous float32 array (x itself when it is one).

    The transpose of a row-major stack (a backward GEMM's operand) is copied by the
    8 x 8-block kernel (:mod:`lowprec._kernels.transpose`; numpy's copy of a 128 x 128
    transpose took as long as the GEMM it fed). Other strided views are copied by numpy,
    in strips of source rows where its copy would read down columns of 128 floats or more:
    those reads fall into a few cache sets and evict each other; a strip of as many rows
    as the cache's ways and sets hold for that stride stays resident."""
    if x.flags.c_contiguous:
        return x
    t = x.swapaxes(1, 2)
    if t.flags.c_contiguous:
        out = np.empty(x.shape, _F32)
        if not _KERNEL:
            _kernel()
        _KERNEL[6]()(t, out)
        return out
    src_rows = x.shape[2]
    stride = x.strides[2]
    if x.strides[1] == x.itemsize and stride >= 512 and src_rows > 8:
        strip = max(8, min(64, 32768 // stride))
        if src_rows > strip:
            out = np.empty(x.shape, _F32)
            for j0 in range(0, src_rows, strip):
                out[:, :, j0:j0 + strip] = x[:, :, j0:j0 + strip]
            return out
    return np.ascontiguousarray(x)


def matmul_f32(a: np.ndarray, b: np.ndarray, c: Optional[np.ndarray] = None,
               fused: bool = True) -> np.ndarray:
    """``c + a @ b`` accumulated in float32, sequential in k, as :func:`lowprec.matmul`.

    Args:
        a: float32 array (..., M, K).
        b: float32 array (..., K, N); batch axes broadcast against ``a``'s as numpy's
            matmul. Strided views (transposes) are accepted.
        c: optional addend broadcastable to (..., M, N); non-float32 values are rounded
            to float32 (RNE) first, as :func:`lowprec.matmul` does.
        fused: True: one float32 fused multiply-add per step (``fma=True``); False: the
            product is rounded to float32 before the sum.

    Returns:
        A C-contiguous float32 array (..., M, N), bit for bit
        ``lowprec.matmul(a, b, c=c, fma=fused)``.

    Raises:
        TypeError: when ``a`` or ``b`` is not a float32 numpy array.
        ValueError: for operands with fewer than two axes, inner sizes that differ, batch
            axes that do not broadcast, or a ``c`` that does not broadcast to the output.
    """
    if not _KERNEL:
        _kernel()
    if fused is not True:
        fused = bool(fused)  # the kernel's entry point takes a bool as it is
    if c is None and type(a) is np.ndarray and type(b) is np.ndarray:
        # the common case (training steps repeat the same shapes): plan once per layout
        key = (a.dtype, a.shape, a.strides, b.dtype, b.shape, b.strides)
        plan = _PLANS.get(key)
        if plan is not None:
            flip, nb, m, n, full, zero, small = plan
            # small products go straight to the serial entry point once it is compiled
            entry = _KERNEL[2] if small else None
            two = a.ndim == 2  # (then b too: same batch shape); views by indexing are cheaper
            if flip:  # C^T = B^T A^T
                a3 = b.T[None] if two else _swap3(b, nb)
                b3 = _c3(a.T[None] if two else _swap3(a, nb))
                shape = (nb, n, m)
            else:
                a3 = a[None] if two else a.reshape(nb, m, a.shape[-1])
                b3 = _c3(b[None] if two else b.reshape(nb, b.shape[-2], n))
                shape = (nb, m, n)
            out = np.empty(shape, _F32)
            if zero is None:
                zero = _zeros(shape)
            if entry is not None:
                entry(a3, b3, zero, fused, out)
            else:
                _run(a3, b3, zero, fused, out)
            if flip:
                out = _c3(out.swapaxes(1, 2))
            return out[0] if two else out.reshape(full)
    return _matmul_f32(a, b, c, fused)


def _swap3(x: np.ndarray, nb: int) -> np.ndarray:
    """(nb, cols, rows) view of the matrices of x (..., rows, cols) transposed."""
    return x.reshape(nb, x.shape[-2], x.shape[-1]).swapaxes(1, 2)


def _zeros(shape: tuple) -> np.ndarray:
    """A zero addend: one per shape, kept (the kernel only reads it)."""
    z = _ZEROS.get(shape)
    if z is None:
        if len(_ZEROS) > 64:
            _ZEROS.clear()
        z = _ZEROS[shape] = np.zeros(shape, _F32)
    return z


def _matmul_f32(a, b, c, fused):
    """:func:`matmul_f32` in full: checks, broadcasting, the addend, the plan."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
            and a.dtype == _F32 and b.dtype == _F32):
        raise TypeError(f"matmul_f32 takes float32 arrays, got "
                        f"{getattr(a, 'dtype', type(a).__name__)} and "
                        f"{getattr(b, 'dtype', type(b).__name__)}")
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul_f32 needs operands (..., m, k) @ (..., k, n), got "
                         f"{a.shape} @ {b.shape}")
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    if a.ndim == 2 and b.ndim == 2:
        batch: tuple = ()
        a3, b3 = a[None], b[None]
    else:
        try:
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul_f32: batch axes of {a.shape} and {b.shape} do not "
                             f"broadcast") from None
        nb = 1
        for d in batch:
            nb *= d
        a3 = np.broadcast_to(a, batch + (m, k)).reshape(nb, m, k) if a.shape[:-2] != batch \
            else a.reshape(nb, m, k)
        b3 = np.broadcast_to(b, batch + (k, n)).reshape(nb, k, n) if b.shape[:-2] != batch \
            else b.reshape(nb, k, n)
    full = batch + (m, n)
    nb = a3.shape[0]
    if c is not None:
        c = np.asarray(c)
        if c.dtype != _F32:
            c = c.astype(_F32)  # RNE, as lowprec.matmul rounds c to float32
        try:
            c = np.broadcast_to(c, full)
        except ValueError:
            raise ValueError(f"matmul_f32: c of shape {c.shape} does not broadcast to the "
                             f"result shape {full}") from None
        c = c.reshape(nb, m, n)

    # Cost of each orientation (ns), plus a copy for every operand the kernel would have
    # to read through a strided view it cannot take.
    sa, sb = a3.strides, b3.strides
    a_rows, b_rows = sa[2] == 4 and sa[1] == 4 * k, sb[2] == 4 and sb[1] == 4 * n
    a_cols, b_cols = sa[1] == 4 and sa[2] == 4 * m, sb[1] == 4 and sb[2] == 4 * k
    # (the kernel reads its left operand in any layout; see _run)
    direct = (_cost(m, k, n) * nb + (0 if a_rows or a_cols else _copy(a3.size, False))
              + (0 if b_rows else _copy(b3.size, b_cols)))
    flipped = (_cost(n, k, m) * nb + (0 if b_cols or b_rows else _copy(b3.size, False))
               + (0 if a_cols else _copy(a3.size, a_rows)) + _copy(m * n * nb, True))
    flip = flipped < direct
    if c is None and (a.shape[:-2] == b.shape[:-2]) and type(a) is np.ndarray \
            and type(b) is np.ndarray:
        if len(_PLANS) > 256:
            _PLANS.clear()
        # small outputs keep their zero addend in the plan (a dictionary lookup less)
        zero = (_zeros((nb, n, m) if flip else (nb, m, n)) if nb * m * n <= _PLAN_ZEROS
                else None)
        _PLANS[(a.dtype, a.shape, a.strides, b.dtype, b.shape, b.strides)] = (
            flip, nb, m, n, full, zero, nb * m * k * n < SMALL)
    if flip:
        # C^T = B^T A^T: the same fma chain per element, the factors swapped
        at, bt = np.swapaxes(b3, 1, 2), np.swapaxes(a3, 1, 2)
        ct = _zeros((nb, n, m)) if c is None else _c3(np.swapaxes(c, 1, 2))
        out = np.empty((nb, n, m), _F32)
        _run(at, _c3(bt), ct, fused, out)
        return _c3(out.swapaxes(1, 2)).reshape(full)
    out = np.empty((nb, m, n), _F32)
    cc = _zeros((nb, m, n)) if c is None else _c3(c)
    _run(a3, _c3(b3), cc, fused, out)
    return out.reshape(full)
