"""A real node for the local cluster: kubelet + containerd + runc, next to the kwok node.

kwok makes scale tests cheap (its pods only pretend to run); this node runs real containers, so the
operator's own image can run as a pod with the chart's ServiceAccount, securityContext and probes, and
consumers can really read a rotated Secret. It needs root and the Debian packages containerd and runc
(`.ci/run` installs them); kubelet comes from the same Kubernetes module as the control plane
(testbin/build.sh).

What these machines allow, and so what this node is (see docs/real-node.md):

- containerd's CRI with runc, cgroupfs, and ``restrict_oom_score_adj`` (the capability bounding set lacks
  CAP_SYS_RESOURCE, so runc cannot set the -998 OOM score containerd asks for otherwise);
- kubelet with ``failCgroupV1: false``, ``cgroupsPerQOS: false``, ``enforceNodeAllocatable: []`` and
  ``failSwapOn: false`` (a cgroup-v1 hybrid host, no systemd);
- a loopback-only CNI configuration, which is enough for the node to be Ready but gives a pod no address
  of its own: pods here use ``hostNetwork: true``, so all traffic stays on the host's loopback (the rule:
  nothing leaves loopback or the network namespaces the tests make);
- the node has no address (kubelet refuses a loopback node IP), so ``kubectl logs`` cannot reach it:
  container output is read from the pod log files (`pod_log`); probes still work (an empty pod IP dials
  localhost);
- the node is tainted ``hto.dev/real-node=true:NoSchedule`` and labelled ``hto.dev/node=real``, so only pods
  that ask for it land here and the kwok-based tests keep their speed.

Every component is a child process in its own session with its state under ``state_dir``; `stop()` kills
the containers, the daemons and the runc shims, and unmounts what kubelet and containerd mounted there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .cluster import ClusterError, Component, LocalCluster, _kill, _tail, _terminate, free_port

NODE_NAME = "hto-real-node"
NODE_LABEL = ("hto.dev/node", "real")
TAINT_KEY = "hto.dev/real-node"
CRI_NAMESPACE = "k8s.io"
REQUIRED_COMMANDS = ("containerd", "runc", "ctr", "mount", "umount")


def placement() -> dict:
    """The pod spec fields that put a pod on the real node (merge them into a pod template's spec)."""
    return {
        "nodeSelector": {NODE_LABEL[0]: NODE_LABEL[1]},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
    }


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the node, each as a sentence that says how to get it."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the real node needs root (kubelet and containerd mount filesystems and make cgroups)")
    for cmd in REQUIRED_COMMANDS:
        if shutil.which(cmd) is None:
            problems.append(f"`{cmd}` not found: apt-get install containerd runc (as .ci/run does)")
    return problems


def containerd_config(state: Path, sandbox_image: str) -> str:
    """containerd 1.6's config (version 2): every path under `state`, CRI with runc and cgroupfs."""
    return f"""version = 2
root = "{state}/root"
state = "{state}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{state}/containerd.sock"
[ttrpc]
  address = "{state}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{state}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # runc cannot set containerd's -998 OOM score without CAP_SYS_RESOURCE ("can't get final child's PID")
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{shutil.which('runc') or '/usr/sbin/runc'}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{state}/cni"
"""


def kubelet_config(runtime_socket: Path, pod_logs: Path, port: int, healthz_port: int) -> dict:
    """KubeletConfiguration for this host: cgroup v1 hybrid without systemd, swap on, no QoS cgroups."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{runtime_socket}",
        "podLogsDir": str(pod_logs),
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        # Eviction would act on the whole host's disk and memory, which this node does not own.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "syncFrequency": "5s",  # a mounted Secret is refreshed within seconds of a change
        "shutdownGracePeriod": "0s",
    }


@dataclass
class RealNode:
    """kubelet + containerd for `cluster`; `images` are archives loaded into containerd before kubelet starts."""

    cluster: LocalCluster
    state_dir: Path
    kubelet: Path
    images: list[Path] = field(default_factory=list)
    sandbox_image: str = ""
    image: str = ""  # the operator image loaded into it (set by whoever built the images)
    timeout: float = 120.0
    components: list[Component] = field(default_factory=list)
    ready_in: float = 0.0
    images_loaded_in: float = 0.0

    @property
    def socket(self) -> Path:
        return self.state_dir / "containerd" / "containerd.sock"

    @property
    def pod_logs(self) -> Path:
        return self.state_dir / "pod-logs"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "RealNode":
        problems = missing_prerequisites()
        if problems:
            raise ClusterError("cannot start the real node: " + "; ".join(problems))
        t0 = time.monotonic()
        for d in (self.state_dir, self.logs_dir, self.pod_logs, self.state_dir / "containerd" / "cni",
                  self.state_dir / "kubelet"):
            d.mkdir(parents=True, exist_ok=True)
        try:
            self._start_containerd()
            t1 = time.monotonic()
            for archive in self.images:
                self.ctr("images", "import", str(archive), timeout=300)
            self.images_loaded_in = time.monotonic() - t1
            self._start_kubelet()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.ready_in = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stops kubelet first (so nothing restarts containers), then every container, containerd, and the
        shims; then unmounts everything under the state directory and removes the Node object."""
        kubelet = next((c for c in self.components if c.name == "kubelet"), None)
        if kubelet:
            self._stop(kubelet)
        if self._running("containerd"):
            self._kill_containers()
        for comp in reversed(self.components):
            self._stop(comp)
        self.components.clear()
        self._kill_shims()
        unmount_under(self.state_dir)
        try:
            self.cluster._api("DELETE", f"/api/v1/nodes/{NODE_NAME}", ok=(200, 404))
        except (ClusterError, OSError):
            pass

    # ---- what tests use --------------------------------------------------------------------------

    def ctr(self, *args: str, timeout: float = 60) -> str:
        proc = subprocess.run(["ctr", "-a", str(self.socket), "-n", CRI_NAMESPACE, *args],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterError(f"ctr {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def task_pid(self, container_id: str) -> int | None:
        """The host PID of a running container's main process (`containerd://<id>` or the bare id)."""
        cid = container_id.split("://", 1)[-1]
        for line in self.ctr("tasks", "ls").splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3 and parts[0] == cid and parts[2] == "RUNNING":
                return int(parts[1])
        return None

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        """Everything a container of a pod on this node wrote (all restarts), without CRI prefixes."""
        out: list[str] = []
        for d in sorted(self.pod_logs.glob(f"{namespace}_{pod}_*/{container}")):
            for f in sorted(d.glob("*.log"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1):
                for line in f.read_text(errors="replace").splitlines():
                    # CRI format: "<RFC 3339 time> <stdout|stderr> <F|P> <text>"
                    parts = line.split(" ", 3)
                    out.append(parts[3] if len(parts) == 4 else line)
        return "\n".join(out)

    # ---- components ------------------------------------------------------------------------------

    def _start_containerd(self) -> None:
        state = self.state_dir / "containerd"
        (state / "cni" / "10-loopback.conflist").write_text(json.dumps(
            {"cniVersion": "1.0.0", "name": "hto-loopback", "plugins": [{"type": "loopback"}]}))
        cfg = state / "config.toml"
        cfg.write_text(containerd_config(state, self.sandbox_image))
        self._spawn("containerd", ["containerd", "--config", str(cfg)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.ctr("version", timeout=5)
                return
            except (ClusterError, subprocess.TimeoutExpired):
                time.sleep(0.2)
        raise ClusterError(f"containerd did not answer in 30 s; see {self.logs_dir / 'containerd.log'}")

    def _start_kubelet(self) -> None:
        d = self.state_dir / "kubelet"
        cfg = d / "config.yaml"
        cfg.write_text(yaml.safe_dump(kubelet_config(self.socket, self.pod_logs, free_port(), free_port())))
        self._spawn("kubelet", [
            str(self.kubelet),
            f"--config={cfg}",
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--root-dir={d / 'root'}",
            f"--cert-dir={d / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            "--node-ip=127.0.0.1",
            f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}",
            "--v=1",
        ])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self._check_alive()
            status, body = self.cluster._api("GET", f"/api/v1/nodes/{NODE_NAME}")
            if status == 200:
                conds = {c["type"]: c["status"] for c in body.get("status", {}).get("conditions", [])}
                taints = {t["key"] for t in body.get("spec", {}).get("taints") or []}
                if conds.get("Ready") == "True" and taints == {TAINT_KEY}:
                    return
            time.sleep(0.2)
        raise ClusterError(f"the real node was not Ready in {self.timeout:.0f} s; see "
                           f"{self.logs_dir / 'kubelet.log'}:\n{_tail(self.logs_dir / 'kubelet.log')}")

    # ---- plumbing --------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        comp = Component(name, argv, self.logs_dir / f"{name}.log")
        with open(comp.log, "ab") as out:
            comp.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.state_dir)
        self.components.append(comp)
        (self.state_dir / "pids.json").write_text(json.dumps(
            {c.name: c.proc.pid for c in self.components if c.proc and c.proc.poll() is None}))

    def _running(self, name: str) -> bool:
        return any(c.name == name and c.proc and c.proc.poll() is None for c in self.components)

    def _check_alive(self) -> None:
        for c in self.components:
            if c.proc and c.proc.poll() is not None:
                raise ClusterError(f"{c.name} exited with code {c.proc.returncode}; last lines of {c.log}:\n{_tail(c.log)}")

    @staticmethod
    def _stop(comp: Component) -> None:
        if comp.proc and comp.proc.poll() is None:
            _terminate(comp.proc.pid)
            try:
                comp.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill(comp.proc.pid)
                comp.proc.wait(timeout=10)

    def _kill_containers(self) -> None:
        try:
            tasks = [ln.split()[0] for ln in self.ctr("tasks", "ls").splitlines()[1:] if ln.split()]
            for task in tasks:
                subprocess.run(["ctr", "-a", str(self.socket), "-n", CRI_NAMESPACE, "tasks", "kill", "-a", "-s",
                                "SIGKILL", task], capture_output=True, timeout=20)
            for task in tasks:
                subprocess.run(["ctr", "-a", str(self.socket), "-n", CRI_NAMESPACE, "tasks", "delete", "-f", task],
                               capture_output=True, timeout=20)
        except (ClusterError, subprocess.TimeoutExpired, OSError):
            pass

    def _kill_shims(self) -> None:
        kill_shims(self.socket)


def stop_recorded_node(state_dir: Path) -> list[str]:
    """Stops a node another process started (the demo's `down`), from its pids.json: kubelet, then every
    container, then containerd and its shims; unmounts what they mounted. Returns what it stopped."""
    pids_file = state_dir / "pids.json"
    try:
        pids = json.loads(pids_file.read_text())
    except (OSError, ValueError):
        pids = {}
    stopped = []

    def ours(pid: int, name: str) -> bool:
        """The recorded pid still runs the program recorded (a pid may be reused after a reboot or a crash)."""
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            return False
        return Path(argv0).name == name

    def stop(name: str) -> None:
        pid = pids.get(name)
        if not pid or not ours(pid, name):
            return
        _terminate(pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            try:  # reap it if it is our child; else wait for it to go
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if ours(pid, name):
            _kill(pid)
        stopped.append(name)

    stop("kubelet")
    sock = state_dir / "containerd" / "containerd.sock"
    if sock.exists() and shutil.which("ctr"):
        base = ["ctr", "-a", str(sock), "-n", CRI_NAMESPACE]
        try:
            out = subprocess.run(base + ["tasks", "ls", "-q"], capture_output=True, text=True, timeout=20).stdout
            for task in out.split():
                subprocess.run(base + ["tasks", "kill", "-a", "-s", "SIGKILL", task], capture_output=True, timeout=20)
        except (subprocess.TimeoutExpired, OSError):
            pass
    stop("containerd")
    kill_shims(sock)
    unmount_under(state_dir)
    pids_file.unlink(missing_ok=True)
    return stopped


def kill_shims(socket_path: Path) -> None:
    """runc shims outlive containerd by design; ours are the ones started with our socket."""
    needle = str(socket_path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmd and needle in cmd:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass




def unmount_under(root: Path) -> list[str]:
    """Lazily unmounts every mount point at or below `root`, deepest first; returns them."""
    prefix = str(root.resolve())
    points = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4].replace("\\040", " ")
            if mp == prefix or mp.startswith(prefix + "/"):
                points.append(mp)
    except OSError:
        return []
    for mp in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True, timeout=20)
    return points
