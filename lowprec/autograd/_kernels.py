"""Numba kernel for weights stored in a low float format: round(w + d) in one step.

The exact sum of two float64 values is the pair (s, lo) from TwoSum (Knuth), so one
rounding of that pair into the target format is the correctly rounded (or exactly
stochastically rounded) sum, whatever the gap between the exponents of w and d. A plain
float64 sum followed by a second rounding would be wrong at spurious ties and would bias
stochastic rounding when d is tiny next to w, which is precisely the case studied.
"""

import numpy as np
from numba import njit

from .._kernels.convert import round_float_value


@njit(cache=True)
def round_sum_array(a, b, fp, mode, ovf, ftz, key, idx0, sr_bits, out):
    """out[i] = round(a[i] + b[i]) into the float format ``fp`` (flat float64 arrays).

    Stochastic rounding draws element i's bits at stream index ``idx0 + i``.
    """
    for i in range(a.size):
        x = a[i]
        y = b[i]
        s = x + y
        bb = s - x
        lo = (x - (s - bb)) + (y - bb)
        if not np.isfinite(s):
            lo = 0.0
        out[i] = round_float_value(s, lo, fp, mode, ovf, ftz, key, np.uint64(idx0 + i), sr_bits)
