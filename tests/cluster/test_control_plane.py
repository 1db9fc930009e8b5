"""Proves the local control plane is a real one: CRDs, controllers, scheduler + kwok, RBAC."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from kubernetes import client

from tests.cluster import workloads as w
from tests.helpers import wait_for

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.cp-test.example.com}
spec:
  group: cp-test.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties: {size: {type: integer, minimum: 1}}
          status:
            type: object
            properties: {phase: {type: string}}
"""


def _available(apps: client.AppsV1Api, ns: str, name: str) -> bool:
    d = apps.read_namespaced_deployment(name, ns)
    st = d.status
    return (
        st.observed_generation == d.metadata.generation
        and (st.updated_replicas or 0) == d.spec.replicas
        and (st.available_replicas or 0) == d.spec.replicas
        and not st.unavailable_replicas
    )


def test_kwok_node_is_ready(core):
    nodes = core.list_node().items
    ready = [n.metadata.name for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
    assert "kwok-node-0" in ready


def test_crd_round_trip_with_status_subresource(api, custom, namespace):
    ext = client.ApiextensionsV1Api(api)
    crd = yaml.safe_load(WIDGET_CRD)
    try:
        ext.create_custom_resource_definition(crd)
    except client.ApiException as e:
        assert e.status == 409
    wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition("widgets.cp-test.example.com").status.conditions or [])
        ),
        what="CRD established",
    )
    g, v, p = "cp-test.example.com", "v1", "widgets"
    body = {"apiVersion": f"{g}/{v}", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
    wait_for(lambda: custom.create_namespaced_custom_object(g, v, namespace, p, body), what="create widget")

    # Schema validation is enforced by the real API server.
    bad = dict(body, metadata={"name": "w2"}, spec={"size": 0})
    with pytest.raises(client.ApiException) as err:
        custom.create_namespaced_custom_object(g, v, namespace, p, bad)
    assert err.value.status == 422

    # status is a subresource: writing it through the main resource is ignored, through /status it sticks.
    custom.patch_namespaced_custom_object(g, v, namespace, p, "w1", {"status": {"phase": "ignored"}})
    assert "status" not in custom.get_namespaced_custom_object(g, v, namespace, p, "w1")
    custom.patch_namespaced_custom_object_status(g, v, namespace, p, "w1", {"status": {"phase": "Ready"}})
    got = custom.get_namespaced_custom_object(g, v, namespace, p, "w1")
    assert got["status"]["phase"] == "Ready"
    assert got["spec"]["size"] == 3


def test_deployment_becomes_available_and_rollout_restart_completes(apps, namespace, cluster):
    w.deployment(apps, namespace, "web", replicas=2)
    wait_for(lambda: _available(apps, namespace, "web"), timeout=60, what="deployment Available")
    first = {rs.metadata.name for rs in apps.list_namespaced_replica_set(namespace).items}
    assert len(first) == 1

    subprocess.run(["kubectl", "rollout", "restart", "deployment/web", "-n", namespace], check=True,
                   env=_kubectl_env(cluster))
    wait_for(
        lambda: len(apps.list_namespaced_replica_set(namespace).items) == 2, timeout=30, what="a second ReplicaSet"
    )
    subprocess.run(
        ["kubectl", "rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s"],
        check=True,
        env=_kubectl_env(cluster),
    )
    wait_for(lambda: _available(apps, namespace, "web"), timeout=60, what="restarted deployment Available")
    rss = apps.list_namespaced_replica_set(namespace).items
    new = [rs for rs in rss if rs.metadata.name not in first]
    assert len(new) == 1 and new[0].status.ready_replicas == 2


def test_rbac_denies_serviceaccount_without_permissions(api, core, namespace, cluster):
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody")))
    tr = core.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    )
    cfg = client.Configuration()
    cfg.host = api.configuration.host
    cfg.verify_ssl = api.configuration.verify_ssl
    cfg.ssl_ca_cert = api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": "Bearer " + tr.status.token}
    as_sa = client.CoreV1Api(client.ApiClient(cfg))
    with pytest.raises(client.ApiException) as err:
        as_sa.list_namespaced_secret(namespace)
    assert err.value.status == 403
    # The token is genuinely authenticated (403, not 401): the API server knows who we are.
    assert "system:serviceaccount:" + namespace + ":nobody" in err.value.body


def _kubectl_env(cluster) -> dict:
    return dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))


def test_cluster_up_and_down_from_a_shell_repeatedly_without_leaks(cluster, tmp_path):
    """`make cluster-up` / `make cluster-down` are this CLI; two rounds, then no process or port is left."""
    import json
    import socket
    import sys
    from pathlib import Path

    cli = [str(Path(sys.executable).parent / "hto-devcluster"), "--state-dir", str(tmp_path / "c")]
    for _ in range(2):
        up = subprocess.run([*cli, "up"], capture_output=True, text=True, timeout=180)
        assert up.returncode == 0, up.stderr
        last = up.stdout.strip().splitlines()[-1]
        assert last == f"export KUBECONFIG={tmp_path / 'c' / 'kubeconfig'}"
        pids = json.loads((tmp_path / "c" / "pids.json").read_text())
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
        server = yaml.safe_load((tmp_path / "c" / "kubeconfig").read_text())["clusters"][0]["cluster"]["server"]
        port = int(server.rsplit(":", 1)[1])
        nodes = subprocess.run(["kubectl", "get", "nodes"], capture_output=True, text=True,
                               env=dict(os.environ, KUBECONFIG=str(tmp_path / "c" / "kubeconfig")))
        assert "kwok-node-0" in nodes.stdout and " Ready" in nodes.stdout
        down = subprocess.run([*cli, "down"], capture_output=True, text=True, timeout=60)
        assert down.returncode == 0 and "stopped" in down.stdout
        for pid in pids.values():
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # the API server's port is free again
        assert not (tmp_path / "c").exists()
