"""The documentation's pictures, drawn with lowprec.plot_numerics from live computations.

``docs/hooks.py`` calls :func:`figures` while mkdocs builds, so the pictures always show
what the current code does; nothing is committed. To look at them without building::

    python docs/make_figures.py OUTDIR
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np


def _png(fig) -> bytes:
    from lowprec import plot_numerics as pn

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pn._plt().close(fig)
    return buf.getvalue()


def rounding_modes() -> bytes:
    """Every rounding mode on the same inputs, into fp4 (E2M1)."""
    import lowprec
    from lowprec import plot_numerics as pn

    x = np.linspace(0.9, 3.2, 461)
    ties = np.flatnonzero(np.isin(x, [1.25, 1.75, 2.5]))
    res = {m: lowprec.quantize(x, "fp4", rounding=m) for m in ("rne", "rna", "rtz", "rup", "rdn",
                                                                 "rto")}
    res["sr (100 draws)"] = np.stack([lowprec.quantize(x, "fp4", rounding="sr", seed=s)
                                      for s in range(100)])
    return _png(pn.rounding_modes(x, res, grid=lowprec.float4_e2m1fn.values(), highlight=ties))


def number_lines() -> bytes:
    """Positive values of the 8-, 6- and 4-bit formats on a log2 axis."""
    from lowprec import plot_numerics as pn

    return _png(pn.number_line(["float8_e4m3fn", "float8_e5m2", "float6_e3m2fn",
                                "float6_e2m3fn", "float4_e2m1fn"], scale="log2"))


def relative_error() -> bytes:
    """Relative rounding error of E4M3 across its range, regions shaded."""
    import lowprec
    from lowprec import plot_numerics as pn

    x = np.geomspace(2.0 ** -13, 2.0 ** 11, 8001)
    return _png(pn.relative_error(x, lowprec.quantize(x, "e4m3", overflow="saturate"),
                                  "e4m3", label="float8_e4m3fn (saturating)"))


def sr_probability() -> bytes:
    """P(round up) of exact and r-bit stochastic rounding."""
    import lowprec
    from lowprec import plot_numerics as pn

    pos = np.linspace(0, 1, 65)[:-1]
    reps = 400
    xs = np.repeat(1 + pos * 2.0 ** -7, reps)
    probs = {}
    for bits in (None, 2, 4):
        q = lowprec.quantize(xs, "bf16", rounding="sr", sr_bits=bits, seed=1)
        probs["exact SR" if bits is None else f"{bits} random bits"] = (
            (q > 1).reshape(len(pos), reps).mean(axis=1))
    return _png(pn.sr_probability(pos, probs))


def error_vs_k() -> bytes:
    """Dot-product error against K: fp32/fp16/bf16 accumulators and a bf16 chunked one."""
    import math

    import lowprec
    from lowprec import plot_numerics as pn

    rng = np.random.default_rng(0)
    ks = 2 ** np.arange(4, 13)
    errs = {"fp32": [], "fp16": [], "bf16": [], "bf16, chunk 32": []}
    for K in ks:
        a = lowprec.quantize(rng.uniform(0, 1, (8, K)), "fp16")
        b = lowprec.quantize(rng.uniform(0, 1, (K, 1)), "fp16")
        exact = np.array([math.fsum(a[i] * b[:, 0]) for i in range(8)])
        for name in errs:
            acc, _, chunk = name.partition(", chunk ")
            r = lowprec.matmul(a, b, acc=acc, chunk=int(chunk) if chunk else None)
            errs[name].append(float(np.mean(np.abs(r[:, 0] - exact) / exact)))
    return _png(pn.error_vs_k(ks, {f"{k} accumulator": v for k, v in errs.items()},
                              title="fp16 inputs, positive values"))


#: site path -> function drawing it
FIGURES = {
    "img/rounding_modes.png": rounding_modes,
    "img/number_lines.png": number_lines,
    "img/relative_error.png": relative_error,
    "img/sr_probability.png": sr_probability,
    "img/error_vs_k.png": error_vs_k,
}


def figures() -> dict:
    """site path -> PNG bytes of every figure."""
    return {path: fn() for path, fn in FIGURES.items()}


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs-figures")
    for path, data in figures().items():
        target = out / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"wrote {target}")
