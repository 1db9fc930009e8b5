"""Tenant isolation, end to end: a HubSpotToken can only make the operator touch what its author may touch.

The operator runs as it does in production: with a TokenRequest token of the Helm chart's own
ServiceAccount and exactly the chart's RBAC (`watch.mode: namespaces`, watching one namespace). A tenant,
the ServiceAccount `tenant` whose Role allows HubSpotTokens and nothing else, applies HubSpotTokens with its
own bearer token. An admin (the test's normal client) owns the victims in the same namespace:

- `db-password`: a Secret with no consent label;
- `team-b-app` / `team-b-install`: another team's app credentials and refresh token, used by the legitimate
  HubSpotToken `team-b` (the app Secret consents to `team-b` only; the refresh-token Secret carries the
  plain consent label, so only the no-take-over rule protects it);
- `payments`: a Deployment with no consent label;
- `victim-target`: a Secret with no consent label.

Every attack must be refused with a reason and a message that says why (Ready condition and a Warning
Event), no byte may reach the capture server (a local HTTP server that answers 200 to anything), and the
victims must be exactly as they were (resourceVersion, data, labels, annotations, ownerReferences;
generation and pod-template annotations for the Deployment). The same tenant's legitimate tokens, over
Secrets and workloads that consented, publish and restart as usual.

Negative assertions are made only after a positive signal: the refusal condition, the garbage collector
collecting a canary, a consenting Deployment being restarted. The session-wide operator watches every
namespace, so (as in test_faults.py) it is stopped while this module runs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from hubspot_token_operator import GROUP, KIND, PLURAL, VERSION
from hubspot_token_operator.tenancy import ALLOWED_TOKENS, CONSENT_LABEL
from tests.cluster import faults as f
from tests.cluster import tokens as t
from tests.cluster import workloads as w
from tests.cluster.conftest import _keep_for_leak_check
from tests.cluster.harness import Operator
from tests.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hubspot-token-operator"
HUB = 5151
REFRESH = "hubspot-operator.dev/refresh-requested-at"
CREATED_FOR = "hubspot-operator.dev/created-for"
TOKEN_ROUTE = "POST /oauth/2026-03/token"
PA_INFO_ROUTE = "POST /oauth/v2/private-apps/get/access-token-info"
PA_BEARER_ROUTE = "GET /account-info/2026-03/details"
CONSENT = {CONSENT_LABEL: "true"}


# ---- the capture server: where an attacker would like the operator to send things -----------------------


class Capture:
    """Records every request (method, path, headers, body) and answers 200 with JSON that looks valid to
    any HubSpot client call (token, token info, account details)."""

    ANSWER = {
        "access_token": "captured-access-token", "refresh_token": "captured-refresh-token", "expires_in": 1800,
        "token_type": "bearer", "hub_id": HUB, "hubId": HUB, "portalId": HUB, "user_id": 1, "userId": 1,
        "app_id": 1, "appId": 1, "scopes": ["oauth"], "status": "valid",
    }

    def __init__(self) -> None:
        self.requests: list[dict] = []
        lock, seen, answer = threading.Lock(), self.requests, json.dumps(self.ANSWER).encode()

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with lock:
                    seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body.decode(errors="replace")})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.hostport = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.hostport}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="capture", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def assert_nothing(self) -> None:
        got = [(r["method"], r["path"]) for r in self.requests]
        assert not got, f"the capture server received {len(got)} request(s): {got}"


# ---- the environment: chart RBAC, the operator under it, the tenant, the victims --------------------------


@dataclass
class Env:
    ns: str
    release_ns: str
    op: Operator
    capture: Capture
    tenant: client.CustomObjectsApi
    tenant_api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    victims: dict = field(default_factory=dict)  # name -> state at setup

    def snapshot(self) -> dict:
        return {
            "Secret/db-password": secret_state(self.core, self.ns, "db-password"),
            "Secret/victim-target": secret_state(self.core, self.ns, "victim-target"),
            "Secret/team-b-app": secret_state(self.core, self.ns, "team-b-app"),
            "Secret/team-b-install": secret_state(self.core, self.ns, "team-b-install"),
            "Deployment/payments": deployment_state(self.apps, self.ns, "payments"),
        }

    def assert_victims_unchanged(self) -> None:
        now = self.snapshot()
        changed = {k: (self.victims[k], now[k]) for k in self.victims if now[k] != self.victims[k]}
        assert not changed, f"victims changed: {json.dumps(changed, indent=1, default=str)}"

    def apply(self, body: dict) -> dict:
        """A HubSpotToken applied by the tenant, with the tenant's own credentials."""
        return t.create(self.tenant, self.ns, body)


def secret_state(core, ns: str, name: str) -> dict:
    s = core.read_namespaced_secret(name, ns)
    return {"resourceVersion": s.metadata.resource_version, "data": s.data, "labels": s.metadata.labels,
            "annotations": s.metadata.annotations,
            "ownerReferences": [r.to_dict() for r in s.metadata.owner_references or []]}


def deployment_state(apps, ns: str, name: str) -> dict:
    d = apps.read_namespaced_deployment(name, ns)
    return {"generation": d.metadata.generation, "labels": d.metadata.labels, "annotations": d.metadata.annotations,
            "templateAnnotations": d.spec.template.metadata.annotations}


def put(core, ns: str, name: str, data: dict[str, str], labels: dict | None = None,
        annotations: dict | None = None, owner_references: list | None = None) -> None:
    """A Secret created by its owner (the admin), with exactly these labels and annotations."""
    core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations,
                                     owner_references=owner_references),
        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()}))


def _run(cluster, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=120, input=stdin)


def _kubeconfig_with_token(cluster, token: str, path: Path) -> Path:
    base = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    base["users"] = [{"name": "sa", "user": {"token": token}}]
    base["contexts"][0]["context"]["user"] = "sa"
    path.write_text(yaml.safe_dump(base))
    return path


def _sa_token(core, ns: str, sa: str) -> str:
    tr = core.create_namespaced_service_account_token(sa, ns, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)))
    return tr.status.token


@pytest.fixture(scope="module", autouse=True)
def sole_operator(request):
    """The only operator touching the tenant's namespace is the one running with the chart's RBAC."""
    yield from f.run_without_session_operator(request, "tenancy suite")


@pytest.fixture(scope="module")
def capture():
    c = Capture()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def env(cluster, api, core, apps, custom, crds, simulator, capture, tmp_path_factory):
    suffix = uuid.uuid4().hex[:6]
    ns, release_ns, release = f"tenant-a-{suffix}", f"hto-ten-{suffix}", f"hto-ten-{suffix}"
    tmp = tmp_path_factory.mktemp("tenancy")
    for n in (ns, release_ns):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=n)))
    manifests = ""
    op = None
    try:
        # the chart's ServiceAccount and RBAC, nothing else (namespaces mode: Secret rights only in `ns`)
        res = _run(cluster, "helm", "template", release, str(CHART), "-n", release_ns,
                   "--set", "watch.mode=namespaces", "--set", f"watch.namespaces={{{ns}}}",
                   "--set", "image.repository=example.invalid/hubspot-token-operator",
                   "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml")
        assert res.returncode == 0, res.stderr
        manifests = res.stdout
        res = _run(cluster, "kubectl", "apply", "-f", "-", stdin=manifests)  # every object names its namespace
        assert res.returncode == 0, res.stderr
        op_sa = next(d["metadata"]["name"] for d in yaml.safe_load_all(manifests)
                     if d and d["kind"] == "ServiceAccount")
        op_kc = _kubeconfig_with_token(cluster, _sa_token(core, release_ns, op_sa), tmp / "operator-kubeconfig")

        # the tenant: HubSpotTokens in its namespace, and nothing else
        core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="tenant")))
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(ns, client.V1Role(
            metadata=client.V1ObjectMeta(name="hubspottokens-only"),
            rules=[client.V1PolicyRule(api_groups=[GROUP], resources=[PLURAL],
                                       verbs=["get", "list", "watch", "create", "update", "patch", "delete"])]))
        rbac.create_namespaced_role_binding(ns, client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="tenant-hubspottokens"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="hubspottokens-only"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="tenant", namespace=ns)]))
        tenant_kc = _kubeconfig_with_token(cluster, _sa_token(core, ns, "tenant"), tmp / "tenant-kubeconfig")
        tenant_api = config.new_client_from_config(config_file=str(tenant_kc))

        # victims, owned by the admin
        db_password = f"db-pw-{uuid.uuid4().hex}"
        t.remember(db_password)
        put(core, ns, "db-password", {"username": "payments", "password": db_password},
            labels={"team": "payments"}, annotations={"owner": "payments-dba"})
        put(core, ns, "victim-target", {"api_key": f"victim-{uuid.uuid4().hex}"},
            labels={"team": "payments"}, annotations={"owner": "payments-team"})
        apps.create_namespaced_deployment(ns, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="payments", labels={"app": "payments"}),
            spec=client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels={"app": "payments"}),
                                         template=w._template("payments"))))
        b_app = simulator.create_app()
        t.remember(b_app["client_secret"])
        put(core, ns, "team-b-app", {"client_id": b_app["client_id"], "client_secret": b_app["client_secret"]},
            labels=CONSENT, annotations={ALLOWED_TOKENS: "team-b"})
        b_refresh = simulator.install(b_app["client_id"], HUB, ["oauth"])
        t.remember(b_refresh)
        put(core, ns, "team-b-install", {"refresh_token": b_refresh}, labels=CONSENT)
        t.create(custom, ns, t.oauth_token("team-b", target="team-b-access", oauth={
            "clientSecretRef": {"name": "team-b-app"}, "refreshTokenSecretRef": {"name": "team-b-install"}}))

        # the tenant's own inputs, created by their owner (the admin: the tenant has no Secret rights)
        a_app = simulator.create_app()
        t.remember(a_app["client_secret"])
        put(core, ns, "tenant-app", {"client_id": a_app["client_id"], "client_secret": a_app["client_secret"]},
            labels=CONSENT)
        a_refresh = simulator.install(a_app["client_id"], HUB, ["oauth"])
        t.remember(a_refresh)
        put(core, ns, "tenant-install", {"refresh_token": a_refresh}, labels=CONSENT)

        # the Lease the chart's Role lets the operator hold (by name), as the Deployment would name it
        lease = next(name for d in yaml.safe_load_all(manifests) if d and d["kind"] == "Role"
                     for rule in d["rules"] if "leases" in rule.get("resources", [])
                     for name in rule.get("resourceNames", []))
        op = Operator(op_kc, simulator, tmp / "operator.log", release_ns, scope=("--namespace", ns))
        op.start("--tenancy", "consent", "--lease-name", lease)
        print(f"\noperator log: {op.log_path}", flush=True)
        wait_for(lambda: t.condition(t.get(custom, ns, "team-b"), "Ready").get("status") == "True",
                 timeout=40, what="team-b Ready under the chart's RBAC")
        e = Env(ns, release_ns, op, capture, client.CustomObjectsApi(tenant_api), tenant_api, core, apps, custom)
        e.victims = e.snapshot()
        yield e
    finally:
        if op is not None:
            op.stop()
        _keep_for_leak_check(api, ns)
        if manifests:
            _run(cluster, "kubectl", "delete", "--ignore-not-found", "-f", "-", stdin=manifests)
        for n in (ns, release_ns):
            try:
                core.delete_namespace(n)
            except client.ApiException:
                pass


# ---- helpers ------------------------------------------------------------------------------------------


def refused(e: Env, name: str, reason: str, timeout: float = 30) -> tuple[dict, client.CoreV1Event]:
    """Waits for Ready=False with `reason` at the token's current generation and its Warning Event."""

    def cond():
        obj = t.get(e.custom, e.ns, name)
        c = t.condition(obj, "Ready")
        ok = c.get("status") == "False" and c.get("reason") == reason
        return c if ok and c.get("observedGeneration") == obj["metadata"]["generation"] else None

    c = wait_for(cond, timeout=timeout, what=f"{name}: Ready=False {reason}")
    ev = wait_for(lambda: next((x for x in t.events(e.core, e.ns, name)
                                if x.reason == reason and x.type == "Warning"), None),
                  timeout=timeout, what=f"{name}: Warning Event {reason}")
    return c, ev


def ready(e: Env, name: str, timeout: float = 30) -> dict:
    def check():
        obj = t.get(e.custom, e.ns, name)
        return obj if t.condition(obj, "Ready").get("status") == "True" else None

    return wait_for(check, timeout=timeout, what=f"{name} Ready=True")


def secret_absent(e: Env, name: str) -> bool:
    return t.read_secret(e.core, e.ns, name) is None


def delete_and_wait_for_gc(e: Env, name: str) -> None:
    """Deletes a HubSpotToken (as the tenant) and returns once the garbage collector has acted on it: a
    canary Secret owned by the token is collected (the positive signal for "GC had its chance")."""
    uid = t.get(e.custom, e.ns, name)["metadata"]["uid"]
    canary = f"gc-canary-{name}"
    put(e.core, e.ns, canary, {"x": "y"}, owner_references=[client.V1OwnerReference(
        api_version=f"{GROUP}/{VERSION}", kind=KIND, name=name, uid=uid, block_owner_deletion=False)])
    e.tenant.delete_namespaced_custom_object(GROUP, VERSION, e.ns, PLURAL, name)
    wait_for(lambda: secret_absent(e, canary), timeout=60, what=f"garbage collector acted on {name}'s deletion")


def pa_calls(sim) -> int:
    return sim.calls(PA_INFO_ROUTE) + sim.calls(PA_BEARER_ROUTE)


# ---- the tenant ------------------------------------------------------------------------------------------


def test_the_tenant_may_touch_hubspottokens_only(env):
    core, apps = client.CoreV1Api(env.tenant_api), client.AppsV1Api(env.tenant_api)
    assert env.tenant.list_namespaced_custom_object(GROUP, VERSION, env.ns, PLURAL)["items"]
    for what, call in (
        ("read db-password", lambda: core.read_namespaced_secret("db-password", env.ns)),
        ("list Secrets", lambda: core.list_namespaced_secret(env.ns)),
        ("label db-password", lambda: core.patch_namespaced_secret(
            "db-password", env.ns, {"metadata": {"labels": CONSENT}})),
        ("label payments", lambda: apps.patch_namespaced_deployment(
            "payments", env.ns, {"metadata": {"labels": CONSENT}})),
        ("create a Secret", lambda: core.create_namespaced_secret(env.ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name="forged", labels=CONSENT)))),
        ("write HubSpotToken status", lambda: env.tenant.patch_namespaced_custom_object_status(
            GROUP, VERSION, env.ns, PLURAL, "team-b", {"status": {"tokenFingerprint": "x"}})),
    ):
        with pytest.raises(client.ApiException) as err:
            call()
        assert err.value.status == 403, what


# ---- 1. endpoints ----------------------------------------------------------------------------------------


def test_an_endpoint_off_the_allow_list_is_never_contacted(env, simulator):
    sim_hostport = simulator.url.split("://", 1)[1]
    cases = {
        # a private-app token naming the DB password as its "token", sent to the attacker
        "exfil-pa": t.private_app_token("exfil-pa", target="exfil-pa-out", hubspot={"baseURL": env.capture.url},
                                        privateApp={"tokenSecretRef": {"name": "db-password", "key": "password"}}),
        # the tenant's own, consenting credentials: the client secret and refresh token must not go there either
        "exfil-oauth": t.oauth_token("exfil-oauth", target="exfil-oauth-out", hubspot={"baseURL": env.capture.url},
                                     oauth={"clientSecretRef": {"name": "tenant-app"},
                                            "refreshTokenSecretRef": {"name": "tenant-install"}}),
        # a URL that starts like the allowed one but whose host is the capture server (userinfo)
        "exfil-userinfo": t.oauth_token("exfil-userinfo", target="exfil-userinfo-out",
                                        hubspot={"baseURL": f"http://{sim_hostport}@{env.capture.hostport}"},
                                        oauth={"clientSecretRef": {"name": "tenant-app"},
                                               "refreshTokenSecretRef": {"name": "tenant-install"}}),
    }
    for body in cases.values():
        env.apply(body)
    for name in cases:
        c, ev = refused(env, name, "EndpointNotAllowed")
        for text in (c["message"], ev.message):
            assert "not on the operator's allow-list" in text and "nothing was sent" in text, text
        assert env.capture.hostport in c["message"]
        assert secret_absent(env, f"{name}-out")
        status = t.get(env.custom, env.ns, name).get("status") or {}
        assert "tokenFingerprint" not in status and "grantFingerprint" not in status, status
    # refused again at the next generation, and said once: no Warning Event on every reconcile
    for name in cases:
        t.patch(env.tenant, env.ns, name, {"spec": {"target": {"name": f"{name}-out2"}}})
    for name in cases:
        refused(env, name, "EndpointNotAllowed")
        assert secret_absent(env, f"{name}-out2")
        said = [x for x in t.events(env.core, env.ns, name) if x.reason == "EndpointNotAllowed"]
        assert sum(x.count or 1 for x in said) == 1, [(x.message, x.count) for x in said]
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


# ---- 1b, 2. input Secrets that did not consent -----------------------------------------------------------


def test_a_private_app_source_without_consent_is_never_read(env, simulator):
    before = pa_calls(simulator)
    env.apply(t.private_app_token("peek", target="peek-out",
                                  privateApp={"tokenSecretRef": {"name": "db-password", "key": "password"}}))
    c, ev = refused(env, "peek", "ConsentMissing")
    for text in (c["message"], ev.message):
        assert "Secret db-password has not consented to HubSpotToken peek" in text, text
        assert f"{CONSENT_LABEL}=true" in text, text
    assert pa_calls(simulator) == before, "a private-app verification call was made with db-password's value"
    assert secret_absent(env, "peek-out")
    pa = (t.get(env.custom, env.ns, "peek").get("status") or {}).get("privateApp") or {}
    assert not any(k.endswith("Fingerprint") and v for k, v in pa.items()), pa
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


def test_an_oauth_client_secret_without_consent_is_never_read(env, simulator):
    before = simulator.calls(TOKEN_ROUTE)
    # a key of db-password as the client secret
    env.apply(t.oauth_token("spill", target="spill-out", oauth={
        "clientSecretRef": {"name": "db-password", "clientIdKey": "username", "clientSecretKey": "password"},
        "refreshTokenSecretRef": {"name": "tenant-install"}}))
    # another team's app and grant: the app Secret consents to team-b only (allowed-tokens)
    env.apply(t.oauth_token("borrow", target="borrow-out", oauth={
        "clientSecretRef": {"name": "team-b-app"}, "refreshTokenSecretRef": {"name": "team-b-install"}}))
    for name, secret in (("spill", "db-password"), ("borrow", "team-b-app")):
        c, ev = refused(env, name, "ConsentMissing")
        for text in (c["message"], ev.message):
            assert f"Secret {secret} has not consented to HubSpotToken {name}" in text, text
        assert secret_absent(env, f"{name}-out")
    assert simulator.calls(TOKEN_ROUTE) == before, "a token call was made with a Secret that did not consent"
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


# ---- 3. targets that did not consent, and deletionPolicy Delete -----------------------------------------


def test_adopting_a_foreign_secret_with_delete_is_refused_and_deleting_the_token_leaves_it(env):
    body = t.oauth_token("grab", target="victim-target", oauth={
        "clientSecretRef": {"name": "tenant-app"}, "refreshTokenSecretRef": {"name": "tenant-install"}})
    body["spec"]["target"].update(creationPolicy="Adopt", deletionPolicy="Delete")
    env.apply(body)
    c, ev = refused(env, "grab", "ConsentMissing")
    for text in (c["message"], ev.message):
        assert "Secret victim-target has not consented to HubSpotToken grab" in text, text
    env.assert_victims_unchanged()

    delete_and_wait_for_gc(env, "grab")
    after = secret_state(env.core, env.ns, "victim-target")
    assert after == env.victims["Secret/victim-target"] and not after["ownerReferences"]
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


def test_a_published_target_renamed_to_a_foreign_secret_is_refused_and_created_for_cannot_be_forged(env):
    """Publishing into a Secret of its own once does not make every later spec.target.name the token's:
    renamed to a Secret it did not create (no consent), it is refused as if named so from the start. And the
    annotation that says which token created a Secret (deletionPolicy Delete trusts it) cannot be set from
    spec.target.annotations: the API server refuses it."""
    env.apply(t.oauth_token("rename", target="rename-out", hubId=HUB, oauth={
        "clientSecretRef": {"name": "tenant-app"}, "refreshTokenSecretRef": {"name": "tenant-install"}}))
    uid = ready(env, "rename")["metadata"]["uid"]
    env.tenant.patch_namespaced_custom_object(GROUP, VERSION, env.ns, PLURAL, "rename",
                                              {"spec": {"target": {"name": "victim-target"}}})
    c, ev = refused(env, "rename", "TargetSecretNotOwned")
    assert "Secret victim-target exists and was not created by this HubSpotToken" in c["message"], c
    env.assert_victims_unchanged()
    with pytest.raises(client.ApiException) as e:
        env.tenant.patch_namespaced_custom_object(GROUP, VERSION, env.ns, PLURAL, "rename", {"spec": {"target": {
            "deletionPolicy": "Delete", "annotations": {CREATED_FOR: uid}}}})
    assert e.value.status == 422 and "cannot set annotations under hubspot-operator.dev/" in e.value.body, e.value.body
    delete_and_wait_for_gc(env, "rename")
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


# ---- 4. no take-over of another token's input or output --------------------------------------------------


def test_another_tokens_refresh_token_cannot_be_taken_over_and_its_grant_keeps_refreshing(env, simulator):
    inputs = {"clientSecretRef": {"name": "tenant-app"}, "refreshTokenSecretRef": {"name": "tenant-install"}}
    for name, policy in (("hijack-adopt", "Adopt"), ("hijack-merge", "Merge")):
        body = t.oauth_token(name, target="team-b-install", oauth=inputs)
        body["spec"]["target"]["creationPolicy"] = policy
        env.apply(body)
    # and team-b's output, created by the operator for team-b
    body = t.oauth_token("hijack-output", target="team-b-access", oauth=inputs)
    body["spec"]["target"]["creationPolicy"] = "Adopt"
    output_before = secret_state(env.core, env.ns, "team-b-access")
    env.apply(body)

    for name in ("hijack-adopt", "hijack-merge"):
        c, ev = refused(env, name, "TargetSecretIsAnInput")
        for text in (c["message"], ev.message):
            assert "Secret team-b-install is an input of another HubSpotToken" in text, text
    c = wait_for(lambda: (c := t.condition(t.get(env.custom, env.ns, "hijack-output"), "Ready")).get("status") == "False"
                 and c.get("reason") in ("ConsentMissing", "TargetSecretOwnedByAnotherToken") and c,
                 what="hijack-output refused")
    assert "team-b-access" in c["message"]
    assert secret_state(env.core, env.ns, "team-b-access") == output_before
    env.assert_victims_unchanged()

    # team-b's grant is intact: a forced refresh gives a new access token that HubSpot accepts
    old = t.get(env.custom, env.ns, "team-b")["status"]["tokenFingerprint"]
    t.patch(env.custom, env.ns, "team-b", {"metadata": {"annotations": {REFRESH: f"tenancy-{uuid.uuid4().hex[:6]}"}}})
    wait_for(lambda: (o := t.get(env.custom, env.ns, "team-b"))["status"].get("tokenFingerprint") != old
             and t.condition(o, "Ready").get("status") == "True", timeout=30, what="team-b refreshed")
    assert simulator.bearer_ok(t.read_secret(env.core, env.ns, "team-b-access")["access_token"])
    # still refused after team-b's writes woke everyone up
    for name in ("hijack-adopt", "hijack-merge"):
        assert t.condition(t.get(env.custom, env.ns, name), "Ready").get("reason") == "TargetSecretIsAnInput"
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


# ---- 5. workloads that did not consent; legitimate private-app use ---------------------------------------


def _rollout_record(e: Env, token: str, name: str) -> dict:
    targets = ((t.get(e.custom, e.ns, token).get("status") or {}).get("rollout") or {}).get("targets") or []
    return next((r for r in targets if r.get("kind") == "Deployment" and r.get("name") == name), {})


def test_a_workload_without_consent_is_never_restarted_while_consenting_ones_are(env, simulator):
    w.deployment(env.apps, env.ns, "web")  # consents (workloads.CONSENT)
    pa = simulator.private_app(HUB, ["oauth"])
    t.remember(pa["token"])
    put(env.core, env.ns, "reporting-source", {"token": pa["token"]}, labels=CONSENT,
        annotations={ALLOWED_TOKENS: "reporting"})
    env.apply(t.private_app_token("reporting", target="reporting-hubspot", privateApp={
        "tokenSecretRef": {"name": "reporting-source"}}, rollout={
        "delay": "0s", "targets": [{"kind": "Deployment", "name": "web"}, {"kind": "Deployment", "name": "payments"}]}))

    ready(env, "reporting")
    assert t.read_secret(env.core, env.ns, "reporting-hubspot")["access_token"] == pa["token"]
    rec = wait_for(lambda: (r := _rollout_record(env, "reporting", "payments")).get("state") == "NotAllowed" and r,
                   what="payments NotAllowed in status.rollout.targets")
    assert "Deployment payments has not consented to HubSpotToken reporting" in rec["message"]
    ev = wait_for(lambda: next((x for x in t.events(env.core, env.ns, "reporting")
                                if x.reason == "RestartRefused" and x.type == "Warning"), None),
                  what="RestartRefused Event")
    assert "Deployment payments" in ev.message and CONSENT_LABEL in ev.message

    # a rotation: the consenting Deployment is restarted (the positive signal), payments is not
    new = simulator.rotate(pa["app_id"], "later")
    t.remember(new)
    secret = env.core.read_namespaced_secret("reporting-source", env.ns)
    secret.data = {"token": base64.b64encode(new.encode()).decode()}
    env.core.replace_namespaced_secret("reporting-source", env.ns, secret)
    wait_for(lambda: w.template_value(env.apps, env.ns, "Deployment", "web"), timeout=40, what="web restarted")
    wait_for(lambda: any(x.reason == "RestartTriggered" and "Deployment/web" in x.message
                         for x in t.events(env.core, env.ns, "reporting")), what="RestartTriggered Event for web")
    out = t.read_secret(env.core, env.ns, "reporting-hubspot")
    assert out["access_token"] == new and out["previous_access_token"] == pa["token"]
    assert _rollout_record(env, "reporting", "payments").get("state") == "NotAllowed"
    assert not any("payments" in x.message for x in t.events(env.core, env.ns, "reporting")
                   if x.reason == "RestartTriggered")
    assert t.condition(t.get(env.custom, env.ns, "reporting"), "Ready").get("status") == "True"
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


# ---- legitimate OAuth use over consenting Secrets --------------------------------------------------------


def test_legitimate_oauth_tokens_over_consenting_secrets_publish(env, simulator):
    inputs = {"clientSecretRef": {"name": "tenant-app"}, "refreshTokenSecretRef": {"name": "tenant-install"}}
    # naming the allowed endpoint explicitly (spelled with a trailing slash) is fine
    owned = t.oauth_token("crm", target="crm-hubspot", hubId=HUB, hubspot={"baseURL": simulator.url + "/"},
                          oauth=inputs)
    owned["spec"]["target"]["deletionPolicy"] = "Delete"
    # an existing Secret whose owner consented to this token: Adopt works, but Delete never owns it
    put(env.core, env.ns, "crm-shared", {"note": "pre-existing"}, labels=CONSENT,
        annotations={ALLOWED_TOKENS: "crm-adopt"})
    adopt = t.oauth_token("crm-adopt", target="crm-shared", hubId=HUB, oauth=inputs)
    adopt["spec"]["target"].update(creationPolicy="Adopt", deletionPolicy="Delete")
    env.apply(owned)
    env.apply(adopt)

    crm, crm_adopt = ready(env, "crm"), ready(env, "crm-adopt")
    created = env.core.read_namespaced_secret("crm-hubspot", env.ns)
    assert created.metadata.annotations.get(CREATED_FOR) == crm["metadata"]["uid"]
    assert [r.uid for r in created.metadata.owner_references or []] == [crm["metadata"]["uid"]]
    assert simulator.bearer_ok(t.read_secret(env.core, env.ns, "crm-hubspot")["access_token"])
    shared = env.core.read_namespaced_secret("crm-shared", env.ns)
    assert not shared.metadata.owner_references, "deletionPolicy Delete owned a Secret the operator did not create"
    assert CREATED_FOR not in (shared.metadata.annotations or {})
    assert simulator.bearer_ok(t.read_secret(env.core, env.ns, "crm-shared")["access_token"])

    delete_and_wait_for_gc(env, "crm-adopt")
    assert not secret_absent(env, "crm-shared"), "an adopted Secret was garbage-collected with its token"
    delete_and_wait_for_gc(env, "crm")
    wait_for(lambda: secret_absent(env, "crm-hubspot"), timeout=60, what="the Secret created for crm collected")
    env.capture.assert_nothing()
    env.assert_victims_unchanged()


# ---- the whole module ------------------------------------------------------------------------------------


def test_nothing_was_sent_out_nothing_changed_and_the_chart_rbac_was_enough(env):
    env.capture.assert_nothing()
    env.assert_victims_unchanged()
    logs = env.op.logs()
    denied = re.findall(r".*(?:HTTP 403|403 Forbidden|[Ff]orbidden).*", logs)
    assert not denied, f"the operator hit a permission the chart does not grant: {denied[:3]}"
    leaked = f.secrets_in(logs)
    assert not leaked, f"secret values in the operator log: {leaked}"
    errors = re.findall(r".*(?:Traceback|reconcile of \S+ failed).*", logs)
    assert not errors, errors[:3]
