"""The integer ids kernels receive, in one place.

Kernels take plain integers, never enums or descriptors. Every id a kernel compares against
is defined here once; the enums of :mod:`lowprec.rounding`, the descriptors of
:mod:`lowprec.formats` and the public numerics map their values to these, and the numba
kernels import them (module-level ints are compile-time constants to numba). Pure
constants: importing this module loads nothing.
"""

# Rounding modes, in the order of lowprec.rounding.Rounding.
RNE, RNA, RTZ, RUP, RDN, RTO, SR = range(7)
ROUNDING_NAMES = ("rne", "rna", "rtz", "rup", "rdn", "rto", "sr")

# Overflow policies, in the order of lowprec.rounding.Overflow.
OVF_INF, OVF_SATURATE, OVF_WRAP = range(3)
OVERFLOW_NAMES = ("inf", "saturate", "wrap")

# What NaN inputs become in a format without NaN, in the order of lowprec.rounding.NaNPolicy.
NANP_RAISE, NANP_ZERO, NANP_MAX, NANP_ML_DTYPES = range(4)
NAN_POLICY_NAMES = ("raise", "zero", "max", "ml_dtypes")

# How a float format encodes NaN (FloatFormat.nan).
NAN_IEEE, NAN_ALL_ONES, NAN_NEG_ZERO, NAN_NONE = range(4)
NAN_ENCODINGS = ("ieee", "all_ones", "neg_zero", "none")

# Rounding directions on magnitudes, inside the kernels (signed modes map to these by sign).
M_RNE, M_RNA, M_DOWN, M_UP, M_RTO, M_SR = range(6)

# Element-wise operations of lowprec.arith.
OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN = range(6)
BINARY_OPS = {"add": OP_ADD, "sub": OP_SUB, "mul": OP_MUL, "div": OP_DIV,
              "maximum": OP_MAX, "minimum": OP_MIN}
OP_SQRT, OP_NEG, OP_ABS = range(3)
UNARY_OPS = {"sqrt": OP_SQRT, "neg": OP_NEG, "abs": OP_ABS}

# Summation orders of lowprec.reduce.
ORDER_SEQUENTIAL, ORDER_PAIRWISE, ORDER_KAHAN = range(3)
ORDERS = {"sequential": ORDER_SEQUENTIAL, "pairwise": ORDER_PAIRWISE, "kahan": ORDER_KAHAN}

# How c enters a tensor-core instruction (lowprec.tensorcore.BlockFMAModel.c_mode).
C_BLOCK, C_LATE = range(2)
C_MODES = ("block", "late")
