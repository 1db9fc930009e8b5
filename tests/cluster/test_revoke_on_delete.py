"""Revoke on delete (spec.oauth.revokeOnDelete, issue #15 item 3) against the real API server: finalizers
on the token and its input Secrets, the revoke at the simulator on `kubectl delete` and on a namespace
deletion, and a grant another HubSpotToken still uses left alone."""

from __future__ import annotations

import httpx
from kubernetes import client

from hubspot_token_operator.revocation import FINALIZER, secret_finalizer
from tests.cluster import tokens as t
from tests.helpers import wait_for

HUB = 7171


def live(simulator, refresh_token: str) -> bool:
    """Whether HubSpot (the simulator) still accepts the refresh token (a metadata GET: does not use it)."""
    return httpx.get(f"{simulator.url}/oauth/v1/refresh-tokens/{refresh_token}", timeout=10).status_code == 200


def install(simulator, core, ns, app, secret):
    refresh = simulator.install(app["client_id"], HUB, ["oauth"])
    t.put_secret(core, ns, secret, {"refresh_token": refresh})
    return refresh


def held(core, ns, secret, uid) -> bool:
    """Whether the Secret carries the token's finalizer (a bool: assertion messages never show a Secret)."""
    return secret_finalizer(uid) in (core.read_namespaced_secret(secret, ns).metadata.finalizers or [])


def gone(custom, ns, name) -> bool:
    try:
        t.get(custom, ns, name)
    except client.ApiException as e:
        return e.status == 404
    return False


def create_ready(custom, ns, name, install_secret, revoke=True):
    """A HubSpotToken of the test app (Secret hubspot-app) with its own target, waited for until Ready."""
    oauth = {"clientSecretRef": {"name": "hubspot-app"}, "refreshTokenSecretRef": {"name": install_secret},
             **({"revokeOnDelete": True} if revoke else {})}
    t.create(custom, ns, t.oauth_token(name, target=f"{name}-hubspot", hubId=HUB, oauth=oauth))
    wait_for(lambda: t.condition(t.get(custom, ns, name), "Ready").get("status") == "True", timeout=30,
             what=f"{name} Ready")
    return t.get(custom, ns, name)["metadata"]["uid"]


def reasons(core, ns, name) -> list[str]:
    return [e.reason for e in t.events(core, ns, name)]


def test_delete_revokes_and_releases_the_finalizers(operator, simulator, core, custom, namespace, app):
    refresh = install(simulator, core, namespace, app, "solo-install")
    uid = create_ready(custom, namespace, "solo", "solo-install")
    wait_for(lambda: FINALIZER in (t.get(custom, namespace, "solo")["metadata"].get("finalizers") or []),
             timeout=30, what="the token's finalizer")
    for secret in ("hubspot-app", "solo-install"):
        wait_for(lambda: held(core, namespace, secret, uid), timeout=30, what=f"the finalizer on Secret {secret}")
    assert live(simulator, refresh)
    custom.delete_namespaced_custom_object("hubspot-operator.dev", "v1alpha1", namespace, "hubspottokens", "solo")
    wait_for(lambda: gone(custom, namespace, "solo"), timeout=30, what="the deletion to finish")
    assert not live(simulator, refresh), "the refresh token is still live at HubSpot"
    wait_for(lambda: "Revoked" in reasons(core, namespace, "solo"), timeout=15, what="a Revoked Event")
    for secret in ("hubspot-app", "solo-install"):
        assert not held(core, namespace, secret, uid), f"Secret {secret} still carries the token's finalizer"


def test_a_grant_another_token_uses_is_left_alone(operator, simulator, core, custom, namespace, app):
    refresh = install(simulator, core, namespace, app, "shared-install")
    create_ready(custom, namespace, "first", "shared-install")
    create_ready(custom, namespace, "second", "shared-install", revoke=False)
    wait_for(lambda: FINALIZER in (t.get(custom, namespace, "first")["metadata"].get("finalizers") or []),
             timeout=30, what="the finalizer")
    custom.delete_namespaced_custom_object("hubspot-operator.dev", "v1alpha1", namespace, "hubspottokens", "first")
    wait_for(lambda: gone(custom, namespace, "first"), timeout=30, what="the deletion to finish")
    wait_for(lambda: "RevokeSkipped" in reasons(core, namespace, "first"), timeout=15, what="a RevokeSkipped Event")
    assert live(simulator, refresh), "a grant another HubSpotToken uses was revoked"
    msg = next(e.message for e in t.events(core, namespace, "first") if e.reason == "RevokeSkipped")
    assert "HubSpotToken second" in msg
    assert t.condition(t.get(custom, namespace, "second"), "Ready").get("status") == "True"


def test_namespace_deletion_revokes_before_the_secrets_go(operator, simulator, core, custom, app, namespace):
    refresh = install(simulator, core, namespace, app, "ns-install")
    uid = create_ready(custom, namespace, "doomed", "ns-install")
    wait_for(lambda: held(core, namespace, "ns-install", uid), timeout=30, what="the refresh-token Secret held")
    core.delete_namespace(namespace)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(namespace)
        except client.ApiException as e:
            return e.status == 404
        return False

    wait_for(namespace_gone, timeout=120, what="the namespace to be deleted")
    assert not live(simulator, refresh), "deleting the namespace left the grant live at HubSpot"
