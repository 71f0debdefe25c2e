"""Emulated low-precision GEMMs for any torch model: ``lowprec.torch``.

Train a torch model as if its GEMMs ran on an H100's fp8 tensor cores (or in bf16, or on
any GPU model and format lowprec knows) before having the hardware::

    import lowprec.torch as lpt
    with lpt.emulate(model="h100", inputs=("e4m3", "e4m3", "e5m2"), recipe="current") as emu:
        loss = loss_fn(net(x), y)
    loss.backward()              # the backward GEMMs are emulated too
    print(emu.report())          # amax, share flushed / saturated per GEMM operand

Every ``torch.matmul`` / ``mm`` / ``bmm`` / ``addmm`` / ``baddbmm`` / ``F.linear`` (and the
``@`` operator), the two GEMMs of ``F.scaled_dot_product_attention`` and those of
``nn.MultiheadAttention`` run through :func:`lowprec.matmul` as a
:class:`lowprec.autograd.Policy` says (the numerics of :mod:`lowprec.autograd`: operand
casts, scaling recipes, GPU model, promotion interval), forward and backward, on CPU
tensors. The interception is a :class:`torch.overrides.TorchFunctionMode` (:mod:`.mode`)
and a :class:`torch.autograd.Function` (:mod:`.functions`); statistics in :mod:`.stats`.

torch is an optional dependency (``pip install 'lowprec[torch]'``): ``import lowprec``
never imports it, and importing this package without it raises an ImportError that says
so.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("lowprec.torch needs PyTorch, an optional dependency of lowprec: "
                      "pip install 'lowprec[torch]' (or pip install torch)") from e

from .mode import Emulator, GemmRecord, emulate, make_policy, torch_cpu_matmul
from .stats import gemm_stats, report

__all__ = ["emulate", "Emulator", "GemmRecord", "make_policy", "torch_cpu_matmul", "gemm_stats",
           "report"]
