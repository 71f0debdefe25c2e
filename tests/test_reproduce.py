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


def _fake_runs(acc_by_label):
    return {k: [{"test_accuracy": a, "update_applied_ratio": 0.5} for a in v]
            for k, v in acc_by_label.items()}


def test_gupta_claims_test_the_endpoint_and_the_trend(monkeypatch):
    from lowprec.study.reproduce import gupta2015

    def fake(rn_gap_14, rn_gap_8):
        base = [0.97, 0.96, 0.975, 0.965]
        runs = {"fp32": base}
        for fl, g in ((14, rn_gap_14), (10, [0.0] * 4), (8, rn_gap_8)):
            runs[f"SR <{16 - fl},{fl}>"] = base
            runs[f"RN <{16 - fl},{fl}>"] = [b + d for b, d in zip(base, g)]
        monkeypatch.setattr(gupta2015, "run_variants", lambda *a, **k: _fake_runs(runs))
        return {c.claim.split(":")[0][:40]: c for c in gupta2015.run(range(4))}

    # RN fails at FL 8 and is fine at FL 14: both RN claims hold
    claims = list(fake([0.0, 0.001, -0.001, 0.0], [-0.05, -0.06, -0.04, -0.05]).values())
    assert [c.holds for c in claims[3:]] == [True, True]
    assert claims[4].measured["low"] < claims[4].measured["high"] < 0
    # RN as bad at FL 14 as at FL 8: the endpoint holds, the trend does not
    claims = list(fake([-0.05, -0.06, -0.04, -0.05], [-0.05, -0.06, -0.04, -0.05]).values())
    assert [c.holds for c in claims[3:]] == [True, False]
    # RN as good as SR everywhere: neither holds
    claims = list(fake([0.0] * 4, [0.001, -0.001, 0.0, 0.0]).values())
    assert [c.holds for c in claims[3:]] == [False, False]
    assert all(c.holds for c in claims[:3])  # SR within 1 point of fp32 at every FL
