"""Paper reproductions at small size: the command, the JSON shape, claims decided by their
intervals; and the study on the transformer."""

import json

import pytest

from lowprec import cli
from lowprec.study.cli import TRAINERS
from lowprec.study.reproduce import REPRODUCTIONS, get, list_reproductions, reproduce
from lowprec.study.reproduce.deepseek2024 import gemm_errors
from lowprec.study.sweep import Task, run_tasks


def test_registry_and_errors(capsys):
    assert list_reproductions() == ["gupta2015", "micikevicius2018", "zamirai2020",
                                    "micikevicius2022", "deepseek2024"]
    for r in REPRODUCTIONS.values():
        assert r.title and r.citation and r.setup and r.differences
    with pytest.raises(ValueError, match="unknown reproduction"):
        get("knuth1974")
    assert cli.main(["reproduce", "--list"]) == 0
    assert "deepseek2024" in capsys.readouterr().out
    assert cli.main(["reproduce", "nope"]) == 2
    assert "unknown reproduction" in capsys.readouterr().err
    assert cli.main(["reproduce"]) == 2


def test_json_shape_and_claims_decided_by_intervals(capsys):
    rc = cli.main(["reproduce", "micikevicius2022", "--quick", "--seeds", "2", "--workers",
                   "0", "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["name"] == "micikevicius2022" and d["seeds"] == 2 and d["quick"] is True
    assert len(d["claims"]) == 2
    for c in d["claims"]:
        assert set(c) >= {"claim", "paper", "measured", "holds"}
        assert c["holds"] in (True, False)  # two seeds give an interval
        lo, hi = c["measured"]["low"], c["measured"]["high"]
        assert c["holds"] == (-0.01 <= lo and hi <= 0.01)  # what "within 1 point" means


def test_single_seed_leaves_claims_undecided():
    rep = reproduce("zamirai2020", 1, quick=True)
    assert all(c.holds is None for c in rep.claims)
    assert "undecided" in rep.text()


def test_deepseek_gemm_error_and_promotion():
    plain = gemm_errors(0, k=512, m=8, n=8)
    promoted = gemm_errors(0, k=512, m=8, n=8, promote=128)
    assert 0 < promoted["max"] * 5 < plain["max"]
    assert gemm_errors(0, k=512, m=8, n=8) == plain  # seeded


def test_transformer_runs_in_a_sweep():
    params = (("batch_size", 4), ("eval_every", 2), ("eval_windows", 4), ("steps", 4),
              ("warmup", 1))
    res = run_tasks([Task(TRAINERS["transformer"], r, 0, "transformer", params)
                     for r in ("fp32", "bf16")])
    for r in res:
        assert r["result"]["val_loss"] is not None and 0 <= r["result"]["test_accuracy"] <= 1
        assert len(r["history"]["loss"]) == 4 and len(r["history"]["epochs"]) == 2
    assert res[0]["history"]["loss"] != res[1]["history"]["loss"]
