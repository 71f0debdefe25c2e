"""capture on torch's CPU device, then compare: the whole loop, and that it can fail."""

import itertools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lowprec as lp  # noqa: E402
from lowprec.cli import main  # noqa: E402
from lowprec.hardware.capture import capture, conversion_sample  # noqa: E402
from lowprec.hardware.capture_format import load_capture, typed_values  # noqa: E402
from lowprec.hardware.candidates import (gemm_candidates, run_candidate,  # noqa: E402
                                         torch_overflow)
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


TORCH_FORMATS = [f.name for f in lp.list_formats() if isinstance(f, lp.FloatFormat)
                 and isinstance(getattr(torch, f.name, None), torch.dtype)]


@pytest.mark.parametrize("name", TORCH_FORMATS)
def test_torch_compatible_overflow_is_torchs(name):
    # the policy follows from the descriptor; torch's own casts are the oracle, for every
    # format torch has a dtype of (E8M0: positive values, the only ones it holds)
    f = lp.get_format(name)
    top = np.array([f.max, 1.01 * f.max, 1.5 * f.max, 2 * f.max, 1e3 * f.max, np.inf])
    rng = np.random.default_rng(0)
    x = np.concatenate([top, rng.standard_normal(2000) * f.max / 4, [0.0, f.min_normal]])
    x = np.abs(x) if not f.signed else np.concatenate([x, -x])
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    x = x[x > 0] if not f.zero else x
    t = torch.from_numpy(x).to(getattr(torch, name))
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[f.code_dtype.itemsize]
    want = t.view(view).numpy().view(f.code_dtype)
    got = lp.encode(x, f, overflow=torch_overflow(f))
    assert np.array_equal(got, want), name
    assert {n for n in TORCH_FORMATS if torch_overflow(n) == "saturate"} == {"float8_e4m3fn"}


def _gemm_ops(cap):
    return [o for o in cap.ops if o["kind"] == "gemm" and o["status"] == "ok"]


def test_every_gemm_is_scored_and_its_best_candidate_named(cap_path, recs):
    ops = _gemm_ops(load_capture(cap_path))
    assert len(ops) >= 20
    for op in ops:
        r = recs[op["id"]]
        assert r["status"] == "ok" and r["kind"] == "gemm" and r["cases"] == op["M"] * op["N"]
        cands = r["candidates"]
        names = [c["name"] for c in cands]
        assert {"fp32", "fp32-chunk8", "fp32-lanes4"} <= set(names), r["id"]
        assert all(c["cases"] == r["cases"] for c in cands)
        most = max(c["matches"] for c in cands)
        assert r["best"] == next(c["name"] for c in cands if c["matches"] == most)
        assert r["best_match_pct"] == round(100 * most / r["cases"], 4)


ORDERS = ("fp32", "fp32-chunk8", "fp32-lanes4", "h100")


def test_wide_fp8_gemms_tell_the_orders_apart(cap_path, recs):
    # the "wide" inputs (exponents over 2^-6..2^6) make accumulation orders visible: the
    # candidates' own results differ from each other, so at most one can match the device
    cap = load_capture(cap_path)
    wide = [o for o in _gemm_ops(cap) if o["id"].endswith("/wide/float32")]
    assert wide
    for op in wide:
        fa, fb = op["inputs"], op.get("inputs_b", op["inputs"])
        a, b = typed_values(cap.values(op, "a"), fa), typed_values(cap.values(op, "b"), fb)
        outs = {n: run_candidate(a, b, kw, "float32")
                for n, kw in gemm_candidates(fa, fb, "float32", op["K"], list(ORDERS))}
        assert set(outs) == set(ORDERS)
        for x, y in itertools.combinations(ORDERS, 2):
            assert (outs[x] != outs[y]).mean() > 0.1, (op["id"], x, y)
        c = {c["name"]: c for c in recs[op["id"]]["candidates"]}
        assert sum(c[n]["matches"] == op["M"] * op["N"] for n in ORDERS) <= 1


# What torch's CPU kernels were verified to compute, bit for bit, on the seed-3 capture of
# this module and on random GEMMs of the same shapes: (torch major.minor,
# torch.backends.cpu.get_cpu_capability()) -> {op id prefix: candidate matching every case}.
# torch documents no accumulation order for its CPU GEMMs and it differs between CPU
# capabilities: on AVX2, torch 2.13's fp16 and bf16 matmul sums products k mod 4 into four
# fp32 accumulators ("fp32-lanes4"; IEEE fp32 in k order misses about 1 in 1,000 fp16
# results), while _scaled_mm is IEEE fp32 in k order. Elsewhere these claims are skipped.
VERIFIED_CPU = {
    ("2.13", "AVX2"): {
        "matmul/float16/": "fp32-lanes4", "matmul/bfloat16/": "fp32-lanes4",
        "scaled_mm/": "fp32",
        "train/mlp/linear": "fp32+bias-in", "train/mlp/grad_a": "fp32",
        "train/mlp/grad_w": "fp32", "train/mlp/grad_b": "fp32", "train/mlp/sgd": "fma",
    },
}


def _verified_cpu() -> dict:
    ver = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    key = (ver, torch.backends.cpu.get_cpu_capability())
    if key not in VERIFIED_CPU:
        pytest.skip(f"torch's CPU kernels were verified bit for bit only on "
                    f"{sorted(VERIFIED_CPU)} (torch version, CPU capability); this is {key}")
    return VERIFIED_CPU[key]


def _claim(claims: dict, op_id: str) -> str:
    return next(v for k, v in sorted(claims.items(), key=lambda kv: -len(kv[0]))
                if op_id.startswith(k))


def test_torch_cpu_gemm_orders_where_verified(recs):
    claims = _verified_cpu()
    gemms = [r for r in recs.values() if r["kind"] == "gemm" and r["status"] == "ok"]
    assert len(gemms) >= 20
    for r in gemms:
        c = {c["name"]: c for c in r["candidates"]}
        assert c[_claim(claims, r["id"])]["matches"] == r["cases"], r["id"]
        assert r["best_match_pct"] == 100.0


def test_training_step_replay(recs):
    tr = {k.split("/")[-1]: r for k, r in recs.items() if k.startswith("train/mlp/")}
    assert set(tr) == {"linear1", "linear2", "grad_a", "grad_w2", "grad_w1", "grad_b2",
                       "grad_b1", "relu", "grad_relu", "loss", "grad_z", "sgd"}
    for r in tr.values():
        assert r["status"] == "ok" and r["best"] and r["cases"] > 0
    for k in ("relu", "grad_relu"):  # exact operations: any device
        assert tr[k]["best_match_pct"] == 100.0, k
    for k in ("linear1", "linear2"):
        names = {c["name"] for c in tr[k]["candidates"]}
        assert {"fp32+bias-in", "fp32+bias-after", "fp32+bias-out"} <= names


def test_training_step_matches_where_verified(recs):
    claims = _verified_cpu()
    tr = {k: r for k, r in recs.items() if k.startswith("train/mlp/")}
    for k, r in tr.items():
        if any(k.startswith(p) for p in claims):
            c = {c["name"]: c for c in r["candidates"]}
            assert c[_claim(claims, k)]["matches"] == r["cases"], k
    for k in ("linear1", "linear2"):  # the comparison can fail: a bf16 bias add is wrong
        c = {c["name"]: c for c in tr[f"train/mlp/{k}"]["candidates"]}
        assert c["fp32+bias-out"]["matches"] < tr[f"train/mlp/{k}"]["cases"]
    sgd = {c["name"]: c for c in tr["train/mlp/sgd"]["candidates"]}
    assert sgd["mul-add"]["matches"] < tr["train/mlp/sgd"]["cases"]


def test_a_corrupted_result_is_reported(cap_path):
    # the device result is made the fp32 candidate's own, then two codes are changed:
    # exactly those two are reported, on any CPU
    cap = load_capture(cap_path)
    op = next(o for o in cap.ops if o["id"].startswith("matmul/bfloat16/") and o["status"] == "ok")
    key = op["arrays"]["d"]["key"]
    a = typed_values(cap.values(op, "a"), "bfloat16")
    b = typed_values(cap.values(op, "b"), "bfloat16")
    d = lp.encode(run_candidate(a, b, {}, "bfloat16"), "bfloat16").reshape(cap.arrays[key].shape)
    assert d.dtype == cap.arrays[key].dtype
    d.flat[5] += 1  # one bf16 ulp
    d.flat[7] = 0x7FC0  # NaN
    cap.arrays[key] = d
    r = next(r for r in compare_capture(cap, models=["fp32"]) if r["id"] == op["id"])
    c = r["candidates"][0]
    assert [x["name"] for x in r["candidates"]] == ["fp32"]
    assert c["matches"] == r["cases"] - 2
    assert c["ulp_hist"]["0"] == r["cases"] - 2
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
    assert ok and all(r["best"] == ("fp32" if r["kind"] == "gemm" else "torch-compatible")
                      for r in ok)
    # conversions are IEEE round-to-nearest-even on every CPU (test_compat.py)
    assert all(r["best_match_pct"] == 100.0 for r in ok if r["kind"] == "convert")
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
