"""Shared test settings: hypothesis profiles and the oracle format tables."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=120, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")

# lowprec format name -> ml_dtypes dtype name (identical names by design)
ML_DTYPES_FORMATS = [
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3",
    "float8_e3m4", "float6_e3m2fn", "float6_e2m3fn", "float4_e2m1fn", "float8_e8m0fnu",
    "bfloat16",
]
SMALL_FLOAT_FORMATS = ML_DTYPES_FORMATS + ["float16"]
ALL_MODES = ["rne", "rna", "rtz", "rup", "rdn", "rto", "sr"]


def ml_dtype(name):
    """The ml_dtypes (or numpy, for float16) dtype of a lowprec format name."""
    if name == "float16":
        return np.dtype(np.float16)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return np.dtype(getattr(ml_dtypes, name))
