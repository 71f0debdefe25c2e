# Source of 03_gemm_accumulation.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 3. GEMM accumulation
#
# **What this shows.** How the error of a dot product grows with its length K for fp32, fp16
# and bf16 accumulators; how promoting chunks of a low-precision accumulation into fp32
# tames it; how NVIDIA tensor cores (truncating block FMAs) differ from an IEEE accumulator;
# and the "about 14 bits" fp8 accumulation of Hopper GPUs together with DeepSeek-V3's fix
# (promote to fp32 every 128 products).
#
# **Why it matters.** A GEMM's inputs may be 8 bits wide, but what decides its accuracy is
# how the K products are summed. The accumulator's precision, rounding and order are
# parameters of `lowprec.matmul`, and the tensor-core models reproduce real GPU outputs bit
# for bit (notebook 6), so these curves are what the hardware does.

# %%
import math
import os

import numpy as np

import lowprec
from lowprec import plot_numerics as pn

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
KS = 2 ** np.arange(4, 13 if SMALL else 15)         # reduction lengths
M = 16 if SMALL else 64                             # independent dot products per K
rng = np.random.default_rng(0)


def problem(K, fmt, scale=1.0):
    """M dot products of length K with positive inputs on fmt's grid (errors add up)."""
    a = lowprec.quantize(rng.uniform(0, scale, (M, K)), fmt)
    b = lowprec.quantize(rng.uniform(0, 1, (K, 1)), fmt)
    exact = np.array([math.fsum(a[i] * b[:, 0]) for i in range(M)])  # products exact in fp64
    return a, b, exact


def rel_err(r, exact):
    return float(np.mean(np.abs(np.asarray(r, np.float64)[:, 0] - exact) / np.abs(exact)))


# %% [markdown]
# ## Error against K for fp32, fp16 and bf16 accumulators
#
# fp16 inputs, one rounding per fused multiply-add into the accumulator (round to nearest
# even, sequential order). The dashed lines are the first-order worst-case bounds K u.
# With all-positive inputs the running sum grows like K, so its spacing grows too and the
# low-precision accumulators lose relative accuracy steadily; bf16 also stagnates (notebook 2).

# %%
errs = {acc: [] for acc in ["fp32", "fp16", "bf16"]}
for K in KS:
    a, b, exact = problem(K, "fp16")
    for acc in errs:
        errs[acc].append(rel_err(lowprec.matmul(a, b, acc=acc), exact))
bounds = {f"K u ({f})": KS * 2.0 ** -lowprec.get_format(f).precision for f in ["fp32", "bf16"]}
pn.error_vs_k(KS, {f"{k} accumulator": v for k, v in errs.items()}, bounds=bounds,
              title="fp16 inputs, sequential accumulation");

# %% [markdown]
# ## Chunked promotion
#
# Accumulate runs of `chunk` products in the low-precision accumulator and add each run's
# sum into an fp32 total. The low-precision sums never get large, so their spacing stays
# small: a bf16 accumulator with chunks of 32 is far better than plain bf16, and the error
# stops growing with K.

# %%
chunk_errs = {"bf16": [], "bf16, chunk 128": [], "bf16, chunk 32": [], "fp32": []}
for K in KS:
    a, b, exact = problem(K, "bf16")
    chunk_errs["bf16"].append(rel_err(lowprec.matmul(a, b, acc="bf16"), exact))
    chunk_errs["bf16, chunk 128"].append(rel_err(lowprec.matmul(a, b, acc="bf16", chunk=128), exact))
    chunk_errs["bf16, chunk 32"].append(rel_err(lowprec.matmul(a, b, acc="bf16", chunk=32), exact))
    chunk_errs["fp32"].append(rel_err(lowprec.matmul(a, b, acc="fp32"), exact))
pn.error_vs_k(KS, chunk_errs, title="bf16 inputs: promotion of chunks into fp32");

# %% [markdown]
# ## IEEE accumulation vs tensor-core models
#
# A tensor core adds n products and c in one block FMA: it aligns them to the largest
# exponent, truncates each to F fraction bits, adds exactly and rounds the block's result
# toward zero (fp32 output). Truncation always loses magnitude, so with positive inputs the
# error is one-sided and grows with K; V100 (n = 4, F = 23) loses more than A100
# (n = 8, F = 24) and H100 (n = 16, F = 25). The IEEE fp32 accumulator with round to
# nearest has errors of both signs that partly cancel.

# %%
tc_errs = {"IEEE fp32, RNE": [], "IEEE fp32, RTZ": [], "V100": [], "A100": [], "H100": []}
signed = {k: [] for k in tc_errs}
for K in KS:
    a, b, exact = problem(K, "fp16")
    runs = {"IEEE fp32, RNE": lowprec.matmul(a, b, acc="fp32"),
            "IEEE fp32, RTZ": lowprec.matmul(a, b, acc="fp32", acc_rounding="rtz"),
            "V100": lowprec.matmul(a, b, model="v100", inputs="fp16"),
            "A100": lowprec.matmul(a, b, model="a100", inputs="fp16"),
            "H100": lowprec.matmul(a, b, model="h100", inputs="fp16")}
    for k, r in runs.items():
        tc_errs[k].append(rel_err(r, exact))
        signed[k].append(float(np.mean((np.asarray(r, np.float64)[:, 0] - exact) / exact)))
pn.error_vs_k(KS, tc_errs, title="fp16 inputs, fp32 output");
print("mean signed relative error at the largest K:",
      {k: f"{v[-1]:+.2e}" for k, v in signed.items()})

# %% [markdown]
# The published test vectors (Fasi et al. 2021) show the same mechanism on single blocks:
# with c = -(1 - 2^-24), V100 and A100 disagree on 1 - (1 - 2^-24).

# %%
for name, (a, b, c) in {
    "a=[1], b=[1], c=-(1-2^-24)": ([1.0], [1.0], -(1 - 2.0 ** -24)),
    "a=[1]*4, b=[2^-24]*4, c=1": ([1.0] * 4, [2.0 ** -24] * 4, 1.0),
}.items():
    A = np.array([a]); B = np.array(b)[:, None]; C = np.array([[c]], np.float32)
    print(f"{name:30s}", {g: float(lowprec.matmul(A, B, c=C, inputs="fp16", model=g)[0, 0])
                          for g in ["v100", "a100"]})

# %% [markdown]
# ## fp8: about 14 bits of accumulation, and the promotion fix
#
# Hopper's fp8 tensor-core path keeps only 13 fraction bits when aligning the 32 products of
# an instruction and zeroes the low 10 bits of its fp32 result (REFERENCE.md sec. 4;
# DeepSeek-V3 measured "about 14 bits"). Over long K the accumulated result then drifts far
# from the exact one. DeepSeek-V3's fix copies the partial result into an fp32 register
# every N_C = 128 products (`chunk=128` with a model sets that promotion interval).

# %%
fp8_errs = {"H100 fp8 (wgmma)": [], "H100 fp8, promote every 128": [], "exact products, fp32 RNE": []}
for K in KS:
    a, b, exact = problem(K, "e4m3")
    fp8_errs["H100 fp8 (wgmma)"].append(rel_err(lowprec.matmul(a, b, inputs="e4m3", model="h100"), exact))
    fp8_errs["H100 fp8, promote every 128"].append(
        rel_err(lowprec.matmul(a, b, inputs="e4m3", model="h100", chunk=128), exact))
    fp8_errs["exact products, fp32 RNE"].append(rel_err(lowprec.matmul(a, b, inputs="e4m3"), exact))
pn.error_vs_k(KS, fp8_errs, bounds={"2^-14": np.full(len(KS), 2.0 ** -14)},
              title="E4M3 inputs, fp32 output");
print("relative error at K =", KS[-1], {k: f"{v[-1]:.2e}" for k, v in fp8_errs.items()})
