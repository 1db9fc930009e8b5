"""How the operator behaves with many HubSpotTokens (issue #4): latency, HubSpot calls, Kubernetes writes,
pacing of a refresh round, restart herd and memory.

Everything is local and on loopback: a throw-away control plane (``LocalCluster``), the HubSpot simulator
(``hubspot-sim --port 0``) and the operator (``hubspot-token-operator run``), each its own process.
Two scenarios run one after the other in the same cluster:

- ``independent``: N tokens (default 200), one HubSpot app, one install (refresh token Secret) per token.
- ``fanout``: M tokens (default 50) sharing G installs (default 5): each refresh token Secret is referenced
  by M/G tokens, so one HubSpot refresh should serve all of them.

For each scenario, with a fresh operator process:

1. initial issue: create the HubSpotTokens as fast as possible (small thread pool) and time create ->
   target Secret holding ``access_token`` (a Secret watch); HubSpot calls, Kubernetes writes (operator
   metrics), Kubernetes reads (apiserver metrics) and CPU per refresh;
2. steady-state round: ``POST /_sim/clock {"advance_seconds": 1300}`` makes every token due at once;
   time until every target Secret holds a new token, the max HubSpot token calls in any 1 s window, and
   writes/calls per refresh;
3. restart herd: SIGTERM the operator, start it again, time until it is up and has reconciled every
   token, and count HubSpot token calls and Kubernetes writes in the next 20 s (expected: none);
4. memory: VmRSS/VmHWM of the operator process;
5. (scenarios with >= 40 tokens) head-of-line probe: advance the clock again and, once the per-app token
   bucket is pacing the round, delete one already-refreshed target Secret and time its restoration (no
   HubSpot call needed), compared with the same restoration when the operator is idle.

    .venv/bin/python bench/operator_scale.py [--tokens 200] [--fanout-tokens 50 --fanout-grants 5]
                                             [--app-refresh-rate 8] [--json results.json] [--keep]

All loops are bounded by deadlines; the cluster, the simulator and the operator are stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from hubspot_token_operator import GROUP, PLURAL, VERSION
from hubspot_token_operator.devcluster import LocalCluster
from hubspot_token_operator.simulator.control_client import SimControl

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN_ROUTE = "POST /oauth/2026-03/token"
OPERATOR_NS = "hto-bench-system"
HUB = 4242
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- small helpers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in KiB from /proc/PID/status."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# ---- processes -----------------------------------------------------------------------------------------


class Simulator:
    def __init__(self, log: Path) -> None:
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "hubspot-sim"), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("hubspot-sim listening on "):
            self.proc.kill()
            raise RuntimeError(f"simulator did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[1]
        self.ctl = SimControl(self.url)

    def token_calls(self) -> int:
        return self.ctl.count(TOKEN_ROUTE)

    def stop(self) -> None:
        self.ctl.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Operator:
    def __init__(self, kubeconfig: Path, sim_url: str, log: Path, extra: list[str]) -> None:
        self.kubeconfig, self.sim_url, self.log_path, self.extra = kubeconfig, sim_url, log, extra
        self.proc: subprocess.Popen | None = None
        self.metrics_port = 0

    def start(self, timeout: float = 60) -> float:
        """Starts the operator; returns seconds until it logged "operator started"."""
        self.metrics_port = free_port()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(BIN / "hubspot-token-operator"), "run", "--all-namespaces",
                "--hubspot-base-url", self.sim_url,
                "--time-source", "simulator",
                "--operator-namespace", OPERATOR_NS,
                "--metrics-port", str(self.metrics_port), "--health-port", "0",
                "--log-level", "INFO", *self.extra,
            ],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        log.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log_path}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"operator started" in f.read():
                    return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"operator did not start in {timeout:.0f}s; see {self.log_path}")

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def stop(self, timeout: float = 20) -> float:
        """SIGTERM; returns seconds until the process exited."""
        if not self.proc or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        took = time.monotonic() - t0
        self.proc = None
        return took

    def metrics(self) -> dict[tuple, float]:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        out: dict[tuple, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


def by_label(metrics: dict[tuple, float], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (n, labels), v in metrics.items():
        if n == name:
            out[dict(labels).get(label, "")] += v
    return dict(out)


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    keys = set(after) | set(before)
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(keys) if after.get(k, 0.0) != before.get(k, 0.0)}


def metric_sum(metrics: dict[tuple, float], name: str) -> float:
    return sum(v for (n, _), v in metrics.items() if n == name)


class ApiServerMetrics:
    """apiserver_request_total by (verb, resource[/subresource]): the operator's reads, which its own
    metrics do not count. The benchmark's own traffic is only creates and WATCH/LIST, so GETs are the
    operator's."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def snapshot(self) -> dict[str, float]:
        method, url, headers, body, _ = self.api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
        resp = self.api.call_api(method, url, header_params=headers, _request_timeout=10)
        resp.read()
        out: dict[str, float] = defaultdict(float)
        for fam in text_string_to_metric_families(resp.data.decode()):
            if fam.name != "apiserver_request":
                continue
            for s in fam.samples:
                if s.name != "apiserver_request_total":
                    continue
                res = s.labels.get("resource", "")
                if s.labels.get("subresource"):
                    res += "/" + s.labels["subresource"]
                out[f"{s.labels.get('verb')} {res}"] += s.value
        return dict(out)


class CallSampler:
    """Polls the simulator's request stats at ~20 Hz: a time series of cumulative token calls."""

    def __init__(self, sim: Simulator, interval: float = 0.05) -> None:
        self.sim, self.interval = sim, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._http = httpx.Client(base_url=sim.url, timeout=5)
        self._thread = threading.Thread(target=self._run, daemon=True, name="call-sampler")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                by_status = self._http.get("/_sim/stats").json()["requests"].get(TOKEN_ROUTE, {})
                self.samples.append((time.monotonic(), sum(by_status.values())))
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._http.close()

    def window(self, t0: float, t1: float) -> dict:
        """Token calls in [t0, t1]: total, max in any 1 s window, first/last call times (relative to t0)."""
        pts = [(t, c) for t, c in self.samples if t0 - 0.2 <= t <= t1]
        if len(pts) < 2:
            return {"calls": 0, "max_per_1s": 0, "first_call_s": None, "last_call_s": None}
        base = pts[0][1]
        max1 = 0
        i = 0
        for j in range(len(pts)):
            while pts[i][0] < pts[j][0] - 1.0:
                i += 1
            start = pts[i - 1][1] if i > 0 else base
            max1 = max(max1, pts[j][1] - start)
        changes = [t for (t, c), (_, prev) in zip(pts[1:], pts) if c != prev]
        return {
            "calls": pts[-1][1] - base,
            "max_per_1s": max1,
            "first_call_s": round(changes[0] - t0, 2) if changes else None,
            "last_call_s": round(changes[-1] - t0, 2) if changes else None,
        }


class Watcher:
    """Watches Secrets and HubSpotTokens of one namespace and records, with local monotonic timestamps,
    when each target Secret's access_token appears or changes and when each token's lastRefreshTime
    changes."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.core, self.custom, self.ns = client.CoreV1Api(api), client.CustomObjectsApi(api), ns
        self.lock = threading.Lock()
        self.secret_changes: dict[str, list[float]] = defaultdict(list)  # name -> times access_token changed
        self.secret_added: dict[str, list[float]] = defaultdict(list)  # name -> times it was (re)created
        self._secret_value: dict[str, str] = {}
        self.refreshes: dict[str, list[float]] = defaultdict(list)  # token -> times lastRefreshTime changed
        self._last_refresh: dict[str, str] = {}
        self.ready: dict[str, bool] = {}
        self._status: dict[str, dict] = {}
        # (time, token, status keys this write changed, nextRefreshAt shift in seconds when it moved)
        self.status_writes: list[tuple[float, str, tuple[str, ...], float | None]] = []
        self._stop = threading.Event()
        self._listed = [threading.Event(), threading.Event()]
        self._threads = [
            threading.Thread(target=self._loop, args=(self._secrets, self._listed[0]), daemon=True,
                             name="watch-secrets"),
            threading.Thread(target=self._loop, args=(self._tokens, self._listed[1]), daemon=True,
                             name="watch-tokens"),
        ]
        for t in self._threads:
            t.start()
        for ev in self._listed:
            if not ev.wait(timeout=30):
                raise RuntimeError("watch did not start")

    def _loop(self, body, listed: threading.Event) -> None:
        while not self._stop.is_set():
            try:
                body(listed)
            except Exception as e:  # noqa: BLE001 - reconnect on anything, bounded by _stop
                if not self._stop.is_set():
                    print(f"  (watch restarted: {type(e).__name__})", file=sys.stderr)
                    time.sleep(0.5)

    def _secrets(self, listed: threading.Event) -> None:
        lst = self.core.list_namespaced_secret(self.ns)
        for s in lst.items:
            self._on_secret(s)
        rv = lst.metadata.resource_version
        listed.set()
        while not self._stop.is_set():
            w = watch.Watch()
            for ev in w.stream(self.core.list_namespaced_secret, self.ns, resource_version=rv, timeout_seconds=5,
                               allow_watch_bookmarks=True):
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    raise RuntimeError("watch error (e.g. 410 Gone): relist")
                if isinstance(obj, dict):  # BOOKMARK
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    continue
                rv = obj.metadata.resource_version
                if ev["type"] in ("ADDED", "MODIFIED"):
                    self._on_secret(obj, added=ev["type"] == "ADDED")
                if self._stop.is_set():
                    w.stop()
                    break

    def _on_secret(self, s, added: bool = False) -> None:
        now = time.monotonic()
        data = s.data or {}
        tok = data.get("access_token")
        if tok is None:
            return
        name = s.metadata.name
        with self.lock:
            if added:
                self.secret_added[name].append(now)
            if self._secret_value.get(name) != tok:
                self._secret_value[name] = tok
                self.secret_changes[name].append(now)

    def _tokens(self, listed: threading.Event) -> None:
        lst = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)
        for o in lst.get("items", []):
            self._on_token(o)
        rv = lst["metadata"]["resourceVersion"]
        listed.set()
        while not self._stop.is_set():
            w = watch.Watch()
            for ev in w.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, self.ns, PLURAL,
                               resource_version=rv, timeout_seconds=5, allow_watch_bookmarks=True):
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    raise RuntimeError("watch error (e.g. 410 Gone): relist")
                rv = obj["metadata"]["resourceVersion"]
                if ev["type"] in ("ADDED", "MODIFIED"):
                    self._on_token(obj)
                if self._stop.is_set():
                    w.stop()
                    break

    def _on_token(self, o: dict) -> None:
        now = time.monotonic()
        name = o["metadata"]["name"]
        st = o.get("status") or {}
        last = st.get("lastRefreshTime")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
        with self.lock:
            prev = self._status.get(name)
            if prev is not None and prev != st:
                keys = tuple(sorted(k for k in set(prev) | set(st) if prev.get(k) != st.get(k)))
                shift = None
                if "nextRefreshAt" in keys and prev.get("nextRefreshAt") and st.get("nextRefreshAt"):
                    shift = (_ts(st["nextRefreshAt"]) - _ts(prev["nextRefreshAt"]))
                self.status_writes.append((now, name, keys, shift))
            self._status[name] = st
            self.ready[name] = ready
            if last and self._last_refresh.get(name) != last:
                self._last_refresh[name] = last
                self.refreshes[name].append(now)

    def count_secret_changes(self, names, after: float) -> dict[str, float]:
        """name -> first access_token change at or after `after`."""
        with self.lock:
            out = {}
            for n in names:
                ts = [t for t in self.secret_changes.get(n, []) if t >= after]
                if ts:
                    out[n] = ts[0]
            return out

    def count_refreshes(self, names, after: float) -> dict[str, float]:
        with self.lock:
            out = {}
            for n in names:
                ts = [t for t in self.refreshes.get(n, []) if t >= after]
                if ts:
                    out[n] = ts[0]
            return out

    def refresh_events_between(self, t0: float, t1: float) -> int:
        with self.lock:
            return sum(1 for ts in self.refreshes.values() for t in ts if t0 <= t <= t1)

    def status_write_kinds(self, t0: float, t1: float) -> dict[str, int]:
        """Observed status updates in [t0, t1], by which status fields they changed. A refresh changes
        lastRefreshTime; "nextRefreshAt only" writes are re-computations of the schedule."""
        out: dict[str, int] = defaultdict(int)
        with self.lock:
            for t, _, keys, shift in self.status_writes:
                if t0 <= t <= t1:
                    if "lastRefreshTime" in keys:
                        label = "refresh (lastRefreshTime changed)"
                    elif keys == ("nextRefreshAt",):
                        label = f"nextRefreshAt only, moved {shift:+.0f}s" if shift is not None else "nextRefreshAt only"
                    else:
                        label = "other: " + ",".join(keys)
                    out[label] += 1
        return dict(out)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


# ---- the scenario --------------------------------------------------------------------------------------


class Counters:
    """A before/after snapshot of everything counted per phase."""

    def __init__(self, sim: Simulator, op: Operator, apis: ApiServerMetrics, pids: dict[str, int]) -> None:
        self.t = time.monotonic()
        self.token_calls = sim.token_calls()
        m = op.metrics()
        self.writes = by_label(m, "hubspot_token_kube_writes_total", "kind")
        self.refresh = by_label(m, "hubspot_token_refresh_total", "result")
        self.hs_requests = by_label(m, "hubspot_token_hubspot_requests_total", "code")
        self.reconciles = metric_sum(m, "hubspot_token_reconcile_duration_seconds_count")
        self.reconcile_seconds = metric_sum(m, "hubspot_token_reconcile_duration_seconds_sum")
        self.apiserver = apis.snapshot()
        self.cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}


def phase_report(before: Counters, after: Counters, refreshes: int) -> dict:
    per = (lambda x: round(x / refreshes, 2)) if refreshes else (lambda x: None)
    writes = diff(after.writes, before.writes)
    reads = diff(after.apiserver, before.apiserver)
    op_reads = {k: v for k, v in reads.items() if k.startswith("GET ")}
    recs = after.reconciles - before.reconciles
    return {
        "refreshes": refreshes,
        "refresh_total": diff(after.refresh, before.refresh),
        "hubspot_token_calls": after.token_calls - before.token_calls,
        "hubspot_calls_per_refresh": per(after.token_calls - before.token_calls),
        "operator_hubspot_requests": diff(after.hs_requests, before.hs_requests),
        "kube_writes": writes,
        "kube_writes_per_refresh": {k: per(v) for k, v in writes.items()},
        "kube_writes_total_per_refresh": per(sum(writes.values())),
        "kube_gets_per_refresh": {k: per(v) for k, v in op_reads.items()},
        "apiserver_requests": reads,
        "reconciles": recs,
        "reconciles_per_refresh": per(recs),
        "mean_reconcile_ms": round(1000 * (after.reconcile_seconds - before.reconcile_seconds) / recs, 1) if recs else None,
        "cpu_seconds": {k: round(after.cpu[k] - before.cpu.get(k, 0.0), 2) for k in after.cpu},
        "cpu_ms_per_refresh_operator": per(1000 * (after.cpu.get("operator", 0) - before.cpu.get("operator", 0))),
    }


def settle(op: Operator, timeout: float = 30, quiet: float = 2.0) -> float:
    """Waits until the operator's write and reconcile counters stop moving for `quiet` seconds."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        m = op.metrics()
        cur = (metric_sum(m, "hubspot_token_kube_writes_total"),
               metric_sum(m, "hubspot_token_reconcile_duration_seconds_count"))
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return time.monotonic() - t0
        time.sleep(0.2)
    return time.monotonic() - t0


class Scenario:
    def __init__(self, name: str, api: client.ApiClient, sim: Simulator, cluster: LocalCluster, workdir: Path,
                 tokens: int, grants: int, op_args: list[str]) -> None:
        self.name, self.api, self.sim, self.cluster = name, api, sim, cluster
        self.core, self.custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        self.apis = ApiServerMetrics(api)
        self.ns = f"bench-{name}"
        self.n, self.grants = tokens, grants
        self.names = [f"tok-{i:04d}" for i in range(tokens)]
        self.workdir = workdir
        self.op = Operator(cluster.kubeconfig, sim.url, workdir / f"operator-{name}.log", op_args)
        self.result: dict = {"scenario": name, "tokens": tokens, "grants": grants}

    def pids(self) -> dict[str, int]:
        pids = {"operator": self.op.pid, "simulator": self.sim.proc.pid}
        for comp in self.cluster.components:
            if comp.name in ("kube-apiserver", "etcd") and comp.proc:
                pids[comp.name] = comp.proc.pid
        return pids

    def counters(self) -> Counters:
        return Counters(self.sim, self.op, self.apis, self.pids())

    def prepare(self) -> None:
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))
        app = self.sim.ctl.create_app()
        self._secret("hubspot-app", {"client_id": app.client_id, "client_secret": app.client_secret})
        installs = [self.sim.ctl.install(app.client_id, HUB, ["oauth", "crm.objects.contacts.read"])
                    for _ in range(self.grants)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda g: self._secret(f"install-{g:04d}", {"refresh_token": installs[g]}),
                          range(self.grants)))

    def _secret(self, name: str, data: dict[str, str]) -> None:
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels={"hubspot-operator.dev/consent": "true"}),
                               data={k: b64(v) for k, v in data.items()})
        self.core.create_namespaced_secret(self.ns, body)

    def _token_body(self, i: int) -> dict:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HubSpotToken",
            "metadata": {"name": self.names[i]},
            "spec": {
                "type": "OAuth",
                "hubId": HUB,
                "oauth": {
                    "clientSecretRef": {"name": "hubspot-app"},
                    "refreshTokenSecretRef": {"name": f"install-{i % self.grants:04d}"},
                },
                "target": {"name": f"{self.names[i]}-access"},
            },
        }

    def run(self, sampler: CallSampler, herd_seconds: float) -> dict:
        self.prepare()
        startup = self.op.start()
        self.result["operator_startup_s"] = round(startup, 2)
        time.sleep(1.0)
        self.result["rss_idle_kib"] = proc_status(self.op.pid)
        watcher = Watcher(self.api, self.ns)
        try:
            self._initial(watcher, sampler)
            self._round(watcher, sampler)
            self.result["rss_after_round_kib"] = proc_status(self.op.pid)
            self._restart(watcher, sampler, herd_seconds)
            if self.n >= 40:
                self._probe(watcher)
        finally:
            watcher.stop()
            self.op.stop()
        return self.result

    # phase 1
    def _initial(self, w: Watcher, sampler: CallSampler) -> None:
        print(f"[{self.name}] creating {self.n} HubSpotTokens (load {loadavg()})", flush=True)
        before = self.counters()
        created: dict[str, float] = {}

        def create(i: int) -> None:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, self._token_body(i))
            created[self.names[i]] = time.monotonic()

        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(create, range(self.n)))
        t_created = time.monotonic()
        targets = {f"{n}-access": n for n in self.names}
        appeared = wait_until(
            lambda: (d := w.count_secret_changes(targets, t0)) and len(d) == self.n and d,
            timeout=600, interval=0.2, what=f"{self.n} target Secrets")
        wait_until(lambda: len(w.count_refreshes(self.names, t0)) == self.n, timeout=120, interval=0.2,
                   what="status of every token")
        t_done = max(appeared.values())
        settle(self.op)
        after = self.counters()
        lat = [appeared[f"{n}-access"] - created[n] for n in self.names]
        rep = phase_report(before, after, len(w.count_refreshes(self.names, t0)))
        rep.update({
            "create_all_s": round(t_created - t0, 2),
            "create_rate_per_s": round(self.n / (t_created - t0), 1),
            "latency_s": {"p50": round(pct(lat, 50), 2), "p90": round(pct(lat, 90), 2),
                          "p99": round(pct(lat, 99), 2), "max": round(max(lat), 2), "min": round(min(lat), 2)},
            "first_to_last_secret_s": round(t_done - t0, 2),
            "status_updates_seen": w.status_write_kinds(t0, time.monotonic()),
            "calls_timeline": sampler.window(t0, t_done),
            "load": loadavg(),
            "rss_kib": proc_status(self.op.pid),
        })
        self.result["initial"] = rep
        print(f"[{self.name}] initial issue: p50 {rep['latency_s']['p50']}s p99 {rep['latency_s']['p99']}s "
              f"max {rep['latency_s']['max']}s; {rep['hubspot_token_calls']} HubSpot calls for "
              f"{rep['refreshes']} refreshes", flush=True)

    # phase 2
    def _round(self, w: Watcher, sampler: CallSampler) -> None:
        print(f"[{self.name}] advancing the simulator clock 1300 s (load {loadavg()})", flush=True)
        before = self.counters()
        t0 = time.monotonic()
        self.sim.ctl.advance(1300)
        targets = {f"{n}-access": n for n in self.names}
        changed = wait_until(
            lambda: (d := w.count_secret_changes(targets, t0)) and len(d) == self.n and d,
            timeout=600, interval=0.2, what="every target Secret refreshed")
        wait_until(lambda: len(w.count_refreshes(self.names, t0)) == self.n, timeout=120, interval=0.2,
                   what="every status refreshed")
        t_last = max(changed.values())
        settle(self.op)
        after = self.counters()
        refreshed = w.count_refreshes(self.names, t0)
        rep = phase_report(before, after, len(refreshed))
        times = sorted(v - t0 for v in changed.values())
        rep.update({
            "first_secret_s": round(times[0], 2),
            "last_secret_s": round(times[-1], 2),
            "p50_secret_s": round(pct(times, 50), 2),
            "round_duration_s": round(times[-1] - times[0], 2),
            "status_updates_seen": w.status_write_kinds(t0, time.monotonic()),
            "calls_timeline": sampler.window(t0, t_last),
            "load": loadavg(),
        })
        self.result["round"] = rep
        print(f"[{self.name}] round: all {self.n} refreshed in {rep['last_secret_s']}s after the jump; "
              f"{rep['hubspot_token_calls']} calls, max {rep['calls_timeline']['max_per_1s']} in 1 s", flush=True)

    # phases 3 and 4
    def _restart(self, w: Watcher, sampler: CallSampler, herd_seconds: float) -> None:
        print(f"[{self.name}] restarting the operator (load {loadavg()})", flush=True)
        self.result["rss_before_restart_kib"] = proc_status(self.op.pid)
        calls0 = self.sim.token_calls()
        refresh_marks = time.monotonic()
        stop_s = self.op.stop()
        t_start = time.monotonic()
        up_s = self.op.start()
        # every token looked at once: reconcile histogram count of the new process reaches N
        reconciled_s = None
        deadline = t_start + herd_seconds
        while time.monotonic() < deadline:
            try:
                if metric_sum(self.op.metrics(), "hubspot_token_reconcile_duration_seconds_count") >= self.n:
                    reconciled_s = time.monotonic() - t_start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        m = self.op.metrics()
        calls = self.sim.token_calls() - calls0
        self.result["restart"] = {
            "sigterm_to_exit_s": round(stop_s, 2),
            "start_to_operator_started_s": round(up_s, 2),
            "start_to_all_reconciled_s": round(reconciled_s, 2) if reconciled_s is not None else None,
            "window_s": herd_seconds,
            "hubspot_token_calls": calls,
            "refreshes_seen": w.refresh_events_between(refresh_marks, time.monotonic()),
            "kube_writes": by_label(m, "hubspot_token_kube_writes_total", "kind"),
            "status_updates_seen": w.status_write_kinds(t_start, time.monotonic()),
            "reconciles": metric_sum(m, "hubspot_token_reconcile_duration_seconds_count"),
            "rss_kib": proc_status(self.op.pid),
            "load": loadavg(),
        }
        r = self.result["restart"]
        print(f"[{self.name}] restart: up in {r['start_to_operator_started_s']}s, all reconciled in "
              f"{r['start_to_all_reconciled_s']}s, {calls} HubSpot calls in {herd_seconds:.0f}s", flush=True)

    # phase 5: is other work served while the per-app limiter paces a round?
    def _restore(self, w: Watcher, token: str, timeout: float = 120) -> float:
        """Deletes a token's target Secret; seconds until the operator has re-created it."""
        name = f"{token}-access"
        t = time.monotonic()
        self.core.delete_namespaced_secret(name, self.ns)
        wait_until(lambda: any(x > t for x in w.secret_added.get(name, [])), timeout=timeout, interval=0.05,
                   what=f"Secret {name} restored")
        with w.lock:
            return min(x for x in w.secret_added[name] if x > t) - t

    def _probe(self, w: Watcher) -> None:
        print(f"[{self.name}] probe: restore a deleted target Secret during a paced round (load {loadavg()})",
              flush=True)
        t0 = time.monotonic()
        self.sim.ctl.advance(1300)
        targets = {f"{n}-access": n for n in self.names}
        first = wait_until(lambda: (d := w.count_secret_changes(targets, t0)) and len(d) >= 12 and d,
                           timeout=120, interval=0.05, what="round 2 under way")
        victim = targets[min(first, key=first.get)]
        t_probe = time.monotonic() - t0
        during = self._restore(w, victim)
        done = wait_until(lambda: (d := w.count_secret_changes(targets, t0)) and len(d) == self.n and d,
                          timeout=600, interval=0.2, what="round 2 complete")
        round_end = max(done.values()) - t0
        settle(self.op)
        idle = self._restore(w, self.names[-1])
        self.result["probe"] = {
            "deleted_at_s": round(t_probe, 2),
            "restore_during_round_s": round(during, 2),
            "restored_at_s": round(t_probe + during, 2),
            "round2_last_secret_s": round(round_end, 2),
            "restore_idle_s": round(idle, 2),
            "load": loadavg(),
        }
        pr = self.result["probe"]
        print(f"[{self.name}] probe: restore took {pr['restore_during_round_s']}s during the round "
              f"(round ended at {pr['round2_last_secret_s']}s), {pr['restore_idle_s']}s when idle", flush=True)

    def teardown(self) -> None:
        """Deletes this scenario's HubSpotTokens so the next operator does not see them."""
        try:
            self.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)
            wait_until(lambda: not self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)["items"],
                       timeout=60, what="HubSpotTokens deleted")
        except client.ApiException as e:
            print(f"  (teardown of {self.ns}: HTTP {e.status})", file=sys.stderr)


# ---- main ----------------------------------------------------------------------------------------------


def kubectl(cluster: LocalCluster, *args: str) -> None:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "PATH": os.pathsep.join(cluster.assets.bin_dirs + [os.environ.get("PATH", "")])}
    out = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()[:500]}")


def kib(d: dict, key: str = "VmRSS") -> str:
    v = d.get(key) if d else None
    return f"{v / 1024:.0f} MiB" if v else "-"


def summary(results: list[dict], meta: dict) -> str:
    lines = [f"operator_scale  {meta['date']}  cpus={meta['cpus']}  load at start {meta['load_start']}, "
             f"at end {meta['load_end']}  app-refresh-rate={meta['app_refresh_rate']}"]
    row = "{:<44}" + "{:>22}" * len(results)
    lines.append(row.format("", *[f"{r['scenario']} ({r['tokens']}t/{r['grants']}g)" for r in results]))

    def add(label, fn):
        vals = []
        for r in results:
            try:
                v = fn(r)
            except (KeyError, TypeError, ZeroDivisionError):
                v = None
            vals.append("-" if v is None else str(v))
        lines.append(row.format(label, *vals))

    add("create rate (tokens/s)", lambda r: r["initial"]["create_rate_per_s"])
    for p in ("p50", "p90", "p99", "max"):
        add(f"create->Secret {p} (s)", lambda r, p=p: r["initial"]["latency_s"][p])
    add("initial: refreshes", lambda r: r["initial"]["refreshes"])
    add("initial: HubSpot calls / refresh", lambda r: r["initial"]["hubspot_calls_per_refresh"])
    add("initial: max HubSpot calls in 1 s", lambda r: r["initial"]["calls_timeline"]["max_per_1s"])
    add("initial: kube writes / refresh", lambda r: r["initial"]["kube_writes_total_per_refresh"])
    for k in ("secret", "status", "event", "hubspottoken", "workload"):
        add(f"  {k}", lambda r, k=k: r["initial"]["kube_writes_per_refresh"].get(k, 0))
    add("initial: kube GETs / refresh", lambda r: round(sum(r["initial"]["kube_gets_per_refresh"].values()), 2))
    add("initial: reconciles / refresh", lambda r: r["initial"]["reconciles_per_refresh"])
    add("initial: operator CPU ms / refresh", lambda r: r["initial"]["cpu_ms_per_refresh_operator"])
    add("round: refreshes", lambda r: r["round"]["refreshes"])
    add("round: first / last Secret after jump (s)",
        lambda r: f"{r['round']['first_secret_s']}/{r['round']['last_secret_s']}")
    add("round: duration first->last (s)", lambda r: r["round"]["round_duration_s"])
    add("round: HubSpot calls / refresh", lambda r: r["round"]["hubspot_calls_per_refresh"])
    add("round: max HubSpot calls in 1 s", lambda r: r["round"]["calls_timeline"]["max_per_1s"])
    add("round: kube writes / refresh", lambda r: r["round"]["kube_writes_total_per_refresh"])
    for k in ("secret", "status", "event", "hubspottoken", "workload"):
        add(f"  {k}", lambda r, k=k: r["round"]["kube_writes_per_refresh"].get(k, 0))
    add("round: kube GETs / refresh", lambda r: round(sum(r["round"]["kube_gets_per_refresh"].values()), 2))
    add("round: operator CPU ms / refresh", lambda r: r["round"]["cpu_ms_per_refresh_operator"])
    add("restart: SIGTERM -> exit (s)", lambda r: r["restart"]["sigterm_to_exit_s"])
    add("restart: start -> 'operator started' (s)", lambda r: r["restart"]["start_to_operator_started_s"])
    add("restart: start -> all reconciled (s)", lambda r: r["restart"]["start_to_all_reconciled_s"])
    add("restart: HubSpot calls in window", lambda r: r["restart"]["hubspot_token_calls"])
    add("restart: kube writes in window", lambda r: int(sum(r["restart"]["kube_writes"].values())))
    add("probe: restore deleted Secret, idle (s)", lambda r: r["probe"]["restore_idle_s"])
    add("probe: same, during a paced round (s)", lambda r: r["probe"]["restore_during_round_s"])
    add("  (deleted at / round 2 ended at, s)",
        lambda r: f"{r['probe']['deleted_at_s']}/{r['probe']['round2_last_secret_s']}")
    add("RSS idle (0 tokens)", lambda r: kib(r["rss_idle_kib"]))
    add("RSS after initial issue", lambda r: kib(r["initial"]["rss_kib"]))
    add("RSS after round (peak VmHWM)", lambda r: f"{kib(r['rss_after_round_kib'])} ({kib(r['rss_after_round_kib'], 'VmHWM')})")
    add("RSS restarted operator", lambda r: kib(r["restart"]["rss_kib"]))
    lines.append("")
    lines.append("status updates seen by the watch, by what they changed:")
    for r in results:
        for phase in ("initial", "round", "restart"):
            seen = (r.get(phase) or {}).get("status_updates_seen")
            if seen is not None:
                parts = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items())) or "none"
                lines.append(f"  {r['scenario']:<12} {phase:<8} {parts}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=200, help="tokens in the independent scenario (one install each)")
    ap.add_argument("--fanout-tokens", type=int, default=50, help="tokens in the fan-out scenario (0 skips it)")
    ap.add_argument("--fanout-grants", type=int, default=5, help="installs shared by the fan-out tokens")
    ap.add_argument("--app-refresh-rate", type=float, default=None, help="passed to the operator (default: its own)")
    ap.add_argument("--herd-seconds", type=float, default=20.0, help="window after an operator restart")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the state directory (logs) afterwards")
    args = ap.parse_args()
    if args.tokens < 1 or args.tokens > 2000 or args.fanout_tokens < 0 or args.fanout_tokens > 2000:
        ap.error("token counts must be within 1..2000 (fan-out 0..2000)")
    if args.fanout_tokens and (args.fanout_grants < 1 or args.fanout_grants > args.fanout_tokens):
        ap.error("--fanout-grants must be within 1..--fanout-tokens")

    op_args = ["--app-refresh-rate", str(args.app_refresh_rate)] if args.app_refresh_rate else []
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_start": loadavg(),
        "app_refresh_rate": args.app_refresh_rate or "default (8)",
    }
    print(f"operator_scale: load average {meta['load_start']} on {meta['cpus']} CPUs", flush=True)
    state = Path(tempfile.mkdtemp(prefix="hto-bench-"))
    cluster = LocalCluster(state_dir=state / "cluster")
    sim = sampler = None
    results: list[dict] = []
    try:
        cluster.start()
        print(f"control plane up in {cluster.started_in:.1f}s ({state})", flush=True)
        kubectl(cluster, "apply", "--server-side", "-f", str(REPO / "crds" / "hubspottokens.hubspot-operator.dev.yaml"))
        for attempt in range(5):  # right after the apply, `wait` can see NotFound
            try:
                kubectl(cluster, "wait", "--for=condition=Established", "crd/hubspottokens.hubspot-operator.dev",
                        "--timeout=60s")
                break
            except RuntimeError as e:
                if attempt == 4:
                    raise
                print(f"  ({e}; retrying)", file=sys.stderr)
                time.sleep(1)
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 16
        api = client.ApiClient(cfg)
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NS)))
        sim = Simulator(state / "hubspot-sim.log")
        sampler = CallSampler(sim)

        plan = [("independent", args.tokens, args.tokens)]
        if args.fanout_tokens:
            plan.append(("fanout", args.fanout_tokens, args.fanout_grants))
        for name, n, grants in plan:
            sc = Scenario(name, api, sim, cluster, state, n, grants, op_args)
            try:
                results.append(sc.run(sampler, args.herd_seconds))
            finally:
                sc.teardown()
    finally:
        if sampler:
            sampler.stop()
        if sim:
            sim.stop()
        cluster.stop()
        meta["load_end"] = loadavg()
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"state kept in {state}")

    table = summary(results, meta)
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
        print(f"raw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
