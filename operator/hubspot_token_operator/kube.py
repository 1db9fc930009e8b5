"""Kubernetes API access: the only module that talks to the API server (besides Kopf's watches).

The official client is synchronous; calls run in a thread pool so the event loop keeps serving watches.
Errors surface as `kubernetes.client.ApiException`; callers decide what a 404 or 409 means.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client import ApiException

from . import GROUP, KIND, PLURAL, VERSION
from .leadership import LeaseRecord
from .metrics import KUBE_WRITES

log = logging.getLogger(__name__)

_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="kube")
# Lease renewals get their own thread: a queue of reconcile calls must never delay a renewal past its deadline.
_lease_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-lease")

# Every call has a deadline: (connect, read) seconds for urllib3, and an overall bound on the await, so a
# black-holed API server fails the call (and the reconcile backs off) instead of holding a worker forever.
REQUEST_TIMEOUT = (5.0, 20.0)
CALL_DEADLINE = 30.0


@dataclass
class SecretView:
    """A Secret as read: decoded data plus the metadata decisions need."""

    name: str
    namespace: str
    data: dict[str, bytes]
    resource_version: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    owner_refs: list[dict] = field(default_factory=list)
    type: str = "Opaque"

    @property
    def owner_uids(self) -> list[str]:
        return [o["uid"] for o in self.owner_refs]

    def __repr__(self) -> str:  # never print values
        return f"SecretView({self.namespace}/{self.name}, keys={sorted(self.data)})"

    def text(self, key: str) -> str | None:
        raw = self.data.get(key)
        if raw is None:
            return None
        value = raw.decode("utf-8", errors="replace").strip()
        return value or None


def _decode(secret: client.V1Secret) -> SecretView:
    md = secret.metadata
    return SecretView(
        name=md.name,
        namespace=md.namespace,
        data={k: base64.b64decode(v) for k, v in (secret.data or {}).items()},
        resource_version=md.resource_version,
        labels=dict(md.labels or {}),
        annotations=dict(md.annotations or {}),
        owner_refs=[
            {"apiVersion": o.api_version, "kind": o.kind, "name": o.name, "uid": o.uid,
             "controller": o.controller, "blockOwnerDeletion": o.block_owner_deletion}
            for o in (md.owner_references or [])
        ],
        type=secret.type or "Opaque",
    )


def _encode(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

    @classmethod
    def from_environment(cls) -> "Kube":
        try:
            config.load_incluster_config()
            cfg = client.Configuration.get_default_copy()
        except config.ConfigException:
            cfg = client.Configuration()
            config.load_kube_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        return cls(client.ApiClient(cfg))

    async def _run(self, fn, *args, _pool: ThreadPoolExecutor = _executor, **kwargs) -> Any:
        loop = asyncio.get_running_loop()
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        fut = loop.run_in_executor(_pool, partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(fut, CALL_DEADLINE)
        except asyncio.TimeoutError:
            raise ApiException(status=504, reason="Kubernetes API call exceeded its deadline") from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            # Timeouts, resets and refused connections become API errors too: every caller handles one
            # kind of failure (and a custody write-back never loses a token to an unexpected exception).
            raise ApiException(status=503, reason=f"Kubernetes API unreachable ({type(e).__name__})") from None

    # ---- Secrets -----------------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> SecretView | None:
        try:
            return _decode(await self._run(self.core.read_namespaced_secret, name, namespace))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def create_secret(self, namespace: str, body: dict) -> SecretView:
        body = dict(body, data=_encode(body["data"]))
        KUBE_WRITES.labels(kind="secret").inc()
        return _decode(await self._run(self.core.create_namespaced_secret, namespace, body))

    async def replace_secret(self, namespace: str, name: str, body: dict) -> SecretView:
        """Replace guarded by resourceVersion (in body.metadata): a concurrent writer causes a 409."""
        body = dict(body, data=_encode(body["data"]))
        KUBE_WRITES.labels(kind="secret").inc()
        return _decode(await self._run(self.core.replace_namespaced_secret, name, namespace, body))

    # ---- HubSpotToken --------------------------------------------------------------------------------

    async def patch_status(self, namespace: str, name: str, status: dict) -> dict:
        KUBE_WRITES.labels(kind="status").inc()
        return await self._run(
            self.custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, PLURAL, name, {"status": status},
        )

    # ---- Events --------------------------------------------------------------------------------------

    async def post_event(self, body: dict, type_: str, reason: str, message: str) -> None:
        """Posts a core/v1 Event about a HubSpotToken. Failures are logged, never raised."""
        md = body.get("metadata", {})
        now = datetime.now(timezone.utc)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{md.get('name', 'hst')}.", namespace=md.get("namespace")),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=md.get("name"),
                namespace=md.get("namespace"),
                uid=md.get("uid"),
                resource_version=md.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component="hubspot-token-operator", host=_HOST),
            reporting_component="hubspot-token-operator",
            reporting_instance=_HOST,
        )
        try:
            KUBE_WRITES.labels(kind="event").inc()
            await self._run(self.core.create_namespaced_event, md.get("namespace"), event)
        except ApiException as e:
            # A namespace being deleted refuses new Events (403/404): expected, not worth a warning.
            level = logging.DEBUG if e.status in (403, 404) and "terminat" in str(e.body or "") else logging.WARNING
            log.log(level, "could not post event %s for %s: HTTP %s", reason, md.get("name"), e.status)

    # ---- Leases (leader election) -------------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str):
        try:
            lease = await self._run(self.coordination.read_namespaced_lease, name, namespace, _pool=_lease_executor,
                                   _request_timeout=(2.0, 4.0))
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        spec = lease.spec
        renew = spec.renew_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if spec.renew_time else None
        return LeaseRecord(
            holder=spec.holder_identity or None,
            duration_seconds=int(spec.lease_duration_seconds or 0),
            renew_time=renew,
            transitions=int(spec.lease_transitions or 0),
            resource_version=lease.metadata.resource_version,
        )

    async def create_lease(self, namespace: str, name: str, spec: dict) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        await self._run(self.coordination.create_namespaced_lease, namespace, body, _pool=_lease_executor,
                        _request_timeout=(2.0, 4.0))

    async def replace_lease(self, namespace: str, name: str, resource_version: str | None, spec: dict) -> None:
        """Guarded by resourceVersion: if another replica wrote the lease since we read it, 409."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
                "spec": spec}
        await self._run(self.coordination.replace_namespaced_lease, name, namespace, body, _pool=_lease_executor,
                        _request_timeout=(2.0, 4.0))

    # ---- workloads (rollout restarts) ---------------------------------------------------------------

    async def get_workload(self, namespace: str, kind: str, name: str) -> dict | None:
        try:
            if kind == "Rollout":
                return await self._run(
                    self.custom.get_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "rollouts", name
                )
            fn = {
                "Deployment": self.apps.read_namespaced_deployment,
                "StatefulSet": self.apps.read_namespaced_stateful_set,
                "DaemonSet": self.apps.read_namespaced_daemon_set,
            }[kind]
            obj = await self._run(fn, name, namespace)
            return self.api.sanitize_for_serialization(obj)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def list_workloads(self, namespace: str, kind: str) -> list[dict]:
        try:
            if kind == "Rollout":
                res = await self._run(
                    self.custom.list_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "rollouts"
                )
                return list(res.get("items", []))
            fn = {
                "Deployment": self.apps.list_namespaced_deployment,
                "StatefulSet": self.apps.list_namespaced_stateful_set,
                "DaemonSet": self.apps.list_namespaced_daemon_set,
            }[kind]
            res = await self._run(fn, namespace)
            items = self.api.sanitize_for_serialization(res).get("items", [])
            for item in items:
                item.setdefault("kind", kind)
            return items
        except ApiException as e:
            if e.status == 404:  # e.g. the Argo Rollouts CRD is not installed
                return []
            raise

    async def patch_workload(self, namespace: str, kind: str, name: str, patch: dict) -> None:
        KUBE_WRITES.labels(kind="workload").inc()
        if kind == "Rollout":
            await self._run(
                self.custom.patch_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "rollouts", name, patch
            )
            return
        fn = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "DaemonSet": self.apps.patch_namespaced_daemon_set,
        }[kind]
        await self._run(fn, name, namespace, patch)


_HOST = os.environ.get("POD_NAME") or socket.gethostname()
