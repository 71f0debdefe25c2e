"""Every ```python example in README.md runs as written: the blocks in order, in one
namespace, as a reader pasting them into one session would run them (shell blocks and
plain output blocks are not Python and are not run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_readme_has_python_examples():
    # guards the extraction: a changed fence style must not make the test below vacuous
    assert len(_BLOCK.findall(README.read_text())) >= 3


def test_readme_examples_run():
    ns = {"__name__": "readme"}
    for i, block in enumerate(_BLOCK.findall(README.read_text())):
        try:
            exec(compile(block, f"README.md [python block {i + 1}]", "exec"), ns)
        except ModuleNotFoundError as e:  # optional oracles only
            if e.name in ("torch", "ml_dtypes"):
                pytest.skip(f"README.md needs {e.name}")
            raise
