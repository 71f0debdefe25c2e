#!/usr/bin/env python3
"""Run every benchmark and write the results: `make bench` (and `make bench-quick`).

Each benchmark module (bench_*.py) compares lowprec with a peer measured in the same run and
returns rows of the issue's targets table. This prints one table, writes the run as JSON
(--json, default build/bench.json) and, with --docs, regenerates docs/benchmarks.md from it
(the page is never typed by hand).

Usage: python benchmarks/run.py [--quick] [--only NAME ...] [--json PATH] [--docs PATH]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import Context, header, table, to_json  # noqa: E402

#: Modules in the order of the issue's table.
MODULES = ["bench_gemm_acc", "bench_train", "bench_tensorcore", "bench_arith", "bench_scaled",
           "bench_convert", "bench_cold"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds (minutes)")
    ap.add_argument("--only", nargs="*", default=None, help="module names to run")
    ap.add_argument("--json", default=str(HERE.parent / "build" / "bench.json"))
    ap.add_argument("--docs", default=None, help="write the markdown page here")
    args = ap.parse_args(argv)
    ctx = Context(quick=args.quick)
    hdr = header()
    hdr["quick"] = args.quick
    rows, t0 = [], time.perf_counter()
    for name in args.only or MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            print(f"skipping {name}: {e}", file=sys.stderr)
            continue
        t = time.perf_counter()
        got = mod.rows(ctx)
        rows += got
        print(f"{name}: {len(got)} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    hdr["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{hdr['date']}  {hdr['cpu']}, {hdr['cores']} cores, load {hdr['load_1min']}, "
          f"numba threads {hdr['numba_threads']}, BLAS {hdr['blas']}")
    print(table(rows))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_json(hdr, rows))
    print(f"\nwrote {out}", file=sys.stderr)
    if args.docs:
        from report import markdown

        Path(args.docs).write_text(markdown(hdr, rows))
        print(f"wrote {args.docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
