"""Bad HubSpotTokens are refused by the real API server (schema + CEL), with messages that say what to fix."""

from __future__ import annotations

import copy
import json

import pytest
from kubernetes import client

from tests.cluster import tokens as t

GOOD_OAUTH = t.oauth_token("ok")
GOOD_PA = t.private_app_token("ok-pa")


def mutate(base: dict, path: str, value) -> dict:
    """Sets (or deletes) `path` under spec, or under metadata when it starts with `metadata.`."""
    body = copy.deepcopy(base)
    node = body if path.startswith("metadata.") else body["spec"]
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return body


DELETE = object()

CASES = [
    ("unknown type", GOOD_OAUTH, "type", "Basic", "Unsupported value: \"Basic\""),
    ("hubId as string", GOOD_OAUTH, "hubId", "abc", "spec.hubId"),
    ("hubId zero", GOOD_OAUTH, "hubId", 0, "spec.hubId"),
    ("OAuth without oauth block", GOOD_OAUTH, "oauth", DELETE, "spec.type OAuth needs a spec.oauth block"),
    ("OAuth with privateApp block", GOOD_OAUTH, "privateApp", {"tokenSecretRef": {"name": "s"}},
     "spec.type OAuth needs a spec.oauth block and no spec.privateApp block"),
    ("PrivateApp without block", GOOD_PA, "privateApp", DELETE, "spec.type PrivateApp needs a spec.privateApp block"),
    ("PrivateApp with oauth block", GOOD_PA, "oauth",
     {"clientSecretRef": {"name": "a"}, "refreshTokenSecretRef": {"name": "b"}}, "and no spec.oauth block"),
    ("bad refresh.before", GOOD_OAUTH, "refresh.before", "ten minutes", "must be a duration such as 90s, 10m or 1h30m"),
    ("bad minRemainingValidity", GOOD_OAUTH, "refresh.minRemainingValidity", "5", "must be a duration"),
    ("percent too high", GOOD_OAUTH, "refresh.percent", 99, "spec.refresh.percent"),
    ("before shorter than minRemaining", GOOD_OAUTH, "refresh",
     {"before": "1m", "minRemainingValidity": "5m"}, "spec.refresh.before must be longer than"),
    ("bad overlap", GOOD_PA, "privateApp.overlap", "a week", "must be a duration such as 168h or 7d"),
    ("target equals source", GOOD_PA, "target.name", "ok-pa-source", "must differ from spec.privateApp.tokenSecretRef"),
    ("target equals refresh secret", GOOD_OAUTH, "target.name", "ok-install", "must differ from the Secrets"),
    ("invalid target name", GOOD_OAUTH, "target.name", "Bad_Name", "must be a valid Secret name"),
    ("merge with delete", GOOD_OAUTH, "target", {"name": "x", "creationPolicy": "Merge", "deletionPolicy": "Delete"},
     "deletionPolicy must be Retain"),
    ("unknown api version", GOOD_OAUTH, "oauth.apiVersion", "v2", "Unsupported value: \"v2\""),
    ("rollout kind", GOOD_OAUTH, "rollout", {"targets": [{"kind": "CronJob", "name": "x"}]}, "Unsupported value"),
    ("restartOn", GOOD_OAUTH, "rollout", {"restartOn": "Always"}, "Unsupported value: \"Always\""),
    ("bad baseURL", GOOD_OAUTH, "hubspot", {"baseURL": "api.hubapi.com"}, "must be an http(s) URL"),
    ("missing target", GOOD_OAUTH, "target", DELETE, "spec.target: Required value"),
    # The name becomes a label value on the target Secret (at most 63 characters).
    ("name longer than 63", GOOD_OAUTH, "metadata.name", "n" * 64, "metadata.name must be at most 63 characters"),
    ("name longer than 63, private app", GOOD_PA, "metadata.name", "p" * 100, "label values are limited to 63"),
    # Secret data keys the API server would refuse when the operator writes or reads them.
    ("target key with a space", GOOD_OAUTH, "target.keys.token", "access token",
     "spec.target.keys.token must be a valid Secret data key"),
    ("previousToken key with a slash", GOOD_PA, "target.keys.previousToken", "old/token",
     "spec.target.keys.previousToken must be a valid Secret data key"),
    ("expiresAt key '..'", GOOD_OAUTH, "target.keys.expiresAt", "..",
     "spec.target.keys.expiresAt must be a valid Secret data key"),
    ("hubId key starting with '..'", GOOD_OAUTH, "target.keys.hubId", "..hub",
     "spec.target.keys.hubId must be a valid Secret data key"),
    ("target key too long", GOOD_OAUTH, "target.keys.token", "k" * 254, "spec.target.keys.token: Too long"),
    ("clientIdKey with a space", GOOD_OAUTH, "oauth.clientSecretRef.clientIdKey", "client id",
     "spec.oauth.clientSecretRef.clientIdKey must be a valid Secret data key"),
    ("clientSecretKey with a colon", GOOD_OAUTH, "oauth.clientSecretRef.clientSecretKey", "client:secret",
     "spec.oauth.clientSecretRef.clientSecretKey must be a valid Secret data key"),
    ("refresh token key with a space", GOOD_OAUTH, "oauth.refreshTokenSecretRef.key", "refresh token",
     "spec.oauth.refreshTokenSecretRef.key must be a valid Secret data key"),
    ("source token key non-ASCII", GOOD_PA, "privateApp.tokenSecretRef.key", "t\u00f8ken",
     "spec.privateApp.tokenSecretRef.key must be a valid Secret data key"),
    ("target annotation forging created-for", GOOD_OAUTH, "target.annotations",
     {"team": "a", "hubspot-operator.dev/created-for": "0d6a0e7c-uid"},
     "spec.target.annotations cannot set annotations under hubspot-operator.dev/"),
    # Two target keys with one name: one value overwrites the other (defaults count).
    ("hubId key equals default token key", GOOD_OAUTH, "target.keys.hubId", "access_token",
     "spec.target.keys.token, previousToken, expiresAt and hubId must be four different keys"),
    ("token equals previousToken", GOOD_PA, "target.keys", {"token": "tok", "previousToken": "tok"},
     "must be four different keys"),
    ("expiresAt equals default hubId key", GOOD_OAUTH, "target.keys.expiresAt", "hub_id",
     "must be four different keys"),
    # verifyInterval has a floor: every verification is a HubSpot call.
    ("verifyInterval 0s", GOOD_PA, "privateApp.verifyInterval", "0s",
     "spec.privateApp.verifyInterval must be at least 1m (HubSpot's per-app limits are shared)"),
    ("verifyInterval 59s", GOOD_PA, "privateApp.verifyInterval", "59s", "verifyInterval must be at least 1m"),
    # Every duration has a ceiling (and a maxLength), so none can overflow the operator's date arithmetic.
    ("overlap huge", GOOD_PA, "privateApp.overlap", "99999999999d", "spec.privateApp.overlap must be at most 30d"),
    ("overlap 30d1s", GOOD_PA, "privateApp.overlap", "30d1s", "spec.privateApp.overlap must be at most 30d"),
    ("overlap too long a string", GOOD_PA, "privateApp.overlap", "00000000000000007d", "spec.privateApp.overlap: Too long"),
    ("maxAge over 10 years", GOOD_PA, "privateApp.maxAge", "3651d", "spec.privateApp.maxAge must be at most 3650d"),
    ("verifyInterval over 30d", GOOD_PA, "privateApp.verifyInterval", "721h",
     "spec.privateApp.verifyInterval must be at most 30d"),
    ("refresh.before over 24h", GOOD_OAUTH, "refresh.before", "24h1ms", "spec.refresh.before must be at most 24h"),
    ("refresh.before huge", GOOD_OAUTH, "refresh.before", "9999999999999h", "spec.refresh.before must be at most 24h"),
    ("minRemainingValidity over 24h", GOOD_OAUTH, "refresh.minRemainingValidity", "1441m",
     "spec.refresh.minRemainingValidity must be at most 24h"),
    ("rollout.delay over 24h", GOOD_OAUTH, "rollout.delay", "86401s", "spec.rollout.delay must be at most 24h"),
    ("rollout.minInterval over 30 days", GOOD_OAUTH, "rollout.minInterval", "720h1s",
     "spec.rollout.minInterval must be at most 720h (30 days)"),
]


@pytest.mark.parametrize("label, base, path, value, message", CASES, ids=[c[0] for c in CASES])
def test_invalid_resources_are_rejected_with_clear_messages(crds, custom, namespace, label, base, path, value, message):
    with pytest.raises(client.ApiException) as err:
        t.create(custom, namespace, mutate(base, path, value))
    assert err.value.status == 422, err.value.body
    text = json.loads(err.value.body)["message"]
    assert message in text, text


def test_valid_resources_are_accepted_and_defaulted(crds, custom, namespace):
    obj = t.create(custom, namespace, copy.deepcopy(GOOD_OAUTH))
    spec = obj["spec"]
    assert spec["oauth"]["apiVersion"] == "2026-03"
    assert spec["oauth"]["clientSecretRef"]["clientIdKey"] == "client_id"
    assert spec["refresh"]["percent"] == 67 and spec["target"]["creationPolicy"] == "Owner"
    assert spec["rollout"]["restartOn"] == "Rotation"
    pa = t.create(custom, namespace, copy.deepcopy(GOOD_PA))["spec"]["privateApp"]
    assert (pa["overlap"], pa["maxAge"], pa["verifyInterval"]) == ("168h", "180d", "1h")


def test_values_at_the_bounds_are_accepted(crds, custom, namespace):
    pa = mutate(GOOD_PA, "metadata.name", "p" * 63)
    pa["spec"]["privateApp"].update(overlap="30d", maxAge="3650d", verifyInterval="1m",
                                    tokenSecretRef={"name": "ok-pa-source", "key": ".token-v2"})
    pa["spec"]["target"]["keys"] = {"token": "HUBSPOT_TOKEN", "previousToken": "HUBSPOT_TOKEN.old"}
    pa["spec"]["rollout"] = {"delay": "24h", "minInterval": "720h"}
    created = t.create(custom, namespace, pa)["spec"]
    assert created["target"]["keys"] == {"token": "HUBSPOT_TOKEN", "previousToken": "HUBSPOT_TOKEN.old",
                                         "expiresAt": "expires_at", "hubId": "hub_id"}

    oauth = mutate(GOOD_OAUTH, "refresh", {"before": "24h", "minRemainingValidity": "23h59m59s"})
    oauth["spec"]["oauth"]["clientSecretRef"].update(clientIdKey="id", clientSecretKey="secret.v1")
    oauth["spec"]["oauth"]["refreshTokenSecretRef"]["key"] = "refresh-token"
    t.create(custom, namespace, oauth)

    for value in ("60s", "1h30m", "720h"):
        t.create(custom, namespace, mutate(mutate(GOOD_PA, "metadata.name", f"vi-{value}"), "privateApp.verifyInterval", value))
