# Source of 04_mixed_precision_training.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 4. Mixed-precision training
#
# **What this shows.** Training the same small MLP on the bundled UCI digits under several
# precision policies, with every GEMM of forward and backward emulated by `lowprec.matmul`:
#
# * the histogram of gradient values against fp16's representable range, and how loss
#   scaling shifts the gradients into it (Micikevicius et al. 2018, Fig. 3);
# * what dynamic loss scaling (torch.amp.GradScaler's algorithm) does when the scale is too
#   large: skipped steps and back-off;
# * fp32 master weights against weights stored only in bf16, updated with round to nearest,
#   stochastic rounding or Kahan summation.
#
# **Why it matters.** These are the two classic ways mixed-precision training fails
# silently: gradients that underflow to zero and updates that are rounded away. Both are
# visible here in counts, not guessed from a loss curve.

# %%
import os

import numpy as np

from lowprec import plot as lplot
from lowprec import plot_numerics as pn
from lowprec.datasets import Split, load_digits
from lowprec.study import StudyConfig, recipe_description, train_recipe

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
data = load_digits(seed=0)
if SMALL:  # fewer examples and epochs: the effects are the same, the curves shorter
    data = Split(data.x_train[:320], data.y_train[:320], data.x_test, data.y_test)
EPOCHS = 2 if SMALL else 3


def show(results):
    head = f"{'recipe':16s} {'test acc':>8s} {'loss':>7s} {'grads flushed':>13s} " \
           f"{'skipped':>7s} {'updates applied':>15s}"
    print(head)
    for r in results:
        loss = "nan" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
        print(f"{r['recipe']:16s} {100 * r['test_accuracy']:7.1f}% {loss:>7s} "
              f"{100 * r['underflow_fraction']:12.2f}% {r['skipped_steps']:7d} "
              f"{100 * r['update_applied_ratio']:14.1f}%")


# %% [markdown]
# ## Gradients against fp16's range
#
# `loss_shift=20` multiplies the loss by 2^-20 (and the learning rate by 2^20), so an fp32
# run is unchanged but every gradient is 2^20 times smaller, as gradients of a deep network
# often are. The histogram below (from the fp32 run) shows where the gradient values lie; the
# coloured bands are each format's normal range (dark) and subnormal range (light).

# %%
shifted = StudyConfig(epochs=EPOCHS, loss_shift=20)
runs = {}
for name in ["fp32", "fp16", "fp16-scaled"]:
    runs[name] = train_recipe(name, shifted, data)
    print(f"{name:12s} {recipe_description(name)}")
lplot.gradient_histogram(runs["fp32"][1], formats=("fp16", "bf16", "float8_e5m2"));

# %% [markdown]
# (At the small size the notebooks run with in CI, training is only a few dozen steps, so
# accuracies are low; the comparison between the recipes is what matters.)
#
# Most gradients lie below fp16's smallest subnormal 2^-24, so the fp16 run flushes them to
# zero and learns little; bf16 (fp32's exponent range) would hold them. Dynamic loss
# scaling multiplies the loss by 2^16 before backward and the gradients by 2^-16 after, which
# moves the histogram into fp16's range:

# %%
show([r for r, _ in runs.values()])
lplot.training_curves({k: h for k, (_, h) in runs.items()});

# %% [markdown]
# ## Dynamic loss scaling backs off on overflow
#
# With the loss 2^8 times *larger* (`loss_shift=-8`), GradScaler's initial scale 2^16
# overflows fp16 (max 65504): the step is skipped and the scale halved, until gradients fit.

# %%
res, hist = train_recipe("fp16-scaled", StudyConfig(epochs=1, loss_shift=-8), data)
d = hist.to_dict()
steps = np.arange(len(d["scale"]))
fig = pn.curves(steps, {"loss scale": d["scale"]}, logy=True, xlabel="step",
                ylabel="loss scale", marker=".")
ax = fig.axes[0]
skipped = np.flatnonzero(d["skipped"])
ax.plot(skipped, np.asarray(d["scale"])[skipped], "rx", label="skipped step")
ax.legend();
print(f"{res['skipped_steps']} skipped steps; final scale {d['scale'][-1]:g}")

# %% [markdown]
# ## Master weights vs pure low-precision weights
#
# `bf16` keeps fp32 master weights and casts them to bf16 for each GEMM. The `bf16-pure-*`
# recipes store the weights only in bf16, so every update w + lr * g is rounded into bf16:
# with round to nearest, updates smaller than half a bf16 spacing of the weight are lost
# ("updates applied" is the sum of actual weight changes over the sum of requested ones).
# Stochastic rounding applies them in expectation; Kahan summation carries the lost part
# in a bf16 compensation term.

# %%
plain = StudyConfig(epochs=EPOCHS)
master = {name: train_recipe(name, plain, data)
          for name in ["bf16", "bf16-pure-rne", "bf16-pure-sr", "bf16-pure-kahan"]}
show([r for r, _ in master.values()])
lplot.training_curves({k: h for k, (_, h) in master.items()});
