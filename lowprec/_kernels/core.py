"""Scalar rounding core shared by every kernel: integer significands, no float tricks.

A magnitude is ``sig * 2^e`` (``sig`` an int64 of at most 53 bits) plus an optional tail
``lo`` (``lo_sig * 2^lo_e`` with its own sign) used by arithmetic kernels that carry the
exact residual of an error-free transformation. Rounding to a multiple of ``2^q`` looks at
the exact discarded part, so every mode, stochastic ones included, sees the exact value.

Stochastic rounding compares the discarded fraction with a uniform random number read
lazily from the counter-based stream in :mod:`.random`, bit by bit as far as needed, so
``sr_bits=0`` ("exact") gives the mathematically exact probability, and ``sr_bits=r``
gives the hardware form: add r random bits just below the last kept bit, truncate.
"""

import math

import numpy as np
from .jit import njit

from ..ids import M_DOWN, M_RNA, M_RNE, M_RTO, M_SR, M_UP, RDN, RNA, RNE, RTO, RTZ, RUP
from .random import rand64

_ONES64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def bitlen(x):
    """Number of bits of a non-negative int64 below 2^53 (0 for 0)."""
    if x == 0:
        return 0
    return math.frexp(float(x))[1]


@njit(cache=True, inline="always")
def _mask64(n):
    # low n bits set, 0 <= n <= 64
    if n >= 64:
        return _ONES64
    return (np.uint64(1) << np.uint64(n)) - np.uint64(1)


@njit(cache=True)
def stream_cmp(sig, nbits, key, idx, word):
    """Compare the first ``nbits`` bits of the random stream with ``sig`` (< 2^nbits).

    The stream of element ``idx`` is the concatenation of rand64(key, idx, word),
    rand64(key, idx, word + 1), ... read from the most significant bit.

    Returns:
        (cmp, next_word): cmp is -1, 0 or +1 as the stream's integer is <, ==, > sig.
    """
    b = bitlen(sig)
    z = nbits - b  # leading zero bits of sig within nbits
    w = word
    while z >= 64:
        r = rand64(key, idx, w)
        w += 1
        if r != np.uint64(0):
            return 1, w
        z -= 64
    r = rand64(key, idx, w)
    w += 1
    avail = 64
    if z > 0:
        if (r >> np.uint64(64 - z)) != np.uint64(0):
            return 1, w
        avail = 64 - z
    if b == 0:
        return 0, w
    usig = np.uint64(sig)
    if b <= avail:
        t = (r >> np.uint64(avail - b)) & _mask64(b)
        if t < usig:
            return -1, w
        if t > usig:
            return 1, w
        return 0, w
    k = b - avail  # bits of sig that spill into the next word (1..52)
    t_hi = r & _mask64(avail)
    s_hi = usig >> np.uint64(k)
    if t_hi < s_hi:
        return -1, w
    if t_hi > s_hi:
        return 1, w
    r2 = rand64(key, idx, w)
    w += 1
    t_lo = r2 >> np.uint64(64 - k)
    s_lo = usig & _mask64(k)
    if t_lo < s_lo:
        return -1, w
    if t_lo > s_lo:
        return 1, w
    return 0, w


@njit(cache=True, inline="always")
def magnitude_mode(mode, neg):
    """Map a signed rounding mode id (lowprec.ids) to a magnitude mode."""
    if mode == RNE:
        return M_RNE
    if mode == RNA:
        return M_RNA
    if mode == RTZ:
        return M_DOWN
    if mode == RUP:
        return M_DOWN if neg else M_UP
    if mode == RDN:
        return M_UP if neg else M_DOWN
    if mode == RTO:
        return M_RTO
    return M_SR


@njit(cache=True)
def round_sig(sig, e, lo_sig, lo_e, lo_neg, q, mmode, key, idx, sr_bits):
    """Round the magnitude ``sig*2^e +- lo_sig*2^lo_e`` to a multiple of ``2^q``.

    Preconditions: ``0 < sig < 2^53``; the tail (when ``lo_sig != 0``) is at most half of
    ``2^e`` and ``q - e >= 2`` (true for every target of at most 24 significant bits
    when ``sig`` carries 53).

    Returns:
        (kept, inexact): the rounded magnitude is ``kept * 2^q``.
    """
    shift = q - e
    if shift <= 0:
        return sig << (-shift), False
    if shift >= 63:
        kept = np.int64(0)
        rem = sig
    else:
        kept = sig >> shift
        rem = sig & ((np.int64(1) << shift) - 1)
    lo_dir = 0
    if lo_sig != 0:
        lo_dir = -1 if lo_neg else 1
    if rem == 0 and lo_dir == 0:
        return kept, False
    below = rem == 0 and lo_dir < 0  # exact value lies just below kept * 2^q
    if mmode == M_RNE or mmode == M_RNA:
        if shift >= 63:
            return kept, True
        half = np.int64(1) << (shift - 1)
        if rem > half:
            return kept + 1, True
        if rem < half:
            return kept, True
        if lo_dir > 0:
            return kept + 1, True
        if lo_dir < 0:
            return kept, True
        if mmode == M_RNA or (kept & 1) == 1:
            return kept + 1, True
        return kept, True
    if mmode == M_DOWN:
        return (kept - 1 if below else kept), True
    if mmode == M_UP:
        return (kept if below else kept + 1), True
    if mmode == M_RTO:
        return (kept - 1 if below else kept) | 1, True
    # Stochastic: discarded fraction f = (R + g) / 2^shift, integer R, 0 <= g < 1, where
    # g = h or 1 - h with h = |lo| / 2^e.
    if below:
        kt = kept - 1
        big_r = (np.int64(1) << shift) - 1
    elif lo_dir < 0:
        kt = kept
        big_r = rem - 1
    else:
        kt = kept
        big_r = rem
    h_bits = e - lo_e
    if sr_bits == 0:
        c, w = stream_cmp(big_r, shift, key, idx, 0)
        if c < 0:
            return kt + 1, True
        if c > 0 or lo_dir == 0:
            return kt, True
        c2, w = stream_cmp(lo_sig, h_bits, key, idx, w)
        if lo_dir > 0:
            return (kt + 1 if c2 < 0 else kt), True
        return (kt + 1 if c2 >= 0 else kt), True
    rnd = rand64(key, idx, 0) >> np.uint64(64 - sr_bits)
    if shift >= sr_bits:
        d = shift - sr_bits
        hh = np.uint64(0) if d >= 63 else np.uint64(big_r >> d)
    else:
        k = sr_bits - shift
        hh = np.uint64(big_r) << np.uint64(k)
        if lo_dir != 0:
            t = math.ldexp(float(lo_sig), int(k - h_bits))  # h * 2^k, exact
            if lo_dir > 0:
                hh += np.uint64(math.floor(t))
            else:
                hh += np.uint64((1 << k) - math.ceil(t))
    if hh + rnd >= (np.uint64(1) << np.uint64(sr_bits)):
        return kt + 1, True
    return kt, True


@njit(cache=True)
def split_float(x):
    """Decompose a finite non-zero float64 into (neg, sig, e), |x| = sig * 2^e, sig < 2^53."""
    mant, ex = math.frexp(x)
    neg = mant < 0.0
    sig = np.int64(abs(mant) * 9007199254740992.0)  # 2^53: exact
    return neg, sig, ex - 53


# Kernels unpack a parameter vector into a tuple once, outside their loops: a tuple is a
# plain value, while handing an array to a helper costs an atomic reference-count update
# per call (and, with several threads, a cache line bouncing between cores).
@njit(cache=True)
def float_tuple(fp):
    """The float-format parameter vector as a tuple (see :mod:`.layout`, F_*)."""
    return (fp[0], fp[1], fp[2], fp[3], fp[4], fp[5], fp[6], fp[7], fp[8], fp[9], fp[10],
            fp[11], fp[12], fp[13], fp[14], fp[15], fp[16], fp[17])


@njit(cache=True)
def fixed_tuple(xp):
    """The fixed-point parameter vector as a tuple (see :mod:`.layout`, X_*)."""
    return (xp[0], xp[1], xp[2], xp[3], xp[4])
