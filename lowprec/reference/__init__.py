"""Slow, obviously-correct references with exact rational arithmetic.

Every fast path of lowprec is tested bit for bit against one of these:

- :mod:`.core`: the exact rounding core and the twin of the kernels' random stream;
- :mod:`.conversion`: :func:`encode_exact`, :func:`decode_exact`, :func:`round_exact`;
- :mod:`.arith`: correctly rounded operations on exact values;
- :mod:`.gemm`: every accumulation mode of :func:`lowprec.matmul`, tensor-core blocks
  included, on the exact operations of :mod:`.arith`;
- :mod:`.scaled`: MX and integer scaling.

They work on :class:`fractions.Fraction` and Python integers, one value at a time.
"""

from .conversion import decode_exact, encode_exact, round_exact
from .core import floor_log2, neighbours, rand64

__all__ = ["rand64", "encode_exact", "decode_exact", "round_exact", "neighbours", "floor_log2"]
