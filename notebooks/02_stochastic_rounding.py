# Source of 02_stochastic_rounding.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 2. Stochastic rounding
#
# **What this shows.** A long running sum in fp16 and bf16 stops growing under round to
# nearest (stagnation), while stochastic rounding (SR) and Kahan-compensated summation keep
# following the exact sum. SR is unbiased: its expected value is the exact value. Hardware SR
# uses a limited number of random bits, which quantises the rounding probabilities and
# brings back a bias for tiny increments.
#
# **Why it matters.** Weight updates in low-precision training are exactly such sums: a
# weight of size 1 in bf16 cannot absorb an update below 2^-9, so round to nearest silently
# drops it. SR (Gupta et al. 2015; Zamirai et al. 2020) and Kahan summation are the two
# classic cures; how many random bits the hardware spends decides whether SR still works.

# %%
import os

import numpy as np

import lowprec
from lowprec import plot_numerics as pn

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
N = 2 ** 12 if SMALL else 2 ** 15          # length of the running sum
CHECKPOINTS = 48 if SMALL else 96          # points on each curve
rng = np.random.default_rng(0)

# %% [markdown]
# ## Stagnation of a running sum
#
# Sum N increments drawn uniformly from [0.005, 0.015] (each rounded to the format first, so
# only the additions round). Each step rounds the exact sum once into the format
# (`LPArray.sum`, sequential order, accumulator in the array's format).
#
# To get the whole curve from one kernel call, row j of a matrix holds the first k_j
# increments followed by zeros: adding an exact zero never changes a sum, under any rounding
# mode, so row j's sum is the running sum after k_j steps. (For Kahan summation the trailing
# zeros still fold the compensation into the sum, which is what a final Kahan step does.)

# %%
def running_sums(x, fmt, rounding="rne", order="sequential", seed=0):
    ks = np.unique(np.geomspace(1, len(x), CHECKPOINTS).astype(int))
    rows = np.where(np.arange(len(x))[None, :] < ks[:, None], x[None, :], 0.0)
    a = lowprec.array(rows, fmt, rounding=rounding, seed=seed)  # exact: x is on the grid
    return ks, a.sum(axis=1, order=order).to_numpy(np.float64)


import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
final = {}
for ax, fmt in zip(axes, ["float16", "bfloat16"]):
    x = lowprec.quantize(rng.uniform(0.005, 0.015, N), fmt)
    ks, rne = running_sums(x, fmt, "rne")
    _, sr = running_sums(x, fmt, "sr", seed=1)
    _, kahan = running_sums(x, fmt, "rne", order="kahan")
    exact = np.cumsum(x)[ks - 1]  # float64 partial sums: exact here (few bits per term)
    final[fmt] = dict(exact=exact[-1], rne=rne[-1], sr=sr[-1], kahan=kahan[-1])
    pn.running_sums(ks, {"round to nearest": rne, "stochastic rounding": sr,
                         "Kahan (RNE)": kahan}, exact=exact, ax=ax, title=fmt)
fig.tight_layout()
for fmt, r in final.items():
    print(fmt, {k: round(float(v), 4) for k, v in r.items()})

# %% [markdown]
# Under round to nearest the fp16 sum sticks at 32 (there an increment of about 0.01 is less
# than half of fp16's spacing 2^-5), and bf16, with 3 fewer bits, sticks at 4. Both SR and
# Kahan keep tracking the exact sum.
#
# ## Unbiasedness
#
# SR rounds x up with probability (x - lo) / (hi - lo), so E[SR(x)] = x. Round one value that
# is not representable many times and watch the mean converge, while round to nearest is off
# by a fixed amount forever.

# %%
x0 = 1 + 0.3 * 2.0 ** -7                  # 30% of the way from 1 to the next bf16 value
M = 2_000 if SMALL else 50_000
draws = lowprec.quantize(np.full(M, x0), "bf16", rounding="sr", seed=7)
n = np.arange(1, M + 1)
running_mean = np.cumsum(draws) / n
pn.curves(n, {"|mean of SR draws - x|": np.abs(running_mean - x0),
              "|RNE(x) - x|": np.full(M, abs(lowprec.quantize(x0, "bf16") - x0)),
              "2 sigma / sqrt(n)": 2 * np.sqrt(0.3 * 0.7) * 2.0 ** -7 / np.sqrt(n)},
          logx=True, logy=True, xlabel="number of draws n", ylabel="error of the estimate");
print("fraction rounded up:", (draws > 1).mean(), "(expected 0.3)")

# %% [markdown]
# The same holds for whole computations: the final error of the SR running sum over many
# independent runs is centred on zero.

# %%
runs = 32 if SMALL else 256
x = lowprec.quantize(rng.uniform(0.005, 0.015, N), "bf16")
sums = lowprec.array(np.tile(x, (runs, 1)), "bf16", rounding="sr", seed=3).sum(axis=1)
err = sums.to_numpy(np.float64) - x.sum()
print(f"SR final error over {runs} runs: mean {err.mean():+.3f}, std {err.std():.3f} "
      f"(exact sum {x.sum():.3f}); RNE error {final['bfloat16']['rne'] - final['bfloat16']['exact']:+.3f}"
      " on the first sequence")

# %% [markdown]
# ## A limited number of random bits
#
# Hardware SR adds an r-bit random integer below the last kept bit and truncates
# (`sr_bits=r`). The probability of rounding up then moves in steps of 2^-r, and an input
# closer than 2^-r of a gap to its lower neighbour is never rounded up.

# %%
ulp = 2.0 ** -7
pos = np.linspace(0, 1, 129)[:-1]
draws_per_point = 500 if SMALL else 5_000
xs = np.repeat(1 + pos * ulp, draws_per_point)
probs = {}
for bits in [None, 1, 2, 4]:
    q = lowprec.quantize(xs, "bf16", rounding="sr", sr_bits=bits, seed=11)
    probs["exact SR" if bits is None else f"{bits} random bits"] = (
        (q > 1).reshape(len(pos), draws_per_point).mean(axis=1))
pn.sr_probability(pos, probs);

# %% [markdown]
# In a running sum that bias returns as stagnation: once an increment is below 2^-r of the
# spacing of the sum, r-bit SR drops it every time. Here the bf16 sum of the increments above
# with 2, 4 and 8 random bits:

# %%
x = lowprec.quantize(rng.uniform(0.005, 0.015, N), "bf16")
curves_ = {}
for bits in [2, 4, 8, None]:
    ks = np.unique(np.geomspace(1, len(x), CHECKPOINTS).astype(int))
    rows = np.where(np.arange(len(x))[None, :] < ks[:, None], x[None, :], 0.0)
    a = lowprec.array(rows, "bf16", rounding="sr", sr_bits=bits, seed=5)
    curves_["exact SR" if bits is None else f"SR, {bits} bits"] = a.sum(axis=1).to_numpy()
pn.running_sums(ks, curves_, exact=np.cumsum(x)[ks - 1], title="bf16 running sum, r-bit SR");
