"""An in-process fake of `hubspot_token_operator.kube.Kube` for flow tests.

Same async methods, same return types (Secrets as `SecretView`, everything else as plain dicts), and
API-server behaviour where the operator depends on it: resourceVersion compare-and-swap (409), 404 for
absent objects, 409 AlreadyExists on create, 422 when replacing the data of an `immutable: true` Secret,
JSON merge patch for status and workloads. Errors are `kubernetes.client.ApiException`.

Tests script the world with the plain (non-async, unlogged) helpers: put_secret, drop_secret,
add_token, edit_token, add_workload. Operator calls are logged in `calls` as (method, namespace, name).

Fault injection:
- fail(method, status, times=1, when=None): the next `times` matching calls raise (times=None: every
  one); `when(namespace, name)` narrows which calls match.
- hang(method, when=None): matching calls wait until release(method) (deadline / crash-halfway tests).
- heal(): no more faults or hangs.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from dataclasses import dataclass
from typing import Callable, NamedTuple

from kubernetes.client import ApiException

from hubspot_token_operator.tenancy import CONSENT_LABEL

from hubspot_token_operator.kube import SecretView

Pred = Callable[[str, str], bool]
REASONS = {403: "Forbidden", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity", 500: "Internal Server Error"}


class Call(NamedTuple):
    method: str
    namespace: str
    name: str


@dataclass
class _Rule:
    method: str
    when: Pred | None
    status: int = 0
    times: int | None = None
    released: asyncio.Event | None = None

    def matches(self, method: str, ns: str, name: str) -> bool:
        return self.method == method and (self.when is None or self.when(ns, name))


def api_error(status: int, reason: str | None = None) -> ApiException:
    return ApiException(status=status, reason=reason or REASONS.get(status, "Error"))


def merge_patch(target, patch):
    """RFC 7386: dicts merge recursively, None deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], SecretView] = {}
        self.immutable: set[tuple[str, str]] = set()
        self.tokens: dict[tuple[str, str], dict] = {}
        self.workloads: dict[tuple[str, str, str], dict] = {}
        self.events: list[dict] = []
        self.calls: list[Call] = []
        self._rv = itertools.count(100)
        self._faults: list[_Rule] = []
        self._hangs: list[_Rule] = []
        self.noop_status_writes = 0  # status patches that changed nothing (the operator's diff was wrong)
        self.terminating: set[str] = set()  # namespaces being deleted (a test sets it)

    # ---- fault injection and the call log ----------------------------------------------------------

    def fail(self, method: str, status: int, times: int | None = 1, when: Pred | None = None) -> None:
        self._faults.append(_Rule(method, when, status, times))

    def hang(self, method: str, when: Pred | None = None) -> None:
        self._hangs.append(_Rule(method, when, released=asyncio.Event()))

    def release(self, method: str) -> None:
        for rule in [h for h in self._hangs if h.method == method]:
            rule.released.set()
            self._hangs.remove(rule)

    def heal(self) -> None:
        """Drops every fault and releases every hang (the outage is over)."""
        self._faults.clear()
        for method in {h.method for h in self._hangs}:
            self.release(method)

    def count(self, method: str | None = None, name: str | None = None) -> int:
        return sum(1 for c in self.calls if method in (None, c.method) and name in (None, c.name))

    async def _enter(self, method: str, ns: str, name: str) -> None:
        self.calls.append(Call(method, ns, name))
        for rule in list(self._faults):
            if rule.matches(method, ns, name):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._faults.remove(rule)
                raise api_error(rule.status)
        for rule in list(self._hangs):
            if rule.matches(method, ns, name):
                await rule.released.wait()

    def _next_rv(self) -> str:
        return str(next(self._rv))

    # ---- Secrets -------------------------------------------------------------------------------------

    def put_secret(self, ns: str, name: str, data: dict, immutable: bool = False, labels: dict | None = None,
                   consent: bool = True) -> SecretView:
        """A Secret put there by its owner; by default it consents to HubSpotTokens (tenancy.py)."""
        labels = {**({CONSENT_LABEL: "true"} if consent else {}), **(labels or {})}
        """Test-side create-or-overwrite (a person with kubectl); not logged, no faults."""
        raw = {k: v.encode() if isinstance(v, str) else v for k, v in data.items()}
        body = {"metadata": {"name": name, "labels": labels or {}}, "data": raw, "immutable": immutable}
        return self._store(ns, body)

    def drop_secret(self, ns: str, name: str) -> None:
        self.secrets.pop((ns, name), None)
        self.immutable.discard((ns, name))

    def delete_secret(self, ns: str, name: str) -> None:
        """A person's (or the namespace controller's) delete: held while finalizers remain."""
        view = self.secrets.get((ns, name))
        if view is not None and view.finalizers:
            view.deleting = True
            view.resource_version = self._next_rv()
        else:
            self.drop_secret(ns, name)

    async def namespace_terminating(self, namespace: str) -> bool:
        await self._enter("namespace_terminating", namespace, "")
        return namespace in self.terminating

    async def patch_secret_metadata(self, namespace: str, name: str, metadata: dict) -> SecretView:
        await self._enter("patch_secret_metadata", namespace, name)
        view = self.secrets.get((namespace, name))
        if view is None:
            raise api_error(404)
        if metadata.get("resourceVersion") and metadata["resourceVersion"] != view.resource_version:
            raise api_error(409)
        view.finalizers = list(metadata.get("finalizers") or [])
        view.resource_version = self._next_rv()
        if view.deleting and not view.finalizers:
            self.drop_secret(namespace, name)
        return copy.deepcopy(view)

    def text(self, ns: str, name: str, key: str) -> str | None:
        s = self.secrets.get((ns, name))
        return s.text(key) if s else None

    def _store(self, ns: str, body: dict) -> SecretView:
        md = body.get("metadata") or {}
        old = self.secrets.get((ns, md["name"]))
        finalizers = md["finalizers"] if "finalizers" in md else (old.finalizers if old else [])
        view = SecretView(
            name=md["name"], namespace=ns, data=dict(body.get("data") or {}), resource_version=self._next_rv(),
            labels=dict(md.get("labels") or {}), annotations=dict(md.get("annotations") or {}),
            owner_refs=[dict(o) for o in md.get("ownerReferences") or []], type=body.get("type") or "Opaque",
            finalizers=list(finalizers or []), deleting=bool(old and old.deleting),
            uid=old.uid if old else uuid.uuid4().hex,
        )
        self.secrets[(ns, view.name)] = view
        (self.immutable.add if body.get("immutable") else self.immutable.discard)((ns, view.name))
        return copy.deepcopy(view)

    async def get_secret(self, namespace: str, name: str) -> SecretView | None:
        await self._enter("get_secret", namespace, name)
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found else None

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        """The operator's cached read; the fake answers it like a GET (same faults, same log line)."""
        return await self.get_secret(namespace, name)

    read_secret_confirmed = read_secret

    async def create_secret(self, namespace: str, body: dict) -> SecretView:
        name = body["metadata"]["name"]
        await self._enter("create_secret", namespace, name)
        if (namespace, name) in self.secrets:
            raise api_error(409, "AlreadyExists")
        return self._store(namespace, body)

    async def replace_secret(self, namespace: str, name: str, body: dict) -> SecretView:
        await self._enter("replace_secret", namespace, name)
        old = self.secrets.get((namespace, name))
        if old is None:
            raise api_error(404)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old.resource_version:
            raise api_error(409)
        if (namespace, name) in self.immutable and (body.get("data") != old.data or not body.get("immutable")):
            raise api_error(422)  # "field is immutable when `immutable` is set"
        return self._store(namespace, body)

    # ---- HubSpotTokens -------------------------------------------------------------------------------

    def add_token(self, ns: str, body: dict) -> dict:
        obj = copy.deepcopy(body)
        md = obj.setdefault("metadata", {})
        md.update(namespace=ns, resourceVersion=self._next_rv())
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("generation", 1)
        self.tokens[(ns, md["name"])] = obj
        return copy.deepcopy(obj)

    def edit_token(self, ns: str, name: str, patch: dict) -> dict:
        """A user's merge patch of metadata/spec; spec changes bump metadata.generation."""
        obj = self.tokens[(ns, name)]
        new = merge_patch(obj, patch)
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        new["metadata"]["resourceVersion"] = self._next_rv()
        self.tokens[(ns, name)] = new
        return copy.deepcopy(new)

    def token(self, ns: str, name: str) -> dict:
        return copy.deepcopy(self.tokens[(ns, name)])

    def delete_token(self, ns: str, name: str, at: str = "2026-01-01T00:00:00Z") -> None:
        """kubectl delete: held (deletionTimestamp set) while finalizers remain."""
        obj = self.tokens[(ns, name)]
        if obj["metadata"].get("finalizers"):
            obj["metadata"]["deletionTimestamp"] = at
            obj["metadata"]["resourceVersion"] = self._next_rv()
        else:
            del self.tokens[(ns, name)]

    async def patch_token_metadata(self, namespace: str, name: str, metadata: dict) -> dict:
        await self._enter("patch_token_metadata", namespace, name)
        obj = self.tokens.get((namespace, name))
        if obj is None:
            raise api_error(404)
        if metadata.get("resourceVersion") and metadata["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise api_error(409)
        obj["metadata"]["finalizers"] = list(metadata.get("finalizers") or [])
        obj["metadata"]["resourceVersion"] = self._next_rv()
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"]["finalizers"]:
            del self.tokens[(namespace, name)]
        return copy.deepcopy(obj)

    async def list_tokens(self, namespace: str | None = None) -> list[dict]:
        await self._enter("list_tokens", namespace or "", "")
        return [copy.deepcopy(o) for (ns, _), o in self.tokens.items() if namespace in (None, ns)]

    async def patch_status(self, namespace: str, name: str, status: dict) -> dict:
        await self._enter("patch_status", namespace, name)
        obj = self.tokens.get((namespace, name))
        if obj is None:
            raise api_error(404)
        merged = merge_patch(obj.get("status") or {}, status)
        if merged == (obj.get("status") or {}):
            # Like the API server: a patch that changes nothing keeps the resourceVersion.
            self.noop_status_writes += 1
            return copy.deepcopy(obj)
        obj["status"] = merged
        obj["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(obj)

    # ---- Events --------------------------------------------------------------------------------------

    async def post_event(self, body: dict, type_: str, reason: str, message: str) -> None:
        md = body.get("metadata", {})
        try:
            await self._enter("post_event", md.get("namespace"), md.get("name"))
        except ApiException:
            return  # like Kube.post_event: logged, never raised
        self.events.append({"namespace": md.get("namespace"), "name": md.get("name"), "type": type_,
                            "reason": reason, "message": message})

    def reasons(self, name: str, type_: str | None = None) -> list[str]:
        return [e["reason"] for e in self.events if e["name"] == name and type_ in (None, e["type"])]

    # ---- workloads -----------------------------------------------------------------------------------

    def add_workload(self, ns: str, kind: str, name: str, labels: dict | None = None, replicas: int = 1,
                     consent: bool = True) -> dict:
        labels = {**({CONSENT_LABEL: "true"} if consent else {}), **(labels or {})}
        """A workload whose controller converges at once (status follows every spec change)."""
        obj = {"apiVersion": "argoproj.io/v1alpha1" if kind == "Rollout" else "apps/v1", "kind": kind,
               "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "generation": 1,
                            "resourceVersion": self._next_rv()},
               "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": name}}}}}
        self.workloads[(ns, kind, name)] = self._converge(obj)
        return copy.deepcopy(obj)

    @staticmethod
    def _converge(obj: dict) -> dict:
        n = obj["spec"].get("replicas", 1)
        obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": n,
                         "updatedReplicas": n, "availableReplicas": n, "readyReplicas": n}
        return obj

    async def get_workload(self, namespace: str, kind: str, name: str) -> dict | None:
        await self._enter("get_workload", namespace, name)
        found = self.workloads.get((namespace, kind, name))
        return copy.deepcopy(found) if found else None

    async def list_workloads(self, namespace: str, kind: str) -> list[dict]:
        await self._enter("list_workloads", namespace, kind)
        return [copy.deepcopy(w) for (ns, k, _), w in sorted(self.workloads.items()) if ns == namespace and k == kind]

    async def patch_workload(self, namespace: str, kind: str, name: str, patch: dict) -> None:
        await self._enter("patch_workload", namespace, name)
        obj = self.workloads.get((namespace, kind, name))
        if obj is None:
            raise api_error(404)
        patch = copy.deepcopy(patch)
        rv = (patch.get("metadata") or {}).pop("resourceVersion", None)
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise api_error(409)
        new = merge_patch(obj, patch)
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] += 1
        new["metadata"]["resourceVersion"] = self._next_rv()
        self.workloads[(namespace, kind, name)] = self._converge(new)
