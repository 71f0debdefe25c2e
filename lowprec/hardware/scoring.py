"""How a candidate's results are scored against a device's, and the record of one op.

:func:`score` compares results bit for bit in the op's output format and histograms the
ULP distances (:data:`ULP_BINS`); :func:`op_record` collects the scores of every candidate
of one op and names the best (most matches; the first listed wins a tie).
"""

from __future__ import annotations

import numpy as np

from ..formats import get_format
from ..quantize import decode, encode
from ..testing import ulp_distance

__all__ = ["ULP_BINS", "score", "op_record"]

#: ULP-distance histogram bins: (label, low, high) inclusive.
ULP_BINS = (("0", 0, 0), ("1", 1, 1), ("2", 2, 2), ("3-4", 3, 4), ("5-16", 5, 16),
            ("17-256", 17, 256), (">256", 257, np.inf))


def score(got, want, fmt, *, got_codes: bool = False, want_codes: bool = False) -> dict:
    """Compare a candidate with the device in format ``fmt``.

    Args:
        got, want: values exactly representable in ``fmt`` (or codes, see below).
        fmt: the output format.
        got_codes, want_codes: the argument holds codes of ``fmt`` rather than values.

    Returns:
        dict with cases, matches, match_pct, ulp_hist (label -> count, plus "nan" for a
        NaN against a number), max_rel, median_rel (over cases where the device result is
        finite and non-zero; NaN when there are none).
    """
    f = get_format(fmt)
    # values are encoded only to compare codes: an overflow here is a value of the format
    overflow = "inf" if f.has_inf else "saturate"
    gv = decode(np.asarray(got), f) if got_codes else np.asarray(got, np.float64)
    wv = decode(np.asarray(want), f) if want_codes else np.asarray(want, np.float64)
    gv, wv = gv.reshape(-1), wv.reshape(-1)
    gc = np.asarray(got).reshape(-1) if got_codes else encode(gv, f, overflow=overflow)
    wc = np.asarray(want).reshape(-1) if want_codes else encode(wv, f, overflow=overflow)
    gnan, wnan = np.isnan(gv), np.isnan(wv)
    match = ((gc.astype(np.int64) == wc.astype(np.int64)) & ~gnan & ~wnan) | (gnan & wnan)
    hist = {}
    both = ~gnan & ~wnan
    d = ulp_distance(gv[both], wv[both], f) if both.any() else np.zeros(0)
    for label, lo, hi in ULP_BINS:
        hist[label] = int(((d >= lo) & (d <= hi)).sum())
    hist["nan"] = int((gnan != wnan).sum())
    ok = both & np.isfinite(wv) & (wv != 0) & np.isfinite(gv)
    with np.errstate(all="ignore"):
        rel = np.abs(gv[ok] - wv[ok]) / np.abs(wv[ok])
    n = int(gv.size)
    return {"cases": n, "matches": int(match.sum()),
            "match_pct": round(100.0 * float(match.sum()) / n, 4) if n else 100.0,
            "ulp_hist": hist, "max_rel": float(rel.max()) if rel.size else float("nan"),
            "median_rel": float(np.median(rel)) if rel.size else float("nan")}


def op_record(op_id: str, kind: str, fmt: str, want, scored: dict, **extra) -> dict:
    """One op's report.

    Args:
        op_id: the op's id in the capture.
        kind: "convert", "gemm", "train-gemm" or "train-elementwise".
        fmt: the format the op's results were compared in.
        want: the device results (their size is the number of cases).
        scored: candidate name -> :func:`score` dict, in the order candidates were tried.
        extra: more keys for the record (shape, inputs, what, ...).

    Returns:
        dict with id, kind, status ("ok"), format, cases, candidates (each :func:`score`
        dict with its name), best (the name of the candidate with most matches, the first
        listed winning a tie; None without candidates), best_match_pct, and ``extra``.
    """
    cands = [dict(name=k, **v) for k, v in scored.items()]
    best = max(cands, key=lambda c: c["matches"]) if cands else None
    rec = {"id": op_id, "kind": kind, "status": "ok", "format": fmt,
           "cases": int(np.size(want)), "candidates": cands,
           "best": best["name"] if best else None,
           "best_match_pct": best["match_pct"] if best else None}
    rec.update(extra)
    return rec
