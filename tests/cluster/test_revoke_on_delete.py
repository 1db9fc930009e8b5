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


def reasons(core, ns, name) -> list[str]:
    return [e.reason for e in t.events(core, ns, name)]


def test_delete_revokes_and_releases_the_finalizers(operator, simulator, core, custom, namespace, app):
    refresh = install(simulator, core, namespace, app, "solo-install")
    t.create(custom, namespace, t.oauth_token("solo", target="solo-hubspot", hubId=HUB,
                                              oauth={"clientSecretRef": {"name": "hubspot-app"},
                                                     "refreshTokenSecretRef": {"name": "solo-install"},
                                                     "revokeOnDelete": True}))
    wait_for(lambda: t.condition(t.get(custom, namespace, "solo"), "Ready").get("status") == "True", timeout=30,
             what="Ready")
    body = t.get(custom, namespace, "solo")
    uid = body["metadata"]["uid"]
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
    oauth = {"clientSecretRef": {"name": "hubspot-app"}, "refreshTokenSecretRef": {"name": "shared-install"}}
    t.create(custom, namespace, t.oauth_token("first", target="first-hubspot", hubId=HUB,
                                              oauth={**oauth, "revokeOnDelete": True}))
    t.create(custom, namespace, t.oauth_token("second", target="second-hubspot", hubId=HUB, oauth=oauth))
    for name in ("first", "second"):
        wait_for(lambda: t.condition(t.get(custom, namespace, name), "Ready").get("status") == "True", timeout=30,
                 what=f"{name} Ready")
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
    t.create(custom, namespace, t.oauth_token("doomed", target="doomed-hubspot", hubId=HUB,
                                              oauth={"clientSecretRef": {"name": "hubspot-app"},
                                                     "refreshTokenSecretRef": {"name": "ns-install"},
                                                     "revokeOnDelete": True}))
    wait_for(lambda: t.condition(t.get(custom, namespace, "doomed"), "Ready").get("status") == "True", timeout=30,
             what="Ready")
    uid = t.get(custom, namespace, "doomed")["metadata"]["uid"]
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
