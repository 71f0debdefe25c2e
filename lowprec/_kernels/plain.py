"""Plain-Python copies of the kernels, for small first calls on a cold numba cache.

Compiling a kernel takes seconds (about 15 s for the exact-accumulation GEMM on a 2-core
machine); a first call on a 16 x 16 matrix then waits that long for microseconds of work.
While a kernel has no compiled code, neither in this process nor in numba's on-disk cache,
small calls run its plain-Python copy instead: the same source files loaded a second time as
``lowprec._kernels_plain``, where ``njit`` leaves functions as they are (:mod:`.jit`). That
is the code ``NUMBA_DISABLE_JIT=1`` runs; the tests compare it with the compiled kernels
bit for bit.

A tier below the compiler, as in a tiered JIT: each kernel may spend at most
:data:`BUDGET_S` seconds of plain Python in a process; after that, or at its first call too
big for the plain copy, it is compiled as before. A session of small calls never waits for
the compiler; one that keeps calling pays at most the budget on top of the compilation.
Results never depend on the tier.
"""

import contextlib
import importlib
import importlib.util
import os
import sys
import time

import numpy as np

PACKAGE = "lowprec._kernels_plain"
#: Plain-Python seconds one kernel may spend in a process before it is compiled.
BUDGET_S = 2.0
#: Set LOWPREC_PLAIN=0 to compile every kernel at its first call (no plain tier).
ENABLED = os.environ.get("LOWPREC_PLAIN", "1") != "0"


@contextlib.contextmanager
def compiling():
    """Within this block kernels are compiled at their first call, as with
    ``LOWPREC_PLAIN=0`` (a warm-up step meant to compile what a timed run will use)."""
    global ENABLED
    old, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = old


def module(name: str):
    """The plain-Python copy of ``lowprec._kernels.<name>`` (loaded on first use)."""
    full = f"{PACKAGE}.{name}"
    mod = sys.modules.get(full)
    if mod is None:
        if PACKAGE not in sys.modules:
            here = os.path.dirname(os.path.abspath(__file__))
            spec = importlib.util.spec_from_file_location(
                PACKAGE, os.path.join(here, "__init__.py"), submodule_search_locations=[here])
            pkg = importlib.util.module_from_spec(spec)
            sys.modules[PACKAGE] = pkg
            spec.loader.exec_module(pkg)
        mod = importlib.import_module(full)
    return mod


def copy_of(kernel):
    """The plain-Python copy of a kernel (a dispatcher defined in ``lowprec._kernels``)."""
    f = getattr(kernel, "py_func", kernel)
    return getattr(module(f.__module__.rsplit(".", 1)[1]), f.__name__)


def has_code(dispatcher) -> bool:
    """Whether calling the dispatcher needs no compilation: it has a compiled
    specialisation, or numba's on-disk cache holds an up-to-date index for it (its entries
    are then loaded, not compiled). True when this cannot be told (numba internals moved)
    and under NUMBA_DISABLE_JIT (no dispatcher: nothing to compile)."""
    if not hasattr(dispatcher, "overloads") or dispatcher.overloads:
        return True
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # numba's private cache API changed: behave as without this tier
        return True


_NOT_RUN = object()


class Tier:
    """The plain tier of one kernel.

    Args:
        kernel: the kernel (a dispatcher of ``lowprec._kernels``) whose plain copy runs.
        below: calls of at least this much work (the caller's unit: elements, products)
            are never run in plain Python.
        twin: run instead of the plain copy (same arguments and bits, e.g. a numpy
            version; tested against the kernel like the plain copy).
    """

    NOT_RUN = _NOT_RUN

    def __init__(self, kernel, below: int, twin=None):
        self.kernel, self.below, self.twin = kernel, below, twin
        self.spent = 0.0
        self.closed = False  # True once the compiled kernel is to be used

    def __call__(self, dispatcher, work: int, *args):
        """``kernel(*args)`` in plain Python (or by the twin) when ``dispatcher`` (what the
        caller would call otherwise) still needs compiling, ``work`` is below the limit and
        the budget is not spent; otherwise :data:`NOT_RUN` (the caller runs ``dispatcher``).
        """
        if self.closed or work >= self.below or not ENABLED:
            return _NOT_RUN
        if self.spent >= BUDGET_S or has_code(dispatcher):
            self.closed = True
            return _NOT_RUN
        t = time.perf_counter()
        # compiled kernels wrap integers and give inf/NaN silently; numpy scalars wrap too,
        # and warn unless told not to
        with np.errstate(all="ignore"):
            res = (self.twin or copy_of(self.kernel))(*args)
        self.spent += time.perf_counter() - t
        return res


class EntryPoint:
    """One specialisation of a kernel, called through its compiled entry point (no
    dispatcher type matching: about a microsecond less a call, which is what a small
    kernel costs), with the plain tier in front while it is not compiled.

    Args:
        kernel: the dispatcher.
        signature: the numba signature callers' arguments always have.
        twin: what runs before the kernel is compiled (same arguments and bits, e.g. a
            numpy version), while the plain tier's budget lasts.
    """

    def __init__(self, kernel, signature: tuple, twin):
        self.kernel, self.signature = kernel, signature
        self.tier = Tier(kernel, 1 << 62, twin=twin)
        self._entry = None

    def get(self):
        """The callable to use now: the entry point once compiled (or loaded from the
        cache), the plain tier's runner before, the Python function under
        NUMBA_DISABLE_JIT."""
        if self._entry is not None:
            return self._entry
        if not hasattr(self.kernel, "overloads"):
            return self.kernel
        return self.compiled() if self.tier.closed else self._before_compiled

    def compiled(self):
        """The entry point, compiled (or loaded from numba's on-disk cache) if need be."""
        if self._entry is None:
            self.kernel.compile(self.signature)
            self._entry = self.kernel.overloads[self.signature].entry_point
        return self._entry

    def _before_compiled(self, *args) -> None:
        if self.tier(self.kernel, 0, *args) is _NOT_RUN:
            self.compiled()(*args)
