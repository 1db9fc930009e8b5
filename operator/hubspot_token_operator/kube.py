"""Kubernetes API access: the only module that talks to the API server (besides Kopf's watches).

Asynchronous (kubernetes_asyncio, on aiohttp like Kopf itself): no call costs a thread hop, and every
call has a deadline, so a hung API server fails the call (and the reconcile backs off) instead of holding
a worker. Responses are read as plain JSON (no model objects); errors surface as
`kubernetes.client.ApiException` with the HTTP status, whatever went wrong (refused, reset, timed out):
callers decide what a 404 or 409 means, and handle one kind of failure.

Reads of the Secrets tokens use go through `secret_cache` (secret_cache.SecretCache, fed by the Secret
watch); every Secret write updates it from the server's answer. `get_secret` is a fresh GET, for the
few reads that must see the server's latest (custody, the operator's own Secrets).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import aiohttp
from kubernetes.client import ApiException
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException

from . import GROUP, KIND, PLURAL, VERSION
from .leadership import LeaseRecord
from .metrics import KUBE_WRITES, observe_kube_call
from .secret_cache import SecretCache, view_from_body

log = logging.getLogger(__name__)

# Every call has a deadline: (connect, read) seconds for aiohttp, and an overall bound on the await, so a
# black-holed API server fails the call instead of holding a worker forever.
REQUEST_TIMEOUT = (5.0, 20.0)
CALL_DEADLINE = 30.0
LEASE_TIMEOUT = (2.0, 4.0)
MERGE_PATCH = "application/merge-patch+json"  # custom resources take no strategic merge patch


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
    finalizers: list[str] = field(default_factory=list)  # kept on every replace: others' and ours (revocation.py)
    deleting: bool = False  # deletionTimestamp set: only a finalizer keeps it readable
    uid: str = ""  # tells this Secret from an earlier or later one of the same name (status.secretUID)

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


def _encode(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _api_error(status: int, reason: str, body: str | None = None) -> ApiException:
    e = ApiException(status=status, reason=reason)
    e.body = body
    return e


class Kube:
    def __init__(self, api_client: client.ApiClient, lease_client: client.ApiClient | None = None) -> None:
        for api in (api_client, lease_client):
            if api is not None:
                _direct(api)
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        # Lease renewals get their own connection pool: a queue of reconcile calls must never delay a
        # renewal past its deadline.
        self._lease_api = lease_client or api_client
        self.coordination = client.CoordinationV1Api(self._lease_api)
        self.secret_cache = SecretCache(self.get_secret)
        self.events_posted = EventMemory()  # Events posted, so a repeat updates its count (post_event)

    @classmethod
    async def from_environment(cls) -> "Kube":
        cfgs = []
        for pool in (32, 2):
            cfg = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException:
                await config.load_kube_config(client_configuration=cfg)
            cfg.connection_pool_maxsize = pool
            cfgs.append(cfg)
        return cls(client.ApiClient(cfgs[0]), client.ApiClient(cfgs[1]))

    async def close(self) -> None:
        for api in {id(self.api): self.api, id(self._lease_api): self._lease_api}.values():
            await api.close()

    async def _run(self, fn, *args, timeout=REQUEST_TIMEOUT, **kwargs) -> Any:
        """One API call under a deadline; the answer as JSON (a dict), or ApiException."""

        code = "error"  # until the server answers

        async def call() -> Any:
            nonlocal code
            resp = await fn(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
            code = str(resp.status)
            try:
                raw = await resp.read()
            finally:
                resp.release()
            if not 200 <= resp.status <= 299:
                raise _api_error(resp.status, resp.reason or "", raw.decode("utf-8", errors="replace"))
            return json.loads(raw) if raw else {}

        started = time.monotonic()
        try:
            return await asyncio.wait_for(call(), CALL_DEADLINE)
        except ApiException:
            raise
        except AsyncApiException as e:
            code = str(e.status or "error")
            raise _api_error(e.status or 0, e.reason or "", e.body if isinstance(e.body, str) else None) from None
        except asyncio.TimeoutError:
            code = "timeout"
            raise _api_error(504, "Kubernetes API call exceeded its deadline") from None
        except (aiohttp.ClientError, OSError, ValueError) as e:
            # Timeouts, resets, refused connections and garbled answers become API errors too: every
            # caller handles one kind of failure (and a custody write-back never loses a token to an
            # unexpected exception).
            if isinstance(e, (aiohttp.ServerTimeoutError, TimeoutError)):
                code = "timeout"
            raise _api_error(503, f"Kubernetes API unreachable ({type(e).__name__})") from None
        finally:
            verb, resource = request_labels(getattr(fn, "__name__", ""), args)
            observe_kube_call(verb, resource, code, time.monotonic() - started)

    # ---- Secrets -----------------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> SecretView | None:
        """A fresh GET (None when absent). Reconciles read through `read_secret` instead."""
        try:
            return view_from_body(await self._run(self.core.read_namespaced_secret, name, namespace))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        """A Secret some token uses, from the watch-fed cache (one GET the first time it is asked for)."""
        return await self.secret_cache.get(namespace, name)

    async def read_secret_confirmed(self, namespace: str, name: str) -> SecretView | None:
        """The same, but read from the API server once since this replica began to lead (SecretCache.confirmed):
        for the refresh token about to be sent to HubSpot."""
        return await self.secret_cache.confirmed(namespace, name)

    async def create_secret(self, namespace: str, body: dict) -> SecretView:
        return await self._write_secret(namespace, body["metadata"]["name"], body, create=True)

    async def replace_secret(self, namespace: str, name: str, body: dict) -> SecretView:
        """Replace guarded by resourceVersion (in body.metadata): a concurrent writer causes a 409."""
        return await self._write_secret(namespace, name, body, create=False)

    async def _write_secret(self, namespace: str, name: str, body: dict, create: bool) -> SecretView:
        body = dict(body, data=_encode(body["data"]))
        KUBE_WRITES.labels(kind="secret").inc()
        try:
            if create:
                raw = await self._run(self.core.create_namespaced_secret, namespace, body)
            else:
                raw = await self._run(self.core.replace_namespaced_secret, name, namespace, body)
        except ApiException as e:
            if e.status == 409:  # someone else wrote it (or created it) since we read: read it fresh next
                self.secret_cache.invalidate(namespace, name)
            raise
        view = view_from_body(raw)
        self.secret_cache.wrote(view)
        return view

    # ---- HubSpotToken --------------------------------------------------------------------------------

    async def patch_status(self, namespace: str, name: str, status: dict) -> dict:
        KUBE_WRITES.labels(kind="status").inc()
        return await self._run(
            self.custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH,
        )

    async def patch_token_metadata(self, namespace: str, name: str, metadata: dict) -> dict:
        """A merge patch of a HubSpotToken's metadata (finalizers); put resourceVersion in to make it
        conditional (409 when the object changed since it was read)."""
        KUBE_WRITES.labels(kind="token").inc()
        return await self._run(
            self.custom.patch_namespaced_custom_object,
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": metadata}, _content_type=MERGE_PATCH,
        )

    async def list_tokens(self, namespace: str | None = None) -> list[dict]:
        """HubSpotTokens as stored (all namespaces when `namespace` is None): for rare checks that must see
        beyond this release's shard (revocation.py)."""
        if namespace is None:
            res = await self._run(self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        else:
            res = await self._run(self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)
        return list(res.get("items", []))

    async def namespace_terminating(self, namespace: str) -> bool:
        """Whether the namespace is being deleted (a list by name: the chart grants list on namespaces, not get)."""
        res = await self._run(self.core.list_namespace, field_selector=f"metadata.name={namespace}")
        items = res.get("items") or []
        return not items or bool((items[0].get("metadata") or {}).get("deletionTimestamp")) or \
            (items[0].get("status") or {}).get("phase") == "Terminating"

    async def patch_secret_metadata(self, namespace: str, name: str, metadata: dict) -> SecretView:
        """A merge patch of a Secret's metadata (finalizers), conditional on metadata.resourceVersion."""
        KUBE_WRITES.labels(kind="secret").inc()
        try:
            raw = await self._run(self.core.patch_namespaced_secret, name, namespace, {"metadata": metadata},
                                  _content_type=MERGE_PATCH)
        except ApiException as e:
            if e.status in (404, 409):
                self.secret_cache.invalidate(namespace, name)
            raise
        view = view_from_body(raw)
        self.secret_cache.wrote(view)
        return view

    # ---- Events --------------------------------------------------------------------------------------

    async def post_event(self, body: dict, type_: str, reason: str, message: str) -> None:
        """Posts a core/v1 Event about a HubSpotToken, or counts a repeat of one posted before (same object,
        type, reason and message: its `count` and `lastTimestamp` move, as kubectl and the kubelet's
        recorder do). Either is one write. Failures are logged, never raised."""
        md = body.get("metadata", {})
        message = message[:1024]
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = event_key(md.get("uid") or f"{md.get('namespace')}/{md.get('name')}", type_, reason, message)
        plan = plan_event(self.events_posted.get(key))
        KUBE_WRITES.labels(kind="event").inc()
        try:
            if plan.action == "patch":
                try:
                    await self._run(self.core.patch_namespaced_event, plan.name, md.get("namespace"),
                                    {"count": plan.count, "lastTimestamp": now}, _content_type=MERGE_PATCH)
                    self.events_posted.put(key, PostedEvent(plan.name, plan.count))
                    return
                except ApiException as e:
                    if e.status != 404:  # gone (expired after its TTL, deleted): post it anew
                        raise
                    self.events_posted.pop(key)
            created = await self._run(self.core.create_namespaced_event, md.get("namespace"),
                                      _new_event(md, type_, reason, message, now))
            name = (created.get("metadata") or {}).get("name")
            if name:
                self.events_posted.put(key, PostedEvent(name, 1))
        except ApiException as e:
            # A namespace being deleted refuses new Events (403/404): expected, not worth a warning.
            level = logging.DEBUG if e.status in (403, 404) and "terminat" in str(e.body or "") else logging.WARNING
            log.log(level, "could not post event %s for %s: HTTP %s", reason, md.get("name"), e.status)

    # ---- Leases (leader election) -------------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str):
        try:
            lease = await self._run(self.coordination.read_namespaced_lease, name, namespace, timeout=LEASE_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return _lease_record(lease)

    async def create_lease(self, namespace: str, name: str, spec: dict) -> LeaseRecord:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        return _lease_record(await self._run(self.coordination.create_namespaced_lease, namespace, body,
                                             timeout=LEASE_TIMEOUT))

    async def replace_lease(self, namespace: str, name: str, resource_version: str | None, spec: dict) -> LeaseRecord:
        """Guarded by resourceVersion: if another replica wrote the lease since we read it, 409. Returns the
        lease as written, so the next renewal needs no GET."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
                "spec": spec}
        return _lease_record(await self._run(self.coordination.replace_namespaced_lease, name, namespace, body,
                                             timeout=LEASE_TIMEOUT))

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
            return await self._run(fn, name, namespace)
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
            items = res.get("items", [])
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
                self.custom.patch_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "rollouts", name, patch,
                _content_type=MERGE_PATCH,
            )
            return
        fn = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "DaemonSet": self.apps.patch_namespaced_daemon_set,
        }[kind]
        await self._run(fn, name, namespace, patch)


# ---- Events: aggregation of repeats ---------------------------------------------------------------------


@dataclass(frozen=True)
class PostedEvent:
    name: str  # the Event object's name
    count: int  # its count as we last wrote it


@dataclass(frozen=True)
class EventPlan:
    action: str  # "create" (a new Event object) | "patch" (count a repeat on the existing one)
    name: str | None = None
    count: int = 1


def event_key(uid: str, type_: str, reason: str, message: str) -> tuple[str, str, str, str]:
    return (uid, type_, reason, message)


def plan_event(posted: PostedEvent | None) -> EventPlan:
    """What to write for an Event: a new object, or the next count on the one posted for the same object,
    type, reason and message (the caller falls back to creating one when that object is gone)."""
    if posted is None:
        return EventPlan("create")
    return EventPlan("patch", posted.name, posted.count + 1)


class EventMemory:
    """A bounded map of the Events this process posted, least recently used dropped first: a repeat seen
    after its entry was dropped (or after a restart) is simply posted as a new Event."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, PostedEvent] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> PostedEvent | None:
        posted = self._entries.get(key)
        if posted is not None:
            self._entries.move_to_end(key)
        return posted

    def put(self, key: tuple, posted: PostedEvent) -> None:
        self._entries[key] = posted
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: tuple) -> None:
        self._entries.pop(key, None)


def _new_event(md: dict, type_: str, reason: str, message: str, now: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{md.get('name', 'hst')}.", "namespace": md.get("namespace")},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": md.get("name"),
            "namespace": md.get("namespace"), "uid": md.get("uid"), "resourceVersion": md.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "source": {"component": "hubspot-token-operator", "host": _HOST},
        "reportingComponent": "hubspot-token-operator",
        "reportingInstance": _HOST,
    }


# ---- request metrics --------------------------------------------------------------------------------------

_VERBS = {"read": "get", "get": "get", "list": "list", "create": "create", "replace": "update",
          "patch": "patch", "delete": "delete"}
_RESOURCES = {"namespace": "namespaces", "secret": "secrets", "event": "events", "lease": "leases", "deployment": "deployments",
              "stateful_set": "statefulsets", "daemon_set": "daemonsets"}


def request_labels(fn_name: str, args: tuple) -> tuple[str, str]:
    """(verb, resource) of a kubernetes_asyncio call, from its method name (`patch_namespaced_secret`) and,
    for custom objects, the plural among its arguments (group, version, namespace, plural, ...): a bounded
    set of label values."""
    head, _, rest = fn_name.partition("_")
    verb = _VERBS.get(head, "other")
    rest = rest.removeprefix("namespaced_")
    if rest.startswith("cluster_custom_object"):  # (group, version, plural, ...)
        return verb, args[2] if len(args) > 2 and isinstance(args[2], str) else "customobjects"
    if rest.startswith("custom_object"):
        plural = args[3] if len(args) > 3 and isinstance(args[3], str) else "customobjects"
        return verb, plural + ("/status" if rest.endswith("_status") else "")
    return verb, _RESOURCES.get(rest, "other")


def _direct(api: client.ApiClient) -> None:
    """kubernetes_asyncio opens its aiohttp session with trust_env, so every request reads ~/.netrc and the
    proxy environment (in a thread). The official client never used either; neither do we: a proxy for the
    API server comes from the kubeconfig (proxy-url), as before."""
    rest = api.rest_client
    old = rest.pool_manager
    if not old.trust_env:
        return
    # read_bufsize as kubernetes_asyncio sets it (watch lines with large objects exceed aiohttp's default)
    rest.pool_manager = aiohttp.ClientSession(connector=old.connector, trust_env=False, read_bufsize=2**21)
    old.detach()  # lets go of the connector without closing it


def _lease_record(lease: dict) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        renew_time=_micro_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


def _micro_time(value: str | None) -> str | None:
    """A Lease's MicroTime as the elector compares it: always with six fractional digits."""
    if not value:
        return None
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_HOST = os.environ.get("POD_NAME") or socket.gethostname()
