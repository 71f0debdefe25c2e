"""compare: scoring, and the named models on the real-GPU data shipped in tests/data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lowprec.cli import main
from lowprec.hardware.compare import compare_tc, find_tc_datasets, score
from lowprec.hardware.tcdata import default_root
from lowprec.testing import ulp_distance

ROOT = default_root()
EXPECTED = {("V100", "fp16", "fp32"), ("V100", "fp16", "fp16"), ("A100", "fp16", "fp32"),
            ("A100", "fp16", "fp16"), ("A100", "bf16", "fp32"), ("H100", "fp16", "fp32"),
            ("H100", "fp16", "fp16"), ("H100", "bf16", "fp32"), ("H100", "E4M3", "fp32"),
            ("H100", "E4M3", "fp16")}


def test_named_models_match_every_shipped_dataset():
    recs = compare_tc(ROOT)
    assert {(r["gpu"], r["input"], r["output"]) for r in recs} == EXPECTED
    for r in recs:
        assert r["cases"] == 2500 and r["model"] == r["gpu"].lower()
        assert r["matches"] == 2500, r
        assert r["ulp_hist"]["0"] == 2500


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
    assert find_tc_datasets(tmp_path) == [("A100", "bf16", "float32"),
                                          ("V100", "fp16", "float32")]
    assert main(["compare", "--tc-dir", str(tmp_path), "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [(r["gpu"], r["input"], r["output"], r["cases"], r["matches"], r["model"])
            for r in recs] == [("A100", "bf16", "fp32", 50, 50, "a100"),
                               ("V100", "fp16", "fp32", 50, 50, "v100")]


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
