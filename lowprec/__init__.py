"""lowprec: bit-exact emulation of low-precision number formats on any CPU."""

from .formats import (FixedFormat, FloatFormat, Format, IntFormat, get_format, list_formats,
                      _export_named)
from .quantize import decode, encode, quantize
from .rounding import NaNPolicy, Overflow, Rounding

globals().update(_export_named())
del _export_named

# Public names defined in heavier modules, imported on first use so that
# `import lowprec` compiles nothing and imports neither matplotlib nor torch.
_LAZY = {
    **{n: "lowprec.arith" for n in ("add", "sub", "mul", "div", "fma", "sqrt", "neg", "abs",
                                    "maximum", "minimum")},
    **{n: "lowprec.lparray" for n in ("array", "LPArray", "concatenate", "stack",
                                      "RoundingContext")},
    **{n: "lowprec.scaled" for n in ("quantize_scaled", "ScaledTensor", "pack", "unpack",
                                     "mx_quantize", "nvfp4_quantize", "fp8_scale")},
    "matmul": "lowprec.gemm",
}
_SUBMODULES = ("testing", "hardware", "autograd", "reference", "datasets", "plot",
               "plot_numerics", "study")


def __getattr__(name):
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"lowprec.{name}")
    raise AttributeError(f"module 'lowprec' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))

__version__ = "0.1.0"
