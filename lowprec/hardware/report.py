"""What ``lowprec compare`` prints and writes: text tables, PNG plots and an HTML page.

:func:`format_tc_table` and :func:`format_capture_report` are the plain-text tables of
:func:`lowprec.hardware.compare.compare_tc` and
:func:`lowprec.hardware.compare.compare_capture` records; :func:`write_tc_report` and
:func:`write_capture_report` write ``--report DIR``. matplotlib is imported only when a
report is written, with the Agg backend.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Optional

from .scoring import ULP_BINS

__all__ = ["format_tc_table", "format_capture_report", "write_capture_report",
           "write_tc_report"]

_HIST = [b[0] for b in ULP_BINS] + ["nan"]


def _fmt_pct(x) -> str:
    return "-" if x is None else f"{x:.2f}%"


def format_tc_table(recs: list) -> str:
    """Plain-text table of :func:`lowprec.hardware.compare.compare_tc` records."""
    lines = [f"{'gpu':6} {'input':6} {'output':6} {'cases':>6} {'matches':>8} {'match':>8}  model"]
    for r in recs:
        status = r.get("status", "ok")
        if status == "skipped":
            lines.append(f"skipped {r['path']}: {r['reason']}")
            continue
        m = "-" if r["matches"] is None else str(r["matches"])
        head = (f"{r['gpu']:6} {r['input']:6} {r['output']:6} {r['cases']:6d} {m:>8} "
                f"{_fmt_pct(r['match_pct']):>8}  ")
        if status == "no named model":
            b = r["best_candidate"]
            named = f" (= {', '.join(b['named'])})" if b["named"] else ""
            lines.append(head + f"no named model; best of a quick search: {b['label']}{named}:"
                                f" {b['matches']}/{b['cases']} ({_fmt_pct(b['match_pct'])})")
            continue
        lines.append(head + str(r["model"]) + (f"  ({r['note']})" if r.get("note") else ""))
    return "\n".join(lines)


def format_capture_report(recs: list, meta: Optional[dict] = None, all_candidates: bool = False
                          ) -> str:
    """Plain-text report of :func:`lowprec.hardware.compare.compare_capture` records: one
    line per op (best candidate), plus every candidate's match rate when
    ``all_candidates``."""
    out = []
    if meta:
        d = meta.get("device", {})
        out.append(f"capture: {d.get('device')} ({d.get('name', '')}), torch {d.get('torch')}, "
                   f"cuda {d.get('cuda')}, cc {d.get('compute_capability', '-')}, seed "
                   f"{meta.get('seed')}")
    out.append(f"{'op':58} {'cases':>7} {'match':>8}  {'best model':24} "
               f"{'max rel':>9} {'med rel':>9}  ulp hist [" + " ".join(_HIST) + "]")
    for r in recs:
        if r["status"] != "ok":
            out.append(f"{r['id']:58} skipped: {r['reason'].splitlines()[0][:80]}")
            continue
        if r["best"] is None:
            out.append(f"{r['id']:58} {r['cases']:7d}  no candidate selected applies")
            continue
        best = next(c for c in r["candidates"] if c["name"] == r["best"])
        h = " ".join(str(best["ulp_hist"][k]) for k in _HIST)
        out.append(f"{r['id']:58} {r['cases']:7d} {_fmt_pct(best['match_pct']):>8}  "
                   f"{best['name']:24} {best['max_rel']:9.2e} {best['median_rel']:9.2e}  [{h}]")
        if all_candidates:
            out.append("      " + ", ".join(f"{c['name']} {c['match_pct']:.1f}%"
                                           for c in r["candidates"]))
    return "\n".join(out)


def _plt():
    # deferred: matplotlib is heavy and only a written report needs it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_")


def _op_figure(rec: dict, path: Path) -> None:
    plt = _plt()
    cands = rec["candidates"]
    best = next(c for c in cands if c["name"] == rec["best"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, max(2.5, 0.22 * len(cands) + 1)))
    ax1.barh([c["name"] for c in cands], [c["match_pct"] for c in cands], color="tab:blue")
    ax1.invert_yaxis()
    ax1.set_xlim(0, 100)
    ax1.set_xlabel("exact bit matches (%)")
    ax1.tick_params(axis="y", labelsize=7)
    ax2.bar(_HIST, [best["ulp_hist"][k] for k in _HIST], color="tab:orange")
    ax2.set_yscale("symlog")
    ax2.set_xlabel(f"ULP distance in {rec['format']} (best: {best['name']})")
    ax2.set_ylabel("cases")
    fig.suptitle(rec["id"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_capture_report(recs: list, meta: dict, out_dir) -> str:
    """Write one PNG per op (match rate per candidate, ULP histogram of the best) and
    ``index.html`` with the summary table. Returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = meta.get("device", {})
    rows = []
    for rec in recs:
        rid = html.escape(rec["id"])
        if rec.get("status") == "ok" and rec["best"] is None:
            rows.append(f"<tr><td>{rid}</td><td colspan=5>no candidate selected applies"
                        f"</td></tr>")
            continue
        if rec.get("status") != "ok":
            rows.append(f"<tr><td>{rid}</td><td colspan=5>skipped: "
                        f"{html.escape(str(rec.get('reason', '')))}</td></tr>")
            continue
        png = f"{_slug(rec['id'])}.png"
        _op_figure(rec, out / png)
        best = next(c for c in rec["candidates"] if c["name"] == rec["best"])
        rows.append(f"<tr><td><a href='#{png}'>{rid}</a></td><td>{rec['cases']}</td>"
                    f"<td>{best['match_pct']:.2f}%</td><td>{html.escape(best['name'])}</td>"
                    f"<td>{best['max_rel']:.3g}</td><td>{best['median_rel']:.3g}</td></tr>")
    figs = "\n".join(f"<h3 id='{_slug(r['id'])}.png'>{html.escape(r['id'])}</h3>"
                     f"<img src='{_slug(r['id'])}.png'>" for r in recs
                     if r.get("status") == "ok" and r["best"] is not None)
    title = f"lowprec compare: {html.escape(str(dev.get('name', '')))} ({dev.get('device')})"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}"
            "</style></head><body>"
            f"<h1>{title}</h1><p>torch {html.escape(str(dev.get('torch')))}, CUDA "
            f"{html.escape(str(dev.get('cuda')))}, compute capability "
            f"{html.escape(str(dev.get('compute_capability', '-')))}, seed {meta.get('seed')}</p>"
            "<table><tr><th>op</th><th>cases</th><th>match</th><th>best model</th>"
            "<th>max rel</th><th>median rel</th></tr>" + "\n".join(rows) + "</table>"
            + figs + "</body></html>")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return str(path)


def write_tc_report(recs: list, out_dir) -> str:
    """Write a bar chart of match rates per data set and ``index.html`` (data sets no
    named model covers show their best quick-search candidate; skipped folders are listed
    with the reason). Returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    sets = [r for r in recs if r.get("status", "ok") != "skipped"]
    labels = [f"{r['gpu']} {r['input']}->{r['output']} ({_tc_model(r)})" for r in sets]
    vals = [_tc_pct(r) for r in sets]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(sets) + 1)))
    ax.barh(labels, vals, color=["tab:green" if r.get("status", "ok") == "ok" else "tab:gray"
                                 for r in sets])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("exact bit matches (%); grey: no named model, best quick-search candidate")
    fig.tight_layout()
    fig.savefig(out / "tc_matches.png", dpi=80)
    plt.close(fig)
    rows = "\n".join(
        f"<tr><td>{html.escape(r['gpu'])}</td><td>{html.escape(r['input'])}</td>"
        f"<td>{r['output']}</td><td>{r['cases']}</td><td>{_tc_matches(r)}</td>"
        f"<td>{html.escape(_tc_model(r))}</td></tr>" for r in sets)
    skipped = "".join(f"<li>{html.escape(r['path'])}: {html.escape(r['reason'])}</li>"
                      for r in recs if r.get("status") == "skipped")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>lowprec compare "
            "--tc-dir</title></head><body><h1>Real-GPU data vs lowprec models</h1><table>"
            "<tr><th>gpu</th><th>input</th><th>output</th><th>cases</th><th>matches</th>"
            "<th>model</th></tr>" + rows + "</table>"
            + (f"<h2>Skipped</h2><ul>{skipped}</ul>" if skipped else "")
            + "<img src='tc_matches.png'></body></html>")
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return str(path)


def _tc_model(r: dict) -> str:
    if r.get("status") == "no named model":
        return f"no named model; best candidate: {r['best_candidate']['label']}"
    return str(r["model"])


def _tc_pct(r: dict) -> float:
    if r.get("status") == "no named model":
        return r["best_candidate"]["match_pct"]
    return r["match_pct"] or 0.0


def _tc_matches(r: dict) -> str:
    if r.get("status") == "no named model":
        return f"- (best candidate: {r['best_candidate']['matches']})"
    return "-" if r["matches"] is None else str(r["matches"])
