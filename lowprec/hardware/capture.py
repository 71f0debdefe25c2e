"""Capture conversions, GEMMs and a training step on a PyTorch device: ``lowprec capture``.

:func:`capture` runs a fixed, seeded suite on ``device`` and returns (and optionally saves)
a :class:`~lowprec.hardware.capture_format.Capture`; :mod:`lowprec.hardware.compare`
replays it in lowprec. The suite:

- conversions of one float32 sample (every special region of every target: ties between
  neighbours and the float32 values either side, the overflow edge, subnormals and the
  underflow tie, zeros, inf, NaN, plus random bit patterns) to fp16, bf16, e4m3fn and e5m2
  with ``Tensor.to``;
- GEMMs with fp16/bf16 inputs (``torch.matmul``; fp32 output through ``torch.mm(...,
  out_dtype=float32)`` and fp16 accumulation through
  ``torch.backends.cuda.matmul.allow_fp16_accumulation`` where torch has them) and with
  fp8 inputs through ``torch._scaled_mm``, on several shapes (K not a multiple of 32
  included) and two input distributions: "normal" (standard normal) and "wide" (exponents
  spread over 2^-6..2^6, which makes accumulation orders visible in the result);
- one training step of a two-layer MLP under ``torch.autocast(dtype=bfloat16)``: inputs,
  weights, activations, the gradients of every GEMM's output, the parameter gradients and
  the SGD-updated weights.

Anything the device cannot run is recorded with ``status: "skipped"`` and the reason.
torch is imported only when :func:`capture` runs.
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np
from tqdm import tqdm

from ..formats import get_format
from ..quantize import decode, encode
from .capture_format import CAPTURE_VERSION, Capture

__all__ = ["capture", "conversion_sample", "register", "CONVERT_TARGETS"]

CONVERT_TARGETS = ("float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")
# The suite's fp16/bf16 GEMM inputs, each with the accumulations requested besides torch's
# default ("fp16": torch.backends.cuda.matmul.allow_fp16_accumulation, for fp16 GEMMs)
_GEMM_INPUTS = {"float16": ("fp16",), "bfloat16": ()}

_SIZES = {
    "small": dict(sample=40_000, gemm=[(16, 37, 24), (32, 64, 16), (8, 300, 8)],
                  fp8=[(16, 48, 32), (32, 80, 16)], batch=16, mlp=(20, 32, 10)),
    "full": dict(sample=1_000_000, gemm=[(16, 37, 24), (64, 100, 48), (128, 1000, 64),
                                         (32, 4096, 32)],
                 fp8=[(16, 48, 32), (64, 112, 48), (128, 1008, 64)], batch=64,
                 mlp=(100, 256, 10)),
}


def _special_points(fmt) -> np.ndarray:
    """float64 points where a conversion into ``fmt`` is delicate (all exact in float32)."""
    f = get_format(fmt)
    out = [0.0, -0.0, np.inf, -np.inf, np.nan, f.max, f.min_normal, f.min_subnormal,
           f.min_subnormal / 2, f.min_subnormal * 0.75, f.min_subnormal / 4]
    ulp_max = 2.0 ** (f.emax - f.man_bits)
    out += [f.max + ulp_max / 2, f.max + ulp_max, f.max * 2, 2.0 ** (f.emax + 1)]
    return np.array(out)


def conversion_sample(n: int, seed: int = 0) -> np.ndarray:
    """A seeded float32 sample covering every special region of :data:`CONVERT_TARGETS`.

    Args:
        n: approximate number of random elements (the special regions are added in full
            for 8-bit targets and subsampled for 16-bit ones).
        seed: numpy seed.

    Returns:
        float32 array (duplicates possible, order shuffled).
    """
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, 2 ** 32, n // 4, dtype=np.uint64).astype(np.uint32).view(np.float32),
             (rng.standard_normal(n // 4)
              * 2.0 ** rng.integers(-30, 30, n // 4)).astype(np.float32)]
    for name in CONVERT_TARGETS:
        f = get_format(name)
        v = np.unique(f.values()[np.isfinite(f.values())])
        v = v[v >= 0]
        mids = (v[:-1] + v[1:]) / 2  # exact: one more bit than the format
        if v.size > 4096:  # 16-bit formats: every subnormal, the top binade, a random rest
            keep = np.zeros(mids.size, bool)
            keep[: 2 ** f.man_bits + 1] = True
            keep[-2 ** f.man_bits:] = True
            keep[rng.choice(mids.size, min(mids.size, n // 16), replace=False)] = True
            mids = mids[keep]
            v = v[np.concatenate([keep, [True]])]
        m32 = mids.astype(np.float32)
        with np.errstate(over="ignore"):
            sp = _special_points(f).astype(np.float32)
        pts = np.concatenate([v.astype(np.float32), m32, np.nextafter(m32, np.float32(np.inf)),
                              np.nextafter(m32, np.float32(0)),
                              sp])
        pts = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)),
                              np.nextafter(pts, np.float32(-np.inf))])
        parts += [pts, -pts]
    x = np.concatenate(parts).astype(np.float32)
    return x[rng.permutation(x.size)]


def _torch_codes(t, fmt: str) -> np.ndarray:
    """Codes of a torch tensor of a float dtype (moved to the CPU)."""
    import torch  # deferred: optional and heavy, imported only when a capture runs

    f = get_format(fmt)
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[f.code_dtype.itemsize]
    return t.detach().cpu().contiguous().view(view).numpy().view(f.code_dtype).copy()


def _torch_dtype(fmt: str):
    """torch's dtype of a format: torch names its float dtypes as lowprec does."""
    import torch  # deferred: optional and heavy, imported only when a capture runs

    return getattr(torch, get_format(fmt).name)


def _device_info(torch, device: str) -> dict:
    info = {"device": device, "torch": torch.__version__, "python": sys.version.split()[0],
            "platform": platform.platform(), "machine": platform.machine(),
            "cuda": getattr(torch.version, "cuda", None)}
    if device.startswith("cuda"):
        info["name"] = torch.cuda.get_device_name(device)
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        info["cudnn"] = torch.backends.cudnn.version()
    elif device == "mps":
        info["name"] = "Apple MPS"
    else:
        info["name"] = platform.processor() or platform.machine()
        try:
            info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except Exception:  # older torch
            pass
        info["threads"] = torch.get_num_threads()
        info["mkldnn"] = bool(torch.backends.mkldnn.is_available())
    return info


def _check_device(torch, device: str) -> str:
    if not isinstance(device, str):
        raise TypeError(f"capture: device must be a string, got {type(device).__name__}")
    dev = device.strip().lower()
    kind = dev.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"capture: device must be cpu, cuda or mps, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("capture: device 'cuda' requested but torch.cuda.is_available() is "
                         "False")
    if kind == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ValueError("capture: device 'mps' requested but MPS is not available")
    return dev


def _draw(rng, shape, fmt: str, dist: str) -> np.ndarray:
    """Seeded float32 values exactly representable in ``fmt``."""
    x = rng.standard_normal(shape)
    if dist == "wide":
        x = x * 2.0 ** rng.integers(-6, 7, shape)
    f = get_format(fmt)
    codes = encode(x.astype(np.float32), f, overflow="saturate")
    return decode(codes, f, dtype=np.float32)


def _skip(cap: Capture, spec: dict, err) -> None:
    msg = str(err).strip()
    first = msg.splitlines()[0] if msg else ""  # torch's dispatcher errors run for pages
    spec = dict(spec, status="skipped", reason=f"{type(err).__name__}: {first}"[:300])
    cap.add_op(spec)


def _capture_conversions(torch, cap: Capture, dev: str, n: int, seed: int) -> None:
    x = conversion_sample(n, seed)
    xt = torch.from_numpy(x).to(dev)
    for name in CONVERT_TARGETS:
        spec = {"id": f"convert/{name}", "kind": "convert", "src": "float32", "dst": name,
                "torch_op": f"Tensor.to(torch.{name})", "seed": seed}
        try:
            y = xt.to(_torch_dtype(name))
            cap.add_op(spec, {"x": (x.view(np.uint32), "float32"),
                              "y": (_torch_codes(y, name), name)})
        except Exception as e:  # the device lacks this dtype (e.g. fp8 on MPS)
            _skip(cap, spec, e)


def _gemm_specs(sizes: dict) -> list:
    specs = []
    for fmt, extra_acc in _GEMM_INPUTS.items():
        for (M, K, N) in sizes["gemm"]:
            for dist in ("normal", "wide"):
                base = {"kind": "gemm", "inputs": fmt, "M": M, "K": K, "N": N, "dist": dist}
                tag = f"{fmt}/{M}x{K}x{N}/{dist}"
                specs.append(dict(base, id=f"matmul/{tag}", torch_op="torch.matmul",
                                  out=fmt, acc_request="default"))
                specs.append(dict(base, id=f"mm_out_fp32/{tag}",
                                  torch_op="torch.mm(out_dtype=float32)", out="float32",
                                  acc_request="default"))
                for acc in extra_acc:
                    specs.append(dict(base, id=f"matmul_{acc}acc/{tag}",
                                      torch_op="torch.matmul", out=fmt, acc_request=acc))
    for fa, fb in (("float8_e4m3fn", "float8_e4m3fn"), ("float8_e5m2", "float8_e4m3fn")):
        for (M, K, N) in sizes["fp8"]:
            for dist in ("normal", "wide"):
                for out, sa, sb in (("float32", 1.0, 1.0), ("bfloat16", 0.375, 2.5)):
                    specs.append({"id": f"scaled_mm/{fa}x{fb}/{M}x{K}x{N}/{dist}/{out}",
                                  "kind": "gemm", "inputs": fa, "inputs_b": fb, "M": M, "K": K,
                                  "N": N, "dist": dist, "torch_op": "torch._scaled_mm",
                                  "out": out, "acc_request": "default", "scale_a": sa,
                                  "scale_b": sb})
    return specs


def _run_gemm(torch, dev: str, spec: dict, a: np.ndarray, b: np.ndarray):
    ta = torch.from_numpy(a).to(dev)
    tb = torch.from_numpy(b).to(dev)
    if spec["torch_op"] == "torch._scaled_mm":
        ta = ta.to(_torch_dtype(spec["inputs"]))
        # _scaled_mm wants b column-major
        tb = tb.t().contiguous().to(_torch_dtype(spec["inputs_b"])).t()
        sa = torch.tensor(spec["scale_a"], dtype=torch.float32, device=dev)
        sb = torch.tensor(spec["scale_b"], dtype=torch.float32, device=dev)
        return torch._scaled_mm(ta, tb, scale_a=sa, scale_b=sb, out_dtype=_torch_dtype(spec["out"]))
    dt = _torch_dtype(spec["inputs"])
    ta, tb = ta.to(dt), tb.to(dt)
    if spec["torch_op"] == "torch.mm(out_dtype=float32)":
        return torch.mm(ta, tb, out_dtype=torch.float32)
    if spec["acc_request"] == "fp16":
        flags = torch.backends.cuda.matmul
        if not dev.startswith("cuda") or not hasattr(flags, "allow_fp16_accumulation"):
            raise RuntimeError("fp16 accumulation is only selectable on CUDA "
                               "(torch.backends.cuda.matmul.allow_fp16_accumulation)")
        old = flags.allow_fp16_accumulation
        flags.allow_fp16_accumulation = True
        try:
            r = torch.matmul(ta, tb)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            return r
        finally:
            flags.allow_fp16_accumulation = old
    return torch.matmul(ta, tb)


def _capture_gemms(torch, cap: Capture, dev: str, sizes: dict, seed: int, progress) -> None:
    specs = _gemm_specs(sizes)
    for i, spec in enumerate(progress(specs, desc="gemms")):
        spec = dict(spec, seed=seed + 1000 + i)
        rng = np.random.default_rng(spec["seed"])
        fa, fb = spec["inputs"], spec.get("inputs_b", spec["inputs"])
        a = _draw(rng, (spec["M"], spec["K"]), fa, spec["dist"])
        b = _draw(rng, (spec["K"], spec["N"]), fb, spec["dist"])
        try:
            r = _run_gemm(torch, dev, spec, a, b)
        except Exception as e:
            _skip(cap, spec, e)
            continue
        f_a, f_b = get_format(fa), get_format(fb)
        cap.add_op(spec, {"a": (encode(a, f_a), fa), "b": (encode(b, f_b), fb),
                          "d": (_torch_codes(r, spec["out"]), spec["out"])})


def _capture_train(torch, cap: Capture, dev: str, sizes: dict, seed: int) -> None:
    nin, nhid, nout = sizes["mlp"]
    B = sizes["batch"]
    lr = 0.1  # not a power of two: a fused update differs from multiply-then-add
    spec = {"id": "train/mlp", "kind": "train", "autocast": "bfloat16", "batch": B,
            "layers": [nin, nhid, nout], "loss": "cross_entropy (fp32 logits, mean)",
            "optimizer": f"SGD lr={lr} (foreach=False)", "lr": lr, "seed": seed + 7}
    try:
        gen = torch.Generator().manual_seed(seed + 7)
        x = torch.randn(B, nin, generator=gen)
        y = torch.randint(0, nout, (B,), generator=gen)
        l1 = torch.nn.Linear(nin, nhid)
        l2 = torch.nn.Linear(nhid, nout)
        with torch.no_grad():
            for p in (*l1.parameters(), *l2.parameters()):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        w0 = {k: v.detach().clone() for k, v in
              (("w1", l1.weight), ("b1", l1.bias), ("w2", l2.weight), ("b2", l2.bias))}
        l1, l2 = l1.to(dev), l2.to(dev)
        xd, yd = x.to(dev), y.to(dev)
        dev_type = dev.split(":")[0]
        with torch.autocast(device_type=dev_type, dtype=torch.bfloat16):
            h = l1(xd)
            a = torch.relu(h)
            z = l2(a)
        for t in (h, a, z):
            t.retain_grad()
        loss = torch.nn.functional.cross_entropy(z.float(), yd)
        loss.backward()
        opt = torch.optim.SGD([*l1.parameters(), *l2.parameters()], lr=lr, foreach=False)
        grads = {"gw1": l1.weight.grad, "gb1": l1.bias.grad, "gw2": l2.weight.grad,
                 "gb2": l2.bias.grad}
        grads = {k: v.detach().clone() for k, v in grads.items()}
        opt.step()
    except Exception as e:
        _skip(cap, spec, e)
        return
    f32, bf = "float32", "bfloat16"
    t = {"x": (_torch_codes(x, f32), f32), "y": (y.numpy().astype(np.int64), "int64")}
    t.update({k: (_torch_codes(v, f32), f32) for k, v in w0.items()})
    for k, v in (("h", h), ("a", a), ("z", z)):
        t[k] = (_torch_codes(v, bf), bf)
        t["g" + k] = (_torch_codes(v.grad, bf), bf)
    t["loss"] = (_torch_codes(loss.reshape(1), f32), f32)
    t.update({k: (_torch_codes(v, f32), f32) for k, v in grads.items()})
    for k, p in (("w1_new", l1.weight), ("b1_new", l1.bias), ("w2_new", l2.weight),
                 ("b2_new", l2.bias)):
        t[k] = (_torch_codes(p, f32), f32)
    spec["dtypes"] = {"h": str(h.dtype), "z": str(z.dtype), "gw1": str(grads["gw1"].dtype)}
    cap.add_op(spec, t)


def capture(device: str = "cpu", out=None, seed: int = 0, sizes: str = "small", *,
            conversions: bool = True, gemms: bool = True, train: bool = True,
            progress: bool = False) -> Capture:
    """Run the capture suite on a PyTorch device.

    Args:
        device: "cpu", "cuda" (or "cuda:N") or "mps".
        out: path to save the capture to (``.npz``), or None to only return it.
        seed: base seed of every input.
        sizes: "small" (seconds on a CPU) or "full" (larger sample and GEMMs).
        conversions, gemms, train: which parts of the suite to run.
        progress: show a tqdm progress bar on stderr.

    Returns:
        The :class:`~lowprec.hardware.capture_format.Capture` (``.path`` set when saved).

    Raises:
        ImportError: if PyTorch is not installed.
        ValueError: unknown device or sizes, or a device torch cannot use here.
        TypeError: non-string device, non-int seed.
    """
    try:
        import torch  # deferred: optional and heavy, imported only when a capture runs
    except ImportError as e:
        raise ImportError("lowprec capture needs PyTorch (pip install torch)") from e
    if sizes not in _SIZES:
        raise ValueError(f"capture: sizes must be one of {sorted(_SIZES)}, got {sizes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"capture: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    dev = _check_device(torch, device)
    sz = _SIZES[sizes]
    meta = {"version": CAPTURE_VERSION, "tool": "lowprec capture", "seed": seed,
            "sizes": sizes, "device": _device_info(torch, dev), "ops": []}
    cap = Capture(meta)

    def bar(items, desc):
        if not progress:
            return items
        return tqdm(items, desc=desc, file=sys.stderr, leave=False)

    if conversions:
        _capture_conversions(torch, cap, dev, sz["sample"], seed)
    if gemms:
        _capture_gemms(torch, cap, dev, sz, seed, bar)
    if train:
        _capture_train(torch, cap, dev, sz, seed)
    if out is not None:
        cap.save(out)
    return cap


def _main(args) -> int:
    try:
        cap = capture(args.device, args.out, seed=args.seed, sizes=args.sizes, progress=True)
    except ImportError as e:
        print(f"lowprec capture: error: {e}", file=sys.stderr)
        return 2
    ok = sum(o["status"] == "ok" for o in cap.ops)
    print(f"captured {ok} ops on {cap.meta['device']['device']} "
          f"({cap.meta['device'].get('name', '')}) into {cap.path}")
    for o in cap.ops:
        if o["status"] != "ok":
            print(f"  skipped {o['id']}: {o['reason']}")
    return 0


def register(sub, name: str, help: str) -> argparse.ArgumentParser:
    """Add the ``capture`` subcommand (``help``: its one-line help, from
    :data:`lowprec.cli.COMMANDS`)."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    p.add_argument("--out", required=True, help="capture file to write (.npz)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the inputs")
    p.add_argument("--sizes", choices=sorted(_SIZES), default="small",
                   help="suite size (default small)")
    p.set_defaults(func=_main)
    return p
