"""The scripts that generate the README's tables from measured JSON."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _est(mean, half):
    return {"mean": mean, "half_width": half, "n": 3}


def test_study_table_rows_from_summary():
    summary = {"settings": {"title": "MLP on digits"}, "groups": [
        {"label": "fp32", "recipe": "fp32", "estimates": {
            "test_accuracy": _est(0.9768, 0.0222), "update_applied_ratio": _est(1.0, 0.0),
            "underflow_fraction": _est(0.0, 0.0)}},
        {"label": "fp16", "recipe": "fp16", "accuracy_vs_baseline": _est(-0.0028, 0.007),
         "estimates": {"test_accuracy": _est(0.974, 0.0222),
                       "update_applied_ratio": _est(1.0, 0.0),
                       "underflow_fraction": _est(0.1288, 0.0156)}}]}
    lines = _load("study_table").table(summary).splitlines()
    assert lines[0].startswith("*MLP on digits")
    assert lines[-2].startswith("| fp32 | reference") and "| baseline |" in lines[-2]
    assert lines[-1] == ("| fp16 | fp16 GEMM inputs/activations, no loss scaling | 97.4 +- 2.2 | "
                         "-0.3 +- 0.7 | 100 +- 0 | 12.9 +- 1.6 |")


def test_reproductions_table_verdicts():
    rep = {"name": "x2020", "title": "X et al. 2020, A Paper", "seeds": 8, "claims": [
        {"claim": "a|b", "paper": "p", "measured": {"diff_text": "d = 1 +- 2 %"}, "holds": True},
        {"claim": "c", "paper": "q", "measured": {"m": "3 %"}, "holds": None}]}
    lines = _load("reproductions_table").table([rep]).splitlines()
    assert lines[2] == "| X et al. 2020 (x2020, 8 seeds) | a\\|b | p | d = 1 +- 2 % | holds |"
    assert lines[3].endswith("| m: 3 % | undecided |")


def test_readme_reproductions_table_is_generated_from_the_kept_json():
    import json
    names = ["gupta2015", "micikevicius2018", "zamirai2020", "micikevicius2022", "deepseek2024"]
    reports = [json.loads((ROOT / "docs" / "reproductions" / f"{n}.json").read_text())
               for n in names]
    want = _load("reproductions_table").table(reports)
    assert want in (ROOT / "README.md").read_text()
    assert all(c["holds"] is not None for r in reports for c in r["claims"])
