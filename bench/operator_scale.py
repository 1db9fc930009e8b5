"""How the operator behaves with many HubSpotTokens (issues #4 and #12): start-up, latency, HubSpot calls,
Kubernetes writes, restarts, memory, refresh lateness, raw write capacity and leader failover.

Everything is local and on loopback: a throw-away control plane (``LocalCluster``, free ports, so it can
run next to a test session's cluster), the HubSpot simulator (``hubspot-sim --port 0``) and the operator
(``hubspot-token-operator run``), each its own process. The phases run one after the other in one cluster;
each is one method of `Bench` and can be switched off (``--no-<phase>``):

1. cold start: N HubSpotTokens and their input Secrets exist before the operator starts; time until it
   logs "operator started", until the first and until the last target Secret is published, and the
   operator's publish rate. (``--no-cold-start``: the operator starts first and the N tokens are created
   as fast as possible, the issue #4 "initial issue".)
2. round: ``POST /_sim/clock {"advance_seconds": 1300}`` makes every token due at once; Kubernetes writes
   and GETs per routine refresh, HubSpot calls per refresh, pacing.
3. probe: another round; once it is under way, delete an already refreshed target Secret and time its
   restoration, against the same restoration when the operator is idle (head-of-line blocking).
4. restart: SIGTERM the operator, start it again with every token published and none due; time until it
   has reconciled every token, HubSpot token calls and Kubernetes writes in the next ``--herd-seconds``.
4b. unrelated: ``--unrelated-secrets`` Secrets that no token uses (4 KiB each, default N) are created
   while the operator runs; its RSS, the Secret cache's size and the reconciles they caused (expect 0).
5. create: ``--create-tokens`` new tokens created while the operator runs, at ``--create-rate`` per second
   (0: as fast as 8 threads go); create -> target Secret p50/p99.
6. fanout: ``--fanout-tokens`` tokens sharing ``--fanout-grants`` installs; HubSpot calls per refresh.
7. lateness: the simulator's access-token lifetime is cut to ``--token-lifetime`` s and
   ``--lateness-tokens`` tokens are created spread over one refresh period; over ``--lateness-seconds`` of
   steady state, lateness = when the watch saw a refresh (simulator time) minus the ``status.nextRefreshAt``
   it was scheduled for.
8. raw writes: the operator is stopped and a plain client (``bench/raw_secret_writes.py``, 8 threads)
   creates N Secrets shaped like a published target Secret; its rate against the operator's cold-start
   publish rate.
9. failover: two operator processes with one lease (short timings), every token made due, the leader
   killed with SIGKILL once a quarter of the round is published; the gap until the standby logs
   "acquired lease", the time until the round completes, and the simulator's
   ``concurrent_refreshes_of_one_grant`` (two refreshes of one grant in flight at once; must be 0).

Tokens are spread over HubSpot apps, ``--tokens-per-app`` per app (one install each), so that the per-app
token bucket (``--app-refresh-rate``, 8/s by default) does not hide what the operator itself can do.

    .venv/bin/python bench/operator_scale.py [--tokens 200] [--tokens-per-app 25] [--create-rate 100]
        [--no-round] [--no-probe] [--no-restart] [--no-unrelated] [--no-create] [--no-fanout] [--no-lateness]
        [--no-raw-writes] [--no-failover] [--json results.json] [--keep]
    .venv/bin/python bench/operator_scale.py --smoke     # tiny, every phase, for CI (tests/cluster/test_bench_smoke.py)

Every figure is printed, in one table at the end; nothing is asserted. The exit code is 1 if a phase
failed (its row says why). All waits have deadlines; the cluster, the simulator and the operators are
stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from hubspot_token_operator import GROUP, PLURAL, VERSION
from hubspot_token_operator.devcluster import LocalCluster
from hubspot_token_operator.model import RefreshSpec
from hubspot_token_operator.schedule import refresh_at
from hubspot_token_operator.simulator.control_client import SimControl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_secret_writes  # noqa: E402 - the sibling script, also usable on its own

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN_ROUTE = "POST /oauth/2026-03/token"
OPERATOR_NS = "hto-bench-system"
MAIN_NS, FANOUT_NS, LATE_NS, RAW_NS = "bench-scale", "bench-fanout", "bench-late", "bench-raw"
UNRELATED_NS = "bench-unrelated"
FAILOVER_LEASE = "hto-bench-failover"
FAILOVER_TIMINGS = ["--lease-duration", "6", "--lease-renew-deadline", "4", "--lease-retry-period", "0.5",
                    "--hubspot-call-deadline", "3"]
ROUND_JUMP = 1300  # seconds of simulator time: past 67% of a 30-minute token, so every token is due
HUB = 4242
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- small helpers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout: float, interval: float = 0.1, what: str = "condition", check=None):
    """Polls `fn` until it returns something true; `check` (if given) runs first each time and may raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check:
            check()
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def spread(values: list[float]) -> dict:
    r = lambda x: round(x, 2)  # noqa: E731
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": r(pct(values, 50)), "p90": r(pct(values, 90)), "p99": r(pct(values, 99)),
            "max": r(max(values)), "min": r(min(values))}


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


def target_of(key: str) -> str:
    """"ns/token" -> "ns/token-access", the key of its target Secret."""
    return f"{key}-access"


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

    def config(self) -> dict:
        return httpx.get(f"{self.url}/_sim/config", timeout=10).json()

    def clock_offset(self) -> float:
        return float(httpx.get(f"{self.url}/_sim/clock", timeout=10).json()["offset_seconds"])

    def stop(self) -> None:
        self.ctl.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


PROFILE_DIR: Path | None = None  # --profile


def _py_spy() -> str:
    """py-spy from PATH, else from the tools cache (python3 -m venv ~/.cache/hubspot-token-operator/tools/pyspy
    && .../pyspy/bin/pip install py-spy); not a project dependency."""
    found = shutil.which("py-spy") or str(Path.home() / ".cache/hubspot-token-operator/tools/pyspy/bin/py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy (into any venv) and put it on PATH")
    return found


class Operator:
    """One ``hubspot-token-operator run`` process. `extra` are more flags, `env` more environment (POD_NAME
    is its leader-election identity)."""

    def __init__(self, kubeconfig: Path, sim_url: str, log: Path, extra: list[str], env: dict | None = None) -> None:
        self.kubeconfig, self.sim_url, self.log_path, self.extra = kubeconfig, sim_url, log, extra
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.metrics_port = 0
        self.exec_at = 0.0  # monotonic time of the last start
        self.stopped_by_us = False

    def start(self, timeout: float = 90, marker: str = "operator started") -> float:
        """Starts the operator; returns seconds until it logged `marker` ("standby:" for a standby)."""
        self.metrics_port = free_port()
        offset = self.log_offset()
        self.stopped_by_us = False
        log = open(self.log_path, "ab")
        self.exec_at = time.monotonic()
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
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env},
        )
        log.close()
        if PROFILE_DIR is not None:  # --profile: py-spy samples this process until it exits
            PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            out = PROFILE_DIR / f"operator-{self.proc.pid}.raw"
            subprocess.Popen([_py_spy(), "record", "--pid", str(self.proc.pid), "--rate", "100", "--format", "raw",
                              "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.wait_log(marker, offset, timeout) - self.exec_at

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_log(self, marker: str, offset: int, timeout: float) -> float:
        """Monotonic time (50 ms resolution) at which `marker` appeared in the log after byte `offset`."""
        deadline = time.monotonic() + timeout
        needle = marker.encode()
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if needle in f.read():
                    return time.monotonic()
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"operator exited ({self.proc.returncode if self.proc else '-'}) before "
                                   f"logging {marker!r}; see {self.log_path}")
            time.sleep(0.05)
        raise RuntimeError(f"operator did not log {marker!r} in {timeout:.0f}s; see {self.log_path}")

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died(self) -> str | None:
        """Why the process is gone although nobody here stopped it (None while it runs or was stopped)."""
        if self.proc is None or self.stopped_by_us or self.proc.poll() is None:
            return None
        rc = self.proc.returncode
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"code {rc}"
        return f"{self.log_path.name}: the operator exited ({how}) although the benchmark did not stop it"

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM; returns seconds until the process exited."""
        self.stopped_by_us = True
        if not self.running:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL: no drain, no lease release."""
        self.stopped_by_us = True
        if self.running:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def metrics(self) -> dict[tuple, float]:
        if not self.running:
            return {}
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=60).text  # 20,000 tokens: ~140,000 series
        out: dict[tuple, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def reconciles(self) -> float:
        try:
            return metric_sum(self.metrics(), "hubspot_token_reconcile_duration_seconds_count")
        except httpx.HTTPError:
            return 0.0


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
    metrics do not count. The benchmark's own traffic in a measured phase is only creates and WATCH/LIST,
    so GETs of resources are the operator's (Lease GETs, leader election, are left out of the per-refresh
    figure)."""

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


# ---- what the cluster shows ----------------------------------------------------------------------------


class Watcher:
    """Watches every Secret and HubSpotToken in the cluster and records, with local monotonic timestamps,
    when each target Secret's access_token appears or changes, when each token's lastRefreshTime changes,
    and, for every refresh, the nextRefreshAt it was scheduled for (refresh lateness). Keys are "ns/name"."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core, self.custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        self.lock = threading.Lock()
        self.secret_changes: dict[str, list[float]] = defaultdict(list)  # key -> times access_token changed
        self.secret_added: dict[str, list[float]] = defaultdict(list)  # key -> times it was (re)created
        self._secret_value: dict[str, str] = {}
        self.refreshes: dict[str, list[float]] = defaultdict(list)  # token -> times lastRefreshTime changed
        self._last_refresh: dict[str, str] = {}
        self._status: dict[str, dict] = {}
        # (time, token, status keys this write changed, nextRefreshAt shift in seconds when it moved)
        self.status_writes: list[tuple[float, str, tuple[str, ...], float | None]] = []
        # (monotonic, wall clock, token, nextRefreshAt it was due at, new lastRefreshTime, exact due time
        # recomputed with the operator's own schedule function), epoch seconds
        self.refresh_due: list[tuple[float, float, str, float, float, float | None]] = []
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
            if not ev.wait(timeout=60):
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
        lst = self.core.list_secret_for_all_namespaces()
        for s in lst.items:
            self._on_secret(s)
        rv = lst.metadata.resource_version
        listed.set()
        while not self._stop.is_set():
            w = watch.Watch()
            for ev in w.stream(self.core.list_secret_for_all_namespaces, resource_version=rv, timeout_seconds=5,
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
        tok = (s.data or {}).get("access_token")
        if tok is None:
            return
        key = f"{s.metadata.namespace}/{s.metadata.name}"
        with self.lock:
            if added:
                self.secret_added[key].append(now)
            if self._secret_value.get(key) != tok:
                self._secret_value[key] = tok
                self.secret_changes[key].append(now)

    def _tokens(self, listed: threading.Event) -> None:
        lst = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        for o in lst.get("items", []):
            self._on_token(o)
        rv = lst["metadata"]["resourceVersion"]
        listed.set()
        while not self._stop.is_set():
            w = watch.Watch()
            for ev in w.stream(self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL,
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
        now, wall = time.monotonic(), time.time()
        key = f"{o['metadata'].get('namespace')}/{o['metadata']['name']}"
        st = o.get("status") or {}
        last = st.get("lastRefreshTime")
        with self.lock:
            prev = self._status.get(key)
            if prev is not None and prev != st:
                keys = tuple(sorted(k for k in set(prev) | set(st) if prev.get(k) != st.get(k)))
                shift = None
                if "nextRefreshAt" in keys and prev.get("nextRefreshAt") and st.get("nextRefreshAt"):
                    shift = (_ts(st["nextRefreshAt"]) - _ts(prev["nextRefreshAt"]))
                self.status_writes.append((now, key, keys, shift))
            self._status[key] = st
            if last and self._last_refresh.get(key) != last:
                if prev is not None and prev.get("nextRefreshAt") and self._last_refresh.get(key):
                    self.refresh_due.append((now, wall, key, _ts(prev["nextRefreshAt"]), _ts(last),
                                             exact_due(o, prev)))
                self._last_refresh[key] = last
                self.refreshes[key].append(now)

    def count_secret_changes(self, keys, after: float) -> dict[str, float]:
        """key -> first access_token change at or after `after`."""
        with self.lock:
            out = {}
            for k in keys:
                ts = [t for t in self.secret_changes.get(k, []) if t >= after]
                if ts:
                    out[k] = ts[0]
            return out

    def count_refreshes(self, keys, after: float) -> dict[str, float]:
        with self.lock:
            out = {}
            for k in keys:
                ts = [t for t in self.refreshes.get(k, []) if t >= after]
                if ts:
                    out[k] = ts[0]
            return out

    def refresh_events_between(self, t0: float, t1: float) -> int:
        with self.lock:
            return sum(1 for ts in self.refreshes.values() for t in ts if t0 <= t <= t1)

    def lateness(self, prefix: str, t0: float, t1: float, sim_offset: float) -> dict[str, list[float]]:
        """Refreshes of tokens whose key starts with `prefix`, seen in [t0, t1]:
        - seen_minus_next: seen by the watch (in simulator time) minus the status.nextRefreshAt before it;
        - last_minus_next: the new status.lastRefreshTime minus that nextRefreshAt (both whole seconds);
        - seen_minus_exact: seen minus the exact due time (nextRefreshAt is truncated to the second)."""
        with self.lock:
            rows = [r for r in self.refresh_due if r[2].startswith(prefix) and t0 <= r[0] <= t1]
        return {
            "seen_minus_next": [wall + sim_offset - nxt for _, wall, _, nxt, _, _ in rows],
            "last_minus_next": [last - nxt for _, _, _, nxt, last, _ in rows],
            "seen_minus_exact": [wall + sim_offset - ex for _, wall, _, _, _, ex in rows if ex is not None],
        }

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


def exact_due(body: dict, prev_status: dict) -> float | None:
    """When the operator considered the refresh due: its own `refresh_at` over the previous status (the
    whole-second lastRefreshTime and expiresAt it schedules from), the token's refresh policy and uid."""
    try:
        issued = datetime.fromtimestamp(_ts(prev_status["lastRefreshTime"]), timezone.utc)
        expires = datetime.fromtimestamp(_ts(prev_status["expiresAt"]), timezone.utc)
        policy = RefreshSpec.model_validate((body.get("spec") or {}).get("refresh") or {})
        md = body["metadata"]
        return refresh_at(issued, expires, policy, md.get("uid", md["name"])).timestamp()
    except (KeyError, ValueError, TypeError):
        return None


class Counters:
    """A before/after snapshot of everything counted per phase (an operator that is not running counts 0)."""

    def __init__(self, sim: Simulator, op: Operator | None, apis: ApiServerMetrics, pids: dict[str, int]) -> None:
        self.t = time.monotonic()
        self.token_calls = sim.token_calls()
        m = op.metrics() if op else {}
        self.writes = by_label(m, "hubspot_token_kube_writes_total", "kind")
        self.refresh = by_label(m, "hubspot_token_refresh_total", "result")
        self.hs_requests = by_label(m, "hubspot_token_api_requests_total", "code")
        self.reconciles = metric_sum(m, "hubspot_token_reconcile_duration_seconds_count")
        self.reconcile_seconds = metric_sum(m, "hubspot_token_reconcile_duration_seconds_sum")
        self.apiserver = apis.snapshot()
        self.cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}


def phase_report(before: Counters, after: Counters, refreshes: int) -> dict:
    per = (lambda x: round(x / refreshes, 2)) if refreshes else (lambda x: None)
    writes = diff(after.writes, before.writes)
    reads = diff(after.apiserver, before.apiserver)
    # resource GETs only: not Lease GETs (leader election) nor discovery (/api, /apis)
    op_reads = {k: v for k, v in reads.items()
                if k.startswith("GET ") and k not in ("GET ", "GET leases") and not k.startswith("GET /")}
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
        # every process on the machine that works for this phase: what the 2 cores have to pay per refresh
        "cpu_ms_per_refresh_all": per(1000 * sum(after.cpu[k] - before.cpu.get(k, 0.0) for k in after.cpu)),
        "cores_busy": round(sum(after.cpu[k] - before.cpu.get(k, 0.0) for k in after.cpu) / max(after.t - before.t, 1e-9), 2),
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


# ---- the benchmark -------------------------------------------------------------------------------------


class Bench:
    """The cluster, the simulator and the operator(s), plus the HubSpotTokens that exist so far (`present`,
    "ns/name" keys). One method per phase; each stores its figures in `results[phase]`."""

    def __init__(self, args: argparse.Namespace, cluster: LocalCluster, api: client.ApiClient, sim: Simulator,
                 sampler: CallSampler, watcher: Watcher, workdir: Path) -> None:
        self.args, self.cluster, self.api, self.sim = args, cluster, api, sim
        self.sampler, self.w, self.workdir = sampler, watcher, workdir
        self.core, self.custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        self.apis = ApiServerMetrics(api)
        self.op_args = ["--app-refresh-rate", str(args.app_refresh_rate)] if args.app_refresh_rate else []
        self.op: Operator | None = None  # the single operator of phases 1-7
        self.others: list[Operator] = []  # the failover pair
        self.present: list[str] = []
        self.results: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []
        self._namespaces: set[str] = set()

    # ---- plumbing ---------------------------------------------------------------------------------------

    def run_phase(self, name: str, fn, *args) -> bool:
        print(f"== {name} (load {loadavg()})", flush=True)
        t = time.monotonic()
        self.results.setdefault(name, {})
        try:
            fn(*args)
            return True
        except Exception as e:  # noqa: BLE001 - a failed phase is reported, the next one still runs
            self.errors[name] = f"{type(e).__name__}: {e}"
            print(f"[{name}] FAILED: {self.errors[name]}", file=sys.stderr, flush=True)
            traceback.print_exc()
            return False
        finally:
            self.results[name]["phase_s"] = round(time.monotonic() - t, 1)
            self.results[name]["load"] = loadavg()

    def check_alive(self) -> None:
        """Raises if an operator process that should run has gone (the phase then fails, saying so)."""
        for op in [self.op, *self.others]:
            if op is not None and (why := op.died()):
                raise RuntimeError(why)

    def pids(self, op: Operator | None) -> dict[str, int]:
        pids = {"operator": op.pid if op and op.running else 0, "simulator": self.sim.proc.pid,
                "benchmark": os.getpid()}
        for comp in self.cluster.components:
            if comp.name in ("kube-apiserver", "etcd") and comp.proc:
                pids[comp.name] = comp.proc.pid
        return pids

    def counters(self, op: Operator | None) -> Counters:
        return Counters(self.sim, op, self.apis, self.pids(op))

    def new_operator(self, tag: str, extra: list[str] = (), env: dict | None = None) -> Operator:
        return Operator(self.cluster.kubeconfig, self.sim.url, self.workdir / f"operator-{tag}.log",
                        [*self.op_args, *extra], env)

    def ensure_namespace(self, ns: str) -> None:
        if ns not in self._namespaces:
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            self._namespaces.add(ns)

    def _secret(self, ns: str, name: str, data: dict[str, str]) -> None:
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels={"hubspot-operator.dev/consent": "true"}),
                               data={k: b64(v) for k, v in data.items()})
        self.core.create_namespaced_secret(ns, body)

    def inputs(self, ns: str, names: list[str], grants: int | None = None, refresh: dict | None = None) -> list[dict]:
        """Creates the HubSpot apps and installs for `names` and their Secrets in `ns` (not the tokens), and
        returns the HubSpotToken bodies. One install per token unless `grants` (then token i uses install
        i % grants); ``--tokens-per-app`` tokens per app, assigned round-robin."""
        self.ensure_namespace(ns)
        grants = grants or len(names)
        tag = names[0].split("-")[0]
        n_apps = max(1, math.ceil(len(names) / self.args.tokens_per_app))
        apps = [self.sim.ctl.create_app() for _ in range(n_apps)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: self._secret(ns, f"{tag}-app-{a:03d}", {
                "client_id": apps[a].client_id, "client_secret": apps[a].client_secret}), range(n_apps)))
            installs = list(pool.map(lambda g: self.sim.ctl.install(
                apps[g % n_apps].client_id, HUB, ["oauth", "crm.objects.contacts.read"]), range(grants)))
            list(pool.map(lambda g: self._secret(ns, f"{tag}-install-{g:05d}", {"refresh_token": installs[g]}),
                          range(grants)))
        bodies = []
        for i, name in enumerate(names):
            g = i % grants
            spec = {
                "type": "OAuth",
                "hubId": HUB,
                "oauth": {
                    "clientSecretRef": {"name": f"{tag}-app-{g % n_apps:03d}"},
                    "refreshTokenSecretRef": {"name": f"{tag}-install-{g:05d}"},
                },
                "target": {"name": f"{name}-access"},
            }
            if refresh:
                spec["refresh"] = refresh
            bodies.append({"apiVersion": f"{GROUP}/{VERSION}", "kind": "HubSpotToken", "metadata": {"name": name},
                           "spec": spec})
        return bodies

    def create(self, ns: str, bodies: list[dict], rate: float = 0.0) -> tuple[dict[str, float], float]:
        """Creates HubSpotTokens: as fast as 8 threads go, or paced at `rate` per second. Returns key ->
        when its create call returned, and how long creating them all took."""
        created: dict[str, float] = {}

        def one(body: dict) -> None:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
            created[f"{ns}/{body['metadata']['name']}"] = time.monotonic()

        t0 = time.monotonic()
        with ThreadPoolExecutor(16 if rate else 8) as pool:
            futures = []
            for i, body in enumerate(bodies):
                if rate:
                    sleep_until(t0 + i / rate)
                futures.append(pool.submit(one, body))
            for f in futures:
                f.result(timeout=120)
        return created, time.monotonic() - t0

    def wait_published(self, keys: list[str], after: float, what: str, timeout: float | None = None) -> dict[str, float]:
        """Token key -> first time (>= `after`) its target Secret held a new access_token; waits for all."""
        targets = {target_of(k): k for k in keys}
        timeout = timeout or self.args.phase_timeout
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            seen = self.w.count_secret_changes(targets, after)
            if len(seen) == len(targets):
                return {targets[t]: v for t, v in seen.items()}
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {len(seen)}/{len(targets)} target Secrets after {timeout:.0f}s")
            time.sleep(0.2)

    def wait_refreshed(self, keys: list[str], after: float, timeout: float = 120) -> dict[str, float]:
        return wait_until(lambda: (d := self.w.count_refreshes(keys, after)) and len(d) == len(keys) and d,
                          timeout=timeout, interval=0.2, what=f"status of {len(keys)} tokens refreshed",
                          check=self.check_alive)

    def wait_reconciled(self, op: Operator, n: int, timeout: float) -> float | None:
        """Monotonic time at which `op`'s reconcile count reached n (None if not within `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if op.reconciles() >= n:
                return time.monotonic()
            time.sleep(0.1)
        return None

    def main_operator(self) -> Operator:
        """The single operator; started again (and said so) if it exited when nobody stopped it."""
        if self.op is None:
            raise RuntimeError("the operator was never started (the first phase failed)")
        if not self.op.running:
            note = f"{self.op.died() or 'the operator was not running'}; started again"
            self.notes.append(note)
            print(f"  ({note})", file=sys.stderr, flush=True)
            self.op.start()
            self.wait_reconciled(self.op, len(self.present), timeout=60 + len(self.present) / 20)
            settle(self.op)
        return self.op

    # ---- phase 1: cold start ----------------------------------------------------------------------------

    def cold_start(self, n: int) -> None:
        """N tokens and their Secrets exist before the operator starts."""
        names = [f"tok-{i:05d}" for i in range(n)]
        keys = [f"{MAIN_NS}/{x}" for x in names]
        t = time.monotonic()
        _, create_s = self.create(MAIN_NS, self.inputs(MAIN_NS, names))
        prep_s = time.monotonic() - t
        print(f"[cold start] {n} tokens and their inputs created in {prep_s:.1f}s; starting the operator", flush=True)
        before = self.counters(None)
        self.op = self.new_operator("main")
        up_s = self.op.start()
        t_exec = self.op.exec_at
        published = self.wait_published(keys, t_exec, "cold start")
        self.wait_refreshed(keys, t_exec)
        self.present += keys
        t_last = max(published.values())
        settle(self.op)
        after = self.counters(self.op)
        times = sorted(v - t_exec for v in published.values())
        rep = phase_report(before, after, len(self.w.count_refreshes(keys, t_exec)))
        work_s = times[-1] - up_s
        rep.update({
            "tokens": n,
            "apps": math.ceil(n / self.args.tokens_per_app),
            "prepare_s": round(prep_s, 1),
            "token_create_rate_per_s": round(n / create_s, 1),
            "exec_to_operator_started_s": round(up_s, 2),
            "exec_to_first_secret_s": round(times[0], 2),
            "exec_to_all_secrets_s": round(times[-1], 2),
            "publish_rate_per_s": round(n / work_s, 1) if work_s > 0 else None,
            "calls_timeline": self.sampler.window(t_exec, t_last),
            "status_updates_seen": self.w.status_write_kinds(t_exec, time.monotonic()),
            "rss_kib": proc_status(self.op.pid),
        })
        self.results["cold_start"].update(rep)
        print(f"[cold start] 'operator started' after {up_s:.1f}s, first Secret {times[0]:.1f}s, all {n} after "
              f"{times[-1]:.1f}s ({rep['publish_rate_per_s']}/s)", flush=True)

    def initial_issue(self, n: int) -> None:
        """--no-cold-start: the operator starts on an empty cluster; the N tokens are created afterwards."""
        self.op = self.new_operator("main")
        up_s = self.op.start()
        time.sleep(1.0)
        idle = proc_status(self.op.pid)
        names = [f"tok-{i:05d}" for i in range(n)]
        bodies = self.inputs(MAIN_NS, names)
        before = self.counters(self.op)
        t0 = time.monotonic()
        created, create_s = self.create(MAIN_NS, bodies)
        keys = list(created)
        published = self.wait_published(keys, t0, "initial issue")
        self.wait_refreshed(keys, t0)
        self.present += keys
        settle(self.op)
        after = self.counters(self.op)
        rep = phase_report(before, after, len(self.w.count_refreshes(keys, t0)))
        rep.update({
            "tokens": n, "exec_to_operator_started_s": round(up_s, 2), "rss_idle_kib": idle,
            "token_create_rate_per_s": round(n / create_s, 1),
            "latency_s": spread([published[k] - created[k] for k in keys]),
            "calls_timeline": self.sampler.window(t0, max(published.values())),
            "status_updates_seen": self.w.status_write_kinds(t0, time.monotonic()),
            "rss_kib": proc_status(self.op.pid),
        })
        self.results["initial_issue"].update(rep)

    # ---- phase 2: a routine round -----------------------------------------------------------------------

    def round(self) -> None:
        """Every token due at once (a clock jump); what one routine refresh costs."""
        op = self.main_operator()
        keys = list(self.present)
        before = self.counters(op)
        t0 = time.monotonic()
        self.sim.ctl.advance(ROUND_JUMP)
        changed = self.wait_published(keys, t0, "round")
        self.wait_refreshed(keys, t0)
        t_last = max(changed.values())
        settle(op)
        after = self.counters(op)
        rep = phase_report(before, after, len(self.w.count_refreshes(keys, t0)))
        times = sorted(v - t0 for v in changed.values())
        rep.update({
            "first_secret_s": round(times[0], 2),
            "last_secret_s": round(times[-1], 2),
            "round_duration_s": round(times[-1] - times[0], 2),
            "refresh_rate_per_s": round(len(times) / (times[-1] - times[0]), 1) if times[-1] > times[0] else None,
            "status_updates_seen": self.w.status_write_kinds(t0, time.monotonic()),
            "calls_timeline": self.sampler.window(t0, t_last),
            "rss_kib": proc_status(op.pid),
        })
        self.results["round"].update(rep)
        print(f"[round] {len(keys)} refreshed, last {rep['last_secret_s']}s after the jump; kube writes/refresh "
              f"{rep['kube_writes_total_per_refresh']} {rep['kube_writes_per_refresh']}", flush=True)

    # ---- phase 3: head-of-line probe --------------------------------------------------------------------

    def _restore(self, key: str, timeout: float = 120) -> float:
        """Deletes a token's target Secret; seconds until the operator has re-created it."""
        target = target_of(key)
        ns, name = target.split("/", 1)
        t = time.monotonic()
        self.core.delete_namespaced_secret(name, ns)
        wait_until(lambda: any(x > t for x in self.w.secret_added.get(target, [])), timeout=timeout,
                   interval=0.05, what=f"Secret {target} restored")
        with self.w.lock:
            return min(x for x in self.w.secret_added[target] if x > t) - t

    def probe(self) -> None:
        """Is other work served while a round is being worked through?"""
        op = self.main_operator()
        keys = list(self.present)
        t0 = time.monotonic()
        self.sim.ctl.advance(ROUND_JUMP)
        targets = [target_of(k) for k in keys]
        need = max(3, len(keys) // 20)
        first = wait_until(lambda: (d := self.w.count_secret_changes(targets, t0)) and len(d) >= need and d,
                           timeout=self.args.phase_timeout, interval=0.05, what="probe round under way",
                           check=self.check_alive)
        victim = min(first, key=first.get)[: -len("-access")]
        t_probe = time.monotonic() - t0
        during = self._restore(victim)
        done = self.wait_published(keys, t0, "probe round")
        round_end = max(done.values()) - t0
        settle(op)
        idle = self._restore(keys[-1])
        self.results["probe"].update({
            "deleted_at_s": round(t_probe, 2),
            "restore_during_round_s": round(during, 2),
            "round_last_secret_s": round(round_end, 2),
            "restore_idle_s": round(idle, 2),
        })

    # ---- phase 4: restart with everything published -----------------------------------------------------

    def restart(self) -> None:
        op = self.main_operator()
        n = len(self.present)
        herd = self.args.herd_seconds
        rss_before = proc_status(op.pid)
        calls0 = self.sim.token_calls()
        marks = time.monotonic()
        stop_s = op.stop()
        t_start = time.monotonic()
        up_s = op.start()
        # a reconcile of a token that is not due is cheap: allow 20/s at least before giving up
        first_at = self.wait_reconciled(op, 1, timeout=60)
        reconciled_at = self.wait_reconciled(op, n, timeout=min(self.args.phase_timeout, max(herd, 60 + n / 20)))
        sleep_until(t_start + herd)
        m = op.metrics()
        self.results["restart"].update({
            "tokens": n,
            "sigterm_to_exit_s": round(stop_s, 2),
            "start_to_operator_started_s": round(up_s, 2),
            "start_to_first_reconcile_s": round(first_at - t_start, 2) if first_at is not None else None,
            "start_to_all_reconciled_s": round(reconciled_at - t_start, 2) if reconciled_at is not None else None,
            "mean_reconcile_ms": round(1000 * metric_sum(m, "hubspot_token_reconcile_duration_seconds_sum")
                                       / max(1.0, metric_sum(m, "hubspot_token_reconcile_duration_seconds_count")), 1),
            "window_s": round(max(herd, time.monotonic() - t_start), 1),
            "hubspot_token_calls": self.sim.token_calls() - calls0,
            "refreshes_seen": self.w.refresh_events_between(marks, time.monotonic()),
            "kube_writes": by_label(m, "hubspot_token_kube_writes_total", "kind"),
            "status_updates_seen": self.w.status_write_kinds(t_start, time.monotonic()),
            "reconciles": metric_sum(m, "hubspot_token_reconcile_duration_seconds_count"),
            "rss_before_kib": rss_before,
            "rss_kib": proc_status(op.pid),
        })
        r = self.results["restart"]
        print(f"[restart] up in {up_s:.1f}s, all {n} reconciled after {r['start_to_all_reconciled_s']}s; "
              f"{r['hubspot_token_calls']} HubSpot calls, {sum(r['kube_writes'].values()):.0f} kube writes "
              f"in {r['window_s']}s", flush=True)

    # ---- phase 4b: Secrets no token uses --------------------------------------------------------------

    def unrelated(self, count: int) -> None:
        """Creates `count` Secrets that no token uses (4 KiB each) while the operator runs: its memory and work
        must not follow them (the Secret cache keeps what tokens use plus a fixed-size holding area of the
        newest Secrets no token uses yet; their events wake nothing)."""
        op = self.main_operator()
        settle(op)
        m0 = op.metrics()
        rss0 = proc_status(op.pid)
        recs0 = metric_sum(m0, "hubspot_token_reconcile_duration_seconds_count")
        cpu0 = cpu_seconds(op.pid)
        template = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"labels": {"app": "other"}},
                    "data": {"blob": base64.b64encode(os.urandom(4096)).decode()}}
        self.ensure_namespace(UNRELATED_NS)
        try:
            res = raw_secret_writes.write_secrets(self.api, UNRELATED_NS, template, count, 8, mode="create",
                                                  prefix="unrelated", timeout=self.args.phase_timeout)
            settle(op)
            time.sleep(3)
            m1 = op.metrics()
            self.results["unrelated"].update({
                "secrets": res["secrets"],
                "bytes_each": 4096,
                "rss_before_kib": rss0,
                "rss_kib": proc_status(op.pid),
                "cache_entries_before": metric_sum(m0, "hubspot_token_secret_cache_entries"),
                "cache_entries_after": metric_sum(m1, "hubspot_token_secret_cache_entries"),
                "reconciles": metric_sum(m1, "hubspot_token_reconcile_duration_seconds_count") - recs0,
                "operator_cpu_s": round(cpu_seconds(op.pid) - cpu0, 2),
            })
        finally:
            raw_secret_writes.delete_all(self.api, UNRELATED_NS, prefix="unrelated")
        r = self.results["unrelated"]
        print(f"[unrelated] {r['secrets']} Secrets: RSS {rss(r['rss_before_kib'])} -> {rss(r['rss_kib'])}, cache "
              f"{r['cache_entries_before']:.0f} -> {r['cache_entries_after']:.0f}, {r['reconciles']:.0f} reconciles",
              flush=True)

    # ---- phase 5: tokens created while the operator runs ------------------------------------------------

    def create_phase(self, m: int, rate: float) -> None:
        op = self.main_operator()
        names = [f"new-{i:05d}" for i in range(m)]
        bodies = self.inputs(MAIN_NS, names)
        before = self.counters(op)
        t0 = time.monotonic()
        created, create_s = self.create(MAIN_NS, bodies, rate=rate)
        keys = list(created)
        published = self.wait_published(keys, t0, "created tokens")
        self.wait_refreshed(keys, t0)
        self.present += keys
        settle(op)
        after = self.counters(op)
        rep = phase_report(before, after, len(self.w.count_refreshes(keys, t0)))
        rep.update({
            "tokens": m,
            "target_rate_per_s": rate or "max",
            "achieved_rate_per_s": round(m / create_s, 1),
            "latency_s": spread([published[k] - created[k] for k in keys]),
            "calls_timeline": self.sampler.window(t0, max(published.values())),
        })
        self.results["create"].update(rep)
        lat = rep["latency_s"]
        print(f"[create] {m} at {rep['achieved_rate_per_s']}/s: create->Secret p50 {lat['p50']}s p99 {lat['p99']}s",
              flush=True)

    # ---- phase 6: fan-out ------------------------------------------------------------------------------

    def fanout(self, m: int, grants: int) -> None:
        op = self.main_operator()
        names = [f"fan-{i:05d}" for i in range(m)]
        bodies = self.inputs(FANOUT_NS, names, grants=grants)
        before = self.counters(op)
        t0 = time.monotonic()
        created, _ = self.create(FANOUT_NS, bodies)
        keys = list(created)
        published = self.wait_published(keys, t0, "fan-out tokens")
        self.wait_refreshed(keys, t0)
        self.present += keys
        settle(op)
        rep = phase_report(before, self.counters(op), len(self.w.count_refreshes(keys, t0)))
        rep.update({"tokens": m, "grants": grants, "latency_s": spread([published[k] - created[k] for k in keys])})
        self.results["fanout"].update(rep)

    # ---- phase 7: refresh lateness in steady state ----------------------------------------------------

    def lateness(self, k: int, lifetime: int, window: float) -> None:
        """Short-lived tokens, created spread over one refresh period so refreshes are steady, not a herd."""
        self.main_operator()
        original = self.sim.config()["access_token_lifetime_seconds"]
        self.sim.ctl.configure(access_token_lifetime_seconds=lifetime)
        try:
            names = [f"late-{i:04d}" for i in range(k)]
            # minRemainingValidity 5s: the default (2m) would refuse a token that lives less than 2 minutes
            bodies = self.inputs(LATE_NS, names, refresh={"minRemainingValidity": "5s"})
            period = 0.67 * lifetime
            offset = self.sim.clock_offset()
            t0 = time.monotonic()
            created, _ = self.create(LATE_NS, bodies, rate=k / period)
            self.wait_published(list(created), t0, "lateness tokens issued", timeout=60 + 2 * period)
            t_meas = time.monotonic()
            sleep_until(t_meas + window)
            late = self.w.lateness(LATE_NS + "/", t_meas, time.monotonic(), offset)
            seen = late["seen_minus_next"]
            self.results["lateness"].update({
                "tokens": k,
                "lifetime_s": lifetime,
                "refresh_period_s": round(period, 1),
                "window_s": window,
                "refreshes": len(seen),
                "expected_refreshes": round(k * window / period),
                "seen_minus_due_s": spread(seen),
                "last_refresh_time_minus_due_s": spread(late["last_minus_next"]),
                "seen_minus_exact_due_s": spread(late["seen_minus_exact"]),
            })
            s = self.results["lateness"]["seen_minus_due_s"]
            print(f"[lateness] {len(seen)} refreshes in {window:.0f}s: seen - nextRefreshAt p50 {s.get('p50')}s "
                  f"p99 {s.get('p99')}s max {s.get('max')}s", flush=True)
        finally:
            self.sim.ctl.configure(access_token_lifetime_seconds=original)
            self._delete_tokens(LATE_NS)

    def _delete_tokens(self, ns: str) -> None:
        if ns not in self._namespaces:
            return
        self.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
        wait_until(lambda: not self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"],
                   timeout=120, what=f"HubSpotTokens in {ns} deleted")

    # ---- phase 8: a plain client's write rate ---------------------------------------------------------

    def stop_operator(self) -> None:
        if self.op is not None and self.op.running:
            self.results.setdefault("final", {})["rss_kib"] = proc_status(self.op.pid)
            self.op.stop()

    def raw_writes(self, n: int, threads: int) -> None:
        """The operator is stopped; a plain client creates N Secrets shaped like a published target Secret."""
        template_key = next((target_of(k) for k in self.present if k.startswith(MAIN_NS + "/")), None)
        if template_key is None:
            raise RuntimeError("no published target Secret to copy (the cold start failed?)")
        ns, name = template_key.split("/", 1)
        template = raw_secret_writes.template_from(self.core.read_namespaced_secret(name, ns))
        self.ensure_namespace(RAW_NS)
        try:
            res = raw_secret_writes.write_secrets(self.api, RAW_NS, template, n, threads, mode="create",
                                                  timeout=self.args.phase_timeout)
        finally:
            raw_secret_writes.delete_all(self.api, RAW_NS)
        self.results["raw_writes"].update(res)
        print(f"[raw writes] {res['secrets']} Secrets of {res['body_bytes']} bytes, {threads} threads: "
              f"{res['per_second']}/s", flush=True)

    # ---- phase 9: leader failover in the middle of a round --------------------------------------------

    def failover(self, kill_fraction: float) -> None:
        keys = list(self.present)
        if not keys:
            raise RuntimeError("no tokens")
        extra = ["--lease-name", FAILOVER_LEASE, *FAILOVER_TIMINGS]
        a = self.new_operator("failover-a", extra, {"POD_NAME": "bench-a"})
        b = self.new_operator("failover-b", extra, {"POD_NAME": "bench-b"})
        self.others += [a, b]
        rep = self.results["failover"]
        rep.update({"tokens": len(keys), "lease": " ".join(FAILOVER_TIMINGS)})
        rep["a_start_to_operator_started_s"] = round(a.start(), 2)
        rep["b_start_to_standby_s"] = round(b.start(marker="standby:"), 2)
        if self.wait_reconciled(a, len(keys), timeout=self.args.phase_timeout) is None:
            raise TimeoutError("the leader did not reconcile every token")
        settle(a)
        stats0, calls0 = self.sim.ctl.stats(), self.sim.token_calls()
        b_offset = b.log_offset()
        targets = [target_of(k) for k in keys]
        kill_after = max(1, int(len(keys) * kill_fraction))
        t0 = time.monotonic()
        self.sim.ctl.advance(ROUND_JUMP)
        wait_until(lambda: len(self.w.count_secret_changes(targets, t0)) >= kill_after,
                   timeout=self.args.phase_timeout, interval=0.05, what="failover round under way",
                   check=self.check_alive)
        t_kill = time.monotonic()
        a.kill()
        before_kill = len(self.w.count_secret_changes(targets, t0))
        t_acquired = b.wait_log("leader election: acquired lease", b_offset, timeout=60)
        t_started = b.wait_log("operator started", b_offset, timeout=60)
        done = self.wait_published(keys, t0, "round after the failover")
        self.wait_refreshed(keys, t0)
        t_done = max(done.values())
        settle(b)
        stats1 = self.sim.ctl.stats()
        by_install0 = stats0.get("refreshes_by_install", {})
        twice = sum(1 for g, c in stats1.get("refreshes_by_install", {}).items() if c - by_install0.get(g, 0) >= 2)
        rep.update({
            "kill_after_secrets": kill_after,
            "published_before_kill": before_kill,
            "jump_to_kill_s": round(t_kill - t0, 2),
            "kill_to_acquired_s": round(t_acquired - t_kill, 2),
            "kill_to_operator_started_s": round(t_started - t_kill, 2),
            "jump_to_round_done_s": round(t_done - t0, 2),
            "kill_to_round_done_s": round(t_done - t_kill, 2),
            "hubspot_token_calls": self.sim.token_calls() - calls0,
            "installs_refreshed_twice": twice,
            "concurrent_refreshes_of_one_grant": stats1.get("concurrent_refreshes_of_one_grant", 0)
            - stats0.get("concurrent_refreshes_of_one_grant", 0),
            "survivor_rss_kib": proc_status(b.pid),
        })
        print(f"[failover] killed the leader {rep['jump_to_kill_s']}s into the round ({before_kill} published); "
              f"standby acquired the lease {rep['kill_to_acquired_s']}s later; round done "
              f"{rep['kill_to_round_done_s']}s after the kill; concurrent refreshes of one grant: "
              f"{rep['concurrent_refreshes_of_one_grant']}", flush=True)

    def stop_all(self) -> None:
        for op in [self.op, *self.others]:
            if op is not None:
                op.stop()


# ---- the table -----------------------------------------------------------------------------------------


def kib(d: dict | None, key: str = "VmRSS") -> str:
    v = d.get(key) if d else None
    return f"{v / 1024:.0f} MiB" if v else "-"


def rss(d: dict | None) -> str:
    return f"{kib(d)} (peak {kib(d, 'VmHWM')})"


def cpu_budget_row(rep: dict) -> str:
    """The operator's CPU per refresh, then every process's (operator, kube-apiserver, etcd, simulator and
    this benchmark), and how many cores they kept busy on average over the phase."""
    by = rep.get("cpu_seconds") or {}
    parts = " + ".join(f"{k} {round(1000 * v / rep['refreshes'], 1)}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])
                       if rep.get("refreshes") and v)
    return f"{rep.get('cpu_ms_per_refresh_operator')}; {rep.get('cpu_ms_per_refresh_all')} ({parts}) ({rep.get('cores_busy')} cores)"


def writes_row(rep: dict) -> str:
    per = rep["kube_writes_per_refresh"]
    parts = " / ".join(f"{per.get(k, 0):g}" for k in ("secret", "status", "event"))
    others = {k: v for k, v in per.items() if k not in ("secret", "status", "event")}
    return f"{rep['kube_writes_total_per_refresh']} ({parts}{''.join(f', {k} {v:g}' for k, v in others.items())})"


def gets_row(rep: dict) -> str:
    gets = rep["kube_gets_per_refresh"]
    detail = ", ".join(f"{k[4:]} {v:g}" for k, v in sorted(gets.items()))
    return f"{round(sum(gets.values()), 2)} ({detail or 'none'})"


def summary(bench: Bench, meta: dict) -> str:
    res, errors = bench.results, bench.errors
    lines = [
        "operator_scale results",
        f"{meta['date']}  cpus={meta['cpus']}  load average at start {meta['load_start']}, at end "
        f"{meta['load_end']}  tokens={meta['tokens']}  tokens-per-app={meta['tokens_per_app']}  "
        f"app-refresh-rate={meta['app_refresh_rate']}{'  (smoke)' if meta['smoke'] else ''}",
    ]
    rows: list[tuple[str, str]] = []

    def section(name: str, title: str, fill) -> None:
        if name not in res:
            return
        rows.append((f"[{title}]", f"(phase {res[name].get('phase_s')} s, load after {res[name].get('load')})"))
        if name in errors:
            rows.append(("  FAILED", errors[name]))
        r = res[name]
        for label, fn in fill:
            try:
                v = fn(r)
            except (KeyError, TypeError, ZeroDivisionError, ValueError):
                continue  # not measured (the phase failed before it)
            rows.append((f"  {label}", "-" if v is None else str(v)))

    lat = lambda r, key="latency_s": "{p50} / {p99} / {max}".format(**r[key])  # noqa: E731
    section("cold_start", "1 cold start: N tokens present before the operator starts", [
        ("tokens / apps", lambda r: f"{r['tokens']} / {r['apps']}"),
        ("preparation (apps, Secrets, tokens) (s)", lambda r: f"{r['prepare_s']} (tokens {r['token_create_rate_per_s']}/s)"),
        ("exec -> 'operator started' (s)", lambda r: r["exec_to_operator_started_s"]),
        ("exec -> first target Secret (s)", lambda r: r["exec_to_first_secret_s"]),
        ("exec -> all target Secrets (s)", lambda r: r["exec_to_all_secrets_s"]),
        ("publish rate, 'started' -> last (Secrets/s)", lambda r: r["publish_rate_per_s"]),
        ("HubSpot token calls / refresh", lambda r: r["hubspot_calls_per_refresh"]),
        ("max HubSpot calls in 1 s", lambda r: r["calls_timeline"]["max_per_1s"]),
        ("kube writes / refresh (secret/status/event)", writes_row),
        ("kube GETs / refresh", gets_row),
        ("operator CPU ms / refresh (incl. start-up)", lambda r: r["cpu_ms_per_refresh_operator"]),
        ("RSS after", lambda r: rss(r["rss_kib"])),
    ])
    section("initial_issue", "1' initial issue: operator first, then N tokens created", [
        ("exec -> 'operator started' (s)", lambda r: r["exec_to_operator_started_s"]),
        ("create rate (tokens/s)", lambda r: r["token_create_rate_per_s"]),
        ("create -> Secret p50 / p99 / max (s)", lat),
        ("HubSpot token calls / refresh", lambda r: r["hubspot_calls_per_refresh"]),
        ("kube writes / refresh (secret/status/event)", writes_row),
        ("kube GETs / refresh", gets_row),
        ("RSS idle, then with N tokens", lambda r: f"{kib(r['rss_idle_kib'])}, {rss(r['rss_kib'])}"),
    ])
    section("round", "2 round: every token due at once (routine refresh)", [
        ("refreshes", lambda r: r["refreshes"]),
        ("first / last Secret after the jump (s)", lambda r: f"{r['first_secret_s']} / {r['last_secret_s']}"),
        ("refresh rate first -> last (/s)", lambda r: r["refresh_rate_per_s"]),
        ("HubSpot token calls / refresh", lambda r: r["hubspot_calls_per_refresh"]),
        ("max HubSpot calls in 1 s", lambda r: r["calls_timeline"]["max_per_1s"]),
        ("kube writes / refresh (secret/status/event)", writes_row),
        ("kube GETs / refresh", gets_row),
        ("reconciles / refresh", lambda r: r["reconciles_per_refresh"]),
        ("operator CPU ms / refresh", lambda r: r["cpu_ms_per_refresh_operator"]),
        ("CPU ms / refresh: operator; all processes (cores busy)", cpu_budget_row),
        ("RSS after", lambda r: rss(r["rss_kib"])),
    ])
    section("probe", "3 probe: restore a deleted target Secret", [
        ("idle (s)", lambda r: r["restore_idle_s"]),
        ("during a round (s)", lambda r: f"{r['restore_during_round_s']} (deleted at {r['deleted_at_s']} s, "
                                         f"round done at {r['round_last_secret_s']} s)"),
    ])
    section("restart", "4 restart: all published, none due", [
        ("tokens", lambda r: r["tokens"]),
        ("SIGTERM -> exit (s)", lambda r: r["sigterm_to_exit_s"]),
        ("start -> 'operator started' (s)", lambda r: r["start_to_operator_started_s"]),
        ("start -> first / all reconciled (s)",
         lambda r: f"{r['start_to_first_reconcile_s']} / {r['start_to_all_reconciled_s']}"),
        ("mean reconcile (ms)", lambda r: r["mean_reconcile_ms"]),
        ("HubSpot token calls in the window (expect 0)", lambda r: f"{r['hubspot_token_calls']} in {r['window_s']} s"),
        ("kube writes in the window (expect 0)", lambda r: int(sum(r["kube_writes"].values()))),
        ("RSS before / after the restart", lambda r: f"{kib(r['rss_before_kib'])} / {kib(r['rss_kib'])}"),
    ])
    section("create", "5 tokens created while it runs", [
        ("tokens, target rate -> achieved (/s)",
         lambda r: f"{r['tokens']}, {r['target_rate_per_s']} -> {r['achieved_rate_per_s']}"),
        ("create -> Secret p50 / p99 / max (s)", lat),
        ("HubSpot token calls / refresh", lambda r: r["hubspot_calls_per_refresh"]),
        ("kube writes / refresh (secret/status/event)", writes_row),
        ("kube GETs / refresh; reconciles / refresh", lambda r: f"{gets_row(r)}; {r['reconciles_per_refresh']}"),
        ("CPU ms / refresh: operator; all processes (cores busy)", cpu_budget_row),
    ])
    section("unrelated", "4b Secrets no token uses (4 KiB each), created while it runs", [
        ("Secrets created", lambda r: r["secrets"]),
        ("operator RSS before / after", lambda r: f"{rss(r['rss_before_kib'])} / {rss(r['rss_kib'])}"),
        ("Secret cache entries before / after", lambda r: f"{r['cache_entries_before']:.0f} / {r['cache_entries_after']:.0f}"),
        ("reconciles they caused (expect 0)", lambda r: f"{r['reconciles']:.0f}"),
        ("operator CPU while they were written (s)", lambda r: r["operator_cpu_s"]),
    ])
    section("fanout", "6 fan-out: tokens sharing installs", [
        ("tokens / installs", lambda r: f"{r['tokens']} / {r['grants']}"),
        ("HubSpot token calls / refresh", lambda r: f"{r['hubspot_calls_per_refresh']} "
                                                    f"({r['hubspot_token_calls']}/{r['refreshes']})"),
        ("create -> Secret p50 / p99 / max (s)", lat),
    ])
    section("lateness", "7 refresh lateness, steady state", [
        ("tokens, lifetime, refresh every (s)", lambda r: f"{r['tokens']}, {r['lifetime_s']}, {r['refresh_period_s']}"),
        ("refreshes measured (expected)", lambda r: f"{r['refreshes']} in {r['window_s']} s (~{r['expected_refreshes']})"),
        ("seen - nextRefreshAt p50 / p99 / max (s)", lambda r: lat(r, "seen_minus_due_s")),
        ("lastRefreshTime - nextRefreshAt p99 / max (s, whole s)",
         lambda r: f"{r['last_refresh_time_minus_due_s']['p99']} / {r['last_refresh_time_minus_due_s']['max']}"),
        ("seen - exact due time p50 / p99 / max (s)", lambda r: lat(r, "seen_minus_exact_due_s")),
    ])
    section("raw_writes", "8 publish throughput vs a plain client", [
        ("plain client: Secrets, threads, body bytes",
         lambda r: f"{r['secrets']}, {r['threads']}, {r['body_bytes']}" + (f" ({r['errors']} errors)" if r["errors"] else "")),
        ("plain client create rate (Secrets/s)", lambda r: r["per_second"]),
        ("plain client create latency p50 / p99 (s)", lambda r: f"{r['latency_s']['p50']} / {r['latency_s']['p99']}"),
        ("operator cold-start publish rate (Secrets/s)", lambda r: res["cold_start"]["publish_rate_per_s"]),
        ("ratio plain / operator", lambda r: round(r["per_second"] / res["cold_start"]["publish_rate_per_s"], 1)),
        ("operator round refresh rate (Secrets/s); as % of plain",
         lambda r: "-" if not (res.get("round") or {}).get("refresh_rate_per_s") else
         f"{res['round']['refresh_rate_per_s']}; {100 * res['round']['refresh_rate_per_s'] / r['per_second']:.0f}%"),
    ])
    section("failover", "9 failover: leader SIGKILLed mid-round", [
        ("tokens; lease flags", lambda r: f"{r['tokens']}; {r['lease']}"),
        ("leader start -> 'operator started' (s)", lambda r: r["a_start_to_operator_started_s"]),
        ("standby start -> 'standby:' (s)", lambda r: r["b_start_to_standby_s"]),
        ("killed at (s after jump; Secrets published)", lambda r: f"{r['jump_to_kill_s']}; {r['published_before_kill']}"),
        ("kill -> standby 'acquired lease' (s)", lambda r: r["kill_to_acquired_s"]),
        ("kill -> standby 'operator started' (s)", lambda r: r["kill_to_operator_started_s"]),
        ("jump -> round complete (s)", lambda r: r["jump_to_round_done_s"]),
        ("kill -> round complete (s)", lambda r: r["kill_to_round_done_s"]),
        ("HubSpot token calls in the round", lambda r: f"{r['hubspot_token_calls']} for {r['tokens']} tokens"),
        ("installs refreshed twice in the round", lambda r: r["installs_refreshed_twice"]),
        ("concurrent_refreshes_of_one_grant (must be 0)", lambda r: r["concurrent_refreshes_of_one_grant"]),
        ("RSS of the new leader", lambda r: rss(r["survivor_rss_kib"])),
    ])
    width = max(len(label) for label, _ in rows) + 2 if rows else 10
    lines += [f"{label:<{width}}{value}" for label, value in rows]
    for note in bench.notes:
        lines.append(f"note: {note}")
    for name, error in errors.items():
        if name not in res:
            lines.append(f"error: {error}")
    lines.append("")
    lines.append("status updates seen by the watch, by what they changed:")
    for phase in ("cold_start", "initial_issue", "round", "restart"):
        seen = res.get(phase, {}).get("status_updates_seen")
        if seen is not None:
            lines.append(f"  {phase:<14} " + (", ".join(f"{k}: {v}" for k, v in sorted(seen.items())) or "none"))
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------------


def kubectl(cluster: LocalCluster, *args: str) -> None:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "PATH": os.pathsep.join(cluster.assets.bin_dirs + [os.environ.get("PATH", "")])}
    out = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()[:500]}")


def install_crd(cluster: LocalCluster) -> None:
    kubectl(cluster, "apply", "--server-side", "-f", str(REPO / "crds" / "hubspottokens.hubspot-operator.dev.yaml"))
    for attempt in range(5):  # right after the apply, `wait` can see NotFound
        try:
            kubectl(cluster, "wait", "--for=condition=Established", "crd/hubspottokens.hubspot-operator.dev",
                    "--timeout=60s")
            return
        except RuntimeError as e:
            if attempt == 4:
                raise
            print(f"  ({e}; retrying)", file=sys.stderr)
            time.sleep(1)


SMOKE = {  # tiny, every phase on: about 2 minutes on 2 vCPUs
    "tokens": 20, "tokens_per_app": 10, "create_tokens": 20, "create_rate": 20.0, "fanout_tokens": 10,
    "fanout_grants": 2, "lateness_tokens": 6, "token_lifetime": 20, "lateness_seconds": 25.0, "herd_seconds": 5.0,
    "raw_count": 0, "unrelated_secrets": 50, "phase_timeout": 120.0,
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    on = argparse.BooleanOptionalAction
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, every phase on (CI); overrides the sizes")
    ap.add_argument("--tokens", type=int, default=200, help="N: tokens present at the cold start (1..20000)")
    ap.add_argument("--tokens-per-app", type=int, default=25, help="tokens per HubSpot app (one install each)")
    ap.add_argument("--app-refresh-rate", type=float, default=None, help="passed to the operator (default: its own)")
    ap.add_argument("--cold-start", action=on, default=True,
                    help="N tokens exist before the operator starts (--no-cold-start: operator first, then tokens)")
    ap.add_argument("--round", action=on, default=True, help="every token due at once")
    ap.add_argument("--probe", action=on, default=True, help="restore a deleted Secret during a round")
    ap.add_argument("--restart", action=on, default=True, help="SIGTERM + start with all tokens published")
    ap.add_argument("--herd-seconds", type=float, default=20.0, help="window after the restart")
    ap.add_argument("--unrelated", action=on, default=True, help="Secrets no token uses, created while it runs")
    ap.add_argument("--unrelated-secrets", type=int, default=None, help="how many (default: N)")
    ap.add_argument("--create", action=on, default=True, help="tokens created while the operator runs")
    ap.add_argument("--create-tokens", type=int, default=None, help="how many (default: N)")
    ap.add_argument("--create-rate", type=float, default=0.0, help="per second; 0: as fast as 8 threads go")
    ap.add_argument("--fanout", action=on, default=True, help="tokens sharing installs")
    ap.add_argument("--fanout-tokens", type=int, default=50)
    ap.add_argument("--fanout-grants", type=int, default=5)
    ap.add_argument("--lateness", action=on, default=True, help="refresh lateness with short-lived tokens")
    ap.add_argument("--lateness-tokens", type=int, default=50)
    ap.add_argument("--token-lifetime", type=int, default=60, help="simulator access-token lifetime (s), >= 15")
    ap.add_argument("--lateness-seconds", type=float, default=120.0, help="steady-state window")
    ap.add_argument("--raw-writes", action=on, default=True, help="a plain client writing Secrets, for comparison")
    ap.add_argument("--raw-count", type=int, default=0, help="Secrets the plain client writes (default: N)")
    ap.add_argument("--raw-threads", type=int, default=8)
    ap.add_argument("--failover", action=on, default=True, help="two operators, leader SIGKILLed mid-round")
    ap.add_argument("--kill-fraction", type=float, default=0.25, help="share of the round published before the kill")
    ap.add_argument("--phase-timeout", type=float, default=900.0, help="deadline of each wait for a whole population")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the state directory (logs) afterwards")
    ap.add_argument("--profile", type=Path, help="sample every operator process with py-spy into DIR (raw stacks)")
    args = ap.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = args.profile
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    if args.create_tokens is None:
        args.create_tokens = min(args.tokens, 10000)
    args.raw_count = args.raw_count or args.tokens
    if args.unrelated_secrets is None:
        args.unrelated_secrets = args.tokens
    if not 1 <= args.tokens <= 20000 or not 0 <= args.create_tokens <= 10000 or not 0 <= args.fanout_tokens <= 2000:
        ap.error("--tokens must be within 1..20000, --create-tokens 0..10000, --fanout-tokens 0..2000")
    if args.fanout_tokens and not 1 <= args.fanout_grants <= args.fanout_tokens:
        ap.error("--fanout-grants must be within 1..--fanout-tokens")
    if args.token_lifetime < 15 or args.tokens_per_app < 1 or not 0 < args.kill_fraction < 1:
        ap.error("--token-lifetime must be >= 15, --tokens-per-app >= 1, --kill-fraction within (0, 1)")
    return args


def main() -> int:
    args = parse_args()
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_start": loadavg(),
        "tokens": args.tokens,
        "tokens_per_app": args.tokens_per_app,
        "app_refresh_rate": args.app_refresh_rate or "default (8)",
        "smoke": args.smoke,
        "argv": sys.argv[1:],
    }
    print(f"operator_scale: load average {meta['load_start']} on {meta['cpus']} CPUs", flush=True)
    state = Path(tempfile.mkdtemp(prefix="hto-bench-"))
    cluster = LocalCluster(state_dir=state / "cluster")
    sim = sampler = watcher = bench = None
    try:
        cluster.start()
        print(f"control plane up in {cluster.started_in:.1f}s ({state})", flush=True)
        install_crd(cluster)
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        api = client.ApiClient(cfg)
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=OPERATOR_NS)))
        sim = Simulator(state / "hubspot-sim.log")
        sampler = CallSampler(sim)
        watcher = Watcher(api)
        bench = Bench(args, cluster, api, sim, sampler, watcher, state)

        first = ("cold_start", bench.cold_start) if args.cold_start else ("initial_issue", bench.initial_issue)
        if bench.run_phase(first[0], first[1], args.tokens):
            plan = [
                (args.round, "round", bench.round, ()),
                (args.probe, "probe", bench.probe, ()),
                (args.restart, "restart", bench.restart, ()),
                (args.unrelated and args.unrelated_secrets, "unrelated", bench.unrelated, (args.unrelated_secrets,)),
                (args.create and args.create_tokens, "create", bench.create_phase, (args.create_tokens, args.create_rate)),
                (args.fanout and args.fanout_tokens, "fanout", bench.fanout, (args.fanout_tokens, args.fanout_grants)),
                (args.lateness and args.lateness_tokens, "lateness", bench.lateness,
                 (args.lateness_tokens, args.token_lifetime, args.lateness_seconds)),
                (True, "stop", bench.stop_operator, ()),
                (args.raw_writes, "raw_writes", bench.raw_writes, (args.raw_count, args.raw_threads)),
                (args.failover, "failover", bench.failover, (args.kill_fraction,)),
            ]
            try:
                for enabled, name, fn, fn_args in plan:
                    if enabled:
                        bench.run_phase(name, fn, *fn_args)
            except KeyboardInterrupt:
                bench.errors["interrupted"] = "KeyboardInterrupt: the remaining phases did not run"
            bench.results.pop("stop", None)
    finally:
        if bench:
            bench.stop_all()
        if watcher:
            watcher.stop()
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

    print()
    print(summary(bench, meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": bench.results, "errors": bench.errors,
                                         "notes": bench.notes},
                                        indent=2, default=str))
        print(f"raw results: {args.json}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
