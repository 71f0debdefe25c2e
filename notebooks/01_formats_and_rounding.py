# Source of 01_formats_and_rounding.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 1. Formats and rounding
#
# **What this shows.** Which numbers the 8-, 6- and 4-bit formats can hold, how large the
# relative rounding error is across each format's range, where values overflow or underflow,
# and what every rounding mode does to the same inputs.
#
# **Why it matters.** Every low-precision effect later in these notebooks (stagnating sums,
# lost gradients, saturated activations) is one of these few facts at work: a format has a
# fixed number of values per binade, a largest value and a smallest one, and a rounding rule
# that decides where everything in between goes. Emulating them bit for bit on a CPU lets you
# study them without the hardware.

# %%
import os

import numpy as np

import lowprec
from lowprec import plot_numerics as pn

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
N_POINTS = 4_001 if SMALL else 40_001

# %% [markdown]
# ## The formats
#
# Every format is one `FloatFormat` descriptor: exponent bits, mantissa bits, bias and how it
# spends its special codes. The OCP 8-bit formats differ in exactly that: E4M3 (`e4m3fn`) has
# no infinities and one NaN code, so it reaches 448; E5M2 keeps IEEE infinities.

# %%
print(f"{'format':16s} {'bits':>4s} {'p':>3s} {'max':>10s} {'min normal':>11s} "
      f"{'min subnormal':>13s}  inf   NaN")
for name in ["float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
             "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"]:
    f = lowprec.get_format(name)
    print(f"{f.name:16s} {f.bits:4d} {f.precision:3d} {f.max:10.6g} {f.min_normal:11.4g} "
          f"{f.min_subnormal:13.4g}  {'yes' if f.has_inf else 'no ':3s}  {f.nan}")

# %% [markdown]
# ## Number lines
#
# All finite non-negative values of the small formats on a linear axis (subnormals in
# orange). Values crowd near zero: each binade [2^e, 2^(e+1)) holds the same number of
# values, so the gaps double from one binade to the next.

# %%
small = ["float8_e4m3fn", "float8_e5m2", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn"]
pn.number_line(small, positive=True);

# %% [markdown]
# On a log2 axis the same values are evenly spaced within each binade; the width of the
# band is the dynamic range, the density is the precision. E5M2 trades one mantissa bit of
# E4M3 for twice as many binades.

# %%
pn.number_line(small, scale="log2");

# %% [markdown]
# ## Relative rounding error across the range
#
# Round a dense geometric sweep of inputs to each format (round to nearest even) and plot
# |q - x| / |x|. In the normal range the error stays below the unit roundoff u = 2^-p; in
# the subnormal range precision is lost one bit per binade until everything below half the
# smallest subnormal rounds to zero (relative error 1). Above the largest value E4M3 (no
# infinity) overflows to NaN under the IEEE rule, so those results are left out; we use
# `overflow="saturate"` here so the curve shows the clamping error instead.

# %%
import matplotlib.pyplot as plt

x = np.geomspace(2.0 ** -20, 2.0 ** 18, N_POINTS)
fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
for ax, name in zip(axes, ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn"]):
    q = lowprec.quantize(x, name, overflow="saturate")
    pn.relative_error(x, q, name, ax=ax, label=name)
    ax.set_title(name)
fig.tight_layout()

# %% [markdown]
# ## Overflow: an explicit choice
#
# What a value beyond the largest finite number becomes is a policy, not a fact of the
# format, and the ecosystems disagree (see the docs page on conversion compatibility). IEEE
# overflow (`overflow="inf"`, lowprec's default, ml_dtypes' behaviour) gives inf where the
# format has one and NaN in E4M3; `overflow="saturate"` (CUDA `__NV_SATFINITE`, torch's
# e4m3fn cast) clamps to the largest value.

# %%
xs = np.array([448, 464, 465, 1e4, np.inf, 57344, 61439, 61440, -1e9], dtype=np.float32)
print(f"{'x':>10s} {'e4m3 inf':>9s} {'e4m3 sat':>9s} {'e5m2 inf':>9s} {'e5m2 sat':>9s}")
cols = [lowprec.quantize(xs, f, overflow=o) for f in ("e4m3", "e5m2") for o in ("inf", "saturate")]
for i, v in enumerate(xs):
    print(f"{v:10.6g} " + " ".join(f"{c[i]:9.6g}" for c in cols))

# %% [markdown]
# 464 is the exact midpoint between 448 and the next (non-existent) E4M3 value 480: round to
# nearest even keeps it at 448; anything above overflows. For E5M2 the overflow threshold is
# the midpoint 61440 between 57344 and 65536.
#
# ## Underflow and flush-to-zero
#
# Near zero the subnormals fill the gap between 0 and the smallest normal with evenly spaced
# values. Hardware that flushes subnormals (`subnormals=False`) jumps straight from the
# smallest normal to zero.

# %%
f = lowprec.float8_e4m3fn
xs = np.array([2.0 ** -10, 1.5 * 2.0 ** -10, 2.0 ** -9, 3 * 2.0 ** -9, 2.0 ** -7, 2.0 ** -6])
print("x           with subnormals   flushed")
for v, a, b in zip(xs, lowprec.quantize(xs, f), lowprec.quantize(xs, f, subnormals=False)):
    print(f"{v:<10.6g}  {a:<16.6g}  {b:.6g}")

# %% [markdown]
# ## Every rounding mode on the same inputs
#
# FP4 (E2M1) has so few values that the rounding rule is visible by eye. Each panel rounds
# the same inputs between 0.9 and 3.2 into fp4; the horizontal lines are fp4's values and
# the black dots mark the exact ties (1.25, 1.75, 2.5), where the two round-to-nearest modes
# differ. Round to odd (`rto`) sends every inexact value to the neighbour with an odd last
# bit; stochastic rounding (`sr`) picks a neighbour at random with probability proportional
# to closeness, so its average (black line) follows the input.

# %%
x = np.linspace(0.9, 3.2, 461)
ties = np.flatnonzero(np.isin(x, [1.25, 1.75, 2.5]))
modes = ["rne", "rna", "rtz", "rup", "rdn", "rto"]
results = {m: lowprec.quantize(x, "fp4", rounding=m) for m in modes}
n_sr = 20 if SMALL else 200
results["sr (%d draws)" % n_sr] = np.stack(
    [lowprec.quantize(x, "fp4", rounding="sr", seed=s) for s in range(n_sr)])
pn.rounding_modes(x, results, grid=lowprec.float4_e2m1fn.values(), highlight=ties);

# %%
probe = np.array([1.1, 1.25, 1.4, 1.75, 2.5, 2.6, -1.25, -2.6])
print(f"{'x':>6s} " + " ".join(f"{m:>5s}" for m in modes))
for i, v in enumerate(probe):
    print(f"{v:6.2f} " + " ".join(f"{lowprec.quantize(probe, 'fp4', rounding=m)[i]:5.2g}"
                                  for m in modes))

# %% [markdown]
# ## Rounding once, from the exact value
#
# lowprec rounds float64 inputs from their own bits. Going through float32 first rounds
# twice and can land on the wrong side of a tie: 1 + 2^-8 + 2^-40 lies just above the midpoint
# of two bfloat16 neighbours, so it must round up; the float32 detour erases the 2^-40 and
# leaves an exact tie, which rounds to even (down).

# %%
v = 1 + 2.0 ** -8 + 2.0 ** -40
print("lowprec, from float64:     ", lowprec.quantize(v, "bf16"))
print("via float32 (double round):", lowprec.quantize(np.float32(v), "bf16"))
