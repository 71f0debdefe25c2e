"""griffe extension for the API pages: Google-style entries that name several parameters.

lowprec's docstrings often document parameters that share a meaning on one line,
``scale_a, scale_b: float32 multipliers ...``. Google style (and griffe's parser) expects one
name per entry and warns that a parameter "scale_a, scale_b" is not in the signature. This
extension rewrites such an entry, before the docstring is parsed, into one entry per name
(the first keeps the text, the others refer to it), so ``mkdocs build --strict`` still
catches entries that name parameters which really do not exist.
"""

from __future__ import annotations

import re

import griffe

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Attributes|Keyword Args|"
                      r"Keyword Arguments|Other Parameters):\s*$")
_ITEM = re.compile(r"^(\s*)([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+)\s*:(\s.*|)$")


def split_combined_entries(text: str) -> str:
    """Rewrite ``a, b: text`` entries of Args/Attributes sections into one entry per name.

    The first name keeps the entry (and its continuation lines); each other name gets an
    entry of its own, placed after them, that refers to the first.
    """
    out = []
    section_indent = None  # indentation of the current section header
    pending = []           # entries to emit once the current item's text ends
    item_indent = None

    def flush():
        out.extend(pending)
        pending.clear()

    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if pending and (not line.strip() or indent <= item_indent):
            flush()
        m = _SECTION.match(line)
        if m:
            flush()
            section_indent = len(m.group(1))
            out.append(line)
            continue
        if section_indent is not None and line.strip():
            if indent <= section_indent:
                section_indent = None
            else:
                item = _ITEM.match(line)
                if item:
                    names = [n.strip() for n in item.group(2).split(",")]
                    out.append(f"{item.group(1)}{names[0]}:{item.group(3)}")
                    pending.extend(f"{item.group(1)}{n}: As ``{names[0]}``." for n in names[1:])
                    item_indent = indent
                    continue
        out.append(line)
    flush()
    return "\n".join(out)


class CombinedParams(griffe.Extension):
    """Apply :func:`split_combined_entries` to every docstring griffe loads."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        doc = obj.docstring
        if doc is not None and "," in doc.value:
            new = split_combined_entries(doc.value)
            if new != doc.value:
                doc.value = new
