"""`lowprec study`: small-scale versions of the effects the study demonstrates, the
loss-shift invariance of fp32, the command line and its error handling."""

import json
import os

import pytest

from lowprec import cli
from lowprec.autograd.instrument import History
from lowprec.study import (DEFAULT_RECIPES, RECIPES, StudyConfig, aggregate, format_table,
                           recipe_policy, run_study, train_recipe)

# The stagnation effects show at a small constant learning rate (at the converged defaults
# they shrink: that is what the seeds and intervals of a study are for).
SMALL = StudyConfig(epochs=3, lr=0.002, schedule="constant")


def _by_recipe(res):
    """result dicts and compact histories of a one-seed study, by recipe."""
    return ({r["task"]["recipe"]: r["result"] for r in res.runs},
            {r["task"]["recipe"]: r["history"] for r in res.runs})


@pytest.fixture(scope="module")
def runs():
    """Three epochs of the recipes whose effects are checked (about 15 s)."""
    names = ["fp32", "fixed16-rn", "fixed16-sr", "bf16-pure-rne", "bf16-pure-sr",
             "bf16-pure-kahan", "fp8-current", "fp8-delayed"]
    return _by_recipe(run_study(names, SMALL))


def test_recipe_names():
    assert DEFAULT_RECIPES == ("fp32", "bf16", "fp16", "fp16-scaled", "fp8-current",
                               "fp8-delayed", "bf16-pure-rne", "bf16-pure-sr", "bf16-pure-kahan",
                               "fixed16-rn", "fixed16-sr")
    assert set(DEFAULT_RECIPES) < set(RECIPES)
    for r in RECIPES:
        assert recipe_policy(r).name == r
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_policy("fp4")


def test_fixed16_rn_stalls_where_sr_tracks_fp32(runs):
    res, _ = runs
    fp32, rn, sr = res["fp32"], res["fixed16-rn"], res["fixed16-sr"]
    assert fp32["test_accuracy"] > 0.6
    assert rn["test_accuracy"] < 0.3                      # stalled near the initial model
    assert sr["test_accuracy"] > rn["test_accuracy"] + 0.3
    assert abs(sr["test_accuracy"] - fp32["test_accuracy"]) < 0.05
    assert rn["update_applied_ratio"] < 0.05 < 0.9 < sr["update_applied_ratio"]


def test_pure_bf16_rne_loses_updates_sr_and_kahan_recover(runs):
    res, _ = runs
    ref = res["fp32"]["final_loss"]
    rne = res["bf16-pure-rne"]
    assert rne["update_applied_ratio"] < 0.5
    assert rne["final_loss"] > 1.25 * ref
    for name in ("bf16-pure-sr", "bf16-pure-kahan"):
        assert abs(res[name]["final_loss"] - ref) < 0.05 * ref, name
        assert res[name]["update_applied_ratio"] > 0.9, name


def test_fp8_with_scaling_matches_fp32(runs):
    res, hists = runs
    for name in ("fp8-current", "fp8-delayed"):
        assert abs(res[name]["test_accuracy"] - res["fp32"]["test_accuracy"]) < 0.03, name
        assert res[name]["final_loss"] < 1.1 * res["fp32"]["final_loss"], name
    assert hists["fp8-current"]["formats"]["2/gradient"] == "float8_e5m2"
    assert hists["fp8-current"]["formats"]["2/weight"] == "float8_e4m3fn"


def test_loss_shift_fp16_needs_loss_scaling():
    cfg = StudyConfig(epochs=2, loss_shift=20, lr=0.002, schedule="constant")
    res, hists = _by_recipe(run_study(["fp32", "fp16", "fp16-scaled"], cfg))
    fp32, fp16, scaled = res["fp32"], res["fp16"], res["fp16-scaled"]
    base, base_hist = train_recipe("fp32", StudyConfig(epochs=2, lr=0.002, schedule="constant"))
    # fp32 is unchanged by the shift, bit for bit
    assert hists["fp32"]["loss"] == [s["loss"] for s in base_hist.steps]
    assert fp32["test_accuracy"] == base["test_accuracy"]
    assert fp16["underflow_fraction"] > 0.95 and fp16["test_accuracy"] < 0.3
    assert scaled["underflow_fraction"] < 0.05
    assert abs(scaled["test_accuracy"] - fp32["test_accuracy"]) < 0.03
    assert all(sc == 65536.0 for sc in hists["fp16-scaled"]["scale"])


def test_dynamic_scaling_skips_overflowing_steps():
    res, hist = train_recipe("fp16-scaled", StudyConfig(epochs=1, loss_shift=-8, lr=0.002,
                                                        schedule="constant"))
    sc = [s["scale"] for s in hist.steps]  # the scale each step used
    skipped = [s["skipped"] for s in hist.steps]
    k = res["skipped_steps"]
    assert k >= 1 and skipped[:k] == [True] * k       # overflow at the start ...
    assert sc[:k + 1] == [65536.0 / 2 ** i for i in range(k + 1)]  # ... halves the scale
    assert res["skipped_steps"] == sum(s["skipped"] for s in hist.steps)
    assert res["test_accuracy"] > 0.3


def test_runs_are_reproducible():
    a, _ = train_recipe("bf16-pure-sr", StudyConfig(epochs=1, seed=5))
    b, _ = train_recipe("bf16-pure-sr", StudyConfig(epochs=1, seed=5))
    c, _ = train_recipe("bf16-pure-sr", StudyConfig(epochs=1, seed=6))
    assert a["final_loss"] == b["final_loss"] and a["final_loss"] != c["final_loss"]


def test_config_validation():
    for bad in (dict(epochs=-1), dict(epochs=0), dict(lr=0), dict(batch_size=0), dict(momentum=1.0),
                dict(loss_shift=1.5), dict(seed=-2)):
        with pytest.raises(ValueError):
            StudyConfig(**bad)


def _run(recipe, seed, acc, loss=0.1):
    return {"task": {"recipe": recipe, "seed": seed, "model": "mlp", "params": []},
            "result": dict(recipe=recipe, test_accuracy=acc, final_loss=loss, skipped_steps=0,
                           underflow_fraction=0.0, saturated_fraction=0.0,
                           update_applied_ratio=1.0, seconds=1.0),
            "history": {}}


def test_table_shows_intervals_and_paired_effects():
    runs = [_run("fp32", s, a) for s, a in enumerate((0.96, 0.97, 0.98))]
    runs += [_run("bf16", s, a - 0.01, None if s == 2 else 0.1)
             for s, a in enumerate((0.96, 0.97, 0.98))]
    groups = aggregate(runs)
    t = format_table(groups)
    assert "97.0 +- 2.5%" in t  # mean 97 %, sd 1 %, t(2) = 4.303: 4.303 / sqrt(3) = 2.48
    bf = groups[1]
    assert bf.diverged == 1 and "(1 diverged)" in t
    assert bf.effect.mean == pytest.approx(-0.01) and bf.effect.half_width == pytest.approx(0)
    assert "-1.0 +- 0.0" in t


# --- command line ------------------------------------------------------------------------
def test_cli_json_and_out(tmp_path, capsys):
    out = tmp_path / "o" / "p"
    rc = cli.main(["study", "--recipes", "fp32,bf16", "--epochs", "1", "--seeds", "2",
                   "--workers", "0", "--json", "--no-progress", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0
    data = json.loads(cap.out)  # stdout holds only the JSON list
    assert [d["recipe"] for d in data] == ["fp32", "bf16"]
    for d in data:
        assert d["seeds"] == [0, 1]
        acc = d["estimates"]["test_accuracy"]
        assert 0 <= acc["low"] <= acc["mean"] <= acc["high"] <= 1.5
        assert len(d["per_seed"]["test_accuracy"]) == 2
    assert "accuracy_vs_baseline" in data[1] and "accuracy_vs_baseline" not in data[0]
    assert sorted(os.listdir(out)) == ["curves.png", "flushed_heatmap.png",
                                       "saturated_heatmap.png", "summary.json", "tasks",
                                       "tensor_histograms.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["config"]["epochs"] == 1 and len(summary["runs"]) == 4
    h = summary["runs"][0]["history"]
    assert "gradient" in h["hist"] and any(k.endswith("/gradient") for k in h["hist_by_key"])
    assert len(next(iter(h["shares"].values()))["flushed"]) == len(h["loss"])


def test_cli_table(capsys):
    assert cli.main(["study", "--recipes", "fixed16-sr", "--epochs", "1", "--seeds", "1",
                     "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("recipe") and "fixed16-sr" in out


@pytest.mark.parametrize("argv, msg", [
    (["--recipes", "fp32,fp7"], "unknown recipe"),
    (["--epochs", "-1"], "epochs"),
    (["--epochs", "0"], "epochs must be a positive integer"),  # no loss nan, no "100%"
    (["--lr", "-0.1"], "lr"),
    (["--recipes", ""], "empty"),
    (["--recipes", "fp32,fp32"], "twice"),
    (["--model", "cnn"], "unknown model"),
    (["--seeds", "0"], "seeds"),
    (["--workers", "-1"], "workers"),
])
def test_cli_bad_input_exit_2(argv, msg, capsys, tmp_path):
    out = tmp_path / "never"
    assert cli.main(["study", *argv, "--out", str(out)]) == 2
    assert msg in capsys.readouterr().err
    assert not out.exists()


def test_cli_argparse_error_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["study", "--batch-size", "x"])
    assert e.value.code == 2 and "invalid int" in capsys.readouterr().err


def test_cli_unwritable_out(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli.main(["study", "--epochs", "1", "--out", str(f)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert cli.main(["study", "--epochs", "1", "--out", str(f / "sub")]) == 2
    assert "not a directory" in capsys.readouterr().err
    # a directory nobody can create entries in (root included): /proc
    if os.path.isdir("/proc/self"):
        assert cli.main(["study", "--epochs", "1", "--out", "/proc/lowprec-study"]) == 2
        assert "cannot be created" in capsys.readouterr().err
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        rc = cli.main(["study", "--epochs", "1", "--recipes", "fp32", "--seeds", "1",
                       "--workers", "0", "--out", str(ro / "sub"), "--no-progress"])
        if os.access(ro, os.W_OK):  # root: the directory is writable after all
            assert rc == 0
        else:
            assert rc == 2 and "cannot be created" in capsys.readouterr().err
            assert not (ro / "sub").exists()
        assert not [n for n in os.listdir(ro) if n.startswith(".lowprec-probe")]
    finally:
        os.chmod(ro, 0o700)
