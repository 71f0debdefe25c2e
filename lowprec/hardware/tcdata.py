"""Loader for real-GPU tensor-core outputs in Khattak & Mikaitis' layout.

Layout (``MATLAB-tensor-core/model_validation``, BSD 2-Clause): ``<GPU>/<fmt>/`` holds
``a_<GPU>_<fmt>.txt`` and ``b_<GPU>_<fmt>.txt`` (one case per line, K float32 bit patterns
in hex), ``c_<GPU>_fp32.txt`` (one float32 bit pattern per line in binary) and
``d_<GPU>_fp32.txt`` / ``d_<GPU>_fp16.txt`` (the GPU's d = sum_k a_k b_k + c, as float32
bit patterns in binary; fp16 results widened exactly).

Conventions (from the data's README, checked against the data): for fp16 outputs c was
rounded to fp16 (RNE) before the instruction. Hopper's fp8 path with fp32 output (WGMMA,
D = A*B + D) was run with D = 0, for E4M3 and E5M2 alike: which GPU does that is a property
of its model (:meth:`lowprec.hardware.models.TensorCoreModel.data_c_is_zero`), so a data set
of a GPU not seen before follows its architecture's rule. Hopper's fp8 path with fp16
output used c (rounded to fp16): with c = 0, 2,496 of the 2,500 H100 E4M3 cases cannot be
reproduced, with fp16(c) all are (see :mod:`lowprec.hardware.models`).

:func:`scan` finds the data sets under a folder and says why it skips anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..formats import FloatFormat, get_format
from ..quantize import quantize
from .models import MODELS, TensorCoreModel, list_models

__all__ = ["TCDataset", "TCScan", "scan", "load_dataset", "list_datasets", "default_root",
           "gpu_model"]

# the layout's names of the output formats (the suffix of the d files)
_OUT_SUFFIX = {"float32": "fp32", "float16": "fp16"}
_LAYOUT = ("<GPU>/<format>/ holding a_<GPU>_<format>.txt, b_<GPU>_<format>.txt, "
           "c_<GPU>_fp32.txt and d_<GPU>_fp32.txt and/or d_<GPU>_fp16.txt")


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
            outputs, zero where the GPU's model says the run used c = 0).
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
    def output(self) -> str:
        """The output format as the layout names it ("fp32" or "fp16", as in the d file)."""
        return _OUT_SUFFIX[self.out_format]

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


def gpu_model(gpu: str) -> TensorCoreModel:
    """The built-in model of a GPU folder name (case-insensitive).

    Raises:
        ValueError: when lowprec has no model of that GPU (its data conventions are then
            unknown).
    """
    m = MODELS.get(gpu.strip().lower())
    if m is None:
        raise ValueError(f"no lowprec model of a GPU named {gpu!r}, so its data conventions "
                         f"are unknown (known: {', '.join(list_models())})")
    return m


@dataclass
class TCScan:
    """What :func:`scan` found under ``root``.

    Attributes:
        root: the folder scanned.
        datasets: (gpu, folder, out_format) of every data set, one per output file.
        skipped: (path relative to root, reason) of every folder or output file that is
            not a usable data set.
    """

    root: Path
    datasets: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def require_datasets(self) -> None:
        """Raise ``ValueError`` (with the skipped folders' reasons) when nothing was found."""
        if self.datasets:
            return
        why = "".join(f"; skipped {p}: {r}" for p, r in self.skipped[:5])
        more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
        raise ValueError(f"{self.root} holds no data sets (expected {_LAYOUT}){why}{more}")


def scan(root=None) -> TCScan:
    """Find every data set under ``root``, one per output file, and what is skipped.

    A ``<GPU>`` folder needs a lowprec model of that GPU (its data conventions), a
    ``<format>`` folder a float format name ("fp16", "bf16", "tf32", "E4M3", "E5M2", ...)
    and the a, b and c files; each ``d_<GPU>_fp32.txt`` / ``d_<GPU>_fp16.txt`` is a data
    set. Hidden folders are ignored; anything else is listed in ``skipped`` with the reason.

    Args:
        root: data folder (default :func:`default_root`).

    Returns:
        A :class:`TCScan`.

    Raises:
        ValueError: if ``root`` is not a directory.
    """
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        raise ValueError(f"tensor-core data folder {root} is not a directory")
    res = TCScan(root)
    for gdir in _subdirs(root):
        g = gdir.name
        try:
            gpu_model(g)
        except ValueError as e:
            res.skipped.append((g, str(e)))
            continue
        for fdir in _subdirs(gdir):
            f = fdir.name
            where = f"{g}/{f}"
            try:
                fmt = get_format(f.lower())
            except ValueError:
                fmt = None
            if not isinstance(fmt, FloatFormat):
                res.skipped.append((where, f"{f!r} is not a float input format name"))
                continue
            missing = [n for n in (f"a_{g}_{f}.txt", f"b_{g}_{f}.txt", f"c_{g}_fp32.txt")
                       if not (fdir / n).is_file()]
            if missing:
                res.skipped.append((where, f"missing {', '.join(missing)}"))
                continue
            outs = sorted(p.name for p in fdir.glob(f"d_{g}_*.txt") if p.is_file())
            if not outs:
                res.skipped.append((where, f"no output file (d_{g}_fp32.txt or d_{g}_fp16.txt)"))
            for out, suf in _OUT_SUFFIX.items():
                if f"d_{g}_{suf}.txt" in outs:
                    res.datasets.append((g, f, out))
            for name in outs:
                if name[len(f"d_{g}_"):-len(".txt")] not in _OUT_SUFFIX.values():
                    res.skipped.append((f"{where}/{name}", "output format is not fp32 or fp16"))
    return res


def _subdirs(path: Path) -> list:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_datasets(root=None) -> list:
    """(gpu, folder, out_format) of every data set under ``root`` (see :func:`scan`)."""
    return scan(root).datasets


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
        ValueError: unknown output format, a GPU lowprec has no model of (see
            :func:`gpu_model`), or files with inconsistent lengths.
    """
    root = Path(root) if root is not None else default_root()
    out_name = get_format(out).name
    if out_name not in _OUT_SUFFIX:
        raise ValueError(f"load_dataset: out must be fp32 or fp16, got {out!r}")
    model = gpu_model(gpu)
    in_fmt = get_format(folder.lower()).name
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
    if model.data_c_is_zero(in_fmt, out_name):
        c = np.zeros_like(c)
    else:  # the instruction's c is in its output format (exact for fp32 outputs)
        c = quantize(c, out_name).astype(np.float32)
    return TCDataset(gpu, folder, in_fmt, out_name, a, b, c, d, str(d_dir))
