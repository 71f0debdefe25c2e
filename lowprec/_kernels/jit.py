"""``njit`` and ``prange`` for the kernel modules: numba's, or plain Python in their copy.

The kernel modules are loaded twice: as ``lowprec._kernels``, compiled by numba, and on
first need as ``lowprec._kernels_plain`` (:mod:`.plain`), the same files run as plain
Python. In that copy this module's ``njit`` leaves every function as it is (what numba does
for the whole process under ``NUMBA_DISABLE_JIT=1``), so a first small call on a cold numba
cache can be answered by the same code without waiting seconds for its compilation.
"""

import numba

#: True in the plain-Python copy of the kernels.
PLAIN = __name__.startswith("lowprec._kernels_plain.")

prange = numba.prange


def njit(*args, **kwargs):
    """``numba.njit`` (same arguments); in the plain-Python copy, the function unchanged."""
    if not PLAIN:
        return numba.njit(*args, **kwargs)
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f
