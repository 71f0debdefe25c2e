"""Shared test settings: hypothesis profiles, the oracle format tables (derived from the
format registry, so a newly registered format is tested without editing the tests), and the
pinned-environment check of `make test`."""

import os
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from packaging.requirements import Requirement

import lowprec as lp

try:
    import ml_dtypes
except ImportError:  # the oracle tables then hold only numpy's formats
    ml_dtypes = None

settings.register_profile("default", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=120, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")


def oracle_dtype(name):
    """The numpy or ml_dtypes dtype that implements a registered float format, or None.

    lowprec names its formats as numpy and ml_dtypes name the same formats; a name match
    is taken as the claim "same format", which tests/test_formats.py checks against
    ml_dtypes.finfo. Integer formats have no rounding oracle here (numpy's float -> int
    casts truncate), so they map to None.
    """
    f = lp.get_format(name)
    if not isinstance(f, lp.FloatFormat):
        return None
    if f.name in ("float16", "float32"):
        return np.dtype(f.name)
    t = getattr(ml_dtypes, f.name, None) if ml_dtypes is not None else None
    return np.dtype(t) if t is not None else None


# registry order; float32 and tfloat32 are compared with the exact reference instead
FLOAT_FORMATS = [f.name for f in lp.list_formats() if isinstance(f, lp.FloatFormat)]
ML_DTYPES_FORMATS = [n for n in FLOAT_FORMATS
                     if oracle_dtype(n) is not None and n not in ("float16", "float32")]
# every float format of at most 16 bits with an oracle dtype: exhaustive code sweeps
SMALL_FLOAT_FORMATS = [n for n in FLOAT_FORMATS
                       if lp.get_format(n).bits <= 16 and oracle_dtype(n) is not None]
ALL_MODES = [m.value for m in lp.Rounding]


def ml_dtype(name):
    """The ml_dtypes (or numpy, for float16) dtype of a lowprec format name."""
    dt = oracle_dtype(name)
    if dt is None:
        pytest.skip(f"no numpy/ml_dtypes dtype for {name}"
                    + ("" if ml_dtypes is not None else " (ml_dtypes is not installed)"))
    return dt


def installed_version(dist):
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pytest_report_header(config):
    names = ["numpy", "numba", "ml_dtypes", "gmpy2", "gfloat", "torch", "hypothesis"]
    return "oracles: " + ", ".join(f"{n} {installed_version(n) or '-'}" for n in names)


def _pin_mismatches(constraints: Path) -> list[str]:
    bad = []
    for line in constraints.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        req = Requirement(line)
        have = installed_version(req.name)
        # not installed is fine (torch is optional); 2.13.0+cpu satisfies ==2.13.0
        if have is not None and not req.specifier.contains(have, prereleases=True):
            bad.append(f"{req.name} {have} (pinned {req.specifier})")
    return bad


def pytest_sessionstart(session):
    # `make test` sets LOWPREC_CONSTRAINTS: the results are only meaningful with the pinned
    # oracles, so a drifted .venv (a manual pip install) stops the run instead of failing
    # tests in confusing ways. `make test-latest` and plain pytest do not set it.
    path = os.environ.get("LOWPREC_CONSTRAINTS")
    if not path or hasattr(session.config, "workerinput"):  # the xdist controller checks
        return
    bad = _pin_mismatches(Path(session.config.rootpath) / path)
    if bad:
        pytest.exit(f"installed packages differ from {path}: " + "; ".join(bad)
                    + f"\nto reinstall the pinned versions: touch {path} && make test",
                    returncode=4)
