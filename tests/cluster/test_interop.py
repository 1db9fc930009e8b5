"""Playing well with others, against a real API server (issue #14): `kubectl wait` on HubSpotTokens, Helm's
managed-by label kept on a Secret the operator merges into, Reloader's ignore annotation on an OAuth target,
and the chart's CRD upgraded by `helm upgrade` once the release owns it."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from hubspot_token_operator.publish import MANAGED_BY, MANAGER, OUR_MANAGED_BY, RELOADER_IGNORE, TOKEN_LABEL
from tests.cluster import tokens as t
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hubspot-token-operator"
CRD = "hubspottokens.hubspot-operator.dev"
HUB = 5151


def _run(cluster, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=timeout)


def install(simulator, core, namespace, app, name):
    rt = simulator.install(app["client_id"], HUB, ["oauth"])
    t.put_secret(core, namespace, f"{name}-install", {"refresh_token": rt})
    return rt


def test_kubectl_wait_for_ready(operator, simulator, core, custom, namespace, app, cluster):
    install(simulator, core, namespace, app, "waited")
    t.create(custom, namespace, t.oauth_token("waited", target="waited-out"))
    res = _run(cluster, "kubectl", "wait", "--for=condition=Ready", "hubspottoken/waited", "-n", namespace,
               "--timeout=60s", timeout=90)
    assert res.returncode == 0, res.stderr
    assert "condition met" in res.stdout
    # the short name works too, and the Secret really holds a token by then
    res = _run(cluster, "kubectl", "wait", "--for=condition=Ready", "hst/waited", "-n", namespace, "--timeout=10s")
    assert res.returncode == 0, res.stderr
    assert simulator.bearer_ok(t.read_secret(core, namespace, "waited-out")["access_token"])


def test_kubectl_wait_times_out_for_a_token_that_cannot_become_ready(operator, core, custom, namespace, app, cluster):
    bogus = f"never-installed-{uuid.uuid4().hex}"  # HubSpot (the simulator) rejects it: ReauthRequired
    t.put_secret(core, namespace, "stuck-install", {"refresh_token": bogus})
    t.create(custom, namespace, t.oauth_token("stuck", target="stuck-out"))
    wait_for(lambda: t.condition(t.get(custom, namespace, "stuck"), "ReauthRequired").get("status") == "True",
             timeout=30, what="ReauthRequired=True")
    res = _run(cluster, "kubectl", "wait", "--for=condition=Ready", "hubspottoken/stuck", "-n", namespace,
               "--timeout=5s", timeout=60)
    assert res.returncode != 0, res.stdout
    assert "timed out" in res.stderr, res.stderr
    assert t.condition(t.get(custom, namespace, "stuck"), "Ready")["status"] == "False"
    # and the opposite condition is met at once
    res = _run(cluster, "kubectl", "wait", "--for=condition=Ready=false", "hst/stuck", "-n", namespace, "--timeout=10s")
    assert res.returncode == 0, res.stderr


def test_a_helm_managed_secret_keeps_its_managed_by_when_merged_into(operator, simulator, core, custom, namespace,
                                                                     app):
    install(simulator, core, namespace, app, "merge")
    helm_labels = {MANAGED_BY: "Helm", "app.kubernetes.io/instance": "shop", "hubspot-operator.dev/consent": "true"}
    helm_annotations = {"meta.helm.sh/release-name": "shop", "meta.helm.sh/release-namespace": namespace}
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="shop-config", labels=helm_labels, annotations=helm_annotations),
        string_data={"db_host": "db.shop"}))
    body = t.oauth_token("merge", target="shop-config")
    body["spec"]["target"]["creationPolicy"] = "Merge"
    t.create(custom, namespace, body)
    merged = wait_for(lambda: (s := core.read_namespaced_secret("shop-config", namespace)) and
                      "access_token" in (s.data or {}) and s, timeout=30, what="our keys merged in")
    t.remember(t.read_secret(core, namespace, "shop-config")["access_token"])
    labels, annotations = merged.metadata.labels, merged.metadata.annotations
    assert labels[MANAGED_BY] == "Helm" and labels["app.kubernetes.io/instance"] == "shop"
    assert labels[OUR_MANAGED_BY] == MANAGER and labels[TOKEN_LABEL] == "merge"
    assert helm_annotations.items() <= annotations.items()
    assert RELOADER_IGNORE not in annotations  # a merged Secret is someone else's: Reloader left to its owner
    assert "db_host" in merged.data


def test_an_oauth_target_tells_reloader_to_ignore_routine_refreshes(operator, simulator, core, custom, namespace,
                                                                    app):
    install(simulator, core, namespace, app, "reload")
    t.create(custom, namespace, t.oauth_token("reload", target="reload-out"))  # restartOn: Rotation (default)
    secret = wait_for(lambda: (s := core.read_namespaced_secret("reload-out", namespace)) and s.data and s,
                      timeout=30, what="target written")
    t.read_secret(core, namespace, "reload-out")
    assert secret.metadata.annotations[RELOADER_IGNORE] == "true"
    # created by the operator: both managed-by labels
    assert secret.metadata.labels[MANAGED_BY] == MANAGER and secret.metadata.labels[OUR_MANAGED_BY] == MANAGER

    install(simulator, core, namespace, app, "every")
    body = t.oauth_token("every", target="every-out")
    body["spec"]["rollout"] = {"restartOn": "EveryRefresh"}
    t.create(custom, namespace, body)
    secret = wait_for(lambda: (s := core.read_namespaced_secret("every-out", namespace)) and s.data and s,
                      timeout=30, what="target written")
    t.read_secret(core, namespace, "every-out")
    assert RELOADER_IGNORE not in (secret.metadata.annotations or {})


def _crd_meta(api) -> client.V1ObjectMeta:
    return client.ApiextensionsV1Api(api).read_custom_resource_definition(CRD).metadata


def test_helm_upgrade_manages_the_crd_once_handed_over(cluster, api, core, crds):
    """The session's CRD was applied with kubectl (crds fixture), as chart 0.1.x's crds/ did: the chart leaves it
    alone and says so; after the documented hand-over `helm upgrade` applies the CRD (here a new label), and
    `helm uninstall` keeps it."""
    suffix = uuid.uuid4().hex[:6]
    release, release_ns = f"hto-crd-{suffix}", f"hto-crd-{suffix}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=release_ns)))
    common = ["-n", release_ns, "--set", "watch.mode=namespaces", "--set", f"watch.namespaces={{{release_ns}}}",
              "--set", "image.repository=example.invalid/hubspot-token-operator", "--set", "replicaCount=1",
              "--set", "leaderElection.enabled=false", "--set", "podDisruptionBudget.enabled=false",
              "--set", "rbac.aggregateToDefaultRoles=false"]
    label = f"hto-test/{suffix}"
    before = _crd_meta(api)
    try:
        res = _run(cluster, "helm", "install", release, str(CHART), *common)
        assert res.returncode == 0, res.stderr
        assert "is not managed by this release" in res.stdout and "NOT" in res.stdout, res.stdout
        assert _crd_meta(api).resource_version == before.resource_version  # untouched

        res = _run(cluster, "kubectl", "label", "crd", CRD, "app.kubernetes.io/managed-by=Helm", "--overwrite")
        assert res.returncode == 0, res.stderr
        res = _run(cluster, "kubectl", "annotate", "crd", CRD, "--overwrite", f"meta.helm.sh/release-name={release}",
                   f"meta.helm.sh/release-namespace={release_ns}")
        assert res.returncode == 0, res.stderr
        res = _run(cluster, "helm", "upgrade", release, str(CHART), *common, "--set", f"commonLabels.{label}=yes")
        assert res.returncode == 0, res.stderr
        assert "part of this release" in res.stdout, res.stdout
        md = _crd_meta(api)
        assert md.labels[label] == "yes" and md.annotations["helm.sh/resource-policy"] == "keep"
        served = client.ApiextensionsV1Api(api).read_custom_resource_definition(CRD)
        assert any(c.type == "Established" and c.status == "True" for c in served.status.conditions)

        res = _run(cluster, "helm", "uninstall", release, "-n", release_ns)
        assert res.returncode == 0, res.stderr
        assert _crd_meta(api).name == CRD  # kept
    finally:
        _run(cluster, "helm", "uninstall", release, "-n", release_ns)
        # leave the session's CRD as the crds fixture made it, for the tests that follow
        _run(cluster, "kubectl", "label", "crd", CRD, f"{label}-", "app.kubernetes.io/managed-by-")
        _run(cluster, "kubectl", "annotate", "crd", CRD, "meta.helm.sh/release-name-", "meta.helm.sh/release-namespace-",
             "helm.sh/resource-policy-")
        try:
            core.delete_namespace(release_ns)
        except client.ApiException:
            pass


def test_kubectl_explain_describes_the_fields(cluster, crds):
    for field, words in (("hubspottoken.spec.oauth", "OAuth inputs"),
                         ("hst.spec.refresh.percent", "renewBeforePercentage"),
                         ("hst.status.conditions", "kubectl wait")):
        res = _run(cluster, "kubectl", "explain", field)
        assert res.returncode == 0, res.stderr
        assert words in " ".join(res.stdout.split()), res.stdout
