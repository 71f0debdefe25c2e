"""lowprec: bit-exact emulation of low-precision number formats on any CPU."""

from .formats import (FixedFormat, FloatFormat, Format, IntFormat, bfloat16, float4_e2m1fn,
                      float6_e2m3fn, float6_e3m2fn, float8_e3m4, float8_e4m3, float8_e4m3fn,
                      float8_e4m3fnuz, float8_e5m2, float8_e5m2fnuz, float8_e8m0fnu, float16,
                      float32, get_format, int4, int8, int16, int32, list_formats, tfloat32,
                      uint8)
from .quantize import decode, encode, quantize
from .rounding import NaNPolicy, Overflow, Rounding
from .arith import abs, add, div, fma, maximum, minimum, mul, neg, sqrt, sub  # noqa: A004
from .coded import register_array_class
from .gemm import matmul
from .lparray import LPArray, RoundingContext, array, concatenate, stack
from .block_formats import BlockFormat, get_block_format, list_block_formats
from .packing import pack, unpack

# The numerics build results of their operands' kind; with plain numpy operands (matmul's
# out=) that kind is LPArray. The root wires it, so no numerics module imports lparray.
register_array_class(LPArray)

# Public names defined in heavier modules, imported on first use so that
# `import lowprec` compiles nothing and imports neither matplotlib nor torch.
_LAZY = {
    **{n: "lowprec.scaled" for n in ("quantize_scaled", "ScaledTensor", "mx_quantize",
                                     "nvfp4_quantize", "fp8_scale")},
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
