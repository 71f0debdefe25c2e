"""Layers: Module, Linear, Embedding, Sequential/MLP, activations and LayerNorm, with
seeded init (the transformer's blocks are in :mod:`lowprec.autograd.transformer`).

Weights of :class:`Linear` have shape (in_features, out_features), so a layer computes
``x @ weight + bias`` (torch stores the transpose). Containers give every parameter its
dotted name (``"0.weight"``), which the precision policy uses to key per-tensor state.
"""

from __future__ import annotations

import math
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .engine import Tensor
from . import ops

__all__ = ["Module", "Linear", "Embedding", "Sequential", "MLP", "ReLU", "GELU", "Tanh",
           "Sigmoid", "LayerNorm", "init_weight"]


def init_weight(fan_in: int, fan_out: int, init: str, rng: np.random.Generator,
                dtype=np.float32) -> np.ndarray:
    """A (fan_in, fan_out) weight matrix.

    Args:
        init: "he" (Kaiming normal, std sqrt(2 / fan_in), for ReLU) or "xavier" (Glorot
            uniform on +-sqrt(6 / (fan_in + fan_out))).
        rng: numpy Generator (seeded by the caller).

    Raises:
        ValueError: for an unknown init.
    """
    if init == "he":
        w = rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
    elif init == "xavier":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-a, a, (fan_in, fan_out))
    else:
        raise ValueError(f"init must be 'he' or 'xavier', got {init!r}")
    return w.astype(dtype)


class Module:
    """Base class: parameters are the attributes that are tensors requiring a gradient,
    found recursively through attributes that are modules or lists of modules."""

    training: bool = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        for k, v in vars(self).items():
            if isinstance(v, Module):
                yield k, v
            elif isinstance(v, (list, tuple)):
                for i, m in enumerate(v):
                    if isinstance(m, Module):
                        yield str(i) if k == "layers" else f"{k}.{i}", m

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Tensor]]:
        """(dotted name, parameter) pairs in definition order."""
        for k, v in vars(self).items():
            if isinstance(v, Tensor) and v.requires_grad:
                yield prefix + k, v
        for k, m in self.named_children():
            yield from m.named_parameters(prefix + k + ".")

    def parameters(self) -> List[Tensor]:
        return [p for _, p in self.named_parameters()]

    def assign_names(self) -> "Module":
        """Set every parameter's ``name`` to its dotted name; returns self."""
        for n, p in self.named_parameters():
            p.name = n
        return self

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of the parameter arrays by dotted name."""
        return {n: p.data.copy() for n, p in self.named_parameters()}

    def load_state_dict(self, state: Dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into the parameters.

        Raises:
            KeyError: with ``strict``, for missing or unexpected names.
            ValueError: for a shape that does not match.
        """
        params = dict(self.named_parameters())
        if strict:
            missing, extra = set(params) - set(state), set(state) - set(params)
            if missing or extra:
                raise KeyError(f"state_dict mismatch: missing {sorted(missing)}, "
                               f"unexpected {sorted(extra)}")
        for n, v in state.items():
            if n not in params:
                continue
            v = np.asarray(v)
            if v.shape != params[n].shape:
                raise ValueError(f"{n}: shape {v.shape} does not match {params[n].shape}")
            params[n].data = v.astype(params[n].dtype, copy=True)

    def train(self, mode: bool = True) -> "Module":
        self.training = bool(mode)
        for _, m in self.named_children():
            m.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)


class Linear(Module):
    """``x @ weight + bias``; weight (in, out) initialised by ``init``, bias zero.

    Args:
        in_features, out_features: sizes.
        bias: whether to add a bias.
        init: "he" or "xavier" (see :func:`init_weight`).
        rng: numpy Generator, or None for ``default_rng(seed)``.
        seed: used when ``rng`` is None.
        dtype: parameter dtype.
        fuse_bias: add the bias inside the GEMM's accumulation (as torch's addmm and
            cuBLASLt's bias epilogue) instead of to the rounded product (see
            :func:`lowprec.autograd.ops.linear`).

    Raises:
        ValueError: for sizes that are not positive ints.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "he",
                 rng: Optional[np.random.Generator] = None, seed: int = 0, dtype=np.float32,
                 fuse_bias: bool = False):
        for arg, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Linear {arg} must be a positive int, got {v!r}")
        rng = rng if rng is not None else np.random.default_rng(seed)
        self.weight = Tensor(init_weight(in_features, out_features, init, rng, dtype),
                             requires_grad=True, name="weight")
        self.bias = Tensor(np.zeros(out_features, dtype), requires_grad=True, name="bias") \
            if bias else None
        self.fuse_bias = bool(fuse_bias)

    def forward(self, x: Tensor) -> Tensor:
        n = self.weight.name
        key = n[: -len(".weight")] if n.endswith(".weight") else "linear"
        return ops.linear(x, self.weight, self.bias, key=key, fuse_bias=self.fuse_bias)

    def __repr__(self) -> str:
        i, o = self.weight.shape
        fused = ", fuse_bias=True" if self.fuse_bias else ""
        return f"Linear({i}, {o}, bias={self.bias is not None}{fused})"


class Embedding(Module):
    """A lookup table: ``forward(idx)`` returns rows of ``weight`` (num, dim), initialised
    N(0, std^2) (torch's default std is 1); see :func:`lowprec.autograd.ops.embedding`.

    Args:
        num_embeddings, embedding_dim: table size.
        std: standard deviation of the initial values.
        rng: numpy Generator, or None for ``default_rng(seed)``.
        seed: used when ``rng`` is None.
        dtype: parameter dtype.

    Raises:
        ValueError: for sizes that are not positive ints.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, std: float = 1.0,
                 rng: Optional[np.random.Generator] = None, seed: int = 0, dtype=np.float32):
        for arg, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Embedding {arg} must be a positive int, got {v!r}")
        rng = rng if rng is not None else np.random.default_rng(seed)
        w = rng.standard_normal((num_embeddings, embedding_dim)) * float(std)
        self.weight = Tensor(w.astype(dtype), requires_grad=True, name="weight")

    def forward(self, idx) -> Tensor:
        return ops.embedding(self.weight, idx)

    def __repr__(self) -> str:
        return f"Embedding({self.weight.shape[0]}, {self.weight.shape[1]})"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()

    def __repr__(self) -> str:
        return "ReLU()"


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu(self.approximate)

    def __repr__(self) -> str:
        return f"GELU({self.approximate!r})"


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class LayerNorm(Module):
    """Layer normalisation over the last axis (weight ones, bias zeros)."""

    def __init__(self, dim: int, eps: float = 1e-5, elementwise_affine: bool = True,
                 dtype=np.float32):
        self.eps = eps
        self.weight = Tensor(np.ones(dim, dtype), requires_grad=True, name="weight") \
            if elementwise_affine else None
        self.bias = Tensor(np.zeros(dim, dtype), requires_grad=True, name="bias") \
            if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return ops.layer_norm(x, self.weight, self.bias, self.eps)


class Sequential(Module):
    """Layers applied in order; parameters named ``"<index>.<name>"``."""

    def __init__(self, *layers: Module):
        self.layers = list(layers)
        self.assign_names()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


_ACTIVATIONS = {"relu": ReLU, "gelu": GELU, "tanh": Tanh, "sigmoid": Sigmoid}


class MLP(Sequential):
    """Linear layers of the given sizes with an activation between them (none after the
    last), e.g. ``MLP([64, 128, 128, 10])``.

    Args:
        sizes: layer widths, input first.
        activation: "relu" (default), "gelu", "tanh" or "sigmoid".
        init: "he" (default) or "xavier".
        seed: seed of the initialisation (one generator, layers in order).
        dtype: parameter dtype.

    Raises:
        ValueError: fewer than two sizes, or an unknown activation.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", init: str = "he",
                 seed: int = 0, dtype=np.float32):
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least two sizes, got {list(sizes)}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        rng = np.random.default_rng(seed)
        layers: List[Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, init=init, rng=rng, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
        super().__init__(*layers)
