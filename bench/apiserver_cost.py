"""What each kind of Kubernetes request the operator makes costs the API server, in CPU.

Starts a throw-away control plane (LocalCluster) with the HubSpotToken CRD, then sends `--count` requests
of each kind from `--threads` threads (the `kubernetes` Python client) and prints, per request, the CPU
time kube-apiserver and etcd used (utime+stime from /proc/PID/stat) and the client's own. Nothing else
runs on the cluster, so the figures are what one request of that kind costs the control plane:

    .venv/bin/python bench/apiserver_cost.py [--count 1000] [--threads 8] [--repeat 2]

On demand only; the figures are printed, never asserted. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config

from hubspot_token_operator import GROUP, PLURAL, VERSION
from hubspot_token_operator.devcluster import LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from operator_scale import cpu_seconds, install_crd, loadavg  # noqa: E402 - the sibling script

NS = "cost"


def token(i: int) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HubSpotToken", "metadata": {"name": f"t{i:05d}"},
            "spec": {"type": "OAuth", "hubId": 4242,
                     "oauth": {"clientSecretRef": {"name": "app"}, "refreshTokenSecretRef": {"name": f"i{i:05d}"}},
                     "target": {"name": f"t{i:05d}-access"}}}


def status(minute: int) -> dict:
    """A routine refresh's status patch: the fields a refresh changes, with a Ready condition."""
    at = f"2026-12-03T10:{minute % 60:02d}:00Z"
    return {"status": {"observedGeneration": 1, "lastRefreshTime": at, "expiresAt": "2026-12-03T11:00:00Z",
                       "nextRefreshAt": "2026-12-03T10:40:00Z", "tokenFingerprint": f"{minute:08x}",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Refreshed", "message": "ok",
                                       "lastTransitionTime": at, "observedGeneration": 1}]}}


def secret(i: int, payload: str) -> client.V1Secret:
    return client.V1Secret(metadata=client.V1ObjectMeta(name=f"s{i:05d}", labels={"hubspot-operator.dev/token": f"t{i:05d}"}),
                           data={"access_token": payload, "expires_at": base64.b64encode(b"2026-12-03T11:00:00Z").decode()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000, help="requests of each kind")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2, help="rounds over all kinds (the spread shows the noise)")
    args = ap.parse_args()
    print(f"apiserver_cost: load average {loadavg()} on {os.cpu_count()} CPUs", flush=True)
    state = Path(tempfile.mkdtemp(prefix="hto-cost-"))
    cluster = LocalCluster(state_dir=state / "cluster")
    try:
        cluster.start()
        install_crd(cluster)
        pids = {c.name: c.proc.pid for c in cluster.components if c.name in ("kube-apiserver", "etcd") and c.proc}
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = max(args.threads, 8)
        api = client.ApiClient(cfg)
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        payload = base64.b64encode(os.urandom(300)).decode()
        n = args.count
        results: dict[str, list[tuple[float, float, float, float]]] = {}
        for rnd in range(args.repeat):
            base = rnd * n
            kinds = [
                ("Secret create", lambda i: core.create_namespaced_secret(NS, secret(base + i, payload))),
                ("Secret replace", lambda i: core.replace_namespaced_secret(f"s{base + i:05d}", NS, secret(base + i, payload))),
                ("Secret GET", lambda i: core.read_namespaced_secret(f"s{base + i:05d}", NS)),
                ("HubSpotToken create", lambda i: custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, token(base + i))),
                ("HubSpotToken status patch", lambda i: custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, NS, PLURAL, f"t{base + i:05d}", status(rnd * 7 + 1))),
                ("HubSpotToken GET", lambda i: custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, f"t{base + i:05d}")),
                ("Event create", lambda i: core.create_namespaced_event(NS, client.CoreV1Event(
                    metadata=client.V1ObjectMeta(generate_name="t."), type="Normal", reason="Refreshed",
                    message="new access token published",
                    involved_object=client.V1ObjectReference(kind="HubSpotToken", namespace=NS, name=f"t{base + i:05d}")))),
            ]
            for name, call in kinds:
                before = {k: cpu_seconds(p) for k, p in pids.items()}
                mine, t0 = time.process_time(), time.monotonic()
                with ThreadPoolExecutor(args.threads) as pool:
                    list(pool.map(call, range(n)))
                wall = time.monotonic() - t0
                after = {k: cpu_seconds(p) for k, p in pids.items()}
                row = (n / wall, 1000 * (after["kube-apiserver"] - before["kube-apiserver"]) / n,
                       1000 * (after["etcd"] - before["etcd"]) / n, 1000 * (time.process_time() - mine) / n)
                results.setdefault(name, []).append(row)
                print(f"  round {rnd + 1} {name:27s} {row[0]:6.0f}/s  apiserver {row[1]:5.2f} ms  etcd {row[2]:5.2f} ms  "
                      f"client {row[3]:5.2f} ms", flush=True)
        print(f"\nCPU per request ({n} requests of each kind, {args.threads} threads, {args.repeat} rounds: "
              f"mean, and min-max over the rounds); load average at the end {loadavg()}")
        print(f"  {'request':27s} {'rate':>8s}  {'kube-apiserver':>22s}  {'etcd':>8s}  {'client':>8s}")
        for name, rows in results.items():
            mean = [sum(r[i] for r in rows) / len(rows) for i in range(4)]
            lo, hi = min(r[1] for r in rows), max(r[1] for r in rows)
            print(f"  {name:27s} {mean[0]:6.0f}/s  {mean[1]:6.2f} ms ({lo:.2f}-{hi:.2f})  {mean[2]:5.2f} ms  {mean[3]:5.2f} ms")
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
