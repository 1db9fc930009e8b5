"""Custody of rotated refresh tokens: a refresh token HubSpot returns is persisted before anything uses it.

When HubSpot answers a refresh with a new refresh token (rotation), the old one may already be dead, so the
new one is the only copy of the grant. The order is:

1. write it back into the tenant's refresh-token Secret (compare-and-swap on resourceVersion; a conflict is
   re-read: the Secret still holding the old token, or already the new one, is retried or done; a
   Secret holding some *other* token means a person re-authorised, and their token wins);
2. if that write fails (5xx, admission denial, timeout), keep the token in the operator's own custody
   Secret (one Secret in the operator's namespace, a key per pending grant), and in memory;
3. every later reconcile of a token on that grant retries the write-back first, with backoff, before any
   other work, and says so (Degraded condition, Warning Event) until it lands; then the custody entry goes.

The write-back also annotates the refresh-token Secret with `<old grant>.<new grant>` fingerprints, so a
crash between it and the status write is recognised on restart as our own rotation, not as a changed
grant (which would restart workloads).

Only after (1) or (2) succeeded may the access token of that refresh be published or shared with siblings.
No path drops a token: not a conflict, not a failure, not a shutdown (the refresh and this write run
shielded from cancellation; see `Runtime.critical`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from enum import Enum

from kubernetes.client import ApiException

from .fingerprint import Fingerprinter
from .kube import Kube, SecretView

log = logging.getLogger(__name__)

ROTATION_ANNOTATION = "hubspot-operator.dev/refresh-token-rotation"
CUSTODY_LABEL = "hubspot-operator.dev/custody"
CAS_ATTEMPTS = 3


@dataclass(frozen=True)
class Pending:
    """A refresh token HubSpot returned that has not reached its Secret yet."""

    namespace: str
    secret: str
    key: str
    token: str = field(repr=False)
    old_grant: str
    new_grant: str
    old_token_fp: str  # keyed fingerprint of the refresh token that was exchanged


    def to_bytes(self) -> bytes:
        return json.dumps(
            {"namespace": self.namespace, "secret": self.secret, "key": self.key, "token": self.token,
             "oldGrant": self.old_grant, "newGrant": self.new_grant, "oldTokenFingerprint": self.old_token_fp}
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Pending":
        d = json.loads(raw)
        return cls(d["namespace"], d["secret"], d["key"], d["token"], d["oldGrant"], d["newGrant"], d["oldTokenFingerprint"])


class Landing(Enum):
    LANDED = "landed"  # the tenant's Secret holds the new token
    HELD = "held"  # in the operator's custody Secret; the write-back is retried
    MEMORY = "memory"  # only in memory (both writes failed): nothing may use the token yet
    SUPERSEDED = "superseded"  # a person put another refresh token into the Secret: theirs wins


@dataclass(frozen=True)
class WriteBack:
    landing: Landing
    status: int | None = None  # HTTP status of the failed tenant write, for messages
    written: SecretView | None = field(default=None, repr=False)  # our write of the tenant's Secret, when we made one

    @property
    def durable(self) -> bool:
        return self.landing in (Landing.LANDED, Landing.HELD)


def rotation_note(secret: SecretView | None) -> tuple[str, str] | None:
    """(old grant, new grant) fingerprints our last write-back left on the refresh-token Secret."""
    value = (secret.annotations if secret else {}).get(ROTATION_ANNOTATION) or ""
    old, _, new = value.partition(".")
    return (old, new) if old and new else None


class Custody:
    def __init__(self, kube: Kube, fingerprints: Fingerprinter, namespace: str, secret_name: str) -> None:
        self.kube = kube
        self.fingerprints = fingerprints
        self.namespace = namespace
        self.secret_name = secret_name
        self._pending: dict[str, Pending] = {}  # old grant fingerprint -> pending token
        self._unsaved: set[str] = set()  # old grants whose token is in memory only (both writes failed)
        self._lock = asyncio.Lock()  # serialises writes of the custody Secret

    def __repr__(self) -> str:
        return f"Custody({len(self._pending)} pending)"

    def pending(self, old_grant: str | None) -> Pending | None:
        return self._pending.get(old_grant) if old_grant else None

    def held_for(self, *grants: str | None) -> Pending | None:
        """The pending token of a grant, named by the grant it replaces or by the one it starts (status
        records the new grant as soon as the refresh succeeded, even when the write-back did not)."""
        for g in grants:
            if g and g in self._pending:
                return self._pending[g]
        return next((p for p in self._pending.values() if p.new_grant in grants), None)

    @property
    def unsaved(self) -> int:
        """Tokens held in memory only: a restart of this process would lose them."""
        return len(self._unsaved)

    async def flush(self) -> int:
        """Another attempt to store every token held in memory only; returns how many still are."""
        for grant in list(self._unsaved):
            p = self._pending.get(grant)
            if p is None:
                self._unsaved.discard(grant)
                continue
            try:
                await self._store(p)
            except ApiException as e:
                log.error("custody: storing a refresh token held in memory failed again (HTTP %s)", e.status)
                break  # the API server is not answering: the next flush tries again
        return len(self._unsaved)

    def __len__(self) -> int:
        return len(self._pending)

    async def load(self) -> None:
        """At start-up: pick up what an earlier process could not write back."""
        store = await self.kube.get_secret(self.namespace, self.secret_name)
        for key, raw in (store.data if store else {}).items():
            try:
                p = Pending.from_bytes(raw)
            except (ValueError, KeyError):
                log.warning("custody entry %s is unreadable; left in place", key)
                continue
            try:
                landed = await self.kube.get_secret(p.namespace, p.secret)
            except ApiException:
                landed = None
            if landed is not None and landed.text(p.key) == p.token:
                await self._drop(p)  # the write-back landed just before the last process stopped
                continue
            self._pending[p.old_grant] = p
        if self._pending:
            log.info("custody: %d rotated refresh token(s) still to be written back", len(self._pending))

    async def secure(self, p: Pending, source: SecretView) -> WriteBack:
        """Persists a refresh token HubSpot just returned: the tenant's Secret, else our custody Secret."""
        self._pending[p.old_grant] = p  # from here on, nothing can lose it
        try:
            result = await self._write_back(p, source)
        except ApiException as e:
            result = WriteBack(Landing.HELD, e.status)
        if result.landing in (Landing.LANDED, Landing.SUPERSEDED):
            self._pending.pop(p.old_grant, None)
            return result
        try:
            await self._store(p)
        except ApiException as e:
            log.error("custody: writing the custody Secret failed (HTTP %s); holding the token in memory", e.status)
            self._unsaved.add(p.old_grant)
            return WriteBack(Landing.MEMORY, result.status)
        return WriteBack(Landing.HELD, result.status)

    async def retry(self, p: Pending) -> WriteBack:
        """Another attempt at the write-back of a pending token (reads the Secret afresh)."""
        try:
            source = await self.kube.get_secret(p.namespace, p.secret)
            result = WriteBack(Landing.HELD, 404) if source is None else await self._write_back(p, source)
        except ApiException as e:
            result = WriteBack(Landing.HELD, e.status)
        if result.landing in (Landing.LANDED, Landing.SUPERSEDED):
            await self._drop(p)
            return result
        try:
            await self._store(p)  # it may have been held in memory only
            return WriteBack(Landing.HELD, result.status)
        except ApiException:
            self._unsaved.add(p.old_grant)
            return WriteBack(Landing.MEMORY, result.status)

    async def _write_back(self, p: Pending, source: SecretView) -> WriteBack:
        status = None
        for _ in range(CAS_ATTEMPTS):
            current = source.text(p.key) or ""
            if current == p.token:
                return WriteBack(Landing.LANDED)
            if current and self.fingerprints.of(current) != p.old_token_fp:
                return WriteBack(Landing.SUPERSEDED)  # a person put another token in: theirs wins
            try:
                written = await self.kube.replace_secret(p.namespace, p.secret, _with_token(source, p))
                return WriteBack(Landing.LANDED, written=written)
            except ApiException as e:
                status = e.status
                if e.status != 409:
                    return WriteBack(Landing.HELD, status)
            # Conflict: someone wrote the Secret since we read it. Look again and decide again.
            fresh = await self.kube.get_secret(p.namespace, p.secret)
            if fresh is None:
                return WriteBack(Landing.HELD, 404)
            source = fresh
        return WriteBack(Landing.HELD, status)

    async def _store(self, p: Pending) -> None:
        async with self._lock:
            store = await self.kube.get_secret(self.namespace, self.secret_name)
            entry = p.old_grant
            if store is None:
                await self.kube.create_secret(self.namespace, _custody_body(self.secret_name, {entry: p.to_bytes()}))
            elif store.data.get(entry) != p.to_bytes():
                data = {**store.data, entry: p.to_bytes()}
                await self.kube.replace_secret(self.namespace, self.secret_name, _custody_body(self.secret_name, data, store))
            self._unsaved.discard(entry)

    async def _drop(self, p: Pending) -> None:
        self._pending.pop(p.old_grant, None)
        self._unsaved.discard(p.old_grant)
        async with self._lock:
            try:
                store = await self.kube.get_secret(self.namespace, self.secret_name)
                if store is None or p.old_grant not in store.data:
                    return
                data = {k: v for k, v in store.data.items() if k != p.old_grant}
                await self.kube.replace_secret(self.namespace, self.secret_name, _custody_body(self.secret_name, data, store))
            except ApiException as e:
                # Harmless: a stale entry is recognised as landed (the Secret holds the token) and dropped later.
                log.warning("custody: removing a landed entry failed (HTTP %s)", e.status)

    async def discard(self, p: Pending) -> None:
        """A pending token of no use any more (revoked at HubSpot): out of memory and of the custody Secret."""
        await self._drop(p)

    def forget(self, old_grant: str) -> None:
        self._pending.pop(old_grant, None)
        self._unsaved.discard(old_grant)


def _with_token(src: SecretView, p: Pending) -> dict:
    data = dict(src.data)
    data[p.key] = p.token.encode()
    annotations = {**src.annotations, ROTATION_ANNOTATION: f"{p.old_grant}.{p.new_grant}"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": src.type,
        "metadata": {
            "name": src.name,
            "resourceVersion": src.resource_version,
            "labels": src.labels,
            "annotations": annotations,
            "ownerReferences": src.owner_refs,
            "finalizers": src.finalizers,  # a replace without them would drop them
        },
        "data": data,
    }


def _custody_body(name: str, data: dict[str, bytes], existing: SecretView | None = None) -> dict:
    md: dict = {"name": name, "labels": {CUSTODY_LABEL: "true", "app.kubernetes.io/managed-by": "hubspot-token-operator"}}
    if existing is not None:
        md["resourceVersion"] = existing.resource_version
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": md, "data": data}
