"""The capture file: one ``.npz`` holding codes of every captured tensor plus JSON metadata.

The file is written by the standalone capture script
(:mod:`lowprec.hardware.lowprec_capture`, which imports nothing of lowprec and documents
the layout); this module reads it and checks it (:func:`validate_capture`). In short (no
pickles, so a capture from an untrusted machine is safe to open):

- ``meta.json``: a uint8 array holding UTF-8 JSON: ``{"format": "lowprec-capture",
  "version", "device", "seed", "ops": [...]}`` (version 1 files, written by lowprec itself
  before the script existed, have no "format" key). Each op is a dict with ``id``
  (unique), ``kind`` ("convert", "gemm", "train"), ``status`` ("ok" or "skipped" with
  ``reason``), its parameters, and ``arrays``: role -> {"key": npz key, "format": format
  name}.
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

__all__ = ["Capture", "load_capture", "validate_capture", "typed_values", "CAPTURE_VERSION",
           "CAPTURE_FORMAT"]

#: The newest file version this lowprec reads (the capture script writes it).
CAPTURE_VERSION = 2
#: The "format" entry of the metadata (from version 2 on).
CAPTURE_FORMAT = "lowprec-capture"
_META_KEY = "meta.json"
_INT = "int64"  # the format name of integer tensors (class labels)
# The arrays each kind of op holds when it ran, and (for gemm) their shapes
_ROLES = {"convert": ("x", "y"), "gemm": ("a", "b", "d"),
          "train": ("x", "y", "w1", "b1", "w2", "b2", "h", "a", "z", "gh", "ga", "gz", "loss",
                    "gw1", "gb1", "gw2", "gb2", "w1_new", "b1_new", "w2_new", "b2_new")}
_FIELDS = {"convert": ("dst",), "gemm": ("inputs", "out", "M", "K", "N"),
           "train": ("autocast", "lr")}


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
        if fmt == _INT:
            return codes.astype(np.int64)
        return decode(codes, get_format(fmt), dtype=dtype)

    def save(self, path) -> str:
        """Write the capture to ``path`` (``.npz`` appended by numpy if missing), in the
        layout the capture script writes."""
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
    cap = Capture(meta, arrays, str(p))
    validate_capture(cap)
    return cap


def validate_capture(cap: Capture) -> None:
    """Check a capture against the file layout (see the module docstring).

    Checked: the format name and version; every op has a unique string id, a kind and a
    status, a skipped op a reason; every array an op names exists, holds codes of the
    dtype its format needs (uint8/uint16/uint32 by width; int64 labels) and, for the
    kinds lowprec replays, the op has the arrays and fields the replay reads, with GEMM
    operands of shapes (M, K), (K, N) and (M, N). Ops of a kind this lowprec does not
    know pass (``lowprec compare`` lists them as skipped).

    Raises:
        ValueError: naming the file, the op and what is wrong; for a version newer than
            :data:`CAPTURE_VERSION`, saying so.
    """
    where = cap.path or "capture"
    meta = cap.meta

    def bad(why: str, op: Optional[dict] = None) -> ValueError:
        at = f" op {op.get('id')!r}:" if op is not None else ""
        return ValueError(f"{where}: not a valid lowprec capture:{at} {why}")

    version = meta.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad(f"version must be a positive int, got {version!r}")
    if version > CAPTURE_VERSION:
        raise ValueError(f"{where}: capture version {version} is newer than this lowprec "
                         f"understands ({CAPTURE_VERSION}); upgrade lowprec")
    if version >= 2 and meta.get("format") != CAPTURE_FORMAT:
        raise bad(f"format must be {CAPTURE_FORMAT!r}, got {meta.get('format')!r}")
    seen = set()
    for op in cap.ops:
        if not isinstance(op, dict):
            raise bad(f"an op is a {type(op).__name__}, not an object")
        oid = op.get("id")
        if not isinstance(oid, str) or not oid:
            raise bad(f"an op has no string id: {str(op)[:80]}")
        if oid in seen:
            raise bad("duplicate op id", op)
        seen.add(oid)
        status, kind = op.get("status"), op.get("kind")
        if status not in ("ok", "skipped") or not isinstance(kind, str):
            raise bad(f"status must be 'ok' or 'skipped' and kind a string, got "
                      f"{status!r} and {kind!r}", op)
        if status == "skipped":
            if not isinstance(op.get("reason"), str):
                raise bad("a skipped op needs a reason", op)
            continue
        arrays = op.get("arrays")
        if not isinstance(arrays, dict):
            raise bad("no arrays", op)
        for role, ref in arrays.items():
            _check_array(cap, op, role, ref, bad)
        missing = [r for r in _ROLES.get(kind, ()) if r not in arrays]
        missing += [f for f in _FIELDS.get(kind, ()) if f not in op]
        if missing:
            raise bad(f"a {kind} op needs {', '.join(missing)}", op)
        if kind == "gemm":
            want = {"a": (op["M"], op["K"]), "b": (op["K"], op["N"]), "d": (op["M"], op["N"])}
            for role, shape in want.items():
                got = cap.arrays[arrays[role]["key"]].shape
                if tuple(got) != tuple(shape):
                    raise bad(f"array {role!r} has shape {tuple(got)}, M, K, N say "
                              f"{tuple(shape)}", op)


def _check_array(cap: Capture, op: dict, role: str, ref, bad) -> None:
    """One of an op's arrays exists and holds codes of its format."""
    if not isinstance(ref, dict) or not isinstance(ref.get("key"), str):
        raise bad(f"array {role!r} has no key", op)
    key, fmt = ref["key"], ref.get("format")
    if key not in cap.arrays:
        raise bad(f"array {role!r}: member {key!r} is missing from the file", op)
    arr = cap.arrays[key]
    if fmt == _INT:
        need = np.dtype(np.int64)
    else:
        try:
            need = np.dtype(get_format(fmt).code_dtype)
        except (ValueError, TypeError):
            raise bad(f"array {role!r}: unknown format {fmt!r}", op) from None
    if arr.dtype != need:
        raise bad(f"array {role!r} holds {arr.dtype}, codes of {fmt} are {need}", op)
