# Source of 06_emulated_vs_hardware.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 6. Emulated vs hardware
#
# **What this shows.** Outputs measured on real NVIDIA GPUs (V100, A100, H100 tensor cores,
# and the fp8 paths of Ada and B200; Khattak & Mikaitis' data in `tests/data/tensor-cores`)
# replayed through lowprec's tensor-core models: each GPU's model reproduces its own data
# bit for bit where a model is known, the other GPUs' models and a plain IEEE fp32
# accumulator do not, and the table shows where no model explains the data yet. Then a full
# capture/compare round trip on the machine at hand: `lowprec.hardware.capture` runs
# conversions, GEMMs and a training step in PyTorch, saves them, and
# `lowprec.hardware.compare` finds the lowprec model that reproduces each op.
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
from lowprec.hardware import MODELS, list_datasets, load_dataset
from lowprec.hardware.compare import compare_tc
from lowprec.hardware.report import format_tc_table
from lowprec.hardware.tcdata import default_root
from lowprec.testing import ordinal

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
LIMIT = 500 if SMALL else None                      # cases per data set (2,500 in the folder)
ROOT = default_root()
print("real-GPU data:", ROOT)

# %% [markdown]
# ## Each GPU's model against every data set
#
# One row per measured data set (GPU, input format, output format), one column per model of
# a GPU in the data, oldest first. A cell is the fraction of cases whose result the model
# reproduces bit for bit ("n/a": the model has no such path, e.g. V100 takes no bf16 and
# A100 no fp8).

# %%
gpus = [g for g in MODELS if g in {gpu.lower() for gpu, _, _ in list_datasets(ROOT)}]
recs = compare_tc(ROOT, models=gpus, limit=LIMIT)
recs.sort(key=lambda r: gpus.index(r["gpu"].lower()))  # rows in the columns' order
table = {}
for r in recs:
    row = f"{r['gpu']} {r['input']} -> {r['output']}"
    table.setdefault(row, {})[r["model"]] = (np.nan if r["match_pct"] is None
                                             else r["match_pct"] / 100)
pn.agreement(table);
print(format_tc_table([r for r in recs if r["model"] == r["gpu"].lower()]))

# %% [markdown]
# Each data set's own GPU model (the diagonal) reproduces it bit for bit, with two
# exceptions the data show. B200's fp8 with fp32 output: the `b200` model (the authors'
# B200TC.m) matches only about two thirds of the cases, and no published model explains the
# rest. fp8 with fp16 output on Ada and B200: their GPUs' models have no such path ("n/a"
# on the diagonal; Hopper's fp16-output fp8 path, the only one modelled, is another
# datapath); `lowprec compare --tc-dir` reports such sets with the best block model of a
# quick search, which fits these few cases but is no measured model. The fp16-output paths of A100/H100 round to nearest
# and often agree with each other; the fp32 paths differ in block size and alignment bits,
# which the data tells apart, and Ada's and Hopper's fp8 paths differ in block size.
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
# the candidate models. torch documents no accumulation order for its CPU GEMMs, and it
# differs between CPUs and torch versions: the capture tells. With torch 2.13 on an AVX2
# CPU, fp16 and bf16 `matmul` sum the products k mod 4 into four fp32 accumulators
# ("fp32-lanes4"; IEEE fp32 in k order, "fp32", misses about 1 in 1,000 fp16 results) and
# `_scaled_mm` (fp8) is IEEE fp32 in k order; `tests/test_capture.py` checks these claims
# where they were verified.

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
    from lowprec.hardware.compare import compare_capture
    from lowprec.hardware.report import format_capture_report

    path = os.path.join(tempfile.mkdtemp(), "cpu_capture.npz")
    cap = capture("cpu", out=path, sizes="small", seed=0)
    loaded = load_capture(path)
    ops = compare_capture(loaded)
    ok = [r for r in ops if r["status"] == "ok"]
    dev = loaded.meta["device"]
    print(f"torch {dev['torch']} on {dev.get('name')} (CPU capability "
          f"{dev.get('cpu_capability', 'unknown')})")
    print(f"{len(ops)} ops captured, {len(ok)} replayed, "
          f"{len(ops) - len(ok)} skipped by this device (e.g. CUDA-only fp16 accumulation)")
    report = format_capture_report(ops, loaded.meta).splitlines()
    print("\n".join(report[:2] + [ln for ln in report[2:] if "skipped" not in ln][:12]))

# %% [markdown]
# Which candidate reproduces which op. Rounding into an fp16 or bf16 output hides most
# differences between accumulation orders, so on `matmul` (whose output is its inputs'
# format; the fp32-output `torch.mm` and fp16 accumulation are skipped on a CPU) many
# candidates tie on a small capture. The fp8 GEMMs with fp32 output on the "wide" inputs,
# whose exponents spread over 2^-6..2^6, tell the orders apart: the heat map shows those and
# the conversions; the lines below list, per kind of GEMM, every candidate that reproduces
# all of its results (the report names the first of them).

# %%
if HAVE_TORCH:
    wanted = ["fp32", "fp32-lanes4", "fp32-chunk8", "fp32-chunk32", "ada", "h100", "b200",
              "torch-compatible", "lowprec-default"]
    rows = {}
    for r in ok:
        if r["kind"] == "convert" or (r["kind"] == "gemm" and r.get("dist") == "wide"
                                      and r["format"] == "float32"):
            cands = {c["name"]: c["match_pct"] / 100 for c in r["candidates"]}
            rows[r["id"]] = {w: cands.get(w, np.nan) for w in wanted}
    pn.agreement(rows, title="torch CPU ops reproduced bit for bit, per candidate");
    for op in ("matmul/float16/", "matmul/bfloat16/", "scaled_mm/"):
        recs_op = [r for r in ok if r["id"].startswith(op)]
        exact = [c["name"] for c in recs_op[0]["candidates"]
                 if all(any(d["name"] == c["name"] and d["matches"] == r["cases"]
                            for d in r["candidates"]) for r in recs_op)]
        print(f"{op:18} {len(recs_op):2d} ops, every result reproduced by: "
              f"{', '.join(exact) or 'no candidate'}")
