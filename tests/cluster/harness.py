"""Real processes for cluster tests: the HubSpot simulator and the operator, each over real sockets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


class Simulator:
    """`hubspot-sim --port 0` as a child process, plus a client for its /_sim control API."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> "Simulator":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "hubspot-sim"), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"(http://\S+)", line)
        if not m:
            raise RuntimeError(f"hubspot-sim did not start: {line!r}")
        self.url = m.group(1)
        self.http = httpx.Client(base_url=self.url, timeout=10)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    # control API
    def post(self, path: str, body: dict | None = None) -> dict:
        r = self.http.post(path, json=body or {})
        r.raise_for_status()
        return r.json() if r.content else {}

    def create_app(self) -> dict:
        return self.post("/_sim/apps")

    def install(self, client_id: str, hub_id: int, scopes: list[str]) -> str:
        return self.post("/_sim/installs", {"client_id": client_id, "hub_id": hub_id, "scopes": scopes})["refresh_token"]

    def uninstall(self, refresh_token: str) -> None:
        self.http.delete(f"/_sim/installs/{refresh_token}").raise_for_status()

    def consent(self, hub_id: int, approve: bool = True, scopes: list[str] | None = None) -> dict:
        """What the simulator's consent screen (GET /oauth/authorize) does next: install in hub_id, or deny."""
        return self.post("/_sim/consent", {"hub_id": hub_id, "approve": approve, "scopes": scopes})

    def consent_redirect(self, authorize_url: str) -> str:
        """Visits an install URL as a browser would; returns the redirect target (not followed)."""
        r = self.http.get(authorize_url, follow_redirects=False)
        if r.status_code != 302:
            raise AssertionError(f"authorize answered {r.status_code}: {r.text[:300]}")
        return r.headers["Location"]

    def private_app(self, hub_id: int, scopes: list[str]) -> dict:
        return self.post("/_sim/private-apps", {"hub_id": hub_id, "scopes": scopes})

    def rotate(self, app_id, expire: str) -> str:
        return self.post(f"/_sim/private-apps/{app_id}/rotate", {"expire": expire})["token"]

    def cancel_rotation(self, app_id) -> None:
        """HubSpot's "Cancel rotation" on a pending "expire later" rotation: the new token dies, the old lives."""
        self.post(f"/_sim/private-apps/{app_id}/cancel-rotation")

    def expire_previous(self, app_id) -> None:
        """HubSpot's "Expire now" on a pending rotation: only the newest token keeps working."""
        self.post(f"/_sim/private-apps/{app_id}/expire-previous")

    def config(self, **kw) -> dict:
        return self.post("/_sim/config", kw)

    def advance(self, seconds: float) -> dict:
        return self.post("/_sim/clock", {"advance_seconds": seconds})

    def faults(self, **kw) -> dict:
        return self.post("/_sim/faults", kw)

    def clear_faults(self) -> None:
        self.http.delete("/_sim/faults").raise_for_status()

    def stats(self) -> dict:
        return self.http.get("/_sim/stats").json()

    def calls(self, route: str) -> int:
        """Requests seen for a route, e.g. 'POST /oauth/2026-03/token', all statuses."""
        return sum((self.stats().get("requests", {}).get(route) or {}).values())

    def bearer_ok(self, token: str) -> bool:
        r = self.http.get("/account-info/2026-03/details", headers={"Authorization": f"Bearer {token}"})
        return r.status_code == 200


class Operator:
    """`hubspot-token-operator run` as a child process, logging to a file the tests can grep."""

    def __init__(
        self,
        kubeconfig: Path,
        simulator: Simulator,
        log_path: Path,
        operator_namespace: str,
        scope: tuple[str, ...] = ("--all-namespaces",),
    ) -> None:
        self.scope = scope
        self.kubeconfig = kubeconfig
        self.simulator = simulator
        self.log_path = log_path
        self.operator_namespace = operator_namespace
        self.proc: subprocess.Popen | None = None
        self._log_start = 0  # offset in log_path where the current process's output begins
        # A stable identity for leader election, as a pod name is: a restarted process takes its lease
        # back at once instead of waiting out the lease of its killed predecessor.
        self.extra_env: dict[str, str] = {"POD_NAME": f"operator-{log_path.parent.name}-{os.getpid()}"}
        self.metrics_port = _free_port()
        self.health_port = _free_port()

    def start(self, *extra_args: str, ready: str = "operator started") -> "Operator":
        """Starts the operator and waits for the `ready` log line ("operator started": it leads and works;
        "standby:" for a replica that waits for the lease). The extra arguments are kept for restarts."""
        if extra_args:
            self.extra_args = extra_args
        extra_args = getattr(self, "extra_args", ())
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), **self.extra_env)
        self._log = open(self.log_path, "ab")
        # The log file is appended to across restarts: only this process's "operator started" counts.
        self._log_start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [
                str(BIN / "hubspot-token-operator"), "run", *self.scope,
                "--hubspot-base-url", self.simulator.url,
                "--time-source", "simulator",
                "--operator-namespace", self.operator_namespace,
                "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
                "--log-level", "DEBUG",
                *extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log_path}")
            if ready in self.logs_since_start():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"operator did not log {ready!r} in 30s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logs_since_start(self) -> str:
        """What the current (latest started) operator process has logged."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text

    def healthz(self) -> int:
        return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=10).status_code


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
