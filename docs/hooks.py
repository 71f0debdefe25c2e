"""mkdocs hooks: generated content, so the docs cannot drift from the code.

- ``on_files``: adds the pictures of :mod:`make_figures` (drawn at build time) as files.
- ``on_page_markdown``: replaces ``{{ formats_table }}`` with the table of every named
  format, generated from the registry; rewrites ``::: lowprec.NAME`` for names the package
  exports lazily (``lowprec.LPArray``, ``lowprec.matmul``, ...) to the module defining them,
  so API pages follow the code when a module is renamed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from fractions import Fraction
from pathlib import Path

from mkdocs.structure.files import File

_DOCS = Path(__file__).resolve().parent


def _load_make_figures():
    spec = importlib.util.spec_from_file_location("lowprec_docs_figures", _DOCS / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def on_files(files, config):
    for path, data in _load_make_figures().figures().items():
        files.append(File.generated(config, path, content=data))
    return files


def _pow2(x) -> str:
    f = Fraction(x)
    if f > 0 and f.numerator & (f.numerator - 1) == 0 and f.denominator == 1:
        return f"2^{f.numerator.bit_length() - 1}"
    if f > 0 and f.numerator == 1 and f.denominator & (f.denominator - 1) == 0:
        return f"2^-{f.denominator.bit_length() - 1}"
    return f"{float(f):.6g}"


def formats_table() -> str:
    """Markdown table of every named format, from :func:`lowprec.list_formats`."""
    import lowprec
    from lowprec.formats import _ALIASES, FloatFormat

    aliases = {}
    for a, n in _ALIASES.items():
        aliases.setdefault(n, []).append(a)
    rows = ["| name | aliases | bits | exp | man | bias | p | max | min normal | "
            "min subnormal | inf | NaN encoding |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in lowprec.list_formats():
        al = ", ".join(f"`{a}`" for a in sorted(aliases.get(f.name, [])))
        if isinstance(f, FloatFormat):
            sub = _pow2(f.min_subnormal) if f.subnormals else "(none)"
            rows.append(f"| `{f.name}` | {al} | {f.bits} | {f.exp_bits} | {f.man_bits} | "
                        f"{f.bias} | {f.precision} | {float(f.max_exact):.8g} | "
                        f"{_pow2(f.min_normal)} | {sub} | {'yes' if f.has_inf else 'no'} | "
                        f"{f.nan} |")
        else:
            rows.append(f"| `{f.name}` | {al} | {f.bits} | | | | | {f.max:g} | "
                        f"min {f.min:g} | step {_pow2(f.resolution)} | no | none |")
    return "\n".join(rows)


def _lazy_target(match) -> str:
    import lowprec

    name, rest = match.group(1), match.group(2) or ""
    module = lowprec._LAZY.get(name)
    if module is None:
        return match.group(0)
    return f"::: {module}.{name}{rest}"


def on_page_markdown(markdown, page, config, files):
    if "{{ formats_table }}" in markdown:
        markdown = markdown.replace("{{ formats_table }}", formats_table())
    return re.sub(r"^::: lowprec\.([A-Za-z_]\w*)(\.\w+)*$", _lazy_target, markdown,
                  flags=re.MULTILINE)
