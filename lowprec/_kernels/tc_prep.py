"""The fast tensor-core kernel's operands in one pass per operand: from an LPArray's codes
(:func:`prep_codes`) or from float64 values (:func:`prep_values`).

:func:`.tensorcore_fast.prepare` builds the kernel's float32 operands from float64 values:
a float32 copy and its exactness check, the powers of two, the spans of non-zero
magnitudes and the packing of b into column panels, each a pass of its own over the
matrix, after the operand's decode to float64 (about 15 ms per 1024 x 1024 operand on a
2-core machine). :func:`prep_values` does those in one pass (:func:`prepare_values`, the
general path's). An operand that is an LPArray of a format of at most 16 bits needs none of
it: its value, power of two and magnitude are functions of its code. :func:`prep_codes`
reads each code once and writes its float32 value and power from two tables of every code
(built by the caller, :func:`tables`), in the kernel's layout, and marks the code as seen;
the spans and finiteness are then read off the seen codes (at most 65536), not the matrix
(operands smaller than the table take them from their elements).

Layout: the values of a (batch, R, C) operand go to (batch, ceil(C / jt), R, jt) panels,
columns past C zero: ``jt = C`` is a itself ((batch, 1, R, C)), ``jt = _JT`` the column
panels of b (:func:`.tensorcore_fast.pack_panels`). Conversions, table look-ups and copies
only: the same bits as the numpy twins (:func:`_numpy`, :func:`_values_numpy`), which run
before a kernel is compiled (:class:`.plain.EntryPoint`). The output arrays come from
:data:`POOL` (fresh pages cost a fault each).

Serial: about 1.5 ms per 1024 x 1024 operand of codes on a 2-core machine.
Threads halve that on an idle machine, but a pass this short waits a whole scheduler time
slice (about 8 ms) whenever another process holds a core, and ``parallel=True`` triples
the compilation (0.5 s serial).
"""

import math

import numpy as np
from numba.core import types as nbt

from .bits import bits_f32 as _bits_f32, f32_bits as _f32_bits
from .jit import njit
from .plain import EntryPoint
from .tensorcore_fast import _JT, _pow2_f32, _span, handles_model, plan_values, prepare

__all__ = ["prep_codes", "prep_values", "tables", "run", "run_values", "prepare_codes",
           "prepare_values", "SIGNATURES", "VALUES_SIGNATURE", "ScratchPool", "POOL"]


@njit(cache=True)
def prep_codes(codes, tab, ptab, rows, cols, jt, vals, pows, seen, stats):
    """vals, pows <- tab[codes], ptab[codes] in panels of jt columns; stats <- (smallest,
    largest) non-zero finite |tab[code]| over the codes read ((inf, 0) when none) and 1.0
    if one of their values is not finite, else 0.0.

    Args:
        codes: (batch * rows * cols) C-order codes (uint8 or uint16; every code indexes
            tab and ptab).
        tab, ptab: float32 value and power of two of every code.
        rows, cols: the operand's matrix shape (>= 1); jt: columns per panel.
        vals, pows: (batch * ceil(cols / jt) * rows * jt) float32 outputs.
        seen: uint8 of tab's length, zeros on entry: seen[code] <- 1 for every code read,
            and the stats come from the seen codes (large operands); or of length 0: the
            stats come from the elements (operands smaller than the table).
        stats: float64 (3,) output.
    """
    nt = (cols + jt - 1) // jt
    nb = codes.size // (rows * cols)
    mark = seen.size > 0
    lo = np.inf
    hi = 0.0
    bad = 0.0
    # panel after panel, so that the writes are sequential (rows of a panel are jt apart;
    # row-major order would write 2 * nt streams at once)
    for bi in range(nb):
        for t in range(nt):
            j0 = t * jt
            w = min(jt, cols - j0)
            w16 = w - w % 16 if mark else 0
            for r in range(rows):
                src = (bi * rows + r) * cols + j0
                dst = ((bi * nt + t) * rows + r) * jt
                # runs of 16 (a constant trip count: LLVM unrolls them), then the rest
                for q0 in range(0, w16, 16):
                    s0 = src + q0
                    d0 = dst + q0
                    for q in range(16):
                        c = codes[s0 + q]
                        vals[d0 + q] = tab[c]
                        pows[d0 + q] = ptab[c]
                        seen[c] = 1
                if mark:
                    for q in range(w16, w):
                        c = codes[src + q]
                        vals[dst + q] = tab[c]
                        pows[dst + q] = ptab[c]
                        seen[c] = 1
                else:
                    for q in range(w):
                        c = codes[src + q]
                        vals[dst + q] = tab[c]
                        pows[dst + q] = ptab[c]
                        v = abs(np.float64(tab[c]))
                        if not v < np.inf:  # inf or NaN
                            bad = 1.0
                        elif v > 0.0:
                            lo = min(lo, v)
                            hi = max(hi, v)
                for q in range(w, jt):
                    vals[dst + q] = np.float32(0.0)
                    pows[dst + q] = np.float32(0.0)
    for c in range(seen.size):
        if seen[c] != 0:
            v = abs(np.float64(tab[c]))
            if not v < np.inf:
                bad = 1.0
            elif v > 0.0:
                lo = min(lo, v)
                hi = max(hi, v)
    stats[0] = lo
    stats[1] = hi
    stats[2] = bad


def _numpy(codes, tab, ptab, rows, cols, jt, vals, pows, seen, stats) -> None:
    """:func:`prep_codes` in numpy (same arguments, same bits)."""
    x = codes.reshape(-1, rows, cols)
    nb = x.shape[0]
    nt = -(-cols // jt)
    for src, dst in ((tab, vals), (ptab, pows)):
        tmp = np.zeros((nb, rows, nt * jt), np.float32)
        tmp[:, :, :cols] = src[x]
        dst.reshape(nb, nt, rows, jt)[...] = tmp.reshape(nb, rows, nt, jt).transpose(0, 2, 1, 3)
    if seen.size:
        seen[x.reshape(-1)] = 1
        v = np.abs(tab[seen != 0].astype(np.float64))
    else:
        v = np.abs(tab[x.reshape(-1)].astype(np.float64))
    fin = v[np.isfinite(v) & (v > 0)]
    stats[0] = fin.min() if fin.size else np.inf
    stats[1] = fin.max() if fin.size else 0.0
    stats[2] = 1.0 if (~np.isfinite(v)).any() else 0.0


@njit(cache=True)
def prep_values(x, emin, normalise, rows, cols, jt, vals, pows, stats):
    """:func:`prep_codes` for float64 values (``tensorcore_fast.prepare``'s operands):
    vals <- float32(x), pows <- their powers of two (as ``tensorcore_fast._pow2_f32`` with
    emin; |x| with ``normalise``), in panels of jt columns; stats <- (smallest, largest)
    non-zero |float32(x)| ((inf, 0) when none) and 1.0 if some x is not a float32 value
    (then the outputs are not to be used), else 0.0.

    Args:
        x: (batch * rows * cols) C-order finite float64 values.
        emin: exponents are clamped to emin (>= -126).
        normalise: powers |x| instead.
        rows, cols, jt, vals, pows, stats: as :func:`prep_codes`.
    """
    nt = (cols + jt - 1) // jt
    nb = x.size // (rows * cols)
    ebits = np.int32((127 + emin) << 23)
    lo = np.float32(np.inf)
    hi = np.float32(0.0)
    bad = 0.0
    for bi in range(nb):
        for t in range(nt):
            j0 = t * jt
            w = min(jt, cols - j0)
            for r in range(rows):
                src = (bi * rows + r) * cols + j0
                dst = ((bi * nt + t) * rows + r) * jt
                for q in range(w):
                    xv = x[src + q]
                    v = np.float32(xv)
                    if np.float64(v) != xv:
                        bad = 1.0
                    av = abs(v)
                    vals[dst + q] = v
                    if normalise:
                        pows[dst + q] = av
                    else:
                        e = _f32_bits(v) & np.int32(0x7F800000)
                        e = e if e > ebits else ebits
                        pows[dst + q] = _bits_f32(e) if v != 0 else np.float32(0.0)
                    if av > 0:
                        lo = min(lo, av)
                        hi = max(hi, av)
                for q in range(w, jt):
                    vals[dst + q] = np.float32(0.0)
                    pows[dst + q] = np.float32(0.0)
    stats[0] = lo
    stats[1] = hi
    stats[2] = bad


def _values_numpy(x, emin, normalise, rows, cols, jt, vals, pows, stats) -> None:
    """:func:`prep_values` in numpy (same arguments, same bits)."""
    x3 = x.reshape(-1, rows, cols)
    nb = x3.shape[0]
    nt = -(-cols // jt)
    with np.errstate(over="ignore"):  # beyond float32: inf, flagged below
        v = x3.astype(np.float32)
    p = np.abs(v) if normalise else _pow2_f32(v.copy(), emin)
    for src, dst in ((v, vals), (p, pows)):
        tmp = np.zeros((nb, rows, nt * jt), np.float32)
        tmp[:, :, :cols] = src
        dst.reshape(nb, nt, rows, jt)[...] = tmp.reshape(nb, rows, nt, jt).transpose(0, 2, 1, 3)
    span = _span(v)
    stats[0], stats[1] = span if span else (np.inf, 0.0)
    stats[2] = 0.0 if (v == x3).all() else 1.0


_F32_1 = nbt.Array(nbt.float32, 1, "C")


def _signature(code_type):
    return (nbt.Array(code_type, 1, "C"), _F32_1, _F32_1, nbt.int64, nbt.int64, nbt.int64,
            _F32_1, _F32_1, nbt.Array(nbt.uint8, 1, "C"), nbt.Array(nbt.float64, 1, "C"))


#: The two specialisations callers use: uint8 and uint16 codes (LPArrays' code dtypes of
#: formats of at most 8 and 16 bits).
SIGNATURES = {np.dtype(np.uint8): _signature(nbt.uint8),
              np.dtype(np.uint16): _signature(nbt.uint16)}
_ENTRIES = {dt: EntryPoint(prep_codes, sig, _numpy) for dt, sig in SIGNATURES.items()}
#: prep_values' one specialisation.
VALUES_SIGNATURE = (nbt.Array(nbt.float64, 1, "C"), nbt.int64, nbt.boolean, nbt.int64,
                    nbt.int64, nbt.int64, _F32_1, _F32_1, nbt.Array(nbt.float64, 1, "C"))
_VALUES = EntryPoint(prep_values, VALUES_SIGNATURE, _values_numpy)


def tables(values: np.ndarray, code_dtype, emin: int, normalise: bool):
    """(tab, ptab): float32 values and powers of two indexed by every code of the dtype.

    Args:
        values: float32 values of a format's 2^bits codes (NaN codes NaN), bits at most
            the code dtype's width; a code's bits above the format's are ignored (as
            ``quantize.decode`` does), so the table repeats.
        code_dtype: uint8 or uint16.
        emin: exponents are clamped to emin (-126 <= emin): the power of x is
            2^max(floor(log2|x|), emin) (``tensorcore_fast._pow2_f32``), 0 for zeros and
            non-finite values; with ``normalise``, |x| instead.

    Returns:
        Two C-contiguous float32 arrays of 2^(8 * itemsize) entries.
    """
    size = 1 << (8 * np.dtype(code_dtype).itemsize)
    tab = np.ascontiguousarray(np.resize(np.asarray(values, np.float32), size))
    fin = np.where(np.isfinite(tab), tab, np.float32(0.0))
    ptab = np.abs(fin) if normalise else _pow2_f32(fin, emin)
    return tab, np.ascontiguousarray(ptab, np.float32)


class ScratchPool:
    """Scratch arrays kept between calls: the operands' panels and the kernel's float64
    output are 4 to 8 MB each at n = 1024, and fresh pages cost a fault each when first
    written (about 1 us; 6 ms a call in all on a 2-core machine), which is as much as the
    passes that fill them.

    :meth:`take` hands an array to one caller (popped under the GIL: two threads never
    share one), :meth:`give` takes it back once the caller is done with it. Arrays over
    ``max_each`` bytes are never kept, and the pool forgets everything when it would hold
    more than ``max_bytes``.
    """

    def __init__(self, max_each: int = 8 << 20, max_bytes: int = 64 << 20):
        self.max_each, self.max_bytes = max_each, max_bytes
        self._free: dict = {}
        self._bytes = 0
        self._zeros: dict = {}

    def take(self, shape: tuple, dtype) -> np.ndarray:
        """A C-contiguous array of the shape and dtype, contents undefined."""
        free = self._free.get((math.prod(shape), np.dtype(dtype)))
        if free:
            try:
                x = free.pop()
                self._bytes -= x.nbytes
                return x.reshape(shape)
            except IndexError:  # another thread took the last one
                pass
        return np.empty(shape, dtype)

    def give(self, *arrays: np.ndarray) -> None:
        """Return arrays from :meth:`take` (or C-contiguous reshapes of them) that the
        caller no longer uses."""
        for x in arrays:
            if x.nbytes > self.max_each or not x.flags.c_contiguous:
                continue
            if self._bytes + x.nbytes > self.max_bytes:
                self._free = {}
                self._bytes = 0
            self._free.setdefault((x.size, x.dtype), []).append(x)
            self._bytes += x.nbytes

    def zeros(self, shape: tuple, dtype) -> np.ndarray:
        """A zero array that callers only read (shared between calls; writeable, so that
        it has the types the kernels are compiled for)."""
        key = (shape, np.dtype(dtype))
        z = self._zeros.get(key)
        if z is None:
            z = np.zeros(shape, dtype)
            if z.nbytes <= self.max_each:
                if len(self._zeros) >= 4:
                    self._zeros = {}
                self._zeros[key] = z
        return z


#: The scratch arrays of :func:`run` and its callers.
POOL = ScratchPool()


def run(codes: np.ndarray, tab: np.ndarray, ptab: np.ndarray, jt: int):
    """(values, powers, (lo, hi), finite) of a (batch, R, C) operand's codes (C >= 1).

    Returns:
        values and powers as (batch, ceil(C / jt), R, jt) float32 panels (from
        :data:`POOL`: give them back when done), the (smallest, largest) non-zero |value|
        (None when every value is zero), and whether every value is finite.
    """
    nb, rows, cols = codes.shape
    nt = -(-cols // jt)
    shape = (nb, nt, rows, jt)
    vals = POOL.take(shape, np.float32)
    pows = POOL.take(shape, np.float32)
    # the seen codes' stats read the whole table: for operands smaller than it, the
    # elements' own
    seen = np.zeros(tab.size if codes.size >= tab.size // 4 else 0, np.uint8)
    stats = np.empty(3, np.float64)
    flat = np.ascontiguousarray(codes).reshape(-1)
    _ENTRIES[flat.dtype].get()(flat, tab, ptab, rows, cols, jt, vals.reshape(-1),
                               pows.reshape(-1), seen, stats)
    span = None if stats[1] == 0.0 else (float(stats[0]), float(stats[1]))
    return vals, pows, span, stats[2] == 0.0


def prepare_codes(blk, prec_a: int, prec_b: int, codes_a, tabs_a, codes_b, tabs_b,
                  emin_a: int, emin_b: int):
    """:func:`.tensorcore_fast.prepare` from codes: the fast kernel's operands when it gives
    the reference bits and every value is finite, else None.

    Args:
        blk: the BlockFMAModel.
        prec_a, prec_b: precisions of a's and b's formats.
        codes_a, codes_b: (batch, M, K) and (batch, K, N) codes, M, K, N >= 1.
        tabs_a, tabs_b: their (tab, ptab) (:func:`tables`, with ``emin_a`` / ``emin_b``
            and ``blk.normalise_products``).
        emin_a, emin_b: the exponents the inputs' exponents are clamped to.

    Returns:
        None (the caller takes the general path: non-finite values, or a plan the kernel
        declines), or (a, pa, b panels, pb panels, sub) for :func:`.tensorcore_fast.tc_gemm_fast`
        (the arrays from :data:`POOL`: the caller gives them back).
    """
    if not handles_model(blk) or prec_a + prec_b > 24 or min(emin_a, emin_b) < -126:
        return None
    return _plan(blk, prec_a, prec_b, emin_a, emin_b, codes_a.shape,
                 lambda: run(codes_a, *tabs_a, codes_a.shape[2]),
                 lambda: run(codes_b, *tabs_b, _JT))


def prepare_values(blk, prec_a: int, prec_b: int, av, bv, emin_a: int, emin_b: int):
    """:func:`.tensorcore_fast.prepare` (same arguments and result) in one pass per
    operand (:func:`prep_values`), the arrays from :data:`POOL` (the caller gives them
    back)."""
    if not handles_model(blk) or prec_a + prec_b > 24 or min(emin_a, emin_b) < -126:
        return None
    if av.size == 0 or bv.size == 0:  # no panels to fill (K = 0, empty batch)
        return prepare(blk, prec_a, prec_b, av, bv, emin_a, emin_b)
    norm = blk.normalise_products
    return _plan(blk, prec_a, prec_b, emin_a, emin_b, av.shape,
                 lambda: run_values(av, emin_a, norm, av.shape[2]),
                 lambda: run_values(bv, emin_b, norm, _JT))


def _plan(blk, prec_a, prec_b, emin_a, emin_b, shape_a, prep_a, prep_b):
    """The kernel's operands from prep_a() and prep_b() ((values, powers, span, ok) each),
    or None (scratch given back) when an operand is not ok or the plan declines."""
    a32, pa32, sa, ok = prep_a()
    if not ok:
        POOL.give(a32, pa32)
        return None
    bpan, pbpan, sb, ok = prep_b()
    if not ok:
        POOL.give(a32, pa32, bpan, pbpan)
        return None
    sub = plan_values(blk, prec_a, prec_b, sa, sb, emin_a, emin_b)
    if sub is None:
        POOL.give(a32, pa32, bpan, pbpan)
        return None
    return a32.reshape(shape_a), pa32.reshape(shape_a), bpan, pbpan, sub


def run_values(x: np.ndarray, emin: int, normalise: bool, jt: int):
    """:func:`run` for float64 values: (values, powers, span, exact), where ``exact`` says
    every value is a float32 value (else the rest is not to be used)."""
    nb, rows, cols = x.shape
    shape = (nb, -(-cols // jt), rows, jt)
    vals = POOL.take(shape, np.float32)
    pows = POOL.take(shape, np.float32)
    stats = np.empty(3, np.float64)
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    _VALUES.get()(flat, emin, bool(normalise), rows, cols, jt, vals.reshape(-1),
                  pows.reshape(-1), stats)
    span = None if stats[1] == 0.0 else (float(stats[0]), float(stats[1]))
    return vals, pows, span, stats[2] == 0.0
