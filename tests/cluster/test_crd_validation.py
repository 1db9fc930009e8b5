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
    body = copy.deepcopy(base)
    node = body["spec"]
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
