"""The demo itself: ``up`` starts everything and tells the story, ``down`` stops it.

Layout of the state directory (``<repo>/demo-state/`` unless ``--state-dir`` says otherwise):

    cluster/            the devcluster (kubeconfig, pids.json, logs/)
    simulator.pid/.log  hubspot-sim
    operator.pid/.log   hubspot-token-operator run (with --real-node: a pod, its output in real-node/pod-logs/)
    real-node/          with --real-node: kubelet and containerd state, pids.json, logs/
    manifests/          the Deployment and HubSpotTokens the demo applied (no Secrets)
    env.sh              `source` it for KUBECONFIG, PATH and SIM
    demo.json           URLs and ports, for `down` and for you

Every wait is bounded. A failure names the step, points at the logs, leaves everything running for
inspection and exits non-zero; ``make demo-down`` cleans up in every case.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from .. import GROUP, PLURAL, VERSION
from ..devcluster import ClusterError, LocalCluster, stop_recorded
from ..devcluster.assets import AssetsMissing, repo_root
from ..devcluster.cluster import free_port
from ..simulator.control_client import SimControl
from . import procs
from . import resources as r
from .narrate import Narrator, Redactor, clock, condition, condition_line, refresh_line, stats_lines

STEPS = 8
WEEK = 7 * 86400
TOKEN_ROUTE = "POST /oauth/2026-03/token"


class DemoFailure(Exception):
    """A step did not complete; the message says what was awaited and for how long."""


def _rel(path: Path) -> str:
    """A path as the user typed `make demo` would see it: relative to the working directory if inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def default_state_dir() -> Path:
    return repo_root() / "demo-state"


def stop_hint(state_dir: Path) -> str:
    if state_dir == default_state_dir():
        return "make demo-down"
    return f"python -m hubspot_token_operator.demo --state-dir {shlex.quote(str(state_dir))} down"


class Demo:
    def __init__(self, state_dir: Path, real_node: bool = False) -> None:
        self.state = state_dir
        self.real_node = real_node
        self.node = None  # devcluster.real_node.RealNode when real_node
        self.cluster_dir = state_dir / "cluster"
        self.kubeconfig = self.cluster_dir / "kubeconfig"
        self.repo = repo_root()
        self.venv_bin = Path(sys.executable).parent
        self.redact = Redactor()
        self.out = Narrator(STEPS, redact=self.redact)
        self.children: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.bin_dirs: list[str] = []
        self.sim_url = ""
        self.metrics_port = 0
        self.sim: SimControl | None = None
        self.private_app_id = 0
        self._api = None

    # ---- plumbing ------------------------------------------------------------------------------------

    def tool(self, name: str) -> str:
        for d in [*self.bin_dirs, str(self.venv_bin)]:
            if (Path(d) / name).exists():
                return str(Path(d) / name)
        found = shutil.which(name)
        if not found:
            raise DemoFailure(f"{name} not found (looked in {', '.join(self.bin_dirs + [str(self.venv_bin)])} and PATH)")
        return found

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([*self.bin_dirs, str(self.venv_bin), os.environ.get("PATH", "")])
        return {**os.environ, procs.MARKER: str(self.state), "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def check_alive(self) -> None:
        for name, (proc, log) in self.children.items():
            if proc.poll() is not None:
                raise DemoFailure(f"the {name} exited with code {proc.returncode}; see {_rel(log)}")

    def wait(self, what: str, check: Callable[[], object], timeout: float, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            self.check_alive()
            try:
                result = check()
                if result:
                    return result
            except DemoFailure:
                raise
            except Exception as e:  # noqa: BLE001 - a busy API server or simulator: keep trying until the deadline
                last_error = f" (last error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            if time.monotonic() >= deadline:
                raise DemoFailure(f"timed out after {timeout:.0f}s waiting for {what}{last_error}")
            time.sleep(interval)

    def run(self, argv: list[str], show: str | None = None, input: str | None = None, timeout: float = 120,
            check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
        """Runs a command (tools resolved to ours), printing ``$ show`` and its output unless quiet."""
        full = [self.tool(argv[0]), *argv[1:]]
        if not quiet:
            self.out.cmd(show or " ".join(shlex.quote(a) for a in argv))
        try:
            p = subprocess.run(full, env=self.env(), input=input, capture_output=True, text=True, timeout=timeout,
                               cwd=self.repo)
        except subprocess.TimeoutExpired:
            raise DemoFailure(f"`{show or argv[0]}` did not finish within {timeout:.0f}s") from None
        if not quiet or p.returncode:
            self.out.output(p.stdout + p.stderr)
        if check and p.returncode:
            raise DemoFailure(f"`{show or ' '.join(argv)}` exited with code {p.returncode}")
        return p

    def kube(self):
        from kubernetes import client, config

        if self._api is None:
            self._api = config.new_client_from_config(config_file=str(self.kubeconfig))
        return client.CoreV1Api(self._api), client.AppsV1Api(self._api), client.CustomObjectsApi(self._api)

    def hst(self, name: str) -> dict:
        return self.kube()[2].get_namespaced_custom_object(GROUP, VERSION, r.NAMESPACE, PLURAL, name)

    def secret_keys(self, name: str) -> list[str]:
        s = self.kube()[0].read_namespaced_secret(name, r.NAMESPACE)
        return sorted((s.data or {}).keys())

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = self.state / f"{name}.log"
        proc = procs.spawn(argv, log, self.env(), cwd=self.state)
        procs.write_pid(self.state / f"{name}.pid", proc.pid)
        self.children[name] = (proc, log)
        return proc

    # ---- the story -----------------------------------------------------------------------------------

    def step_start(self) -> None:
        self.out.step("Starting a local Kubernetes control plane and the HubSpot simulator")
        self.spawn("simulator", [self.tool("hubspot-sim"), "--host", "127.0.0.1", "--port", "0",
                                 "--access-log", "--log-level", "INFO"])
        try:
            cluster = LocalCluster(state_dir=self.cluster_dir).start()
        except (ClusterError, AssetsMissing) as e:
            raise DemoFailure(f"the local control plane did not start: {e}") from None
        self.bin_dirs = list(cluster.assets.bin_dirs)
        self.cluster = cluster
        self.out.say(f"etcd, kube-apiserver, controller-manager, scheduler and kwok (one fake node) ready in "
                     f"{cluster.started_in:.1f}s")
        if self.real_node:
            self.start_real_node(cluster)
        log = self.state / "simulator.log"

        def listening() -> str | None:
            m = re.search(r"hubspot-sim listening on (http://\S+)", log.read_text(errors="replace"))
            return m.group(1) if m else None

        self.sim_url = self.wait("the simulator to listen", listening, timeout=30, interval=0.1)
        self.sim = SimControl(self.sim_url)
        self.out.say(f"HubSpot simulator listening on {self.sim_url} (a stand-in for api.hubapi.com)")

    def start_real_node(self, cluster: LocalCluster) -> None:
        from ..devcluster.images import ImageBuildError, ensure_images
        from ..devcluster.real_node import RealNode

        self.out.say("building (or finding in the cache) the operator image from the Dockerfile, on a Debian "
                     "base made by mmdebstrap: no registry...")
        try:
            images = ensure_images(cluster.assets["pause"], log=lambda m: None)
            node = RealNode(cluster, self.state / "real-node", cluster.assets["kubelet"],
                            images=list(images.archives), sandbox_image=images.pause, image=images.operator)
            node.start()
        except (ClusterError, ImageBuildError) as e:
            raise DemoFailure(f"the real node did not start: {e}") from None
        self.node = node
        self.out.say(f"image {images.operator} ready in {images.seconds:.0f}s (built: "
                     f"{', '.join(images.built) or 'nothing, cached'}); real node {node.ready_in:.1f}s to Ready "
                     "(kubelet + containerd + runc; pods there use hostNetwork)")

    def step_operator(self) -> None:
        self.out.step("Installing the HubSpotToken CRD and starting the operator")
        self.out.say(f"(kubectl is {_rel(Path(self.tool('kubectl')))}, KUBECONFIG={_rel(self.kubeconfig)})")
        crd = self.repo / "crds" / "hubspottokens.hubspot-operator.dev.yaml"
        self.run(["kubectl", "apply", "--server-side", "-f", str(crd)],
                 show=f"kubectl apply --server-side -f {_rel(crd)}")
        self.run(["kubectl", "wait", "--for=condition=Established", "crd/hubspottokens.hubspot-operator.dev",
                  "--timeout=60s"], timeout=90)
        # Established can come a moment before the API server serves the type; let that pass quietly.
        self.wait("the API server to serve hubspottokens", lambda: self.kube()[2].list_cluster_custom_object(
            GROUP, VERSION, PLURAL) is not None, timeout=30, interval=0.3)
        for ns in (r.NAMESPACE, r.OPERATOR_NAMESPACE):
            self.run(["kubectl", "create", "namespace", ns])
        self.sim.configure(access_token_lifetime_seconds=r.ACCESS_TOKEN_LIFETIME)
        self.out.say(f"simulator: access tokens now live {r.ACCESS_TOKEN_LIFETIME}s instead of HubSpot's 30 min, "
                     "so you can watch refreshes")
        self.metrics_port, health_port = free_port(), free_port()
        if self.node is not None:
            self.install_chart(health_port)
            self.write_env()
            return
        argv = ["hubspot-token-operator", "run", "--all-namespaces", "--hubspot-base-url", self.sim_url,
                "--time-source", "simulator", "--operator-namespace", r.OPERATOR_NAMESPACE,
                "--metrics-port", str(self.metrics_port), "--health-port", str(health_port), "--log-format", "text"]
        self.out.cmd(" ".join(argv) + f"  >{_rel(self.state / 'operator.log')} 2>&1 &")
        os.environ["HTO_ROLLOUT_POLL_SECONDS"] = "2"  # check restart progress more often than the default 5 s
        self.spawn("operator", [self.tool(argv[0]), *argv[1:]])
        log = self.state / "operator.log"
        self.wait("the operator to log 'operator started'",
                  lambda: "operator started" in log.read_text(errors="replace"), timeout=60, interval=0.2)
        pid = self.children["operator"][0].pid
        self.out.say(f"operator started (pid {pid}); it follows the simulator's clock (--time-source simulator)")
        self.write_env()

    def install_chart(self, health_port: int) -> None:
        """The operator as a pod on the real node: the chart, the image, the chart's ServiceAccount and RBAC."""
        from ..devcluster.real_node import placement

        repo, tag = self.node.image.rsplit(":", 1)
        place = placement()
        values = {
            "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
            "replicaCount": 1, "hostNetwork": True, "topologySpreadConstraints": [],
            "nodeSelector": place["nodeSelector"], "tolerations": place["tolerations"],
            "metrics": {"port": self.metrics_port}, "health": {"port": health_port},
            "hubspot": {"baseURL": self.sim_url, "allowedURLs": [self.sim_url]},
            "logFormat": "text",
            # no kube-proxy here: the in-cluster config goes to the API server's loopback address
            "extraEnv": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                         {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.cluster.api_port)},
                         {"name": "HTO_TIME_SOURCE", "value": "simulator"},
                         {"name": "HTO_ROLLOUT_POLL_SECONDS", "value": "2"}],
        }
        vfile = self.state / "values-real-node.yaml"
        vfile.write_text(yaml.safe_dump(values))
        chart = self.repo / "charts" / "hubspot-token-operator"
        self.run(["helm", "install", "hto", str(chart), "-n", r.OPERATOR_NAMESPACE, "-f", str(vfile)],
                 show=f"helm install hto {_rel(chart)} -n {r.OPERATOR_NAMESPACE} -f {_rel(vfile)}", timeout=180)
        self.run(["kubectl", "rollout", "status", "deployment/hto-hubspot-token-operator", "-n",
                  r.OPERATOR_NAMESPACE, "--timeout=120s"], timeout=150)
        self.run(["kubectl", "get", "pods", "-n", r.OPERATOR_NAMESPACE, "-o", "wide"])
        self.out.say("the operator runs as a pod from its own image: non-root, read-only root filesystem, the "
                     "chart's probes and RBAC;\nits output is in "
                     f"{_rel(self.node.pod_logs)}/ (kubectl logs cannot reach a node without an address)")

    def step_create(self) -> None:
        self.out.step("Creating two HubSpot credentials and the objects that use them")
        sim = self.sim
        app = sim.create_app()
        self.redact.add(app.client_id, app.client_secret)
        refresh_token = sim.install(app.client_id, r.HUB_ID, r.SCOPES)
        self.redact.add(refresh_token)
        pa = sim.create_private_app(r.HUB_ID, r.REQUIRED_SCOPES)
        self.redact.add(pa.token)
        self.private_app_id = pa.app_id
        self.out.say(f"simulator: OAuth app {app.app_id} installed in hub {r.HUB_ID} (scopes {', '.join(r.SCOPES)})")
        self.out.say(f"simulator: private app {pa.app_id} in hub {r.HUB_ID} (scope {', '.join(r.REQUIRED_SCOPES)})")
        core = self.kube()[0]
        secrets = [
            r.secret("hubspot-app", {"client_id": app.client_id, "client_secret": app.client_secret}),
            r.secret("crm-sync-install", {"refresh_token": refresh_token}),
            r.secret("reporting-source", {"token": pa.token}),
        ]
        for s in secrets:
            core.create_namespaced_secret(r.NAMESPACE, s)
        self.out.say("Secrets created through the API (values are never printed or written to disk):")
        for s in secrets:
            self.out.say(f"  {s['metadata']['name']:<18} keys {', '.join(s['data'])}")
        mdir = self.state / "manifests"
        mdir.mkdir(exist_ok=True)
        image = self.node.image if self.node is not None else None
        for fname, body in (("10-deployment-reporting.yaml", r.deployment(image)),
                            ("20-hubspottoken-crm-sync.yaml", r.oauth_token()),
                            ("30-hubspottoken-reporting.yaml", r.private_app_token())):
            (mdir / fname).write_text(yaml.safe_dump(body, sort_keys=False))
        self.run(["kubectl", "apply", "-f", str(mdir)], show=f"kubectl apply -f {_rel(mdir)}/")
        self.out.say("crm-sync:  OAuth. Refresh the access token into Secret crm-sync-hubspot at 50% of its "
                     "lifetime;\n           hub and scopes pinned, so a token for the wrong portal is never published.")
        self.out.say("reporting: PrivateApp. Verify the token in Secret reporting-source, publish it to Secret "
                     "reporting-hubspot,\n           keep the previous one for 7 days, restart Deployment reporting "
                     "when it changes.")

    def step_ready(self) -> None:
        self.out.step("Waiting for the operator to publish both tokens")

        def ready(name: str):
            obj = self.hst(name)
            return obj if condition(obj, "Ready").get("status") == "True" else None

        crm = self.wait("HubSpotToken crm-sync to be Ready", lambda: ready("crm-sync"), timeout=60)
        rep = self.wait("HubSpotToken reporting to be Ready", lambda: ready("reporting"), timeout=60)
        self.run(["kubectl", "get", "hst", "-n", r.NAMESPACE])
        self.out.say(f"crm-sync:  {refresh_line(crm['status'])}")
        pa = rep["status"].get("privateApp") or {}
        self.out.say(f"reporting: token {rep['status'].get('tokenFingerprint') or '-'} verified with HubSpot "
                     f"(hub {rep['status'].get('hubId')}) and published at {clock(pa.get('publishedAt'))}")
        for target in ("crm-sync-hubspot", "reporting-hubspot"):
            self.out.say(f"Secret {target}: keys {', '.join(self.secret_keys(target))}")
        self.run(["kubectl", "rollout", "status", "deployment/reporting", "-n", r.NAMESPACE, "--timeout=90s"],
                 timeout=120, quiet=True)
        if self.node is None:
            self.out.say("Deployment reporting: 2/2 pods running on the fake kwok node, reading reporting-hubspot")
        else:
            self.out.say("Deployment reporting: 2/2 pods running on the real node; each prints the SHA-256 of "
                         "the token it reads (env and file):")
            self.show_consumers()

    def step_refresh(self) -> None:
        self.out.step("Watching the operator refresh crm-sync's access token, twice")
        self.out.say(f"The token lives {r.ACCESS_TOKEN_LIFETIME}s; the operator refreshes it at {r.REFRESH_PERCENT}% "
                     "of the lifetime HubSpot reported, never waiting for a 401.")
        timeout = r.ACCESS_TOKEN_LIFETIME + 30
        st = self.hst("crm-sync")["status"]
        seen = (st.get("tokenFingerprint"), st.get("lastRefreshTime"))
        for i in (1, 2):
            self.out.say(f"waiting for refresh {i} (due {clock(st.get('nextRefreshAt'))} UTC, giving up after "
                         f"{timeout}s)...")

            def changed():
                s = self.hst("crm-sync")["status"]
                return s if (s.get("tokenFingerprint"), s.get("lastRefreshTime")) != seen else None

            st = self.wait(f"refresh {i} of crm-sync", changed, timeout=timeout)
            seen = (st.get("tokenFingerprint"), st.get("lastRefreshTime"))
            self.out.say(f"refresh {i}: {refresh_line(st)}")
        ready = condition(self.hst("crm-sync"), "Ready")
        self.out.say(f"crm-sync {condition_line(ready)}")

    def step_rotate(self) -> None:
        self.out.step("Rotating the private-app token of reporting")
        self.out.say("In HubSpot, someone rotates the private app's token and picks \"expire later\":\n"
                     "the old token keeps working for 7 more days. The simulator does the same:")
        self.out.cmd(f"curl -XPOST {self.sim_url}/_sim/private-apps/{self.private_app_id}/rotate "
                     "-d '{\"expire\":\"later\"}'   # answer (the new token) kept in memory")
        new = self.sim.rotate_private_app(self.private_app_id, expire="later")
        self.redact.add(new)
        self.out.say("Now hand the new token to the cluster (on stdin, never as an argument):")
        p = self.run(["kubectl-hubspot", "rotate", "reporting", "-n", r.NAMESPACE, "--kubeconfig",
                      str(self.kubeconfig), "--timeout", "90s"],
                     show=f"kubectl-hubspot rotate reporting -n {r.NAMESPACE} --kubeconfig {_rel(self.kubeconfig)}"
                          "   # new token piped on stdin",
                     input=new + "\n", timeout=120, check=False)
        if p.returncode:
            raise DemoFailure(f"kubectl-hubspot rotate exited with code {p.returncode} (2: rejected, 3: timed out)")
        self.out.say(f"Secret reporting-hubspot: keys {', '.join(self.secret_keys('reporting-hubspot'))}\n"
                     "(access_token is the new token; previous_access_token keeps the old one during the overlap)")

    def step_restart(self) -> None:
        self.out.step("Restarting the Deployment that uses the token")
        self.out.say("The operator stamps Deployment reporting's pod template, so Kubernetes rolls out new pods:")
        self.run(["kubectl", "rollout", "status", "deployment/reporting", "-n", r.NAMESPACE, "--timeout=90s"],
                 timeout=120)
        self.run(["kubectl", "get", "replicasets", "-n", r.NAMESPACE, "-l", "app=reporting"])
        dep = self.kube()[1].read_namespaced_deployment("reporting", r.NAMESPACE)
        stamp = (dep.spec.template.metadata.annotations or {}).get("hubspot-operator.dev/restarted-for", "-")
        self.out.say(f"pod template annotation hubspot-operator.dev/restarted-for={stamp}")
        if self.node is not None:
            self.out.say("the new pods on the real node print the new token's SHA-256; the old pods are gone:")
            self.show_consumers()

        def retirable():
            obj = self.hst("reporting")
            return obj if condition(obj, "PreviousTokenRetirable").get("status") == "True" else None

        obj = self.wait("PreviousTokenRetirable=True on reporting", retirable, timeout=60)
        self.out.say(condition_line(condition(obj, "PreviousTokenRetirable")))
        pa = obj["status"].get("privateApp") or {}
        self.out.say(f"previous token {pa.get('previousFingerprint') or '-'} stays published until "
                     f"{pa.get('previousUntil') or '-'} (spec.privateApp.overlap 7d)")
        self.run(["kubectl", "get", "events", "-n", r.NAMESPACE, "--field-selector",
                  "involvedObject.kind=HubSpotToken", "--sort-by=.metadata.resourceVersion"])

    def step_cost(self) -> None:
        self.out.step("HubSpot calls the operator made")
        stats = self.sim.stats()
        for line in stats_lines(stats):
            self.out.say(line)
        tokens = self.sim.count(TOKEN_ROUTE)
        self.out.say(f"{stats.get('total', 0)} calls in all: {TOKEN_ROUTE} = 1 initial issue + {tokens - 1} "
                     "refreshes of crm-sync;\nthe rest verify the private-app token (hub, scopes, still alive).")
        self.out.say(f"demo finished in {self.out.elapsed():.0f}s")

    def show_consumers(self) -> None:
        core = self.kube()[0]

        def printing():
            pods = [p for p in core.list_namespaced_pod(r.NAMESPACE, label_selector="app=reporting").items
                    if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
            last = {p.metadata.name: [ln for ln in self.node.pod_log(r.NAMESPACE, p.metadata.name, "reporting")
                                      .splitlines() if ln.startswith("env=")][-1:] for p in pods}
            return last if len(pods) == 2 and all(last.values()) else None

        for pod, lines in self.wait("the reporting pods to print", printing, timeout=90).items():
            self.out.say(f"  {pod}: {lines[0][:22]}... {lines[0].split(' ')[1][:23]}...")

    def write_env(self) -> None:
        path = os.pathsep.join([*self.bin_dirs, str(self.venv_bin)])
        (self.state / "env.sh").write_text(
            f"export KUBECONFIG={shlex.quote(str(self.kubeconfig))}\n"
            f"export PATH={shlex.quote(path)}:$PATH\n"
            f"export SIM={shlex.quote(self.sim_url)}\n"
        )
        (self.state / "demo.json").write_text(json.dumps({
            "simulator": self.sim_url, "kubeconfig": str(self.kubeconfig), "bin_dirs": self.bin_dirs,
            "metrics": f"http://127.0.0.1:{self.metrics_port}/metrics",
        }, indent=2))

    def poke(self) -> None:
        path = os.pathsep.join([*self.bin_dirs, str(self.venv_bin)])
        sim = self.sim_url
        o = self.out.plain
        o("")
        o("The demo keeps running (crm-sync refreshes every 30s). Poke at it:")
        o("")
        o(f"  export KUBECONFIG={self.kubeconfig}")
        o(f"  export PATH={path}:$PATH")
        o(f"  export SIM={sim}            # or: source {_rel(self.state / 'env.sh')}")
        o("")
        o(f"  kubectl get hst -n {r.NAMESPACE} -w                   # watch refreshes land (Ctrl-C to stop)")
        o(f"  kubectl hubspot status reporting -n {r.NAMESPACE}     # conditions, overlap, restarts, events")
        o(f"  kubectl hubspot refresh crm-sync -n {r.NAMESPACE} --wait   # refresh now")
        o(f"  kubectl get events -n {r.NAMESPACE} --field-selector involvedObject.kind=HubSpotToken "
          "--sort-by=.metadata.resourceVersion")
        o("  curl -s $SIM/_sim/stats                               # HubSpot calls so far")
        o(f"  curl -s -XPOST $SIM/_sim/clock -d '{{\"advance_seconds\":{WEEK}}}'   # a week later: the overlap ends,")
        o(f"      # previous_access_token leaves Secret reporting-hubspot (PreviousTokenDropped event)")
        o(f"  curl -s http://127.0.0.1:{self.metrics_port}/metrics | grep '^hubspot_token.*_total'")
        o(f"  grep -v /_sim/ {_rel(self.state / 'simulator.log')}      # every HubSpot call, one line each")
        o("")
        op_log = self.node.pod_logs if self.node is not None else self.state / "operator.log"
        o(f"  Logs: {_rel(op_log)}{'/ (the operator pod)' if self.node is not None else ''}, "
          f"{_rel(self.state / 'simulator.log')}, {_rel(self.cluster_dir / 'logs')}/")
        o(f"  Manifests applied: {_rel(self.state / 'manifests')}/")
        o(f"  Stop everything: {stop_hint(self.state)}")

    def fail(self, error: BaseException) -> None:
        o = self.out.plain
        o("")
        o(f"DEMO FAILED at step {self.out.number}/{STEPS} ({self.out.current}):")
        o(f"  {error}")
        op_log = self.state / "operator.log"
        if op_log.exists():
            lines = op_log.read_text(errors="replace").splitlines()
            tail = [ln for ln in lines if " succeeded." not in ln][-12:]  # skip Kopf's per-handler chatter
            if tail:
                o(f"  last lines of {_rel(op_log)}:")
                for line in tail:
                    o(f"    {line}")
        o(f"  logs: {_rel(op_log)}, {_rel(self.state / 'simulator.log')}, {_rel(self.cluster_dir / 'logs')}/")
        if self.kubeconfig.exists():
            o(f"  everything is left running for inspection: export KUBECONFIG={self.kubeconfig}")
        o(f"  stop and clean up with: {stop_hint(self.state)}")

    def play(self) -> int:
        self.out.title(f"hubspot-token-operator demo: state in {_rel(self.state)}/, stop with `{stop_hint(self.state)}`")
        try:
            for step in (self.step_start, self.step_operator, self.step_create, self.step_ready,
                         self.step_refresh, self.step_rotate, self.step_restart, self.step_cost):
                step()
        except KeyboardInterrupt:
            self.fail(DemoFailure("interrupted"))
            return 130
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way, with the step
            if not isinstance(e, DemoFailure):
                e = DemoFailure(f"{type(e).__name__}: {str(e)[:500]}")
            self.fail(e)
            return 1
        self.poke()
        return 0


def up(state_dir: Path, real_node: bool = False) -> int:
    running = procs.find_ours(state_dir)
    if running:
        print(f"a demo is already running from {_rel(state_dir)}/ (pids {', '.join(map(str, running))}); "
              f"stop it first with: {stop_hint(state_dir)}", file=sys.stderr)
        return 1
    if state_dir.exists():
        print(f"removing {_rel(state_dir)}/ left over from an earlier demo that is no longer running")
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    # Inherited by every process started from here on (the devcluster's too): `down` stops only these.
    os.environ[procs.MARKER] = str(state_dir)
    return Demo(state_dir, real_node=real_node).play()


def down(state_dir: Path) -> int:
    stopped: list[str] = []
    node_dir = state_dir / "real-node"
    if (node_dir / "pids.json").exists():  # kubelet first, then its containers, containerd, the shims
        from ..devcluster.real_node import stop_recorded_node

        stopped.extend(f"real node {name}" for name in stop_recorded_node(node_dir))
    for name in ("operator", "simulator"):
        pid = procs.read_pid(state_dir / f"{name}.pid")
        if pid and procs.stop([pid], state_dir):
            stopped.append(f"{name} (pid {pid})")
    cluster_dir = state_dir / "cluster"
    pids_file = cluster_dir / "pids.json"
    if pids_file.exists():
        try:
            recorded = json.loads(pids_file.read_text())
        except ValueError:
            recorded = {}
        # stop_recorded signals whatever the file names; keep only processes that are provably ours.
        ours = {name: pid for name, pid in recorded.items() if procs.is_ours(pid, state_dir)}
        pids_file.write_text(json.dumps(ours))
        stopped.extend(stop_recorded(cluster_dir))
    leftovers = procs.stop(procs.find_ours(state_dir), state_dir, grace=10)
    if leftovers:
        stopped.append(f"{len(leftovers)} other demo process(es)")
    still = procs.find_ours(state_dir)
    if still:
        print(f"could not stop demo processes {still}; {_rel(state_dir)}/ is kept", file=sys.stderr)
        return 1
    existed = state_dir.exists()
    shutil.rmtree(state_dir, ignore_errors=True)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running")
          + (f"; removed {_rel(state_dir)}/" if existed else ""))
    return 0


__all__ = ["DemoFailure", "down", "up"]
