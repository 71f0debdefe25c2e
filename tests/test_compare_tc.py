"""compare: scoring, and the named models on the real-GPU data shipped in tests/data."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import lowprec as lp
from lowprec.cli import main
from lowprec.hardware import compare, get_model
from lowprec.hardware.candidates import gemm_candidates, parse_candidates, run_candidate
from lowprec.hardware.compare import compare_tc, tc_predict
from lowprec.hardware.report import format_tc_table
from lowprec.hardware.scoring import score
from lowprec.hardware.tcdata import default_root, list_datasets, load_dataset
from lowprec.tensorcore import AUTHORS_B200_FP8, MODELS
from lowprec.testing import ulp_distance

ROOT = default_root()
FP8 = ("float8_e4m3fn", "float8_e5m2")
# data sets each GPU's model reproduces bit for bit (2,500 cases each; Ada and B200 1,000)
VALIDATED = {("V100", "fp16", "fp32"), ("V100", "fp16", "fp16"), ("A100", "fp16", "fp32"),
             ("A100", "fp16", "fp16"), ("A100", "bf16", "fp32"), ("H100", "fp16", "fp32"),
             ("H100", "fp16", "fp16"), ("H100", "bf16", "fp32"), ("H100", "E4M3", "fp32"),
             ("H100", "E4M3", "fp16"), ("Ada", "E4M3", "fp32"), ("Ada", "E5M2", "fp32")}
# fp8 paths fitted by `lowprec fit` (issue 14): B200 fp8 to fp32 and fp16, Ada fp8 to fp16
FITTED = {("B200", f, o) for f in ("E4M3", "E5M2") for o in ("fp32", "fp16")} | \
    {("Ada", f, "fp16") for f in ("E4M3", "E5M2")}
# the paths the fitted models cover (no GPU model had them before)
NO_MODEL = {(g, f, "fp16") for g in ("Ada", "B200") for f in ("E4M3", "E5M2")}


@pytest.fixture(scope="module")
def shipped():
    return compare_tc(ROOT)


def test_every_shipped_output_file_is_listed(shipped):
    got = [(r["gpu"], r["input"], r["output"]) for r in shipped]
    assert len(got) == len(set(got)) == 18
    assert set(got) == VALIDATED | FITTED
    assert not any(r["status"] == "skipped" for r in shipped)


def test_named_models_match_every_validated_dataset(shipped):
    for r in shipped:
        if (r["gpu"], r["input"], r["output"]) not in VALIDATED | FITTED:
            continue
        assert r["status"] == "ok" and r["model"] == r["gpu"].lower(), r
        assert r["cases"] == (1000 if r["gpu"] in ("Ada", "B200") else 2500)
        assert r["matches"] == r["cases"] and r["ulp_hist"]["0"] == r["cases"], r


def test_authors_b200_fp8_model_misses_a_third():
    # the published B200TC.m parameters, kept as AUTHORS_B200_FP8, on the same data
    b200 = get_model("b200")
    authors = replace(b200, paths={**b200.paths, ("float8_e4m3fn", "float32"): AUTHORS_B200_FP8,
                                   ("float8_e5m2", "float32"): AUTHORS_B200_FP8})
    for folder in ("E4M3", "E5M2"):
        ds = load_dataset("B200", folder, "fp32", root=ROOT)
        s = score(tc_predict(ds, authors), ds.d, ds.out_format)
        assert 600 < s["matches"] < 700, s


def test_fp8_fp16_output_without_a_named_path_gets_a_quick_search(monkeypatch):
    # drop the fitted fp16-output paths: compare falls back to a quick search, which finds
    # them again (Ada's exactly; B200's needs the extended layouts of the quick grid)
    for g in ("ada", "b200"):
        m = MODELS[g]
        monkeypatch.setitem(MODELS, g, replace(m, paths={k: v for k, v in m.paths.items()
                                                         if k[1] != "float16"
                                                         or k[0] not in FP8}))
    recs = compare_tc(ROOT, limit=200)
    for r in recs:
        if (r["gpu"], r["input"], r["output"]) in NO_MODEL:
            assert r["status"] == "no named model" and r["model"] is None, r
            assert "float16" in r["note"] and r["cases"] == 200
            b = r["best_candidate"]
            assert b["cases"] == 200 and b["matches"] == 200 and b["label"]
            assert b["params"]["out_format"] == "float16"
    table = format_tc_table(recs)
    assert table.count("no named model; best of a quick search: block n=") == len(NO_MODEL)


def test_wrong_model_is_caught():
    # a100 on V100 data: the comparison must be able to fail
    recs = compare_tc(ROOT, models=["a100", "v100"], limit=400)
    by = {(r["gpu"], r["input"], r["output"], r["model"]): r for r in recs}
    r = by[("V100", "fp16", "fp32", "a100")]
    assert r["matches"] < 400 and r["ulp_hist"]["0"] == r["matches"]
    assert by[("V100", "fp16", "fp32", "v100")]["matches"] == 400
    bf = by[("A100", "bf16", "fp32", "v100")]
    assert bf["matches"] is None and "bfloat16" in bf["note"]


def _copy_set(src: Path, dst: Path, limit_lines: int = 50):
    dst.mkdir(parents=True)
    for f in src.iterdir():
        lines = f.read_text().splitlines()[:limit_lines]
        (dst / f.name).write_text("\n".join(lines) + "\n")


def test_tc_dir_skips_what_is_not_a_dataset(tmp_path, capsys):
    _copy_set(ROOT / "A100" / "bf16", tmp_path / "A100" / "bf16")
    _copy_set(ROOT / "V100" / "fp16", tmp_path / "V100" / "fp16")
    (tmp_path / "V100" / "fp16" / "d_V100_fp16.txt").unlink()
    (tmp_path / "README.md").write_text("notes")
    _copy_set(ROOT / "A100" / "fp16", tmp_path / "Foo" / "fp16")  # unknown GPU
    _copy_set(ROOT / "A100" / "fp16", tmp_path / "A100" / "plots")  # unknown format
    _copy_set(ROOT / "H100" / "fp16", tmp_path / "H100" / "fp16")
    (tmp_path / "H100" / "fp16" / "a_H100_fp16.txt").unlink()  # incomplete
    assert compare.find_tc_datasets is list_datasets  # the old name
    assert list_datasets(tmp_path) == [("A100", "bf16", "float32"),
                                          ("V100", "fp16", "float32")]
    (tmp_path / "A100" / "bf16" / "d_A100_bf16.txt").write_text("0\n")  # unknown output
    (tmp_path / ".git").mkdir()  # hidden: ignored
    assert main(["compare", "--tc-dir", str(tmp_path), "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    ok = [r for r in recs if r["status"] == "ok"]
    assert [(r["gpu"], r["input"], r["output"], r["cases"], r["matches"], r["model"])
            for r in ok] == [("A100", "bf16", "fp32", 50, 50, "a100"),
                             ("V100", "fp16", "fp32", 50, 50, "v100")]
    # nothing else is dropped silently: every other folder or output file is listed
    skipped = {r["path"]: r["reason"] for r in recs if r["status"] == "skipped"}
    assert len(recs) == len(ok) + len(skipped)
    assert set(skipped) == {"A100/bf16/d_A100_bf16.txt", "A100/plots", "Foo", "H100/fp16"}
    assert "output format is not fp32 or fp16" in skipped["A100/bf16/d_A100_bf16.txt"]
    assert "'plots' is not a float input format name" in skipped["A100/plots"]
    assert "no lowprec model of a GPU named 'Foo'" in skipped["Foo"]
    assert "missing a_H100_fp16.txt" in skipped["H100/fp16"]
    assert main(["compare", "--tc-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for path, reason in skipped.items():
        assert f"skipped {path}: {reason}" in table


def test_tc_dir_table_and_report(tmp_path, capsys):
    _copy_set(ROOT / "H100" / "E4M3", tmp_path / "data" / "H100" / "E4M3", 30)
    rep = tmp_path / "rep"
    assert main(["compare", "--tc-dir", str(tmp_path / "data"), "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    assert "H100   E4M3   fp16       30       30" in out
    assert "H100   E4M3   fp32       30       30" in out
    assert (rep / "index.html").read_text().count("<tr>") == 3
    assert (rep / "tc_matches.png").stat().st_size > 1000


def test_cli_errors(tmp_path, capsys):
    assert main(["compare"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nope.npz")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["compare", "--tc-dir", str(tmp_path / "nope")]) == 2
    assert main(["compare", "--tc-dir", str(ROOT), "--model", "rtx9000"]) == 2
    assert "unknown tensor-core model" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["compare", str(bad)]) == 2


@pytest.mark.parametrize("command", ["compare", "fit"])
def test_tc_dir_without_data_sets_is_an_error(command, tmp_path, capsys):
    # an empty or missing folder is a mistake (a wrong path), not "nothing to report"
    (tmp_path / "empty").mkdir()
    for d, why in ((tmp_path / "empty", "holds no data sets"),
                   (tmp_path / "missing", "is not a directory")):
        assert main([command, "--tc-dir", str(d)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"lowprec {command}: error: ") and str(d) in err and why in err


def test_fit_errors_name_fit(tmp_path, capsys):
    assert main(["fit", "--tc-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lowprec fit: error:") and "compare" not in err
    assert main(["fit"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lowprec fit: error:") and "compare" not in err
    assert main(["fit", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lowprec fit: error:") and "not found" in err


def _not_captures(tmp_path):
    """Files that are not lowprec captures, each in its own way."""
    from lowprec.hardware.capture_format import Capture

    good = Capture({"version": 1, "ops": []}, {"x/a": np.arange(4, dtype=np.uint16)})
    path = good.save(tmp_path / "good.npz")
    raw = Path(path).read_bytes()
    files = {"text": b"not a zip", "empty": b"", "truncated": raw[: len(raw) // 2]}
    damaged = bytearray(raw)
    mid = raw.index(b"meta.json") + 40  # inside the compressed metadata member
    damaged[mid:mid + 8] = b"\xff" * 8
    files["damaged"] = bytes(damaged)
    out = {k: tmp_path / f"{k}.npz" for k in files}
    for k, data in files.items():
        out[k].write_bytes(data)
    np.save(tmp_path / "array.npy", np.arange(3))
    out["npy"] = tmp_path / "array.npy"
    np.savez(tmp_path / "nometa.npz", a=np.arange(3))
    out["no metadata"] = tmp_path / "nometa.npz"
    np.savez(tmp_path / "pickled.npz", **{"meta.json": np.array([{"ops": []}], dtype=object)})
    out["pickled metadata"] = tmp_path / "pickled.npz"
    np.savez(tmp_path / "badjson.npz", **{"meta.json": np.frombuffer(b"{ops", np.uint8)})
    out["bad json"] = tmp_path / "badjson.npz"
    np.savez(tmp_path / "noops.npz", **{"meta.json": np.frombuffer(b"[1, 2]", np.uint8)})
    out["no op list"] = tmp_path / "noops.npz"
    return path, out


def test_a_file_that_is_not_a_capture_is_named_as_such(tmp_path, capsys):
    from lowprec.hardware.capture_format import load_capture

    good, bad = _not_captures(tmp_path)
    assert load_capture(good).ops == []
    for what, path in bad.items():
        with pytest.raises(ValueError, match="is not a lowprec capture file") as e:
            load_capture(path)
        assert "allow_pickle" not in str(e.value), what
        assert main(["compare", str(path)]) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("lowprec compare: error: ") and str(path) in err, what
        assert "is not a lowprec capture file" in err and "allow_pickle" not in err, what
        assert "Traceback" not in err, what


def test_score_counts_bits_and_ulps():
    e = 2.0 ** -10
    want = np.array([1.0, 1.0, 1.0, 1.0, np.nan, np.nan, 0.0, 2.0, 65504.0])
    got = np.array([1.0, 1 + e, 1 + 3 * e, 1 + 40 * e, np.nan, 1.0, -0.0, 2.0, np.inf])
    s = score(got, want, "fp16")
    # -0 vs +0 differ in bits; NaN equals NaN
    assert s["cases"] == 9 and s["matches"] == 3
    assert s["ulp_hist"] == {"0": 3, "1": 2, "2": 0, "3-4": 1, "5-16": 0, "17-256": 1,
                             ">256": 0, "nan": 1}
    both = ~np.isnan(got) & ~np.isnan(want)
    d = ulp_distance(got[both], want[both], "fp16")
    assert d.tolist() == [0, 1, 3, 40, 0, 0, 1]
    assert s["max_rel"] == 40 * e and s["median_rel"] == e  # over 0, e, 3e, 40e, 0


def _write_set(root: Path, gpu: str, folder: str, a, b, c, d_by_out: dict):
    """Write a data set in the published layout (hex rows for a and b, binary columns for
    c and the d files)."""
    d = root / gpu / folder
    d.mkdir(parents=True)
    for name, x in (("a", a), ("b", b)):
        rows = np.asarray(x, np.float32).view(np.uint32)
        (d / f"{name}_{gpu}_{folder}.txt").write_text(
            "".join(" ".join(f"{u:08x}" for u in row) + "\n" for row in rows))
    for name, x in [("c_" + gpu + "_fp32", c)] + [(f"d_{gpu}_{o}", v) for o, v in
                                                   d_by_out.items()]:
        col = np.asarray(x, np.float32).reshape(-1).view(np.uint32)
        (d / f"{name}.txt").write_text("".join(f"{u:032b}\n" for u in col))


def _dots(model, fmt, a, b, c, out):
    r = lp.matmul(a[:, None, :], b[:, :, None], c=c[:, None, None], inputs=fmt, model=model,
                  out=out)
    return np.asarray(r, np.float32).reshape(-1)


def _fp8_inputs(fmt, n=300, k=32, seed=0):
    rng = np.random.default_rng(seed)
    a = lp.quantize(rng.standard_normal((n, k)) * 4, fmt).astype(np.float32)
    b = lp.quantize(rng.standard_normal((n, k)) * 4, fmt).astype(np.float32)
    c = (rng.standard_normal(n) * 64).astype(np.float32)
    return a, b, c


def test_zero_c_rule_is_the_architectures():
    # Hopper's fp8 MMA with fp32 output (WGMMA, D = A*B + D) was measured with D = 0:
    # E4M3 and E5M2 alike, every Hopper GPU; not its fp16 output, not other GPUs
    for g in ("h100", "h200"):
        m = get_model(g)
        assert m.architecture == "Hopper" and m.fp8_fp32_zero_c
        for f in ("e4m3", "e5m2"):
            assert m.data_c_is_zero(f, "fp32") and not m.data_c_is_zero(f, "fp16")
        assert not m.data_c_is_zero("bf16", "fp32") and not m.data_c_is_zero("fp16", "fp32")
    for g in ("v100", "a100", "ada", "l40s", "b200"):
        m = get_model(g)
        assert not m.fp8_fp32_zero_c
        assert not any(m.data_c_is_zero(f, o) for f in ("e4m3", "e5m2", "fp16", "bf16")
                       for o in ("fp32", "fp16"))
    assert {get_model(g).architecture for g in lp.hardware.list_models()} == {
        "Volta", "Ampere", "Ada", "Hopper", "Blackwell"}


def test_unseen_data_sets_follow_their_architecture(tmp_path):
    # H200/E5M2 and B200/E5M2 folders of a kind never shipped: d written by the GPUs' own
    # models under each architecture's convention; a wrong convention would miss most cases
    a, b, c = _fp8_inputs("e5m2")
    c16 = lp.quantize(c, "fp16").astype(np.float32)
    zero = np.zeros_like(c)
    _write_set(tmp_path, "H200", "E5M2", a, b, c,
               {"fp32": _dots("h200", "e5m2", a, b, zero, None),
                "fp16": _dots("h200", "e5m2", a, b, c16, "fp16")})
    _write_set(tmp_path, "B200", "E5M2", a, b, c, {"fp32": _dots("b200", "e5m2", a, b, c, None)})
    recs = compare_tc(tmp_path)
    got = {(r["gpu"], r["input"], r["output"]): r for r in recs}
    assert set(got) == {("H200", "E5M2", "fp32"), ("H200", "E5M2", "fp16"),
                        ("B200", "E5M2", "fp32")}
    for r in recs:
        assert r["status"] == "ok" and r["matches"] == r["cases"] == 300, r
    # the conventions matter on these data: with c (or c = 0) swapped, most cases differ
    assert (_dots("h200", "e5m2", a, b, c, None) != _dots("h200", "e5m2", a, b, zero, None)
            ).mean() > 0.5
    assert (_dots("b200", "e5m2", a, b, c, None) != _dots("b200", "e5m2", a, b, zero, None)
            ).mean() > 0.5


def test_a_set_no_named_model_covers_is_listed_with_the_best_candidate(tmp_path, capsys):
    # V100 tensor cores take no bf16: such a set is reported, with the best block model of
    # a quick search (here the data come from the a100 bf16 block, which the search finds)
    rng = np.random.default_rng(1)
    a = lp.quantize(rng.standard_normal((200, 8)), "bf16").astype(np.float32)
    b = lp.quantize(rng.standard_normal((200, 8)), "bf16").astype(np.float32)
    c = rng.standard_normal(200).astype(np.float32)
    _write_set(tmp_path, "V100", "bf16", a, b, c, {"fp32": _dots("a100", "bf16", a, b, c, None)})
    assert main(["compare", "--tc-dir", str(tmp_path), "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["status"] == "no named model" and r["model"] is None and r["matches"] is None
    assert "bfloat16" in r["note"] and r["cases"] == 200
    best = r["best_candidate"]
    assert best["matches"] == best["cases"] == 200 and best["match_pct"] == 100.0
    assert "a100" in best["named"]
    assert best["params"]["n"] == 8 and best["params"]["frac_bits"] == 24
    assert main(["compare", "--tc-dir", str(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("V100   bf16   fp32      200        -        -  no named model;")
    assert best["label"] in line and "200/200 (100.00%)" in line


def test_lanes_candidate_is_interleaved_fp32_accumulators():
    # reference: numpy float32, product k into accumulator k mod L (fp16 products are
    # exact in fp32, so a multiply-add is one rounding, as with FMA), sums added in order
    rng = np.random.default_rng(4)
    a = (rng.standard_normal((6, 37)) * 2.0 ** rng.integers(-6, 7, (6, 37))).astype(np.float16)
    b = (rng.standard_normal((37, 5)) * 2.0 ** rng.integers(-6, 7, (37, 5))).astype(np.float16)
    c = rng.standard_normal((6, 5)).astype(np.float32)
    for lanes in (1, 4, 16):
        acc = np.zeros((lanes, 6, 5), np.float32)
        acc[0] = c
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        for k in range(37):
            acc[k % lanes] += np.outer(a32[:, k], b32[k])
        want = acc[0]
        for lane in range(1, lanes):
            want = want + acc[lane]
        want = (want * np.float32(0.75)) * np.float32(3.0)
        got = run_candidate(a, b, {"lanes": lanes}, "float32", c=c, scale_a=0.75, scale_b=3.0)
        assert np.array_equal(got.astype(np.float32).view(np.uint32), want.view(np.uint32))
    seq = run_candidate(a, b, {}, "float32", c=c)
    assert np.array_equal(run_candidate(a, b, {"lanes": 1}, "float32", c=c), seq)
    assert not np.array_equal(run_candidate(a, b, {"lanes": 4}, "float32", c=c), seq)


def test_gemm_candidates_follow_the_formats_and_the_models():
    def names(fa, fb, out, K=37):
        return [n for n, _ in gemm_candidates(fa, fb, out, K, None)]

    fp16 = names("float16", "float16", "float16")
    assert fp16[:8] == ["fp32", "fp32-chunk8", "fp32-chunk16", "fp32-chunk32", "fp32-lanes4",
                        "fp32-lanes8", "fp32-lanes16", "fp16-acc"]
    # every GPU takes fp16 and has an fp16-output path
    assert {f"{g}-fp16out" for g in lp.hardware.list_models()} <= set(fp16)
    bf16 = names("bfloat16", "bfloat16", "bfloat16")
    assert "bf16-acc" in bf16 and "v100" not in bf16 and "a100" in bf16
    assert not any(n.endswith("out") for n in bf16)  # no model rounds into bf16
    f32 = names("float16", "float16", "float32", K=8)
    assert f32[:2] == ["fp32", "fp32-lanes4"] and not any(n.endswith(("acc", "out")) for n in f32)
    # fp8: the GPUs whose models take it; an fp16-output path only where the model has one
    fp8 = names("float8_e4m3fn", "float8_e4m3fn", "float16")
    gpus = [g for g in lp.hardware.list_models() if "float8_e4m3fn" in get_model(g).input_formats]
    assert [n for n in fp8 if n in lp.hardware.list_models()] == gpus
    assert {n for n in fp8 if n.endswith("-fp16out")} == {
        f"{g}-fp16out" for g in ("ada", "l40s", "h100", "h200", "b200")}
    mixed = names("float8_e5m2", "float8_e4m3fn", "float16")
    assert "h100" in mixed and not any(n.endswith("-fp16out") for n in mixed)


def test_parse_candidates_normalises_and_rejects():
    assert parse_candidates(None) is None and parse_candidates([]) is None
    assert parse_candidates(["FP32", "float16-acc", "bf16-acc", "H100-float16out", "a100",
                             "fp32-lanes12", "fp32-chunk3", "torch-compatible", "mul-add"]) == [
        "fp32", "fp16-acc", "bf16-acc", "h100-fp16out", "a100", "fp32-lanes12", "fp32-chunk3",
        "torch-compatible", "mul-add"]
    for bad in ("fp32-acc", "int8-acc", "h100-bf16out", "h100-fp32out", "rtx-fp16out",
                "fp32-lanes0", "nosuch"):
        with pytest.raises(ValueError, match="unknown model"):
            parse_candidates([bad])
    # a wanted chunk or lane count is run whatever K
    got = gemm_candidates("float16", "float16", "float32", 5, parse_candidates(
        ["fp32-lanes12", "fp32-chunk3"]))
    assert got == [("fp32-chunk3", {"chunk": 3}), ("fp32-lanes12", {"lanes": 12})]
