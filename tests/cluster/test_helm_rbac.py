"""The Helm chart installs into the real API server, and its RBAC is enough and no more: the operator runs
out of cluster with a TokenRequest token of the chart's ServiceAccount through the OAuth, rotation and
restart scenarios, and the same token is denied what the chart does not grant."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.cluster import tokens as t
from tests.cluster import workloads as w
from tests.cluster.harness import Operator
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hubspot-token-operator"
RELEASE = "hto"
HUB = 3131


def _run(cluster, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def chart_install(cluster, core, crds):
    """The chart in namespaces mode: watching one namespace, installed into its own."""
    suffix = uuid.uuid4().hex[:6]
    release_ns, watched, other = f"hto-rel-{suffix}", f"hto-watched-{suffix}", f"hto-other-{suffix}"
    for ns in (release_ns, watched, other):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    res = _run(cluster, "helm", "install", RELEASE, str(CHART), "-n", release_ns,
               "--set", "watch.mode=namespaces", "--set", f"watch.namespaces={{{watched}}}",
               "--set", "image.repository=example.invalid/hubspot-token-operator")
    assert res.returncode == 0, res.stderr
    try:
        yield release_ns, watched, other
    finally:
        _run(cluster, "helm", "uninstall", RELEASE, "-n", release_ns)
        for ns in (release_ns, watched, other):
            try:
                core.delete_namespace(ns)
            except client.ApiException:
                pass


def _service_account_kubeconfig(cluster, core, api, release_ns: str, tmp_path: Path) -> Path:
    sas = core.list_namespaced_service_account(release_ns).items
    sa = next(s.metadata.name for s in sas if "hubspot-token-operator" in s.metadata.name or s.metadata.name == RELEASE)
    tr = core.create_namespaced_service_account_token(
        sa, release_ns, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    )
    base = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    base["users"] = [{"name": "sa", "user": {"token": tr.status.token}}]
    base["contexts"][0]["context"]["user"] = "sa"
    path = tmp_path / "sa-kubeconfig"
    path.write_text(yaml.safe_dump(base))
    return path


def test_chart_installs_and_its_rbac_is_sufficient_and_least_privilege(
    cluster, api, core, apps, custom, simulator, chart_install, tmp_path
):
    release_ns, watched, other = chart_install
    # what the chart created is accepted by the real API server
    deploy = apps.list_namespaced_deployment(release_ns).items
    assert len(deploy) == 1
    args = deploy[0].spec.template.spec.containers[0].args or []
    assert f"--namespace={watched}" in args or watched in args
    # The chart names the leader-election Lease (its RBAC grants get/update on that name only): run with it.
    env = {e.name: e.value for e in deploy[0].spec.template.spec.containers[0].env or []}
    lease = env["HTO_LEASE_NAME"]

    kc = _service_account_kubeconfig(cluster, core, api, release_ns, tmp_path)
    sa_api = config.new_client_from_config(config_file=str(kc))
    sa_core, sa_apps = client.CoreV1Api(sa_api), client.AppsV1Api(sa_api)

    # --- denied: Secrets outside the watch list, kinds the chart does not grant, verbs it does not grant
    for call in (
        lambda: sa_core.list_namespaced_secret(other),
        lambda: sa_core.list_namespaced_config_map(watched),
        lambda: sa_core.list_namespaced_pod(watched),
        lambda: sa_apps.delete_namespaced_deployment("anything", watched),
        lambda: sa_core.list_secret_for_all_namespaces(),
    ):
        with pytest.raises(client.ApiException) as err:
            call()
        assert err.value.status == 403

    # --- sufficient: run the operator with that token through OAuth, rotation and restart
    op = Operator(kc, simulator, tmp_path / "operator-sa.log", release_ns, scope=("--namespace", watched)).start(
        "--lease-name", lease)
    try:
        a = simulator.create_app()
        t.remember(a["client_secret"])
        t.put_secret(core, watched, "hubspot-app", {"client_id": a["client_id"], "client_secret": a["client_secret"]})
        t.put_secret(core, watched, "crm-install", {"refresh_token": simulator.install(a["client_id"], HUB, ["oauth"])})
        t.create(custom, watched, t.oauth_token("crm", target="crm-out"))
        wait_for(lambda: t.condition(t.get(custom, watched, "crm"), "Ready").get("status") == "True",
                 timeout=40, what="OAuth token Ready under the chart's RBAC")

        w.deployment(apps, watched, "consumer")
        pa = simulator.private_app(HUB, ["oauth"])
        t.remember(pa["token"])
        t.put_secret(core, watched, "pa-source", {"token": pa["token"]})
        t.create(custom, watched, t.private_app_token("pa", rollout={
            "delay": "0s", "targets": [{"kind": "Deployment", "name": "consumer"}]}))
        wait_for(lambda: (t.read_secret(core, watched, "hubspot-private") or {}).get("access_token") == pa["token"],
                 timeout=40, what="private-app token published")
        new = simulator.rotate(pa["app_id"], "later")
        t.remember(new)
        t.put_secret(core, watched, "pa-source", {"token": new})
        wait_for(lambda: w.template_value(apps, watched, "Deployment", "consumer"), timeout=40,
                 what="Deployment restarted under the chart's RBAC")
        wait_for(lambda: any(e.reason == "RestartTriggered" for e in t.events(core, watched, "pa")),
                 what="Event posted under the chart's RBAC")
        denied = re.findall(r".*(?:HTTP 403|403 Forbidden|[Ff]orbidden).*", op.logs())
        assert not denied, f"the operator hit a permission it lacks: {denied[:3]}"
        # it never even tried the namespace it does not watch
        assert other not in op.logs()
    finally:
        op.stop()

