"""The house plan holds: import-linter's contracts (pyproject.toml) are kept: layers one
way, function-level imports included, and no cycles among sibling modules."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or \
        shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_import_lowprec_loads_no_numba_torch_or_matplotlib():
    code = ("import sys, lowprec; "
            "print(sorted(m for m in ('numba', 'torch', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_function_level_imports_only_defer_the_kernels():
    # An import inside a function is allowed for one reason: loading numba (the kernels) on
    # first use rather than on `import lowprec`. Anything else inside a function would be a
    # dodged cycle or an upward import (import-linter sees those too; this says why).
    import ast

    bad = []
    for path in sorted((ROOT / "lowprec").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "")
                                                         .startswith("lowprec")):
                    mod = node.module or ""
                    if not (mod == "_kernels" or mod.startswith("_kernels.")):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {mod}")
                elif isinstance(node, ast.Import):
                    bad += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}"
                            for a in node.names if a.name.startswith("lowprec")]
    assert not bad, bad
