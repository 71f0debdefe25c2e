#!/usr/bin/env python3
"""lowprec_capture.py: record what a PyTorch device computes in low precision, for lowprec.

A standalone script: Python >= 3.9, numpy and PyTorch; it imports nothing of lowprec. Copy
it to the machine with the GPU (``lowprec capture --write-script lowprec_capture.py`` writes
it) and run::

    python lowprec_capture.py --device cuda --out cap.npz

then, wherever lowprec is installed::

    lowprec compare cap.npz          # which lowprec model reproduces each op, bit for bit
    lowprec fit cap.npz              # block-FMA parameters for the GEMMs no model explains

The suite (fixed and seeded; ``--sizes full`` is the default on CUDA, ``small`` elsewhere):

- conversions of one float32 sample covering every special region (ties, neighbours of
  ties, the overflow edge, subnormals and the underflow tie, zeros, inf, NaN, random bit
  patterns) to fp16, bf16, fp8 e4m3fn and e5m2 with ``Tensor.to``;
- GEMMs with long K (32, 128, 1024, 4096 in ``full``; K = 37 too, not a multiple of any
  block) and two input distributions ("normal"; "wide": exponents spread over 2^-6..2^6,
  which makes accumulation orders visible):
  fp16 and bf16 through ``torch.matmul`` (cuBLAS) with torch's default settings, with
  reduced-precision split-K reductions switched off (``matmul_strict``), fp16 with fp16
  accumulation (``matmul_fp16acc``, ``allow_fp16_accumulation``), and with an fp32 output
  (``torch.mm(out_dtype=float32)``); fp32 with TF32 off (``matmul``) and on
  (``matmul_tf32``); fp8 through ``torch._scaled_mm`` with per-tensor scales, fp32 and
  bf16 outputs, ``use_fast_accum`` False and True (``scaled_mm_fastacc``);
- a few SGD steps of a two-layer MLP under ``torch.autocast(dtype=bfloat16)``: per step
  the inputs, weights, activations, the gradients of every GEMM's output, the parameter
  gradients and the updated weights.

Anything the device or this torch cannot run is recorded with ``status: "skipped"`` and the
reason (the CUDA settings are skipped on other devices: they would repeat the default op).

The file (format "lowprec-capture", version 2) is one ``.npz`` archive without pickles:

- ``meta.json``: uint8 array of UTF-8 JSON: ``{"format": "lowprec-capture", "version": 2,
  "tool", "script_version", "seed", "sizes", "device": {...}, "env": {...}, "ops": [...]}``.
  Each op has ``id`` (unique), ``kind`` ("convert", "gemm", "train"), ``status`` ("ok", or
  "skipped" with ``reason``), its parameters, and ``arrays``: role -> ``{"key": npz member,
  "format": name}``. Format names are torch's dtype names ("float16", "bfloat16",
  "float8_e4m3fn", "float8_e5m2", "float32"), which are lowprec's, plus "int64" (labels).
- one member per tensor: its codes (uint8 / uint16 / uint32 of the format's width), so that
  NaN payloads and signed zeros survive; int64 labels as int64.

Fields per kind. convert: ``src``, ``dst``, arrays ``x`` (float32) and ``y`` (``dst``).
gemm: ``inputs`` (and ``inputs_b`` when b differs), ``out``, ``M``, ``K``, ``N``, ``dist``,
``torch_op``, ``acc_request`` ("default", "strict", "fp16", "tf32" or "fast-accum"),
``seed``, ``flags`` (CUDA: every ``torch.backends.cuda.matmul`` setting in force), for
``_scaled_mm`` ``scale_a``, ``scale_b``, ``use_fast_accum``; arrays ``a`` (M x K), ``b``
(K x N), ``d`` (M x N). train: ``autocast``, ``batch``, ``layers``, ``lr``, ``step``,
``steps``; arrays x, y, w1, b1, w2, b2 (weights as torch stores them, out x in), h, a, z
(h = x W1^T + b1, a = relu(h), z = a W2^T + b2, in the autocast format), gh, ga, gz (their
gradients), loss, gw1, gb1, gw2, gb2, w1_new, b1_new, w2_new, b2_new.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

FILE_FORMAT = "lowprec-capture"
FORMAT_VERSION = 2
SCRIPT_VERSION = "2026.05"
META_KEY = "meta.json"

#: The conversion targets (torch dtype names).
CONVERT_TARGETS = ("float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")

SIZES = {
    "small": dict(sample=40_000, gemm=[(16, 37, 24), (32, 64, 16), (8, 300, 8)],
                  fp32=[(16, 37, 24), (8, 300, 8)], fp8=[(16, 48, 32), (32, 80, 16)],
                  batch=16, mlp=(20, 32, 10), steps=2),
    "full": dict(sample=1_000_000,
                 gemm=[(64, 37, 48), (64, 32, 64), (64, 128, 64), (64, 1024, 64),
                       (32, 4096, 32)],
                 fp32=[(64, 37, 48), (64, 128, 64), (64, 1024, 64), (32, 4096, 32)],
                 fp8=[(64, 32, 64), (64, 128, 64), (64, 1024, 64), (32, 4096, 32)],
                 batch=64, mlp=(100, 256, 10), steps=3),
}

# The torch.backends.cuda.matmul settings recorded with every CUDA GEMM (those this torch has)
_MATMUL_FLAGS = ("allow_tf32", "allow_fp16_reduced_precision_reduction",
                 "allow_bf16_reduced_precision_reduction", "allow_fp16_accumulation")
# Environment variables that change what cuBLAS computes, recorded when set
_ENV_VARS = ("NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
             "CUBLAS_WORKSPACE_CONFIG", "CUBLASLT_WORKSPACE_SIZE", "CUDA_VISIBLE_DEVICES",
             "TORCH_BLAS_PREFER_CUBLASLT", "TORCH_BLAS_PREFER_HIPBLASLT")
# fp16/bf16 GEMM variants: (id prefix, torch op, acc_request, CUDA settings, input formats)
_HALF_VARIANTS = (
    ("matmul", "torch.matmul", "default", {}, ("float16", "bfloat16")),
    ("matmul_strict", "torch.matmul", "strict",
     {"allow_fp16_reduced_precision_reduction": False}, ("float16",)),
    ("matmul_strict", "torch.matmul", "strict",
     {"allow_bf16_reduced_precision_reduction": False}, ("bfloat16",)),
    ("matmul_fp16acc", "torch.matmul", "fp16", {"allow_fp16_accumulation": True},
     ("float16",)),
    ("mm_out_fp32", "torch.mm(out_dtype=float32)", "default", {}, ("float16", "bfloat16")),
)
# fp32 GEMM variants: TF32 off (pinned, whatever the user's default) and on
_FP32_VARIANTS = (("matmul", "default", {"allow_tf32": False}),
                  ("matmul_tf32", "tf32", {"allow_tf32": True}))
# _scaled_mm operand pairs and outputs (out, scale_a, scale_b, id suffix)
_FP8_PAIRS = (("float8_e4m3fn", "float8_e4m3fn"), ("float8_e5m2", "float8_e4m3fn"))
_FP8_OUTS = (("float32", 1.0, 1.0, "float32"), ("float32", 0.375, 2.5, "float32_scaled"),
             ("bfloat16", 0.375, 2.5, "bfloat16"))

Progress = Callable[[Iterable, str], Iterable]


def _torch():
    """torch, imported when a capture runs (importing this module stays cheap)."""
    try:
        import torch  # deferred: heavy, and only a capture needs it
    except ImportError as e:
        raise ImportError("the lowprec capture needs PyTorch (pip install torch)") from e
    return torch


# --- codes and formats ------------------------------------------------------------------

def dtype_name(dtype) -> str:
    """The name of a torch dtype ("float16", "float8_e4m3fn"), which is lowprec's."""
    return str(dtype).split(".")[-1]


def codes(t) -> np.ndarray:
    """The codes of a torch float tensor (copied to the host): unsigned ints of its width."""
    torch = _torch()
    t = t.detach().cpu().contiguous()
    n = t.element_size()
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[n]
    return t.view(view).numpy().view({1: np.uint8, 2: np.uint16, 4: np.uint32}[n]).copy()


def all_values(dtype) -> np.ndarray:
    """float64 values of every code of an 8- or 16-bit torch float dtype (NaNs included)."""
    torch = _torch()
    bits = torch.finfo(dtype).bits
    raw = np.arange(2 ** bits, dtype={8: np.uint8, 16: np.uint16}[bits])
    t = torch.from_numpy(raw.view({8: np.uint8, 16: np.int16}[bits]))
    with np.errstate(invalid="ignore"):  # signalling NaNs
        return t.view(dtype).float().numpy().astype(np.float64)


def _special_points(dtype, min_subnormal: float) -> np.ndarray:
    """float64 points where a conversion into ``dtype`` is delicate (all exact in float32)."""
    torch = _torch()
    fi = torch.finfo(dtype)
    fmax, man_bits = float(fi.max), int(round(-np.log2(float(fi.eps))))
    emax = int(np.floor(np.log2(fmax)))
    ulp_max = 2.0 ** (emax - man_bits)
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, fmax, float(fi.tiny), min_subnormal,
                     min_subnormal / 2, min_subnormal * 0.75, min_subnormal / 4,
                     fmax + ulp_max / 2, fmax + ulp_max, fmax * 2, 2.0 ** (emax + 1)])


def conversion_sample(n: int, seed: int = 0) -> np.ndarray:
    """A seeded float32 sample covering every special region of :data:`CONVERT_TARGETS`.

    Args:
        n: approximate number of random elements (the special regions are added in full
            for 8-bit targets and subsampled for 16-bit ones).
        seed: numpy seed.

    Returns:
        float32 array (duplicates possible, order shuffled).
    """
    torch = _torch()
    rng = np.random.default_rng(seed)
    parts = [rng.integers(0, 2 ** 32, n // 4, dtype=np.uint64).astype(np.uint32).view(np.float32),
             (rng.standard_normal(n // 4)
              * 2.0 ** rng.integers(-30, 30, n // 4)).astype(np.float32)]
    for name in CONVERT_TARGETS:
        dtype = getattr(torch, name, None)
        if dtype is None:  # an older torch without fp8: its conversion op is skipped
            continue
        vals = all_values(dtype)
        v = np.unique(vals[np.isfinite(vals)])
        v = v[v >= 0]
        mids = (v[:-1] + v[1:]) / 2  # exact: one more bit than the format
        if v.size > 4096:  # 16-bit formats: every subnormal, the top binade, a random rest
            man_bits = int(round(-np.log2(float(torch.finfo(dtype).eps))))
            keep = np.zeros(mids.size, bool)
            keep[: 2 ** man_bits + 1] = True
            keep[-2 ** man_bits:] = True
            keep[rng.choice(mids.size, min(mids.size, n // 16), replace=False)] = True
            mids = mids[keep]
            v = v[np.concatenate([keep, [True]])]
        m32 = mids.astype(np.float32)
        with np.errstate(over="ignore"):
            sp = _special_points(dtype, float(v[v > 0].min())).astype(np.float32)
        pts = np.concatenate([v.astype(np.float32), m32, np.nextafter(m32, np.float32(np.inf)),
                              np.nextafter(m32, np.float32(0)), sp])
        pts = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)),
                              np.nextafter(pts, np.float32(-np.inf))])
        parts += [pts, -pts]
    x = np.concatenate(parts).astype(np.float32)
    return x[rng.permutation(x.size)]


def draw(rng: np.random.Generator, shape: Tuple[int, int], dtype, dist: str):
    """A seeded CPU tensor of ``dtype`` (values drawn in float32, saturated to the format's
    range, rounded to nearest even by torch's cast)."""
    torch = _torch()
    x = rng.standard_normal(shape)
    if dist == "wide":
        x = x * 2.0 ** rng.integers(-6, 7, shape)
    top = float(torch.finfo(dtype).max)
    return torch.from_numpy(np.clip(x.astype(np.float32), -top, top)).to(dtype)


# --- the file ------------------------------------------------------------------------------

class Recorder:
    """The capture being written: metadata, op records and their code arrays."""

    def __init__(self, meta: dict):
        self.meta = dict(meta, ops=[])
        self.arrays: Dict[str, np.ndarray] = {}

    def add(self, spec: dict, tensors: Optional[dict] = None) -> dict:
        """Record an op; ``tensors``: role -> (codes, format name)."""
        if any(o["id"] == spec["id"] for o in self.meta["ops"]):
            raise ValueError(f"capture: duplicate op id {spec['id']!r}")
        spec = dict(spec)
        spec.setdefault("status", "ok")
        spec["arrays"] = {}
        for role, (arr, fmt) in (tensors or {}).items():
            key = f"{spec['id']}/{role}"
            self.arrays[key] = np.ascontiguousarray(arr)
            spec["arrays"][role] = {"key": key, "format": fmt}
        self.meta["ops"].append(spec)
        return spec

    def skip(self, spec: dict, why) -> None:
        """Record an op the device did not run, with the reason (an exception or text)."""
        if isinstance(why, BaseException):
            msg = str(why).strip()
            first = msg.splitlines()[0] if msg else ""  # torch's dispatcher errors run for pages
            why = f"{type(why).__name__}: {first}"
        self.add(dict(spec, status="skipped", reason=str(why)[:300]))


def save(path: str, meta: dict, arrays: Dict[str, np.ndarray]) -> str:
    """Write a capture file (``.npz`` appended by numpy if missing); returns its path."""
    blob = json.dumps(meta, indent=1).encode("utf-8")
    path = str(path)
    np.savez_compressed(path, **{META_KEY: np.frombuffer(blob, np.uint8)}, **arrays)
    return path if path.endswith(".npz") else path + ".npz"


# --- the device ----------------------------------------------------------------------------

def check_device(device: str) -> str:
    """The normalised device string.

    Raises:
        TypeError: for a device that is not a string.
        ValueError: for a device other than cpu, cuda[:N] or mps, or one torch cannot use.
    """
    torch = _torch()
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


def _loaded_library(stem: str) -> Optional[str]:
    """Path of a shared library this process has loaded whose file name starts with
    ``stem`` (Linux: /proc/self/maps), or None."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if os.path.basename(path).startswith(stem + ".so"):
                    return path
    except OSError:
        pass
    return None


def _cublas_versions() -> dict:
    """cuBLAS and cuBLASLt versions of the libraries torch loaded (after a CUDA GEMM)."""
    out: dict = {}
    try:
        path = _loaded_library("libcublas")
        if path is None:
            out["cublas"] = None
            out["cublas_note"] = "libcublas not found in /proc/self/maps"
        else:
            lib = ctypes.CDLL(path)
            v = []
            for prop in (0, 1, 2):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
                x = ctypes.c_int(-1)
                if lib.cublasGetProperty(prop, ctypes.byref(x)) != 0:
                    raise RuntimeError(f"cublasGetProperty({prop}) failed")
                v.append(x.value)
            out["cublas"] = ".".join(map(str, v))
            out["cublas_path"] = path
        lt = _loaded_library("libcublasLt")
        if lt is not None:
            f = ctypes.CDLL(lt).cublasLtGetVersion
            f.restype = ctypes.c_size_t
            out["cublaslt"] = int(f())
    except Exception as e:  # a platform without /proc or these symbols: say so, go on
        out["cublas_error"] = f"{type(e).__name__}: {e}"[:200]
    return out


def device_info(device: str) -> dict:
    """What the device and the software stack are (recorded in the file)."""
    torch = _torch()
    info = {"device": device, "torch": torch.__version__, "python": sys.version.split()[0],
            "numpy": np.__version__, "platform": platform.platform(),
            "machine": platform.machine(), "cuda": getattr(torch.version, "cuda", None),
            "hip": getattr(torch.version, "hip", None)}
    if device.startswith("cuda"):
        info["name"] = torch.cuda.get_device_name(device)
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        props = torch.cuda.get_device_properties(device)
        info["sm_count"] = getattr(props, "multi_processor_count", None)
        info["cudnn"] = torch.backends.cudnn.version()
        info["matmul_flags_default"] = matmul_flags()
        # cuBLAS is loaded lazily: one GEMM first
        a = torch.ones(8, 8, device=device, dtype=torch.float16)
        (a @ a).cpu()
        info.update(_cublas_versions())
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


def matmul_flags() -> dict:
    """The ``torch.backends.cuda.matmul`` settings in force (those this torch has)."""
    m = _torch().backends.cuda.matmul
    out = {}
    for k in _MATMUL_FLAGS:
        try:
            out[k] = bool(getattr(m, k))
        except (AttributeError, RuntimeError):
            pass
    return out


@contextlib.contextmanager
def cuda_matmul_settings(settings: dict):
    """Set ``torch.backends.cuda.matmul`` attributes inside the block, restore them after.

    Raises:
        RuntimeError: when this torch lacks one of them.
    """
    m = _torch().backends.cuda.matmul
    old = {}
    try:
        for k, v in settings.items():
            try:
                old[k] = getattr(m, k)
            except AttributeError:
                raise RuntimeError(f"this torch has no torch.backends.cuda.matmul.{k}") from None
            setattr(m, k, v)
        yield
    finally:
        for k, v in old.items():
            setattr(m, k, v)


# --- the suite -----------------------------------------------------------------------------

def _capture_conversions(rec: Recorder, dev: str, n: int, seed: int) -> None:
    torch = _torch()
    x = conversion_sample(n, seed)
    xt = torch.from_numpy(x).to(dev)
    for name in CONVERT_TARGETS:
        spec = {"id": f"convert/{name}", "kind": "convert", "src": "float32", "dst": name,
                "torch_op": f"Tensor.to(torch.{name})", "seed": seed}
        try:
            y = xt.to(getattr(torch, name))
            rec.add(spec, {"x": (x.view(np.uint32), "float32"), "y": (codes(y), name)})
        except Exception as e:  # the device lacks this dtype (e.g. fp8 on MPS)
            rec.skip(spec, e)


def gemm_specs(sizes: dict) -> List[dict]:
    """Every GEMM of the suite (without seeds)."""
    specs = []
    for prefix, op, acc, flags, fmts in _HALF_VARIANTS:
        for fmt in fmts:
            out = "float32" if "out_dtype" in op else fmt
            for (M, K, N) in sizes["gemm"]:
                for dist in ("normal", "wide"):
                    specs.append({"id": f"{prefix}/{fmt}/{M}x{K}x{N}/{dist}", "kind": "gemm",
                                  "inputs": fmt, "M": M, "K": K, "N": N, "dist": dist,
                                  "torch_op": op, "out": out, "acc_request": acc,
                                  "settings": flags})
    for prefix, acc, flags in _FP32_VARIANTS:
        for (M, K, N) in sizes["fp32"]:
            for dist in ("normal", "wide"):
                specs.append({"id": f"{prefix}/float32/{M}x{K}x{N}/{dist}", "kind": "gemm",
                              "inputs": "float32", "M": M, "K": K, "N": N, "dist": dist,
                              "torch_op": "torch.matmul", "out": "float32", "acc_request": acc,
                              "settings": flags})
    for fast in (False, True):
        for fa, fb in _FP8_PAIRS:
            for (M, K, N) in sizes["fp8"]:
                for dist in ("normal", "wide"):
                    for out, sa, sb, tag in _FP8_OUTS:
                        name = "scaled_mm_fastacc" if fast else "scaled_mm"
                        specs.append({"id": f"{name}/{fa}x{fb}/{M}x{K}x{N}/{dist}/{tag}",
                                      "kind": "gemm", "inputs": fa, "inputs_b": fb, "M": M,
                                      "K": K, "N": N, "dist": dist,
                                      "torch_op": "torch._scaled_mm", "out": out,
                                      "acc_request": "fast-accum" if fast else "default",
                                      "scale_a": sa, "scale_b": sb, "use_fast_accum": fast,
                                      "settings": {}})
    return specs


def _run_gemm(dev: str, spec: dict, ta, tb):
    torch = _torch()
    ta, tb = ta.to(dev), tb.to(dev)
    if spec["torch_op"] == "torch._scaled_mm":
        tb = tb.t().contiguous().t()  # _scaled_mm wants b column-major
        sa = torch.tensor(spec["scale_a"], dtype=torch.float32, device=dev)
        sb = torch.tensor(spec["scale_b"], dtype=torch.float32, device=dev)
        return torch._scaled_mm(ta, tb, scale_a=sa, scale_b=sb,
                                out_dtype=getattr(torch, spec["out"]),
                                use_fast_accum=spec["use_fast_accum"])
    if spec["torch_op"] == "torch.mm(out_dtype=float32)":
        return torch.mm(ta, tb, out_dtype=torch.float32)
    return torch.matmul(ta, tb)


def _capture_gemms(rec: Recorder, dev: str, sizes: dict, seed: int, progress: Progress) -> None:
    torch = _torch()
    cuda = dev.startswith("cuda")
    for i, spec in enumerate(progress(gemm_specs(sizes), "gemms")):
        spec = dict(spec, seed=seed + 1000 + i)
        settings = spec.pop("settings")
        if spec["acc_request"] in ("strict", "fp16", "tf32") and not cuda:
            rec.skip(spec, f"{', '.join(settings)} is a CUDA setting "
                           f"(torch.backends.cuda.matmul); on {dev} this op would repeat the "
                           f"default one")
            continue
        rng = np.random.default_rng(spec["seed"])
        fa, fb = spec["inputs"], spec.get("inputs_b", spec["inputs"])
        try:  # an older torch may lack a dtype (fp8) or an op: the op is skipped
            ta = draw(rng, (spec["M"], spec["K"]), getattr(torch, fa), spec["dist"])
            tb = draw(rng, (spec["K"], spec["N"]), getattr(torch, fb), spec["dist"])
            if cuda:
                with cuda_matmul_settings(settings):
                    spec["flags"] = matmul_flags()
                    r = _run_gemm(dev, spec, ta, tb)
                    torch.cuda.synchronize()
            else:
                r = _run_gemm(dev, spec, ta, tb)
        except Exception as e:
            rec.skip(spec, e)
            continue
        rec.add(spec, {"a": (codes(ta), fa), "b": (codes(tb), fb),
                       "d": (codes(r), dtype_name(r.dtype))})


def _capture_train(rec: Recorder, dev: str, sizes: dict, seed: int) -> None:
    torch = _torch()
    nin, nhid, nout = sizes["mlp"]
    B, steps = sizes["batch"], sizes["steps"]
    lr = 0.1  # not a power of two: a fused update differs from multiply-then-add
    base = {"kind": "train", "autocast": "bfloat16", "batch": B, "layers": [nin, nhid, nout],
            "loss": "cross_entropy (fp32 logits, mean)",
            "optimizer": f"SGD lr={lr} (foreach=False)", "lr": lr, "seed": seed + 7,
            "steps": steps}
    specs = [dict(base, id=f"train/mlp/step{s}", step=s) for s in range(steps)]
    f32, low = "float32", "bfloat16"
    try:
        gen = torch.Generator().manual_seed(seed + 7)
        l1 = torch.nn.Linear(nin, nhid)
        l2 = torch.nn.Linear(nhid, nout)
        with torch.no_grad():
            for p in (*l1.parameters(), *l2.parameters()):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        l1, l2 = l1.to(dev), l2.to(dev)
        params = {"w1": l1.weight, "b1": l1.bias, "w2": l2.weight, "b2": l2.bias}
        opt = torch.optim.SGD(list(params.values()), lr=lr, foreach=False)
        dev_type = dev.split(":")[0]
        done = []
        for spec in specs:
            x = torch.randn(B, nin, generator=gen)
            y = torch.randint(0, nout, (B,), generator=gen)
            w0 = {k: codes(v) for k, v in params.items()}
            with torch.autocast(device_type=dev_type, dtype=torch.bfloat16):
                h = l1(x.to(dev))
                a = torch.relu(h)
                z = l2(a)
            for t in (h, a, z):
                t.retain_grad()
            loss = torch.nn.functional.cross_entropy(z.float(), y.to(dev))
            opt.zero_grad()
            loss.backward()
            t = {"x": (codes(x), f32), "y": (y.numpy().astype(np.int64), "int64")}
            t.update({k: (c, f32) for k, c in w0.items()})
            for k, v in (("h", h), ("a", a), ("z", z)):
                t[k] = (codes(v), dtype_name(v.dtype))
                t["g" + k] = (codes(v.grad), dtype_name(v.grad.dtype))
            t["loss"] = (codes(loss.reshape(1)), dtype_name(loss.dtype))
            t.update({"g" + k: (codes(p.grad), dtype_name(p.grad.dtype))
                      for k, p in params.items()})
            opt.step()
            t.update({k + "_new": (codes(p), dtype_name(p.dtype)) for k, p in params.items()})
            done.append((dict(spec, dtypes={"h": str(h.dtype), "z": str(z.dtype),
                                            "gw1": str(params["w1"].grad.dtype)}), t))
    except Exception as e:
        for spec in specs:
            rec.skip(spec, e)
        return
    for spec, t in done:
        if spec["dtypes"]["h"] != "torch." + low:
            spec["note"] = f"autocast did not produce {low} activations on {dev}"
        rec.add(spec, t)


def _no_progress(items: Iterable, desc: str) -> Iterable:
    return items


def run(device: str = "cpu", seed: int = 0, sizes: str = "auto", *, conversions: bool = True,
        gemms: bool = True, train: bool = True,
        progress: Optional[Progress] = None) -> Tuple[dict, Dict[str, np.ndarray]]:
    """Run the capture suite on a PyTorch device.

    Args:
        device: "cpu", "cuda" (or "cuda:N") or "mps".
        seed: base seed of every input.
        sizes: "small", "full" or "auto" (full on CUDA, small elsewhere).
        conversions, gemms, train: which parts of the suite to run.
        progress: ``progress(items, description)`` wraps the GEMM loop (a progress bar).

    Returns:
        ``(meta, arrays)``: the file's metadata and its code arrays (see :func:`save`).

    Raises:
        ImportError: if PyTorch is not installed.
        ValueError: unknown sizes, or a device torch cannot use here.
        TypeError: a device that is not a string, a seed that is not an int.
    """
    torch = _torch()
    if sizes not in ("auto",) + tuple(SIZES):
        raise ValueError(f"capture: sizes must be one of {['auto'] + sorted(SIZES)}, got "
                         f"{sizes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"capture: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    dev = check_device(device)
    if sizes == "auto":
        sizes = "full" if dev.startswith("cuda") else "small"
    sz = SIZES[sizes]
    t0 = time.time()
    rec = Recorder({"format": FILE_FORMAT, "version": FORMAT_VERSION, "tool": "lowprec_capture.py",
                    "script_version": SCRIPT_VERSION, "seed": seed, "sizes": sizes,
                    "device": device_info(dev),
                    "env": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
                    "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled())})
    progress = progress or _no_progress
    if conversions:
        _capture_conversions(rec, dev, sz["sample"], seed)
    if gemms:
        _capture_gemms(rec, dev, sz, seed, progress)
    if train:
        _capture_train(rec, dev, sz, seed)
    rec.meta["seconds"] = round(time.time() - t0, 2)
    return rec.meta, rec.arrays


def _text_progress(items: Iterable, desc: str) -> Iterable:
    """A dependency-free progress line on stderr."""
    items = list(items)
    for i, x in enumerate(items):
        if i % 10 == 0 or i == len(items) - 1:
            print(f"\r{desc}: {i + 1}/{len(items)}", end="", file=sys.stderr, flush=True)
        yield x
    print(file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: ``python lowprec_capture.py --device cuda --out cap.npz``."""
    p = argparse.ArgumentParser(
        prog="lowprec_capture.py",
        description="Record conversions, GEMMs and training steps of a PyTorch device for "
                    "`lowprec compare` and `lowprec fit` (needs numpy and torch only).")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, cpu or mps (default cuda)")
    p.add_argument("--out", required=True, help="capture file to write (.npz)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the inputs")
    p.add_argument("--sizes", choices=["auto"] + sorted(SIZES), default="auto",
                   help="suite size (default auto: full on CUDA, small elsewhere)")
    args = p.parse_args(argv)
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):  # say so now, not after the capture ran
        print(f"lowprec_capture.py: error: folder {folder} does not exist", file=sys.stderr)
        return 2
    try:
        meta, arrays = run(args.device, args.seed, args.sizes, progress=_text_progress)
    except (ImportError, ValueError, TypeError) as e:
        print(f"lowprec_capture.py: error: {e}", file=sys.stderr)
        return 2
    path = save(args.out, meta, arrays)
    ops = meta["ops"]
    ok = sum(o["status"] == "ok" for o in ops)
    d = meta["device"]
    print(f"captured {ok} of {len(ops)} ops on {d['device']} ({d.get('name', '')}) into {path}")
    for o in ops:
        if o["status"] != "ok":
            print(f"  skipped {o['id']}: {o['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
