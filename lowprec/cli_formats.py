"""``lowprec formats`` (the format table) and ``lowprec demo`` (rounding at a glance)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from .formats import FloatFormat, list_formats
from .quantize import quantize
from .rounding import Rounding


def _g(x: float) -> str:
    return f"{x:.6g}"


def format_rows() -> list[dict]:
    """One dict per named format with the columns of the table."""
    rows = []
    for f in list_formats():
        if isinstance(f, FloatFormat):
            nan = {"ieee": "IEEE", "all_ones": "all-ones", "neg_zero": "0x80 (no -0)",
                   "none": "none"}[f.nan]
            rows.append(dict(name=f.name, bits=f.bits, exp=f.exp_bits, man=f.man_bits,
                             bias=f.bias, max=_g(f.max), min_normal=_g(f.min_normal),
                             min_subnormal=_g(f.min_subnormal) if f.subnormals else "-",
                             eps=_g(f.eps), inf="yes" if f.has_inf else "no", nan=nan))
        else:
            rows.append(dict(name=f.name, bits=f.bits, exp="-", man="-", bias="-",
                             max=_g(f.max), min_normal="-", min_subnormal=_g(f.min),
                             eps=_g(f.resolution), inf="no", nan="none"))
    return rows


def render_table(rows: list[dict]) -> str:
    """Plain-text table with aligned columns."""
    cols = list(rows[0])
    heads = {c: c.replace("_", " ") for c in cols}
    heads["min_subnormal"] = "min subnormal / int min"
    width = {c: max(len(heads[c]), *(len(str(r[c])) for r in rows)) for c in cols}
    line = "  ".join(heads[c].ljust(width[c]) for c in cols)
    out = [line, "  ".join("-" * width[c] for c in cols)]
    for r in rows:
        out.append("  ".join(str(r[c]).ljust(width[c]) for c in cols))
    return "\n".join(out)


def _formats(args) -> int:
    rows = format_rows()
    print(json.dumps(rows, indent=1) if args.json else render_table(rows))
    return 0


def _demo(args) -> int:
    xs = np.array([1.0 + 2.0 ** -4, 1.0 + 3 * 2.0 ** -5, -2.3, 464.0, 500.0, 2.0 ** -10, 1e6])
    fmt = args.format
    print(f"Rounding into {fmt}: every mode on the same inputs "
          f"(sr: mean of 1000 seeded draws)\n")
    modes = [m for m in Rounding]
    print("x".rjust(14) + "".join(m.value.rjust(12) for m in modes))
    for x in xs:
        cells = []
        for m in modes:
            if m is Rounding.SR:
                v = quantize(np.full(1000, x), fmt, rounding=m, seed=0).mean()
            else:
                v = quantize(np.float64(x), fmt, rounding=m)
            cells.append(f"{float(v):.6g}".rjust(12))
        print(f"{x:14.8g}" + "".join(cells))
    sat = quantize(np.array([500.0, np.inf]), fmt, overflow="saturate")
    print(f"\noverflow='saturate': 500 -> {sat[0]:g}, inf -> {sat[1]:g} "
          f"(CUDA satfinite / torch e4m3fn behaviour)")
    return 0


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``formats`` or the ``demo`` subcommand (``help``: its one-line help, from
    :data:`lowprec.cli.COMMANDS`)."""
    p = sub.add_parser(name, help=help)
    if name == "formats":
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.set_defaults(func=_formats)
    elif name == "demo":
        p.add_argument("--format", default="float8_e4m3fn", help="target format")
        p.set_defaults(func=_demo)
    else:
        raise ValueError(f"cli_formats has no command {name!r} (it has formats and demo)")
    return p
