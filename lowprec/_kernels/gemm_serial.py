"""A serial twin of the float32 GEMM kernel, for products too small to gain from threads.

``gemm_f32`` (:mod:`.gemm`) is compiled with ``parallel=True``. numba's parfor passes and
its thread-pool wrapper make that compilation two to three times as long as the same
function compiled serially, and every call enters the thread pool, even on one thread
(some microseconds, as much as a small GEMM). :data:`gemm_f32_serial` is the same Python
function compiled with ``parallel=False`` (``prange`` is then ``range``): the same code,
the same order of every element's fused multiply-adds, so the same bits. A first use on
small operands (a training step, a quick ``lowprec.matmul``) compiles only the serial
twin; the parallel kernel is compiled when a product big enough for threads first needs
it.

Caching: the twin is a copy of the kernel's function object under its own name, so
numba's on-disk cache keeps it in files of its own (a serial and a parallel compilation
of one function object would share one cache index and overwrite each other's entries);
it is invalidated with the kernel's source file.
"""

import types

import numba
from numba import njit

from .gemm import gemm_f32

__all__ = ["gemm_f32_serial", "gemm_f32_auto", "SERIAL_BELOW"]

#: Products with fewer multiply-adds than this run serially: waking numba's other threads
#: costs more than they save. Threads split independent output rows, so the choice never
#: changes a bit.
SERIAL_BELOW = 1 << 20


def _serial_twin(kernel, name: str):
    """``kernel``'s Python function compiled without ``parallel``, cached as ``name``."""
    f = getattr(kernel, "py_func", kernel)  # under NUMBA_DISABLE_JIT njit returns f itself
    g = types.FunctionType(f.__code__, f.__globals__, name, f.__defaults__, f.__closure__)
    g.__qualname__ = name
    g.__module__ = f.__module__
    g.__doc__ = f.__doc__
    return njit(cache=True)(g)


gemm_f32_serial = _serial_twin(gemm_f32, "gemm_f32_serial")


def gemm_f32_auto(a, b, c, fused, out) -> None:
    """``gemm_f32(a, b, c, fused, out)``, serially for products below
    :data:`SERIAL_BELOW` multiply-adds or when numba runs one thread (same bits)."""
    if a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2] < SERIAL_BELOW \
            or numba.get_num_threads() == 1:
        gemm_f32_serial(a, b, c, fused, out)
    else:
        gemm_f32(a, b, c, fused, out)
