"""A small decoder-only transformer (GPT) in the engine, after nanoGPT and minGPT.

Token embedding plus a learned positional embedding, ``n_layer`` pre-LayerNorm blocks
(causal multi-head self-attention, then an MLP with GELU, each on a residual branch), a
final LayerNorm and a linear head; the loss is the cross-entropy of next-token targets.
The head is tied to the token embedding by default (``logits = x @ wte.weight^T``, as
GPT-2 and nanoGPT); ``tie_weights=False`` gives it its own (d_model, vocab) weight.

Every GEMM goes through the engine's precision hook, so under a policy it runs in
:func:`lowprec.matmul` with the policy's formats and GPU model: the q, k, v, output,
MLP and head projections (2-D GEMMs over all batch x time positions, as torch's linear)
and the two batched attention GEMMs, ``q @ k^T`` (key ``<block>.attn.scores``) and
``softmax(...) @ v`` (key ``<block>.attn.context``). In those two products both operands
are activations; the hook casts the right operand with the policy's "weight" role (the
role of a GEMM's second operand).

Mixed-precision conventions, as torch autocast: the scores come out of their GEMM in the
storage format (an fp16 policy overflows there first), are scaled by 1/sqrt(d_head) and
causally masked by filling the future positions with -inf (nanoGPT's ``masked_fill``;
an exact select), and softmax, layer norm and the loss run in fp32 (the hook's
:meth:`~lowprec.autograd.engine.Precision.fp32`). GELU is the tanh form (GPT-2's; torch's
``approximate="tanh"``), an activation kept in the storage format. No dropout: the model
is deterministic.

Initialisation as nanoGPT: every weight matrix and embedding N(0, 0.02^2), the two
residual output projections of each block N(0, (0.02 / sqrt(2 n_layer))^2), biases zero,
LayerNorm weights one, all drawn from one seeded generator in parameter order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from . import ops
from .engine import Tensor
from .nn import Embedding, LayerNorm, Linear, Module

__all__ = ["GPTConfig", "GPT", "Block", "CausalSelfAttention", "FeedForward", "causal_mask"]


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a :class:`GPT`; the defaults are the small model of ``lowprec study``
    (about 108k parameters).

    Args:
        vocab_size: number of token ids.
        context: longest sequence (rows of the positional embedding).
        n_layer: number of blocks.
        n_head: attention heads; must divide ``d_model``.
        d_model: width of the residual stream.
        mlp_ratio: hidden width of the MLP over ``d_model``.
        tie_weights: share the head's weight with the token embedding.
        bias: biases in the linear layers.
        gelu: "tanh" (GPT-2's approximation) or "none" (exact, with erf).
        init_std: standard deviation of the initial weights.

    Raises:
        ValueError: for sizes that are not positive ints, ``n_head`` not dividing
            ``d_model``, an unknown ``gelu`` or a non-positive ``init_std``.
    """

    vocab_size: int = 65
    context: int = 64
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 64
    mlp_ratio: int = 4
    tie_weights: bool = True
    bias: bool = True
    gelu: str = "tanh"
    init_std: float = 0.02

    def __post_init__(self):
        for f in ("vocab_size", "context", "n_layer", "n_head", "d_model", "mlp_ratio"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"GPTConfig {f} must be a positive int, got {v!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"GPTConfig n_head ({self.n_head}) must divide d_model "
                             f"({self.d_model})")
        if self.gelu not in ("tanh", "none"):
            raise ValueError(f"GPTConfig gelu must be 'tanh' or 'none', got {self.gelu!r}")
        if not (isinstance(self.init_std, (int, float)) and self.init_std > 0):
            raise ValueError(f"GPTConfig init_std must be positive, got {self.init_std!r}")


def causal_mask(t: int) -> np.ndarray:
    """The (t, t) boolean mask of the future: True where the key comes after the query."""
    return np.triu(np.ones((t, t), dtype=bool), k=1)


def _prefix(linear: Linear) -> str:
    """The dotted name of the module holding ``linear`` ("h.0.attn" for "h.0.attn.q.weight")."""
    parts = linear.weight.name.split(".")
    return ".".join(parts[:-2]) if len(parts) > 2 else "attn"


class CausalSelfAttention(Module):
    """Multi-head self-attention with a causal mask: separate q, k, v projections, per
    head ``softmax(mask(q k^T / sqrt(d_head))) v``, heads concatenated, an output
    projection."""

    def __init__(self, cfg: GPTConfig, rng: np.random.Generator, dtype=np.float32):
        d = cfg.d_model
        self.n_head = cfg.n_head
        self.q = Linear(d, d, bias=cfg.bias, rng=rng, dtype=dtype)
        self.k = Linear(d, d, bias=cfg.bias, rng=rng, dtype=dtype)
        self.v = Linear(d, d, bias=cfg.bias, rng=rng, dtype=dtype)
        self.proj = Linear(d, d, bias=cfg.bias, rng=rng, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        h = self.n_head
        dh = d // h
        name = _prefix(self.q)
        q = self.q(x).reshape(b, t, h, dh).transpose(0, 2, 1, 3)    # (b, h, t, dh)
        kt = self.k(x).reshape(b, t, h, dh).transpose(0, 2, 3, 1)   # (b, h, dh, t)
        v = self.v(x).reshape(b, t, h, dh).transpose(0, 2, 1, 3)    # (b, h, t, dh)
        att = q.matmul(kt, key=f"{name}.scores") * (1.0 / math.sqrt(dh))
        att = ops.masked_fill(att, causal_mask(t), -np.inf).softmax(axis=-1)
        y = att.matmul(v, key=f"{name}.context")                    # (b, h, t, dh)
        return self.proj(y.transpose(0, 2, 1, 3).reshape(b, t, d))


class FeedForward(Module):
    """The block's MLP: ``proj(gelu(fc(x)))`` with hidden width ``mlp_ratio * d_model``."""

    def __init__(self, cfg: GPTConfig, rng: np.random.Generator, dtype=np.float32):
        d = cfg.d_model
        self.approximate = cfg.gelu
        self.fc = Linear(d, cfg.mlp_ratio * d, bias=cfg.bias, rng=rng, dtype=dtype)
        self.proj = Linear(cfg.mlp_ratio * d, d, bias=cfg.bias, rng=rng, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.fc(x).gelu(self.approximate))


class Block(Module):
    """A pre-LayerNorm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, cfg: GPTConfig, rng: np.random.Generator, dtype=np.float32):
        self.ln_1 = LayerNorm(cfg.d_model, dtype=dtype)
        self.attn = CausalSelfAttention(cfg, rng, dtype)
        self.ln_2 = LayerNorm(cfg.d_model, dtype=dtype)
        self.mlp = FeedForward(cfg, rng, dtype)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(Module):
    """The decoder-only transformer (see the module docstring).

    Parameters are named as nanoGPT's (``wte.weight``, ``wpe.weight``,
    ``h.0.attn.q.weight``, ..., ``ln_f.weight``, ``lm_head.weight`` when untied), and
    linear weights have shape (in, out) as everywhere in the engine.

    Args:
        config: a :class:`GPTConfig` (default: the small model).
        seed: seed of the initialisation.
        dtype: parameter dtype (float32 for training, float64 for checks).
    """

    def __init__(self, config: Optional[GPTConfig] = None, seed: int = 0, dtype=np.float32):
        cfg = config if config is not None else GPTConfig()
        self.config = cfg
        rng = np.random.default_rng(seed)
        self.wte = Embedding(cfg.vocab_size, cfg.d_model, rng=rng, dtype=dtype)
        self.wpe = Embedding(cfg.context, cfg.d_model, rng=rng, dtype=dtype)
        self.h = [Block(cfg, rng, dtype) for _ in range(cfg.n_layer)]
        self.ln_f = LayerNorm(cfg.d_model, dtype=dtype)
        self.lm_head = None if cfg.tie_weights else Linear(cfg.d_model, cfg.vocab_size,
                                                           bias=False, rng=rng, dtype=dtype)
        self.assign_names()
        self._init_weights(np.random.default_rng(seed))

    def _init_weights(self, rng: np.random.Generator) -> None:
        std = self.config.init_std
        resid = std / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p.data = np.zeros_like(p.data)
            elif p.ndim == 1:  # LayerNorm weight
                p.data = np.ones_like(p.data)
            else:
                s = resid if name.endswith(("attn.proj.weight", "mlp.proj.weight")) else std
                p.data = (rng.standard_normal(p.shape) * s).astype(p.dtype)

    def forward(self, idx) -> Tensor:
        """Logits (batch, time, vocab) of the next token at every position.

        Args:
            idx: (batch, time) integer token ids, time <= ``config.context``.

        Raises:
            ValueError: for ``idx`` that is not 2-D or longer than the context.
        """
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] > self.config.context:
            raise ValueError(f"GPT input must be (batch, time) token ids with time <= "
                             f"{self.config.context}, got shape {idx.shape}")
        x = self.wte(idx) + self.wpe(np.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        if self.lm_head is not None:
            return self.lm_head(x)
        return ops.linear(x, self.wte.weight.T, key="lm_head")

    def loss(self, idx, targets) -> Tensor:
        """Mean cross-entropy of ``targets`` (batch, time) given ``idx`` (batch, time)."""
        logits = self(idx)
        b, t, v = logits.shape
        return ops.cross_entropy(logits.reshape(b * t, v), np.asarray(targets).reshape(-1))

    def num_parameters(self) -> int:
        """Number of scalar parameters (a tied head counted once)."""
        return sum(p.size for p in self.parameters())

    def param_groups(self, weight_decay: float) -> List[Dict]:
        """Optimizer parameter groups as nanoGPT's: weight decay on the matrices and
        embeddings (parameters with 2 or more axes), none on biases and LayerNorm
        weights. For :class:`lowprec.autograd.optim.AdamW`."""
        params = self.parameters()
        return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]

    def __repr__(self) -> str:
        c = self.config
        return (f"GPT(vocab={c.vocab_size}, context={c.context}, layers={c.n_layer}, "
                f"heads={c.n_head}, d_model={c.d_model}, tied={c.tie_weights})")
