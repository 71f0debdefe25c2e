"""Old import path of :mod:`lowprec.reference.arith` (the exact references live in one
subpackage now); re-exports its public names."""

from .reference.arith import *  # noqa: F401,F403
from .reference.arith import __all__  # noqa: F401
