#!/usr/bin/env python3
"""Block-scaled quantization (issue 12, row 6): lowprec MX (mxfp8 e4m3, mxfp4) and NVFP4
against torchao on CPU (``to_mx``, ``nvfp4_quantize`` with a per-tensor scale from
``per_tensor_amax_to_scale``), float32 input of 4096 x 1024 (1024 x 512 with --quick).

torchao packs fp4 pairs into bytes, lowprec returns one code per element. Without torchao,
the mxfp8 row compares with the same recipe written in torch here (amax, E8M0 floor scale,
divide, clamp, cast), and the fp4 rows have no peer. Targets: >= 0.5x torchao for mxfp8,
>= 2x for mxfp4 and NVFP4, with 1 and 2 threads (numba's and torch's alike).

Usage: python benchmarks/bench_scaled.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Context, Row, compare, set_threads, module_main  # noqa: E402

GROUP = "block-scaled quantization vs torchao (CPU)"


def _torch_to_mx_fp8(t, block_size=32):
    """torchao's to_mx for float8_e4m3fn, FLOOR scales, in plain torch (fallback peer)."""
    import torch

    b = t.reshape(-1, block_size)
    amax = b.abs().amax(dim=1)
    e = ((amax.view(torch.int32) >> 23) & 0xFF) - 127 - 8  # floor(log2 amax) - emax_elem
    e = torch.clamp(e, -127, 127)
    scale = ((e + 127).to(torch.int32) << 23).view(torch.float32)
    scale = torch.clamp(scale, min=torch.finfo(torch.float32).tiny)
    q = torch.clamp(b / scale.unsqueeze(1), -448.0, 448.0).to(torch.float8_e4m3fn)
    return (e + 127).to(torch.uint8), q.reshape(t.shape)


def _peers(t):
    """name -> (callable, peer description) for each scheme; None when unavailable."""
    try:
        import torch
        from torchao.prototype.mx_formats.mx_tensor import to_mx
        from torchao.prototype.mx_formats.nvfp4_tensor import (nvfp4_quantize,
                                                               per_tensor_amax_to_scale)
    except Exception:  # torchao missing or broken
        try:
            import torch  # noqa: F401
        except ImportError:
            return {"mxfp8_e4m3": None, "mxfp4_e2m1": None, "nvfp4": None}
        return {"mxfp8_e4m3": (lambda: _torch_to_mx_fp8(t), "torch to_mx (torchao recipe)"),
                "mxfp4_e2m1": None, "nvfp4": None}

    def nv():
        s = per_tensor_amax_to_scale(t.abs().amax())
        return nvfp4_quantize(t, 16, s)

    return {"mxfp8_e4m3": (lambda: to_mx(t, torch.float8_e4m3fn, 32), "torchao to_mx"),
            "mxfp4_e2m1": (lambda: to_mx(t, torch.float4_e2m1fn_x2, 32),
                           "torchao to_mx (packed fp4)"),
            "nvfp4": (nv, "torchao nvfp4_quantize (packed fp4)")}


def _torch_threads(n: int) -> None:
    """torch's intra-op threads = numba's, so that both sides of a row use the same cores."""
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def rows(ctx: Context) -> list:
    import lowprec as lp

    shape = (1024, 512) if ctx.quick else (4096, 1024)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * np.exp2(rng.integers(-8, 8, (shape[0], 1)))).astype(
        np.float32)
    try:
        import torch

        peers = _peers(torch.from_numpy(x))
    except ImportError:
        peers = {"mxfp8_e4m3": None, "mxfp4_e2m1": None, "nvfp4": None}
    targets = {"mxfp8_e4m3": 0.5, "mxfp4_e2m1": 2.0, "nvfp4": 2.0}
    out = []
    for th in ctx.threads:
        set_threads(th)
        _torch_threads(th)
        for scheme, target in targets.items():
            ours = lambda s=scheme: lp.quantize_scaled(x, s)  # noqa: E731
            peer = peers[scheme]
            t_o, t_p, ratio = compare(ours, peer[0] if peer else None,
                                      rounds=3 if ctx.quick else 5,
                                      min_time=0.02 if ctx.quick else 0.05)
            out.append(Row(GROUP, f"{scheme}, {th} thread(s)", x.size / t_o / 1e6,
                           peer[1] if peer else "torchao (not installed)",
                           x.size / t_p / 1e6 if t_p else None, "M/s", ratio, target,
                           note=f"float32 {shape[0]}x{shape[1]}, RNE elements"))
    return out


def main(argv=None) -> int:
    return module_main(rows, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
