"""Helpers for the fault suite (test_faults.py).

- `FaultOperator`: the operator process of `harness.Operator`, scoped to one namespace, that can also be
  killed with SIGKILL, stopped with SIGTERM while telling whether it exited on its own, and whose start
  waits for *this* process's "operator started" (the log file is appended to across restarts).
- Probes that ask the HubSpot simulator whether a value still works, without consuming it.
- Admission control: a ValidatingAdmissionPolicy that denies UPDATEs of one Secret.
- `wait_all`: poll many objects against one deadline and report which never got there.
- `Tally`: what was injected and what was lost, printed at the end of a test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from kubernetes import client

from tests.cluster import tokens as t
from tests.cluster.harness import Operator, Simulator

TOKEN_ROUTE = "POST /oauth/2026-03/token"
REFRESH_ANNOTATION = "hubspot-operator.dev/refresh-requested-at"
SCOPES = ["oauth", "crm.objects.contacts.read"]


class FaultOperator(Operator):
    """`hubspot-token-operator run --namespace NS` that a test may kill, stop and restart at will."""

    def start(self, *extra_args: str, ready: str = "operator started") -> "FaultOperator":
        mark = self.mark()
        super().start(*extra_args, ready=ready)  # returns at once when an earlier run already logged `ready`
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"operator exited during start-up; see {self.log_path}:\n{self.tail()}")
            if ready in self.logs()[mark:]:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"operator did not log {ready!r} within 45s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no handler, no cleanup, no last write."""
        assert self.proc is not None, "operator is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_log()
        self.proc = None

    def terminate(self, grace: float = 15.0) -> bool:
        """SIGTERM, as Kubernetes does on pod deletion; SIGKILL after `grace` seconds (the pod's
        terminationGracePeriodSeconds). True if the process exited on its own within the grace."""
        assert self.proc is not None, "operator is not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
            graceful = True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            graceful = False
        self._close_log()
        self.proc = None
        return graceful

    def stop(self) -> None:
        super().stop()
        self._close_log()

    def _close_log(self) -> None:
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()

    def mark(self) -> int:
        try:
            return len(self.logs())
        except FileNotFoundError:
            return 0

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logs().splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def health_report(self) -> str:
        """The operator's own /healthz answer (body included), for failure reports."""
        import httpx

        try:
            r = httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5)
            return f"/healthz {r.status_code}: {r.text[:500]}"
        except httpx.HTTPError as e:
            return f"/healthz unreachable: {type(e).__name__}"

    def grep(self, pattern: str, since: int = 0, limit: int = 12) -> list[str]:
        """Log lines matching `pattern` (a regex), the last `limit` of them: for failure reports."""
        rx = re.compile(pattern)
        hits = [line for line in self.logs()[since:].splitlines() if rx.search(line)]
        return hits[-limit:]


def new_operator(cluster, sim: Simulator, namespace: str, log_path: Path) -> FaultOperator:
    # The operator namespace (where the fingerprint-key Secret lives) is the test namespace itself, so an
    # operator of this suite touches nothing outside its own namespace.
    return FaultOperator(cluster.kubeconfig, sim, log_path, namespace, scope=("--namespace", namespace))


# ---- HubSpot-side probes (non-consuming) ----------------------------------------------------------


def refresh_token_live(sim: Simulator, refresh_token: str | None) -> bool:
    """Does HubSpot (the simulator) still honour this refresh token? Uses the v1 metadata GET, which does
    not rotate it, unlike a refresh would."""
    if not refresh_token:
        return False
    return sim.http.get(f"/oauth/v1/refresh-tokens/{refresh_token}").status_code == 200


def bearer_hub(sim: Simulator, access_token: str | None) -> int | None:
    """The hub an access token works for right now (Bearer call), or None if HubSpot refuses it."""
    if not access_token:
        return None
    r = sim.http.get("/account-info/2026-03/details", headers={"Authorization": f"Bearer {access_token}"})
    return r.json().get("portalId") if r.status_code == 200 else None


def token_calls(sim: Simulator, status: str | None = None) -> int:
    by_status = sim.stats().get("requests", {}).get(TOKEN_ROUTE) or {}
    return sum(by_status.values()) if status is None else by_status.get(status, 0)


def sim_now(sim: Simulator) -> float:
    return float(sim.http.get("/_sim/clock").json()["now"])


# ---- Kubernetes-side helpers -------------------------------------------------------------------------


def setup_app(sim: Simulator, core: client.CoreV1Api, namespace: str) -> dict:
    app = sim.create_app()
    t.put_secret(core, namespace, "hubspot-app", {"client_id": app["client_id"], "client_secret": app["client_secret"]})
    t.remember(app["client_secret"])
    return app


def install(sim: Simulator, core, namespace: str, app: dict, name: str, hub: int) -> str:
    rt = sim.install(app["client_id"], hub, SCOPES)
    t.put_secret(core, namespace, f"{name}-install", {"refresh_token": rt})
    return rt


def request_refresh(custom, namespace: str, name: str, value: str) -> None:
    t.patch(custom, namespace, name, {"metadata": {"annotations": {REFRESH_ANNOTATION: value}}})


def status(custom, namespace: str, name: str) -> dict:
    return t.get(custom, namespace, name).get("status") or {}


def cond_status(obj_or_status: dict, ctype: str) -> dict:
    conds = obj_or_status.get("conditions")
    if conds is None:
        conds = (obj_or_status.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == ctype), {})


def published(obj: dict, after_request: str | None = None, not_fingerprint: str | None = None) -> bool:
    """Ready=True/TokenPublished (optionally: for this refresh request, with a new token fingerprint)."""
    st = obj.get("status") or {}
    ready = cond_status(st, "Ready")
    if ready.get("status") != "True" or ready.get("reason") != "TokenPublished":
        return False
    if after_request is not None and st.get("lastRefreshRequest") != after_request:
        return False
    if not_fingerprint is not None and st.get("tokenFingerprint") in (None, not_fingerprint):
        return False
    return True


def warning_reasons(core, namespace: str, name: str) -> list[str]:
    return [e.reason for e in t.events(core, namespace, name) if e.type == "Warning"]


def wait_all(names: Iterable[str], check: Callable[[str], bool], timeout: float, interval: float = 0.25) -> set[str]:
    """Polls `check(name)` for every name until all pass or `timeout` runs out; returns those that never did.
    An exception in `check` counts as "not yet"."""
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            try:
                if check(name):
                    pending.discard(name)
            except Exception:  # noqa: BLE001 - transient API errors: keep polling
                pass
        if pending:
            time.sleep(interval)
    return pending


def poll_until(check: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    """Like helpers.wait_for but returns None at the deadline instead of failing (for fault timing, where a
    missed signal is reported rather than fatal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001
            value = None
        if value:
            return value
        time.sleep(interval)
    return None


# ---- admission: deny UPDATEs of one Secret ---------------------------------------------------------


def deny_secret_updates(api: client.ApiClient, namespace: str, secret: str) -> str:
    """A ValidatingAdmissionPolicy + binding (admissionregistration.k8s.io/v1) that refuses every UPDATE of
    Secret `namespace/secret`. Returns the name of both objects (cluster-scoped)."""
    name = f"hto-fault-deny-{namespace}-{secret}"[:63].rstrip("-")
    adm = client.AdmissionregistrationV1Api(api)
    adm.create_validating_admission_policy({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                    "resources": ["secrets"], "resourceNames": [secret],
                }],
            },
            "validations": [{
                "expression": "false",
                "message": "fault injection: updates of this Secret are denied",
                "reason": "Forbidden",
            }],
        },
    })
    adm.create_validating_admission_policy_binding({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    })
    return name


def remove_policy(api: client.ApiClient, name: str) -> None:
    adm = client.AdmissionregistrationV1Api(api)
    for delete in (adm.delete_validating_admission_policy_binding, adm.delete_validating_admission_policy):
        try:
            delete(name)
        except client.ApiException as e:
            if e.status != 404:
                raise


def update_denied(core: client.CoreV1Api, namespace: str, secret: str) -> bool:
    """Whether an UPDATE of the Secret is refused right now (a server-side dry run: nothing changes).
    Admission policies take effect asynchronously, so tests poll this before relying on them."""
    obj = core.read_namespaced_secret(secret, namespace)
    try:
        core.replace_namespaced_secret(secret, namespace, obj, dry_run="All")
    except client.ApiException as e:
        if e.status in (403, 422):
            return True
        raise
    return False


# ---- the session-wide operator ----------------------------------------------------------------------


def cluster_wide_operator_pids() -> list[int]:
    """Child processes of this pytest process running `hubspot-token-operator run --all-namespaces`."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if any(a.endswith(b"hubspot-token-operator") for a in argv) and b"--all-namespaces" in argv:
            if (stat.rsplit(")", 1)[1].split()[0]) != "Z":
                found.append(int(entry.name))
    return found


# ---- figures -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What a test injected and what it lost; printed at the end (pytest -s shows it)."""

    test: str
    figures: dict[str, object] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)

    def set(self, **kv: object) -> None:
        self.figures.update(kv)

    def add(self, key: str, n: int = 1) -> None:
        self.figures[key] = int(self.figures.get(key, 0)) + n  # type: ignore[arg-type]

    def finding(self, message: str) -> None:
        """A violated expectation that does not stop the test (so later phases still run and report)."""
        self.findings.append(message)

    def report(self) -> str:
        width = max((len(k) for k in self.figures), default=0)
        lines = [f"== {self.test} =="]
        lines += [f"  {k.ljust(width)} : {v}" for k, v in self.figures.items()]
        if self.findings:
            lines.append("  findings:")
            lines += [f"   - {f}" for f in self.findings]
        return "\n".join(lines)

    def print_and_check(self) -> None:
        print("\n" + self.report(), flush=True)
        assert not self.findings, f"{self.test}: {len(self.findings)} finding(s):\n  " + "\n  ".join(self.findings)


def secrets_in(text: str) -> list[str]:
    """Secret values this session has seen (tokens.SEEN_SECRETS) that appear in `text`, abbreviated."""
    return [s[:6] + "..." for s in t.SEEN_SECRETS if len(s) >= 16 and s in text]


def run_without_session_operator(request, what: str):
    """Body of a module-scoped fixture: stops the session-wide (all-namespaces) operator while the module
    runs, if it was started, fails if any other cluster-wide operator runs, and starts it again afterwards."""
    import pytest

    session_op = None
    try:  # pytest keeps a session fixture's value in its FixtureDef once it has been set up
        for fixturedef in request._fixturemanager.getfixturedefs("operator", request.node) or ():
            cached = fixturedef.cached_result
            if cached is not None and cached[2] is None:
                session_op = cached[0]
    except Exception:  # noqa: BLE001 - private API; the process check below still guards us
        session_op = None
    running = session_op is not None and session_op.proc is not None and session_op.proc.poll() is None
    if running:
        print(f"\n{what}: stopping the session-wide operator while this module runs", flush=True)
        session_op.stop()
    stray = cluster_wide_operator_pids()
    if stray:
        pytest.fail(f"a cluster-wide operator (pid {stray}) is running and would reconcile this module's objects")
    try:
        yield
    finally:
        if running:
            session_op.start()
