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
def namespace(core, api) -> str:
    """A fresh namespace per test, deleted afterwards even when the test fails. Before deletion its
    Events and HubSpotTokens are kept for the end-of-session secret-leak check."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        _keep_for_leak_check(api, name)
        try:
            core.delete_namespace(name)
        except client.ApiException:
            pass


def _keep_for_leak_check(api, ns: str) -> None:
    import json

    from hubspot_token_operator import GROUP, PLURAL, VERSION
    from tests.cluster import tokens

    try:
        events = client.CoreV1Api(api).list_namespaced_event(ns).items
        tokens.OBSERVED.append(json.dumps([api.sanitize_for_serialization(e) for e in events]))
        objs = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        tokens.OBSERVED.append(json.dumps(objs))
    except client.ApiException:
        pass  # e.g. the CRD is not installed in a control-plane-only test


# ---- the operator under test and the HubSpot simulator ----------------------------------------------

import subprocess  # noqa: E402

from tests.cluster.harness import Operator, Simulator  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NS = "hto-system"
IN_POD_LABEL = "hto.dev/in-pod"


@pytest.fixture(scope="session")
def crds(cluster, api):
    """Installs the project's CRDs (crds/) into the cluster and waits until they are served."""
    for crd in sorted((REPO / "crds").glob("*.yaml")):
        subprocess.run(
            ["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(crd)],
            check=True, env=dict(os.environ, KUBECONFIG=str(cluster.kubeconfig)), capture_output=True,
        )
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "crd/hubspottokens.hubspot-operator.dev", "--timeout=30s"],
        check=True, env=dict(os.environ, KUBECONFIG=str(cluster.kubeconfig)), capture_output=True,
    )
    return True


@pytest.fixture(scope="session")
def simulator(tmp_path_factory):
    sim = Simulator(tmp_path_factory.mktemp("sim") / "hubspot-sim.log").start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def operator(cluster, core, crds, simulator, tmp_path_factory):
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NS)))
    except client.ApiException as e:
        if e.status != 409:
            raise
    op = Operator(cluster.kubeconfig, simulator, tmp_path_factory.mktemp("operator") / "operator.log", OPERATOR_NS)
    # A second name for the same simulator, allowed for tokens that set spec.hubspot.baseURL (the operator's
    # allow-list; any other URL is refused: tests/cluster/test_tenancy.py).
    # Tokens labelled IN_POD_LABEL belong to the operator that runs as a pod on the real node
    # (test_real_node.py): this one leaves them alone, as a second shard would.
    op.start("--allow-hubspot-url", simulator.url.replace("127.0.0.1", "localhost"),
             "--token-selector", f"!{IN_POD_LABEL}")
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def app(simulator, core, namespace):
    """A HubSpot app in the simulator with its client Secret (hubspot-app) in the test namespace."""
    from tests.cluster import tokens

    a = simulator.create_app()
    tokens.put_secret(core, namespace, "hubspot-app", {"client_id": a["client_id"], "client_secret": a["client_secret"]})
    tokens.remember(a["client_secret"])
    return a


# ---- the real node (kubelet + containerd + runc) and the operator's own image -------------------------

@pytest.fixture(scope="session")
def real_node(cluster, tmp_path_factory):
    """A real node next to the kwok one, with the operator's image (built from the Dockerfile, cached by
    content) loaded into its containerd. Started by the first test that asks for it; never skipped: on a
    machine that cannot run it, those tests error with the command that failed."""
    from hubspot_token_operator.devcluster.images import ensure_images
    from hubspot_token_operator.devcluster.real_node import RealNode

    if isinstance(cluster, _Existing):
        pytest.fail("the real-node tests start their own node; against --existing-kubeconfig (kind) use "
                    "`make kind-test`, which runs them with HTO_TEST_IMAGE on kind's nodes")
    images = ensure_images(cluster.assets["pause"])
    print(f"\nimages ready in {images.seconds:.1f}s (built: {', '.join(images.built) or 'nothing, all cached'})")
    node = RealNode(cluster, tmp_path_factory.mktemp("real-node"), cluster.assets["kubelet"],
                    images=list(images.archives), sandbox_image=images.pause)
    node.start()
    node.image = images.operator
    print(f"real node Ready in {node.ready_in:.1f}s (images loaded in {node.images_loaded_in:.1f}s)")
    try:
        yield node
    finally:
        node.stop()
