"""Runs last in the cluster session: no token, refresh token or client secret used by any cluster test
appears in the operator's log, its metrics, any Event, or anywhere in a HubSpotToken (status, annotations).

It does not depend on the tests before it: it first produces its own material in its own namespace (an
OAuth issue and refreshes, a ReauthRequired, a private-app rotation that restarts a Deployment), then
checks everything the session has seen, its own material included. Run alone, it checks its own.
"""

from __future__ import annotations

import json

from hubspot_token_operator import GROUP, PLURAL, VERSION
from tests.cluster import signals as sig
from tests.cluster import tokens as t
from tests.cluster import workloads as w
from tests.helpers import wait_for

HUB = 7070
REFRESH = "hubspot-operator.dev/refresh-requested-at"
MARKERS = ("tokenFingerprint", '"Refreshed"', '"Rotated"', '"RestartTriggered"', "ReauthRequired")


def _ready(custom, ns, name):
    return t.condition(t.get(custom, ns, name), "Ready").get("status") == "True"


def _produce_material(simulator, core, custom, apps, ns: str) -> set[str]:
    """Secrets flowing through the operator in `ns`, with the Events and statuses that go with them."""
    before = set(t.SEEN_SECRETS)
    app = simulator.create_app()
    t.remember(app["client_secret"])
    t.put_secret(core, ns, "hubspot-app", {"client_id": app["client_id"], "client_secret": app["client_secret"]})

    # OAuth: the first issue and three forced refreshes, each a new access token in the target Secret
    t.put_secret(core, ns, "leak-install", {"refresh_token": simulator.install(app["client_id"], HUB, ["oauth"])})
    t.create(custom, ns, t.oauth_token("leak", target="leak-out"))
    wait_for(lambda: _ready(custom, ns, "leak"), timeout=30, what="leak Ready")
    for i in range(3):
        old = t.read_secret(core, ns, "leak-out")["access_token"]
        t.patch(custom, ns, "leak", {"metadata": {"annotations": {REFRESH: f"leak-{i}"}}})
        wait_for(lambda: t.read_secret(core, ns, "leak-out")["access_token"] != old, timeout=30, what=f"refresh {i}")
    wait_for(lambda: "Refreshed" in t.reasons(core, ns, "leak"), what="Refreshed Event")

    # OAuth: the app is uninstalled, HubSpot rejects the refresh token
    dead = simulator.install(app["client_id"], HUB, ["oauth"])
    t.put_secret(core, ns, "dead-install", {"refresh_token": dead})
    t.create(custom, ns, t.oauth_token("dead", target="dead-out"))
    wait_for(lambda: _ready(custom, ns, "dead"), timeout=30, what="dead Ready")
    t.read_secret(core, ns, "dead-out")
    simulator.uninstall(dead)
    t.patch(custom, ns, "dead", {"metadata": {"annotations": {REFRESH: "dead-0"}}})
    wait_for(lambda: t.condition(t.get(custom, ns, "dead"), "ReauthRequired").get("status") == "True",
             timeout=30, what="ReauthRequired=True")
    wait_for(lambda: "ReauthRequired" in t.reasons(core, ns, "dead"), what="ReauthRequired Event")

    # private app: a rotation, verified and published with the previous token kept, restarting a consumer
    w.deployment(apps, ns, "consumer")
    pa = simulator.private_app(HUB, ["oauth"])
    t.remember(pa["token"])
    t.put_secret(core, ns, "pa-source", {"token": pa["token"]})
    t.create(custom, ns, t.private_app_token("pa", target="pa-out", rollout={
        "delay": "0s", "targets": [{"kind": "Deployment", "name": "consumer"}]}))
    wait_for(lambda: (t.read_secret(core, ns, "pa-out") or {}).get("access_token") == pa["token"],
             timeout=30, what="private-app token published")
    new = simulator.rotate(pa["app_id"], "later")
    t.remember(new)
    t.put_secret(core, ns, "pa-source", {"token": new})
    wait_for(lambda: (t.read_secret(core, ns, "pa-out") or {}).get("previous_access_token") == pa["token"],
             timeout=30, what="rotated token published with the previous one")
    wait_for(lambda: "Rotated" in t.reasons(core, ns, "pa"), what="Rotated Event")
    wait_for(lambda: "RestartTriggered" in t.reasons(core, ns, "pa"), timeout=30, what="RestartTriggered Event")
    return set(t.SEEN_SECRETS) - before


def test_no_secret_reaches_logs_events_status_or_annotations(operator, simulator, core, custom, apps, api, namespace):
    mine = {s for s in _produce_material(simulator, core, custom, apps, namespace) if len(s) >= 16}
    assert len(mine) >= 10, f"this test should have produced many secrets to look for, got {len(mine)}"
    secrets = {s for s in t.SEEN_SECRETS if len(s) >= 16}
    assert mine <= secrets

    logs = operator.logs()
    assert "operator started" in logs
    events = json.dumps([api.sanitize_for_serialization(e) for e in core.list_event_for_all_namespaces().items])
    objs = json.dumps(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
    kept = "\n".join(t.OBSERVED)  # Events and HubSpotTokens of earlier tests' namespaces, kept before deletion
    # the check must have something to look at: this test's own Events and statuses are there
    own = json.dumps([api.sanitize_for_serialization(e) for e in core.list_namespaced_event(namespace).items]) + \
        json.dumps(custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"])
    for expected in MARKERS:
        assert expected in own, expected
    metrics = operator.metrics()
    assert "hubspot_token_refresh_total" in metrics
    assert any(s.name == "hubspot_token_expiry_timestamp_seconds" and s.labels.get("namespace") == namespace
               for s in sig.samples(operator)), "no per-token gauges for this test's tokens in /metrics"
    assert operator.healthz() == 200
    for where, text in (("operator log", logs), ("Events and HubSpotTokens", events + objs + kept),
                        ("metrics", metrics)):
        leaked = [s[:6] + "..." for s in secrets if s in text]
        assert not leaked, f"{len(leaked)} secret value(s) found in {where}: {leaked}"
    # Kopf left no progress annotations behind (we register no change handlers)
    assert "kopf.zalando.org" not in objs + kept
