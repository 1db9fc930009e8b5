"""How fast a plain Kubernetes client can write Secrets: the yardstick for the operator's publish rate (issue #12).

A loop of `--threads` threads (the official ``kubernetes`` Python client, one shared connection pool) creates,
or replaces, `--count` Secrets of one size in one namespace, and reports the rate it achieved. No operator,
no HubSpot: just the API server's write path as seen from Python on this machine.

``bench/operator_scale.py --raw-writes`` calls `write_secrets` in the same run, with a copy of one of the
operator's published target Secrets as the template, so the two rates are directly comparable. On its own:

    .venv/bin/python bench/raw_secret_writes.py --kubeconfig KUBECONFIG [--namespace bench-raw] [--count 1000]
                                                [--threads 8] [--size-bytes 1500] [--mode create|replace]
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config


def template_from(secret: client.V1Secret) -> dict:
    """A body with the same data, type, labels and annotations as `secret` (no identity, no owner refs)."""
    md = secret.metadata
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret.type or "Opaque",
        "metadata": {"labels": dict(md.labels or {}), "annotations": dict(md.annotations or {})},
        "data": dict(secret.data or {}),
    }


def synthetic_template(size_bytes: int) -> dict:
    """An Opaque Secret whose JSON body is about `size_bytes` long (one random data value fills it)."""
    filler = max(0, (size_bytes - 120) * 3 // 4)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"labels": {"app.kubernetes.io/name": "raw-secret-writes"}, "annotations": {}},
        "data": {"access_token": base64.b64encode(os.urandom(filler)).decode()},
    }


def write_secrets(api: client.ApiClient, namespace: str, template: dict, count: int, threads: int = 8,
                  mode: str = "create", prefix: str = "raw", timeout: float = 600) -> dict:
    """Writes `count` Secrets named ``{prefix}-NNNNN`` from `template`; returns the rate and per-call latency.

    mode "create": every Secret is new; "replace": they are created first (not timed), then replaced.
    The namespace must exist. Stops early (and says so) when `timeout` seconds have passed."""
    core = client.CoreV1Api(api)
    names = [f"{prefix}-{i:05d}" for i in range(count)]

    def body(name: str, rv: str | None = None) -> dict:
        b = copy.deepcopy(template)
        b["metadata"]["name"] = name
        if rv:
            b["metadata"]["resourceVersion"] = rv
        return b

    versions: dict[str, str] = {}
    if mode == "replace":
        with ThreadPoolExecutor(threads) as pool:
            for name, s in zip(names, pool.map(lambda n: core.create_namespaced_secret(namespace, body(n)), names)):
                versions[name] = s.metadata.resource_version

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def one(name: str) -> None:
        if time.monotonic() > deadline:
            return
        t = time.monotonic()
        try:
            if mode == "replace":
                core.replace_namespaced_secret(name, namespace, body(name, versions[name]))
            else:
                core.create_namespaced_secret(namespace, body(name))
        except client.ApiException as e:
            with lock:
                errors.append(f"HTTP {e.status}")
            return
        with lock:
            latencies.append(time.monotonic() - t)

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, names))
    took = time.monotonic() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 4) if lat else None

    return {
        "mode": mode,
        "threads": threads,
        "secrets": len(latencies),
        "errors": len(errors),
        "timed_out": len(latencies) + len(errors) < count,
        "seconds": round(took, 2),
        "per_second": round(len(latencies) / took, 1) if took > 0 else None,
        "body_bytes": len(json.dumps(body(names[0]))) if names else 0,
        "latency_s": {"p50": pct(50), "p99": pct(99)},
    }


def delete_all(api: client.ApiClient, namespace: str, prefix: str = "raw", timeout: float = 120) -> None:
    """Deletes every Secret in `namespace` (meant for a namespace of its own) and waits until those named
    ``{prefix}-*`` are gone."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [s.metadata.name for s in core.list_namespaced_secret(namespace).items
                if s.metadata.name.startswith(prefix + "-")]
        if not left:
            return
        core.delete_collection_namespaced_secret(namespace)
        time.sleep(0.5)
    raise TimeoutError(f"Secrets in {namespace} not deleted after {timeout:.0f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), required=not os.environ.get("KUBECONFIG"))
    ap.add_argument("--namespace", default="bench-raw", help="created if missing; its Secrets are deleted afterwards")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--size-bytes", type=int, default=1500, help="approximate JSON size of one Secret")
    ap.add_argument("--mode", choices=["create", "replace"], default="create")
    args = ap.parse_args()
    cfg = client.Configuration()
    config.load_kube_config(config_file=args.kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = max(16, 2 * args.threads)
    api = client.ApiClient(cfg)
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=args.namespace)))
    except client.ApiException as e:
        if e.status != 409:
            raise
    try:
        res = write_secrets(api, args.namespace, synthetic_template(args.size_bytes), args.count, args.threads,
                            args.mode)
    finally:
        delete_all(api, args.namespace)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
