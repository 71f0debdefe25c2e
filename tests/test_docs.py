"""The documentation: the site builds in strict mode (a broken reference or docstring fails),
the generated formats table matches the registry, and every ```python example on every page
runs (each page's blocks in order, in one namespace)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lowprec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is not installed")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                        str(ROOT / "mkdocs.yml"), "-d", str(site)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for page in ["formats", "rounding", "compatibility", "benchmarks", "api/gemm", "api/array"]:
        assert (site / page / "index.html").is_file(), page
    for img in ["rounding_modes", "number_lines", "relative_error", "sr_probability", "error_vs_k"]:
        assert (site / "img" / f"{img}.png").read_bytes()[:4] == b"\x89PNG"
    html = (site / "formats" / "index.html").read_text()
    for f in lowprec.list_formats():
        assert f"<code>{f.name}</code>" in html, f.name
    assert "{{ formats_table }}" not in html
    # the API pages render the docstrings of the public entry points
    assert "acc_rounding" in (site / "api" / "gemm" / "index.html").read_text()
    assert "LPArray" in (site / "api" / "array" / "index.html").read_text()


def test_formats_table_is_the_registry():
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    hooks = _load("lowprec_docs_hooks", DOCS / "hooks.py")
    rows = hooks.formats_table().splitlines()[2:]
    assert [r.split("|")[1].strip().strip("`") for r in rows] == [f.name for f in lowprec.list_formats()]
    e4m3 = next(r for r in rows if r.startswith("| `float8_e4m3fn`"))
    cells = [c.strip() for c in e4m3.split("|")[1:-1]]
    assert cells[2:] == ["8", "4", "3", "7", "4", "448", "2^-6", "2^-9", "no", "all_ones"]
    assert "`e4m3`" in cells[1]


def test_griffe_extension_splits_combined_entries():
    pytest.importorskip("griffe", reason="griffe (mkdocstrings[python]) is not installed")
    ext = _load("lowprec_docs_griffe", DOCS / "griffe_extensions.py")
    text = "S.\n\nArgs:\n    a, b: the operands\n        more.\n    c: x\n\nReturns:\n    y, z: kept\n"
    assert ext.split_combined_entries(text) == (
        "S.\n\nArgs:\n    a: the operands\n        more.\n    b: As ``a``.\n    c: x\n\n"
        "Returns:\n    y, z: kept")


@pytest.mark.parametrize("page", [p for p in PAGES if _BLOCK.search((DOCS / p).read_text())])
def test_page_examples_run(page, capsys):
    pytest.importorskip("matplotlib")
    ns = {"__name__": f"docs_{page}"}
    for i, block in enumerate(_BLOCK.findall((DOCS / page).read_text())):
        try:
            exec(compile(block, f"docs/{page} [python block {i + 1}]", "exec"), ns)
        except ModuleNotFoundError as e:  # optional oracles only
            if e.name in ("torch", "ml_dtypes"):
                pytest.skip(f"{page} needs {e.name}")
            raise
