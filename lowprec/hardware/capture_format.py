"""The capture file: one ``.npz`` holding codes of every captured tensor plus JSON metadata.

Layout (no pickles, so a capture from an untrusted machine is safe to open):

- ``meta.json``: a uint8 array holding UTF-8 JSON: ``{"version", "device", "torch",
  "seed", "ops": [...]}``. Each op is a dict with ``id`` (unique), ``kind`` ("convert",
  "gemm", "train"), ``status`` ("ok" or "skipped" with ``reason``), its parameters, and
  ``arrays``: role -> {"key": npz key, "format": lowprec format name}.
- one array per tensor: the tensor's codes (uint8/uint16/uint32) in the named format, so
  that NaN payloads and signed zeros survive; integer tensors (class labels) as int64 with
  format "int64".
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..formats import get_format
from ..quantize import decode

__all__ = ["Capture", "load_capture", "typed_values", "CAPTURE_VERSION"]

CAPTURE_VERSION = 1
_META_KEY = "meta.json"


@dataclass
class Capture:
    """Captured ops: metadata plus the code arrays they refer to.

    Attributes:
        meta: the JSON metadata (see the module docstring).
        arrays: npz key -> code array.
        path: file it was loaded from or saved to ("" while in memory).
    """

    meta: dict
    arrays: dict = field(default_factory=dict)
    path: str = ""

    @property
    def ops(self) -> list:
        """The op records, in capture order."""
        return self.meta.setdefault("ops", [])

    def add_op(self, spec: dict, tensors: Optional[dict] = None) -> dict:
        """Record an op. ``tensors``: role -> (codes, format name); keys are derived from
        the op id."""
        if any(o["id"] == spec["id"] for o in self.ops):
            raise ValueError(f"capture: duplicate op id {spec['id']!r}")
        spec = dict(spec)
        spec.setdefault("status", "ok")
        spec["arrays"] = {}
        for role, (codes, fmt) in (tensors or {}).items():
            key = f"{spec['id']}/{role}"
            self.arrays[key] = np.ascontiguousarray(codes)
            spec["arrays"][role] = {"key": key, "format": fmt}
        self.ops.append(spec)
        return spec

    def codes(self, op: dict, role: str) -> np.ndarray:
        """The raw code array of one of an op's tensors."""
        return self.arrays[op["arrays"][role]["key"]]

    def format(self, op: dict, role: str) -> str:
        """Format name of one of an op's tensors."""
        return op["arrays"][role]["format"]

    def values(self, op: dict, role: str, dtype=np.float64) -> np.ndarray:
        """Decoded values of one of an op's tensors (ints stay int64)."""
        codes = self.codes(op, role)
        fmt = self.format(op, role)
        if fmt == "int64":
            return codes.astype(np.int64)
        return decode(codes, get_format(fmt), dtype=dtype)

    def save(self, path) -> str:
        """Write the capture to ``path`` (``.npz`` appended by numpy if missing)."""
        meta = json.dumps(self.meta, indent=1, sort_keys=False).encode("utf-8")
        path = str(path)
        np.savez_compressed(path, **{_META_KEY: np.frombuffer(meta, np.uint8)}, **self.arrays)
        self.path = path if path.endswith(".npz") else path + ".npz"
        return self.path


def typed_values(values: np.ndarray, fmt: str) -> np.ndarray:
    """Values as an array of the numpy / ml_dtypes dtype of ``fmt`` (exact): how captured
    inputs are handed to :func:`lowprec.matmul`."""
    name = get_format(fmt).name  # numpy and ml_dtypes name their dtypes as lowprec does
    try:
        dtype = np.dtype(name)  # numpy's own (float16, float32)
    except TypeError:
        # deferred: ml_dtypes is optional, and only captures of its formats need it
        import ml_dtypes

        dtype = np.dtype(getattr(ml_dtypes, name))
    return values.astype(np.float32).astype(dtype)


class _NotCapture(ValueError):
    """A file that is not a lowprec capture (told apart from numpy's own errors)."""


def load_capture(path) -> Capture:
    """Read a capture file written by :func:`lowprec.hardware.capture.capture`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a lowprec capture (not an npz archive, a truncated
            or damaged one, one without readable metadata or with pickled members).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"capture file {path} not found")

    def not_capture(why: str) -> ValueError:
        return _NotCapture(f"{path} is not a lowprec capture file ({why})")

    # np.load would take any other file for a pickle and answer with its allow_pickle error
    if not zipfile.is_zipfile(p):
        raise not_capture("not an .npz archive, or a truncated one")
    try:
        with np.load(p, allow_pickle=False) as z:
            if _META_KEY not in z.files:
                raise not_capture(f"no {_META_KEY} member")
            meta_codes = z[_META_KEY]
            if meta_codes.dtype != np.uint8:
                raise not_capture(f"{_META_KEY} is {meta_codes.dtype}, not UTF-8 bytes")
            meta = json.loads(bytes(meta_codes).decode("utf-8"))
            arrays = {k: z[k] for k in z.files if k != _META_KEY}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise not_capture(f"damaged archive: {e}") from e
    except UnicodeDecodeError as e:
        raise not_capture(f"{_META_KEY} is not UTF-8") from e
    except json.JSONDecodeError as e:
        raise not_capture(f"{_META_KEY} is not JSON: {e}") from e
    except _NotCapture:
        raise
    except ValueError as e:
        # numpy's own complaints: an object (pickled) member, a malformed .npy header
        raise not_capture("a member is not a plain numeric array; captures hold no "
                          "pickled objects") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("ops"), list):
        raise not_capture("its metadata has no op list")
    if meta.get("version", 0) > CAPTURE_VERSION:
        raise ValueError(f"{path}: capture version {meta.get('version')} is newer than this "
                         f"lowprec understands ({CAPTURE_VERSION})")
    return Capture(meta, arrays, str(p))
