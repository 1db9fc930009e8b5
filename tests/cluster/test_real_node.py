"""The operator's own image, built from the Dockerfile, runs as a pod on a real node (kubelet + containerd +
runc), installed by the chart with its ServiceAccount, securityContext and probes; consumers on the same
node really read the Secret it writes.

Everything here runs real processes: the image is the one `make image` builds (on a Debian base made by
mmdebstrap, no registry), the pod's credentials are the projected ServiceAccount token, RBAC is the chart's,
and the consumers' own output (their pod log files) shows which token they hold. Pods use hostNetwork: the
node has no pod network, and all traffic stays on loopback (docs/real-node.md).

The session's host-process operator leaves tokens labelled `hto.dev/in-pod` alone (conftest.py), so every
token here is served by the pod and only by it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from hubspot_token_operator.devcluster.cluster import free_port
from hubspot_token_operator.devcluster.images import cache_dir, podman_env
from hubspot_token_operator.devcluster.real_node import placement
from tests.cluster import tokens as t
from tests.cluster.conftest import IN_POD_LABEL
from tests.cluster.workloads import CONSENT
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hubspot-token-operator"
RELEASE = "hto-pod"
HUB = 4242
TOKEN_ROUTE = "POST /oauth/2026-03/token"
SHARD = {IN_POD_LABEL: "true"}


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _run(cluster, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout)


class PodOperator:
    """The chart's release: where it runs, and how to find its pod."""

    def __init__(self, cluster, core, apps, release_ns: str, watched: str, values: dict) -> None:
        self.cluster, self.core, self.apps = cluster, core, apps
        self.release_ns, self.watched, self.values = release_ns, watched, values

    @property
    def deployment(self) -> str:
        return RELEASE + "-hubspot-token-operator" if "hubspot-token-operator" not in RELEASE else RELEASE

    def pods(self, terminating: bool = False) -> list[client.V1Pod]:
        """The operator's pods; with `terminating`, also those being deleted (their process may still run:
        kubelet sends SIGTERM a moment after the deletion is recorded)."""
        return [p for p in self.core.list_namespaced_pod(self.release_ns).items
                if terminating or not p.metadata.deletion_timestamp]

    def running(self) -> client.V1Pod:
        """Scales to 1 (a no-op when it is) and waits for a Ready pod."""
        self.scale(1)
        return wait_for(self.ready_pod, timeout=120, what="an operator pod Ready")

    def ready_pod(self) -> client.V1Pod | None:
        for p in self.pods():
            conds = {c.type: c.status for c in p.status.conditions or []}
            if p.status.phase == "Running" and conds.get("Ready") == "True":
                return p
        return None

    def scale(self, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(self.deployment, self.release_ns, {"spec": {"replicas": replicas}})

    def diagnose(self, node) -> str:
        """Pod phases, container states, recent Events and the operator's output: for failure messages."""
        lines = []
        for p in self.core.list_namespaced_pod(self.release_ns).items:
            states = [(s.name, s.ready, s.restart_count, s.state.to_dict()) for s in p.status.container_statuses or []]
            lines.append(f"pod {p.metadata.name}: {p.status.phase} on {p.spec.node_name}: {states}")
        for ev in self.core.list_namespaced_event(self.release_ns).items[-15:]:
            lines.append(f"event {ev.involved_object.kind}/{ev.involved_object.name}: {ev.reason}: {ev.message}")
        lines.append("operator output (last 40 lines):")
        lines += self.logs(node).splitlines()[-40:]
        return "\n".join(lines)

    def logs(self, node) -> str:
        return "\n".join(node.pod_log(self.release_ns, p.metadata.name, "operator")
                         for p in self.core.list_namespaced_pod(self.release_ns).items)


@pytest.fixture(scope="module")
def pod_operator(cluster, core, apps, crds, simulator, real_node):
    suffix = uuid.uuid4().hex[:6]
    release_ns, watched = f"hto-pod-{suffix}", f"hto-pod-app-{suffix}"
    for ns in (release_ns, watched):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    repo, tag = real_node.image.rsplit(":", 1)
    place = placement()
    values = {
        "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
        "replicaCount": 1,
        "hostNetwork": True,
        "nodeSelector": place["nodeSelector"],
        "tolerations": place["tolerations"],
        "topologySpreadConstraints": [],
        # host ports (hostNetwork): free ones on this machine
        "metrics": {"port": free_port(), "service": {"enabled": True, "port": 8080}},
        "health": {"port": free_port()},
        "watch": {"mode": "namespaces", "namespaces": [watched]},
        "tokenSelector": IN_POD_LABEL,
        "hubspot": {"baseURL": simulator.url, "allowedURLs": [simulator.url]},
        "logLevel": "DEBUG",
        # No kube-proxy on this cluster: the `kubernetes` Service's ClusterIP leads nowhere, so the in-cluster
        # configuration is pointed at the API server's loopback address (explicit env wins over the
        # injected service variables). The token and CA are still the pod's projected ones.
        "extraEnv": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                     {"name": "KUBERNETES_SERVICE_PORT", "value": str(cluster.api_port)}],
    }
    values_file = Path(cluster.state_dir) / f"values-{suffix}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    res = _run(cluster, "helm", "install", RELEASE, str(CHART), "-n", release_ns, "-f", str(values_file))
    assert res.returncode == 0, res.stderr
    op = PodOperator(cluster, core, apps, release_ns, watched, values)
    try:
        try:
            wait_for(op.ready_pod, timeout=120, what="the operator pod Ready on the real node")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{op.diagnose(real_node)}") from None
        yield op
    finally:
        _run(cluster, "helm", "uninstall", RELEASE, "-n", release_ns, "--wait", "--timeout", "60s")
        for ns in (release_ns, watched):
            try:
                core.delete_namespace(ns)
            except client.ApiException:
                pass


# ---- the image and the pod are what the chart promises ---------------------------------------------------


def test_operator_pod_runs_non_root_read_only_with_live_probes(pod_operator, real_node, core):
    pod = pod_operator.ready_pod()
    assert pod.spec.node_name == "hto-real-node"
    status = pod.status.container_statuses[0]
    assert status.ready and status.started and status.image == real_node.image
    # The probes are in the spec and kubelet has run them: Ready needs the readiness probe to pass.
    c = pod.spec.containers[0]
    for probe, path in ((c.startup_probe, "/healthz"), (c.liveness_probe, "/healthz"), (c.readiness_probe, "/readyz")):
        assert probe is not None and probe.http_get.path == path, c
    # The container's process, seen from the host: not root, capabilities dropped, root filesystem read-only.
    pid = real_node.task_pid(status.container_id)
    assert pid, f"no running task for {status.container_id}"
    proc_status = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", proc_status, re.M).groups()
    assert uids == ("65532", "65532"), proc_status
    assert re.search(r"^CapEff:\s+0+$", proc_status, re.M), "the operator keeps capabilities"
    assert re.search(r"^NoNewPrivs:\s+1$", proc_status, re.M)
    write = subprocess.run(["nsenter", "-t", str(pid), "-m", "-S", "65532", "-G", "65532", "--",
                            "/bin/sh", "-c", "echo x > /probe-write"], capture_output=True, text=True)
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write
    tmp = subprocess.run(["nsenter", "-t", str(pid), "-m", "-S", "65532", "-G", "65532", "--",
                          "/bin/sh", "-c", "echo x > /tmp/probe-write && rm /tmp/probe-write"],
                         capture_output=True, text=True)
    assert tmp.returncode == 0, tmp.stderr  # /tmp is the emptyDir the chart mounts
    # The image itself says non-root (so runAsNonRoot can check it without the chart's runAsUser).
    inspect = subprocess.run(["podman", "image", "inspect", "--format", "{{.Config.User}}", real_node.image],
                             env=podman_env(cache_dir()), capture_output=True, text=True)
    assert inspect.stdout.strip() == "65532:65532", inspect
    # In-cluster configuration: no kubeconfig in the pod; the projected ServiceAccount token is mounted.
    env = {e.name for e in c.env or []}
    assert "KUBECONFIG" not in env
    assert any(v.projected for v in pod.spec.volumes or []), "no projected ServiceAccount token volume"
    assert "operator started" in pod_operator.logs(real_node)


# ---- OAuth, rotation and restart, with the pod doing the work ----------------------------------------------


def _consumer(apps, ns: str, name: str, secret: str, image: str) -> None:
    """A Deployment on the real node that reads the token both ways a workload does, a mounted file and an
    env var from secretKeyRef, and prints their SHA-256 every second (never the token)."""
    script = ('while true; do printf "env=%s file=%s\\n" '
              '"$(printf %s "$HUBSPOT_TOKEN" | sha256sum | cut -c1-64)" '
              '"$(sha256sum < /etc/hubspot/access_token | cut -c1-64)"; sleep 1; done')
    place = placement()
    apps.create_namespaced_deployment(ns, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(CONSENT)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    **place,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "app", "image": image, "imagePullPolicy": "Never",
                        "command": ["/bin/sh", "-c", script],
                        "env": [{"name": "HUBSPOT_TOKEN",
                                 "valueFrom": {"secretKeyRef": {"name": secret, "key": "access_token"}}}],
                        "volumeMounts": [{"name": "hubspot", "mountPath": "/etc/hubspot", "readOnly": True}],
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "readOnlyRootFilesystem": True,
                                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }],
                    "volumes": [{"name": "hubspot", "secret": {"secretName": secret}}],
                },
            },
        },
    })


def _running_pods(core, ns: str, app: str) -> list[client.V1Pod]:
    return [p for p in core.list_namespaced_pod(ns, label_selector=f"app={app}").items
            if p.status.phase == "Running" and not p.metadata.deletion_timestamp]


def _pods(core, ns: str, app: str) -> list[str]:
    return [p.metadata.name for p in core.list_namespaced_pod(ns, label_selector=f"app={app}").items]


def _last_line(node, ns: str, pod: str) -> str:
    lines = [ln for ln in node.pod_log(ns, pod, "app").splitlines() if ln.startswith("env=")]
    return lines[-1] if lines else ""


def _sees(node, core, ns: str, app: str, token: str) -> list[str] | None:
    """The names of the consumer pods if every running one prints this token from env and from the file."""
    want = f"env={_sha(token)} file={_sha(token)}"
    pods = _running_pods(core, ns, app)
    if pods and all(_last_line(node, ns, p.metadata.name) == want for p in pods):
        return [p.metadata.name for p in pods]
    return None


def test_oauth_rotation_and_restart_end_to_end_in_the_pod(pod_operator, real_node, cluster, core, apps, custom,
                                                         simulator):
    ns = pod_operator.watched
    # --- OAuth: the pod refreshes with the chart's RBAC and the projected token
    a = simulator.create_app()
    t.remember(a["client_secret"])
    t.put_secret(core, ns, "hubspot-app", {"client_id": a["client_id"], "client_secret": a["client_secret"]})
    t.put_secret(core, ns, "crm-install", {"refresh_token": simulator.install(a["client_id"], HUB, ["oauth"])})
    body = t.oauth_token("crm", target="crm-out")
    body["metadata"]["labels"] = dict(SHARD)
    t.create(custom, ns, body)
    wait_for(lambda: t.condition(t.get(custom, ns, "crm"), "Ready").get("status") == "True", timeout=60,
             what="OAuth token Ready, served by the pod")
    oauth_secret = t.read_secret(core, ns, "crm-out")
    assert simulator.bearer_ok(oauth_secret["access_token"])

    # --- private app: a consumer on the real node reads the published token
    pa = simulator.private_app(HUB, ["oauth"])
    t.remember(pa["token"])
    t.put_secret(core, ns, "pa-source", {"token": pa["token"]})
    body = t.private_app_token("pa", target="pa-out", rollout={
        "delay": "0s", "targets": [{"kind": "Deployment", "name": "consumer"}]})
    body["metadata"]["labels"] = dict(SHARD)
    t.create(custom, ns, body)
    wait_for(lambda: (t.read_secret(core, ns, "pa-out") or {}).get("access_token") == pa["token"], timeout=60,
             what="private-app token published by the pod")
    _consumer(apps, ns, "consumer", "pa-out", real_node.image)
    first = wait_for(lambda: _sees(real_node, core, ns, "consumer", pa["token"]), timeout=90,
                     what="the consumer container prints the first token")

    # --- rotation ("expire later"): the pod verifies, publishes, restarts the consumer; the new pod reads the
    # new token from env and file, and the old pod is gone
    second = simulator.rotate(pa["app_id"], "later")
    t.remember(second)
    t.put_secret(core, ns, "pa-source", {"token": second})
    rotated = wait_for(lambda: _sees(real_node, core, ns, "consumer", second), timeout=120,
                       what="a new consumer pod prints the rotated token")
    assert not set(rotated) & set(first), (first, rotated)
    wait_for(lambda: not set(_pods(core, ns, "consumer")) & set(first), timeout=60, what="the old consumer pod gone")
    kept = (t.read_secret(core, ns, "pa-out") or {}).get("previous_access_token") == pa["token"]
    assert kept, "the first token is not kept as previous_access_token (values not shown)"

    # --- the operator restarts (scaled to 0 and back) while a rotation happens: the new operator pod finds it
    # from the API server, publishes it and restarts consumers; it does not refresh the OAuth token early
    old_pod = pod_operator.ready_pod().metadata.name
    pod_operator.scale(0)
    wait_for(lambda: not pod_operator.pods(terminating=True), timeout=90, what="the operator pod gone, process and all")
    third = simulator.rotate(pa["app_id"], "later")
    t.remember(third)
    t.put_secret(core, ns, "pa-source", {"token": third})
    refreshes_before = simulator.calls(TOKEN_ROUTE)
    time.sleep(2)
    still = (t.read_secret(core, ns, "pa-out") or {}).get("access_token") == second
    assert still, "the third token was published while no operator ran (values not shown)"
    new_pod = pod_operator.running()
    assert new_pod.metadata.name != old_pod
    after = wait_for(lambda: _sees(real_node, core, ns, "consumer", third), timeout=120,
                     what="after the operator's restart, new consumer pods print the third token")
    assert not set(after) & set(rotated)
    wait_for(lambda: not set(_pods(core, ns, "consumer")) & set(rotated), timeout=60,
             what="the consumer pods of the second token gone")
    # the OAuth token was not due: the restarted pod recomputed its schedule from status and did not call
    assert simulator.calls(TOKEN_ROUTE) == refreshes_before
    unchanged = t.read_secret(core, ns, "crm-out")["access_token"] == oauth_secret["access_token"]
    assert unchanged, "the OAuth access token changed across the restart (values not shown)"


def test_rbac_denial_is_seen_from_inside_the_pod_and_heals(pod_operator, real_node, core, custom, simulator, api):
    """A platform team's tighter Role (no `create` on Secrets) denies the pod's own ServiceAccount token: the
    token says so in status and Events; giving the verb back heals it."""
    ns = pod_operator.watched
    pod_operator.running()  # whatever an earlier test left
    rbac = client.RbacAuthorizationV1Api(api)
    role = next(r for r in rbac.list_namespaced_role(ns).items if "hubspot-token-operator" in r.metadata.name)
    original = [rbac.api_client.sanitize_for_serialization(r) for r in role.rules]
    tightened = []
    for rule in original:
        if "secrets" in (rule.get("resources") or []) and "create" in rule.get("verbs", []):
            rule = {**rule, "verbs": [v for v in rule["verbs"] if v != "create"]}
        tightened.append(rule)
    assert tightened != original, original
    rbac.patch_namespaced_role(role.metadata.name, ns, {"rules": tightened})
    try:
        pa = simulator.private_app(HUB, ["oauth"])
        t.remember(pa["token"])
        t.put_secret(core, ns, "denied-source", {"token": pa["token"]})
        body = t.private_app_token("denied", target="denied-out")
        body["metadata"]["labels"] = dict(SHARD)
        t.create(custom, ns, body)
        ready = wait_for(lambda: (c := t.condition(t.get(custom, ns, "denied"), "Ready")).get("reason") ==
                         "SecretWriteFailed" and c, timeout=60, what="the denial in the token's Ready condition")
        assert ready["status"] == "False" and "403" in ready["message"], ready
        assert "SecretWriteFailed" in t.reasons(core, ns, "denied")
        assert t.read_secret(core, ns, "denied-out") is None
        assert re.search(r"403|[Ff]orbidden", pod_operator.logs(real_node)), "the denial is not in the pod's log"
    finally:
        rbac.patch_namespaced_role(role.metadata.name, ns, {"rules": original})
    wait_for(lambda: t.condition(t.get(custom, ns, "denied"), "Ready").get("status") == "True", timeout=90,
             what="the token heals once the Role grants create again")
    healed = (t.read_secret(core, ns, "denied-out") or {}).get("access_token") == pa["token"]
    assert healed, "the token was not published after the Role was fixed (values not shown)"
