"""Runs last in the cluster session: no token, refresh token or client secret used by any earlier test
appears in the operator's log, its metrics, any Event, or anywhere in a HubSpotToken (status, annotations)."""

from __future__ import annotations

import json

from hubspot_token_operator import GROUP, PLURAL, VERSION
from tests.cluster import tokens as t


def test_no_secret_reaches_logs_events_status_or_annotations(operator, core, custom, api):
    secrets = {s for s in t.SEEN_SECRETS if len(s) >= 16}
    assert len(secrets) >= 10, "the earlier cluster tests should have produced many secrets to look for"

    logs = operator.logs()
    assert "operator started" in logs
    events = json.dumps([api.sanitize_for_serialization(e) for e in core.list_event_for_all_namespaces().items])
    objs = json.dumps(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
    kept = "\n".join(t.OBSERVED)
    # the check must have something to look at: earlier tests' Events and statuses were kept
    for expected in ("tokenFingerprint", '"Refreshed"', '"Rotated"', '"RestartTriggered"', "ReauthRequired"):
        assert expected in kept, expected
    metrics = operator.metrics()
    assert "hubspot_token_refresh_total" in metrics and "hubspot_token_expiry_timestamp_seconds" in metrics
    assert operator.healthz() == 200
    for where, text in (("operator log", logs), ("Events and HubSpotTokens", events + objs + kept),
                        ("metrics", metrics)):
        leaked = [s[:6] + "..." for s in secrets if s in text]
        assert not leaked, f"{len(leaked)} secret value(s) found in {where}: {leaked}"
    # Kopf left no progress annotations behind (we register no change handlers)
    assert "kopf.zalando.org" not in kept
