"""fit: the block-FMA search recovers the named models from the real-GPU data in tests/data."""

import json

import numpy as np
import pytest

from lowprec.cli import main
from lowprec.hardware import select_block
from lowprec.hardware.fit import (_mismatches, describe, fit_problem, grid, label, quick_fit,
                                  tc_problems)
from lowprec.hardware.tcdata import default_root

ROOT = default_root()
PROBLEMS = {p.name: p for p in tc_problems(ROOT)}
NAMED = {"V100": "v100", "A100": "a100", "H100": "h100"}


def _named_block(p):
    return select_block(NAMED[p.info["gpu"]], p.in_format, p.out_format)


@pytest.mark.parametrize("name", ["V100/fp16/fp32", "A100/fp16/fp32", "A100/bf16/fp32",
                                  "H100/fp16/fp32", "H100/bf16/fp32", "H100/E4M3/fp32"])
def test_fit_recovers_named_parameters_fp32_output(name):
    p = PROBLEMS[name]
    rows = fit_problem(p)
    top = rows[0]
    assert top["complete"] and top["mismatches"] == 0 and top["cases"] == 2500
    assert top["params"] == describe(_named_block(p))
    assert NAMED[p.info["gpu"]] in top["named"]
    # the runner-up differs only where the data cannot tell (n >= K, or c/promotion
    # variants that act the same on one block)
    assert rows[1]["params"]["frac_bits"] == top["params"]["frac_bits"]


@pytest.mark.parametrize("name", ["V100/fp16/fp16", "A100/fp16/fp16", "H100/fp16/fp16"])
def test_fit_fp16_output_named_model_among_exact_fits(name):
    # RNE into fp16 hides the low alignment bits: F is not identifiable from these data,
    # n, rounding and c_mode are.
    p = PROBLEMS[name]
    rows = fit_problem(p)
    zero = [r for r in rows if r["complete"] and r["mismatches"] == 0]
    named = describe(_named_block(p))
    assert named in [r["params"] for r in zero]
    top = rows[0]["params"]
    assert (top["n"], top["rounding"], top["c_mode"], top["out_format"]) == \
        (named["n"], named["rounding"], named["c_mode"], named["out_format"])
    assert all(r["params"]["n"] >= named["n"] for r in zero)


def test_fit_h100_fp8_fp16_output_needs_the_extended_grid():
    p = PROBLEMS["H100/E4M3/fp16"]
    named = _named_block(p)
    plain = fit_problem(p, grid(p.in_format, ("float16",), ns=(16, 32), fracs=(13, 25)))
    assert plain[0]["mismatches"] > 100  # no single-block model explains it
    rows = fit_problem(p, grid(p.in_format, ("float16",), ns=(16, 32), fracs=(13, 25),
                               extended=True))
    zero = [r["params"] for r in rows if r["complete"] and r["mismatches"] == 0]
    assert describe(named) in zero
    top = rows[0]["params"]
    assert (top["n"], top["instruction_k"], top["interleave"], top["rounding"]) == \
        (16, 32, 2, "rne")


def test_pruning_keeps_complete_counts_exact():
    p = PROBLEMS["A100/fp16/fp32"]
    cands = grid(p.in_format, ("float32",), ns=(4, 8), fracs=(23, 24, 25), c_modes=("block",))
    rows = fit_problem(p, cands)
    full = {r["order"]: sum(_mismatches(r["model"], pc) for pc in p.pieces) for r in rows}
    best = min(full.values())
    assert best == 0
    for r in rows:
        if r["complete"]:
            assert r["mismatches"] == full[r["order"]]
        else:  # stopped early: a lower bound that already exceeded the best
            assert best < r["mismatches"] <= full[r["order"]]
    assert any(not r["complete"] for r in rows)
    assert [r["order"] for r in rows if r["complete"]] == sorted(
        (o for o in full if any(r["order"] == o and r["complete"] for r in rows)),
        key=lambda o: (full[o], o))


def test_grid_is_valid_and_ordered():
    g = grid("bf16", ("float32",))
    assert len(g) == len(set(g))
    assert g[0].n == 4 and g[0].frac_bits == 13 and g[0].rounding == "rtz"
    assert {b.n for b in g} == {4, 8, 16, 32} and {b.frac_bits for b in g} == set(range(13, 27))
    assert {b.promote_every for b in g} == {None, 128}
    assert all(b.out_frac_bits in (None, b.frac_bits) for b in g)
    ext = grid("e4m3", ("float16",), extended=True)
    assert any(b.interleave == 2 and b.convert_inputs == "float16" for b in ext)
    # inputs through fp16 are tried for 8-bit floats only
    assert {b.convert_inputs for b in grid("e5m2", ns=(16,), fracs=(25,), extended=True)} == {
        None, "float16"}
    for fmt in ("bf16", "fp16", "e2m1"):
        assert {b.convert_inputs for b in grid(fmt, ns=(16,), fracs=(25,), extended=True)} == {
            None}


def test_cli_fit_json_and_table(tmp_path, capsys):
    d = tmp_path / "V100" / "fp16"
    d.mkdir(parents=True)
    for f in (ROOT / "V100" / "fp16").iterdir():
        if "fp16.txt" in f.name and f.name.startswith("d_"):
            continue
        (d / f.name).write_text("\n".join(f.read_text().splitlines()[:300]) + "\n")
    assert main(["fit", "--tc-dir", str(tmp_path), "--json", "--top", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res) == 1 and res[0]["problem"] == "V100/fp16/fp32" and res[0]["cases"] == 300
    best = res[0]["ranked"][0]
    assert best["mismatches"] == 0 and best["named"] == ["v100"]
    assert (best["params"]["n"], best["params"]["frac_bits"], best["params"]["rounding"]) == \
        (4, 23, "rtz")
    assert main(["fit", "--tc-dir", str(tmp_path), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "V100/fp16/fp32: 300 results" in out and "v100" in out
    assert main(["fit"]) == 2
    assert main(["fit", str(tmp_path / "missing.npz")]) == 2


def test_cli_fit_lists_skipped_folders(tmp_path, capsys):
    d = tmp_path / "V100" / "fp16"
    d.mkdir(parents=True)
    for f in (ROOT / "V100" / "fp16").iterdir():
        if f.name != "d_V100_fp16.txt":
            (d / f.name).write_text("\n".join(f.read_text().splitlines()[:40]) + "\n")
    (tmp_path / "RTX9000" / "fp16").mkdir(parents=True)
    assert main(["fit", "--tc-dir", str(tmp_path), "--top", "1"]) == 0
    cap = capsys.readouterr()
    assert "V100/fp16/fp32: 40 results" in cap.out
    assert "skipped RTX9000: no lowprec model of a GPU named 'RTX9000'" in cap.err


def test_quick_fit_reports_a_labelled_best_candidate():
    p = PROBLEMS["A100/fp16/fp32"]
    best = quick_fit(p)
    assert best["complete"] and best["matches"] == best["cases"] == 2500
    assert best["params"] == describe(_named_block(p)) and "a100" in best["named"]
    assert best["label"] == label(_named_block(p)) == "block n=8 F=24 rtz into float32"


# --- issue 14: the fp8 paths fitted to B200 and Ada data, with held-out validation ---

from lowprec.hardware.fit import (complexity, dataset_problem, holdout_split,  # noqa: E402
                                  stage_variants, tc_holdout_problems)
from lowprec.hardware.tcdata import load_dataset  # noqa: E402
from lowprec.tensorcore import AUTHORS_B200_FP8, BlockFMAModel  # noqa: E402

HOLDOUT = {p.name.split(" ")[0]: (p, h) for p, h in tc_holdout_problems(ROOT)
           if p.info["gpu"] in ("Ada", "B200")}


def _zero(rows):
    return [r for r in rows if r["complete"] and r["mismatches"] == 0]


@pytest.mark.parametrize("name", ["B200/E4M3/fp32", "B200/E5M2/fp32"])
def test_fit_finds_b200_fp8_fp32_on_half_and_it_holds_on_the_other(name):
    p, h = HOLDOUT[name]
    assert p.cases == h.cases == 500
    rows = fit_problem(p, stages=True, holdout=h)
    top = rows[0]
    assert top["complete"] and top["mismatches"] == 0
    assert top["holdout_mismatches"] == 0 and top["holdout_cases"] == 500
    named = select_block("b200", p.in_format, "fp32")
    # the fitted structure: one block of 32, RNE, c added by its own stage, 3 bits of margin
    tp = top["params"]
    assert (tp["n"], tp["instruction_k"], tp["rounding"], tp["c_mode"], tp["c_rounding"]) == \
        (named.n, 32, "rne", "late", None)
    assert top["margin"] == 3 and top["named"] in ([], ["b200"])
    row = next(r for r in rows if r["model"] == named)
    assert row["mismatches"] == 0 and row["margin"] == 3 and "b200" in row["named"]
    assert row["holdout_mismatches"] == 0
    # the authors' block (c in the block, RTZ) is far off; c in the block with RNE too
    assert _mismatches(AUTHORS_B200_FP8, p.pieces[0]) + _mismatches(
        AUTHORS_B200_FP8, p.pieces[1]) > 100
    in_block = [r for r in rows if r["params"]["c_mode"] == "block"
                and not r["params"]["promote_every"] and r["params"]["n"] == 32]
    assert in_block and min(r["mismatches"] for r in in_block) > 0  # F <= 26 in the grid


@pytest.mark.parametrize("name", ["Ada/E4M3/fp16", "Ada/E5M2/fp16"])
def test_fit_finds_ada_fp8_fp16_on_half_and_it_holds_on_the_other(name):
    p, h = HOLDOUT[name]
    rows = fit_problem(p, stages=True, holdout=h)
    top = rows[0]
    assert top["complete"] and top["mismatches"] == 0 and top["holdout_mismatches"] == 0
    assert top["params"] == describe(select_block("ada", p.in_format, "fp16"))
    assert {"ada", "l40s"} <= set(top["named"])
    # F = 13 is pinned down: no other F of that structure misses nothing
    assert {r["params"]["frac_bits"] for r in _zero(rows)} == {13}


@pytest.mark.parametrize("name", ["B200/E4M3/fp16", "B200/E5M2/fp16"])
def test_fit_b200_fp8_fp16_is_the_fp16_datapath(name):
    p, h = HOLDOUT[name]
    cands = grid(p.in_format, ("float16",), ns=(16, 32), fracs=(13, 16, 19, 25), extended=True)
    rows = fit_problem(p, cands, holdout=h)
    named = select_block("b200", p.in_format, "fp16")
    assert named == select_block("h100", "e4m3", "fp16")
    zero = _zero(rows)
    assert describe(named) in [r["params"] for r in zero]
    top = rows[0]
    tp = top["params"]
    assert (tp["n"], tp["instruction_k"], tp["interleave"], tp["c_mode"], tp["rounding"]) == \
        (16, 32, 2, "late", "rne")
    assert top["holdout_mismatches"] == 0
    # one block of 32 into fp16 does not explain it
    single = [r for r in rows if r["complete"] and r["params"]["instruction_k"] == r["params"]["n"]]
    assert single and min(r["mismatches"] for r in single) > 50


def test_named_fitted_models_on_the_held_out_halves():
    for name, (p, h) in HOLDOUT.items():
        gpu = p.info["gpu"].lower()
        blk = select_block(gpu, p.in_format, p.out_format)
        assert sum(_mismatches(blk, pc) for pc in p.pieces) == 0, name
        assert sum(_mismatches(blk, pc) for pc in h.pieces) == 0, name


def test_holdout_split_is_even_and_odd_cases():
    ds = load_dataset("B200", "E4M3", "fp32", root=ROOT)
    p, h = holdout_split(ds)
    assert p.cases == h.cases == 500
    a_even = np.concatenate([pc.a[:, 0, :] for pc in p.pieces])
    a_odd = np.concatenate([pc.a[:, 0, :] for pc in h.pieces])
    assert (a_even == ds.a[0::2]).all() and (a_odd == ds.a[1::2]).all()
    assert "even" in p.name and "odd" in h.name


def test_stage_variants_and_complexity():
    late = BlockFMAModel(32, 25, "rne", "fp32", c_mode="late")
    v = stage_variants(late)
    assert late not in v and len(v) == len(set(v))
    assert BlockFMAModel(32, 25, "rne", "fp32", c_mode="late", c_rounding="rtz") in v
    assert BlockFMAModel(32, 25, "rne", "fp32", c_mode="late", c_frac_bits=13) in v
    assert late.with_(normalise_products=True) in v
    blk = BlockFMAModel(16, 13, "rne", "fp16")
    vb = stage_variants(blk, ("float32",))
    assert blk.with_(out_format="float32") in vb and blk.with_(normalise_products=True) in vb
    assert not any(m.c_rounding for m in vb)  # no separate c stage without c_mode="late"
    assert complexity(late, 32) == 2 and complexity(BlockFMAModel(32, 25), 32) == 1
    assert complexity(BlockFMAModel(16, 13), 32) == 2
    assert complexity(blk.with_(out_format="float32"), 32, "float16") == 3
    assert complexity(select_block("h100", "e4m3", "fp16"), 32) == 5
    assert complexity(BlockFMAModel(4, 18, c_mode="late", promote_every=128), 32) == 18


def test_cli_fit_stages_holdout(tmp_path, capsys):
    d = tmp_path / "B200" / "E4M3"
    d.mkdir(parents=True)
    for f in (ROOT / "B200" / "E4M3").iterdir():
        if f.name.startswith("d_") and "fp16" in f.name:
            continue
        (d / f.name).write_text("\n".join(f.read_text().splitlines()[:200]) + "\n")
    assert main(["fit", "--tc-dir", str(tmp_path), "--stages", "--holdout", "--json",
                 "--top", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res) == 1 and res[0]["cases"] == 100
    best = res[0]["ranked"][0]
    assert best["mismatches"] == 0 and best["holdout_cases"] == 100
    assert best["holdout_mismatches"] == 0 and best["params"]["c_mode"] == "late"
    assert main(["fit", "--tc-dir", str(tmp_path), "--stages", "--holdout", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "(even cases): 100 results" in out and "held out" in out and "100/100" in out
    assert main(["fit", "--tc-dir", str(tmp_path), "--beam", "0"]) == 2


def test_candidates_with_equal_signatures_give_equal_results():
    ds = load_dataset("B200", "E4M3", "fp16", root=ROOT, limit=64)
    p = dataset_problem(ds)
    cands = grid(p.in_format, ("float16",), ns=(8, 16, 32), fracs=(13, 25), extended=True)
    rows = fit_problem(p, cands, stages=True)
    by = {r["order"]: r for r in rows}
    dup = [r for r in rows if "same_as" in r]
    assert len(dup) > 50  # e.g. n = 32 with 64 products per instruction on K = 32
    rng = np.random.default_rng(0)
    for r in rng.choice(dup, 25, replace=False):
        first = by[r["same_as"]]
        assert "same_as" not in first and first["model"] != r["model"]
        got = [sum(_mismatches(m, pc) for pc in p.pieces) for m in (r["model"], first["model"])]
        assert got[0] == got[1]
    # a different grouping of the products is a different signature
    from lowprec.hardware.fit import signature
    a = BlockFMAModel(16, 25, "rne", "fp16", c_mode="late", instruction_k=32, interleave=2)
    assert signature(a, 32) == signature(a.with_(n=32, instruction_k=64), 32)
    assert signature(a, 32) != signature(a.with_(interleave=1), 32)
    assert signature(a, 64) != signature(a.with_(n=32, instruction_k=64), 64)
