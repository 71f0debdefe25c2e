"""Search the block-FMA parameter space for what explains a device: ``lowprec fit``.

A :class:`~lowprec.hardware.models.BlockFMAModel` has a handful of discrete parameters
(products per block n, fraction bits F kept when aligning, final rounding, whether c
enters the block or is added after it, an fp32 promotion interval, a narrowed result,
and, for the extended grid, two blocks per instruction dealt round-robin and inputs
converted to fp16 first). :func:`fit_problem` runs every point of a grid over some device
results and ranks the points by mismatch count. Branch and bound keeps it fast: the
results are cut into pieces (a small one first) and a candidate stops as soon as its
mismatches exceed the best complete count so far, which no later piece can lower.

The stage search (``stages=True``, ``lowprec fit --stages``) then refines the best
``beam`` candidates of that grid stage by stage, where real datapaths differ from the
one-rounding block: the addition of c as a stage of its own (``c_mode="late"``) with its
own rounding mode (``c_rounding``) and result bits (``c_frac_bits``), products aligned by
their own normalised exponents (``normalise_products``), and for a narrower output than
fp32 the output produced from the fp32 result (the block rounds into fp32, the result is
rounded to nearest-even into the output) instead of by the block itself. Variants of
candidates that miss many results are never run (the beam prunes them) and the branch
and bound above stops the rest early. Candidates that compute the same thing on the
problem's K as one already run (:func:`signature`, e.g. any two layouts that form the same
blocks) are not run again.

Ranking: fewest mismatches first; among equals, the simplest model (:func:`complexity`:
the rounding steps one instruction takes plus one per extra feature); then the widest
margin in F (how many of F-1, F-2, F-3 also miss nothing: a model at the edge of the data's
plateau is the likeliest to miss unseen cases); then grid order, which lists simpler models
first (fewer products per block, fewer fraction bits, RTZ before RNE, c in the block before
c late, no promotion, full result width). The data cannot tell apart parameters that act
the same on it (e.g. any n >= K when every case has K products), so read the table, not
only its first row. ``holdout`` (``--holdout``) fits on the even-numbered cases of a data
set and reports how the ranked candidates do on the odd-numbered ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numba
import numpy as np
from tqdm import tqdm

from ..formats import FloatFormat, get_format
from ..gemm import matmul
from ..quantize import quantize
from .capture_format import Capture, load_capture, typed_values
from .models import MODELS, BlockFMAModel, list_models, select_block
from .tcdata import TCDataset, load_dataset, scan

__all__ = ["Piece", "FitProblem", "grid", "fit_problem", "fit_tc", "fit_capture",
           "named_matches", "dataset_problem", "holdout_split", "quick_fit", "label",
           "register", "stage_variants", "complexity", "signature"]

NS = (4, 8, 16, 32)
FRACS = tuple(range(13, 27))
ROUNDINGS = ("rtz", "rne")
C_MODES = ("block", "late")
PROMOTE = (None, 128)
#: Rounding modes of the separate c-addition stage tried by the stage search.
C_ROUNDINGS = ("rtz", "rne")
#: Result bits of the c-addition stage tried by the stage search, besides the block's own.
C_FRAC_BITS = (13,)
#: Base candidates the stage search refines.
BEAM = 24
_F32 = "float32"  # the tensor cores' accumulator: every path's block can round into it


@dataclass
class Piece:
    """Device results to explain: d ~ out(scale_b * (scale_a * model(c + a @ b))).

    a: (batch, M, K), b: (batch, K, N), c: None or broadcastable to (batch, M, N); inputs
    as arrays of their format's numpy/ml_dtypes dtype (or float values with ``inputs``);
    ``want``: float32 device results; ``out``: the format they were compared in.
    """

    a: np.ndarray
    b: np.ndarray
    want: np.ndarray
    out: str
    c: Optional[np.ndarray] = None
    inputs: Optional[str] = None
    scale_a: Optional[float] = None
    scale_b: Optional[float] = None

    @property
    def cases(self) -> int:
        return int(np.size(self.want))


@dataclass
class FitProblem:
    """A named fitting problem: pieces with one input and one output format."""

    name: str
    in_format: str
    out_format: str
    pieces: list
    block_outs: tuple = ("float32",)
    info: dict = field(default_factory=dict)

    @property
    def cases(self) -> int:
        return sum(p.cases for p in self.pieces)


def grid(in_format: str, block_outs: Sequence[str] = ("float32",), *, ns=NS, fracs=FRACS,
         roundings=ROUNDINGS, c_modes=C_MODES, promote=PROMOTE, extended: bool = False
         ) -> list:
    """Block models to try, simplest first.

    Args:
        in_format: input format (the fp16 conversion of the extended grid applies to fp8).
        block_outs: output formats of the block ("float32", "float16").
        ns, fracs, roundings, c_modes, promote: values of n, F, rounding, c_mode and
            promote_every (None or a number of products; skipped where it is not a
            multiple of the instruction's products).
        extended: also try two blocks per instruction (instruction_k = 2n), contiguous or
            dealt round-robin in runs of 1, 2 or 4, and 8-bit float inputs converted to
            fp16 (Hopper's fp16-accumulating fp8 path).

    Returns:
        A list of :class:`BlockFMAModel`.
    """
    fin = get_format(in_format)
    fp8 = isinstance(fin, FloatFormat) and fin.bits == 8
    convs = [None] + (["float16"] if extended and fp8 else [])
    out = []
    for bo in block_outs:
        man = get_format(bo).man_bits
        for n in ns:
            layouts = [(None, 0)]
            if extended:
                layouts += [(2 * n, g) for g in (0, 1, 2, 4) if g == 0 or n % g == 0]
            for f in fracs:
                for rnd in roundings:
                    for cm in c_modes:
                        for ik, g in layouts:
                            if ik is not None and g == 0 and cm == "block":
                                continue  # same as one block per instruction
                            kk = ik or n
                            for p in promote:
                                if p is not None and (p < kk or p % kk):
                                    continue
                                for narrow in (False, True) if f < man else (False,):
                                    for conv in convs:
                                        out.append(BlockFMAModel(
                                            n, f, rnd, bo, out_frac_bits=f if narrow else None,
                                            c_mode=cm, instruction_k=ik, interleave=g,
                                            promote_every=p, convert_inputs=conv))
    return out


def _mismatches(blk: BlockFMAModel, piece: Piece) -> int:
    r = matmul(piece.a, piece.b, c=piece.c, inputs=piece.inputs, model=blk,
               out=blk.out_format, scale_a=piece.scale_a, scale_b=piece.scale_b)
    r = np.asarray(r, np.float32)
    if get_format(piece.out).name != blk.out_format:
        r = quantize(r.astype(np.float64), piece.out).astype(np.float32)
    r = r.reshape(-1)
    w = np.asarray(piece.want, np.float32).reshape(-1)
    same = (r.view(np.uint32) == w.view(np.uint32)) | (np.isnan(r) & np.isnan(w))
    return int((~same).sum())


def stage_variants(blk: BlockFMAModel, outs: Sequence[str] = ()) -> list:
    """Models that differ from ``blk`` in one or more of the separate stages (the stage
    search): c added late with its own rounding (:data:`C_ROUNDINGS`) and result bits
    (:data:`C_FRAC_BITS`), normalised products, and the block rounding into each format of
    ``outs`` instead (e.g. fp32 for an fp16 output: the output made from the fp32 result).

    Args:
        blk: the base model.
        outs: other block output formats to try.

    Returns:
        A list of :class:`BlockFMAModel`, ``blk`` itself excluded.
    """
    base = [blk]
    for o in outs:
        o = get_format(o).name
        if o != blk.out_format:
            man = get_format(o).man_bits
            ofb = blk.out_frac_bits if (blk.out_frac_bits or 0) <= man else None
            base.append(blk.with_(out_format=o, out_frac_bits=ofb, c_rounding=None,
                                  c_frac_bits=None))
    out = []
    for b in base:
        cms = [b]
        if b.c_mode == "late":
            full = get_format(b.out_format).man_bits
            rnds = [None] + [r for r in C_ROUNDINGS if r != b.rounding]
            bits = [None] + [f for f in C_FRAC_BITS if f <= full and f != b.result_frac_bits]
            cms = [b.with_(c_rounding=r, c_frac_bits=f) for r in rnds for f in bits]
        for m in cms:
            out.append(m)
            out.append(m.with_(normalise_products=True))
    seen = {blk}
    res = []
    for m in out:
        if m not in seen:
            seen.add(m)
            res.append(m)
    return res


def complexity(blk: BlockFMAModel, k: int, out: Optional[str] = None) -> int:
    """How complicated a model is on dot products of length ``k``: the rounding steps of
    one output (one per block, one per late c addition, two per fp32 promotion of a block
    narrower than fp32 (the fp32 total and the output), one more when the block rounds into
    another format than the output ``out``) plus one per extra feature (interleaved blocks,
    converted inputs, fp32 promotion, narrowed result, a c stage with its own mode or bits,
    normalised products).

    Returns:
        A non-negative int; lower is simpler.
    """
    ik = blk.k_per_instruction
    ninst = max(1, -(-k // ik))
    r = ninst * (ik // blk.n + (blk.c_mode == "late"))
    if blk.promote_every:
        r += -(-ninst * ik // blk.promote_every) * (1 + (blk.out_format != _F32))
    elif out is not None and get_format(out).name != blk.out_format:
        r += 1
    return r + sum([blk.interleave > 0, blk.convert_inputs is not None, bool(blk.promote_every),
                    blk.out_frac_bits is not None, blk.c_rounding is not None,
                    blk.c_frac_bits is not None, blk.normalise_products])


def describe(blk: BlockFMAModel) -> dict:
    """The fitted parameters as a JSON-friendly dict."""
    return {"n": blk.n, "frac_bits": blk.frac_bits, "rounding": blk.rounding,
            "out_format": blk.out_format, "result_frac_bits": blk.result_frac_bits,
            "c_mode": blk.c_mode, "instruction_k": blk.k_per_instruction,
            "interleave": blk.interleave, "promote_every": blk.promote_every,
            "convert_inputs": blk.convert_inputs, "c_rounding": blk.c_rounding,
            "c_frac_bits": blk.c_frac_bits, "normalise_products": blk.normalise_products}


def named_matches(blk: BlockFMAModel, in_format: str) -> list:
    """Named GPUs whose path for ``in_format`` has exactly these parameters."""
    hits = []
    for g in list_models():
        try:
            ref = select_block(g, in_format, blk.out_format)
        except ValueError:
            continue
        if describe(ref) == describe(blk):
            hits.append(g)
    return hits


def fit_problem(problem: FitProblem, candidates: Optional[Iterable[BlockFMAModel]] = None,
                *, extended: bool = False, stages: bool = False, beam: int = BEAM,
                holdout: Optional[FitProblem] = None, progress: bool = False) -> list:
    """Rank block models by how many device results they miss.

    Args:
        problem: the :class:`FitProblem`.
        candidates: models to try (default :func:`grid` for the problem's formats).
        extended: use the extended grid (see :func:`grid`) when ``candidates`` is None.
        stages: then refine the best ``beam`` candidates stage by stage
            (:func:`stage_variants`; for an output narrower than fp32 also the block
            rounding into fp32, the output made from the fp32 result).
        beam: how many base candidates the stage search refines.
        holdout: a problem of held-out results (same formats): the ranked candidates that
            miss nothing or the fewest are checked on it too.
        progress: tqdm progress bar on stderr.

    Returns:
        Rows sorted best first (see the module docstring): dicts with params (see
        :func:`describe`), model (the :class:`BlockFMAModel`), mismatches (complete
        count, or the count when stopped), cases (results checked), complete (bool),
        complexity (:func:`complexity`), margin (0..3), stage (whether the stage search
        produced it), same_as (for a candidate not run because it computes what an
        earlier one does, see :func:`signature`: that one's order), named (GPUs with these
        parameters; first 50 rows) and, with ``holdout``, holdout_mismatches /
        holdout_cases (first 50 rows).
    """
    if candidates is None:
        candidates = grid(problem.in_format, problem.block_outs, extended=extended)
    cands = list(candidates)
    threads = numba.get_num_threads()
    # Thousands of small kernel calls: a thread-pool launch per call costs more than the
    # work (results do not depend on the thread count).
    numba.set_num_threads(1)
    try:
        best = [np.inf]
        sigs = {}
        rows = _search(problem, _bar(cands, problem, progress), best, seen=sigs)
        if stages:
            order = sorted(rows, key=_key)
            seen = {r["model"] for r in rows}
            outs = tuple(o for o in (_F32,) if get_format(problem.out_format).name != o)
            more = []
            for r in order[:beam]:
                for m in stage_variants(r["model"], outs):
                    if m not in seen:
                        seen.add(m)
                        more.append(m)
            extra = _search(problem, _bar(more, problem, progress, "stages"), best,
                            start=len(rows), seen=sigs)
            for r in extra:
                r["stage"] = True
            rows += extra
        k = int(problem.info.get("k") or problem.pieces[0].a.shape[-1])
        _rank_info(rows, k, problem.out_format)
        rows.sort(key=_key)
        for r in rows[:50]:
            r["named"] = named_matches(r["model"], problem.in_format)
            if holdout is not None:
                r["holdout_mismatches"] = sum(_mismatches(r["model"], p)
                                              for p in holdout.pieces)
                r["holdout_cases"] = holdout.cases
    finally:
        numba.set_num_threads(threads)
    return rows


def _bar(cands, problem, progress, what="fit"):
    if progress:
        return tqdm(cands, desc=f"{what} {problem.name}", file=sys.stderr, leave=False)
    return cands


def _key(r):
    return (not r["complete"],
            r["mismatches"] if r["complete"] else -r["cases"] / max(r["mismatches"], 1),
            r.get("complexity", 0), -r.get("margin", 0), r["order"])


def _rank_info(rows: list, k: int, out: str) -> None:
    """Add complexity and F margin (how many of F-1..F-3 also miss nothing) to rows."""
    zero = {r["model"] for r in rows if r["complete"] and r["mismatches"] == 0}
    for r in rows:
        m = r["model"]
        r["complexity"] = complexity(m, k, out)
        r.setdefault("stage", False)
        margin = 0
        if m in zero:
            for d in (1, 2, 3):
                try:
                    lower = m.with_(frac_bits=m.frac_bits - d)
                except ValueError:
                    break
                if lower not in zero:
                    break
                margin = d
        r["margin"] = margin


def signature(blk: BlockFMAModel, k: int) -> tuple:
    """What a model computes on dot products of length ``k``: the products each block of
    each instruction sums (as sets: a block's sum is exact before its rounding), the
    instructions after which an fp32 promotion happens, and the other parameters. Two
    models with equal signatures give equal results on every such product (e.g. n = 32 with
    64 products per instruction and n = 16 with 32, for k = 32), so the search runs one.
    """
    ik = blk.k_per_instruction
    nb = ik // blk.n
    g = blk.interleave
    insts = []
    for q0 in range(0, max(k, 1) + (-max(k, 1)) % ik, ik):
        blocks = []
        for s in range(nb):
            if g:
                ks = [q0 + j for j in range(ik) if (j // g) % nb == s]
            else:
                ks = range(q0 + s * blk.n, q0 + (s + 1) * blk.n)
            blocks.append(frozenset(x for x in ks if x < k))
        insts.append(tuple(blocks))
    prom = None
    if blk.promote_every:
        prom = tuple(i for i in range(1, len(insts) + 1) if i * ik % blk.promote_every == 0)
    return (tuple(insts), prom, blk.frac_bits, blk.rounding, blk.out_format,
            blk.out_frac_bits, blk.c_mode, blk.convert_inputs, blk.c_rounding,
            blk.c_frac_bits, blk.normalise_products)


def _search(problem: FitProblem, cands, best: list, start: int = 0,
            seen: Optional[dict] = None) -> list:
    """Branch and bound: ``best[0]`` is the lowest complete mismatch count so far. A
    candidate whose :func:`signature` equals an earlier one's (``seen``: signature -> row,
    shared between calls) is not run: its row copies that one's counts (``same_as``)."""
    ks = {int(np.shape(p.a)[-1]) for p in problem.pieces}
    k = ks.pop() if len(ks) == 1 else None
    seen = {} if seen is None else seen
    rows = []
    for idx, blk in enumerate(cands, start):
        sig = signature(blk, k) if k is not None else None
        if sig is not None and sig in seen:
            first = seen[sig]
            rows.append({"order": idx, "model": blk, "params": describe(blk),
                         "mismatches": first["mismatches"], "cases": first["cases"],
                         "complete": first["complete"], "same_as": first["order"]})
            continue
        miss = checked = 0
        complete = True
        for piece in problem.pieces:
            try:
                miss += _mismatches(blk, piece)
            except ValueError:  # e.g. a path the inputs cannot take
                miss, complete = np.iinfo(np.int64).max, False
                break
            checked += piece.cases
            if miss > best[0]:
                complete = checked == problem.cases
                break
        if complete:
            best[0] = min(best[0], miss)
        rows.append({"order": idx, "model": blk, "params": describe(blk), "mismatches": int(miss),
                     "cases": checked, "complete": complete})
        if sig is not None:
            seen[sig] = rows[-1]
    return rows


def _split(n: int) -> list:
    cuts = [0] + [c for c in (64, 512) if c < n] + [n]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def dataset_problem(ds: TCDataset, select: Optional[np.ndarray] = None,
                    tag: str = "") -> FitProblem:
    """The :class:`FitProblem` of one real-GPU data set (c as the instruction saw it).

    Args:
        ds: the data set.
        select: None (every case) or the case indices to take.
        tag: appended to the problem's name (e.g. " (even cases)").
    """
    out = ds.out_format
    idx = np.arange(ds.cases) if select is None else np.asarray(select)
    a, b, c, d = ds.a[idx], ds.b[idx], ds.c[idx], ds.d[idx]
    pieces = [Piece(a[s, None, :], b[s, :, None], d[s], out, c=c[s, None, None],
                    inputs=ds.input_format) for s in _split(len(idx))]
    return FitProblem(f"{ds.gpu}/{ds.folder}/{ds.output}{tag}",
                      ds.input_format, out, pieces, block_outs=(out,),
                      info={"gpu": ds.gpu, "input": ds.folder, "k": ds.k})


def holdout_split(ds: TCDataset) -> tuple:
    """Fit and held-out problems of a data set: the even-numbered cases (0, 2, ...) and the
    odd-numbered ones (a fixed rule, so that a fit can be checked on results it never saw).

    Returns:
        (fit problem, held-out problem).
    """
    n = ds.cases
    return (dataset_problem(ds, np.arange(0, n, 2), " (even cases)"),
            dataset_problem(ds, np.arange(1, n, 2), " (odd cases)"))


def tc_problems(root, limit: Optional[int] = None) -> list:
    """One :class:`FitProblem` per data set (output file) under ``root`` (see
    :func:`lowprec.hardware.tcdata.scan`).

    Raises:
        ValueError: if ``root`` is not a directory or holds no data set.
    """
    return [dataset_problem(ds) for ds in _tc_datasets(root, limit)]


def _tc_datasets(root, limit: Optional[int] = None) -> list:
    found = scan(root)
    found.require_datasets()
    return [load_dataset(gpu, folder, out, root=root, limit=limit)
            for gpu, folder, out in found.datasets]


def tc_holdout_problems(root, limit: Optional[int] = None) -> list:
    """(fit, held-out) problem pairs, one per data set under ``root`` (see
    :func:`holdout_split`)."""
    return [holdout_split(ds) for ds in _tc_datasets(root, limit)]


#: The small grid of :func:`quick_fit`: the block sizes and alignment widths of the
#: published models, both roundings and c placements, and the extended layouts (two
#: interleaved blocks per instruction, fp8 inputs through fp16) for blocks that round into
#: an output narrower than fp32 (fp16).
QUICK = dict(ns=(8, 16, 32), fracs=(13, 23, 24, 25), promote=(None,))


def quick_fit(problem: FitProblem) -> dict:
    """The best block model of a small grid (:data:`QUICK`) for a problem no named model
    covers: a first guess to report, not a fitted model.

    Returns:
        The best row of :func:`fit_problem` (params, model, mismatches, cases, complete,
        named) with ``label`` (see :func:`label`) and ``matches`` added.
    """
    narrow = any(get_format(o).bits < get_format(_F32).bits for o in problem.block_outs)
    cands = grid(problem.in_format, problem.block_outs, extended=narrow, **QUICK)
    best = dict(fit_problem(problem, cands)[0])
    best["label"] = label(best["model"])
    best["matches"] = best["cases"] - best["mismatches"] if best["complete"] else None
    return best


def label(blk: BlockFMAModel) -> str:
    """A one-line description of a block model's parameters (defaults left out)."""
    parts = [f"n={blk.n}", f"F={blk.frac_bits}", blk.rounding, f"into {blk.out_format}"]
    if blk.out_frac_bits is not None:
        parts.append(f"{blk.out_frac_bits} result bits")
    if blk.c_mode != "block":
        parts.append(f"c {blk.c_mode}")
    if blk.k_per_instruction != blk.n:
        parts.append(f"{blk.k_per_instruction} products per instruction")
    if blk.interleave:
        parts.append(f"interleave {blk.interleave}")
    if blk.promote_every:
        parts.append(f"fp32 promotion every {blk.promote_every}")
    if blk.convert_inputs:
        parts.append(f"inputs via {blk.convert_inputs}")
    if blk.c_rounding is not None:
        parts.append(f"c added with {blk.c_rounding}")
    if blk.c_frac_bits is not None:
        parts.append(f"c stage {blk.c_frac_bits} result bits")
    if blk.normalise_products:
        parts.append("normalised products")
    return "block " + " ".join(parts[:4]) + "".join(f", {p}" for p in parts[4:])


def _tensor_core_inputs() -> set:
    """Input formats some GPU model's tensor cores take."""
    return {i for m in MODELS.values() for i, _ in m.paths}


def _block_outputs(fin: str, out: str) -> tuple:
    """Block outputs to fit for inputs ``fin`` (one format) and a captured output ``out``:
    fp32, and ``out`` itself where a GPU model has a path from ``fin`` into it."""
    into_out = any((fin, out) in m.paths for m in MODELS.values())
    return tuple(dict.fromkeys((_F32,) + ((out,) if into_out else ())))


def capture_problems(cap) -> list:
    """One :class:`FitProblem` per (inputs, output, accumulation request) group of captured
    GEMMs whose first input format a tensor-core model takes (fp16, bf16, fp8, ...)."""
    if not isinstance(cap, Capture):
        cap = load_capture(cap)
    groups = {}
    takes = _tensor_core_inputs()
    for op in cap.ops:
        if op.get("status") != "ok" or op.get("kind") != "gemm":
            continue
        fa, fb = op["inputs"], op.get("inputs_b", op["inputs"])
        if fa not in takes:
            continue
        key = (op["torch_op"], f"{fa}x{fb}" if fa != fb else fa, op["out"], op["acc_request"])
        sa = op.get("scale_a")
        sb = op.get("scale_b")
        piece = Piece(typed_values(cap.values(op, "a"), fa)[None],
                      typed_values(cap.values(op, "b"), fb)[None],
                      cap.values(op, "d").astype(np.float32)[None], op["out"],
                      scale_a=None if sa in (None, 1.0) else sa,
                      scale_b=None if sb in (None, 1.0) else sb)
        groups.setdefault(key, []).append(piece)
    probs = []
    for (top, fin, out, acc), pieces in groups.items():
        # a path into the output format needs one input format (the key has no "x")
        outs = _block_outputs(fin, out) if "x" not in fin else (_F32,)
        pieces.sort(key=lambda p: p.cases)
        probs.append(FitProblem(f"{top} {fin}->{out} acc={acc}", fin.split("x")[0], out,
                                pieces, block_outs=outs, info={"torch_op": top}))
    return probs


def fit_tc(root, *, limit: Optional[int] = None, extended: bool = False,
           stages: bool = False, holdout: bool = False, progress: bool = False) -> list:
    """Fit every data set under ``root``: a list of (problem, ranked rows).

    With ``holdout`` each data set is fitted on its even-numbered cases and the ranked
    rows carry their mismatches on the odd-numbered ones (:func:`holdout_split`).
    """
    if holdout:
        return [(p, fit_problem(p, extended=extended, stages=stages, holdout=h,
                                progress=progress))
                for p, h in tc_holdout_problems(root, limit)]
    return [(p, fit_problem(p, extended=extended, stages=stages, progress=progress))
            for p in tc_problems(root, limit)]


def fit_capture(cap, *, extended: bool = False, stages: bool = False,
                progress: bool = False) -> list:
    """Fit every GEMM group of a capture: a list of (problem, ranked rows)."""
    return [(p, fit_problem(p, extended=extended, stages=stages, progress=progress))
            for p in capture_problems(cap)]


def format_rows(problem: FitProblem, rows: list, top: int = 10) -> str:
    """Ranked table of the best ``top`` candidates, with their match counts (and held-out
    match counts when the rows have them)."""
    zero = sum(1 for r in rows if r["complete"] and r["mismatches"] == 0)
    ho = any("holdout_cases" in r for r in rows[:top])
    lines = [f"{problem.name}: {problem.cases} results, {len(rows)} candidates, {zero} with no "
             f"mismatch",
             f"  {'#':>3} {'n':>3} {'F':>3} {'rnd':4} {'out':8} {'res':>3} {'c':6} {'ik':>3} "
             f"{'il':>2} {'prom':>5} {'conv':8} {'c-stage':8} {'nrm':3} {'cx':>2} {'mg':>2} "
             f"{'matches':>16}" + (f" {'held out':>10}" if ho else "") + "  named"]
    for i, r in enumerate(rows[:top], 1):
        p = r["params"]
        mm = (f"{r['cases'] - r['mismatches']}/{r['cases']}" if r["complete"]
              else f"<={r['cases'] - r['mismatches']} of {r['cases']}")
        cst = "-"
        if p["c_mode"] == "late":
            cst = f"{p['c_rounding'] or p['rounding']}/{p['c_frac_bits'] or p['result_frac_bits']}"
        hcol = ""
        if ho:
            hcol = (f" {r['holdout_cases'] - r['holdout_mismatches']:>5}/{r['holdout_cases']:<4}"
                    if "holdout_cases" in r else f" {'':>10}")
        lines.append(f"  {i:3d} {p['n']:3d} {p['frac_bits']:3d} {p['rounding']:4} "
                     f"{p['out_format']:8} {p['result_frac_bits']:3d} {p['c_mode']:6} "
                     f"{p['instruction_k']:3d} {p['interleave']:2d} "
                     f"{str(p['promote_every'] or '-'):>5} {str(p['convert_inputs'] or '-'):8} "
                     f"{cst:8} {'yes' if p['normalise_products'] else '-':3} "
                     f"{r.get('complexity', 0):2d} {r.get('margin', 0):2d} {mm:>16}{hcol}  "
                     f"{','.join(r.get('named', [])) or '-'}")
    return "\n".join(lines)


def _json_rows(problem: FitProblem, rows: list, top: int) -> dict:
    keys = ("params", "mismatches", "cases", "complete", "complexity", "margin", "stage",
            "holdout_mismatches", "holdout_cases")
    return {"problem": problem.name, "input": problem.in_format, "output": problem.out_format,
            "cases": problem.cases, "info": problem.info, "candidates": len(rows),
            "ranked": [{**{k: r[k] for k in keys if k in r}, "named": r.get("named", [])}
                       for r in rows[:top]]}


def _main(args) -> int:
    if (args.file is None) == (args.tc_dir is None):
        raise ValueError("give a capture FILE or --tc-dir DIR (exactly one)")
    if args.top < 1:
        raise ValueError(f"--top must be positive, got {args.top}")
    if args.tc_dir is not None:
        found = scan(args.tc_dir)
        for path, reason in found.skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        if args.holdout:
            pairs = tc_holdout_problems(args.tc_dir, args.limit)
        else:
            pairs = [(p, None) for p in tc_problems(args.tc_dir, args.limit)]
    else:
        if args.holdout:
            raise ValueError("--holdout needs --tc-dir")
        try:
            pairs = [(p, None) for p in capture_problems(args.file)]
        except FileNotFoundError as e:
            raise ValueError(str(e)) from e
    if not pairs:
        print("nothing to fit (no data sets / no tensor-core-type GEMMs found)")
        return 0
    if args.beam < 1:
        raise ValueError(f"--beam must be positive, got {args.beam}")
    results = [(p, fit_problem(p, extended=args.extended, stages=args.stages, beam=args.beam,
                               holdout=h, progress=True)) for p, h in pairs]
    if args.json:
        print(json.dumps([_json_rows(p, r, args.top) for p, r in results], indent=1))
    else:
        print("\n\n".join(format_rows(p, r, args.top) for p, r in results))
    return 0


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``fit`` subcommand (``help``: its one-line help, from
    :data:`lowprec.cli.COMMANDS`)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("file", nargs="?", help="capture file written by `lowprec capture`")
    p.add_argument("--tc-dir", help="folder of published real-GPU dot-product data")
    p.add_argument("--extended", action="store_true",
                   help="also try two blocks per instruction (interleaved) and fp8 inputs "
                        "converted to fp16")
    p.add_argument("--stages", action="store_true",
                   help="refine the best candidates stage by stage: c added late with its "
                        "own rounding and result bits, normalised products, an fp16 output "
                        "made from the fp32 result")
    p.add_argument("--beam", type=int, default=BEAM,
                   help=f"candidates the stage search refines (default {BEAM})")
    p.add_argument("--holdout", action="store_true",
                   help="fit on the even-numbered cases of each data set and report the "
                        "ranked candidates' matches on the odd-numbered ones (--tc-dir)")
    p.add_argument("--limit", type=int, default=None, help="cases per data set (--tc-dir)")
    p.add_argument("--top", type=int, default=10, help="rows to print per problem")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_main)
    return p
