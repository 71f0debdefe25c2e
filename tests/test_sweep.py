"""Sweeps on Dask: the same results serially and on a 2-worker local cluster, a task whose
worker dies is rerun, an interrupted sweep keeps what it finished; and the confidence
interval arithmetic of the study tables."""

import json
import math
import os
import sys
import textwrap

import pytest

from lowprec.stats import mean_ci, paired_difference, t_cdf, t_quantile
from lowprec.study import StudyConfig, run_study
from lowprec.study.sweep import Task, run_tasks, task_path

pytest.importorskip("dask.distributed")

# Student's t, 0.975 quantiles (two-sided 95 %), from any statistics table
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}


@pytest.mark.parametrize("df,q", sorted(T975.items()))
def test_t_quantiles_match_the_table(df, q):
    assert abs(t_quantile(0.975, df) - q) < 5e-4
    assert abs(t_cdf(q, df) - 0.975) < 1e-4
    assert t_quantile(0.025, df) == pytest.approx(-t_quantile(0.975, df))


def test_mean_ci_and_paired_difference():
    e = mean_ci([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd sqrt(5/3), half = t(3) * sd / 2
    assert e.mean == 2.5 and e.n == 4
    assert e.half_width == pytest.approx(3.1824 * math.sqrt(5 / 3) / 2, rel=1e-4)
    assert mean_ci([7.0]).n == 1 and math.isnan(mean_ci([7.0]).half_width)
    assert math.isnan(mean_ci([]).mean)
    assert mean_ci([1.0, float("nan"), 3.0]).n == 2  # a diverged run has no value
    d = paired_difference([0.90, 0.91, 0.92], [0.95, 0.96, 0.97])  # constant -0.05
    assert d.mean == pytest.approx(-0.05) and d.half_width == pytest.approx(0, abs=1e-12)
    assert d.below(0) is True and d.above(0) is False
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])


def _runs(res):
    return [(r["task"]["key"], json.dumps(r["result"], sort_keys=True, default=str)
             .replace(str(r["result"]["seconds"]), "")
             .replace(str(r["result"]["compile_seconds"]), ""),
             json.dumps(r["history"]["loss"])) for r in res.runs]


def test_serial_and_local_cluster_give_the_same_results(tmp_path):
    cfg = StudyConfig(epochs=1)
    a = run_study(["fp32", "bf16-pure-sr"], cfg, seeds=2, workers=0)
    b = run_study(["fp32", "bf16-pure-sr"], cfg, seeds=2, workers=2, out=str(tmp_path))
    assert _runs(a) == _runs(b)
    assert {g.label for g in b.groups} == {"fp32", "bf16-pure-sr"}
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "curves.png").is_file()
    assert len(list((tmp_path / "tasks").glob("*.json"))) == 4


_FLAKY = textwrap.dedent('''
    import os
    from pathlib import Path


    def task(t):
        """Kills its worker process the first time each seed runs, then succeeds."""
        mark = Path(os.environ["LOWPREC_FLAKY_DIR"]) / f"seed{t.seed}"
        if not mark.exists():
            mark.write_text("died once")
            os._exit(1)
        return {"result": {"seed": t.seed}, "history": {}}
''')


def test_a_task_whose_worker_dies_is_rerun(tmp_path, monkeypatch):
    (tmp_path / "lowprec_flaky_task.py").write_text(_FLAKY)
    marks = tmp_path / "marks"
    marks.mkdir()
    # spawned workers inherit the environment: they find the module and the mark folder
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                  ""))
    monkeypatch.setenv("LOWPREC_FLAKY_DIR", str(marks))
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = [Task("lowprec_flaky_task:task", "fp32", s) for s in range(2)]
    res = run_tasks(tasks, workers=2)
    assert [r["result"]["seed"] for r in res] == [0, 1]
    assert sorted(p.name for p in marks.iterdir()) == ["seed0", "seed1"]  # each died once


def test_an_interrupted_sweep_keeps_finished_tasks(tmp_path, monkeypatch):
    cfg = StudyConfig(epochs=1)
    first = run_study(["fp32", "bf16"], cfg, seeds=2, workers=0, out=str(tmp_path),
                      pictures=False)
    keys = [r["task"]["key"] for r in first.runs]
    # lose one finished task, as if the run had stopped before it ended
    (tmp_path / "tasks" / f"{keys[3]}.json").unlink()
    calls = []
    import lowprec.study.sweep as sw

    real = sw.execute
    monkeypatch.setattr(sw, "execute", lambda t: (calls.append(t.key), real(t))[1])
    again = run_study(["fp32", "bf16"], cfg, seeds=2, workers=0, out=str(tmp_path),
                      pictures=False)
    assert calls == [keys[3]]  # only the lost one ran again
    assert _runs(again) == _runs(first)


def test_torn_result_files_are_recomputed(tmp_path):
    t = Task("lowprec.study.train:train_task", "fp32", 0, params=(("epochs", 1),))
    p = task_path(tmp_path, t)
    p.parent.mkdir(parents=True)
    p.write_text('{"task": {"key": "')  # an interrupted write
    res = run_tasks([t], out=tmp_path)
    assert res[0]["task"]["key"] == t.key and json.loads(p.read_text())["task"]["key"] == t.key


def test_sweep_rejects_bad_input():
    with pytest.raises(ValueError, match="workers"):
        run_tasks([], workers=-1)
    t = Task("lowprec.study.train:train_task", "fp32", 0)
    with pytest.raises(ValueError, match="twice"):
        run_tasks([t, t])
