"""A real, local Kubernetes control plane without Docker.

etcd, kube-apiserver (RBAC, token auth, ServiceAccount token signing), kube-controller-manager,
kube-scheduler and kwok (one fake node, so pods "run" and rollouts complete). Every component is a
child process in its own session, logging to a file under the state directory; `pids.json` there lets
another process (``make cluster-down``) stop exactly what was started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .assets import Assets, find_assets

ADMIN_USER = "admin"
NODE_NAME = "kwok-node-0"
STATE_FILE = "pids.json"


class ClusterError(RuntimeError):
    """The control plane failed to start; the message names the component and its log file."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None


@dataclass
class LocalCluster:
    """Starts and stops the control plane; `kubeconfig` is usable once `start()` returns."""

    state_dir: Path
    assets: Assets | None = None
    timeout: float = float(os.environ.get("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "90").rstrip("s"))
    components: list[Component] = field(default_factory=list)
    admin_token: str = ""
    api_port: int = 0
    started_in: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "LocalCluster":
        t0 = time.monotonic()
        if self.assets is None:
            self.assets = find_assets()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        try:
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfigs()
            self._start_controllers()
            self._start_kwok()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0
        return self

    def stop(self) -> None:
        for comp in reversed(self.components):
            if comp.proc and comp.proc.poll() is None:
                _terminate(comp.proc.pid)
        for comp in reversed(self.components):
            if comp.proc:
                try:
                    comp.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    _kill(comp.proc.pid)
        self.components.clear()
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)

    # ---- components ------------------------------------------------------------------------------

    # ---- fault injection: the API server going away and coming back ----------------------------------

    def stop_apiserver(self, timeout: float = 15.0) -> None:
        """Stops kube-apiserver alone (SIGTERM, then SIGKILL after `timeout`); etcd, the controllers and
        kwok keep running. `start_apiserver()` brings the same server back."""
        _stop(self._component("kube-apiserver"), timeout)
        self._record_pids()

    def start_apiserver(self) -> None:
        """Restarts a stopped kube-apiserver with the argv it was first started with: the same port,
        certificates (kept in the cert dir), ServiceAccount keys and admin token, so existing kubeconfigs
        and clients keep working. Returns once it serves requests again; a no-op if it is running."""
        comp = self._component("kube-apiserver")
        if comp.proc is not None and comp.proc.poll() is None:
            return
        self._launch(comp)
        self._record_pids()
        self._poll("kube-apiserver", lambda: self._api_ok("/readyz"))
        self._poll("kube-apiserver", lambda: self._api_ok("/api/v1/namespaces/default"))
        # The controllers' and kwok's watches come back only after client-go's backoff and a relist, which
        # was measured at ~100 s after a 30 s outage: long enough for the next test's Deployment to wait
        # in vain. They hold no state of their own (no leader election), so restart them now instead.
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            comp = next((c for c in self.components if c.name == name), None)
            if comp is not None:
                _stop(comp, 10.0)
                self._launch(comp)
        self._record_pids()

    @property
    def apiserver_running(self) -> bool:
        comp = next((c for c in self.components if c.name == "kube-apiserver"), None)
        return bool(comp and comp.proc and comp.proc.poll() is None)

    def _component(self, name: str) -> Component:
        comp = next((c for c in self.components if c.name == name), None)
        if comp is None:
            raise ClusterError(f"{name} is not part of this cluster (was start() called?)")
        return comp

    # ---- plumbing for components -------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Component:
        comp = Component(name, argv, self.logs_dir / f"{name}.log")
        self._launch(comp)
        self.components.append(comp)
        self._record_pids()
        return comp

    def _launch(self, comp: Component) -> None:
        out = open(comp.log, "ab")
        try:
            comp.proc = subprocess.Popen(
                comp.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.state_dir,
            )
        finally:
            out.close()

    def _record_pids(self) -> None:
        # Only live processes: a stopped component's pid may be reused by an unrelated process.
        data = {c.name: c.proc.pid for c in self.components if c.proc and c.proc.poll() is None}
        (self.state_dir / STATE_FILE).write_text(json.dumps(data))

    def _start_etcd(self) -> None:
        self.etcd_port, peer = free_port(), free_port()
        data = self.state_dir / "etcd-data"
        url = f"http://127.0.0.1:{self.etcd_port}"
        self._spawn(
            "etcd",
            [
                str(self.assets["etcd"]),
                f"--data-dir={data}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )
        self._poll("etcd", lambda: _http_ok(f"{url}/health"))

    def _start_apiserver(self) -> None:
        certs = self.state_dir / "certs"
        certs.mkdir(exist_ok=True)
        sa_key, sa_pub = certs / "sa.key", certs / "sa.pub"
        if not sa_key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True, capture_output=True)
            subprocess.run(
                ["openssl", "rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)],
                check=True,
                capture_output=True,
            )
        self.admin_token = secrets.token_hex(24)
        tokens = certs / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        self.api_port = free_port()
        self._spawn(
            "kube-apiserver",
            [
                str(self.assets["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--cert-dir={certs}",
                f"--secure-port={self.api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--service-account-issuer=https://127.0.0.1:{self.api_port}/",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                f"--token-auth-file={tokens}",
                "--anonymous-auth=true",
                "--enable-priority-and-fairness=false",
                "--max-requests-inflight=0",
                "--max-mutating-requests-inflight=0",
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
        )
        self._poll("kube-apiserver", lambda: self._api_ok("/readyz"))
        self._poll("kube-apiserver", lambda: self._api_ok("/api/v1/namespaces/default"))

    def _write_kubeconfigs(self) -> None:
        ca = self.state_dir / "certs" / "apiserver.crt"
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "hto-local", "cluster": {"server": self.server, "certificate-authority": str(ca)}}
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.admin_token}}],
            "contexts": [{"name": "hto-local", "context": {"cluster": "hto-local", "user": ADMIN_USER}}],
            "current-context": "hto-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg))
        self.kubeconfig.chmod(0o600)

    def _start_controllers(self) -> None:
        certs = self.state_dir / "certs"
        self._spawn(
            "kube-controller-manager",
            [
                str(self.assets["kube-controller-manager"]),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--service-account-private-key-file={certs / 'sa.key'}",
                f"--root-ca-file={certs / 'apiserver.crt'}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-ttl,-bootstrapsigner,-tokencleaner",
                "--node-monitor-grace-period=60s",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.assets["kube-scheduler"]),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )

    def _start_kwok(self) -> None:
        self._spawn(
            "kwok",
            [
                str(self.assets["kwok"]),
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.0.0.0/24",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{free_port()}",
                f"--config={self.assets.stages}",
            ],
        )
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": NODE_NAME,
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "500"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "500"},
            },
        }
        self._api("POST", "/api/v1/nodes", node, ok=(201, 409))

    def _wait_ready(self) -> None:
        def node_ready() -> bool:
            status, body = self._api("GET", f"/api/v1/nodes/{NODE_NAME}")
            if status != 200:
                return False
            conds = {c["type"]: c["status"] for c in body.get("status", {}).get("conditions", [])}
            taints = body.get("spec", {}).get("taints") or []  # not-ready goes once node-lifecycle sees Ready
            return conds.get("Ready") == "True" and not taints

        def default_sa() -> bool:
            return self._api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

        self._poll("kwok", node_ready)
        self._poll("kube-controller-manager", default_sa)

    # ---- plumbing --------------------------------------------------------------------------------

    def _poll(self, component: str, check, interval: float = 0.1) -> None:
        deadline = time.monotonic() + self.timeout
        comp = next((c for c in self.components if c.name == component), None)
        while time.monotonic() < deadline:
            for c in self.components:
                if c.proc and c.proc.poll() is not None:
                    raise ClusterError(
                        f"{c.name} exited with code {c.proc.returncode}; last lines of {c.log}:\n{_tail(c.log)}"
                    )
            try:
                if check():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(interval)
        log = comp.log if comp else self.logs_dir
        raise ClusterError(f"{component} not ready after {self.timeout:.0f}s; see {log}:\n{_tail(log)}")

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _api(self, method: str, path: str, body: dict | None = None, ok=(200,)) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=5) as resp:
                raw = resp.read()
                try:
                    return resp.status, json.loads(raw or b"{}")
                except ValueError:  # /readyz answers plain "ok"
                    return resp.status, {}
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return e.code, {}
            if method != "GET":
                raise ClusterError(f"{method} {path} -> {e.code}: {e.read()[:500]!r}") from None
            return e.code, {}

    def _api_ok(self, path: str) -> bool:
        return self._api("GET", path)[0] == 200


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_recorded(state_dir: Path) -> list[str]:
    """Stops a cluster started by another process (``make cluster-up``), from its pids file."""
    pids_file = state_dir / STATE_FILE
    stopped: list[str] = []
    if pids_file.exists():
        pids = json.loads(pids_file.read_text())
        for name, pid in reversed(list(pids.items())):
            _terminate(pid)
            stopped.append(name)
        deadline = time.monotonic() + 10
        for pid in pids.values():
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                _kill(pid)
        pids_file.unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        # A zombie child of ours counts as gone.
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _stop(comp: Component, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout`; nothing if it is not running."""
    if comp.proc is None or comp.proc.poll() is not None:
        return
    _terminate(comp.proc.pid)
    try:
        comp.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(comp.proc.pid)
        comp.proc.wait(timeout=10)
