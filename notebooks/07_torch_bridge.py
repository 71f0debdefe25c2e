# Source of 07_torch_bridge.ipynb (build with: python notebooks/build_notebooks.py)

# %% [markdown]
# # 7. A torch model on H100 fp8 numerics, on the CPU
#
# **What this shows.** `lowprec.torch.emulate` runs the GEMMs of an ordinary torch model
# (here `nn.Sequential` of `nn.Linear`) through `lowprec.matmul` with fp8 operands and the
# H100 tensor-core model, forward and backward, while the rest of the training step
# (losses, optimizer) stays torch's. The same MLP is trained on the digits three times: in
# fp32, under H100 fp8 emulation (E4M3 activations and weights, E5M2 gradients, per-tensor
# current scaling), and the same with the partial sums promoted to fp32 every 128
# products, as DeepSeek-V3 does on Hopper.
#
# **Why it matters.** Hopper's fp8 tensor cores keep their running sum with about 13
# significant bits (the `h100` model); a GEMM whose reduction is long (here the weight
# gradient, whose K is the batch size) loses low-order bits of every product it adds. Whether a model still
# trains, and how much promotion helps, can be seen before having the hardware. Needs
# PyTorch (`pip install 'lowprec[torch]'`).

# %%
import os

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import lowprec.torch as lpt
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False
    print("PyTorch is not installed: pip install 'lowprec[torch]' to run this notebook")

import matplotlib.pyplot as plt

from lowprec.datasets import load_digits

SMALL = os.environ.get("LOWPREC_NB_SMALL") == "1"  # CI runs the notebooks at small sizes
STEPS = 25 if SMALL else 150
BATCH = 256       # the weight-gradient GEMMs reduce over the batch: K = 256 > 128
HIDDEN = 256      # the second layer's data gradient reduces over K = 256 too
data = load_digits()

# %% [markdown]
# ## One training loop, three numerics
#
# `emulate(...)` returns an emulator; `with emu:` around the forward pass is enough (the
# backward GEMMs are emulated by the autograd functions the forward pass recorded).
# `module=net` names the statistics after the model's layers.

# %%
def make_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))


def train(emu=None):
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    g = torch.Generator().manual_seed(1)
    losses = []
    for step in range(STEPS):
        idx = torch.randint(0, len(x), (BATCH,), generator=g)
        opt.zero_grad()
        if emu is None:
            loss = F.cross_entropy(net(x[idx]), y[idx])
        else:
            with emu:
                loss = F.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        acc = (net(torch.from_numpy(data.x_test)).argmax(1).numpy() == data.y_test).mean()
    return net, losses, acc


if HAVE_TORCH:
    fp8 = dict(model="h100", inputs="hybrid", recipe="current")
    runs = {}
    emus = {"H100 fp8": None, "H100 fp8, promote every 128": None}
    runs["fp32"] = train()
    for label, promote in (("H100 fp8", None), ("H100 fp8, promote every 128", 128)):
        emus[label] = lpt.emulate(**fp8, promote_every=promote)
        runs[label] = train(emus[label])
    for label, (_, losses, acc) in runs.items():
        print(f"{label:30s} final loss {np.mean(losses[-5:]):.4f}   test accuracy {acc:.3f}")

# %%
if HAVE_TORCH:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, (_, losses, _) in runs.items():
        ax.plot(losses, label=label)
    ax.set(xlabel="step", ylabel="training loss", yscale="log",
           title="The same torch MLP: fp32 vs H100 fp8 emulation")
    ax.legend()
    plt.show()

# %% [markdown]
# ## Where the fp8 casts lose values
#
# Every operand cast reports to the emulator: per GEMM, the largest magnitude (amax) and the
# shares of values flushed to zero and saturated. With current scaling nothing saturates
# beyond the rounding of the amax itself; what vanishes below E5M2's subnormals are the
# smallest gradients.

# %%
if HAVE_TORCH:
    emu = emus["H100 fp8, promote every 128"]
    print(emu.report())
    st = emu.stats()
    labels, flushed = [], []
    for name, roles in st.items():
        for role, s in roles.items():
            labels.append(f"{name}\n{role}")
            flushed.append(100 * s["flushed_fraction"])
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(range(len(labels)), flushed)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set(ylabel="% flushed to zero", title="Operand casts per GEMM (E4M3 / E5M2)")
    plt.show()

# %% [markdown]
# At this size the three curves nearly coincide: E4M3 / E5M2 rounding (a few percent per
# value) is what the fp8 runs add, and it averages out; the GEMMs reduce over at most
# K = 256 products, too few for the H100's accumulator to matter much.
#
# ## When promotion matters: the accumulation alone
#
# To see the tensor core's accumulation by itself, take operands that are already E4M3
# values (so the casts are exact, no scaling) and compare `x @ w` under emulation with the
# exact product, for growing K. The H100 model keeps its running sum with about 13
# significant bits, so the error grows with K; promoting the partial sum to fp32 every 128
# products bounds it.

# %%
if HAVE_TORCH:
    import ml_dtypes

    rng = np.random.default_rng(0)
    Ks = [64, 256, 1024, 4096] if SMALL else [64, 128, 256, 512, 1024, 2048, 4096, 8192]
    errs = {"H100 fp8": [], "H100 fp8, promote every 128": []}
    for K in Ks:
        x = rng.random((16, K)).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
        w = rng.random((K, 16)).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
        exact = x.astype(np.float64) @ w.astype(np.float64)
        for label, promote in (("H100 fp8", None), ("H100 fp8, promote every 128", 128)):
            with lpt.emulate(model="h100", inputs="e4m3", promote_every=promote):
                y = torch.from_numpy(x) @ torch.from_numpy(w)
            errs[label].append(float(np.abs(y.numpy() - exact).max() / np.abs(exact).max()))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, e in errs.items():
        ax.loglog(Ks, e, "o-", label=label)
    ax.set(xlabel="K (products per output)", ylabel="max relative error",
           title="x @ w of E4M3 values on the H100 model")
    ax.legend()
    plt.show()
    for label, e in errs.items():
        print(f"{label:30s}", " ".join(f"{v:.1e}" for v in e))
