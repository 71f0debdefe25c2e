"""Applying a precision policy to the engine: :class:`Autocast` is the engine's precision
hook (:class:`lowprec.autograd.engine.Precision`) for a :class:`~lowprec.autograd.policy.Policy`.

``with Autocast(policy): loss = model(x)``: every GEMM of forward and backward goes
through :func:`lowprec.matmul` (with the policy's accumulator or tensor-core model and
promotion interval) with its operands cast as the policy says (per-tensor, per-block or
per-tile scaling included), activations are rounded to the storage format, and each
cast reports to an optional :class:`~lowprec.autograd.instrument.Tracker`.

Operands may carry batch dimensions: a is (..., m, k), b (..., k, n), transposes swap the
last two axes and scales run along each GEMM's reduction axis (the last axis of a, the
second-to-last of b).
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from ..formats import FloatFormat, Format, float32, get_format
from ..gemm import matmul as lp_matmul
from ..gemm_fast import matmul_f32
from ..lparray import LPArray
from ..quantize import decode, encode
from ..scaled import fp8_scale, quantize_scaled
from . import engine as _engine
from .engine import Precision, get_precision
from .instrument import Tracker
from .policy import ROLES, Policy, rounded_format
from .scaling import (AmaxHistory, CurrentScaling, FineGrainedScaling, MXScaling, NVFP4Scaling,
                      nvfp4_cast, random_hadamard, tile_quantize)
from .weight_update import derive_seed

__all__ = ["Autocast", "autocast", "current", "QTensor"]

_F32 = np.dtype(np.float32)


def _swap(x: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if x is None else x.swapaxes(-1, -2)


class QTensor(NamedTuple):
    """A GEMM operand after its cast: ``values`` (float32; with a format, the values of
    ``codes``) times ``scale`` (per element, float32: the tile scales of
    :class:`FineGrainedScaling`, constant along runs of the GEMM's reduction axis; None
    for 1) times ``inv`` (the per-tensor dequantization factor, None for 1)."""

    values: np.ndarray
    fmt: Optional[Format]
    inv: Optional[np.float32]
    codes: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None

    @property
    def T(self) -> "QTensor":
        """The operand with its last two axes swapped (values, codes and scales)."""
        return QTensor(_swap(self.values), self.fmt, self.inv, _swap(self.codes),
                       _swap(self.scale))

    def k_slice(self, ks: slice, axis: int) -> "QTensor":
        """The part ``ks`` of the reduction axis (-1 for a, -2 for b)."""
        idx = (Ellipsis, ks) if axis == -1 else (Ellipsis, ks, slice(None))
        return QTensor(self.values[idx], self.fmt, self.inv,
                       None if self.codes is None else self.codes[idx],
                       None if self.scale is None else self.scale[idx])

    def dequantized(self) -> np.ndarray:
        """fp32(values * scale) (the tile-scaled values read back; per-tensor ``inv`` is
        not applied)."""
        if self.scale is None:
            return self.values
        with np.errstate(over="ignore", invalid="ignore"):
            return (self.values * self.scale).astype(np.float32)

    def operand(self):
        """What :func:`lowprec.matmul` gets: an LPArray of the codes (so they are not
        rounded again), or the float32 values."""
        if self.fmt is None:
            return np.ascontiguousarray(self.values)
        return LPArray(np.ascontiguousarray(self.codes), self.fmt)


class Autocast(Precision):
    """A policy at work: per-tensor scaling state, instrumentation, reproducible seeds.

    Use as a context manager around the forward pass (it makes itself the engine's
    precision hook); the backward pass of each op uses the Autocast that was active when
    the op ran forward, as torch does.

    Args:
        policy: the :class:`~lowprec.autograd.policy.Policy` (default: fp32 everywhere).
        seed: seed of every stochastic rounding this context makes (operand casts with
            ``cast_rounding="sr"``, stochastic accumulation).
        tracker: an :class:`~lowprec.autograd.instrument.Tracker` that receives the
            statistics of every cast, or None.
        trace: record ``(op, role, format)`` for every op in ``.events`` (to check which
            op saw which format).
    """

    def __init__(self, policy: Optional[Policy] = None, *, seed: int = 0,
                 tracker: Optional[Tracker] = None, trace: bool = False):
        self.policy = policy if policy is not None else Policy()
        self.seed = int(seed)
        self.tracker = tracker
        self.events: Optional[List[Tuple[str, str, str]]] = [] if trace else None
        self._fmts = {r: self.policy.format(r) for r in ROLES}
        self._storage = rounded_format(self.policy.storage)
        self._delayed: Dict[str, AmaxHistory] = {}
        self._calls = 0
        self._active: list = []  # tokens of nested `with` blocks
        self._fast_for = self.policy
        self._fast_acc, self._fast_all = self._fast_paths(self.policy)

    def _fast_paths(self, p: Policy) -> Tuple[bool, bool]:
        """Which shortcuts give the general path's bits for policy ``p``:

        * ``acc``: the GEMM is the plain fp32 one (fp32 accumulator, RNE, no tensor-core
          model, no promotion interval), so float32 operand values go straight to
          :func:`lowprec.gemm_fast.matmul_f32` instead of through :func:`lowprec.matmul`
          (which would decode the same values and call the same kernel; it drops
          ``fma`` only where products are exact, where both give the same bits);
        * ``all``: besides, no role has a format, activations are stored in fp32 and
          there is no scaling recipe, so every cast is the identity and :meth:`matmul`
          and :meth:`matmul_backward` skip the casts altogether.

        Both hold only for Autocast's own cast and GEMM methods (a subclass overriding
        them gets the general path)."""
        own = type(self).cast is Autocast.cast and type(self)._gemm is Autocast._gemm
        acc = (own and p.acc is not None and get_format(p.acc) == float32
               and p.acc_rounding == "rne" and p.gemm_model is None and p.promote_every is None)
        return acc, (acc and p.scaling is None and self._storage is None
                     and all(f is None for f in self._fmts.values()))

    def __enter__(self) -> "Autocast":
        # what use_precision(self) does, without a generator per block
        self._active.append(_engine._PRECISION.set(self))
        return self

    def __exit__(self, *exc) -> None:
        _engine._PRECISION.reset(self._active.pop())

    def __repr__(self) -> str:
        return f"Autocast({self.policy.name!r})"

    # -- bookkeeping ------------------------------------------------------------------
    def note(self, op: str, role: str, fmt: Optional[Format]) -> None:
        """Record that ``op`` saw (or produced) ``role`` in ``fmt`` (when tracing)."""
        if self.events is not None:
            self.events.append((op, role, "fp32" if fmt is None else fmt.name))

    def _next_seed(self) -> int:
        self._calls += 1
        return derive_seed(self.seed, self._calls)

    def _overflow(self, fmt: Format) -> str:
        if self.policy.overflow is not None:
            return self.policy.overflow
        if self.policy.scaling is not None or not fmt.has_inf:
            return "saturate"
        return "inf"

    def _round(self, x: np.ndarray, fmt: Format) -> Tuple[np.ndarray, np.ndarray]:
        """(codes, float32 values) of x rounded into fmt as the policy says."""
        rnd = self.policy.cast_rounding
        seed = self._next_seed() if rnd == "sr" else None
        codes = encode(x, fmt, rounding=rnd, overflow=self._overflow(fmt), seed=seed,
                       nan="zero" if not fmt.has_nan else "raise")
        return codes, decode(codes, fmt, dtype=np.float32)

    # -- non-GEMM ops (the engine's hook) ---------------------------------------------------
    def fp32(self, data: np.ndarray, op: str) -> np.ndarray:
        """An op that autocast keeps in fp32: returned unchanged, noted for tracing."""
        self.note(op, "out", None)
        return data

    def activation(self, data: np.ndarray, op: str, exact: bool = False) -> np.ndarray:
        """An activation: rounded to the storage format (unchanged when it is fp32, for
        float64 data (gradient checks), or when ``exact`` says the op cannot leave its
        input's format, as relu)."""
        self.note(op, "out", self._storage)
        if self._storage is None or data.dtype == np.float64 or exact:
            return data
        return self._round(data, self._storage)[1]

    #: Old name of :meth:`activation`.
    store = activation

    # -- casts ------------------------------------------------------------------------
    def cast(self, x: np.ndarray, role: str, key: str, axis: int = -1) -> QTensor:
        """Cast a GEMM operand as the policy says for ``role``.

        Args:
            x: the operand (float32; float64 passes through unrounded when the policy
                has no format for the role).
            role: "activation", "weight" or "gradient".
            key: tracked-tensor name (delayed-scaling state, instrumentation).
            axis: the GEMM's reduction axis of ``x`` (used by block and tile scaling).

        Returns:
            A :class:`QTensor`.
        """
        fmt = self._fmts[role]
        tk = f"{key}/{role}"
        if fmt is None:
            if self.tracker is not None:
                self.tracker.record(tk, role, None, x, x)
            return QTensor(x, None, None)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        sc = self.policy.scaling
        if isinstance(sc, MXScaling):
            return self._cast_mx(x, fmt, role, tk, axis, sc)
        if isinstance(sc, FineGrainedScaling):
            return self._cast_tiles(x, fmt, role, tk, axis, sc)
        if isinstance(sc, NVFP4Scaling):
            return self._cast_nvfp4(x, fmt, role, tk, axis, sc)
        amax = None
        if sc is None:
            xs, inv = x, None
        else:
            ax = np.abs(x)
            # TE's amax kernel reduces with fmaxf: NaN is ignored, an infinity is kept
            amax_seen = np.float32(np.fmax.reduce(ax, axis=None)) if x.size else np.float32(0)
            finite = np.isfinite(ax)
            amax = amax_seen if np.isfinite(amax_seen) else (
                np.float32(ax[finite].max()) if finite.any() else np.float32(0))
            if isinstance(sc, CurrentScaling):
                s = np.float32(fp8_scale(amax_seen, fmt))
            else:
                h = self._delayed.get(tk)
                if h is None:
                    h = self._delayed[tk] = AmaxHistory(int(sc.amax_history_len))
                s = h.scale
                h.push(amax_seen, sc, fmt.max)
            with np.errstate(over="ignore", invalid="ignore"):
                xs = x * s
            inv = np.float32(np.float32(1) / s)
        codes, q = self._round(xs, fmt)
        if self.tracker is not None:
            self.tracker.record(tk, role, fmt, xs, q, amax)
        return QTensor(q, fmt, inv, codes)

    def _cast_mx(self, x, fmt, role, tk, axis, sc: MXScaling) -> QTensor:
        ax = axis % x.ndim
        st = quantize_scaled(x, fmt, granularity="block", axis=ax, block_size=sc.block_size,
                             scale_fmt="float8_e8m0fnu", scale_rule=sc.scale_rule,
                             rounding=self.policy.cast_rounding, saturate=True,
                             seed=self._next_seed() if self.policy.cast_rounding == "sr" else None)
        deq = st.dequantize(np.float32)
        if self.tracker is not None:
            s = np.repeat(np.asarray(st.scales, np.float64), sc.block_size, axis=ax)
            s = np.take(s, np.arange(x.shape[ax]), axis=ax)
            with np.errstate(invalid="ignore"):
                xs = x.astype(np.float64) / s
            self.tracker.record(tk, role, fmt, xs, decode(st.codes, fmt, np.float64))
        # Block scales are powers of two, so the dequantized elements are exact float32
        # values and the products are exact: the GEMM sees them as fp32 inputs.
        return QTensor(deq, None, None)

    def _cast_tiles(self, x, fmt, role, tk, axis, sc: FineGrainedScaling) -> QTensor:
        rnd = self.policy.cast_rounding
        codes, scale = tile_quantize(x, fmt, axis=axis, tile=sc.tile,
                                     block=sc.weight_block if role == "weight" else None,
                                     rounding=rnd, seed=self._next_seed() if rnd == "sr" else None)
        if self.tracker is not None:
            with np.errstate(invalid="ignore"):
                xs = x.astype(np.float64) / scale
            self.tracker.record(tk, role, fmt, xs, decode(codes, fmt, np.float64))
        return QTensor(decode(codes, fmt, np.float32), fmt, None, codes, scale)

    def _cast_nvfp4(self, x, fmt, role, tk, axis, sc: NVFP4Scaling) -> QTensor:
        sr = role == "gradient" and sc.stochastic_gradients
        rnd = "sr" if sr else self.policy.cast_rounding
        codes, bscale, g = nvfp4_cast(x, fmt, axis=axis, block_size=sc.block_size,
                                      two_d=sc.weight_2d and role == "weight", rounding=rnd,
                                      seed=self._next_seed() if rnd == "sr" else None)
        elems = decode(codes, fmt, np.float32)
        if self.tracker is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                xs = x.astype(np.float64) / (bscale.astype(np.float64) * np.float64(g))
            self.tracker.record(tk, role, fmt, xs, elems.astype(np.float64))
        # element x E4M3 block scale is exact in fp32 (at most 4 + 4 significant bits for
        # fp4/fp8 elements); the tensor scale is the GEMM's alpha (QTensor.inv)
        with np.errstate(invalid="ignore"):
            vals = (elems * bscale).astype(np.float32)
        return QTensor(vals, None, g)

    # -- GEMMs (the engine's hook) -------------------------------------------------------
    def _gemm(self, a: QTensor, b: QTensor, c: Optional[np.ndarray] = None) -> np.ndarray:
        if a.scale is not None or b.scale is not None:
            return self._gemm_tiles(a, b, c)
        p = self.policy
        scaled = a.inv is not None or b.inv is not None
        if p.acc is None:  # float64 reference product (gradient checks)
            out = np.matmul(a.values.astype(np.float64), b.values.astype(np.float64))
            if scaled:
                out = out * np.float64(a.inv if a.inv is not None else 1) \
                    * np.float64(b.inv if b.inv is not None else 1)
            return out if c is None else out + np.asarray(c, np.float64)
        # (the shortcuts were decided for the policy given at construction)
        # Float operands only: lowprec.matmul takes integer formats to its integer path.
        if (self._fast_acc and p is self._fast_for and a.values.dtype == _F32
                and b.values.dtype == _F32 and (a.fmt is None or isinstance(a.fmt, FloatFormat))
                and (b.fmt is None or isinstance(b.fmt, FloatFormat))):
            out = matmul_f32(a.values, b.values, None if scaled else c, fused=p.fma)
            # lowprec.matmul's scale_a / scale_b: (r * scale_a) * scale_b in fp32
            if a.inv is not None:
                out = (out * np.float32(a.inv)).astype(np.float32)
            if b.inv is not None:
                out = (out * np.float32(b.inv)).astype(np.float32)
            if scaled and c is not None:
                out = (out + np.asarray(c, np.float32)).astype(np.float32)
            return out
        seed = self._next_seed() if p.acc_rounding == "sr" else None
        # Per-tensor dequantization as torch._scaled_mm: (r * scale_a) * scale_b in fp32.
        # Its bias is added after the scales (the epilogue), so c joins the accumulation
        # only without them.
        out = lp_matmul(a.operand(), b.operand(), c=None if scaled else c, acc=p.acc,
                        acc_rounding=p.acc_rounding, fma=p.fma, model=p.gemm_model, seed=seed,
                        chunk=p.promote_every, scale_a=a.inv, scale_b=b.inv)
        if scaled and c is not None:
            out = (out + np.asarray(c, np.float32)).astype(np.float32)
        return out

    def _gemm_tiles(self, a: QTensor, b: QTensor, c: Optional[np.ndarray] = None
                    ) -> np.ndarray:
        """The GEMM of tile-scaled operands (:class:`FineGrainedScaling`), in K chunks of
        ``tile``: each chunk's product by :func:`lowprec.matmul` (the policy's
        accumulator or model), times the a-scale and then the b-scale of the chunk (fp32
        RNE each), added into an fp32 total that starts at +0, chunks in K order; a bias
        is added to the total last (the kernel's epilogue)."""
        p = self.policy
        if p.acc is None:  # float64 reference product of the dequantized operands
            av = a.values.astype(np.float64) * (1.0 if a.scale is None else a.scale)
            bv = b.values.astype(np.float64) * (1.0 if b.scale is None else b.scale)
            out = np.matmul(av, bv)
            return out if c is None else out + np.asarray(c, np.float64)
        t = p.scaling.tile
        K = a.values.shape[-1]
        shape = np.broadcast_shapes(a.values.shape[:-2], b.values.shape[:-2]) + (
            a.values.shape[-2], b.values.shape[-1])
        total = np.zeros(shape, np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            for k0 in range(0, K, t):
                ks = slice(k0, k0 + t)
                seed = self._next_seed() if p.acc_rounding == "sr" else None
                r = lp_matmul(a.k_slice(ks, -1).operand(), b.k_slice(ks, -2).operand(),
                              acc=p.acc, acc_rounding=p.acc_rounding, fma=p.fma,
                              model=p.gemm_model, seed=seed, chunk=p.promote_every)
                if a.scale is not None:
                    r = (r * a.scale[..., :, k0:k0 + 1]).astype(np.float32)
                if b.scale is not None:
                    r = (r * b.scale[..., k0:k0 + 1, :]).astype(np.float32)
                total = (total + r).astype(np.float32)
            if c is not None:
                total = (total + np.asarray(c, np.float32)).astype(np.float32)
        return total

    def matmul(self, a: np.ndarray, b: np.ndarray, key: str,
               c: Optional[np.ndarray] = None) -> Tuple[np.ndarray, tuple]:
        """Forward GEMM ``c + a @ b`` (a: activations (..., m, k), b: weights (..., k, n);
        batched operands, as the attention products, broadcast their leading axes).

        Args:
            a, b: the operands; they are cast as the policy says for their role.
            key: tracked-tensor name of the product (usually the layer's).
            c: optional addend (a fused bias), not cast by the policy: it enters the
                accumulator as float32 values (after the dequantization scales under
                per-tensor scaling, as torch._scaled_mm's bias).

        Returns:
            ``(output, saved)``: the output (rounded to the storage format) and what the
            backward pass needs.
        """
        if (self._fast_all and self.policy is self._fast_for and a.dtype == _F32
                and b.dtype == _F32):
            # fp32 policy: the casts are identities; only their side effects remain
            if self.tracker is not None:
                self.tracker.record(f"{key}/activation", "activation", None, a, a)
                self.tracker.record(f"{key}/weight", "weight", None, b, b)
            if self.events is not None:
                self.note("matmul", "activation", None)
                self.note("matmul", "weight", None)
                self.note("matmul", "out", None)
            out = matmul_f32(a, b, c, fused=self.policy.fma)
            return out, (a, b, None, None)  # the casts (identities) are made if needed
        qa = self.cast(a, "activation", key, axis=-1)
        qb = self.cast(b, "weight", key, axis=-2)
        self.note("matmul", "activation", self._fmts["activation"])
        self.note("matmul", "weight", self._fmts["weight"])
        out = self._gemm(qa, qb, c).astype(a.dtype, copy=False)  # float32 GEMMs upcast exactly
        out = self.activation(out, "matmul")
        return out, (a, b, qa, qb)

    #: Old name of :meth:`matmul`.
    matmul_forward = matmul

    def matmul_backward(self, g: np.ndarray, saved: tuple, key: str, need_a: bool,
                        need_b: bool) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """Backward GEMMs: ``g @ b.T`` (data gradient) and ``a.T @ g`` (weight gradient),
        with ``g`` cast to the gradient format (``.T``: the last two axes swapped).

        Under per-block or per-tile scaling (:class:`MXScaling`, :class:`FineGrainedScaling`,
        :class:`NVFP4Scaling`) the scales must run along each GEMM's reduction axis, so the
        operands are cast again for each GEMM (TE's row- and column-wise copies): weights
        with 2-D blocks keep their forward cast, transposed; DeepSeek-V3's wgrad activation
        is the forward cast read back and re-tiled; NVFP4 transforms both wgrad operands by
        the random Hadamard transform first."""
        a, b, qa, qb = saved
        ga = gb = None
        if not (need_a or need_b):
            return ga, gb
        if qa is None:  # saved by the fp32 shortcut: what cast() returns for float32
            qa, qb = QTensor(a, None, None), QTensor(b, None, None)
        if (self._fast_all and self.policy is self._fast_for and g.dtype == _F32
                and a.dtype == _F32 and b.dtype == _F32):
            if self.tracker is not None:
                self.tracker.record(f"{key}/gradient", "gradient", None, g, g)
            fused = self.policy.fma
            # (ndarray.swapaxes: numpy's function form costs a dispatch layer more)
            ga = matmul_f32(g, b.swapaxes(-1, -2), None, fused) if need_a else None
            gb = matmul_f32(a.swapaxes(-1, -2), g, None, fused) if need_b else None
            if self.events is not None:
                if need_a:
                    self.note("matmul.dgrad", "gradient", None)
                if need_b:
                    self.note("matmul.wgrad", "gradient", None)
            return ga, gb
        sc = self.policy.scaling
        if isinstance(sc, (MXScaling, FineGrainedScaling, NVFP4Scaling)):
            if need_a:
                qg = self.cast(g, "gradient", key, axis=-1)  # first: the seeds' order
                w2d = isinstance(sc, FineGrainedScaling) or (isinstance(sc, NVFP4Scaling)
                                                             and sc.weight_2d)
                ga = self._gemm(qg, qb.T if w2d else self.cast(b, "weight", key, axis=-1).T)
            if need_b:
                x = qa.dequantized() if isinstance(sc, FineGrainedScaling) else a
                gg = g
                if isinstance(sc, NVFP4Scaling) and sc.hadamard:
                    d = sc.signs()
                    x, gg = random_hadamard(x, -2, d), random_hadamard(g, -2, d)
                gb = self._gemm(self.cast(x, "activation", key, axis=-2).T,
                                self.cast(gg, "gradient", key, axis=-2))
        else:
            qg = self.cast(g, "gradient", key, axis=-1)
            if need_a:
                ga = self._gemm(qg, qb.T)
            if need_b:
                gb = self._gemm(qa.T, qg)
        gfmt = self._fmts["gradient"]
        if need_a:
            self.note("matmul.dgrad", "gradient", gfmt)
        if need_b:
            self.note("matmul.wgrad", "gradient", gfmt)
        ga = None if ga is None else ga.astype(a.dtype, copy=False)
        gb = None if gb is None else gb.astype(b.dtype, copy=False)
        return ga, gb


# Autocast's matmul_backward returns new arrays: the engine may keep them as .grad uncopied
# (a subclass may not, so it is the exact type that is registered)
_engine._OWN_HOOKS.add(Autocast)

# The fp32 Autocast that current() reports outside any `with` block; its results equal
# the engine's default hook's.
_FP32 = Autocast(Policy())


def current() -> Autocast:
    """The active :class:`Autocast`, or a plain fp32 one when no Autocast is the engine's
    precision hook."""
    hook = get_precision()
    return hook if isinstance(hook, Autocast) else _FP32


def autocast(policy: Optional[Policy] = None, **kw) -> Autocast:
    """``with autocast(policy): ...``; keyword arguments as :class:`Autocast`."""
    return Autocast(policy, **kw)
