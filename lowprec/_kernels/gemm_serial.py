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
from numba.core import types as nbt

from .gemm import gemm_f32
from .gemm_numpy import gemm_f32_numpy
from .jit import njit
from .plain import Tier, copy_of

__all__ = ["gemm_f32_serial", "gemm_f32_auto", "serial_entry", "serial_small", "compiled_entry",
           "SerialWhenSmall", "SERIAL_BELOW", "SIGNATURE"]

#: Products with fewer multiply-adds than this run serially: waking numba's other threads
#: costs more than they save. Threads split independent output rows, so the choice never
#: changes a bit.
SERIAL_BELOW = 1 << 20

_F32_A3 = nbt.Array(nbt.float32, 3, "A")
_F32_C3 = nbt.Array(nbt.float32, 3, "C")
#: The one specialisation of the serial twin that callers use: a left operand of any
#: strides (the kernel reads it one element at a time, so a transposed view costs nothing),
#: C-contiguous right operand, addend and output (read and written in vectors).
SIGNATURE = (_F32_A3, _F32_C3, _F32_C3, nbt.boolean, _F32_C3)

#: Products below this many multiply-adds (and with K <= 1024) may run on numpy
#: (:mod:`.gemm_numpy`; a few us per k) while the kernel is not compiled (:mod:`.plain`).
PLAIN_BELOW = 1 << 22


def _serial_twin(kernel, name: str):
    """``kernel``'s Python function compiled without ``parallel``, cached as ``name``."""
    f = getattr(kernel, "py_func", kernel)  # under NUMBA_DISABLE_JIT njit returns f itself
    g = types.FunctionType(f.__code__, f.__globals__, name, f.__defaults__, f.__closure__)
    g.__qualname__ = name
    g.__module__ = f.__module__
    g.__doc__ = f.__doc__
    return njit(cache=True)(g)


gemm_f32_serial = _serial_twin(gemm_f32, "gemm_f32_serial")
_ENTRY: list = []


def _before_compiled(a, b, c, fused, out) -> None:
    """gemm_f32 on numpy, or for non-finite operands its plain-Python copy."""
    if not gemm_f32_numpy(a, b, c, fused, out):
        copy_of(gemm_f32)(a, b, c, fused, out)


_PLAIN = Tier(gemm_f32, PLAIN_BELOW, twin=_before_compiled)


def serial_entry():
    """The serial twin compiled for :data:`SIGNATURE`, as its compiled entry point.

    numba's dispatcher compiles one specialisation per array layout and writeability
    (C, F and A left operands, read-only inputs: seconds each on a cold cache); the entry
    point takes arrays as they are, without the dispatcher's type matching (which also
    costs a few microseconds a call). The caller guarantees the types: float32 arrays of
    three axes, ``b``, ``c`` and ``out`` C-contiguous (any writeability: the kernel writes
    ``out`` only).
    """
    if not _ENTRY:
        if hasattr(gemm_f32_serial, "overloads"):
            gemm_f32_serial.compile(SIGNATURE)  # from the on-disk cache when it is there
            _ENTRY.append(gemm_f32_serial.overloads[SIGNATURE].entry_point)
        else:  # NUMBA_DISABLE_JIT: the Python function
            _ENTRY.append(gemm_f32_serial)
    return _ENTRY[0]


def serial_small(a, b, c, fused, out) -> None:
    """``gemm_f32(a, b, c, fused, out)`` by the serial twin's entry point, or, while that
    is not compiled, by numpy or the kernel's plain copy when the product is small enough
    (same bits; :mod:`.plain`). Arguments as :func:`serial_entry`'s."""
    if _ENTRY:
        _ENTRY[0](a, b, c, fused, out)
        return
    work = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    if _PLAIN(gemm_f32_serial, work if a.shape[2] <= 1024 else PLAIN_BELOW, a, b, c, fused,
              out) is Tier.NOT_RUN:
        serial_entry()(a, b, c, fused, out)


def compiled_entry():
    """The serial twin's entry point once it is compiled (or loaded), else None."""
    return _ENTRY[0] if _ENTRY else None


def gemm_f32_auto(a, b, c, fused, out) -> None:
    """``gemm_f32(a, b, c, fused, out)``, serially for products below
    :data:`SERIAL_BELOW` multiply-adds or when numba runs one thread (same bits).

    a: (batch, M, K), b: (batch, K, N), c and out: (batch, M, N), all float32 and
    C-contiguous; ``fused`` a bool.
    """
    if a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2] < SERIAL_BELOW \
            or numba.get_num_threads() == 1:
        serial_small(a, b, c, bool(fused), out)
    else:
        gemm_f32(a, b, c, fused, out)


class SerialWhenSmall:
    """A threaded kernel that runs its serial twin (:func:`_serial_twin`, compiled on first
    need) for products below :data:`SERIAL_BELOW` multiply-adds.

    Same bits either way when the kernel's threads take independent outputs (and stochastic
    rounding reads per-element counters). The twin compiles in about half the time (no
    parfor passes), which is what a first small product waits for; large products take the
    threaded kernel even on one thread (its parfor-compiled loops run about 10 % faster).

    Args:
        kernel: the ``parallel=True`` dispatcher.
        name: the twin's name (its on-disk cache entry).
        work: ``work(*args) -> int``, the call's multiply-adds.
        plain_below: calls below this much work may run the kernel's plain-Python copy
            while the twin is not compiled (:class:`.plain.Tier`); 0: never.
        plain_work: ``plain_work(*args) -> int``, the work the plain copy would do (the
            multiply-adds it computes, padding included); ``work`` when None.
    """

    def __init__(self, kernel, name: str, work, plain_below: int = 0, plain_work=None):
        self.kernel, self.name, self.work = kernel, name, work
        self._serial = None
        self.plain = Tier(kernel, plain_below)
        self.plain_work = plain_work or work

    def twin(self):
        """The serial twin (compiled lazily by numba on its first call)."""
        if self._serial is None:
            self._serial = _serial_twin(self.kernel, self.name)
        return self._serial

    def __call__(self, *args) -> None:
        work = self.work(*args)
        if work < SERIAL_BELOW:
            twin = self._serial or self.twin()
            if self.plain.closed or self.plain(twin, self.plain_work(*args),
                                               *args) is Tier.NOT_RUN:
                twin(*args)
        else:
            self.kernel(*args)
