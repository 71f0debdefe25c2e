# Source of 05_fp8_training_recipes.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 5. FP8 training recipes
#
# **What this shows.** How FP8 training keeps tensors inside E4M3's narrow range (max 448,
# smallest subnormal 2^-9) with scale factors: current scaling (each tensor's own amax),
# delayed scaling (amaxes of earlier steps, Transformer Engine's default), the effect of the
# amax history length, and MX block scaling (one power-of-two E8M0 scale per 32 values). Then
# the same MLP trained under each recipe.
#
# **Why it matters.** An fp8 value has only 3 mantissa bits; which values saturate and which
# vanish below the subnormals is decided by the scale, not by the format. Delayed scaling is
# cheap (no extra pass over the tensor) but sees a spike one step late; block scaling adapts
# to local magnitude at the cost of one scale byte per 32 values.

# %%
import os

import numpy as np

import lowprec
from lowprec import plot as lplot
from lowprec import plot_numerics as pn
from lowprec.autograd import Autocast, CurrentScaling, DelayedScaling, Policy, Tracker

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
STEPS = 60 if SMALL else 200
SIZE = 2_048 if SMALL else 16_384
rng = np.random.default_rng(0)

# %% [markdown]
# ## Current vs delayed scaling on a drifting tensor
#
# A sequence of activation tensors whose magnitude grows slowly, with a 16x spike at one
# step. Each is cast to E4M3 by `Autocast.cast` under a policy with the recipe (casts
# saturate, as Transformer Engine's do). A tracker counts the saturated values per step.

# %%
spike = STEPS // 2
growth = np.exp(np.linspace(0, 2.5, STEPS))
growth[spike] *= 16
tensors = [(rng.standard_normal(SIZE) * g).astype(np.float32) for g in growth]


def cast_sequence(scaling):
    tracker = Tracker(histogram=False)
    ctx = Autocast(Policy("demo", activations="e4m3", scaling=scaling), tracker=tracker)
    saturated, scales, errors = [], [], []
    for x in tensors:
        q = ctx.cast(x, "activation", "x")
        stats = tracker.take_step()["x/activation"]
        saturated.append(stats["saturated_fraction"])
        scales.append(1 / float(q.inv))
        deq = q.values.astype(np.float64) * float(q.inv)
        errors.append(np.sqrt(np.mean((deq - x) ** 2)) / np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return np.array(saturated), np.array(scales), np.array(errors)


recipes = {"current scaling": CurrentScaling(),
           "delayed, history 1": DelayedScaling(amax_history_len=1),
           "delayed, history 16": DelayedScaling(amax_history_len=16)}
seq = {name: cast_sequence(r) for name, r in recipes.items()}
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(16, 4))
t = np.arange(STEPS)
pn.curves(t, {k: 100 * v[0] for k, v in seq.items()}, ax=axes[0], xlabel="step",
          ylabel="saturated values (%)", title="saturation")
pn.curves(t, {k: v[1] for k, v in seq.items()}, ax=axes[1], xlabel="step", ylabel="scale",
          logy=True, title="scale factor")
pn.curves(t, {k: v[2] for k, v in seq.items()}, ax=axes[2], xlabel="step",
          ylabel="relative RMS error", logy=True, title="cast error")
fig.tight_layout()

# %% [markdown]
# Current scaling never saturates. Delayed scaling uses a scale computed from earlier
# amaxes: as the tensor grows a few values saturate every step, and at the spike most of
# the large values are clamped to 448. With a history of 16 the scale stays small for 16
# steps after the spike, so the following tensors use less of E4M3's range (larger relative
# error from subnormals) until the spike leaves the window; with TE's default of 1024 it
# would stay for 1024 steps.
#
# ## MX block scaling
#
# A tensor whose magnitude varies from block to block (here over 2^-10 .. 2^10). One
# per-tensor scale must fit the largest block, pushing small blocks into E4M3's subnormals
# or to zero; MX gives every block of 32 its own power-of-two scale.

# %%
blocks = 64 if SMALL else 512
mag = 2.0 ** rng.uniform(-10, 10, blocks)
x = (rng.standard_normal((blocks, 32)) * mag[:, None]).astype(np.float32)
schemes = {"per-tensor e4m3": dict(fmt="e4m3"), "MXFP8 (e4m3)": dict(fmt="mxfp8_e4m3"),
           "MXFP6 (e3m2)": dict(fmt="mxfp6_e3m2"), "MXFP4 (e2m1)": dict(fmt="mxfp4_e2m1"),
           "NVFP4": dict(fmt="nvfp4")}
order = np.argsort(mag)
block_err = {}
for name, kw in schemes.items():
    st = lowprec.quantize_scaled(x.reshape(-1), **kw)
    deq = st.dequantize(np.float64).reshape(x.shape)
    err = np.sqrt(np.mean((deq - x) ** 2, axis=1)) / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))
    block_err[f"{name}, {st.bits_per_element:.2f} bits/value"] = err[order]
pn.curves(np.log2(mag[order]), block_err, logy=True, xlabel="log2 of the block's magnitude",
          ylabel="relative RMS error of the block", marker=".");

# %% [markdown]
# ## Training under the fp8 recipes
#
# The study's recipes cast GEMM inputs to E4M3 in forward and output gradients to E5M2 in
# backward (Transformer Engine's HYBRID format), with fp32 accumulation and master weights.

# %%
from lowprec.datasets import Split, load_digits
from lowprec.study import StudyConfig, train_recipe

data = load_digits(seed=0)
if SMALL:
    data = Split(data.x_train[:320], data.y_train[:320], data.x_test, data.y_test)
config = StudyConfig(epochs=2 if SMALL else 4)
runs = {name: train_recipe(name, config, data)
        for name in ["fp32", "fp8-current", "fp8-delayed", "fp8-mx"]}
for name, (r, _) in runs.items():
    print(f"{name:12s} test accuracy {100 * r['test_accuracy']:5.1f}%  saturated "
          f"{100 * r['saturated_fraction']:.3f}%  gradients flushed {100 * r['underflow_fraction']:.2f}%")
lplot.training_curves({k: h for k, (_, h) in runs.items()});

# %% [markdown]
# Delayed scaling works when a tensor's amax changes slowly from step to step. The per-step
# records of the delayed run show how the output gradients' amax (before scaling) moves
# during training, layer by layer:

# %%
hist = runs["fp8-delayed"][1]
keys = sorted({k for s in hist.steps for k in s["tensors"] if k.endswith("/gradient")})
pn.curves(np.arange(len(hist.steps)), {k: hist.series(k, "amax") for k in keys}, logy=True,
          xlabel="step", ylabel="amax of the output gradient", marker=".");
