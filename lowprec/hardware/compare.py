"""Replay captured or published device results in lowprec: ``lowprec compare``.

:func:`compare_capture` replays every op of a capture file (see
:mod:`lowprec.hardware.capture`) under candidate models and scores each candidate against
the device bit for bit; :func:`compare_tc` does the same for published real-GPU
dot-product data (:mod:`lowprec.hardware.tcdata` layout) with the GPU's named model.

The parts live in their own modules: the candidates and how they run in
:mod:`lowprec.hardware.candidates`, scores and op records in
:mod:`lowprec.hardware.scoring`, the scoring of training steps in
:mod:`lowprec.hardware.train_replay` (replayed on the autograd engine by
:mod:`lowprec.autograd.replay`), data discovery in :mod:`lowprec.hardware.tcdata`,
tables and the ``--report`` pages in :mod:`lowprec.hardware.report`.

Scores per op and candidate: cases, exact bit matches (NaN equals NaN), a histogram of ULP
distances in the op's output format, max and median relative error; the best candidate is
the one with most matches (the first listed wins a tie).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

import numpy as np
from tqdm import tqdm

from ..formats import get_format
from ..gemm import matmul
from ..quantize import encode
from .candidates import conversion_candidates, gemm_candidates, parse_candidates, run_candidate
from .capture_format import Capture, load_capture, typed_values
from .fit import dataset_problem, quick_fit
from .models import get_model
from .report import (format_capture_report, format_tc_table, write_capture_report,
                     write_tc_report)
from .scoring import ULP_BINS, op_record, score
from .tcdata import list_datasets, load_dataset, scan
from .train_replay import compare_train_step

__all__ = ["compare_capture", "compare_tc", "tc_predict", "register",
           # at home elsewhere, importable from here as before
           "score", "ULP_BINS", "parse_candidates", "find_tc_datasets", "format_tc_table",
           "format_capture_report"]

#: The data sets under a folder: :func:`lowprec.hardware.tcdata.list_datasets`.
find_tc_datasets = list_datasets


def _compare_gemm(cap: Capture, op: dict, wanted) -> dict:
    fa, fb = op["inputs"], op.get("inputs_b", op["inputs"])
    out = op["out"]
    a = typed_values(cap.values(op, "a"), fa)
    b = typed_values(cap.values(op, "b"), fb)
    want = cap.values(op, "d")
    sa, sb = op.get("scale_a"), op.get("scale_b")
    sa = None if sa in (None, 1.0) else sa
    sb = None if sb in (None, 1.0) else sb
    scored, cache = {}, {}
    scaled = sa is not None or sb is not None
    for name, kw in gemm_candidates(fa, fb, out, op["K"], wanted, scaled=scaled):
        got = run_candidate(a, b, kw, out, scale_a=sa, scale_b=sb, cache=cache)
        scored[name] = score(got, want, out)
    return op_record(op["id"], "gemm", out, want, scored, shape=[op["M"], op["K"], op["N"]],
                     inputs=fa if fa == fb else f"{fa}x{fb}", dist=op.get("dist"),
                     torch_op=op.get("torch_op"), acc_request=op.get("acc_request"))


def _compare_convert(cap: Capture, op: dict, wanted) -> dict:
    dst = op["dst"]
    f = get_format(dst)
    x = cap.codes(op, "x").view(np.float32)  # the raw bits: NaN signs and payloads kept
    want = cap.codes(op, "y")
    scored = {}
    for name, kw in conversion_candidates(f).items():
        if wanted is not None and name not in wanted:
            continue
        got = encode(x, f, **kw)
        scored[name] = score(got, want, f, got_codes=True, want_codes=True)
    return op_record(op["id"], "convert", dst, want, scored, src=op.get("src"))


def compare_capture(cap, models=None, progress: bool = False) -> list:
    """Replay every op of a capture under the candidates.

    Args:
        cap: a :class:`~lowprec.hardware.capture_format.Capture` or a path to one.
        models: candidate names to keep (None: every applicable one).
        progress: tqdm progress bar on stderr.

    Returns:
        A list of op records (dicts, JSON-serialisable): see
        :func:`lowprec.hardware.scoring.op_record`; skipped ops keep ``status`` "skipped"
        and their ``reason``.

    Raises:
        ValueError: unknown model names or an unreadable capture file.
        FileNotFoundError: missing capture file.
    """
    if not isinstance(cap, Capture):
        cap = load_capture(cap)
    wanted = parse_candidates(models)
    ops = cap.ops
    if progress:
        ops = tqdm(ops, desc="compare", file=sys.stderr, leave=False)
    recs = []
    for op in ops:
        if op.get("status") != "ok":
            recs.append({"id": op["id"], "kind": op.get("kind"), "status": "skipped",
                         "reason": op.get("reason", "")})
            continue
        if op["kind"] == "convert":
            recs.append(_compare_convert(cap, op, wanted))
        elif op["kind"] == "gemm":
            recs.append(_compare_gemm(cap, op, wanted))
        elif op["kind"] == "train":
            recs += compare_train_step(cap, op, wanted)
        else:
            recs.append({"id": op["id"], "kind": op["kind"], "status": "skipped",
                         "reason": f"unknown op kind {op['kind']!r}"})
    return recs


def tc_predict(ds, model) -> np.ndarray:
    """float32 results of a model on a :class:`~lowprec.hardware.tcdata.TCDataset` (the
    model's path into the data set's output format)."""
    got = matmul(ds.a[:, None, :], ds.b[:, :, None], c=ds.c[:, None, None],
                 inputs=ds.input_format, model=model, out=ds.out_format)
    return np.asarray(got, np.float32).reshape(-1)


def compare_tc(root, models=None, limit: Optional[int] = None, progress: bool = False) -> list:
    """Score the named models on published real-GPU data.

    Every output file of every data set is scored (see
    :func:`lowprec.hardware.tcdata.scan`). Without ``models`` each set is scored with its
    own GPU's model; where that model has no path for the set's input and output formats
    the record says "no named model" and carries the best block model of a quick search
    (:func:`lowprec.hardware.fit.quick_fit`). Folders that are not data sets (an unknown
    GPU, a name that is no input format, missing files) are listed as skipped with the
    reason.

    Args:
        root: a folder in the layout ``<GPU>/<fmt>/a_*, b_*, c_*, d_*_fp32.txt,
            d_*_fp16.txt`` (see :mod:`lowprec.hardware.tcdata`).
        models: GPU model names to try on every data set (None: the folder's own GPU).
        limit: read at most this many cases per data set.
        progress: tqdm progress bar on stderr.

    Returns:
        Records (JSON-serialisable dicts) with gpu, input, output, status and:
        status "ok": cases, model, matches, match_pct, ulp_hist (in the output format);
        status "no path" (a model given in ``models`` that has no path for the set):
        cases, model, matches and match_pct None, note; status "no named model": cases,
        model None, matches and match_pct None, note, best_candidate (label, params,
        matches, cases, match_pct, named); status "skipped": path, reason (output and
        cases None). Data sets come first, in folder order, then the skipped entries.

    Raises:
        ValueError: if ``root`` is not a directory or holds no data set, or a model name
            is unknown.
    """
    names = None if not models else [get_model(m).name for m in models]
    found = scan(root)
    found.require_datasets()
    sets = found.datasets
    if progress:
        sets = tqdm(sets, desc="tc data", file=sys.stderr, leave=False)
    recs = []
    for gpu, folder, out in sets:
        ds = load_dataset(gpu, folder, out, root=root, limit=limit)
        base = {"gpu": gpu, "input": folder, "output": ds.output, "cases": ds.cases}
        for m in names or [ds.model_name]:
            try:
                got = tc_predict(ds, m)
            except ValueError as e:
                if names:
                    recs.append(dict(base, status="no path", model=m, matches=None,
                                     match_pct=None, note=str(e)))
                else:
                    recs.append(_no_named_model(ds, base, str(e)))
                continue
            s = score(got, ds.d, ds.out_format)
            recs.append(dict(base, status="ok", model=m, matches=s["matches"],
                             match_pct=s["match_pct"], ulp_hist=s["ulp_hist"]))
    for path, reason in found.skipped:
        parts = path.split("/")
        recs.append({"gpu": parts[0], "input": parts[1] if len(parts) > 1 else None,
                     "output": None, "cases": None, "status": "skipped", "path": path,
                     "reason": reason})
    return recs


def _no_named_model(ds, base: dict, why: str) -> dict:
    """The record of a data set no named model covers, with a quick search's best guess."""
    best = quick_fit(dataset_problem(ds))
    cand = {"label": best["label"], "params": best["params"], "matches": best["matches"],
            "cases": best["cases"],
            "match_pct": round(100.0 * best["matches"] / best["cases"], 4),
            "named": best.get("named", [])}
    return dict(base, status="no named model", model=None, matches=None, match_pct=None,
                note=why, best_candidate=cand)


def _main(args) -> int:
    if (args.file is None) == (args.tc_dir is None):
        raise ValueError("give a capture FILE or --tc-dir DIR (exactly one)")
    if args.tc_dir is not None:
        recs = compare_tc(args.tc_dir, models=args.model, progress=not args.json)
        if args.json:
            print(json.dumps(recs, indent=1))
        else:
            print(format_tc_table(recs))
        if args.report:
            print(f"report: {write_tc_report(recs, args.report)}", file=sys.stderr)
        return 0
    try:
        cap = load_capture(args.file)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from e
    recs = compare_capture(cap, models=args.model, progress=not args.json)
    if args.json:
        print(json.dumps({"meta": {k: v for k, v in cap.meta.items() if k != "ops"},
                          "ops": recs}, indent=1))
    else:
        print(format_capture_report(recs, cap.meta, all_candidates=args.all))
    if args.report:
        print(f"report: {write_capture_report(recs, cap.meta, args.report)}", file=sys.stderr)
    return 0


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand (``help``: its one-line help, from
    :data:`lowprec.cli.COMMANDS`)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("file", nargs="?", help="capture file written by `lowprec capture`")
    p.add_argument("--tc-dir", help="folder of published real-GPU dot-product data "
                                    "(<GPU>/<fmt>/a_*, b_*, c_*, d_*.txt)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="candidate to try (repeatable; default: all that apply)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.add_argument("--all", action="store_true", help="list every candidate's match rate")
    p.add_argument("--report", metavar="DIR", help="write PNG plots and index.html to DIR")
    p.set_defaults(func=_main)
    return p
