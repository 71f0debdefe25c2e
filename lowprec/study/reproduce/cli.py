"""``lowprec reproduce``: run a paper reproduction and print its claims beside ours."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..sweep import jsonable
from . import REPRODUCTIONS, reproduce

__all__ = ["register", "main"]


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand (``help`` from :data:`lowprec.cli.COMMANDS`)."""
    p = sub.add_parser(name, help=help, description=help,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="reproductions:\n" + "\n".join(
                           f"  {k:18s} {r.title}" for k, r in REPRODUCTIONS.items()))
    p.add_argument("name", nargs="?", help="the reproduction to run (see --list)")
    p.add_argument("--list", action="store_true", help="list the reproductions and exit")
    p.add_argument("--seeds", type=int, default=None,
                   help="runs per variant (default: the reproduction's own: 8, deepseek2024 3)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local Dask worker processes (default: one per core; 0: serial)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler")
    p.add_argument("--quick", action="store_true",
                   help="a much shorter run (wider intervals): a first look")
    p.add_argument("--out", metavar="DIR", help="keep finished tasks here (reruns skip them)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``lowprec reproduce``; returns the exit code (2: bad input)."""
    if args.list:
        for k, r in REPRODUCTIONS.items():
            print(f"{k:18s} {r.title}")
        return 0
    if not args.name:
        print("lowprec reproduce: error: name a reproduction (--list shows them)",
              file=sys.stderr)
        return 2
    if args.name not in REPRODUCTIONS:
        print(f"lowprec reproduce: error: unknown reproduction {args.name!r}; known: "
              f"{', '.join(REPRODUCTIONS)}", file=sys.stderr)
        return 2
    workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    if workers < 0 or (args.seeds is not None and args.seeds < 1):
        print("lowprec reproduce: error: --workers must be >= 0 and --seeds >= 1",
              file=sys.stderr)
        return 2
    try:
        rep = reproduce(args.name, args.seeds, workers=workers, scheduler=args.scheduler,
                        progress=not args.no_progress and not args.json, quick=args.quick,
                        out=args.out)
    except KeyboardInterrupt:
        print("lowprec reproduce: interrupted", file=sys.stderr)
        return 130
    if args.json:
        json.dump(jsonable(rep.as_dict()), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(rep.text())
    return 0
