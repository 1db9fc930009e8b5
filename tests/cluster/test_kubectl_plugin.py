"""kubectl-hubspot, the real executable, against the real local control plane: every command, every flag
that changes what is asked of the API server, and every error the plugin explains (no such token, no
permission, no operator running, CRD missing).

Each run goes through `plugin()`, which fails the test if any secret value the tests used (tokens.SEEN_SECRETS,
as is or base64-encoded) appears in stdout or stderr; the last test checks every captured output again
against the full set, including secrets remembered after the run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from hubspot_token_operator import GROUP, PLURAL, VERSION
from hubspot_token_operator.kubectl_plugin import api as plugin_api
from tests.cluster import tokens as t
from tests.helpers import wait_for

PLUGIN = Path(sys.executable).parent / "kubectl-hubspot"
HUB = 7373
SCOPES = ["crm.objects.contacts.read", "oauth"]
OUTPUTS: list[str] = []  # every stdout/stderr of this module, for the final leak check
CHART_LABELS = {  # what charts/hubspot-token-operator/templates/_helpers.tpl puts on the operator Deployment
    "app.kubernetes.io/name": "hubspot-token-operator",
    "app.kubernetes.io/instance": "hto",
    "app.kubernetes.io/version": "0.1.0",
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/part-of": "hubspot-token-operator",
    "app.kubernetes.io/component": "operator",
    "helm.sh/chart": "hubspot-token-operator-0.1.0",
}


def _leaks(text: str) -> list[str]:
    found = []
    for s in t.SEEN_SECRETS:
        if len(s) >= 8 and (s in text or base64.b64encode(s.encode()).decode() in text):
            found.append(f"{s[:4]}... ({len(s)} chars)")
    return found


def plugin(kubeconfig, *args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    assert PLUGIN.exists(), f"{PLUGIN} is missing: the package must be installed in the venv (make venv)"
    # __complete completes the last word: the kubeconfig goes first there
    argv = ([args[0], "--kubeconfig", str(kubeconfig), *args[1:]] if args[:1] == ("__complete",)
            else [*args, "--kubeconfig", str(kubeconfig)])
    res = subprocess.run([str(PLUGIN), *argv], input=stdin, capture_output=True,
                         text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    OUTPUTS.append(res.stdout + res.stderr)
    leaks = _leaks(res.stdout + res.stderr)
    assert not leaks, f"secret values in the output of kubectl-hubspot {' '.join(args)}: {leaks}"
    return res


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res


def ready(custom, ns, name):
    obj = t.get(custom, ns, name)
    return obj if t.condition(obj, "Ready").get("status") == "True" else None


@pytest.fixture
def oauth_token(operator, simulator, core, custom, namespace):
    """An OAuth HubSpotToken "crm", Ready, with its target Secret hubspot-access written by the operator."""
    app = simulator.create_app()
    t.put_secret(core, namespace, "hubspot-app", {"client_id": app["client_id"], "client_secret": app["client_secret"]})
    t.remember(app["client_secret"])
    rt = simulator.install(app["client_id"], HUB, SCOPES)
    t.remember(rt)
    t.put_secret(core, namespace, "crm-install", {"refresh_token": rt})
    t.create(custom, namespace, t.oauth_token("crm"))
    obj = wait_for(lambda: ready(custom, namespace, "crm"), timeout=30, what="crm Ready")
    t.read_secret(core, namespace, "hubspot-access")  # remembers the access token it holds
    return obj


@pytest.fixture
def private_app(operator, simulator, core, custom, namespace):
    """A PrivateApp HubSpotToken "pa" labelled team=crm, its token published into hubspot-private."""
    app = simulator.private_app(HUB, SCOPES)
    t.remember(app["token"])
    t.put_secret(core, namespace, "pa-source", {"token": app["token"]})
    body = t.private_app_token("pa", privateApp={"tokenSecretRef": {"name": "pa-source"}})
    body["metadata"]["labels"] = {"team": "crm"}
    t.create(custom, namespace, body)
    wait_for(lambda: (t.read_secret(core, namespace, "hubspot-private") or {}).get("access_token") == app["token"],
             timeout=30, what="pa published")
    wait_for(lambda: ready(custom, namespace, "pa"), timeout=30, what="pa Ready")
    return app


def operator_deployment(apps, ns: str, name: str = "hto-hubspot-token-operator", tag: str = "0.1.0") -> None:
    """A Deployment labelled as the chart labels the operator's (its pods are kwok's: nothing really runs)."""
    labels = {**CHART_LABELS, "app.kubernetes.io/version": tag}
    selector = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    apps.create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels=selector),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={**selector, "app.kubernetes.io/component": "operator"}),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="operator", image=f"ghcr.io/example/hubspot-token-operator:{tag}")])),
        ),
    ))
    wait_for(lambda: (apps.read_namespaced_deployment(name, ns).status.ready_replicas or 0) >= 1, timeout=60,
             what=f"deployment {name} ready (kwok)")


# ---- status / list -----------------------------------------------------------------------------------------


def test_list_in_namespace_all_namespaces_selector_json_and_yaml(cluster, custom, namespace, oauth_token,
                                                                 private_app):
    kc = cluster.kubeconfig
    lines = ok(plugin(kc, "status", "-n", namespace)).stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "READY", "REASON", "EXPIRES", "NEXT", "AGE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"crm", "pa"}
    assert rows["crm"].split()[1:3] == ["OAuth", "True"] and "refresh in" in rows["crm"]
    assert rows["pa"].split()[1:3] == ["PrivateApp", "True"] and "Published" in rows["pa"]
    assert "\x1b[" not in "\n".join(lines)  # not a terminal

    lines = ok(plugin(kc, "list", "-n", namespace, "-l", "team=crm")).stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["pa"]
    res = ok(plugin(kc, "status", "-n", namespace, "-l", "team=nobody"))
    assert f"No hubspottokens matching 'team=nobody' found in namespace {namespace}." in res.stdout

    lines = ok(plugin(kc, "status", "-A")).stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    mine = sorted(line.split()[1] for line in lines[1:] if line.split()[0] == namespace)
    assert mine == ["crm", "pa"]

    doc = json.loads(ok(plugin(kc, "status", "-A", "-o", "json")).stdout)
    assert doc["apiVersion"] == "kubectl-hubspot.hubspot-operator.dev/v1" and doc["kind"] == "TokenList"
    items = {i["name"]: i for i in doc["items"] if i["namespace"] == namespace}
    assert set(items) == {"crm", "pa"}
    real = t.get(custom, namespace, "crm")["status"]
    assert items["crm"]["expiresAt"] == real["expiresAt"] and items["crm"]["ready"] == "True"
    assert items["pa"]["rotation"]["lastOutcome"] == "Published" and items["pa"]["type"] == "PrivateApp"

    doc = yaml.safe_load(ok(plugin(kc, "list", "-n", namespace, "-l", "team=crm", "-o", "yaml")).stdout)
    assert doc["kind"] == "TokenList" and doc["selector"] == "team=crm" and [i["name"] for i in doc["items"]] == ["pa"]


def test_status_of_one_token_and_no_such_token(cluster, namespace, oauth_token):
    kc = cluster.kubeconfig
    out = ok(plugin(kc, "status", "crm", "-n", namespace)).stdout
    assert "Type:        OAuth" in out and "Ready:       True" in out and "Refreshed" in out
    doc = json.loads(ok(plugin(kc, "status", "crm", "-n", namespace, "-o", "json")).stdout)
    assert doc["kind"] == "TokenStatus" and doc["name"] == "crm"
    assert any(e["reason"] == "Refreshed" for e in doc["events"])
    assert {c["type"] for c in doc["conditions"]} >= {"Ready"}

    for args in (["status", "nope"], ["refresh", "nope"], ["rotate", "nope", "--no-wait"]):
        res = plugin(kc, *args, "-n", namespace, stdin="")
        assert res.returncode == 1, res
        assert f"hubspottoken 'nope' not found in namespace '{namespace}'" in res.stderr
        assert f"kubectl hubspot status -n {namespace}" in res.stderr
    res = plugin(kc, "status", "nope", "-n", namespace, "-o", "json")
    assert res.returncode == 1 and json.loads(res.stdout)["reason"] == "NotFound"


# ---- version and check ---------------------------------------------------------------------------------------


def test_version_without_then_with_an_operator_deployment(cluster, apps, namespace):
    kc = cluster.kubeconfig
    res = ok(plugin(kc, "version", "--operator-namespace", namespace))
    assert "Plugin:      kubectl-hubspot 0.1.0" in res.stdout
    assert f"Operator:    none found in namespace {namespace}" in res.stdout
    assert "Kubernetes:  v1." in res.stdout
    doc = json.loads(ok(plugin(kc, "version", "--operator-namespace", namespace, "-o", "json")).stdout)
    assert doc["operator"]["found"] is False and doc["operator"]["deployments"] == []

    operator_deployment(apps, namespace, tag="9.8.7")
    res = ok(plugin(kc, "version", "--operator-namespace", namespace))
    assert (f"Operator:    deployment/hto-hubspot-token-operator in namespace {namespace}: image tag 9.8.7, "
            "version 9.8.7, 1/1 ready") in res.stdout
    doc = yaml.safe_load(ok(plugin(kc, "version", "-o", "yaml")).stdout)  # every namespace
    found = [d for d in doc["operator"]["deployments"] if d["namespace"] == namespace]
    assert found == [{"namespace": namespace, "name": "hto-hubspot-token-operator",
                      "image": "ghcr.io/example/hubspot-token-operator:9.8.7", "imageTag": "9.8.7",
                      "version": "9.8.7", "replicas": 1, "readyReplicas": 1, "ready": True}]


def test_check_reports_crd_operator_and_rbac(cluster, crds, apps, namespace):
    kc = cluster.kubeconfig
    res = plugin(kc, "check", "-n", namespace, "--operator-namespace", namespace)
    assert res.returncode == 1, res.stdout  # no operator Deployment there yet
    lines = res.stdout.splitlines()
    assert lines[0].startswith("OK    crd: CRD hubspottokens.hubspot-operator.dev is Established; serves v1alpha1")
    assert any(line.startswith("FAIL  operator: no hubspot-token-operator Deployment found in namespace") for line in lines)
    assert f"OK    rbac update secrets in namespace {namespace}: allowed (needed by rotate, authorize)" in lines
    assert lines[-1].startswith("1 of ")

    operator_deployment(apps, namespace)
    res = ok(plugin(kc, "check", "-n", namespace, "--operator-namespace", namespace))
    assert all(line.startswith("OK") for line in res.stdout.splitlines()[:-1]) and "checks passed" in res.stdout
    doc = json.loads(ok(plugin(kc, "check", "-n", namespace, "--operator-namespace", namespace, "-o", "json")).stdout)
    assert doc["kind"] == "CheckResult" and doc["ok"] is True and len(doc["checks"]) == 10


# ---- no permission ----------------------------------------------------------------------------------------------


@pytest.fixture
def nobody_kubeconfig(cluster, core, namespace, tmp_path) -> Path:
    """A kubeconfig for a ServiceAccount without any RBAC, with a token from the TokenRequest API."""
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody")))
    tr = core.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)))
    token = tr.status.token
    t.remember(token)
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    ctx = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster_entry = next(c for c in admin["clusters"] if c["name"] == ctx["cluster"])
    kc = tmp_path / "nobody.kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": "nobody", "user": {"token": token}}],
        "contexts": [{"name": "nobody", "context": {"cluster": cluster_entry["name"], "user": "nobody",
                                                     "namespace": namespace}}],
        "current-context": "nobody",
    }))
    return kc


def test_no_permission_names_verb_resource_and_namespace(nobody_kubeconfig, crds, namespace):
    who = f'user "system:serviceaccount:{namespace}:nobody"'
    cases = [
        (["status"], f"cannot list hubspottokens.hubspot-operator.dev in namespace {namespace}"),
        (["status", "crm"], f"cannot get hubspottokens.hubspot-operator.dev in namespace {namespace}"),
        (["refresh", "crm"], f"cannot get hubspottokens.hubspot-operator.dev in namespace {namespace}"),
        (["status", "-A"], "cannot list hubspottokens.hubspot-operator.dev across all namespaces"),
        (["inspect", "secret", "hubspot-access"], f"cannot get secrets in namespace {namespace}"),
    ]
    for args, expected in cases:
        res = plugin(nobody_kubeconfig, *args)  # namespace from the kubeconfig context
        assert res.returncode == 1, res
        assert f"permission denied: {who} {expected}" in res.stderr, res.stderr
        assert "kubectl hubspot check" in res.stderr
    res = plugin(nobody_kubeconfig, "status", "-o", "json")
    assert res.returncode == 1 and json.loads(res.stdout)["reason"] == "Forbidden"

    res = plugin(nobody_kubeconfig, "check")  # SelfSubjectAccessReviews are allowed to everyone signed in
    assert res.returncode == 1
    assert f"FAIL  rbac get secrets in namespace {namespace}: denied (needed by rotate, authorize (the app's client Secret), inspect secret)" in res.stdout
    assert "ask a cluster admin for a Role granting 'get' on secrets" in res.stdout
    assert ("FAIL  crd: cannot tell whether CRD hubspottokens.hubspot-operator.dev is installed: you may neither "
            "read the CRD nor list hubspottokens") in res.stdout

    res = ok(plugin(nobody_kubeconfig, "version"))  # not permitted to look: said, and still exit 0
    assert "Plugin:      kubectl-hubspot 0.1.0" in res.stdout
    assert "Operator:    unknown: permission denied" in res.stdout and "deployments.apps" in res.stdout


# ---- CRD missing: a real 404 from the API server for a type it does not serve -------------------------------


def test_crd_missing_is_recognised_from_the_api_servers_404(custom, crds, namespace):
    """The CRD cannot be removed in a shared session, so the plugin's classifier is fed the API server's real
    404 for a resource type that is not installed, next to its real 404 for a missing object of ours."""
    with pytest.raises(client.ApiException) as missing_type:
        custom.get_namespaced_custom_object("nothing.hubspot-operator.dev", "v1", namespace, "things", "x")
    with pytest.raises(client.ApiException) as missing_object:
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "no-such-token")
    what = ("get", "hubspottokens.hubspot-operator.dev", namespace, True)
    e = plugin_api.classify(404, missing_type.value.body, "HTTP 404", what)
    assert isinstance(e, plugin_api.CRDMissing)
    assert str(e) == ("CRD hubspottokens.hubspot-operator.dev is not installed: kubectl apply -f crds/ or install "
                      "the chart")
    e = plugin_api.classify(404, missing_object.value.body, "HTTP 404", what)
    assert isinstance(e, plugin_api.NotFound) and not isinstance(e, plugin_api.CRDMissing)


# ---- waiting commands and the operator ------------------------------------------------------------------------


def test_refresh_wait_and_rotate_json_and_no_operator_running(cluster, custom, core, simulator, namespace,
                                                             oauth_token, private_app):
    """The session's operator runs as a local process, not as a Deployment: the plugin says it sees none
    (in this test's namespace), and still waits; a suspended token is never handled, so the wait times out
    and the timeout names the missing operator."""
    kc = cluster.kubeconfig
    before = t.get(custom, namespace, "crm")["status"]["tokenFingerprint"]
    res = ok(plugin(kc, "refresh", "crm", "-n", namespace, "--wait", "--timeout", "60s",
                    "--operator-namespace", namespace, "-o", "json"))
    doc = json.loads(res.stdout)
    assert doc["kind"] == "RefreshResult" and doc["waited"] is True
    assert [(x["name"], x["outcome"]) for x in doc["tokens"]] == [("crm", "Refreshed")]
    assert f"warning: no hubspot-token-operator Deployment found in namespace {namespace}" in res.stderr
    assert "refresh requested" in res.stderr  # progress on stderr; stdout is only the document
    assert t.get(custom, namespace, "crm")["status"]["tokenFingerprint"] != before
    t.read_secret(core, namespace, "hubspot-access")  # remember the new access token

    new = simulator.rotate(private_app["app_id"], "later")
    t.remember(new)
    res = ok(plugin(kc, "rotate", "pa", "-n", namespace, "--timeout", "60s", "--operator-namespace", namespace,
                    "-o", "yaml", stdin=new + "\n"))
    doc = yaml.safe_load(res.stdout)
    assert doc["kind"] == "RotateResult" and doc["outcome"] == "Published" and doc["write"] == "updated"
    assert doc["secret"] == "pa-source" and doc["key"] == "token" and doc["previousUntil"]
    assert "no hubspot-token-operator Deployment found" in res.stderr

    t.patch(custom, namespace, "crm", {"spec": {"suspend": True}})
    res = plugin(kc, "refresh", "crm", "-n", namespace, "--wait", "--timeout", "3s", "--operator-namespace", namespace)
    assert res.returncode == 3, res
    assert "did not handle the refresh request within 3s" in res.stderr
    assert f"no running operator seen: no hubspot-token-operator Deployment found in namespace {namespace}" in res.stderr


# ---- inspect secret ------------------------------------------------------------------------------------------


def test_inspect_the_secret_written_by_the_operator(cluster, core, custom, namespace, oauth_token):
    kc = cluster.kubeconfig
    values = t.read_secret(core, namespace, "hubspot-access")
    token = t.get(custom, namespace, "crm")
    out = ok(plugin(kc, "inspect", "secret", "hubspot-access", "-n", namespace)).stdout
    assert "Owner:       hubspottoken/crm (from " in out and ", verified)" in out
    assert "Managed by:  hubspot-token-operator" in out
    assert f"Expires:     {values['expires_at']}" in out and "(from key expires_at)" in out
    assert "matches status.tokenFingerprint" in out
    fp = "sha256:" + hashlib.sha256(values["access_token"].encode()).hexdigest()[:12]
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("access_token"))
    assert row == ["access_token", "token", str(len(values["access_token"].encode())), "B", fp]
    assert values["access_token"] not in out

    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        res = ok(plugin(kc, "inspect", "secret", "hubspot-access", "-n", namespace, "-o", fmt))
        doc = load(res.stdout)
        assert doc["kind"] == "SecretInspection" and doc["owner"]["hubspotToken"] == "crm"
        assert doc["owner"]["verified"] is True and doc["expiresAt"] == values["expires_at"]
        assert doc["publishedRecord"]["uid"] == token["metadata"]["uid"]
        assert {k["key"] for k in doc["keys"]} == set(values)
        assert values["access_token"] not in res.stdout + res.stderr

    res = plugin(kc, "inspect", "secret", "nope", "-n", namespace)
    assert res.returncode == 1 and f"Secret 'nope' not found in namespace '{namespace}'" in res.stderr


# ---- completion -----------------------------------------------------------------------------------------------


def test_completion_scripts_and_token_names_from_the_cluster(cluster, namespace, oauth_token, private_app):
    kc = cluster.kubeconfig
    assert "complete -F _kubectl_hubspot kubectl-hubspot" in ok(plugin(kc, "completion", "bash")).stdout
    assert ok(plugin(kc, "completion", "zsh")).stdout.startswith("#compdef kubectl-hubspot")
    res = ok(plugin(kc, "__complete", "status", "-n", namespace, ""))
    assert res.stdout.splitlines() == ["crm", "pa", ":4"]
    res = ok(plugin(kc, "__complete", "inspect", "secret", "-n", namespace, "hubspot-p"))
    assert res.stdout.splitlines() == ["hubspot-private", ":4"]


# ---- no secret value in any output ------------------------------------------------------------------------------


def test_zz_no_secret_value_in_any_plugin_output():
    assert len(OUTPUTS) >= 20, "run the whole module: this checks the outputs of the tests above"
    assert len(t.SEEN_SECRETS) >= 3
    leaks = [(i, _leaks(o)) for i, o in enumerate(OUTPUTS) if _leaks(o)]
    assert not leaks, leaks
