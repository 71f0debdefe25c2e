"""A tiny reverse-mode autograd engine over numpy arrays, in the spirit of micrograd.

Every op makes a new :class:`Tensor` that remembers its inputs and a closure that pushes
the output's gradient back to them; :meth:`Tensor.backward` runs the closures in reverse
topological order. Gradients accumulate (a tensor used twice gets both contributions) and
are summed back over broadcast dimensions. Arithmetic runs in the arrays' own dtype
(float32 for training, float64 for gradient checks).

The engine knows values and gradients only. How values are rounded is a hook,
:class:`Precision`, that the engine calls for the ops a mixed-precision policy cares about:
GEMMs (:meth:`Tensor.matmul`), ops whose outputs are activations kept in a low format
(relu, gelu, tanh, sigmoid) and ops kept in fp32 (exp, log, softmax, ...). The active hook
is set with :func:`use_precision`; :class:`lowprec.autograd.autocast.Autocast` is the hook
that applies a precision policy. Losses and normalisation live in
:mod:`lowprec.autograd.ops`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ..gemm import matmul as _lp_matmul
from ..gemm_fast import matmul_f32 as _matmul_f32

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "tensor", "Precision", "get_precision",
           "use_precision"]

_GRAD_ENABLED = contextvars.ContextVar("lowprec_grad_enabled", default=True)
_F32 = np.dtype(np.float32)
_UINT = {n: np.dtype(f"u{n}") for n in (2, 4, 8)}  # float itemsize -> unsigned of that width
_RELU: list = []  # the one-pass float32 ReLU's entry (lowprec._kernels.update), on first use


class Precision:
    """The hook through which the engine rounds values; this base class is the default.

    The engine calls the active hook (see :func:`use_precision`) for every GEMM and for
    the ops a precision policy treats specially; everything else runs in the arrays' own
    dtype. Subclasses (:class:`lowprec.autograd.autocast.Autocast`) override the methods.
    The default rounds nothing but the GEMMs, which run through :func:`lowprec.matmul`
    with an fp32 accumulator (float64 operands are rounded to float32 first), as the
    fp32 policy does.
    """

    def matmul(self, a: np.ndarray, b: np.ndarray, key: str,
               c: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Any]:
        """The forward GEMM ``c + a @ b``, batched over leading axes as numpy's matmul.

        Args:
            a: (..., m, k) activations.
            b: (..., k, n) weights (in attention, the second activation operand); the
                batch axes of ``a`` and ``b`` broadcast against each other.
            key: names the product in per-tensor state (amax histories, statistics).
            c: optional addend broadcastable to (..., m, n) that enters the accumulation
                (a bias fused into the GEMM, as torch's addmm and cuBLASLt's epilogue).

        Returns:
            ``(output, saved)``: the (..., m, n) output in ``a``'s dtype and whatever
            :meth:`matmul_backward` needs.
        """
        if a.dtype == _F32 and b.dtype == _F32:  # the same kernel, without the dispatch
            return _matmul_f32(a, b, c), (a, b)
        return _lp_matmul(a, b, c=c).astype(a.dtype, copy=False), (a, b)

    def matmul_backward(self, g: np.ndarray, saved: Any, key: str, need_a: bool,
                        need_b: bool) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """The backward GEMMs ``g @ b^T`` (data gradient) and ``a^T @ g`` (weight
        gradient), where ``^T`` swaps the last two axes.

        Args:
            g: gradient of the (..., m, n) output.
            saved: what :meth:`matmul` returned for this product.
            key: as in :meth:`matmul`.
            need_a, need_b: which of the two gradients to compute.

        Returns:
            ``(grad_a, grad_b)``, None for a gradient not needed; each has the output's
            batch axes (the engine sums them back over the axes its operand was broadcast
            along).
        """
        a, b = saved
        if g.dtype == _F32 and a.dtype == _F32 and b.dtype == _F32:
            return (_matmul_f32(g, _mT(b)) if need_a else None,
                    _matmul_f32(_mT(a), g) if need_b else None)
        ga = _lp_matmul(g, _mT(b)).astype(a.dtype, copy=False) if need_a else None
        gb = _lp_matmul(_mT(a), g).astype(b.dtype, copy=False) if need_b else None
        return ga, gb

    def activation(self, data: np.ndarray, op: str, exact: bool = False) -> np.ndarray:
        """The output of an op that autocast keeps in the low dtype (relu, gelu, tanh,
        sigmoid). ``exact``: the op only selects input values (relu), so its output is
        already in the input's format. The default returns ``data`` unchanged."""
        return data

    def fp32(self, data: np.ndarray, op: str) -> np.ndarray:
        """The output of an op that autocast keeps in fp32 (exp, log, softmax,
        log_softmax, layer_norm, losses). The default returns ``data`` unchanged."""
        return data


_DEFAULT_PRECISION = Precision()
# Hooks whose matmul_backward returns arrays that nobody else holds (Autocast adds itself)
_OWN_HOOKS = {Precision}
_PRECISION: contextvars.ContextVar = contextvars.ContextVar("lowprec_precision",
                                                            default=_DEFAULT_PRECISION)


def get_precision() -> Precision:
    """The active precision hook (the default :class:`Precision` outside any
    :func:`use_precision` block)."""
    return _PRECISION.get()


@contextlib.contextmanager
def use_precision(hook: Precision) -> Iterator[Precision]:
    """Make ``hook`` the active precision hook inside the block (blocks nest).

    Raises:
        TypeError: when ``hook`` is not a :class:`Precision`.
    """
    if not isinstance(hook, Precision):
        raise TypeError(f"use_precision needs a Precision hook, got {type(hook).__name__}")
    token = _PRECISION.set(hook)
    try:
        yield hook
    finally:
        _PRECISION.reset(token)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this context, ops record no graph (for evaluation)."""
    token = _GRAD_ENABLED.set(False)
    try:
        yield
    finally:
        _GRAD_ENABLED.reset(token)


def is_grad_enabled() -> bool:
    """Whether ops currently record the graph."""
    return _GRAD_ENABLED.get()


def _leaf_backward() -> None:
    """A leaf has nothing to propagate to."""


def _freed_backward() -> None:
    """Stands in for the closure of a node whose graph was freed by backward()."""
    raise RuntimeError("the graph was freed by an earlier backward()")


def _mT(x: np.ndarray) -> np.ndarray:
    """``x`` with its last two axes swapped (the matrix transpose of each batch entry)."""
    return x.swapaxes(-1, -2)


def _unbroadcast(g: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """Sum a gradient back to the shape of an operand that was broadcast."""
    if g.shape == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class Tensor:
    """An array with a gradient.

    Args:
        data: array-like; float arrays keep their dtype, anything else becomes float32.
        requires_grad: whether :meth:`backward` should fill ``.grad`` for this tensor.
        name: optional name (parameters get theirs from their module; the precision
            policy uses it to key per-tensor state such as fp8 amax histories).

    Attributes:
        data: the numpy array.
        grad: numpy array of the same shape, or None before the first backward.
    """

    __array_priority__ = 100  # make ndarray (op) Tensor defer to Tensor's reflected op
    __slots__ = ("data", "grad", "requires_grad", "name", "_prev", "_backward", "_op",
                 "_retain")

    def __init__(self, data, requires_grad: bool = False, name: str = "",
                 _prev: Tuple["Tensor", ...] = (), _op: str = ""):
        a = np.asarray(data)
        if a.dtype.kind not in "fiub":
            what = "complex" if a.dtype.kind == "c" else f"dtype {a.dtype}"
            raise TypeError(f"Tensor data must be real numbers, got {what}")
        self.data = a if a.dtype.kind == "f" else a.astype(np.float32)
        self.grad: Optional[np.ndarray] = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._prev = _prev
        self._backward: Callable[[], None] = _leaf_backward
        self._op = _op
        self._retain = False

    # --- plumbing -------------------------------------------------------------------
    def _lift(self, other) -> "Tensor":
        if isinstance(other, Tensor):
            return other
        return Tensor(np.asarray(other, dtype=self.data.dtype))

    def _make(self, data: np.ndarray, parents: Sequence["Tensor"], op: str) -> "Tensor":
        """Output of an op; records the graph only when some parent needs a gradient."""
        need = False
        if _GRAD_ENABLED.get():
            for p in parents:
                if p.requires_grad:
                    need = True
                    break
        if type(data) is np.ndarray and data.dtype.kind == "f":
            # what __init__ would do, without its checks (ops make float arrays)
            out = Tensor.__new__(Tensor)
            out.data = data
            out.grad = None
            out.requires_grad = need
            out.name = ""
            out._prev = tuple(parents) if need else ()
            out._backward = _leaf_backward
            out._op = op
            out._retain = False
            return out
        return Tensor(data, requires_grad=need, _prev=tuple(parents) if need else (), _op=op)

    def _accumulate(self, g: np.ndarray, owned: bool = False) -> None:
        """Add ``g`` into ``.grad`` (summed back over broadcast axes, in this tensor's
        dtype). ``owned``: ``g`` is a new array no one else holds, so it may become
        ``.grad`` without a copy (the copy keeps a gradient handed to two leaves, as
        ``+`` does, from being shared by both)."""
        if not self.requires_grad:
            return
        if type(g) is not np.ndarray:
            g = np.asarray(g)
        shape = self.data.shape
        if g.shape != shape:
            h = _unbroadcast(g, shape)
            owned = owned or h is not g  # a sum makes a new array
            g = h
        dt = self.data.dtype
        if g.dtype != dt:
            g = g.astype(dt)
            owned = True
        if self.grad is None:
            # A leaf's (or retained) .grad is the user's and may be changed in place
            # (clip_grad_norm_): it gets its own array. An inner tensor's .grad lives only
            # while backward() runs, where nothing writes into gradients, so it may share.
            self.grad = g if owned or (self._prev and not self._retain) else g.copy()
        else:
            self.grad = self.grad + g

    @property
    def is_leaf(self) -> bool:
        """Whether this tensor was made by the user rather than by an op (torch's rule:
        only leaves keep ``.grad`` after :meth:`backward`)."""
        return not self._prev

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` of this non-leaf tensor after :meth:`backward` (as torch's
        ``retain_grad``); returns self."""
        self._retain = True
        return self

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d self / d leaf into ``.grad`` of every leaf that requires a gradient.

        As in torch: gradients accumulate into leaves across calls; non-leaf tensors keep
        no ``.grad`` unless :meth:`retain_grad` was called; the graph is freed after the
        pass, so a second backward through it raises unless the first passed
        ``retain_graph=True``.

        Args:
            grad: gradient of the final objective with respect to this tensor; defaults
                to ones (so a scalar loss gets d loss / d loss = 1).
            retain_graph: keep the graph for another backward pass.

        Raises:
            ValueError: when this tensor does not require a gradient, or ``grad`` has the
                wrong shape.
            RuntimeError: when the graph was freed by an earlier backward.
        """
        if not self.requires_grad:
            raise ValueError("backward() on a tensor that does not require grad")
        # Iterative DFS (deep graphs must not hit the recursion limit): a node is appended
        # after every parent that needs a gradient, so reversed(topo) is a valid order.
        # Parents are visited last to first: the order, and so the order in which a
        # gradient's contributions are summed, is the one this engine always had.
        topo: list = []
        seen = {id(self)}
        stack = [(self, reversed(self._prev))]
        while stack:
            v, parents = stack[-1]
            for p in parents:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    stack.append((p, reversed(p._prev)))
                    break
            else:
                stack.pop()
                topo.append(v)
        inner = []  # non-leaf tensors
        for v in topo:
            if v._prev:
                if v._backward is _freed_backward:
                    raise RuntimeError("Trying to backward through the graph a second time: "
                                       "its intermediate results were freed by the first "
                                       "backward(); pass retain_graph=True to the first call "
                                       "to keep them")
                inner.append(v)
        d = self.data
        g = np.ones(d.shape, d.dtype) if grad is None else np.asarray(grad, d.dtype)
        if g.shape != d.shape:
            raise ValueError(f"grad has shape {g.shape}, tensor has {d.shape}")
        # Non-leaf tensors hold their incoming gradient in .grad only while the pass runs
        # (it starts empty: an earlier pass must not be counted again).
        kept = {}
        for v in inner:
            if v._retain:
                kept[id(v)] = v.grad
            v.grad = None
        self._accumulate(g)
        for v in reversed(inner):
            if v.grad is not None:
                v._backward()
        for v in inner:
            if v._retain:
                old = kept[id(v)]
                v.grad = v.grad if old is None or v.grad is None else old + v.grad
            else:
                v.grad = None
            if not retain_graph:
                v._backward = _freed_backward

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data, name=self.name)

    def numpy(self) -> np.ndarray:
        """The underlying array."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        return float(self.data.reshape(-1)[0]) if self.data.size == 1 else float(self.data)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        rg = ", requires_grad=True" if self.requires_grad else ""
        nm = f", name={self.name!r}" if self.name else ""
        return f"Tensor({np.array2string(self.data, threshold=20)}{rg}{nm})"

    # --- arithmetic -----------------------------------------------------------------
    def __add__(self, other) -> "Tensor":
        other = self._lift(other)
        out = self._make(self.data + other.data, (self, other), "+")

        def _backward():
            self._accumulate(out.grad)
            other._accumulate(out.grad)
        out._backward = _backward
        return out

    def __sub__(self, other) -> "Tensor":
        other = self._lift(other)
        out = self._make(self.data - other.data, (self, other), "-")

        def _backward():
            self._accumulate(out.grad)
            other._accumulate(-out.grad)
        out._backward = _backward
        return out

    def __mul__(self, other) -> "Tensor":
        other = self._lift(other)
        out = self._make(self.data * other.data, (self, other), "*")

        def _backward():
            self._accumulate(out.grad * other.data)
            other._accumulate(out.grad * self.data)
        out._backward = _backward
        return out

    def __truediv__(self, other) -> "Tensor":
        other = self._lift(other)
        out = self._make(self.data / other.data, (self, other), "/")

        def _backward():
            self._accumulate(out.grad / other.data)
            other._accumulate(-out.grad * self.data / (other.data * other.data))
        out._backward = _backward
        return out

    def __neg__(self) -> "Tensor":
        out = self._make(-self.data, (self,), "neg")

        def _backward():
            self._accumulate(-out.grad)
        out._backward = _backward
        return out

    def __pow__(self, k: Union[int, float]) -> "Tensor":
        if isinstance(k, Tensor):
            raise TypeError("only a constant exponent is supported: use exp/log for x ** y")
        out = self._make(self.data ** k, (self,), f"**{k}")

        def _backward():
            self._accumulate(out.grad * k * self.data ** (k - 1))
        out._backward = _backward
        return out

    def __radd__(self, other) -> "Tensor":
        return self + other

    def __rsub__(self, other) -> "Tensor":
        return self._lift(other) - self

    def __rmul__(self, other) -> "Tensor":
        return self * other

    def __rtruediv__(self, other) -> "Tensor":
        return self._lift(other) / self

    # --- matrix product: the one op that runs in emulated low precision -----------
    def matmul(self, other, key: str = "", c: Optional["Tensor"] = None,
               bias: Optional["Tensor"] = None) -> "Tensor":
        """``self @ other`` (plus ``c`` inside the accumulation), as the active precision
        hook computes it (see :class:`Precision`): (m, k) @ (k, n), or batched,
        (..., m, k) @ (..., k, n) with the batch axes broadcast as numpy's matmul (the
        attention products). An operand broadcast along batch axes gets its gradient
        as the batched products summed in its dtype: to make a weight gradient one GEMM,
        flatten the activations to 2-D first (as :func:`lowprec.autograd.ops.linear` does).

        Args:
            other: right operand (k x n, or ... x k x n).
            key: names this product's operands in per-tensor state (fp8 amax histories,
                instrumentation); defaults to ``other.name`` (a weight's name).
            c: optional addend broadcastable to the output, e.g. a bias of shape (n,),
                fused into the GEMM: it enters the accumulation instead of being added to
                the rounded product. Its gradient is the output gradient summed over the
                broadcast dimensions.
            bias: optional tensor added to the rounded product, as ``(self @ other) +
                bias`` computes it (same values and gradients), in one graph node
                instead of two when ``bias`` has the product's dtype and trailing shape.

        Raises:
            ValueError: for operands with fewer than 2 axes, inner sizes that differ, batch
                axes that do not broadcast, or a ``c`` that does not broadcast to the output.
        """
        other = self._lift(other)
        sa, sb = self.data.shape, other.data.shape
        if len(sa) < 2 or len(sb) < 2 or sa[-1] != sb[-2]:
            raise ValueError(f"matmul needs operands (..., m, k) @ (..., k, n), got "
                             f"{sa} @ {sb}")
        if len(sa) == 2 and len(sb) == 2:
            out_shape = (sa[0], sb[1])
        else:
            try:
                batch = np.broadcast_shapes(sa[:-2], sb[:-2])
            except ValueError:
                raise ValueError(f"matmul batch axes do not broadcast: {sa} @ {sb}") from None
            out_shape = batch + (sa[-2], sb[-1])
        parents = (self, other)
        if c is not None:
            c = self._lift(c)
            try:
                fits = np.broadcast_shapes(c.shape, out_shape) == out_shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"matmul addend c of shape {c.shape} does not broadcast to "
                                 f"the output shape {out_shape}")
            parents = (self, other, c)
        hook = get_precision()  # backward uses the hook of the forward pass, as torch does
        key = key or other.name or "matmul"
        data, saved = hook.matmul(self.data, other.data, key,
                                  None if c is None else c.data)
        if bias is not None:
            bias = self._lift(bias)
            bd = bias.data
            if bd.dtype != data.dtype or bd.ndim > data.ndim \
                    or bd.shape != data.shape[data.ndim - bd.ndim:]:
                return self.matmul(other, key, c) + bias  # broadcasting or promotion: two nodes
            data = data + bd  # what the "+" node would compute
            parents = parents + (bias,)
        out = self._make(data, parents, "@")
        # the built-in hooks return new arrays (no copy needed to keep them as .grad)
        owned = type(hook) in _OWN_HOOKS

        def _backward():
            if bias is not None:  # as the "+" node did, before the product's backward
                bias._accumulate(out.grad)
            ga, gb = hook.matmul_backward(out.grad, saved, key, self.requires_grad,
                                          other.requires_grad)
            if ga is not None:
                self._accumulate(ga, owned)
            if gb is not None:
                other._accumulate(gb, owned)
            if c is not None:
                c._accumulate(out.grad)
        out._backward = _backward
        return out

    __matmul__ = matmul

    def __rmatmul__(self, other) -> "Tensor":
        return self._lift(other).matmul(self)

    # --- reductions and shape -------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Sum over ``axis`` (all axes by default), in the array's dtype."""
        out = self._make(np.sum(self.data, axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():
            g = out.grad
            if axis is not None and not keepdims:
                g = np.expand_dims(g, axis)
            self._accumulate(np.broadcast_to(g, self.shape))
        out._backward = _backward
        return out

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        """Mean over ``axis`` (all axes by default)."""
        n = self.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / n)

    def reshape(self, *shape) -> "Tensor":
        """A view with a new shape (``reshape(2, 3)`` or ``reshape((2, 3))``)."""
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        out = self._make(self.data.reshape(shape), (self,), "reshape")

        def _backward():
            self._accumulate(out.grad.reshape(self.shape))
        out._backward = _backward
        return out

    def transpose(self, *axes) -> "Tensor":
        """Permute axes (reverse them when none are given)."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(axes) if axes else tuple(reversed(range(self.ndim)))
        out = self._make(np.transpose(self.data, axes), (self,), "transpose")

        def _backward():
            self._accumulate(np.transpose(out.grad, np.argsort(axes)))
        out._backward = _backward
        return out

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    # --- elementwise nonlinearities ---------------------------------------------------
    def _unary(self, data: np.ndarray, dfdx: Callable[[], np.ndarray], op: str,
               low: bool, exact: bool = False) -> "Tensor":
        """An elementwise op whose output the precision hook sees as an activation
        (``low``: torch autocast keeps relu/gelu/tanh/sigmoid in the low dtype) or as an
        fp32 op (exp/log). ``exact``: see :meth:`Precision.activation`."""
        hook = get_precision()
        data = hook.activation(data, op, exact) if low else hook.fp32(data, op)
        out = self._make(data, (self,), op)

        def _backward():
            self._accumulate(out.grad * dfdx())
        out._backward = _backward
        return out

    def relu(self) -> "Tensor":
        """max(x, 0); an activation already in the input's format."""
        x = self.data
        # The selects below are where(x > 0, v, +0) done as a bitwise and with a mask of
        # all ones or all zeros (the same bits, several times faster than np.where).
        bits = _UINT.get(x.dtype.itemsize) or np.dtype(f"u{x.dtype.itemsize}")
        if x.dtype == _F32 and x.size:  # one pass for the four below (same bits)
            if not _RELU:
                from .._kernels.update import RELU  # numba: not at import

                _RELU.append(RELU)
            y = np.empty(x.shape, _F32)
            mask = np.empty(x.shape, bits)
            _RELU[0].get()(x.ravel(), y.ravel(), mask.ravel())
        else:
            mask = (x > 0).astype(bits)
            np.negative(mask, out=mask)  # 1 -> all ones (unsigned wrap-around)
            y = np.bitwise_and(x.view(bits), mask).view(x.dtype)
        # (what _unary does, without the derivative closure that _backward below replaces)
        out = self._make(get_precision().activation(y, "relu", True), (self,), "relu")

        def _backward():  # a select, as torch's threshold_backward: masked gradients are +0
            g = out.grad
            if g.dtype == x.dtype and g.shape == mask.shape:
                gx = np.bitwise_and(g.view(bits), mask).view(g.dtype)
            else:
                gx = np.where(mask != 0, g, np.zeros_like(g))
            self._accumulate(gx, True)
        out._backward = _backward
        return out

    def tanh(self) -> "Tensor":
        """Hyperbolic tangent; an activation (see :meth:`Precision.activation`)."""
        t = np.tanh(self.data)
        return self._unary(t, lambda: 1 - t * t, "tanh", True)

    def sigmoid(self) -> "Tensor":
        """Logistic sigmoid 1 / (1 + e^-x), evaluated without overflow; an activation."""
        x = self.data
        e = np.exp(-np.abs(x))  # stable on both sides
        s = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
        return self._unary(s, lambda: s * (1 - s), "sigmoid", True)

    def exp(self) -> "Tensor":
        """e^x; an fp32 op (see :meth:`Precision.fp32`)."""
        e = np.exp(self.data)
        return self._unary(e, lambda: e, "exp", False)

    def log(self) -> "Tensor":
        """Natural logarithm; an fp32 op."""
        x = self.data
        return self._unary(np.log(x), lambda: 1 / x, "log", False)

    def gelu(self, approximate: str = "none") -> "Tensor":
        """GELU, exact (``"none"``, with erf, torch's default) or the ``"tanh"`` form; an
        activation.

        Raises:
            ValueError: for another ``approximate``.
        """
        x = self.data
        if approximate == "tanh":
            c = np.asarray(math.sqrt(2 / math.pi), x.dtype)
            u = c * (x + 0.044715 * x ** 3)
            t = np.tanh(u)
            y = 0.5 * x * (1 + t)
            return self._unary(y, lambda: 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c
                               * (1 + 3 * 0.044715 * x * x), "gelu", True)
        if approximate != "none":
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        cdf = (0.5 * (1 + _erf(x / math.sqrt(2)))).astype(x.dtype)
        pdf = (np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)).astype(x.dtype)
        return self._unary(x * cdf, lambda: cdf + x * pdf, "gelu", True)

    # --- softmax: kept in fp32 under autocast -----------------------------------------
    def softmax(self, axis: int = -1) -> "Tensor":
        """Softmax along ``axis`` (max-subtracted, so large logits do not overflow)."""
        z = self.data - self.data.max(axis=axis, keepdims=True)
        e = np.exp(z)
        s = get_precision().fp32(e / e.sum(axis=axis, keepdims=True), "softmax")
        out = self._make(s, (self,), "softmax")

        def _backward():
            g = out.grad
            self._accumulate(s * (g - (g * s).sum(axis=axis, keepdims=True)))
        out._backward = _backward
        return out

    def log_softmax(self, axis: int = -1) -> "Tensor":
        """log(softmax(x)) along ``axis``, computed as z - log(sum(exp(z))) with z = x - max."""
        z = self.data - self.data.max(axis=axis, keepdims=True)
        y = get_precision().fp32(z - np.log(np.exp(z).sum(axis=axis, keepdims=True)),
                                 "log_softmax")
        out = self._make(y, (self,), "log_softmax")

        def _backward():
            g = out.grad
            self._accumulate(g - np.exp(y) * g.sum(axis=axis, keepdims=True))
        out._backward = _backward
        return out


_erf_vec = np.vectorize(math.erf, otypes=[np.float64])


def _erf(x: np.ndarray) -> np.ndarray:
    return _erf_vec(x.astype(np.float64))


def tensor(data, requires_grad: bool = False, dtype=np.float32, name: str = "") -> Tensor:
    """A new leaf tensor holding a copy of ``data`` as ``dtype``."""
    return Tensor(np.array(data, dtype=dtype), requires_grad=requires_grad, name=name)
