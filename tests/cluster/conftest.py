"""Cluster fixtures: one real control plane per session, one namespace per test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from hubspot_token_operator.devcluster import LocalCluster


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The session's control plane. Never skipped: if it cannot start, every cluster test errors loudly."""
    existing = request.config.getoption("--existing-kubeconfig")
    if existing:
        yield _Existing(Path(existing))
        return
    state = tmp_path_factory.mktemp("cluster")
    lc = LocalCluster(state_dir=state)
    lc.start()
    print(f"\nlocal control plane ready in {lc.started_in:.1f}s ({state})")
    os.environ["PATH"] = os.pathsep.join(lc.assets.bin_dirs + [os.environ.get("PATH", "")])
    try:
        yield lc
    finally:
        lc.stop()


class _Existing:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig


@pytest.fixture(scope="session")
def api(cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def apps(api) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(scope="session")
def custom(api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture
def namespace(core) -> str:
    """A fresh namespace per test, deleted afterwards even when the test fails."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except client.ApiException:
            pass
