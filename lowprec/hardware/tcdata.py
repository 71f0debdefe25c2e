"""Loader for real-GPU tensor-core outputs in Khattak & Mikaitis' layout.

Layout (``MATLAB-tensor-core/model_validation``, BSD 2-Clause): ``<GPU>/<fmt>/`` holds
``a_<GPU>_<fmt>.txt`` and ``b_<GPU>_<fmt>.txt`` (one case per line, K float32 bit patterns
in hex), ``c_<GPU>_fp32.txt`` (one float32 bit pattern per line in binary) and
``d_<GPU>_fp32.txt`` / ``d_<GPU>_fp16.txt`` (the GPU's d = sum_k a_k b_k + c, as float32
bit patterns in binary; fp16 results widened exactly).

Conventions (from the data's README, checked against the data): for fp16 outputs c was
rounded to fp16 (RNE) before the instruction; the H100 E4M3 fp32-output file was produced
with c = 0. The README says the latter for the whole H100 E4M3 folder, but its fp16-output
file used c (rounded to fp16): with c = 0, 2,496 of its 2,500 cases cannot be reproduced,
with fp16(c) all are (see :mod:`lowprec.hardware.models`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..formats import get_format
from ..quantize import quantize

__all__ = ["TCDataset", "load_dataset", "list_datasets", "default_root"]

#: (GPU, input folder, output format) whose instruction ran with c = 0.
C_ZERO = {("H100", "E4M3", "float32")}
_OUT_SUFFIX = {"float32": "fp32", "float16": "fp16"}


@dataclass(frozen=True)
class TCDataset:
    """One data set: ``cases`` dot products of length ``k``.

    Attributes:
        gpu: GPU folder name, e.g. "H100".
        folder: input-format folder name, e.g. "E4M3".
        input_format: lowprec name of the input format, e.g. "float8_e4m3fn".
        out_format: "float32" or "float16".
        a, b: (cases, k) float32 inputs (exact in ``input_format``).
        c: (cases,) float32 addend as the instruction saw it (fp16-rounded for fp16
            outputs, zero where the run used c = 0).
        d: (cases,) float32 GPU results.
        path: folder the files came from.
    """

    gpu: str
    folder: str
    input_format: str
    out_format: str
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    path: str

    @property
    def k(self) -> int:
        """Products per case."""
        return self.a.shape[1]

    @property
    def cases(self) -> int:
        """Number of cases."""
        return self.a.shape[0]

    @property
    def model_name(self) -> str:
        """Name of the matching built-in model (lower-case GPU name)."""
        return self.gpu.lower()


def default_root() -> Path:
    """``$LOWPREC_TCDATA`` if set, else the repository's tests/data/tensor-cores."""
    env = os.environ.get("LOWPREC_TCDATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "tests" / "data" / "tensor-cores"


def _hex_rows(path: Path, limit: Optional[int]) -> np.ndarray:
    rows = []
    with open(path) as fh:
        for line in fh:
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                rows.append([int(w, 16) for w in line.split()])
    return np.array(rows, dtype=np.uint32).view(np.float32)


def _bin_col(path: Path, limit: Optional[int]) -> np.ndarray:
    vals = []
    with open(path) as fh:
        for line in fh:
            if limit is not None and len(vals) >= limit:
                break
            if line.strip():
                vals.append(int(line.strip(), 2))
    return np.array(vals, dtype=np.uint32).view(np.float32)


def list_datasets(root=None) -> list:
    """(gpu, folder, out_format) of every data set under ``root``."""
    root = Path(root) if root is not None else default_root()
    found = []
    if not root.is_dir():
        return found
    for gdir in sorted(p for p in root.iterdir() if p.is_dir()):
        for fdir in sorted(p for p in gdir.iterdir() if p.is_dir()):
            for out, suf in _OUT_SUFFIX.items():
                if (fdir / f"d_{gdir.name}_{suf}.txt").exists():
                    found.append((gdir.name, fdir.name, out))
    return found


def load_dataset(gpu: str, folder: str, out="fp32", root=None,
                 limit: Optional[int] = None) -> TCDataset:
    """Load one data set.

    Args:
        gpu: GPU folder, e.g. "V100", "A100", "H100".
        folder: input-format folder, e.g. "fp16", "bf16", "E4M3".
        out: "fp32" or "fp16" (which d file).
        root: data root (default :func:`default_root`).
        limit: read only the first ``limit`` cases.

    Returns:
        A :class:`TCDataset` with c as the instruction saw it.

    Raises:
        FileNotFoundError: when a file is missing.
        ValueError: unknown output format, or files with inconsistent lengths.
    """
    root = Path(root) if root is not None else default_root()
    out_name = get_format(out).name
    if out_name not in _OUT_SUFFIX:
        raise ValueError(f"load_dataset: out must be fp32 or fp16, got {out!r}")
    d_dir = root / gpu / folder
    a = _hex_rows(d_dir / f"a_{gpu}_{folder}.txt", limit)
    b = _hex_rows(d_dir / f"b_{gpu}_{folder}.txt", limit)
    c = _bin_col(d_dir / f"c_{gpu}_fp32.txt", limit)
    d = _bin_col(d_dir / f"d_{gpu}_{_OUT_SUFFIX[out_name]}.txt", limit)
    n = len(d)
    if not (a.shape[0] >= n and b.shape == a.shape and len(c) >= n):
        raise ValueError(f"load_dataset: inconsistent files in {d_dir}: a {a.shape}, b "
                         f"{b.shape}, c {c.shape}, d {d.shape}")
    a, b, c = a[:n], b[:n], c[:n]
    if (gpu, folder, out_name) in C_ZERO:
        c = np.zeros_like(c)
    elif out_name == "float16":
        c = quantize(c, "float16").astype(np.float32)
    return TCDataset(gpu, folder, get_format(folder.lower()).name, out_name, a, b, c, d,
                     str(d_dir))
