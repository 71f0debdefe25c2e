"""Training-step time of the small transformer (lowprec.autograd.transformer.GPT).

Not a test: for each policy, the best of a few steps (forward, backward, clipping and
AdamW) of the default model (2 blocks, d_model 64, 4 heads, context 64, the Shakespeare
vocabulary of 61 characters) on a batch of 16 sequences, after one warm-up step (numba
compilation), and the share of the step spent in lowprec.matmul.
Usage: python benchmarks/bench_transformer.py [recipe ...]  (default fp32 bf16).
"""

from __future__ import annotations

import importlib
import sys
import time

import numpy as np

from lowprec import datasets
from lowprec.autograd import amp, optim
from lowprec.autograd.transformer import GPT, GPTConfig


def _timed_matmul(total: list, fn):
    def wrapped(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            total[0] += time.perf_counter() - t
    return wrapped


def main(recipes, batch: int = 16, repeat: int = 3) -> None:
    corpus = datasets.load_shakespeare()
    cfg = GPTConfig(vocab_size=corpus.vocab_size)
    gemm_time = [0.0]
    # count the time of every GEMM however the engine or the policy reaches lowprec.matmul
    # (the package's name `autocast` is the function, hence import_module for the module)
    # (and lowprec.gemm_fast.matmul_f32, the shortcut plain fp32 GEMMs take)
    for mod, attr in (("lowprec.autograd.engine", "_lp_matmul"),
                      ("lowprec.autograd.autocast", "lp_matmul"),
                      ("lowprec.autograd.engine", "_matmul_f32"),
                      ("lowprec.autograd.autocast", "matmul_f32")):
        m = importlib.import_module(mod)
        if hasattr(m, attr):
            setattr(m, attr, _timed_matmul(gemm_time, getattr(m, attr)))
    print(f"GPT {cfg.n_layer} blocks, d_model {cfg.d_model}, {cfg.n_head} heads, context "
          f"{cfg.context}, vocab {cfg.vocab_size}: {GPT(cfg).num_parameters()} parameters; "
          f"batch {batch}")
    print(f"{'recipe':<14} {'forward s':>10} {'backward s':>11} {'step s':>8} {'GEMM share':>11}")
    for name in recipes:
        policy = amp.Policy(name)
        m = GPT(cfg, seed=0)
        opt = optim.AdamW(m.param_groups(0.1), lr=1e-3, update=policy.weight_update())
        g = np.random.default_rng(0)
        best = None
        for k in range(repeat + 1):
            x, y = datasets.sample_batch(corpus.train, batch, cfg.context, g)
            gemm_time[0] = 0.0
            t0 = time.perf_counter()
            with amp.autocast(policy):
                loss = m.loss(x, y)
            t1 = time.perf_counter()
            opt.zero_grad()
            loss.backward()
            t2 = time.perf_counter()
            optim.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            t3 = time.perf_counter()
            row = (t1 - t0, t2 - t1, t3 - t0, gemm_time[0] / (t3 - t0))
            if k and (best is None or row[2] < best[2]):  # k = 0 is the warm-up
                best = row
        print(f"{name:<14} {best[0]:>10.3f} {best[1]:>11.3f} {best[2]:>8.3f} {best[3]:>10.0%}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["fp32", "bf16"])
