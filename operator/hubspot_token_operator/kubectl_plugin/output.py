"""Formatting for people and for scripts: aligned tables (coloured on a terminal) and ``-o json|yaml``.

Pure functions; the only I/O decision (colour or not) is :func:`use_color`, from the stream and environment.
Machine-readable documents all carry ``apiVersion: kubectl-hubspot.hubspot-operator.dev/v1`` and a ``kind``
(the shapes are documented in docs/kubectl-plugin.md and pinned by tests/unit/test_kubectl_plugin.py).
"""

from __future__ import annotations

import json
import re
from typing import Iterable, Mapping

DOC_API_VERSION = "kubectl-hubspot.hubspot-operator.dev/v1"
FORMATS = ("json", "yaml")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_COLORS = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}
# Cell values that get a colour on a terminal (READY column, check results, rotation outcomes).
_VALUE_COLORS = {
    "True": "green", "OK": "green", "Published": "green", "Ready": "green",
    "False": "red", "FAIL": "red", "Rejected": "red", "NotReady": "red",
    "Unknown": "yellow", "WARN": "yellow", "Pending": "yellow",
}


def use_color(stream, environ: Mapping[str, str]) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org: any value)."""
    if "NO_COLOR" in environ:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def paint(text: str, color: str | None, enabled: bool) -> str:
    if not enabled or not color or not text:
        return text
    return f"\x1b[{_COLORS[color]}m{text}\x1b[0m"


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def table(headers: list[str], rows: Iterable[Iterable[object]], color: bool = False, indent: str = "") -> list[str]:
    """kubectl-style columns: left-aligned, two spaces apart, the last column not padded. On a terminal the
    header is bold and known status words are coloured (alignment ignores the escape codes)."""
    body = [["-" if c is None or c == "" else str(c) for c in r] for r in rows]
    allrows = [list(headers)] + body
    n = len(headers)
    widths = [max(len(r[i]) for r in allrows) for i in range(n)]
    out = []
    for ri, r in enumerate(allrows):
        cells = []
        for i, cell in enumerate(r):
            shown = paint(cell, "bold" if ri == 0 else _VALUE_COLORS.get(cell), color)
            pad = "" if i == n - 1 else " " * (widths[i] - len(cell))
            cells.append(shown + pad)
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def document(kind: str, **fields) -> dict:
    return {"apiVersion": DOC_API_VERSION, "kind": kind, **fields}


def dump(doc: object, fmt: str) -> str:
    """``json`` (indented, keys in insertion order) or ``yaml`` (block style, keys in insertion order)."""
    if fmt == "json":
        return json.dumps(doc, indent=2, default=str)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")
    raise ValueError(f"unknown output format {fmt!r}")
