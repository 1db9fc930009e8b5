"""Positive signals that the operator has processed something, for checks that something did NOT happen.

"No call / no restart / no write" is only meaningful once the operator has looked at the change in
question; a fixed sleep proves nothing on a loaded machine. Tests first wait for one of these signals
(a reconcile counter moving in /metrics, the operator forgetting a deleted object), then assert.
Per-object signals (status.observedGeneration, a status field, an Event) are read with tokens.py.
"""

from __future__ import annotations

import re

from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from hubspot_token_operator import GROUP, PLURAL, VERSION
from tests.helpers import wait_for

# The reconcile histogram (metrics.RECONCILE_SECONDS); matched by pattern so a rename of its middle part
# (…_reconcile_duration_seconds / …_reconcile_seconds) does not silently turn the signal off.
RECONCILE_COUNT = re.compile(r"hubspot_token_reconcile\w*_count")


def samples(operator) -> list:
    return [s for fam in text_string_to_metric_families(operator.metrics()) for s in fam.samples]


def metric_sum(operator, sample_name: str, **labels: str) -> float:
    """Sum of every sample called `sample_name` (e.g. 'hubspot_token_refresh_total') whose labels match."""
    return sum(
        s.value for s in samples(operator)
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def reconcile_count(operator) -> float:
    """Reconciles the running operator process has finished (it starts at 0 in a new process)."""
    all_samples = samples(operator)
    found = [s for s in all_samples if RECONCILE_COUNT.fullmatch(s.name)]
    if not found:
        names = sorted({s.name for s in all_samples if "reconcile" in s.name})
        raise AssertionError(f"no hubspot_token_reconcile*_count in /metrics (reconcile metrics: {names})")
    return sum(s.value for s in found)


def only_tokens_in(custom: client.CustomObjectsApi, ns: str, timeout: float = 60) -> list[dict]:
    """Waits until every HubSpotToken in the cluster lives in `ns`, so the operator's reconcile counter and
    the simulator's call counts move for this test's tokens only. Earlier tests' namespaces are deleted
    asynchronously by the namespace controller, which on a loaded machine can take longer than a test
    should wait, so tokens still left in other namespaces after a few seconds are deleted here (tests run
    one at a time: nothing else still needs them)."""

    def others() -> list[tuple[str, str]]:
        items = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        return [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items
                if i["metadata"]["namespace"] != ns]

    try:
        wait_for(lambda: not others(), timeout=min(10.0, timeout), what="earlier tests' namespaces to go")
    except AssertionError:
        for other_ns, name in others():
            try:
                custom.delete_namespaced_custom_object(GROUP, VERSION, other_ns, PLURAL, name)
            except client.ApiException as e:
                if e.status != 404:
                    raise
    left: list = []

    def gone() -> bool:
        left[:] = others()
        return not left

    try:
        wait_for(gone, timeout=timeout, what=f"no HubSpotTokens outside {ns}")
    except AssertionError as e:
        raise AssertionError(f"{e}; still there: {left[:10]}") from None
    return custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]


def wait_for_reconciles(operator, since: float, n: int, what: str, timeout: float = 30) -> float:
    """Waits until the operator has finished `n` more reconciles than `since`; returns the new count."""
    return wait_for(lambda: (c := reconcile_count(operator)) >= since + n and c, timeout=timeout,
                    what=f"{n} reconcile(s) after {since:g}: {what}")


def token_known(operator, ns: str, name: str) -> bool:
    """Whether the operator still holds this HubSpotToken (its per-token gauges are in /metrics)."""
    return any(s.labels.get("namespace") == ns and s.labels.get("name") == name for s in samples(operator))
