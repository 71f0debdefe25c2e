"""capture on torch's CPU device, then compare: the whole loop, and that it can fail."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowprec as lp  # noqa: E402
from lowprec.cli import main  # noqa: E402
from lowprec.hardware.capture import capture, conversion_sample  # noqa: E402
from lowprec.hardware.capture_format import load_capture  # noqa: E402
from lowprec.hardware.compare import compare_capture  # noqa: E402
from lowprec.hardware.fit import capture_problems, fit_problem, grid  # noqa: E402


@pytest.fixture(scope="module")
def cap_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cap") / "cpu.npz"
    capture("cpu", path, seed=3)
    return path


@pytest.fixture(scope="module")
def recs(cap_path):
    return {r["id"]: r for r in compare_capture(cap_path)}


def test_file_round_trip_and_metadata(cap_path):
    cap = load_capture(cap_path)
    m = cap.meta
    assert m["version"] == 1 and m["seed"] == 3 and m["device"]["device"] == "cpu"
    assert m["device"]["torch"] == torch.__version__
    kinds = {o["kind"] for o in cap.ops}
    assert kinds == {"convert", "gemm", "train"}
    for o in cap.ops:
        assert o["status"] in ("ok", "skipped")
        if o["status"] == "skipped":
            assert o["reason"] and not o["arrays"]
        if o["kind"] == "gemm":
            assert "seed" in o and o["K"] > 0
    assert any(o["K"] % 32 for o in cap.ops if o["kind"] == "gemm" and o["status"] == "ok")
    # CPU has no fp16-accumulation switch: recorded as skipped, with the reason
    fp16acc = [o for o in cap.ops if o["id"].startswith("matmul_fp16acc/")]
    assert fp16acc and all(o["status"] == "skipped" and "CUDA" in o["reason"] for o in fp16acc)
    # the same seed gives the same inputs
    again = capture("cpu", seed=3, conversions=False, train=False)
    op = next(o for o in again.ops if o["status"] == "ok")
    assert np.array_equal(again.codes(op, "a"), cap.codes(op, "a"))
    # codes survive the file: torch's own output, read back, equals a fresh cast
    conv = next(o for o in cap.ops if o["id"] == "convert/float8_e4m3fn")
    x = cap.codes(conv, "x").view(np.float32)
    direct = torch.from_numpy(x).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    assert np.array_equal(cap.codes(conv, "y"), direct)


def test_sample_covers_special_regions():
    with np.errstate(invalid="ignore"):  # signalling-NaN bit patterns
        x = conversion_sample(4000, seed=0).astype(np.float64)
    for v in (464.0, 448.0, 61440.0, 57344.0, 65520.0, 2.0 ** -10, 2.0 ** -17, 2.0 ** -25,
              np.inf, -np.inf, 0.0, 2.0 ** -149):
        assert v in x, v
    assert np.isnan(x).any()
    assert np.nextafter(np.float32(464), np.float32(0)) in x.astype(np.float32)


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_conversions_match_torch_compatible_settings(recs, name):
    r = recs[f"convert/{name}"]
    c = {c["name"]: c for c in r["candidates"]}
    assert r["cases"] > 100_000
    assert c["torch-compatible"]["matches"] == r["cases"]
    assert r["best"] == "torch-compatible"
    if name == "float8_e4m3fn":  # lowprec's default gives NaN on overflow, torch saturates
        assert c["lowprec-default"]["matches"] < r["cases"]
        assert c["lowprec-default"]["ulp_hist"]["nan"] > 0


def test_torch_cpu_gemms_are_sequential_fp32(recs):
    gemms = [r for r in recs.values() if r["kind"] == "gemm" and r["status"] == "ok"]
    assert len(gemms) >= 20
    for r in gemms:
        c = {c["name"]: c for c in r["candidates"]}
        assert c["fp32"]["matches"] == r["cases"], r["id"]
    # the wide-exponent fp8 GEMMs with fp32 output tell the orders apart
    wide = [r for r in gemms if r["id"].endswith("/wide/float32")]
    assert wide
    for r in wide:
        c = {c["name"]: c for c in r["candidates"]}
        assert c["fp32-chunk8"]["matches"] < r["cases"]
        assert c["h100"]["matches"] < r["cases"]


def test_training_step_replay(recs):
    tr = {k.split("/")[-1]: r for k, r in recs.items() if k.startswith("train/mlp/")}
    assert set(tr) == {"linear1", "linear2", "grad_a", "grad_w2", "grad_w1", "grad_b2",
                       "grad_b1", "relu", "grad_relu", "loss", "grad_z", "sgd"}
    for k in ("linear1", "linear2", "grad_a", "grad_w2", "grad_w1", "grad_b2", "grad_b1",
              "relu", "grad_relu"):
        assert tr[k]["best_match_pct"] == 100.0, k
    for k in ("linear1", "linear2"):
        c = {c["name"]: c for c in tr[k]["candidates"]}
        assert c["fp32+bias-in"]["matches"] == tr[k]["cases"]
        assert c["fp32+bias-out"]["matches"] < tr[k]["cases"]  # a bf16 bias add is wrong
    sgd = {c["name"]: c for c in tr["sgd"]["candidates"]}
    assert sgd["fma"]["matches"] == tr["sgd"]["cases"]
    assert sgd["mul-add"]["matches"] < tr["sgd"]["cases"]


def test_a_corrupted_result_is_reported(cap_path, tmp_path):
    cap = load_capture(cap_path)
    op = next(o for o in cap.ops if o["id"].startswith("matmul/bfloat16/") and o["status"] == "ok")
    key = op["arrays"]["d"]["key"]
    d = cap.arrays[key].copy()
    d.flat[5] += 1  # one bf16 ulp
    d.flat[7] = 0x7FC0  # NaN
    cap.arrays[key] = d
    r = next(r for r in compare_capture(cap, models=["fp32"]) if r["id"] == op["id"])
    c = r["candidates"][0]
    assert [x["name"] for x in r["candidates"]] == ["fp32"]
    assert c["matches"] == r["cases"] - 2
    assert c["ulp_hist"]["1"] == 1 and c["ulp_hist"]["nan"] == 1


def test_fit_on_capture_runs():
    cap = capture("cpu", seed=1, conversions=False, train=False)
    probs = capture_problems(cap)
    names = {p.name for p in probs}
    assert "torch._scaled_mm float8_e4m3fn->float32 acc=default" in names
    p = next(p for p in probs if p.name.startswith("torch._scaled_mm float8_e4m3fn->float32"))
    rows = fit_problem(p, grid(p.in_format, p.block_outs, ns=(4, 32), fracs=(13, 26)))
    assert rows[0]["complete"]
    # a wide-exponent fp8 GEMM on the CPU is no tensor core: no block model fits exactly
    assert rows[0]["mismatches"] > 0


def test_cli_capture_compare_report(tmp_path, capsys):
    out = tmp_path / "c.npz"
    assert main(["capture", "--out", str(out), "--seed", "5"]) == 0
    assert "captured" in capsys.readouterr().out
    assert main(["compare", str(out), "--json", "--model", "fp32", "--model",
                 "torch-compatible"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["meta"]["seed"] == 5
    ok = [r for r in res["ops"] if r["status"] == "ok" and not r["id"].startswith("train/")]
    assert ok and all(r["best_match_pct"] == 100.0 for r in ok)
    rep = tmp_path / "rep"
    assert main(["compare", str(out), "--model", "fp32", "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "convert/float16" in text and "skipped" in text and "no candidate" in text
    html = (rep / "index.html").read_text()
    assert "matmul_float16_16x37x24_normal.png" in html
    assert (rep / "matmul_float16_16x37x24_normal.png").stat().st_size > 1000
    assert main(["capture", "--out", str(out), "--device", "tpu"]) == 2
    assert main(["compare", str(out), "--model", "nosuch"]) == 2
    if not torch.cuda.is_available():
        assert main(["capture", "--out", str(out), "--device", "cuda"]) == 2
