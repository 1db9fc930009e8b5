"""The repository is self-contained: no test, source, doc or build file reaches for data outside it.

A fresh clone must be able to run `make test`; a path into a sibling checkout only works on the machine it was
written on. Data the tests need lives in the repository (e.g. tests/data/hubspot-openapi/).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Not part of the repository's content: tool state, virtualenvs, build output, caches.
SKIP_DIRS = {
    ".git", ".venv", "venv", "build", "dist", ".cluster", "demo-state", "__pycache__", ".pytest_cache",
    ".mypy_cache", ".ruff_cache", "node_modules",
}
MAX_BYTES = 2_000_000

# Spelled in pieces so this file does not match itself.
SHARED = "sha" + "red"
OUTSIDE = [
    (re.compile(r"\.\./+" + SHARED + r"\b"), "a path into a sibling shared/ checkout"),
    (re.compile(r"/work/+" + SHARED + r"\b"), "an absolute path into the shared workspace"),
    (re.compile(r"\b\w*(?:REPO|ROOT)\w*\.parent\b"), "a path built from the repository root's parent"),
]
FILE_PARENTS = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")


def repo_files() -> list[Path]:
    out = []
    stack = [REPO]
    while stack:
        d = stack.pop()
        for p in d.iterdir():
            if p.is_dir():
                if p.name not in SKIP_DIRS and not p.name.endswith(".egg-info"):
                    stack.append(p)
            elif p.is_file() and p.stat().st_size <= MAX_BYTES:
                out.append(p)
    return sorted(out)


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_the_scan_covers_tests_sources_docs_and_build_files():
    rel = {str(p.relative_to(REPO)) for p in repo_files()}
    for expected in ("Makefile", ".ci/run", "README.md", "docs/simulator.md", "tests/unit/test_conformance.py",
                     "tests/cluster/conftest.py", "operator/hubspot_token_operator/__init__.py",
                     "tests/data/hubspot-openapi/oauth-2026-03.json"):
        assert expected in rel, expected


def test_no_file_references_a_path_outside_the_repository():
    found = []
    for path in repo_files():
        text = text_of(path)
        if text is None:
            continue
        rel = path.relative_to(REPO)
        for lineno, line in enumerate(text.splitlines(), 1):
            for pattern, what in OUTSIDE:
                if pattern.search(line):
                    found.append(f"{rel}:{lineno}: {what}: {line.strip()[:120]}")
            if path.suffix == ".py":
                for m in FILE_PARENTS.finditer(line):
                    # parents[len(parts) - 1] of a file is the repository root; anything higher is outside it
                    if int(m.group(1)) >= len(rel.parts):
                        found.append(f"{rel}:{lineno}: climbs above the repository root: {line.strip()[:120]}")
    assert not found, "references to paths outside the repository:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_meant_to():
    bad = [
        "SPEC_DIR = ROOT / '..' / '../" + SHARED + "/hubspot-openapi'",
        "see /work/" + SHARED + "/docs/x.md",
        "SPEC_DIR = REPO_ROOT" + ".parent / '" + SHARED + "' / 'hubspot-openapi'",
    ]
    for line in bad:
        assert any(p.search(line) for p, _ in OUTSIDE), line
    for line in ("shared Deployment", "REPO / 'tests' / 'data'", "a shared grant cache", "Path(sys.executable).parent"):
        assert not any(p.search(line) for p, _ in OUTSIDE), line
    m = FILE_PARENTS.search("REPO = Path(__file__).resolve()" + ".parents[3]")
    assert m and int(m.group(1)) >= len(("tests", "unit", "x.py"))
