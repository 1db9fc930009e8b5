"""Shared pytest wiring: every test under tests/cluster/ is a cluster test (real control plane)."""

from __future__ import annotations

from pathlib import Path

import pytest

CLUSTER_DIR = Path(__file__).parent / "cluster"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--existing-kubeconfig",
        default=None,
        help="run cluster tests against this existing test cluster instead of starting a local one",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
