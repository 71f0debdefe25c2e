"""Shared timing and reporting for lowprec's benchmarks.

A benchmark module exposes ``rows(quick: bool) -> list[Row]``; each :class:`Row` compares
lowprec with a peer measured in the same run (numpy's sgemm, ml_dtypes, torch, torchao, a
memory copy). Times are taken interleaved, ours then the peer's, several rounds, and the
ratio is the median of the per-round ratios, so a machine whose speed drifts during the run
still gives a fair ratio. Nothing here is a test: the test suite checks exactness, these
scripts measure speed.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

# Throughput rows time compiled kernels: no plain-Python tier before a kernel is compiled
# (lowprec._kernels.plain), even on a cold numba cache. bench_cold measures first use with
# the tier, as a user gets it.
os.environ.setdefault("LOWPREC_PLAIN", "0")


@dataclass
class Row:
    """One line of a benchmark table.

    Attributes:
        group: the issue's table row this measures (e.g. "conversion vs ml_dtypes").
        name: what was run (e.g. "float32 -> e4m3fn, 1 thread").
        ours: lowprec's figure in ``unit`` (higher is faster), or None.
        peer_name: what it was compared with.
        peer: the peer's figure in ``unit``, or None when the peer is not installed.
        unit: "M/s", "GFLOP/s", "us/call", "s", ...
        ratio: ours / peer as a speed ratio (> 1: lowprec faster), or None.
        target: the target ratio (None: informative row).
        note: anything a reader needs (sizes, thread count, why a peer is missing).
        lower_is_better: the figures are times (ratio is then peer / ours).
    """

    group: str
    name: str
    ours: Optional[float]
    peer_name: str = ""
    peer: Optional[float] = None
    unit: str = ""
    ratio: Optional[float] = None
    target: Optional[float] = None
    note: str = ""
    lower_is_better: bool = False

    @property
    def met(self) -> Optional[bool]:
        """Whether the target is met (None without a target or a ratio)."""
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target


#: Seconds to wait before timing either side. After a call, OpenBLAS's worker threads spin
#: for about 2^28 TSC ticks (~0.1 s) before they sleep; a kernel timed inside that window
#: shares the cores with them (up to 25 % slower measured here on 2 cores). Each side is
#: timed from a settled machine instead.
SETTLE_S = 0.15


def _time_once(fn: Callable[[], object], min_time: float) -> float:
    """Seconds per call of fn, calling it enough times to last about ``min_time``
    (after :data:`SETTLE_S` of idleness)."""
    time.sleep(SETTLE_S)
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 20:
            return dt / n
        n = max(2 * n, int(n * min_time / max(dt, 1e-9)) + 1)


def compare(ours: Callable[[], object], peer: Optional[Callable[[], object]], *,
            rounds: int = 5, min_time: float = 0.05) -> tuple:
    """Interleaved timing of ours and peer.

    Returns:
        (best seconds per call of ours, best of peer or None, median per-round speed ratio
        ours/peer or None).
    """
    ours()  # warm-up: numba compilation, caches
    if peer is not None:
        peer()
    t_ours, t_peer, ratios = [], [], []
    for _ in range(rounds):
        a = _time_once(ours, min_time)
        t_ours.append(a)
        if peer is not None:
            b = _time_once(peer, min_time)
            t_peer.append(b)
            ratios.append(b / a)
    return (min(t_ours), min(t_peer) if t_peer else None,
            statistics.median(ratios) if ratios else None)


def set_threads(n: int) -> None:
    """numba's thread count for the kernels (numpy's BLAS is left as it is)."""
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def blas_info() -> str:
    """numpy's BLAS and its thread count (threadpoolctl when installed)."""
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(libs) or "unknown"
    except ImportError:
        cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
        blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
        return f"{blas.get('name', 'unknown')} {blas.get('version', '')} (threads: install " \
               f"threadpoolctl to see)".strip()


def _version(mod: str) -> Optional[str]:
    try:
        m = __import__(mod)
        return getattr(m, "__version__", "?")
    except ImportError:
        return None


def header() -> dict:
    """The machine, the versions and the thread settings of this run."""
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_1min": load,
        "python": platform.python_version(),
        "versions": {m: _version(m) for m in ("lowprec", "numpy", "numba", "llvmlite",
                                               "ml_dtypes", "torch", "torchao", "gfloat")},
        "numba_threads": numba.get_num_threads(),
        "blas": blas_info(),
    }


def to_json(hdr: dict, rows: list) -> str:
    """The run as JSON (what docs/benchmarks.md is generated from)."""
    return json.dumps({"header": hdr, "rows": [dict(asdict(r), met=r.met) for r in rows]},
                      indent=1)


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def table(rows: list) -> str:
    """A plain-text table of rows (grouped as given)."""
    head = ("name", "lowprec", "peer", "unit", "ratio", "target", "met")
    lines, group = [], None
    w = [max(len(head[0]), *(len(r.name) for r in rows))] if rows else [len(head[0])]
    for r in rows:
        if r.group != group:
            group = r.group
            lines.append(f"\n{group}")
            lines.append(f"  {head[0]:{w[0]}}  {'lowprec':>9} {'peer':>9}  {'unit':8} "
                         f"{'ratio':>7} {'target':>7}  met   peer")
        met = {True: "yes", False: "NO", None: ""}[r.met]
        tgt = "-" if r.target is None else f">={r.target:g}"
        lines.append(f"  {r.name:{w[0]}}  {_fmt(r.ours):>9} {_fmt(r.peer):>9}  {r.unit:8} "
                     f"{_fmt(r.ratio):>7} {tgt:>7}  {met:4}  {r.peer_name}"
                     + (f"  ({r.note})" if r.note else ""))
    return "\n".join(lines)


@dataclass
class Context:
    """What a benchmark module gets: quick mode and the thread counts to try."""

    quick: bool = False
    threads: tuple = field(default_factory=lambda: (1, 2))


def module_main(rows: Callable[["Context"], list], doc: str, argv=None) -> int:
    """The command line every benchmark module shares: ``--quick``, then the machine header
    and the module's table.

    Args:
        rows: the module's ``rows(ctx)``.
        doc: the module's docstring (its first paragraph is the help text).
        argv: arguments (default: sys.argv[1:]).

    Returns:
        The exit status (0).
    """
    import argparse

    ap = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    args = ap.parse_args(argv)
    print(header())
    print(table(rows(Context(quick=args.quick))))
    return 0
