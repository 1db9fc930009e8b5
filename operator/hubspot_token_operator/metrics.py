"""Prometheus metrics. Counters are updated as things happen; per-token gauges (expiry, next refresh,
readiness) are computed at scrape time from the operator's view of HubSpotTokens, the way cert-manager's
certificate collector works, so they can never go stale."""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .durations import from_rfc3339

PREFIX = "hubspot_token"

REFRESHES = Counter(f"{PREFIX}_refresh_total", "Access-token refresh attempts by result", ["result"])
EVENTS = Counter(f"{PREFIX}_events_total", "Kubernetes Events posted, by reason", ["reason"])
RESTARTS = Counter(f"{PREFIX}_rollout_restarts_total", "Workload restarts triggered, by kind", ["kind"])
VERIFICATIONS = Counter(f"{PREFIX}_verifications_total", "Private-app token verifications by result", ["result"])
KUBE_WRITES = Counter(f"{PREFIX}_kube_writes_total", "Writes to the Kubernetes API, by object kind", ["kind"])
HUBSPOT_REQUESTS = Counter(f"{PREFIX}_hubspot_requests_total", "HTTP requests to HubSpot, by status code", ["code"])
LEADER = Gauge(f"{PREFIX}_operator_leader", "1 while this replica holds the leader lease and does the work")
SECRET_CACHE_READS = Counter(f"{PREFIX}_secret_cache_reads_total",
                             "Reads of Secrets that tokens use: hit (from the watch) or miss (one GET)", ["result"])
SECRET_CACHE_ENTRIES = Gauge(f"{PREFIX}_secret_cache_entries", "Secrets held by the watch-fed cache (only those tokens use)")
RECONCILE_SECONDS = Histogram(f"{PREFIX}_reconcile_duration_seconds", "Time spent in one reconcile")


class TokenCollector(Collector):
    def __init__(self, tokens: Callable[[], Iterable[dict]], now: Callable[[], float]) -> None:
        self._tokens = tokens
        self._now = now

    def collect(self):
        labels = ["namespace", "name", "type"]
        expiry = GaugeMetricFamily(f"{PREFIX}_expiry_timestamp_seconds", "When the published token expires", labels=labels)
        nxt = GaugeMetricFamily(f"{PREFIX}_next_refresh_timestamp_seconds", "When the next refresh is due", labels=labels)
        ready = GaugeMetricFamily(
            f"{PREFIX}_ready_status", "Ready condition (1 for the current status)", labels=labels + ["status"]
        )
        reauth = GaugeMetricFamily(f"{PREFIX}_reauth_required", "1 when HubSpot rejected the refresh token", labels=labels)
        due = GaugeMetricFamily(f"{PREFIX}_rotation_due", "1 when a private-app token is older than maxAge", labels=labels)
        age = GaugeMetricFamily(
            f"{PREFIX}_private_app_token_age_seconds", "Age of the published private-app token", labels=labels
        )
        for body in list(self._tokens()):
            md, st = body.get("metadata", {}), body.get("status") or {}
            lv = [md.get("namespace", ""), md.get("name", ""), (body.get("spec") or {}).get("type", "")]
            if (t := from_rfc3339(st.get("expiresAt"))) is not None:
                expiry.add_metric(lv, t.timestamp())
            if (t := from_rfc3339(st.get("nextRefreshAt"))) is not None:
                nxt.add_metric(lv, t.timestamp())
            conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
            for value in ("True", "False", "Unknown"):
                ready.add_metric(lv + [value], 1.0 if conds.get("Ready", "Unknown") == value else 0.0)
            reauth.add_metric(lv, 1.0 if conds.get("ReauthRequired") == "True" else 0.0)
            due.add_metric(lv, 1.0 if conds.get("RotationDue") == "True" else 0.0)
            published = from_rfc3339((st.get("privateApp") or {}).get("publishedAt"))
            if published is not None:
                age.add_metric(lv, self._now() - published.timestamp())
        yield from (expiry, nxt, ready, reauth, due, age)
