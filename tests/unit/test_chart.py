"""The Helm chart (charts/hubspot-token-operator): lint, render, schema, RBAC and the contract with the operator.

Uses the helm binary that testbin/build.sh builds into the cache (via devcluster.find_assets); a missing
helm is a failure, not a skip. Rendering needs no cluster.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubspot_token_operator import __version__
from hubspot_token_operator.cli import build_parser
from hubspot_token_operator.devcluster import find_assets
from hubspot_token_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "hubspot-token-operator"
CRD_NAME = "hubspottokens.hubspot-operator.dev.yaml"
RELEASE, NAMESPACE = "hto", "hubspot-system"
FULLNAME = "hto-hubspot-token-operator"
SA = FULLNAME

# What the operator does with the Kubernetes API, as (apiGroup, resource, verb). Widening this is a decision
# to make here, in review, not a side effect of a template change.
NAMESPACED_RULES = {
    *(("hubspot-operator.dev", "hubspottokens", v) for v in ("get", "list", "watch", "patch")),
    *(("hubspot-operator.dev", "hubspottokens/status", v) for v in ("get", "patch", "update")),
    *(("", "secrets", v) for v in ("get", "list", "watch", "create", "update", "patch")),
    *(("", "events", v) for v in ("create", "patch")),
    *(("apps", r, v) for r in ("deployments", "statefulsets", "daemonsets") for v in ("get", "list", "watch", "patch")),
    *(("argoproj.io", "rollouts", v) for v in ("get", "list", "watch", "patch")),
}
# The operator's own objects in the release namespace, in both watch modes: its Secrets by name (create cannot
# be limited by name) and, with leader election, its Lease by name.
OWN_SECRET_RULES = {
    ("", "secrets", "get", "hubspot-token-operator-hmac"),
    ("", "secrets", "get", "hubspot-token-operator-custody"),
    ("", "secrets", "update", "hubspot-token-operator-custody"),
    ("", "secrets", "create", None),
}


def lease_rules(name: str = FULLNAME) -> set[tuple]:
    return {("coordination.k8s.io", "leases", "get", name), ("coordination.k8s.io", "leases", "update", name),
            ("coordination.k8s.io", "leases", "create", None)}


# Kopf's own needs, cluster-wide in both modes.
KOPF_CLUSTER_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


# ---- helpers ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> Path:
    path = find_assets().paths["helm"]  # runs testbin/build.sh: a no-op when the cache is warm
    assert path.exists(), f"helm not found at {path}"
    return path


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Keeps helm away from the user's helm config/cache and from any cluster."""
    home = tmp_path_factory.mktemp("helm-home")
    return dict(
        os.environ,
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=str(home / "no-kubeconfig"),
    )


def run_helm(helm: Path, env: dict[str, str], *args: str, values: dict | None = None,
             tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm), *args]
    if values is not None:
        assert tmp is not None
        f = tmp / f"values-{len(list(tmp.glob('values-*.yaml')))}.yaml"
        f.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(f)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def render(helm: Path, env: dict[str, str], tmp: Path, values: dict | None = None,
           *extra: str) -> list[dict[str, Any]]:
    proc = run_helm(helm, env, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *extra,
                    values=values or {}, tmp=tmp)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def find(docs: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> list[dict]:
    return [
        d for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs: list[dict], kind: str, name: str | None = None, namespace: str | None = None) -> dict:
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name or ''} in {namespace or 'any namespace'}, got {len(found)}"
    return found[0]


def expand(rules: list[dict]) -> set[tuple]:
    """Rules as (apiGroup, resource, verb, resourceName-or-None) tuples; wildcards are never allowed."""
    out: set[tuple] = set()
    for r in rules:
        assert "nonResourceURLs" not in r
        names = r.get("resourceNames") or [None]
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for v in r["verbs"]:
                    assert "*" not in (g, res, v), f"wildcard in RBAC rule {r}"
                    for n in names:
                        out.add((g, res, v, n))
    return out


def granted(docs: list[dict]) -> dict[str, set[tuple]]:
    """What the operator's ServiceAccount is granted, keyed by scope ('cluster' or a namespace), following
    the bindings to the roles rendered by the chart."""
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole") and not aggregated(d)}
    out: dict[str, set[tuple]] = {}
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}], b["subjects"]
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
        key = (ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])
        assert key in roles, f"{b['kind']} {b['metadata']['name']} refers to a role the chart does not render: {key}"
        scope = "cluster" if b["kind"] == "ClusterRoleBinding" else ns
        out.setdefault(scope, set()).update(expand(roles[key]["rules"]))
    bound = {(r["roleRef"]["kind"], r["roleRef"]["name"]) for r in docs if "roleRef" in r}
    for kind, _, name in roles:
        assert (kind, name) in bound, f"{kind} {name} is rendered but not bound"
    return out


def aggregated(role: dict) -> bool:
    """An aggregated ClusterRole (rbac.aggregateToDefaultRoles): extends view/edit/admin, bound to nobody."""
    return any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in role["metadata"].get("labels", {}))


def with_names(rules: set[tuple], name: str | None = None) -> set[tuple]:
    return {(*r, name) for r in rules}


def container(docs: list[dict]) -> dict:
    dep = one(docs, "Deployment", FULLNAME, NAMESPACE)
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# ---- lint ------------------------------------------------------------------------------------------------

LINT_CASES = {
    "defaults": {},
    "watch-namespaces": {"watch": {"mode": "namespaces", "namespaces": ["team-a", "team-b"]}},
    "everything-on": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "alertLabels": {"team": "platform"}},
        "podDisruptionBudget": {"enabled": True, "minAvailable": 0},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "priorityClassName": "system-cluster-critical",
        "image": {"digest": "sha256:" + "a" * 64},
        "networkPolicy": {"enabled": True, "ingress": {"metricsFrom": [{"namespaceSelector": {}}]}},
        "commonLabels": {"team": "platform"}, "deploymentAnnotations": {"a": "b"},
        "extraArgs": ["--workers", "4"], "extraVolumes": [{"name": "ca", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/ca"}],
    },
    "single-replica-no-ha": {
        "replicaCount": 1, "leaderElection": {"enabled": False},
        "podDisruptionBudget": {"enabled": False}, "spreadAcrossNodes": False, "topologySpreadConstraints": [],
    },
    "shard": {"replicaCount": 3, "tokenSelector": "shard in (a,b)", "leaderElection": {"leaseName": "hto-shard-a"}},
}


@pytest.mark.parametrize("case", LINT_CASES, ids=list(LINT_CASES))
def test_helm_lint(helm: Path, helm_env: dict, tmp_path: Path, case: str) -> None:
    proc = run_helm(helm, helm_env, "lint", "--strict", str(CHART), "--namespace", NAMESPACE,
                    values=LINT_CASES[case], tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


# ---- default render --------------------------------------------------------------------------------------


def test_default_render(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRoleBinding",
                            "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
                            "PodDisruptionBudget", "CustomResourceDefinition",
                            "ClusterRole", "ClusterRole"])  # the aggregated -view and -edit
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "hubspot-token-operator"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == __version__
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
            assert d["metadata"]["namespace"] == NAMESPACE

    c = container(docs)
    assert c["image"] == f"hubspot-token-operator:{__version__}"
    assert c["args"] == ["--all-namespaces"]

    svc = one(docs, "Service", f"{FULLNAME}-metrics", NAMESPACE)
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    dep = one(docs, "Deployment")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    sa = one(docs, "ServiceAccount", SA, NAMESPACE)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_default_render_is_highly_available(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path)
    dep = one(docs, "Deployment", FULLNAME, NAMESPACE)
    selector = dep["spec"]["selector"]["matchLabels"]
    assert dep["spec"]["replicas"] == 2  # a leader and a standby
    # The new pod starts as a standby before the old one leaves (and releases the lease).
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pdb = one(docs, "PodDisruptionBudget", FULLNAME, NAMESPACE)
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}  # a drain can evict one

    pod = dep["spec"]["template"]["spec"]
    assert pod["affinity"] == {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}},
    }]}}
    assert pod["topologySpreadConstraints"] == [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector},
    }]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()

    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["HTO_LEADER_ELECT"] == "true"
    assert env["HTO_LEASE_NAME"] == FULLNAME  # one lease per release
    assert (env["HTO_LEASE_DURATION"], env["HTO_LEASE_RENEW_DEADLINE"], env["HTO_LEASE_RETRY_PERIOD"]) == ("15", "10", "2")
    assert env["HTO_TOKEN_SELECTOR"] == ""


def test_user_affinity_replaces_the_default_anti_affinity(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}]}}}
    docs = render(helm, helm_env, tmp_path, {"affinity": affinity})
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["affinity"] == affinity
    docs = render(helm, helm_env, tmp_path, {"spreadAcrossNodes": False})
    assert "affinity" not in one(docs, "Deployment")["spec"]["template"]["spec"]


def test_topology_spread_constraints_override(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {"topologySpreadConstraints": []})
    assert "topologySpreadConstraints" not in one(docs, "Deployment")["spec"]["template"]["spec"]
    mine = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE}}}]
    docs = render(helm, helm_env, tmp_path, {"topologySpreadConstraints": mine})
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"] == mine


def test_leader_election_and_sharding_values(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {
        "replicaCount": 3, "tokenSelector": "shard=a",
        "leaderElection": {"leaseName": "hto-shard-a", "leaseDurationSeconds": 20, "renewDeadlineSeconds": 12,
                           "retryPeriodSeconds": 0.5},
    })
    assert one(docs, "Deployment")["spec"]["replicas"] == 3
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["HTO_TOKEN_SELECTOR"] == "shard=a"
    assert env["HTO_LEASE_NAME"] == "hto-shard-a"
    assert (env["HTO_LEASE_DURATION"], env["HTO_LEASE_RENEW_DEADLINE"], env["HTO_LEASE_RETRY_PERIOD"]) == ("20", "12", "0.5")
    assert lease_rules("hto-shard-a") <= granted(docs)[NAMESPACE]

    # A single replica may run without leader election; then no Lease is granted.
    docs = render(helm, helm_env, tmp_path, {"replicaCount": 1, "leaderElection": {"enabled": False}})
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["HTO_LEADER_ELECT"] == "false"
    assert not any(r[1] == "leases" for scope in granted(docs).values() for r in scope)


def test_chart_version_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert chart["apiVersion"] == "v2"


def test_deployment_is_hardened(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = container(docs)
    assert pod["automountServiceAccountToken"] is True  # it talks to the API
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] != 0
    assert isinstance(sc["runAsGroup"], int) and sc["runAsGroup"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc.get("privileged", False) is False
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}

    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")


# ---- RBAC ------------------------------------------------------------------------------------------------


def test_rbac_all_namespaces_is_exactly_what_the_operator_needs(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {"watch": {"mode": "all"}})
    one(docs, "Role", f"{FULLNAME}-hmac", NAMESPACE)
    assert granted(docs) == {
        "cluster": with_names(NAMESPACED_RULES | KOPF_CLUSTER_RULES),
        # Leases only in the release namespace, only the release's own by name (create cannot be named).
        NAMESPACE: OWN_SECRET_RULES | lease_rules(),
    }
    for cr in find(docs, "ClusterRole"):
        assert not any("leases" in r["resources"] for r in cr["rules"]), cr["metadata"]["name"]


def test_rbac_namespaces_mode(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    watched = ["team-a", "team-b"]
    docs = render(helm, helm_env, tmp_path, {"watch": {"mode": "namespaces", "namespaces": watched}})
    for ns in watched:
        one(docs, "Role", FULLNAME, ns)
        one(docs, "RoleBinding", FULLNAME, ns)
    # Nothing cluster-wide beyond Kopf's read-only discovery; in particular no ClusterRole touching secrets.
    for cr in find(docs, "ClusterRole"):
        assert not any("secrets" in r["resources"] for r in cr["rules"]), cr["metadata"]["name"]
    assert granted(docs) == {
        "cluster": with_names(KOPF_CLUSTER_RULES),
        "team-a": with_names(NAMESPACED_RULES),
        "team-b": with_names(NAMESPACED_RULES),
        # The fingerprint key and custody Secrets and the Lease in the operator's namespace: by name; create
        # (unnameable).
        NAMESPACE: OWN_SECRET_RULES | lease_rules(),
    }
    assert container(docs)["args"] == ["--namespace", "team-a", "--namespace", "team-b"]


def test_rbac_follows_the_hmac_secret_name(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path,
                  {"watch": {"mode": "namespaces", "namespaces": ["a"]}, "hmacSecretName": "my-key"})
    assert ("", "secrets", "get", "my-key") in granted(docs)[NAMESPACE]
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["HTO_FINGERPRINT_SECRET"] == "my-key"


def test_rbac_create_false_renders_no_rbac(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {"rbac": {"create": False}})
    assert not [d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]


def test_service_account_options(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {"serviceAccount": {"create": False, "name": "existing"}})
    assert find(docs, "ServiceAccount") == []
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    for b in find(docs, "ClusterRoleBinding"):
        assert b["subjects"][0]["name"] == "existing"

    docs = render(helm, helm_env, tmp_path, {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "x"}}})
    assert one(docs, "ServiceAccount")["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "x"}


def test_name_overrides(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {"fullnameOverride": "hso"})
    assert one(docs, "Deployment")["metadata"]["name"] == "hso"
    assert {d["metadata"]["name"] for d in find(docs, "ClusterRole")} == {"hso", "hso-discovery", "hso-view", "hso-edit"}
    docs = render(helm, helm_env, tmp_path, {"nameOverride": "tokens"})
    assert one(docs, "Deployment")["metadata"]["name"] == f"{RELEASE}-tokens"
    assert one(docs, "Deployment")["metadata"]["labels"]["app.kubernetes.io/name"] == "tokens"


# ---- optional objects ------------------------------------------------------------------------------------


def test_monitoring_and_pdb(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "alertLabels": {"team": "platform"}, "expiryThresholdSeconds": 600},
        "podDisruptionBudget": {"enabled": True},
    })
    svc = one(docs, "Service", f"{FULLNAME}-metrics")
    sm = one(docs, "ServiceMonitor", FULLNAME, NAMESPACE)
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selected = sm["spec"]["selector"]["matchLabels"]
    assert selected.items() <= svc["metadata"]["labels"].items()
    assert not selected.items() <= one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True  # the token metrics carry their own `namespace` label

    rule = one(docs, "PrometheusRule", FULLNAME, NAMESPACE)
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"HubSpotTokenExpiringWithoutRefresh", "HubSpotTokenReauthRequired",
                           "HubSpotTokenRotationDue", "HubSpotTokenOperatorDown", "HubSpotTokenRefreshFailures",
                           "HubSpotTokenNotReady", "HubSpotTokenPreviousTokenInUse", "HubSpotTokenOperatorNoLeader",
                           "HubSpotTokenWorkQueueStuck"}
    assert "hubspot_token_expiry_timestamp_seconds - time()) < 600" in alerts["HubSpotTokenExpiringWithoutRefresh"]["expr"]
    assert alerts["HubSpotTokenReauthRequired"]["expr"] == \
        'hubspot_token_status_condition{condition="ReauthRequired", status="True"} == 1'
    assert alerts["HubSpotTokenRotationDue"]["expr"] == \
        'hubspot_token_status_condition{condition="RotationDue", status="True"} == 1'
    # The ServiceMonitor's job label is the Service name.
    assert f'up{{job="{svc["metadata"]["name"]}", namespace="{NAMESPACE}"}}' in alerts["HubSpotTokenOperatorDown"]["expr"]
    assert 'hubspot_token_refresh_total{result!="success"}' in alerts["HubSpotTokenRefreshFailures"]["expr"]
    for a in alerts.values():
        assert a["labels"]["severity"] in ("warning", "critical")
        assert a["labels"]["team"] == "platform"
        assert "{{ $labels" in a["annotations"]["summary"] or a["alert"] in (
            "HubSpotTokenOperatorDown", "HubSpotTokenOperatorNoLeader", "HubSpotTokenWorkQueueStuck")

    pdb = one(docs, "PodDisruptionBudget", FULLNAME, NAMESPACE)
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": one(docs, "Deployment")["spec"]["selector"]}
    docs = render(helm, helm_env, tmp_path, {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}})
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == "50%"


def test_pod_scheduling_and_extra_env(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {
        "podAnnotations": {"a": "b"}, "podLabels": {"team": "x"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "high",
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "imagePullSecrets": [{"name": "regcred"}],
        "image": {"repository": "ghcr.io/x/hto", "tag": "1.2.3", "pullPolicy": "Always"},
    })
    tpl = one(docs, "Deployment")["spec"]["template"]
    spec = tpl["spec"]
    assert tpl["metadata"]["annotations"] == {"a": "b"}
    assert tpl["metadata"]["labels"]["team"] == "x"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert spec["affinity"] == {"nodeAffinity": {}}
    assert spec["priorityClassName"] == "high"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    c = container(docs)
    assert c["image"] == "ghcr.io/x/hto:1.2.3" and c["imagePullPolicy"] == "Always"
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in c["env"]


# ---- the contract with the operator: env and args the chart sets are what the operator reads --------------


def test_rendered_env_and_args_configure_the_operator(helm: Path, helm_env: dict, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(helm, helm_env, tmp_path, {
        "watch": {"mode": "namespaces", "namespaces": ["a", "b"]},
        "hubspot": {"baseURL": "http://hubspot-sim.test:8080", "defaultOAuthAPI": "v3"},
        "workers": 3, "appRefreshRate": 2.5, "logLevel": "DEBUG", "logFormat": "text",
        "metrics": {"port": 9090}, "health": {"port": 9091}, "hmacSecretName": "k", "tokenSelector": "shard=a",
    })
    c = container(docs)
    downward = {"metadata.name": "hto-abc", "metadata.namespace": NAMESPACE}
    for var in [k for k in os.environ if k.startswith("HTO_")]:
        monkeypatch.delenv(var)
    for e in c["env"]:
        value = e["value"] if "value" in e else downward[e["valueFrom"]["fieldRef"]["fieldPath"]]
        monkeypatch.setenv(e["name"], value)
    s = Settings()
    assert (s.hubspot_base_url, s.default_oauth_api) == ("http://hubspot-sim.test:8080", "v3")
    assert (s.workers, s.refreshes_per_second_per_app) == (3, 2.5)
    assert (s.log_level, s.log_format) == ("DEBUG", "text")
    assert (s.metrics_port, s.health_port) == (9090, 9091)
    assert (s.operator_namespace, s.fingerprint_secret) == (NAMESPACE, "k")
    assert s.leader_elect and s.lease_name() == FULLNAME
    assert (s.lease_duration, s.lease_renew_deadline, s.lease_retry_period) == (15, 10, 2)
    assert s.token_selector == "shard=a"
    assert s.problems() == []  # the chart's defaults pass the operator's own start-up checks
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 9090, "health": 9091}
    assert one(docs, "Service")["spec"]["ports"][0]["targetPort"] == "metrics"

    args = build_parser().parse_args(["run", *c["args"]])
    assert args.namespace == ["a", "b"] and not args.all_namespaces
    docs = render(helm, helm_env, tmp_path)
    args = build_parser().parse_args(["run", *container(docs)["args"]])
    assert args.all_namespaces and args.namespace == []


# ---- schema ----------------------------------------------------------------------------------------------

INVALID = {
    "watch-mode-bogus": ({"watch": {"mode": "bogus"}}, "/watch/mode"),
    "namespaces-mode-empty-list": ({"watch": {"mode": "namespaces", "namespaces": []}}, "/watch/namespaces"),
    "namespaces-mode-no-list": ({"watch": {"mode": "namespaces"}}, "/watch"),
    "all-mode-with-namespaces": ({"watch": {"mode": "all", "namespaces": ["a"]}}, "/watch/namespaces"),
    "bad-namespace-name": ({"watch": {"mode": "namespaces", "namespaces": ["Team_A"]}}, "/watch/namespaces/0"),
    "replica-count-0": ({"replicaCount": 0}, "/replicaCount"),
    "replica-count-string": ({"replicaCount": "two"}, "/replicaCount"),
    "old-replicas-key": ({"replicas": 1}, "replicas"),  # renamed to replicaCount
    "lease-duration-fraction": ({"leaderElection": {"leaseDurationSeconds": 15.5}},
                                "/leaderElection/leaseDurationSeconds"),
    "retry-period-zero": ({"leaderElection": {"retryPeriodSeconds": 0}}, "/leaderElection/retryPeriodSeconds"),
    "lease-name-invalid": ({"leaderElection": {"leaseName": "Not_A_Name"}}, "/leaderElection/leaseName"),
    "leader-election-unknown-key": ({"leaderElection": {"enable": True}}, "enable"),
    "token-selector-list": ({"tokenSelector": ["shard=a"]}, "/tokenSelector"),
    "spread-constraints-object": ({"topologySpreadConstraints": {"maxSkew": 1}}, "/topologySpreadConstraints"),
    "log-format-xml": ({"logFormat": "xml"}, "/logFormat"),
    "log-level-verbose": ({"logLevel": "verbose"}, "/logLevel"),
    "base-url-not-a-url": ({"hubspot": {"baseURL": "not-a-url"}}, "/hubspot/baseURL"),
    "base-url-ftp": ({"hubspot": {"baseURL": "ftp://api.hubapi.com"}}, "/hubspot/baseURL"),
    "oauth-api-v2": ({"hubspot": {"defaultOAuthAPI": "v2"}}, "/hubspot/defaultOAuthAPI"),
    "negative-workers": ({"workers": -1}, "/workers"),
    "workers-string": ({"workers": "eight"}, "/workers"),
    "zero-refresh-rate": ({"appRefreshRate": 0}, "/appRefreshRate"),
    "port-out-of-range": ({"metrics": {"port": 70000}}, "/metrics/port"),
    "pull-policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "pdb-both": ({"podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}},
                 "/podDisruptionBudget"),
    "unknown-key": ({"replica": 1}, "replica"),
    "unknown-nested-key": ({"watch": {"mode": "all", "namespace": ["a"]}}, "namespace"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_schema_refuses(helm: Path, helm_env: dict, tmp_path: Path, case: str) -> None:
    values, field = INVALID[case]
    proc = run_helm(helm, helm_env, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    values=values, tmp=tmp_path)
    assert proc.returncode != 0, f"helm accepted {values}"
    assert "schema" in proc.stderr, proc.stderr
    assert field in proc.stderr, proc.stderr


def test_schema_refuses_on_install_too(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    """`helm install --dry-run=client` validates the schema before touching a cluster."""
    proc = run_helm(helm, helm_env, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    "--dry-run=client", values={"watch": {"mode": "namespaces"}}, tmp=tmp_path)
    assert proc.returncode != 0 and "/watch" in proc.stderr, proc.stderr


@pytest.mark.parametrize("values,message", [
    ({"metrics": {"port": 8081}}, "metrics.port and health.port must differ"),
    ({"serviceMonitor": {"enabled": True}, "metrics": {"port": 8080, "service": {"enabled": False}}},
     "serviceMonitor.enabled needs metrics.service.enabled"),
    ({"replicaCount": 2, "leaderElection": {"enabled": False}},
     "replicaCount is 2 but leaderElection.enabled is false"),
    ({"leaderElection": {"leaseDurationSeconds": 10, "renewDeadlineSeconds": 10}},
     "leaderElection needs 0 < retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds (got 2 / 10 / 10)"),
    ({"leaderElection": {"renewDeadlineSeconds": 2, "retryPeriodSeconds": 3}},
     "leaderElection needs 0 < retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds (got 3 / 2 / 15)"),
], ids=["same-ports", "servicemonitor-without-service", "replicas-without-leader-election",
        "renew-deadline-not-below-duration", "retry-not-below-renew-deadline"])
def test_template_refuses_inconsistent_values(helm: Path, helm_env: dict, tmp_path: Path, values: dict,
                                              message: str) -> None:
    proc = run_helm(helm, helm_env, "template", RELEASE, str(CHART), values=values, tmp=tmp_path)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


# ---- CRD -------------------------------------------------------------------------------------------------


def rendered_crd(helm: Path, env: dict, tmp: Path, values: dict | None = None) -> dict:
    return one(render(helm, env, tmp, values), "CustomResourceDefinition", "hubspottokens.hubspot-operator.dev")


def test_chart_has_no_crds_directory_and_its_crd_copy_is_verbatim() -> None:
    """Helm installs a chart's crds/ once and never upgrades it, and the same CRD from crds/ and from a template
    would collide: the CRD is only a template (templates/crds.yaml). Its source, files/crds/, is a verbatim copy.
    Re-sync with: cp crds/hubspottokens.hubspot-operator.dev.yaml charts/hubspot-token-operator/files/crds/"""
    assert not (CHART / "crds").exists()
    assert sorted(p.name for p in (CHART / "files" / "crds").iterdir()) == [CRD_NAME]
    source, copy = ROOT / "crds" / CRD_NAME, CHART / "files" / "crds" / CRD_NAME
    assert copy.read_bytes() == source.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {source.relative_to(ROOT)}; run: "
        f"cp {source.relative_to(ROOT)} {copy.parent.relative_to(ROOT)}/"
    )


def test_rendered_crd_is_the_repository_crd(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    """The object `helm install/upgrade` applies is crds/'s object, plus only the chart's labels and the keep
    annotation."""
    source = yaml.safe_load((ROOT / "crds" / CRD_NAME).read_text())
    crd = rendered_crd(helm, helm_env, tmp_path, {"commonLabels": {"team": "platform"}})
    md, src_md = crd["metadata"], source["metadata"]
    assert src_md["labels"].items() <= md["labels"].items()
    assert md["labels"]["app.kubernetes.io/managed-by"] == "Helm" and md["labels"]["team"] == "platform"
    assert md["annotations"] == {"helm.sh/resource-policy": "keep"}
    strip = lambda d: {**d, "metadata": {k: v for k, v in d["metadata"].items() if k not in ("labels", "annotations")}}
    assert strip(crd) == strip(source)
    assert "namespace" not in md  # cluster-scoped
    # the chart's RBAC names the CRD's own group and plural
    assert (crd["spec"]["group"], crd["spec"]["names"]["plural"]) == ("hubspot-operator.dev", "hubspottokens")


def test_crds_enabled_and_keep(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    assert "annotations" not in rendered_crd(helm, helm_env, tmp_path, {"crds": {"keep": False}})["metadata"]
    docs = render(helm, helm_env, tmp_path, {"crds": {"enabled": False}})
    assert find(docs, "CustomResourceDefinition") == []
    # --include-crds has nothing extra to add: there is no crds/ directory
    docs = render(helm, helm_env, tmp_path, None, "--include-crds")
    assert len(find(docs, "CustomResourceDefinition")) == 1


# ---- alerts, runbooks and the Grafana dashboard ------------------------------------------------------------

RUNBOOKS = ROOT / "docs" / "runbooks.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"
DASHBOARD = CHART / "dashboards" / "hubspot-token-operator.json"


def _documented_metrics() -> dict[str, str]:
    import re
    return dict(re.findall(r"^\| `(hubspot_token_\w+)` \| (counter|gauge|histogram|summary) \|",
                           METRICS_DOC.read_text(), re.M))


def _metrics_in(expr: str) -> set[str]:
    """The operator's metrics an expression reads, histogram samples (_bucket, _count, _sum) by their family."""
    import re
    documented = _documented_metrics()
    out = set()
    for name in re.findall(r"\bhubspot_token_\w+", expr):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        out.add(base if base != name and documented.get(base) == "histogram" else name)
    return out


def _anchors(markdown: str) -> dict[str, str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    import re
    out = {}
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.M):
        out[re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")] = heading.strip()
    return out


def _alerts(helm: Path, helm_env: dict, tmp_path: Path) -> dict[str, dict]:
    docs = render(helm, helm_env, tmp_path, {"prometheusRule": {"enabled": True}})
    rule = one(docs, "PrometheusRule", FULLNAME, NAMESPACE)
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_every_alert_links_its_own_runbook_section(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    alerts = _alerts(helm, helm_env, tmp_path)
    anchors = _anchors(RUNBOOKS.read_text())
    sections = {h for h in anchors.values() if h.startswith("HubSpotToken")}
    assert sections == set(alerts), "docs/runbooks.md needs one section per alert, and no other alert sections"
    for name, alert in alerts.items():
        url = alert["annotations"].get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page.startswith("https://") and page.endswith("/docs/runbooks.md"), f"{name}: {url}"
        assert anchors.get(anchor) == name, f"{name}: anchor #{anchor} is not its section in docs/runbooks.md"


def test_every_metric_in_an_alert_is_documented(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    documented = _documented_metrics()
    used = set()
    for name, alert in _alerts(helm, helm_env, tmp_path).items():
        metrics = _metrics_in(alert["expr"])
        assert metrics or name == "HubSpotTokenOperatorDown", f"{name} reads no operator metric"
        assert metrics <= set(documented), f"{name} reads undocumented {metrics - set(documented)}"
        used |= metrics
    # the alerts that matter read the per-token and operator signals the docs describe
    assert {"hubspot_token_status_condition", "hubspot_token_expiry_timestamp_seconds",
            "hubspot_token_previous_token_until_timestamp_seconds", "hubspot_token_refresh_total",
            "hubspot_token_operator_leader", "hubspot_token_workqueue_depth"} <= used


def test_operator_level_alerts_are_scoped_to_this_release(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    alerts = _alerts(helm, helm_env, tmp_path)
    scope = f'job="{FULLNAME}-metrics", namespace="{NAMESPACE}"'
    for name in ("HubSpotTokenOperatorDown", "HubSpotTokenOperatorNoLeader", "HubSpotTokenWorkQueueStuck"):
        expr = alerts[name]["expr"]
        import re
        selectors = re.findall(r"(?:up|hubspot_token_\w+)\{([^}]*)\}", expr)
        assert selectors and all(s == scope for s in selectors), f"{name}: {expr}"


def test_dashboard_is_valid_and_reads_only_documented_metrics() -> None:
    import json
    dash = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in dash["panels"]}
    assert {"Tokens by Ready", "Expiring soon", "Refreshes/s by result", "Failures by token", "HubSpot API latency",
            "Kubernetes API latency", "Work queue depth", "Leader"} <= titles
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    documented = set(_documented_metrics())
    for p in dash["panels"]:
        assert p["targets"], p["title"]
        for t in p["targets"]:
            used = _metrics_in(t["expr"])
            assert used and used <= documented, f"{p['title']}: {used - documented}"
            assert p["datasource"]["uid"] == "${datasource}"  # no datasource of one installation baked in


def test_dashboard_configmap(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    assert not find(render(helm, helm_env, tmp_path), "ConfigMap", f"{FULLNAME}-dashboard")
    docs = render(helm, helm_env, tmp_path, {"grafana": {"dashboard": {"enabled": True}}})
    cm = one(docs, "ConfigMap", f"{FULLNAME}-dashboard", NAMESPACE)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["hubspot-token-operator.json"] == DASHBOARD.read_text().rstrip("\n")
    docs = render(helm, helm_env, tmp_path, {"grafana": {"dashboard": {
        "enabled": True, "namespace": "monitoring", "labels": {"grafana_dashboard": None, "dashboards": "hubspot"},
        "annotations": {"grafana_folder": "HubSpot"}}}})
    cm = one(docs, "ConfigMap", f"{FULLNAME}-dashboard", "monitoring")
    assert cm["metadata"]["labels"]["dashboards"] == "hubspot" and "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "HubSpot"}


def test_schema_refuses_unknown_grafana_keys(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    for values, field in (({"grafana": {"dashbord": {}}}, "dashbord"),
                          ({"grafana": {"dashboard": {"enabled": "yes"}}}, "/grafana/dashboard/enabled")):
        proc = run_helm(helm, helm_env, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                        values=values, tmp=tmp_path)
        assert proc.returncode != 0 and "schema" in proc.stderr and field in proc.stderr, proc.stderr


# ---- knobs, aggregated roles, NetworkPolicy, the chart README (issue #14) ----------------------------------


def test_extra_args_volumes_and_deployment_annotations(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {
        "watch": {"mode": "namespaces", "namespaces": ["a"]},
        "extraArgs": ["--hubspot-call-deadline", "8"],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
        "deploymentAnnotations": {"reloader.stakater.com/auto": "false"},
        "podAnnotations": {"p": "1"},
    })
    dep = one(docs, "Deployment")
    assert dep["metadata"]["annotations"] == {"reloader.stakater.com/auto": "false"}
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"p": "1"}  # pods keep their own
    c = container(docs)
    assert c["args"] == ["--namespace", "a", "--hubspot-call-deadline", "8"]  # appended after the chart's own
    args = build_parser().parse_args(["run", *c["args"]])
    assert args.namespace == ["a"] and args.hubspot_call_deadline == 8
    pod = dep["spec"]["template"]["spec"]
    assert pod["volumes"][0]["name"] == "tmp" and pod["volumes"][1] == {"name": "ca", "configMap": {"name": "corp-ca"}}
    assert {"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True} in c["volumeMounts"]
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp", "/etc/corp-ca"}

    dep = one(render(helm, helm_env, tmp_path), "Deployment")
    assert "annotations" not in dep["metadata"]
    assert [v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]] == ["tmp"]


def test_host_network_and_dns_policy_are_kept(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    pod = one(render(helm, helm_env, tmp_path, {"hostNetwork": True}), "Deployment")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_common_labels_are_on_every_object(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    docs = render(helm, helm_env, tmp_path, {
        "commonLabels": {"team": "platform", "app.kubernetes.io/name": "not-this", "app.kubernetes.io/component": "x"},
        "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
        "grafana": {"dashboard": {"enabled": True}}, "networkPolicy": {"enabled": True},
        "watch": {"mode": "namespaces", "namespaces": ["a", "b"]}, "podLabels": {"pod-only": "yes"},
    })
    kinds = {d["kind"] for d in docs}
    assert {"CustomResourceDefinition", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ConfigMap",
            "PodDisruptionBudget", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} <= kinds
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["team"] == "platform", f"{d['kind']} {d['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "hubspot-token-operator"  # the chart's own labels win
        assert labels.get("app.kubernetes.io/component") in (None, "operator", "metrics")
        assert "pod-only" not in labels
    tpl_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert tpl_labels["pod-only"] == "yes" and "team" not in tpl_labels


def _by_name(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in find(docs, kind)}


def test_aggregated_cluster_roles_for_hubspottokens(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    roles = _by_name(render(helm, helm_env, tmp_path), "ClusterRole")
    view, edit = roles[f"{FULLNAME}-view"], roles[f"{FULLNAME}-edit"]
    agg = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k[len(agg):] for k, v in view["metadata"]["labels"].items() if k.startswith(agg) and v == "true"} == {
        "view", "edit", "admin"}
    assert {k[len(agg):] for k, v in edit["metadata"]["labels"].items() if k.startswith(agg) and v == "true"} == {
        "edit", "admin"}
    G, R = "hubspot-operator.dev", "hubspottokens"
    assert expand(view["rules"]) == {(G, R, v, None) for v in ("get", "list", "watch")}
    assert expand(edit["rules"]) == {(G, R, v, None) for v in (
        "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")}
    # nobody but the operator writes status; nothing else is granted through view/edit/admin
    for role in (view, edit):
        assert all(r["resources"] == [R] and r["apiGroups"] == [G] for r in role["rules"])
    # bound to nobody by the chart: what the operator's ServiceAccount gets is unchanged (test_rbac_*)
    docs = render(helm, helm_env, tmp_path)
    assert not any(b["roleRef"]["name"] in (f"{FULLNAME}-view", f"{FULLNAME}-edit") for b in docs if "roleRef" in b)

    for values in ({"rbac": {"aggregateToDefaultRoles": False}}, {"rbac": {"create": False}}):
        names = set(_by_name(render(helm, helm_env, tmp_path, values), "ClusterRole"))
        assert not names & {f"{FULLNAME}-view", f"{FULLNAME}-edit"}, values


def _egress_to(policy: dict) -> list[tuple[set, set]]:
    """Egress rules as (peers, ports): peers as ipBlock CIDRs or 'ns:<name>' strings, ports as (port, proto)."""
    out = []
    for rule in policy["spec"]["egress"]:
        peers = set()
        for p in rule.get("to", []):
            if "ipBlock" in p:
                peers.add(p["ipBlock"]["cidr"])
            else:
                peers.add("ns:" + p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
        out.append((peers, {(p["port"], p["protocol"]) for p in rule["ports"]}))
    return out


def test_network_policy(helm: Path, helm_env: dict, tmp_path: Path) -> None:
    assert find(render(helm, helm_env, tmp_path), "NetworkPolicy") == []
    docs = render(helm, helm_env, tmp_path, {"networkPolicy": {"enabled": True}})
    np = one(docs, "NetworkPolicy", FULLNAME, NAMESPACE)
    assert np["spec"]["podSelector"] == one(docs, "Deployment")["spec"]["selector"]
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert _egress_to(np) == [
        ({"0.0.0.0/0"}, {(443, "TCP"), (6443, "TCP")}),  # API server
        ({"0.0.0.0/0"}, {(443, "TCP")}),  # HubSpot: no fixed ranges
        ({"ns:kube-system"}, {(53, "UDP"), (53, "TCP")}),  # DNS
    ]
    ingress = np["spec"]["ingress"]
    assert [r["ports"] for r in ingress] == [[{"port": "metrics", "protocol": "TCP"}],
                                             [{"port": "health", "protocol": "TCP"}]]
    assert all("from" not in r for r in ingress)
    # the named ports exist on the container
    assert {p["name"] for p in container(docs)["ports"]} == {"metrics", "health"}

    prom = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
             "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    docs = render(helm, helm_env, tmp_path, {"networkPolicy": {
        "enabled": True,
        "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [6443]},
        "hubspot": {"cidrs": ["192.0.2.10/32"], "ports": [3128]},
        "dns": {"enabled": True, "podSelector": {"k8s-app": "kube-dns"}},
        "ingress": {"metricsFrom": prom, "healthFrom": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]},
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}], "ports": [{"port": 8443, "protocol": "TCP"}]}],
    }})
    np = one(docs, "NetworkPolicy")
    assert _egress_to(np) == [({"10.0.0.1/32"}, {(6443, "TCP")}), ({"192.0.2.10/32"}, {(3128, "TCP")}),
                              ({"ns:kube-system"}, {(53, "UDP"), (53, "TCP")}),
                              ({"198.51.100.0/24"}, {(8443, "TCP")})]
    assert np["spec"]["egress"][2]["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert np["spec"]["ingress"][0]["from"] == prom
    assert np["spec"]["ingress"][1]["from"] == [{"ipBlock": {"cidr": "10.1.0.0/16"}}]
    np = one(render(helm, helm_env, tmp_path, {"networkPolicy": {"enabled": True, "dns": {"enabled": False}}}),
             "NetworkPolicy")
    assert all(53 not in {p for p, _ in ports} for _, ports in _egress_to(np))


NEW_INVALID = {
    "crds-unknown-key": ({"crds": {"install": True}}, "install"),
    "crds-keep-string": ({"crds": {"keep": "yes"}}, "/crds/keep"),
    "extra-args-not-strings": ({"extraArgs": [{"a": 1}]}, "/extraArgs/0"),
    "extra-volume-no-name": ({"extraVolumes": [{"emptyDir": {}}]}, "/extraVolumes/0"),
    "extra-mount-no-path": ({"extraVolumeMounts": [{"name": "x"}]}, "/extraVolumeMounts/0"),
    "common-labels-not-strings": ({"commonLabels": {"a": {"b": 1}}}, "/commonLabels/a"),
    "deployment-annotations-list": ({"deploymentAnnotations": ["a"]}, "/deploymentAnnotations"),
    "rbac-aggregate-string": ({"rbac": {"aggregateToDefaultRoles": "yes"}}, "/rbac/aggregateToDefaultRoles"),
    "netpol-unknown-key": ({"networkPolicy": {"enabled": True, "egress": []}}, "egress"),
    "netpol-bad-cidr": ({"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}}, "/networkPolicy/apiServer/cidrs/0"),
    "netpol-bad-port": ({"networkPolicy": {"hubspot": {"ports": [0]}}}, "/networkPolicy/hubspot/ports/0"),
    "netpol-peer-unknown": ({"networkPolicy": {"ingress": {"metricsFrom": [{"namespace": "x"}]}}},
                            "/networkPolicy/ingress/metricsFrom/0"),
}


@pytest.mark.parametrize("case", NEW_INVALID, ids=list(NEW_INVALID))
def test_schema_refuses_bad_new_values(helm: Path, helm_env: dict, tmp_path: Path, case: str) -> None:
    values, field = NEW_INVALID[case]
    proc = run_helm(helm, helm_env, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    values=values, tmp=tmp_path)
    assert proc.returncode != 0, f"helm accepted {values}"
    assert "schema" in proc.stderr and field in proc.stderr, proc.stderr


def _value_keys(values: dict, prefix: str = "") -> list[str]:
    """Every key of values.yaml as a dotted path (maps with content are walked, their own key included)."""
    out = []
    for k, v in values.items():
        path = f"{prefix}{k}"
        out.append(path)
        if isinstance(v, dict) and v:
            out += _value_keys(v, path + ".")
    return out


def test_chart_readme_documents_every_value() -> None:
    import re
    readme = (CHART / "README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    leaves = [k for k in _value_keys(values) if not isinstance(_get(values, k), dict) or not _get(values, k)]
    # a row documents its key; a map documented as a whole (securityContext, resources) covers its children
    covered = lambda k: any(".".join(k.split(".")[:i]) in rows for i in range(1, k.count(".") + 2))
    missing = [k for k in leaves if not covered(k)]
    assert not missing, f"charts/hubspot-token-operator/README.md has no table row for: {missing}"
    for whole in ("podSecurityContext", "securityContext", "resources", "grafana.dashboard.labels"):
        assert whole in rows, whole
    unknown = [r for r in rows if _get(values, r, _MISSING) is _MISSING
               and r not in ("podDisruptionBudget.minAvailable", "podDisruptionBudget.maxUnavailable")]
    assert not unknown, f"README rows for keys values.yaml does not have: {unknown}"
    for section in ("## Install", "## Upgrade", "## Uninstall", "## Values"):
        assert section in readme, section


def test_every_value_has_a_doc_comment_or_a_documented_parent() -> None:
    """helm-docs style: every top-level key and every new issue-#14 key carries a `# --` comment."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented = set()
    for i, line in enumerate(lines):
        key = line.split(":", 1)[0].strip()
        j = i - 1
        while j >= 0 and lines[j].lstrip().startswith("#") and not lines[j].lstrip().startswith("# --"):
            j -= 1
        if j >= 0 and lines[j].lstrip().startswith("# --"):
            documented.add((len(line) - len(line.lstrip()), key))
    for key in ("crds", "commonLabels", "extraArgs", "extraEnv", "extraVolumes", "extraVolumeMounts",
                "deploymentAnnotations", "podLabels", "topologySpreadConstraints", "logLevel", "logFormat"):
        if key == "crds":
            assert {(2, "enabled"), (2, "keep")} <= documented
        else:
            assert (0, key) in documented, key
    for key in ("enabled", "cidrs", "ports", "metricsFrom", "healthFrom", "extraEgress", "aggregateToDefaultRoles"):
        assert any(k == key for _, k in documented), key


_MISSING = object()


def _get(values: dict, path: str, default: Any = None) -> Any:
    cur: Any = values
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


# ---- what the security scanners checked (docs/security-scan.md; `make scan` runs the scanners themselves) ----

# The value sets docs/security-scan.md scans; the properties below hold for each of them.
SCAN_VALUE_SETS = {
    "default": {},
    "single": {"replicaCount": 1, "leaderElection": {"enabled": False}},
    "full": {"networkPolicy": {"enabled": True}, "serviceMonitor": {"enabled": True},
             "prometheusRule": {"enabled": True}, "grafana": {"dashboard": {"enabled": True}},
             "image": {"digest": "sha256:" + "0" * 64}},
    "namespaces": {"watch": {"mode": "namespaces", "namespaces": ["team-a", "team-b"]}},
}


@pytest.mark.parametrize("case", sorted(SCAN_VALUE_SETS))
def test_scanner_findings_fixed_in_the_chart_stay_fixed(helm: Path, helm_env: dict, tmp_path: Path,
                                                        case: str) -> None:
    docs = render(helm, helm_env, tmp_path, SCAN_VALUE_SETS[case])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod.get("initContainers", []) + pod["containers"]:
        res, sc = c["resources"], c["securityContext"]
        assert res["requests"].get("cpu") and res["requests"].get("memory"), c["name"]
        assert res["limits"].get("cpu") and res["limits"].get("memory"), c["name"]  # CKV_K8S_11/13, kube-score
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 10000, c["name"]  # CKV_K8S_40
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), c["name"]
        assert c["livenessProbe"] and c["readinessProbe"], c["name"]
        image = c["image"]
        assert not image.endswith(":latest") and (":" in image.rsplit("/", 1)[-1] or "@sha256:" in image)
    if case == "full":  # pinned by digest: the pull-policy and digest findings do not apply (CKV_K8S_15/43)
        assert pod["containers"][0]["image"].endswith("@sha256:" + "0" * 64)
        one(docs, "NetworkPolicy")  # CKV2_K8S_6, kube-score pod-networkpolicy
    assert any(d["kind"] == "PodDisruptionBudget" for d in docs)
