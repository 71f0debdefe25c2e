"""Old import path of :mod:`lowprec.reference.gemm` (the exact references live in one
subpackage now); re-exports its public names."""

from .reference.gemm import *  # noqa: F401,F403
from .reference.gemm import __all__  # noqa: F401
