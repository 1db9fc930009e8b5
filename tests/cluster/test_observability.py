"""Observability end to end: /metrics of the running operator through an OAuth refresh, a failure, a
private-app rotation and a deletion; docs/metrics.md against the live list; Events over many routine
refreshes (none) and for a repeated failure (one object, count > 1)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from hubspot_token_operator import __version__
from tests.cluster import signals as sig
from tests.cluster import tokens as t
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
HUB = 4343
PA_HUB = 5151
DAY = 86400


def install(simulator, core, namespace, app, name) -> str:
    rt = simulator.install(app["client_id"], HUB, ["oauth", "crm.objects.contacts.read"])
    t.put_secret(core, namespace, f"{name}-install", {"refresh_token": rt})
    return rt


def ready(custom, ns, name):
    obj = t.get(custom, ns, name)
    return obj if t.condition(obj, "Ready").get("status") == "True" else None


def value(operator, _metric: str, **labels: str) -> float | None:
    """The one sample `_metric` with these labels (among others), or None when there is none."""
    found = [s.value for s in sig.samples(operator)
             if s.name == _metric and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, f"{_metric}{labels}: {len(found)} samples"
    return found[0] if found else None


def total(operator, _metric: str, **labels: str) -> float:
    """Sum of the samples `_metric` with these labels (sig.metric_sum takes no `name` label)."""
    return sum(s.value for s in sig.samples(operator)
               if s.name == _metric and all(s.labels.get(k) == v for k, v in labels.items()))


def token_series(operator, ns: str, name: str) -> list:
    return [s for s in sig.samples(operator) if s.labels.get("namespace") == ns and s.labels.get("name") == name]


def documented_metrics() -> dict[str, str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return dict(re.findall(r"^\| `(hubspot_token_\w+)` \| (counter|gauge|histogram|summary) \|", text, re.M))


def live_metrics(operator) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (hubspot_token_\w+) (\w+)$", operator.metrics(), re.M))


def test_documented_metrics_are_exactly_the_live_ones(operator):
    documented, live = documented_metrics(), live_metrics(operator)
    assert set(live) - set(documented) == set(), "served but not in docs/metrics.md"
    assert set(documented) - set(live) == set(), "in docs/metrics.md but not served"
    assert live == documented, "types differ"
    assert value(operator, "hubspot_token_build_info", version=__version__) == 1.0
    assert value(operator, "hubspot_token_operator_leader") == 1.0
    assert "_created" not in operator.metrics()


def test_oauth_refresh_failure_and_deletion_move_per_token_series(operator, simulator, core, custom, namespace, app):
    api0 = total(operator, "hubspot_token_api_requests_total", operation="refresh", code="200")
    api_seconds0 = total(operator, "hubspot_token_api_request_duration_seconds_count", operation="refresh")
    status0 = total(operator, "hubspot_token_kube_requests_total", verb="patch", resource="hubspottokens/status")
    created0 = total(operator, "hubspot_token_kube_requests_total", verb="create", resource="secrets", code="201")
    adds0 = total(operator, "hubspot_token_workqueue_adds_total")

    install(simulator, core, namespace, app, "obs")
    t.create(custom, namespace, t.oauth_token("obs", target="obs-out"))
    obj = wait_for(lambda: ready(custom, namespace, "obs"), timeout=30, what="Ready")
    key = dict(namespace=namespace, name="obs")

    wait_for(lambda: value(operator, "hubspot_token_status_condition", **key, condition="Ready", status="True") == 1,
             what="Ready=True in /metrics")
    assert value(operator, "hubspot_token_status_condition", **key, condition="Ready", status="False") == 0
    assert value(operator, "hubspot_token_status_condition", **key, condition="ReauthRequired", status="False") == 1
    expires = datetime.fromisoformat(obj["status"]["expiresAt"].replace("Z", "+00:00")).timestamp()
    assert value(operator, "hubspot_token_expiry_timestamp_seconds", **key, type="OAuth") == expires
    assert value(operator, "hubspot_token_refresh_total", **key, result="success") == 1
    assert total(operator, "hubspot_token_api_requests_total", operation="refresh", code="200") >= api0 + 1
    assert total(operator, "hubspot_token_api_request_duration_seconds_count", operation="refresh") >= api_seconds0 + 1
    assert total(operator, "hubspot_token_kube_requests_total", verb="patch", resource="hubspottokens/status") > status0
    assert total(operator, "hubspot_token_kube_requests_total", verb="create", resource="secrets", code="201") > created0
    assert total(operator, "hubspot_token_workqueue_adds_total") > adds0

    # a failed refresh is counted on the token, with its reason
    failed0 = total(operator, "hubspot_token_api_requests_total", operation="refresh", code="503")
    simulator.faults(kind="server_error", path="/oauth/2026-03/token", count=1, status=503)
    try:
        t.patch(custom, namespace, "obs", {"metadata": {"annotations": {"hubspot-operator.dev/refresh-requested-at": "obs-1"}}})
        wait_for(lambda: value(operator, "hubspot_token_refresh_total", **key, result="ServerError") == 1,
                 what="the failed refresh counted on the token")
    finally:
        simulator.clear_faults()
    assert total(operator, "hubspot_token_api_requests_total", operation="refresh", code="503") >= failed0 + 1
    wait_for(lambda: value(operator, "hubspot_token_refresh_total", **key, result="success") == 2,
             what="the retry after the failure")

    # deleting the token takes every one of its series out of /metrics, counters included
    assert {s.name for s in token_series(operator, namespace, "obs")} >= {
        "hubspot_token_refresh_total", "hubspot_token_status_condition", "hubspot_token_expiry_timestamp_seconds"}
    custom.delete_namespaced_custom_object("hubspot-operator.dev", "v1alpha1", namespace, "hubspottokens", "obs")
    wait_for(lambda: not token_series(operator, namespace, "obs"), what="the deleted token's series to go")


def test_private_app_rotation_moves_condition_and_overlap_series(operator, simulator, core, custom, namespace):
    pa = simulator.private_app(PA_HUB, ["crm.objects.contacts.read"])
    t.remember(pa["token"])
    t.put_secret(core, namespace, "pa-source", {"token": pa["token"]})
    verify0 = total(operator, "hubspot_token_api_requests_total", operation="private_app_token_info", code="200")
    live0 = total(operator, "hubspot_token_api_requests_total", operation="check_liveness", code="200")
    t.create(custom, namespace, t.private_app_token(
        "pa", hubId=PA_HUB, privateApp={"tokenSecretRef": {"name": "pa-source"}, "overlap": "7d", "maxAge": "30d"}))
    wait_for(lambda: ready(custom, namespace, "pa"), timeout=30, what="Ready")
    key = dict(namespace=namespace, name="pa")
    wait_for(lambda: value(operator, "hubspot_token_status_condition", **key, condition="Ready", status="True") == 1,
             what="Ready=True in /metrics")
    assert value(operator, "hubspot_token_status_condition", **key, condition="RotationDue", status="False") == 1
    assert value(operator, "hubspot_token_private_app_token_age_seconds", **key, type="PrivateApp") is not None
    assert value(operator, "hubspot_token_previous_token_until_timestamp_seconds", **key, type="PrivateApp") is None
    assert value(operator, "hubspot_token_status_condition", **key, condition="ReauthRequired", status="False") is None
    assert total(operator, "hubspot_token_api_requests_total", operation="private_app_token_info", code="200") > verify0
    assert total(operator, "hubspot_token_api_requests_total", operation="check_liveness", code="200") > live0

    new = simulator.rotate(pa["app_id"], "later")
    t.remember(new)
    t.put_secret(core, namespace, "pa-source", {"token": new})
    obj = wait_for(lambda: (o := t.get(custom, namespace, "pa")) and
                   (o["status"].get("privateApp") or {}).get("previousUntil") and o, what="rotation in status")
    until = datetime.fromisoformat(obj["status"]["privateApp"]["previousUntil"].replace("Z", "+00:00")).timestamp()
    wait_for(lambda: value(operator, "hubspot_token_previous_token_until_timestamp_seconds", **key,
                           type="PrivateApp") == until, what="the overlap end in /metrics")
    # no restart target: nothing says the consumers moved to the new token (the PreviousTokenInUse alert's input)
    assert value(operator, "hubspot_token_status_condition", **key, condition="PreviousTokenRetirable",
                 status="False") == 1

    simulator.advance(7 * DAY + 60)
    wait_for(lambda: value(operator, "hubspot_token_previous_token_until_timestamp_seconds", **key,
                           type="PrivateApp") is None, timeout=30, what="the overlap series to go")
    wait_for(lambda: value(operator, "hubspot_token_status_condition", **key, condition="PreviousTokenRetirable",
                           status="True") == 1, what="PreviousTokenRetirable=True in /metrics")


def test_routine_refreshes_post_no_events(operator, simulator, core, custom, namespace, app):
    simulator.config(access_token_lifetime_seconds=10)
    try:
        install(simulator, core, namespace, app, "fast")
        t.create(custom, namespace, t.oauth_token(
            "fast", target="fast-out", refresh={"percent": 50, "jitterPercent": 0, "minRemainingValidity": "2s"}))
        wait_for(lambda: ready(custom, namespace, "fast"), timeout=30, what="first token")
        key = dict(namespace=namespace, name="fast")
        wait_for(lambda: (value(operator, "hubspot_token_refresh_total", **key, result="success") or 0) >= 6,
                 timeout=90, interval=0.5, what="five routine refreshes after the first token")
    finally:
        simulator.config(access_token_lifetime_seconds=1800)
    st = t.get(custom, namespace, "fast")["status"]
    assert st["lastRefreshReason"] == "Expiring" and not st.get("failedAttempts")
    events = t.events(core, namespace, "fast")
    # the first token is news (one Refreshed Event); the routine refreshes after it are not
    assert [(e.reason, e.count or 1) for e in events] == [("Refreshed", 1)], [(e.reason, e.message) for e in events]
    assert events[0].message.startswith("InitialIssue")


def test_a_repeated_failure_is_one_event_whose_count_grows(operator, simulator, core, custom, namespace, app):
    rt = install(simulator, core, namespace, app, "flap")
    t.create(custom, namespace, t.oauth_token("flap", target="flap-out"))
    wait_for(lambda: ready(custom, namespace, "flap"), timeout=30, what="Ready")
    posted0 = total(operator, "hubspot_token_events_total", reason="InputsMissing")

    def missing_events():
        return [e for e in t.events(core, namespace, "flap") if e.reason == "InputsMissing"]

    for n in (1, 2, 3):
        core.delete_namespaced_secret("flap-install", namespace)
        wait_for(lambda: sum((e.count or 1) for e in missing_events()) == n, what=f"InputsMissing #{n}")
        t.put_secret(core, namespace, "flap-install", {"refresh_token": rt})
        wait_for(lambda: ready(custom, namespace, "flap"), timeout=30, what=f"healed #{n}")
    (event,) = missing_events()
    assert event.type == "Warning" and event.count == 3 and event.message == "missing Secret flap-install"
    assert event.last_timestamp >= event.first_timestamp
    assert total(operator, "hubspot_token_events_total", reason="InputsMissing") == posted0 + 3


def test_json_logs_name_the_token_on_every_line_about_it(operator, simulator, core, custom, namespace, app,
                                                         tmp_path):
    """The chart's log format, from a real operator process: the session's operator hands over to one
    started with --log-format json for this test, and takes over again afterwards."""
    import json

    from tests.cluster.harness import Operator

    operator.stop()
    json_op = Operator(operator.kubeconfig, simulator, tmp_path / "operator-json.log", operator.operator_namespace)
    try:
        json_op.start("--log-format", "json", "--allow-hubspot-url", simulator.url.replace("127.0.0.1", "localhost"))
        install(simulator, core, namespace, app, "logged")
        t.create(custom, namespace, t.oauth_token("logged", target="logged-out"))
        wait_for(lambda: ready(custom, namespace, "logged"), timeout=30, what="Ready")
        wait_for(lambda: f"{namespace}/logged refreshed" in json_op.logs() or
                 "Refreshed" in t.reasons(core, namespace, "logged"), what="the refresh to be logged")
    finally:
        json_op.stop()
        operator.start()
    lines, other = [], []
    for raw in json_op.logs().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            other.append(raw)
    assert lines and not other, f"{len(other)} line(s) that are not JSON, e.g. {other[:3]}"
    for line in lines:
        assert {"time", "level", "logger", "msg"} <= set(line), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]
    about = [x for x in lines if f"{namespace}/logged" in x["msg"] or x.get("name") == "logged"]
    assert about and all((x.get("namespace"), x.get("name")) == (namespace, "logged") for x in about), \
        [x for x in about if (x.get("namespace"), x.get("name")) != (namespace, "logged")][:3]
    ids = {x["reconcile_id"] for x in about if x.get("reconcile_id")}
    assert ids, "no reconcile_id on the token's lines"
    deep = [x for x in about if x.get("reconcile_id") in ids and x["logger"].startswith("hubspot_token_operator.hubspot")]
    assert deep, "no HubSpot client line carried the token's context"  # it names no token itself
    for secret in t.SEEN_SECRETS:
        assert secret not in json_op.logs()
