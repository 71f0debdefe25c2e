"""Layout of the int64 parameter vectors that carry a format into the kernels.

Kernels take a format as one small int64 vector (plus scalar options) so that one compiled
kernel serves every format. :func:`lowprec.quantize.format_params` fills it from the
descriptor's code facts. Pure constants: importing this module loads no numba.
"""

# Float formats.
F_MAN = 0        # mantissa bits m
F_EMIN = 1       # exponent of the smallest normal binade
F_EMAX = 2       # exponent of the largest binade
F_MAXSIG = 3     # integer significand (m+1 bits) of the largest finite value
F_BIAS = 4       # exponent bias
F_HAS_INF = 5    # 1 if the format has infinities
F_HAS_NAN = 6    # 1 if the format has a NaN code
F_SIGNED = 7     # 1 if there is a sign bit
F_ZERO = 8       # 1 if the format has a zero
F_SUBN = 9       # 1 if exponent field 0 holds subnormals
F_BITS = 10      # total width
F_NAN_KIND = 11  # NaN encoding id (lowprec.ids.NAN_IEEE ...)
F_NAN_POS = 12   # code written for a NaN input with sign bit 0 (or a NaN result)
F_NAN_NEG = 13   # code written for a NaN input with sign bit 1
F_INF = 14       # code of +inf (-1 when the format has none)
F_MAXCODE = 15   # code of +max
F_SIGNBIT = 16   # value of the sign bit in a code (0 for unsigned formats)
F_EXPMASK = 17   # (1 << exp_bits) - 1
F_LEN = 18

# Fixed-point formats.
X_FRAC = 0       # fraction bits
X_MININT = 1     # smallest integer word value
X_MAXINT = 2     # largest integer word value
X_BITS = 3       # word length
X_NAN_CODE = 4   # code written for NaN inputs when the NaN policy maps them
X_LEN = 5
