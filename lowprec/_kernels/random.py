"""Counter-based random bits for reproducible stochastic rounding.

A word of random bits is a pure function of (key, element index, word number), so a
result never depends on thread count, chunking or evaluation order. The mixer is the
SplitMix64 finaliser (Steele, Lea, Flood 2014) applied twice; the pure-Python twin in
:mod:`lowprec.reference` must stay bit-identical to it (a test checks).
"""

import numpy as np
from .jit import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_WORD = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


@njit(cache=True)
def mix64(z):
    """SplitMix64 finaliser of a uint64."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def rand64(key, idx, word):
    """Random uint64 number ``word`` of element ``idx`` under ``key`` (a mixed seed)."""
    z = mix64(key ^ (np.uint64(word) * _WORD))
    return mix64(z + np.uint64(idx) * _GOLDEN)


# Inlined forms for element loops: numba compiles ``rand64`` as a call, and a call per
# element keeps LLVM from vectorising the loop around it. ``word_base`` is the part of
# ``rand64`` that depends on (key, word) only, to be hoisted out of the loop, and the
# counter of element idx + 1 is the counter of idx plus ``STEP`` (an addition per element
# instead of a multiplication): ``rand64(key, idx, word) == rand64_at(word_base(key, word),
# idx) == mix64_inline(counter(word_base(key, word), idx))`` (a test checks).
STEP = _GOLDEN


@njit(cache=True, inline="always")
def mix64_inline(z):
    """:func:`mix64`, inlined into the caller."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def word_base(key, word):
    """The (key, word) half of :func:`rand64`: ``mix64(key ^ word * WORD)``."""
    return mix64_inline(key ^ (np.uint64(word) * _WORD))


@njit(cache=True, inline="always")
def counter(base, idx):
    """The counter that :func:`rand64` mixes for element ``idx`` given ``base``."""
    return base + np.uint64(idx) * _GOLDEN


@njit(cache=True, inline="always")
def rand64_at(base, idx):
    """``rand64(key, idx, word)`` given ``base = word_base(key, word)``; inlined."""
    return mix64_inline(counter(base, idx))
