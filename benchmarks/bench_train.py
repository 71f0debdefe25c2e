#!/usr/bin/env python3
"""One training step of the study's MLP (64-128-128-10, ReLU, batch 32, SGD with momentum)
under the default Policy("fp32"), against the same step written by hand in numpy float32.

The hand-written step is what a user would write: three GEMMs forward (np.matmul, BLAS),
softmax cross-entropy, the backward GEMMs and the SGD update. lowprec's step runs the
autograd engine with every GEMM computed as lowprec.matmul computes it (fp32, sequential in
k with a fused multiply-add per step: a defined accumulation, which BLAS's blocked sgemm is
not); under an fp32 policy the engine reaches that kernel through lowprec.gemm_fast, which
skips lowprec.matmul's conversions and checks and gives the same bits.

Usage: python benchmarks/bench_train.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Context, Row, compare, set_threads, module_main  # noqa: E402

GROUP = "training step, Policy('fp32'), vs hand-written numpy"


def _numpy_step(sizes, seed=0):
    rng = np.random.default_rng(seed)
    ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)
          for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    vel = [np.zeros_like(p) for p in ws + bs]
    x = rng.standard_normal((32, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], 32)
    lr, mom = np.float32(0.002), np.float32(0.9)

    def step():
        acts = [x]
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = acts[-1] @ w + b
            acts.append(np.maximum(z, 0) if i < len(ws) - 1 else z)
        z = acts[-1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        g = p.copy()
        g[np.arange(32), y] -= 1
        g /= np.float32(32)
        grads_w, grads_b = [], []
        for i in range(len(ws) - 1, -1, -1):
            grads_w.append(acts[i].T @ g)
            grads_b.append(g.sum(axis=0))
            if i:
                g = (g @ ws[i].T) * (acts[i] > 0)
        grads = grads_w[::-1] + grads_b[::-1]
        for k, (p_, gr) in enumerate(zip(ws + bs, grads)):
            vel[k] = mom * vel[k] + gr
            p_ -= lr * vel[k]

    return step


def _lowprec_step(sizes, seed=0):
    from lowprec.autograd import Autocast, Policy, Tensor, nn, ops, optim

    rng = np.random.default_rng(seed)
    model = nn.MLP(list(sizes), seed=seed)
    opt = optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    x = rng.standard_normal((32, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], 32)
    ctx = Autocast(Policy("fp32"))

    def step():
        with ctx:
            loss = ops.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def rows(ctx: Context) -> list:
    sizes = (64, 128, 128, 10)
    out = []
    for th in ctx.threads:
        set_threads(th)
        ours, peer, ratio = compare(_lowprec_step(sizes), _numpy_step(sizes),
                                    rounds=3 if ctx.quick else 7)
        # the target is lowprec <= 2x numpy's time, i.e. a speed ratio >= 0.5
        out.append(Row(GROUP, f"MLP 64-128-128-10, batch 32, {th} thread(s)", ours * 1e3,
                       "numpy float32 by hand", peer * 1e3, "ms/step", ratio, 0.5,
                       lower_is_better=True))
    return out


def main(argv=None) -> int:
    return module_main(rows, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
