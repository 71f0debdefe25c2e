"""All 2^32 float32 patterns into every oracle-backed format (slow: `make test-slow`).

A fast slice of the same sweep (stride 2^16+1, every mode) runs in the default suite.
"""

import importlib.util
import pathlib

import pytest

_spec = importlib.util.spec_from_file_location(
    "sweep_float32", pathlib.Path(__file__).parents[1] / "scripts" / "sweep_float32.py")
sweep_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep_mod)


@pytest.mark.parametrize("name", sweep_mod.ORACLE_FORMATS)
@pytest.mark.parametrize("mode", ["rne", "rtz", "rup", "rdn"])
def test_strided_slice(name, mode):
    checked, bad, _ = sweep_mod.sweep(name, mode, stride=65537, progress=False)
    assert bad == 0 and checked > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("name", sweep_mod.ORACLE_FORMATS)
def test_all_float32_patterns_rne(name):
    checked, bad, known = sweep_mod.sweep(name, "rne", stride=1, progress=False)
    assert bad == 0 and checked + known == 2**32


@pytest.mark.slow
@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "bfloat16", "float4_e2m1fn"])
@pytest.mark.parametrize("mode", ["rtz", "rup", "rdn"])
def test_all_float32_patterns_directed(name, mode):
    checked, bad, _ = sweep_mod.sweep(name, mode, stride=1, progress=False)
    assert bad == 0
