"""Old import path of :mod:`lowprec.reference.scaled` (the exact references live in one
subpackage now); re-exports its public names."""

from .reference.scaled import *  # noqa: F401,F403
from .reference.scaled import __all__  # noqa: F401
