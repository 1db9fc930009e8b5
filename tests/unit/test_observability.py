"""Observability without servers: the JSON log format and its per-token context, Event aggregation, metric
label sets, the HubSpot and Kubernetes request metrics, the work-queue metrics, and docs/metrics.md against
the metrics the operator registers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

import hubspot_token_operator.kube as kube_mod
from hubspot_token_operator import logs, metrics
from hubspot_token_operator.clock import Clock
from hubspot_token_operator.cli import main as cli_main  # noqa: F401 - the CLI imports its logging from logs.py
from hubspot_token_operator.hubspot import HubSpotClient
from hubspot_token_operator.kube import EventMemory, EventPlan, Kube, PostedEvent, plan_event, request_labels
from hubspot_token_operator.metrics import TokenCollector, condition_samples
from hubspot_token_operator.settings import Settings
from hubspot_token_operator.workqueue import WorkQueue

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"


# ---- JSON logs ---------------------------------------------------------------------------------------


def _record(msg="refreshed", level=logging.INFO, created=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("hubspot_token_operator.x", level, __file__, 1, msg, (), None)
    if created is not None:
        rec.created = created
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_line_has_the_fields_and_a_utc_millisecond_timestamp():
    created = datetime(2026, 12, 3, 8, 49, 24, 123000, tzinfo=timezone.utc).timestamp()
    line = json.loads(logs.JsonFormatter().format(_record("hello %s", created=created)))
    assert line == {"time": "2026-12-03T08:49:24.123Z", "level": "info", "logger": "hubspot_token_operator.x",
                    "msg": "hello %s"}
    assert logs.utc_timestamp(datetime(2026, 1, 2, 3, 4, 5, 7000, tzinfo=timezone.utc).timestamp()) == \
        "2026-01-02T03:04:05.007Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", json.loads(logs.JsonFormatter().format(_record()))["time"])


def test_json_line_carries_exceptions_as_text():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(logs.JsonFormatter().format(rec))
    assert line["level"] == "error" and "ValueError" in line["exc"]


def _capture() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("hto-test-observability")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def _lines(out: io.StringIO) -> list[dict]:
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_lines_logged_deep_inside_a_reconcile_name_the_token_and_the_reconcile():
    logger, out = _capture()

    def deep():  # e.g. the HubSpot client or kube.py: they know nothing of the token
        logger.info("a call")

    async def scenario():
        with logs.token_context("sales", "crm-sync", "r-1"):
            deep()
            await asyncio.create_task(asyncio.sleep(0, result=None))
            await asyncio.create_task(_log_later(logger))  # a task started inside inherits the context
        logger.info("outside")

    asyncio.run(scenario())
    inside, task_line, outside = _lines(out)
    for line in (inside, task_line):
        assert (line["namespace"], line["name"], line["reconcile_id"]) == ("sales", "crm-sync", "r-1")
    assert "namespace" not in outside and "reconcile_id" not in outside


async def _log_later(logger):
    await asyncio.sleep(0)
    logger.info("from a task")


def test_concurrent_reconciles_keep_their_own_context():
    logger, out = _capture()

    async def one(name: str):
        with logs.token_context("ns", name, f"id-{name}"):
            for _ in range(3):
                await asyncio.sleep(0)
                logger.info("step of %s", name)

    async def both():
        await asyncio.gather(one("a"), one("b"))

    asyncio.run(both())
    lines = _lines(out)
    assert len(lines) == 6
    for line in lines:
        assert line["msg"].endswith(line["name"]) and line["reconcile_id"] == f"id-{line['name']}"


def test_explicit_and_kopf_token_fields_win_over_the_context():
    with logs.token_context("ctx-ns", "ctx-name"):
        kopf_line = logs.record_fields(_record(k8s_ref={"namespace": "kns", "name": "kname", "kind": "HubSpotToken"}))
        extra_line = logs.record_fields(_record(namespace="ens", token="ename"))
        plain = logs.record_fields(_record())
    assert (kopf_line["namespace"], kopf_line["name"]) == ("kns", "kname")
    assert (extra_line["namespace"], extra_line["name"]) == ("ens", "ename")
    assert (plain["namespace"], plain["name"]) == ("ctx-ns", "ctx-name") and "reconcile_id" not in plain


def test_reconcile_ids_differ():
    assert len({logs.new_reconcile_id() for _ in range(100)}) == 100


def test_log_format_text_by_default_json_on_request(monkeypatch):
    monkeypatch.delenv("HTO_LOG_FORMAT", raising=False)
    assert Settings().log_format == "text"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure_logging("INFO", "json")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        logs.configure_logging("INFO", "text")
        assert not isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


# ---- Event aggregation ---------------------------------------------------------------------------------


def test_plan_event_creates_the_first_and_counts_repeats_on_it():
    assert plan_event(None) == EventPlan("create")
    assert plan_event(PostedEvent("crm.abc", 1)) == EventPlan("patch", "crm.abc", 2)
    assert plan_event(PostedEvent("crm.abc", 7)) == EventPlan("patch", "crm.abc", 8)


def test_event_memory_is_bounded_and_drops_the_least_recently_used():
    mem = EventMemory(max_entries=2)
    mem.put(("a",), PostedEvent("a", 1))
    mem.put(("b",), PostedEvent("b", 1))
    assert mem.get(("a",)) is not None  # a is now the most recently used
    mem.put(("c",), PostedEvent("c", 1))
    assert len(mem) == 2 and mem.get(("b",)) is None and mem.get(("a",)) and mem.get(("c",))
    mem.pop(("a",))
    assert mem.get(("a",)) is None


class _Resp:
    def __init__(self, status: int, body: dict | None = None) -> None:
        self.status, self.reason = status, "x"
        self._raw = json.dumps(body or {}).encode()

    async def read(self) -> bytes:
        return self._raw

    def release(self) -> None:
        pass


class _FakeCore:
    """Just the two Event calls of CoreV1Api, answering like an API server."""

    def __init__(self) -> None:
        self.events: dict[str, dict] = {}
        self.calls: list[str] = []

    async def create_namespaced_event(self, namespace, body, **_):
        self.calls.append("create")
        name = f"{body['metadata']['generateName']}{len(self.events)}"
        self.events[name] = dict(body, metadata={"name": name, "namespace": namespace})
        return _Resp(201, self.events[name])

    async def patch_namespaced_event(self, name, namespace, patch, **_):
        self.calls.append("patch")
        if name not in self.events:
            return _Resp(404, {"reason": "NotFound"})
        self.events[name].update(patch)
        return _Resp(200, self.events[name])


def _kube_with(core) -> Kube:
    k = object.__new__(Kube)  # no API client: only post_event and _run are used
    k.core = core
    k.events_posted = EventMemory()
    return k


TOKEN = {"metadata": {"namespace": "sales", "name": "crm", "uid": "u-1", "resourceVersion": "5"}}


def test_a_repeated_event_is_one_object_whose_count_grows_and_a_vanished_one_is_posted_anew():
    core = _FakeCore()
    k = _kube_with(core)
    writes = lambda: REGISTRY.get_sample_value("hubspot_token_kube_writes_total", {"kind": "event"}) or 0.0  # noqa: E731
    w0 = writes()

    async def scenario():
        for _ in range(3):
            await k.post_event(TOKEN, "Warning", "InputsMissing", "missing Secret crm-install")
        await k.post_event(TOKEN, "Warning", "InputsMissing", "missing Secret other")  # another message
        await k.post_event(TOKEN, "Normal", "InputsMissing", "missing Secret crm-install")  # another type
        await k.post_event({"metadata": dict(TOKEN["metadata"], uid="u-2")}, "Warning", "InputsMissing",
                           "missing Secret crm-install")  # another object (same name, recreated)
        core.events.clear()  # expired (event TTL) or deleted
        await k.post_event(TOKEN, "Warning", "InputsMissing", "missing Secret crm-install")
        await k.post_event(TOKEN, "Warning", "InputsMissing", "missing Secret crm-install")

    asyncio.run(scenario())
    assert core.calls == ["create", "patch", "patch", "create", "create", "create", "patch", "create", "patch"]
    (again,) = [e for e in core.events.values()]
    assert again["count"] == 2 and again["reason"] == "InputsMissing"
    assert writes() - w0 == 8  # one write per Event posted or counted; the 404'd patch is not a second one


def test_event_aggregation_survives_a_patch_refused_for_another_reason():
    class Refusing(_FakeCore):
        async def patch_namespaced_event(self, name, namespace, patch, **_):
            self.calls.append("patch")
            return _Resp(403, {"reason": "Forbidden"})

    core = Refusing()
    k = _kube_with(core)

    async def scenario():
        await k.post_event(TOKEN, "Warning", "X", "m")
        await k.post_event(TOKEN, "Warning", "X", "m")  # logged, never raised

    asyncio.run(scenario())
    assert core.calls == ["create", "patch"]


# ---- metrics -------------------------------------------------------------------------------------------


def test_condition_series_per_token_type_are_bounded_and_eso_style():
    conds = [{"type": "Ready", "status": "False"}, {"type": "ReauthRequired", "status": "True"},
             {"type": "Degraded", "status": "True"}, {"type": "ScopesSatisfied", "status": "True"}]
    assert condition_samples("OAuth", conds) == [
        ("Ready", "True", 0.0), ("Ready", "False", 1.0), ("ReauthRequired", "True", 1.0), ("ReauthRequired", "False", 0.0)]
    pa = condition_samples("PrivateApp", [{"type": "Ready", "status": "True"}, {"type": "RotationDue", "status": "Unknown"}])
    assert pa == [("Ready", "True", 1.0), ("Ready", "False", 0.0), ("RotationDue", "True", 0.0),
                  ("RotationDue", "False", 0.0), ("PreviousTokenRetirable", "True", 0.0),
                  ("PreviousTokenRetirable", "False", 0.0)]
    assert condition_samples("", []) == [("Ready", "True", 0.0), ("Ready", "False", 0.0)]  # no spec type yet


def _token(name, ttype, status) -> dict:
    return {"metadata": {"namespace": "ns", "name": name}, "spec": {"type": ttype}, "status": status}


def test_every_per_token_series_names_its_token_and_costs_few_series():
    now = datetime(2026, 12, 3, tzinfo=timezone.utc)
    tokens = [
        _token("oauth", "OAuth", {"expiresAt": "2026-12-03T00:30:00Z", "nextRefreshAt": "2026-12-03T00:20:00Z",
                                  "conditions": [{"type": "Ready", "status": "True"}]}),
        _token("pa", "PrivateApp", {"conditions": [{"type": "Ready", "status": "True"}],
                                    "privateApp": {"publishedAt": "2026-12-02T00:00:00Z",
                                                   "previousUntil": "2026-12-09T00:00:00Z"}}),
    ]
    reg = CollectorRegistry()
    reg.register(TokenCollector(lambda: tokens, lambda: now.timestamp()))
    per_token = {"oauth": 0, "pa": 0}
    for fam in reg.collect():
        for s in fam.samples:
            assert s.labels["namespace"] == "ns" and s.labels["name"] in per_token, s
            per_token[s.labels["name"]] += 1
    assert per_token == {"oauth": 2 + 4, "pa": 6 + 1 + 1}  # + refresh_total{success} for OAuth: 7
    text = generate_latest(reg).decode()
    until = reg.get_sample_value("hubspot_token_previous_token_until_timestamp_seconds",
                                 {"namespace": "ns", "name": "pa", "type": "PrivateApp"})
    assert until == datetime(2026, 12, 9, tzinfo=timezone.utc).timestamp()
    assert 'hubspot_token_private_app_token_age_seconds{name="pa",namespace="ns",type="PrivateApp"} 86400.0' in text


def test_refresh_counter_carries_the_token_and_leaves_with_it():
    value = lambda name, result: REGISTRY.get_sample_value(  # noqa: E731
        "hubspot_token_refresh_total", {"namespace": "obs", "name": name, "result": result})
    metrics.count_refresh("obs", "a", "success")
    metrics.count_refresh("obs", "a", "ServerError")
    metrics.count_refresh("obs", "a", "ServerError")
    metrics.count_refresh("obs", "b", "success")
    assert (value("a", "success"), value("a", "ServerError"), value("b", "success")) == (1.0, 2.0, 1.0)
    metrics.forget_token("obs", "a")
    assert value("a", "success") is None and value("a", "ServerError") is None
    assert value("b", "success") == 1.0
    metrics.forget_token("obs", "a")  # twice is harmless
    metrics.forget_token("obs", "b")
    assert 'namespace="obs"' not in generate_latest(REGISTRY).decode()


def test_no_created_samples_double_the_counters():
    assert "_created" not in generate_latest(REGISTRY).decode()


def test_build_info():
    from hubspot_token_operator import __version__
    samples = [s for s in metrics.BUILD_INFO.collect()[0].samples]
    assert len(samples) == 1 and samples[0].value == 1 and samples[0].labels["version"] == __version__
    assert re.fullmatch(r"3\.\d+\.\d+.*", samples[0].labels["python_version"])


@pytest.mark.parametrize("fn,args,want", [
    ("read_namespaced_secret", ("n", "ns"), ("get", "secrets")),
    ("replace_namespaced_secret", ("n", "ns", {}), ("update", "secrets")),
    ("create_namespaced_secret", ("ns", {}), ("create", "secrets")),
    ("create_namespaced_event", ("ns", {}), ("create", "events")),
    ("patch_namespaced_event", ("n", "ns", {}), ("patch", "events")),
    ("patch_namespaced_custom_object_status", ("g", "v", "ns", "hubspottokens", "n", {}), ("patch", "hubspottokens/status")),
    ("get_namespaced_custom_object", ("argoproj.io", "v1alpha1", "ns", "rollouts", "n"), ("get", "rollouts")),
    ("list_namespaced_custom_object", ("argoproj.io", "v1alpha1", "ns", "rollouts"), ("list", "rollouts")),
    ("read_namespaced_lease", ("n", "ns"), ("get", "leases")),
    ("replace_namespaced_lease", ("n", "ns", {}), ("update", "leases")),
    ("list_namespaced_stateful_set", ("ns",), ("list", "statefulsets")),
    ("patch_namespaced_daemon_set", ("n", "ns", {}), ("patch", "daemonsets")),
    ("patch_namespaced_deployment", ("n", "ns", {}), ("patch", "deployments")),
    ("frobnicate_something", (), ("other", "other")),
])
def test_kube_request_labels(fn, args, want):
    assert request_labels(fn, args) == want


def test_kube_requests_are_counted_by_verb_resource_and_code():
    def count(verb, resource, code):
        return REGISTRY.get_sample_value("hubspot_token_kube_requests_total",
                                         {"verb": verb, "resource": resource, "code": code}) or 0.0

    class Slow(_FakeCore):
        async def patch_namespaced_event(self, name, namespace, patch, **_):
            raise asyncio.TimeoutError

    core = Slow()
    k = _kube_with(core)
    before = (count("create", "events", "201"), count("patch", "events", "timeout"))
    hist = REGISTRY.get_sample_value("hubspot_token_kube_request_duration_seconds_count",
                                     {"verb": "create", "resource": "events"}) or 0.0

    async def scenario():
        await k.post_event(TOKEN, "Warning", "Y", "m")
        await k.post_event(TOKEN, "Warning", "Y", "m")  # the patch times out: logged, counted as "timeout"

    asyncio.run(scenario())
    assert (count("create", "events", "201"), count("patch", "events", "timeout")) == (before[0] + 1, before[1] + 1)
    assert REGISTRY.get_sample_value("hubspot_token_kube_request_duration_seconds_count",
                                     {"verb": "create", "resource": "events"}) == hist + 1


def test_hubspot_calls_are_observed_by_operation_and_code_without_secrets():
    seen: list[tuple] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/account-info"):
            return httpx.Response(200, json={"portalId": 1, "accountType": "STANDARD", "timeZone": "UTC",
                                             "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"})
        raise httpx.ConnectTimeout("no route", request=request)

    async def scenario():
        client = HubSpotClient("https://api.hubapi.com", transport=httpx.MockTransport(handler),
                               observe=lambda *a: seen.append(a))
        try:
            await client.check_liveness("pat-na1-secret-value")
            await client.refresh("client-id", "client-secret-value", "refresh-token-value")
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert [(op, code) for op, code, _ in seen] == [("check_liveness", "200"), ("refresh", "timeout")]
    assert all(isinstance(s, float) and s >= 0 for _, _, s in seen)
    assert "secret" not in repr(seen) and "refresh-token" not in repr(seen)


def test_observe_api_call_feeds_the_counter_and_histogram():
    c0 = REGISTRY.get_sample_value("hubspot_token_api_requests_total", {"operation": "introspect", "code": "429"}) or 0
    h0 = REGISTRY.get_sample_value("hubspot_token_api_request_duration_seconds_count", {"operation": "introspect"}) or 0
    metrics.observe_api_call("introspect", "429", 0.2)
    assert REGISTRY.get_sample_value("hubspot_token_api_requests_total", {"operation": "introspect", "code": "429"}) == c0 + 1
    assert REGISTRY.get_sample_value("hubspot_token_api_request_duration_seconds_count", {"operation": "introspect"}) == h0 + 1


def _value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_workqueue_metrics():
    async def scenario():
        release = asyncio.Event()
        calls: list[str] = []

        async def handler(key):
            calls.append(key)
            if key == "boom":
                raise RuntimeError("failed")
            if key == "slow":
                await release.wait()
            return None

        clock = Clock()
        q = WorkQueue(clock, handler, workers=1)
        assert q.depth() == 0  # not running (a standby's queue) says 0 whatever it holds
        adds0, retries0 = _value("hubspot_token_workqueue_adds_total"), _value("hubspot_token_workqueue_retries_total")
        work0 = _value("hubspot_token_workqueue_work_duration_seconds_count")
        q.schedule("later", clock.now() + timedelta(hours=1))
        q.schedule("later", clock.now() + timedelta(hours=2))  # not earlier: not an add
        q.schedule("slow")
        q.schedule("waiting")
        assert _value("hubspot_token_workqueue_adds_total") == adds0 + 3
        await q.start()
        for _ in range(200):
            if "slow" in calls:
                break
            await asyncio.sleep(0.01)
        assert _value("hubspot_token_workqueue_depth") == 1  # "waiting"; "later" is not due, "slow" runs
        assert _value("hubspot_token_workqueue_longest_running_processor_seconds") > 0
        release.set()
        q.schedule("boom")
        for _ in range(200):
            if _value("hubspot_token_workqueue_retries_total") > retries0:
                break
            await asyncio.sleep(0.01)
        assert _value("hubspot_token_workqueue_retries_total") == retries0 + 1
        await q.stop()
        assert q.depth() == 0 and _value("hubspot_token_workqueue_depth") == 0
        assert _value("hubspot_token_workqueue_work_duration_seconds_count") >= work0 + 3
        assert _value("hubspot_token_workqueue_queue_duration_seconds_count") >= 3

    asyncio.run(scenario())


# ---- docs/metrics.md is the list -------------------------------------------------------------------------


def documented_metrics() -> dict[str, str]:
    """name -> type, from the table in docs/metrics.md."""
    rows = re.findall(r"^\| `(hubspot_token_\w+)` \| (counter|gauge|histogram|summary) \|", METRICS_DOC.read_text(), re.M)
    out = dict(rows)
    assert len(out) == len(rows), "a metric is listed twice in docs/metrics.md"
    return out


def registered_metrics() -> dict[str, str]:
    """name -> type, as /metrics would show them: the process-wide registry plus the per-token collector."""
    import hubspot_token_operator.secret_cache  # noqa: F401 - every module that defines metrics is loaded
    reg = CollectorRegistry()
    reg.register(TokenCollector(lambda: [], lambda: 0.0))
    text = generate_latest(REGISTRY).decode() + generate_latest(reg).decode()
    return dict(re.findall(r"^# TYPE (hubspot_token_\w+) (\w+)$", text, re.M))


def test_docs_list_exactly_the_registered_metrics():
    documented, registered = documented_metrics(), registered_metrics()
    assert set(documented) - set(registered) == set(), "documented but not registered"
    assert set(registered) - set(documented) == set(), "registered but not in docs/metrics.md"
    assert documented == registered, "types differ"
    assert kube_mod.KUBE_WRITES is metrics.KUBE_WRITES


def test_a_token_dropped_from_the_runtime_takes_its_counter_series_along():
    from hubspot_token_operator.fingerprint import Fingerprinter
    from hubspot_token_operator.recording import Recorder
    from hubspot_token_operator.runtime import Runtime

    rt = Runtime(settings=Settings(), kube=None, clock=Clock(), fingerprints=Fingerprinter(b"k" * 32))
    body = {"metadata": {"namespace": "drop-ns", "name": "t", "uid": "u"}, "spec": {"type": "OAuth"}}
    Recorder(body=body, now=datetime.now(timezone.utc)).count_refresh("success")
    labels = {"namespace": "drop-ns", "name": "t", "result": "success"}
    assert REGISTRY.get_sample_value("hubspot_token_refresh_total", labels) == 1.0
    rt.drop(("drop-ns", "t"))  # what the watch handler does on DELETED or when the token leaves the shard
    assert REGISTRY.get_sample_value("hubspot_token_refresh_total", labels) is None
