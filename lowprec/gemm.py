"""Matrix multiply with every rounding specified: :func:`matmul`.

Accumulation modes (all bit-exact; :mod:`lowprec.gemm_reference` holds the slow exact twins):

- IEEE-style: for every output element, sequential in k, d = c; d = round(d + a*b) in the
  accumulator format ``acc`` with ``acc_rounding`` (``fma=False`` rounds the product into
  ``acc`` first). ``chunk=n`` sums runs of n products from +0 in ``acc`` and adds each run
  into an fp32 total (RNE) that starts at c. ``lanes=n`` (fp32 only) keeps n interleaved
  fp32 accumulators, product k into accumulator k mod n, c starting accumulator 0, and adds
  the n sums in order (fp32 RNE): a vectorised CPU kernel's order (torch 2.13's fp16/bf16
  CPU GEMM on AVX2 is lanes=4).
- Tensor-core models (``model=``): the block-FMA models of :mod:`lowprec.hardware`.
- Integers: int8 x int8 -> int32, exact, wrapping or saturating.

Special values: the IEEE-style modes follow IEEE 754 step by step (NaN propagates, inf *
0 and inf - inf give NaN, overflow of the accumulator gives inf or whatever the format's
overflow rule gives, e.g. NaN for an E4M3 accumulator). The models follow the authors'
MATLAB model: any NaN product or c, or +inf together with -inf, gives NaN; otherwise an
infinite product or c gives that infinity; a block whose rounded sum overflows gives inf.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from .coded import CodedArray, RoundingContext, encode_with_context, make_array
from .formats import FloatFormat, IntFormat, get_format
from .ids import C_MODES
from .quantize import decode, format_tuple, quantize, resolve_options
from .rounding import Overflow, Rounding, parse_overflow, parse_rounding
from .matrixcore import MatrixCorePath, is_mc_model, select_path_pair
from .tensorcore import BLOCK_OUTPUTS, select_block_pair

__all__ = ["matmul"]

_F32 = get_format("float32")
_F32_MAX = float(np.finfo(np.float32).max)
_ACC_TILE = 128  # output columns per tile of the exact-accumulation kernel
_ACC_TILE32 = 512  # columns per tile of the float32-lane kernel (fewer passes per step)
_BF16 = get_format("bf16")
_ZERO32: dict = {}  # (m, n) -> float32 zero addend of the direct fp32 path
#: Tensor-core models use the fast kernel where it applies (False: always the reference
#: kernel; tests compare the two).
_TC_FAST = True


def _operand(x, name: str, inputs):
    """(float64 or int64 values, format) of a matmul operand."""
    if isinstance(x, CodedArray):
        fmt = get_format(x.fmt)
        if inputs is not None and get_format(inputs) != fmt:
            raise ValueError(f"matmul: inputs={get_format(inputs).name!r} but {name} is an "
                             f"LPArray in {fmt.name}; an LPArray keeps its format: convert it "
                             f"explicitly with {name}.astype({get_format(inputs).name!r}) or "
                             f"drop inputs=")
        codes = np.asarray(x.codes)
        if isinstance(fmt, FloatFormat):
            return decode(codes, fmt, dtype=np.float64), fmt
        vals = decode(codes, fmt, dtype=np.float64)
        return (vals.astype(np.int64) if isinstance(fmt, IntFormat) else vals), fmt
    if x is None:
        raise TypeError(f"matmul: {name} must be an array of numbers, got None")
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        raise TypeError(f"matmul: {name} is complex (dtype {arr.dtype}); lowprec formats are "
                        f"real")
    if arr.dtype == object or arr.dtype.kind in "US":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"matmul: {name} must be numeric, got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if inputs is not None:
        # plain arrays are rounded into inputs= (RNE), integers and float64 from their own bits
        fmt = get_format(inputs)
        if isinstance(fmt, IntFormat):
            vals = quantize(arr if arr.dtype.kind in "iub" else arr.astype(np.float64), fmt)
            return vals.astype(np.int64), fmt
        src = arr if arr.dtype.kind in "iubf" and arr.dtype.itemsize <= 8 else \
            arr.astype(np.float64)
        return quantize(src, fmt).astype(np.float64), fmt
    if arr.dtype.kind in "iub":
        if arr.dtype.kind == "b" or arr.dtype.itemsize > 1:
            raise TypeError(f"matmul: integer {name} must be int8 or uint8 (got {arr.dtype}); "
                            f"pass inputs= to round it to a float format")
        return arr.astype(np.int64), get_format("int8" if arr.dtype.kind == "i" else "uint8")
    if arr.dtype == np.float16:
        return arr.astype(np.float64), get_format(np.float16)
    if arr.dtype in (np.float32, np.float64):
        return arr.astype(np.float32).astype(np.float64), _F32
    try:
        fmt = get_format(arr.dtype)  # ml_dtypes dtypes (bfloat16, float8_*)
    except (TypeError, ValueError):
        raise TypeError(f"matmul: unsupported dtype {arr.dtype} for {name}; pass inputs=")
    return arr.astype(np.float64), fmt


def _check_input_format(fmt, name: str) -> None:
    if isinstance(fmt, FloatFormat):
        return
    if isinstance(fmt, IntFormat) and fmt.bits <= 8:
        return
    raise ValueError(f"matmul: {name} format {fmt.name} is not supported (float formats and "
                     f"integer formats of at most 8 bits are)")


def _acc_format(acc) -> FloatFormat:
    f = get_format(acc)
    if not isinstance(f, FloatFormat):
        raise ValueError(f"matmul: acc must be a float format, got {f.name}")
    if f.precision > 24 or f.emax > 127 or f.min_subnormal < 2.0 ** -149 or not f.zero:
        raise ValueError(f"matmul: acc format {f.name} does not fit in float32 (results are "
                         f"returned as float32)")
    return f


def _scales(scale, shape_len: int, axis: str):
    """float32 multiplier broadcastable to (..., M, N), per tensor or per row/column."""
    if scale is None:
        return None
    s = np.asarray(scale, dtype=np.float32)
    if s.size == 1:
        return s.reshape(())
    if axis == "a":
        if s.shape in ((shape_len,), (shape_len, 1)):
            return s.reshape(shape_len, 1)
    else:
        if s.shape in ((shape_len,), (1, shape_len)):
            return s.reshape(1, shape_len)
    want = "(M, 1) or (M,)" if axis == "a" else "(1, N) or (N,)"
    raise ValueError(f"matmul: scale_{axis} must be a scalar or of shape {want}, got {s.shape}")


def _special_results(a, b, c):
    """NaN/inf result per output under the models' rule, or None when all is finite.

    Counts of NaN products and of +inf / -inf products come from matmuls of 0/1 matrices
    (exact in float64).
    """
    if np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(c).all():
        return None

    def mm(x, y):
        return np.matmul(x.astype(np.float64), y.astype(np.float64))

    nan_a, nan_b = np.isnan(a), np.isnan(b)
    inf_a, inf_b = np.isinf(a), np.isinf(b)
    fin_a, fin_b = np.isfinite(a), np.isfinite(b)
    nan = (mm(nan_a, np.ones(b.shape)) + mm(np.ones(a.shape), nan_b) + mm(inf_a, b == 0)
           + mm(a == 0, inf_b))
    pos_a, neg_a = a > 0, a < 0
    pos_b, neg_b = b > 0, b < 0
    pinf = (mm(inf_a & pos_a, pos_b) + mm(inf_a & neg_a, neg_b) + mm(fin_a & pos_a, inf_b & pos_b)
            + mm(fin_a & neg_a, inf_b & neg_b))
    ninf = (mm(inf_a & pos_a, neg_b) + mm(inf_a & neg_a, pos_b) + mm(fin_a & pos_a, inf_b & neg_b)
            + mm(fin_a & neg_a, inf_b & pos_b))
    pinf = pinf + (c == np.inf)
    ninf = ninf + (c == -np.inf)
    res = np.zeros(np.broadcast_shapes(nan.shape, c.shape))
    mask = np.zeros(res.shape, bool)
    is_nan = (nan > 0) | np.isnan(c) | ((pinf > 0) & (ninf > 0))
    res[pinf > 0] = np.inf
    res[ninf > 0] = -np.inf
    res[is_nan] = np.nan
    mask |= is_nan | (pinf > 0) | (ninf > 0)
    return res, mask


def _pow2_exponents(x: np.ndarray, emin: int) -> np.ndarray:
    """2^max(floor(log2|x|), emin) for non-zero finite x, 0 elsewhere."""
    ax = np.abs(x)
    ok = (ax > 0) & np.isfinite(ax)
    e = np.frexp(np.where(ok, ax, 1.0))[1] - 1
    return np.where(ok, np.ldexp(1.0, np.maximum(e, emin)), 0.0)


def _slot_table(K: int, blk) -> np.ndarray:
    """The slot table of a K-long product (see ``tensorcore.tc_gemm``); the kernels only
    read it, so one array per (K, layout) is kept."""
    return _slot_table_of(K, blk.n, blk.k_per_instruction, blk.interleave)


@functools.lru_cache(maxsize=64)
def _slot_table_of(K: int, n: int, ik: int, g) -> np.ndarray:
    nblk = ik // n
    kpad = K + (-K) % ik
    slots = np.empty(kpad, np.int64)
    pos = 0
    for q0 in range(0, kpad, ik):
        for s in range(nblk):
            if g:
                ks = [q0 + k for k in range(ik) if (k // g) % nblk == s]
            else:
                ks = range(q0 + s * n, q0 + (s + 1) * n)
            for k in ks:
                slots[pos] = k if k < K else -1
                pos += 1
    return slots


def _tc_args(K: int, blk, out: np.ndarray):
    """The tensor-core kernels' arguments around ``sub, frac_bits`` (slot table and
    instruction shape; output format, rounding, c handling, promotion, ``out``)."""
    out_fmt = get_format(blk.out_format)
    args = (_slot_table(K, blk), blk.n, blk.k_per_instruction)
    tail = (blk.result_frac_bits + 1, out_fmt.emin, out_fmt.emax,
            parse_rounding(blk.rounding).id, C_MODES.index(blk.c_mode), blk.promote_every or 0,
            out, blk.c_stage_frac_bits + 1, parse_rounding(blk.c_stage_rounding).id)
    return args, tail


def _tc_fast_run(fast, cv: np.ndarray, blk, out=None) -> np.ndarray:
    """The fast kernel on operands from ``tensorcore_fast.prepare`` (or
    ``tc_prep.prepare_codes``) and finite (batch, M, N) float64 c: float64 results (in
    ``out`` when given)."""
    from ._kernels import tensorcore_fast as tc_fast

    a32, pa32, bpan, pbpan, sub = fast
    out = np.empty(cv.shape, np.float64) if out is None else out
    args, tail = _tc_args(a32.shape[2], blk, out)
    # K padding slots point at zero columns (copies only when K leaves padding)
    a32, pa32, bpan, pbpan, order = tc_fast.pad_slots(a32, pa32, bpan, pbpan, args[0])
    tc_fast.tc_gemm_fast_auto(a32, pa32, bpan, pbpan, cv, order, *args[1:], sub,
                              blk.frac_bits, *tail)
    return out


def _run_model(av, bv, cv, blk, fa: FloatFormat, fb: FloatFormat) -> np.ndarray:
    from ._kernels import tc_prep
    from ._kernels.tensorcore import tc_gemm

    conv = get_format(blk.convert_inputs) if blk.convert_inputs else None
    emin_a = conv.emin if conv else fa.emin
    emin_b = conv.emin if conv else fb.emin
    special = _special_results(av, bv, cv)
    if special is not None:
        av = np.where(np.isfinite(av), av, 0.0)
        bv = np.where(np.isfinite(bv), bv, 0.0)
        cv = np.where(np.isfinite(cv), cv, 0.0)
    # the fast kernel claims only models whose every field it implements (handles_model);
    # its operands as tensorcore_fast.prepare's, one pass per operand
    fast = (tc_prep.prepare_values(blk, fa.precision, fb.precision, av, bv, emin_a, emin_b)
            if _TC_FAST else None)
    if fast is not None:  # same bits as tc_gemm, float32 lanes (see its module docstring)
        out = _tc_fast_run(fast, cv, blk)
        tc_prep.POOL.give(*fast[:4])
    else:
        out = np.empty(cv.shape, np.float64)
        args, tail = _tc_args(av.shape[2], blk, out)
        pa, pb = _pow2_exponents(av, emin_a), _pow2_exponents(bv, emin_b)
        tc_gemm(av, pa, bv, pb, cv, *args, blk.frac_bits, *tail, blk.normalise_products)
    if special is not None:
        res, mask = special
        out = np.where(mask, res, out)
    return out


@functools.lru_cache(maxsize=64)
def _code_tables(fmt: FloatFormat, code_dtype: np.dtype, emin: int, normalise: bool):
    """(values, powers) float32 tables of every code of ``code_dtype`` for the fast kernel
    (``tc_prep.tables``), or None when the format has more than 16 bits or values that
    float32 does not hold exactly."""
    from ._kernels import tc_prep

    if fmt.bits > 16 or code_dtype not in tc_prep.SIGNATURES or emin < -126:
        return None
    v64 = fmt.values(np.float64)
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: declined below
        v32 = v64.astype(np.float32)
    if not np.array_equal(v32.astype(np.float64), v64, equal_nan=True):
        return None
    tabs = tc_prep.tables(v32, code_dtype, emin, normalise)
    for t in tabs:
        t.flags.writeable = False  # shared between calls (the kernel only reads them)
    return tabs


def _model_direct(a, b, c, model, chunk, scale_a, scale_b) -> Optional[np.ndarray]:
    """:func:`matmul` of two LPArrays on a tensor-core model with fp32 output (c, chunk
    and scales allowed, nothing else), with the fast kernel's operands built straight from
    the codes (``tc_prep``: no float64 values, one pass per operand); None when that does
    not apply (other operands or formats, non-finite values, a plan the fast kernel
    declines): the general path then gives the same bits (``_run_model``)."""
    if not (isinstance(a, CodedArray) and isinstance(b, CodedArray)) or is_mc_model(model):
        return None
    fa, fb = get_format(a.fmt), get_format(b.fmt)
    if not (isinstance(fa, FloatFormat) and isinstance(fb, FloatFormat)):
        return None
    ca, cb = np.asarray(a.codes), np.asarray(b.codes)
    if ca.ndim not in (2, 3) or cb.ndim not in (2, 3):
        return None
    (M, K), (K2, N) = ca.shape[-2:], cb.shape[-2:]
    if K != K2 or min(M, K, N) == 0:
        return None
    try:
        batch = np.broadcast_shapes(ca.shape[:-2], cb.shape[:-2])
        blk = select_block_pair(model, fa, fb, _F32)
    except ValueError:
        return None  # the general path raises it
    if chunk is not None:
        blk = blk.with_(promote_every=int(chunk))
    conv = get_format(blk.convert_inputs) if blk.convert_inputs else None
    emin_a = conv.emin if conv else fa.emin
    emin_b = conv.emin if conv else fb.emin
    tabs_a = _code_tables(fa, ca.dtype, emin_a, blk.normalise_products)
    tabs_b = _code_tables(fb, cb.dtype, emin_b, blk.normalise_products)
    if tabs_a is None or tabs_b is None:
        return None
    from ._kernels import tc_prep

    pool = tc_prep.POOL  # scratch arrays kept between calls (fresh pages fault)
    nb = math.prod(batch)
    full = batch + (M, N)
    sa, sb = _scales(scale_a, M, "a"), _scales(scale_b, N, "b")
    if c is None:
        c3 = pool.zeros((nb, M, N), np.float64)
    else:
        cv = _addend(c, full, False, blk, None)
        if not np.isfinite(cv).all():
            return None  # NaN / inf results: the general path's
        c3 = np.ascontiguousarray(cv).reshape(nb, M, N)
    ca3 = np.ascontiguousarray(np.broadcast_to(ca, batch + (M, K))).reshape(nb, M, K)
    cb3 = np.ascontiguousarray(np.broadcast_to(cb, batch + (K, N))).reshape(nb, K, N)
    fast = tc_prep.prepare_codes(blk, fa.precision, fb.precision, ca3, tabs_a, cb3, tabs_b,
                                 emin_a, emin_b)
    if fast is None:
        return None
    out = _tc_fast_run(fast, c3, blk, pool.take((nb, M, N), np.float64))
    res = out.reshape(full).astype(np.float32)
    pool.give(out, *fast[:4])
    if sa is not None:  # as matmul's general path
        res = (res * sa).astype(np.float32)
    if sb is not None:
        res = (res * sb).astype(np.float32)
    return res


def _run_mc(av, bv, cv, path: MatrixCorePath, fa: FloatFormat, fb: FloatFormat) -> np.ndarray:
    """An AMD matrix-core model (:mod:`lowprec.matrixcore`) on finite inputs, with NaN/inf
    results set afterwards under the models' rule."""
    from ._kernels import matrixcore as mck

    special = _special_results(av, bv, cv)
    if special is not None:
        av, bv, cv = (np.where(np.isfinite(x), x, 0.0) for x in (av, bv, cv))
    out = np.empty(cv.shape, np.float64)
    if path.scheme in ("exact", "pairwise") and fa.precision + fb.precision > 24:
        raise ValueError(f"matmul: the {path.scheme} matrix-core scheme takes products of at "
                         f"most 24 bits, not {fa.name} x {fb.name}")
    if path.scheme == "exact":
        lo = min(fa.min_subnormal * fb.min_subnormal, 2.0 ** -149)
        qmin = int(np.floor(np.log2(lo))) - 25
        top = int(np.ceil(np.log2(max(fa.max * fb.max, 2.0 ** 128)))) + 8
        mck.mc_exact(av, bv, cv, path.n, qmin, (top - qmin) // 30 + 3, out)
    elif path.scheme == "pairwise":  # CDNA2 flushes subnormal inputs to +0
        av = np.where(np.abs(av) < fa.min_normal, 0.0, av)
        bv = np.where(np.abs(bv) < fb.min_normal, 0.0, bv)
        mck.mc_pairwise(av, bv, cv, path.n, out)
    else:
        mck.mc_aligned(av, _pow2_exponents(av, fa.emin), bv, _pow2_exponents(bv, fb.emin), cv,
                       path.n, 2 if path.scheme == "odd_even" else 1, path.frac_bits,
                       path.c_frac_bits, -1 if path.c_window is None else path.c_window,
                       fa.max * fb.max >= 2.0 ** 128, out)
    if special is not None:
        res, mask = special
        out = np.where(mask, res, out)
    return out


_SPAN_NUMPY_BELOW = 1 << 16


def _abs_span_numpy(x: np.ndarray) -> tuple:
    """As ``_kernels.gemm.abs_span``: (smallest, largest) |value| over the finite non-zero
    elements, (inf, 0) when there are none."""
    ax = np.abs(x[np.isfinite(x) & (x != 0)])
    return (float(ax.min()), float(ax.max())) if ax.size else (np.inf, 0.0)


def _products_exact_f32(av: np.ndarray, bv: np.ndarray, fa: FloatFormat,
                        fb: FloatFormat) -> bool:
    """Whether every product a*b is exact in float32 (precisions add to <= 24 bits and no
    product leaves float32's normal range): decided from the formats' ranges when they
    guarantee it (fp16, fp8, ...), otherwise from the data's extreme magnitudes (bf16)."""
    if fa.precision + fb.precision > 24:
        return False
    if fa.min_subnormal * fb.min_subnormal >= 2.0 ** -126 and fa.max * fb.max <= _F32_MAX:
        return True
    if av.size + bv.size < _SPAN_NUMPY_BELOW:  # numpy: no kernel to compile
        (alo, ahi), (blo, bhi) = _abs_span_numpy(av), _abs_span_numpy(bv)
    else:
        from ._kernels.gemm import abs_span

        (alo, ahi), (blo, bhi) = abs_span(av.reshape(-1)), abs_span(bv.reshape(-1))
    if ahi == 0.0 or bhi == 0.0:
        return True
    return alo * blo >= 2.0 ** -126 and ahi * bhi <= _F32_MAX


def _run_acc(av, bv, cv, fa, fb, accf: FloatFormat, rnd: Rounding, fma: bool, chunk, seed):
    from ._kernels.gemm import gemm_acc
    from ._kernels.gemm_serial import gemm_f32_auto as gemm_f32  # serial when small

    rne = rnd is Rounding.RNE
    if accf == _F32 and rne and not chunk:
        # fma=True is a float32 fused multiply-add per step; when every product is exact in
        # float32 the plain multiply-then-add gives the same bits
        fused = bool(fma) and not _products_exact_f32(av, bv, fa, fb)
        out = np.empty(cv.shape, np.float32)
        f32 = lambda x: np.ascontiguousarray(x, dtype=np.float32)  # no copy when already so
        gemm_f32(f32(av), f32(bv), f32(cv), fused, out)
        return out
    opts = resolve_options(accf, rnd, None, True, None, seed)
    fast = accf.has_inf and accf.subnormals
    out = np.empty(cv.shape, np.float64)
    args = (format_tuple(accf), rnd.id, opts.overflow.id, opts.key, bool(fma), int(chunk or 0),
            fast, accf.precision, accf.emin, accf.emax)
    if not accf.signed:  # negative sums are NaN or 0 there: the scalar kernel decides
        gemm_acc(av, np.ascontiguousarray(np.swapaxes(bv, 1, 2)), cv, *args, out)
        return out
    if (rnd is not Rounding.RTO and accf.subnormals and accf.precision <= 22
            and accf.emax <= 127 and accf.emin >= -126 and accf.emin - accf.precision >= -150
            and _products_exact_f32(av, bv, fa, fb)):
        # float32 lanes: exact products, accumulator values of at most 22 bits
        from ._kernels.gemm_acc import gemm_acc_f32_auto  # serial when small

        f32 = lambda x: np.ascontiguousarray(x, dtype=np.float32)  # noqa: E731
        gemm_acc_f32_auto(f32(av), f32(bv), cv, *args, int(np.float32(accf.max).view(np.int32)),
                     accf.neg_zero_code is not None, _ACC_TILE32, out)
        return out
    from ._kernels.gemm_acc import gemm_acc_tiled

    # the tiled kernel hands magnitudes from the largest finite value up (overflow rules)
    # and, without subnormals, below 2^emin to the scalar step
    maxbits = int(np.float64(accf.max).view(np.int64))
    minbits = 0 if accf.subnormals else int(np.float64(accf.min_normal).view(np.int64))
    gemm_acc_tiled(av, np.ascontiguousarray(bv), cv, *args, maxbits, minbits,
                   accf.neg_zero_code is not None, _ACC_TILE, out)
    return out


def _f32_values(x) -> Optional[np.ndarray]:
    """x's values as a C-contiguous float32 matrix (no float64 round trip), or None when x
    is not a 2-D float32 array or 2-D LPArray of a float format."""
    if type(x) is np.ndarray:
        return np.ascontiguousarray(x) if x.dtype == np.float32 and x.ndim == 2 else None
    if isinstance(x, CodedArray) and np.ndim(x.codes) == 2:
        fmt = get_format(x.fmt)
        if isinstance(fmt, FloatFormat):
            codes = np.asarray(x.codes)
            if fmt == _BF16 and codes.dtype == np.uint16:  # bf16: float32's top half
                return (codes.astype(np.uint32) << np.uint32(16)).view(np.float32)
            return decode(codes, fmt, dtype=np.float32)  # exact
    return None


def _fp32_direct(a, b, acc, acc_rounding, fma: bool) -> Optional[np.ndarray]:
    """:func:`matmul` of two matrices (float32 arrays or float LPArrays) into fp32 with RNE
    and nothing else asked, straight on float32 values (the general path's float64
    operands cost as much as the product at n = 512); None when it does not apply. The
    same kernel and the same ``fma`` as :func:`_run_acc`, so the same bits."""
    if not (isinstance(acc, str) and isinstance(acc_rounding, str)
            and acc_rounding.lower() == "rne"):
        return None
    if _acc_format(acc) != _F32:
        return None
    av, bv = _f32_values(a), _f32_values(b)
    if av is None or bv is None or av.shape[1] != bv.shape[0]:
        return None
    from ._kernels.gemm_serial import gemm_f32_auto as gemm_f32  # serial when small

    m, n = av.shape[0], bv.shape[1]
    zero = _ZERO32.get((m, n))
    if zero is None:  # kept: the kernel only reads it, and fresh pages cost a fault each
        if len(_ZERO32) > 16:
            _ZERO32.clear()
        zero = _ZERO32[(m, n)] = np.zeros((1, m, n), np.float32)
    out = np.empty((1, m, n), np.float32)
    gemm_f32(av[None], bv[None], zero, fma, out)
    return out[0]


def _run_lanes(av, bv, cv, fa, fb, lanes: int, fma: bool) -> np.ndarray:
    """fp32 accumulation in ``lanes`` interleaved accumulators (see :func:`matmul`).

    Each lane is a sequential fp32 GEMM over k = lane, lane + lanes, ... (the float32 kernel
    on the strided slices); accumulator 0 starts at c, the others at +0, and the lane sums
    are added in lane order, fp32 RNE.
    """
    from ._kernels.gemm_serial import gemm_f32_auto as gemm_f32  # serial when small

    fused = bool(fma) and not _products_exact_f32(av, bv, fa, fb)
    f32 = lambda x: np.ascontiguousarray(x, dtype=np.float32)  # noqa: E731
    zero = np.zeros(cv.shape, np.float32)
    total = None
    for lane in range(lanes):
        out = np.empty(cv.shape, np.float32)
        gemm_f32(f32(av[:, :, lane::lanes]), f32(bv[:, lane::lanes, :]),
                 f32(cv) if lane == 0 else zero, fused, out)
        if total is None:
            total = out
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # inf / NaN are results here
                total = total + out  # float32 + float32: IEEE RNE
    return total


def _run_int(av, bv, cv, saturate: bool) -> np.ndarray:
    from ._kernels.gemm import gemm_int

    out = np.empty(cv.shape, np.int32)
    gemm_int(av.astype(np.int32), bv.astype(np.int32), cv.astype(np.int64), saturate, out)
    return out


def _addend(c, full: tuple, is_int: bool, blk, mcp) -> np.ndarray:
    """matmul's c (not None) as values of the path's addend format (int64 on the integer
    path, else float64), broadcast (a view) to the result shape ``full``."""
    if isinstance(c, CodedArray):
        cv = decode(np.asarray(c.codes), get_format(c.fmt), dtype=np.float64)
        if is_int:
            cv = cv.astype(np.int64)
    else:
        cv = np.asarray(c)
        if is_int:
            if cv.dtype.kind == "f" and not np.array_equal(cv, np.round(cv)):
                raise ValueError("matmul: c must hold integers on the integer path")
            cv = cv.astype(np.int64)
        else:
            cv = cv.astype(np.float32).astype(np.float64)
    if blk is not None:  # the instruction takes c in its output format (RNE)
        cv = quantize(cv, blk.out_format)
    elif mcp is not None:
        cv = quantize(cv, _F32)
    try:
        return np.broadcast_to(cv, full)
    except ValueError:
        raise ValueError(f"matmul: c of shape {np.shape(cv)} does not broadcast to the "
                         f"result shape {full}")


def matmul(a, b, *, c=None, inputs=None, acc="fp32", acc_rounding="rne", fma: bool = True,
           chunk: Optional[int] = None, model=None, out=None, out_rounding="rne",
           scale_a=None, scale_b=None, seed: Optional[int] = None, overflow: str = "wrap",
           lanes: Optional[int] = None):
    """Matrix product with a specified accumulation: ``c + a @ b``.

    Args:
        a: (..., M, K) (or (K,)) numpy array or LPArray.
        b: (..., K, N) (or (K,)); batch dimensions broadcast like numpy's matmul.
        c: optional addend broadcastable to (..., M, N): float values are rounded to
            float32 (RNE) (to fp16 for a model with fp16 output), an LPArray keeps its
            values; int32 values for the integer path.
        inputs: format that plain float a and b are rounded to first (RNE). Without it,
            float16 arrays are fp16, float32/float64 arrays fp32 (float64 rounded RNE),
            ml_dtypes arrays their own format, int8/uint8 arrays the integer path.
            LPArrays always carry their own format.
        acc: accumulator format (any float format whose values fit in float32).
        acc_rounding: "rne", "rna", "rtz", "rup", "rdn", "rto" or "sr" for every
            accumulation step (and for rounding c into ``acc``).
        fma: True rounds once per step, round(d + a*b); False rounds the product into
            ``acc`` first.
        chunk: products per run accumulated in ``acc`` before the run's sum is added into
            an fp32 total (RNE); None for plain sequential accumulation.
        model: a tensor-core model: a GPU name ("v100", "a100", "a2", "a30", "ada",
            "l40s", "h100", "h200", "b200"), a :class:`lowprec.hardware.TensorCoreModel`
            or a :class:`lowprec.hardware.BlockFMAModel`. Overrides ``acc``; with ``chunk``
            it sets the fp32 promotion interval. Or an AMD matrix-core model
            (:mod:`lowprec.matrixcore`): "mi100", "mi210", "mi250", "mi250x", "mi300a",
            "mi300x", a :class:`lowprec.hardware.MatrixCoreModel` or
            :class:`lowprec.hardware.MatrixCorePath` (fp32 output; no ``chunk``).
        out: None for float32 values (int32 on the integer path without scales), or a
            format: the result is rounded to it with ``out_rounding`` and returned as an
            LPArray. With a model, out="fp16" selects the fp16-output path (c rounded to
            fp16 first) and the result is exact in fp16 (with a promotion interval the
            fp32 total is then rounded to fp16 with ``out_rounding``).
        out_rounding: rounding into ``out``.
        scale_a, scale_b: float32 multipliers applied to the float32 result as
            ``(r * scale_a) * scale_b`` (float32 RNE each), per tensor (scalar) or per row
            of a ((M, 1)) / per column of b ((1, N)), as in torch._scaled_mm.
        seed: seed of stochastic rounding (``acc_rounding="sr"``; ``out_rounding="sr"``
            uses seed + 1). None draws fresh randomness.
        overflow: integer path: "wrap" (two's complement, default) or "saturate" (every
            partial sum clamped to int32).
        lanes: fp32 accumulation in ``lanes`` interleaved fp32 accumulators: product k goes
            into accumulator k mod lanes (each sequential in k, one fused multiply-add per
            step with ``fma=True``), c starts accumulator 0 and the others +0, and the
            accumulators are then added in order, fp32 RNE. This is a vectorised CPU
            kernel's order (torch 2.13's fp16/bf16 CPU matmul on AVX2 is lanes=4); lanes=1
            is the plain sequential fp32 accumulation. Only with acc fp32,
            acc_rounding "rne", float inputs and no model or chunk; None for none.

    Returns:
        numpy float32 array (int32 for the integer path without scales) of shape
        (..., M, N), or an LPArray when ``out`` names a format.

    Raises:
        ValueError: shape mismatches, unknown formats/roundings/models, an input format a
            model does not take, an unsupported accumulator, bad chunk/scales/overflow,
            lanes that is not a positive int or is combined with a model, chunk, integer
            inputs or an accumulator other than fp32 RNE.
        TypeError: non-numeric operands, non-bool fma.
    """
    if not isinstance(fma, (bool, np.bool_)):
        raise TypeError(f"matmul: fma must be True or False, got {fma!r}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer))
                              or chunk < 1):
        raise ValueError(f"matmul: chunk must be a positive int or None, got {chunk!r}")
    if lanes is not None:
        _check_lanes(lanes, acc, acc_rounding, chunk, model)
    if (c is None and model is None and lanes is None and chunk is None and out is None
            and scale_a is None and scale_b is None and inputs is None):
        res = _fp32_direct(a, b, acc, acc_rounding, bool(fma))
        if res is not None:
            return res
    if model is not None and out is None and lanes is None and inputs is None and _TC_FAST:
        res = _model_direct(a, b, c, model, chunk, scale_a, scale_b)
        if res is not None:
            return res
    av, fa = _operand(a, "a", inputs)
    bv, fb = _operand(b, "b", inputs)
    _check_input_format(fa, "a")
    _check_input_format(fb, "b")
    if av.ndim == 0 or bv.ndim == 0:
        raise ValueError("matmul: a and b must have at least one dimension")
    squeeze_m = av.ndim == 1
    squeeze_n = bv.ndim == 1
    if squeeze_m:
        av = av[None, :]
    if squeeze_n:
        bv = bv[:, None]
    if av.shape[-1] != bv.shape[-2]:
        raise ValueError(f"matmul: a has K={av.shape[-1]} (shape {av.shape}) but b has "
                         f"K={bv.shape[-2]} (shape {bv.shape})")
    M, K = av.shape[-2:]
    N = bv.shape[-1]
    try:
        batch = np.broadcast_shapes(av.shape[:-2], bv.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of a {av.shape[:-2]} and b "
                         f"{bv.shape[:-2]} do not broadcast")
    full = batch + (M, N)
    is_int = isinstance(fa, IntFormat) or isinstance(fb, IntFormat)
    if lanes is not None and is_int:
        raise ValueError(f"matmul: lanes= needs float inputs, got {fa.name} x {fb.name} (the "
                         f"integer path is exact in any order)")
    if is_int and not (isinstance(fa, IntFormat) and isinstance(fb, IntFormat)):
        raise ValueError(f"matmul: cannot mix integer and float operands ({fa.name} x {fb.name})")
    sa = _scales(scale_a, M, "a")
    sb = _scales(scale_b, N, "b")
    out_fmt = get_format(out) if out is not None else None

    blk = None
    mcp = None
    if model is not None:
        if is_int:
            raise ValueError("matmul: tensor-core models take float inputs, not integers")
    if model is not None and is_mc_model(model):
        if chunk is not None:
            raise ValueError("matmul: chunk= (fp32 promotion) is not modelled for AMD matrix "
                             "cores")
        try:
            mcp = select_path_pair(model, fa, fb)
        except ValueError as e:
            raise ValueError(f"matmul: {e}") from None
    elif model is not None:
        # out= naming a format tensor-core blocks produce selects that path (fp16 output);
        # any other out= rounds the fp32 path's result
        out_path = out_fmt if out_fmt in BLOCK_OUTPUTS else _F32
        try:
            blk = select_block_pair(model, fa, fb, out_path)
        except ValueError as e:
            raise ValueError(f"matmul: {e}") from None
        if chunk is not None:
            blk = blk.with_(promote_every=int(chunk))

    # c: values in the right format, broadcast to the full output shape.
    if c is None:
        cv = np.zeros(full, np.int64 if is_int else np.float64)
    else:
        cv = _addend(c, full, is_int, blk, mcp)
    nb = int(np.prod(batch, dtype=np.int64))
    a3 = np.ascontiguousarray(np.broadcast_to(av, batch + (M, K))).reshape(nb, M, K)
    b3 = np.ascontiguousarray(np.broadcast_to(bv, batch + (K, N))).reshape(nb, K, N)
    c3 = np.ascontiguousarray(cv).reshape(nb, M, N)

    if is_int:
        ovf = parse_overflow(overflow)
        if ovf is Overflow.INF:
            raise ValueError("matmul: overflow must be 'wrap' or 'saturate' on the integer path")
        res = _run_int(a3, b3, c3, ovf is Overflow.SATURATE).reshape(full)
        if sa is None and sb is None and out_fmt is None:
            return _finish_shape(res, squeeze_m, squeeze_n)
        res = res.astype(np.float32)
    elif lanes is not None:
        res = _run_lanes(a3, b3, c3, fa, fb, int(lanes), bool(fma)).reshape(full)
    elif blk is not None:
        res = _run_model(a3, b3, c3, blk, fa, fb).reshape(full).astype(np.float32)
    elif mcp is not None:
        res = _run_mc(a3, b3, c3, mcp, fa, fb).reshape(full).astype(np.float32)
    else:
        accf = _acc_format(acc)
        rnd = parse_rounding(acc_rounding)
        res = _run_acc(a3, b3, c3, fa, fb, accf, rnd, bool(fma), chunk, seed)
        res = res.reshape(full).astype(np.float32)
    if sa is not None:
        res = (res * sa).astype(np.float32)
    if sb is not None:
        res = (res * sb).astype(np.float32)
    res = _finish_shape(res, squeeze_m, squeeze_n)
    if out_fmt is None:
        return res
    out_seed = None if seed is None else int(seed) + 1
    ctx = RoundingContext(out_rounding, seed=out_seed)
    return make_array(encode_with_context(res, out_fmt, ctx), out_fmt, ctx, like=(a, b))


def _check_lanes(lanes, acc, acc_rounding, chunk, model) -> None:
    if isinstance(lanes, bool) or not isinstance(lanes, (int, np.integer)) or lanes < 1:
        raise ValueError(f"matmul: lanes must be a positive int or None, got {lanes!r}")
    if model is not None:
        raise ValueError("matmul: lanes= and model= exclude each other (a model fixes its "
                         "own accumulation order)")
    if chunk is not None:
        raise ValueError("matmul: lanes= and chunk= exclude each other")
    if _acc_format(acc) != _F32 or parse_rounding(acc_rounding) is not Rounding.RNE:
        raise ValueError(f"matmul: lanes= accumulates in fp32 with RNE, got "
                         f"acc={_acc_format(acc).name!r}, acc_rounding={acc_rounding!r}")


def _finish_shape(res: np.ndarray, squeeze_m: bool, squeeze_n: bool) -> np.ndarray:
    if squeeze_n:
        res = res[..., 0]
    if squeeze_m:
        res = res[..., 0, :] if not squeeze_n else res[..., 0]
    return res
