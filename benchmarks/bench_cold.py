#!/usr/bin/env python3
"""First use on a cold numba cache: how long a fresh process waits before each entry point
gives its first result (import, compilation, run), with an empty NUMBA_CACHE_DIR.

Entry points: quantize (float32 -> e4m3), matmul in fp32, matmul with a bf16 accumulator,
matmul on the H100 tensor-core model, and one training step of the study's MLP under the
fp8-current recipe. Each runs in its own fresh process, then all five in one process (what a
user starting a session pays), then all five again in a second process on the cache the
first one filled (what every later session pays), and all five once more with every kernel
compiled at its first call (LOWPREC_PLAIN=0: what compilation costs when it does happen; the
default lets small first calls run the kernels' plain-Python copies, lowprec._kernels.plain).
Usage: python benchmarks/bench_cold.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Context, Row, module_main  # noqa: E402

GROUP = "first use on a cold cache"
TARGET_S = 8.0

_SETUP = "import numpy as np, lowprec as lp\nx = np.linspace(-3, 3, 256, dtype=np.float32)\n" \
         "a = x.reshape(16, 16)\n"
ENTRY = {
    "quantize": "lp.quantize(x, 'e4m3')",
    "matmul fp32": "lp.matmul(a, a)",
    "matmul bf16 acc": "lp.matmul(a, a, inputs='bf16', acc='bf16')",
    "matmul h100": "lp.matmul(a, a, inputs='e4m3', model='h100')",
    "study step": ("from lowprec.autograd import Autocast, Policy, Tensor, nn, ops, optim\n"
                   "m = nn.MLP([64, 128, 128, 10], seed=0)\n"
                   "o = optim.SGD(m.parameters(), lr=0.01, momentum=0.9)\n"
                   "with Autocast(Policy('fp8-current')):\n"
                   "    l = ops.cross_entropy(m(Tensor(np.ones((32, 64), np.float32))), "
                   "np.zeros(32, np.int64))\n"
                   "o.zero_grad(); l.backward(); o.step()"),
}


def _run(code: str, warm: bool = False, plain: bool = True):
    """Seconds a fresh process takes to run ``code`` on an empty numba cache; with
    ``warm``, (cold seconds, seconds of a second process on the cache the first filled).
    ``plain``: as a user runs it (small first calls may run the kernels' plain-Python
    copies: lowprec._kernels.plain); False: every kernel compiled at its first call."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.pop("LOWPREC_PLAIN", None)  # (the harness turns the tier off for throughput)
        if not plain:
            env["LOWPREC_PLAIN"] = "0"
        times = []
        for _ in range(2 if warm else 1):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", _SETUP + code], env=env, check=True)
            times.append(time.perf_counter() - t)
        return tuple(times) if warm else times[0]


def rows(ctx: Context) -> list:
    out = []
    for name, code in ({} if ctx.quick else ENTRY).items():
        out.append(Row(GROUP, name, _run(code), unit="s (cold)", lower_is_better=True,
                       note="fresh process, empty numba cache"))
    total, warm = _run("\n".join(ENTRY.values()), warm=True)
    out.append(Row(GROUP, "all five in one process", total, "target", TARGET_S, "s (cold)",
                   TARGET_S / total, 1.0, lower_is_better=True,
                   note=f"target: at most {TARGET_S:g} s in all"))
    # a second process on the filled cache: what every later session pays (imports and
    # cache loads; a kernel recompiled here would show its cache is never hit)
    out.append(Row(GROUP, "all five, second process (warm cache)", warm, unit="s (warm)",
                   lower_is_better=True, note="same cache directory as the cold run"))
    if not ctx.quick:
        # what compiling the kernels costs when it happens (a first call too big for the
        # plain tier, or a session that outlasts its budget)
        out.append(Row(GROUP, "all five, every kernel compiled", _run(
            "\n".join(ENTRY.values()), plain=False), unit="s (cold)", lower_is_better=True,
            note="LOWPREC_PLAIN=0: no plain-Python tier"))
    return out


def main(argv=None) -> int:
    return module_main(rows, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
