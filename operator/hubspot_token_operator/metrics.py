"""Prometheus metrics. Every metric is listed in docs/metrics.md (a unit test and a cluster test hold the two
to each other).

Counters are updated as things happen; per-token gauges (expiry, next refresh, conditions) are computed at
scrape time from the operator's view of HubSpotTokens, the way cert-manager's certificate collector works,
so they can never go stale. The one per-token counter (refreshes) is removed when its token is deleted or
leaves the shard (`forget_token`).

Cardinality: at 5,000+ tokens /metrics is dominated by per-token series, so each token costs ~7 of them:
expiry and next refresh, two per exported condition (`EXPORTED_CONDITIONS`, True/False), one refresh
counter per result seen. `_created` samples are disabled: they would double every counter series.
"""

from __future__ import annotations

import platform
import threading
from typing import Callable, Iterable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .durations import from_rfc3339

disable_created_metrics()

PREFIX = "hubspot_token"

# Seconds: HubSpot answers in ~100 ms, the call deadline is 10 s; the API server in ms, its deadline 30 s.
API_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KUBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUEUE_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

BUILD_INFO = Gauge(f"{PREFIX}_build_info", "Always 1; the operator's version and Python version as labels",
                   ["version", "python_version"])
BUILD_INFO.labels(version=__version__, python_version=platform.python_version()).set(1)

REFRESHES = Counter(f"{PREFIX}_refresh_total", "Access-token refresh attempts per token, by result (success or "
                    "the failure reason)", ["namespace", "name", "result"])
EVENTS = Counter(f"{PREFIX}_events_total", "Kubernetes Events posted (new or repeated), by reason", ["reason"])
RESTARTS = Counter(f"{PREFIX}_rollout_restarts_total", "Workload restarts triggered, by kind", ["kind"])
VERIFICATIONS = Counter(f"{PREFIX}_verifications_total", "Private-app token verifications by result", ["result"])
KUBE_WRITES = Counter(f"{PREFIX}_kube_writes_total", "Writes to the Kubernetes API, by object kind", ["kind"])
API_REQUESTS = Counter(f"{PREFIX}_api_requests_total",
                       "HTTP requests to HubSpot, by operation and status code (timeout / error: no answer)",
                       ["operation", "code"])
API_SECONDS = Histogram(f"{PREFIX}_api_request_duration_seconds", "Duration of HTTP requests to HubSpot",
                        ["operation"], buckets=API_BUCKETS)
KUBE_REQUESTS = Counter(f"{PREFIX}_kube_requests_total",
                        "Kubernetes API requests made by the operator (not Kopf's watches), by verb, resource and "
                        "status code (timeout / error: no answer)", ["verb", "resource", "code"])
KUBE_SECONDS = Histogram(f"{PREFIX}_kube_request_duration_seconds", "Duration of Kubernetes API requests",
                         ["verb", "resource"], buckets=KUBE_BUCKETS)
LEADER = Gauge(f"{PREFIX}_operator_leader", "1 while this replica holds the leader lease and does the work")
SECRET_CACHE_READS = Counter(f"{PREFIX}_secret_cache_reads_total",
                             "Reads of Secrets that tokens use: hit (from the watch) or miss (one GET)", ["result"])
SECRET_CACHE_ENTRIES = Gauge(f"{PREFIX}_secret_cache_entries", "Secrets held by the watch-fed cache (only those tokens use)")
STATUS_NOOP_WRITES = Counter(f"{PREFIX}_status_noop_writes_total",
                             "Status writes the API server found nothing to change in (should stay 0: each is a "
                             "wasted request, and a steady rate is a reconcile loop)")
RECONCILE_SECONDS = Histogram(f"{PREFIX}_reconcile_duration_seconds", "Time spent in one reconcile")

# The work queue, after controller-runtime's workqueue_* metrics (one queue per process).
WORKQUEUE_DEPTH = Gauge(f"{PREFIX}_workqueue_depth", "Keys due now and waiting for a worker")
WORKQUEUE_ADDS = Counter(f"{PREFIX}_workqueue_adds_total", "Keys added to the work queue (or moved earlier)")
WORKQUEUE_RETRIES = Counter(f"{PREFIX}_workqueue_retries_total",
                            "Reconciles scheduled again because they failed (a recorded failure or an exception)")
WORKQUEUE_ECHOES_SKIPPED = Counter(f"{PREFIX}_workqueue_echoes_skipped_total",
                                   "Watch events of a token's own writes that arrived while its reconcile ran, "
                                   "recognised afterwards: no second reconcile")
WORKQUEUE_LONGEST = Gauge(f"{PREFIX}_workqueue_longest_running_processor_seconds",
                          "How long the longest-running reconcile in flight has been running")
WORKQUEUE_QUEUE_SECONDS = Histogram(f"{PREFIX}_workqueue_queue_duration_seconds",
                                    "How long a key waited for a worker after it was due", buckets=QUEUE_BUCKETS)
WORKQUEUE_WORK_SECONDS = Histogram(f"{PREFIX}_workqueue_work_duration_seconds",
                                   "How long processing one key took", buckets=QUEUE_BUCKETS)

# Condition types exported per token, by token type: the ones alerts and dashboards need. Every other
# condition is in status (kubectl); exporting all of them would cost 2 series per condition per token.
EXPORTED_CONDITIONS = {
    "OAuth": ("Ready", "ReauthRequired"),
    "PrivateApp": ("Ready", "RotationDue", "PreviousTokenRetirable"),
}
CONDITION_STATUSES = ("True", "False")

_lock = threading.Lock()
_refresh_results: dict[tuple[str, str], set[str]] = {}  # (namespace, name) -> results counted for it


def count_refresh(namespace: str, name: str, result: str) -> None:
    with _lock:
        _refresh_results.setdefault((namespace, name), set()).add(result)
    REFRESHES.labels(namespace=namespace, name=name, result=result).inc()


def forget_token(namespace: str, name: str) -> None:
    """A token deleted or gone from this shard: its counter series leave /metrics (the gauges are computed
    at scrape time and go by themselves)."""
    with _lock:
        results = _refresh_results.pop((namespace, name), set())
    for result in results:
        try:
            REFRESHES.remove(namespace, name, result)
        except KeyError:
            pass


def observe_api_call(operation: str, code: str, seconds: float) -> None:
    """The HubSpot client's hook (HubSpotClient(observe=...)): one call per HTTP exchange."""
    API_REQUESTS.labels(operation=operation, code=code).inc()
    API_SECONDS.labels(operation=operation).observe(seconds)


def observe_kube_call(verb: str, resource: str, code: str, seconds: float) -> None:
    KUBE_REQUESTS.labels(verb=verb, resource=resource, code=code).inc()
    KUBE_SECONDS.labels(verb=verb, resource=resource).observe(seconds)


def condition_samples(token_type: str, conditions: Iterable[dict]) -> list[tuple[str, str, float]]:
    """(condition, status, value) for the exported condition types of a token: 1 for the current status,
    0 for the other; both 0 while the condition is Unknown or not set yet."""
    current = {c.get("type"): c.get("status") for c in conditions or []}
    out = []
    for ctype in EXPORTED_CONDITIONS.get(token_type, ("Ready",)):
        for status in CONDITION_STATUSES:
            out.append((ctype, status, 1.0 if current.get(ctype) == status else 0.0))
    return out


class TokenCollector(Collector):
    def __init__(self, tokens: Callable[[], Iterable[dict]], now: Callable[[], float]) -> None:
        self._tokens = tokens
        self._now = now

    def describe(self):
        return list(self._families())

    def _families(self):
        labels = ["namespace", "name", "type"]
        return (
            GaugeMetricFamily(f"{PREFIX}_expiry_timestamp_seconds", "When the published token expires", labels=labels),
            GaugeMetricFamily(f"{PREFIX}_next_refresh_timestamp_seconds", "When the next refresh is due", labels=labels),
            GaugeMetricFamily(f"{PREFIX}_status_condition",
                              "Condition of a token: 1 for its current status (True or False), 0 for the other",
                              labels=["namespace", "name", "condition", "status"]),
            GaugeMetricFamily(f"{PREFIX}_private_app_token_age_seconds", "Age of the published private-app token",
                              labels=labels),
            GaugeMetricFamily(f"{PREFIX}_previous_token_until_timestamp_seconds",
                              "While a private-app rotation overlaps: when the previous token leaves the target "
                              "Secret", labels=labels),
        )

    def collect(self):
        expiry, nxt, condition, age, previous = self._families()
        now = self._now()
        for body in list(self._tokens()):
            md, st = body.get("metadata", {}), body.get("status") or {}
            ns, name = md.get("namespace", ""), md.get("name", "")
            ttype = (body.get("spec") or {}).get("type", "")
            lv = [ns, name, ttype]
            if (t := from_rfc3339(st.get("expiresAt"))) is not None:
                expiry.add_metric(lv, t.timestamp())
            if (t := from_rfc3339(st.get("nextRefreshAt"))) is not None:
                nxt.add_metric(lv, t.timestamp())
            for ctype, status, value in condition_samples(ttype, st.get("conditions") or []):
                condition.add_metric([ns, name, ctype, status], value)
            pa = st.get("privateApp") or {}
            if (published := from_rfc3339(pa.get("publishedAt"))) is not None:
                age.add_metric(lv, now - published.timestamp())
            if (until := from_rfc3339(pa.get("previousUntil"))) is not None:
                previous.add_metric(lv, until.timestamp())
        yield from (expiry, nxt, condition, age, previous)
