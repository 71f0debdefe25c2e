# Source of 06_emulated_vs_hardware.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 6. Emulated vs hardware
#
# **What this shows.** Outputs measured on real NVIDIA GPUs (V100, A100, H100 tensor cores;
# Khattak & Mikaitis' data in `tests/data/tensor-cores`) replayed through lowprec's
# tensor-core models: each GPU's model reproduces its own data bit for bit, the other GPUs'
# models and a plain IEEE fp32 accumulator do not. Then a full capture/compare round trip on
# the machine at hand: `lowprec.hardware.capture` runs conversions, GEMMs and a training step
# in PyTorch, saves them, and `lowprec.hardware.compare` finds the lowprec model that
# reproduces each op.
#
# **Why it matters.** An emulator is only useful if it is right about the hardware. Bitwise
# agreement on real outputs is the evidence; the same round trip on a GPU (``lowprec capture
# --device cuda``, then ``lowprec compare``) checks a new device or a new library version.

# %%
import os
import tempfile

import numpy as np

import lowprec
from lowprec import plot_numerics as pn
from lowprec.hardware import load_dataset
from lowprec.hardware.compare import compare_tc, format_tc_table
from lowprec.hardware.tcdata import default_root
from lowprec.testing import ordinal

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
LIMIT = 500 if SMALL else None                      # cases per data set (2,500 in the folder)
ROOT = default_root()
print("real-GPU data:", ROOT)

# %% [markdown]
# ## Each GPU's model against every data set
#
# One row per measured data set (GPU, input format, output format), one column per model.
# A cell is the fraction of cases whose result the model reproduces bit for bit ("n/a": the
# GPU has no such path, e.g. V100 takes no bf16).

# %%
recs = compare_tc(ROOT, models=["v100", "a100", "h100"], limit=LIMIT)
table = {}
for r in recs:
    row = f"{r['gpu']} {r['input']} -> {r['output']}"
    table.setdefault(row, {})[r["model"]] = (np.nan if r["match_pct"] is None
                                             else r["match_pct"] / 100)
pn.agreement(table);
print(format_tc_table([r for r in recs if r["model"] == r["gpu"].lower()]))

# %% [markdown]
# The diagonal is 100%: every measured output is reproduced. The fp16-output paths of
# A100/H100 round to nearest and often agree with each other; the fp32 paths differ in
# block size and alignment bits, which the data tells apart.
#
# ## How far is an IEEE fp32 accumulator from the GPU?
#
# The same dot products computed as an IEEE fp32 fused multiply-add chain (round to
# nearest even, K in order), compared with what the GPU returned: the distance in fp32 units
# in the last place (ordinal differences of the float32 codes), signed so that a positive
# distance means the GPU's result is closer to zero than the IEEE one.

# %%
def signed_ulps(got, want):
    g = ordinal(lowprec.encode(np.asarray(got, np.float32), "fp32"), "fp32")
    w = ordinal(lowprec.encode(np.asarray(want, np.float32), "fp32"), "fp32")
    toward_zero = np.where(np.asarray(want) < 0, -1, 1)
    return (g.astype(np.int64) - w.astype(np.int64)) * toward_zero


diffs = {}
for gpu, folder in [("V100", "fp16"), ("A100", "fp16"), ("H100", "fp16"), ("H100", "E4M3")]:
    ds = load_dataset(gpu, folder, "fp32", limit=LIMIT)
    ieee = lowprec.matmul(ds.a[:, None, :], ds.b[:, :, None], c=ds.c[:, None, None],
                          inputs=ds.input_format).reshape(-1)
    diffs[f"{gpu} {folder}: IEEE fp32"] = signed_ulps(ieee, ds.d)
pn.ulp_histogram(diffs, max_ulps=6,
                 xlabel="IEEE fp32 result - GPU result (ulps; > 0: GPU closer to zero)");
for k, d in diffs.items():
    print(f"{k:24s} identical {100 * np.mean(d == 0):5.1f}%, GPU closer to zero "
          f"{100 * np.mean(d > 0):5.1f}%, GPU farther from zero {100 * np.mean(d < 0):5.1f}%")

# %% [markdown]
# The tensor cores truncate (aligned products lose their low bits, the result is rounded
# toward zero), so where they differ from IEEE arithmetic they mostly lie toward zero; the
# cases on the other side come from the IEEE chain's own roundings. On H100's fp8 path the
# low 10 bits of every fp32 result are zero, so most cases differ by hundreds of ulps.
#
# ## A capture/compare round trip on this machine
#
# `capture` runs a fixed seeded suite in PyTorch on a device (here the CPU) and saves every
# input and output as codes in one `.npz` file; `compare` loads it and replays each op under
# the candidate models. On a CPU torch's GEMMs are IEEE fp32 accumulations, so "fp32" should
# win every GEMM and the tensor-core models should lose on the "wide" inputs, whose
# exponents spread over 2^-6..2^6 and make accumulation orders visible.

# %%
try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False
    print("PyTorch is not installed: the round trip below is skipped (pip install torch)")

if HAVE_TORCH:
    from lowprec.hardware.capture import capture
    from lowprec.hardware.capture_format import load_capture
    from lowprec.hardware.compare import compare_capture, format_capture_report

    path = os.path.join(tempfile.mkdtemp(), "cpu_capture.npz")
    cap = capture("cpu", out=path, sizes="small", seed=0)
    loaded = load_capture(path)
    ops = compare_capture(loaded)
    ok = [r for r in ops if r["status"] == "ok"]
    print(f"{len(ops)} ops captured, {len(ok)} replayed, "
          f"{len(ops) - len(ok)} skipped by this device (e.g. CUDA-only fp16 accumulation)")
    report = format_capture_report(ops, loaded.meta).splitlines()
    print("\n".join(report[:2] + [ln for ln in report[2:] if "skipped" not in ln][:12]))

# %%
if HAVE_TORCH:
    wanted = ["fp32", "fp32-chunk8", "fp32-chunk32", "bf16-acc", "a100", "h100",
              "torch-compatible", "lowprec-default"]
    rows = {}
    for r in ok:
        if r["kind"] == "convert" or (r["kind"] == "gemm" and r.get("dist") == "wide"
                                      and r["id"].startswith("matmul/")):
            cands = {c["name"]: c["match_pct"] / 100 for c in r["candidates"]}
            rows[r["id"]] = {w: cands.get(w, np.nan) for w in wanted}
    pn.agreement(rows, title="torch CPU ops reproduced bit for bit, per candidate");
    best = {r["best"] for r in ok if r["kind"] == "gemm"}
    print("best candidate over all GEMMs:", best,
          "| every op reproduced exactly:", all(r["best_match_pct"] == 100 for r in ok))
