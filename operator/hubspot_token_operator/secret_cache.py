"""The Secrets HubSpotTokens use, as last seen: reads without a GET per reconcile.

The operator already watches Secrets (a change wakes the tokens that use it, controller.py). This cache
keeps what that watch delivers, but only for Secrets some token in this shard reads or writes (the
token index says which), so its memory follows the number of tokens, not the number of Secrets in the
cluster. Every read of such a Secret is then answered from memory; a miss (a Secret not seen yet, e.g.
referenced by a token created a moment ago) is one GET, remembered.

Never staler than the API server lets it be:
- our own writes (create/replace, custody write-backs included) are stored from the server's response at
  once, before their watch echo arrives (kube.Kube does this for every write);
- a watch event is stored only if it is not older than what is held (resourceVersion), so a late echo
  cannot undo a newer write;
- a GET answer is stored only if no watch event for that Secret arrived while it was in flight, so a
  404 read just before a creation cannot hide the Secret;
- a write refused with 409 (someone else wrote since) drops the entry: the next read goes to the server.
Writes are compare-and-swap on resourceVersion, so a stale read costs one retry, never a lost update.

One read is held to more than that: the refresh token about to be sent to HubSpot (`confirmed`). A
replica that has just become the leader may hold a refresh-token Secret as its watch last showed it, a
moment before the old leader wrote back the refresh token HubSpot rotated: sending the spent one costs the
grant (invalid_grant). So `distrust` (on election) marks everything held as unconfirmed, and the first
`confirmed` read of each Secret after it is a GET (a watch event is no proof: the watch may lag); our own
writes confirm too.

Secrets no token uses yet are not dropped at once: the last RECENT_MAX of them (in the order the watch
delivered them) wait in a small bounded holding area, still updated by every watch event, so a token
applied together with its Secrets (the usual GitOps order: Secrets first) finds them without a GET. The
holding area is a fixed size, so memory still does not grow with the Secrets of the cluster.
"""

from __future__ import annotations

import base64
import sys
from collections import OrderedDict
from typing import TYPE_CHECKING, Awaitable, Callable

from .metrics import SECRET_CACHE_READS
from .shared_strings import shared

if TYPE_CHECKING:
    from .kube import SecretView

Key = tuple[str, str]
_ABSENT = None
RECENT_MAX = 1024  # Secrets seen by the watch that no token uses (yet): the newest are held, bounded


def view_from_body(body: dict) -> "SecretView":
    """A SecretView from a Secret as JSON (a watch event's body, or a raw API response)."""
    from .kube import SecretView

    md = body.get("metadata") or {}
    return SecretView(
        name=md.get("name", ""),
        namespace=shared(md.get("namespace", "")),
        data={sys.intern(k): base64.b64decode(v) for k, v in (body.get("data") or {}).items()},
        resource_version=md.get("resourceVersion", ""),
        labels=shared(md.get("labels") or {}),
        annotations=shared(md.get("annotations") or {}),
        owner_refs=[
            {"apiVersion": o.get("apiVersion"), "kind": o.get("kind"), "name": o.get("name"), "uid": o.get("uid"),
             "controller": o.get("controller"), "blockOwnerDeletion": o.get("blockOwnerDeletion")}
            for o in (md.get("ownerReferences") or [])
        ],
        type=body.get("type") or "Opaque",
        finalizers=list(md.get("finalizers") or []),
        deleting=bool(md.get("deletionTimestamp")),
        uid=md.get("uid", ""),
    )


def _older(rv: str | None, than: str | None) -> bool:
    if rv and than and rv.isdigit() and than.isdigit():
        return int(rv) < int(than)
    return False


class SecretCache:
    def __init__(self, fetch: Callable[[str, str], Awaitable["SecretView | None"]]) -> None:
        self._fetch = fetch
        self._entries: dict[Key, "SecretView | None"] = {}  # None: seen deleted / known absent
        self._events: dict[Key, int] = {}  # watch events seen per Secret (guards GETs racing an event)
        self._recent: OrderedDict[Key, "SecretView"] = OrderedDict()  # not wanted (yet), newest last
        self._confirmed: set[Key] = set()  # read from the API server, or written by us, since `distrust`
        self.wanted: Callable[[str, str], bool] = lambda ns, name: True
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, namespace: str, name: str) -> "SecretView | None":
        key = (namespace, name)
        if key in self._recent and self.wanted(namespace, name):
            self._entries[key] = self._recent.pop(key)  # a token uses it now: the watch keeps it current
        if key in self._entries:
            self._count("hit")
            return self._entries[key]
        self._count("miss")
        seen = self._events.get(key, 0)
        view = await self._fetch(namespace, name)
        if self._events.get(key, 0) == seen and self.wanted(namespace, name):
            self._keep(key, view)
        return view

    async def confirmed(self, namespace: str, name: str) -> "SecretView | None":
        """Like `get`, but never an entry held from before the last `distrust`: that one is read again."""
        key = (namespace, name)
        if key in self._confirmed and key in self._entries:
            return await self.get(namespace, name)
        seen = self._events.get(key, 0)
        view = await self._fetch(namespace, name)
        if self._events.get(key, 0) == seen:
            self._confirmed.add(key)
            if self.wanted(namespace, name):
                self._keep(key, view)
        return view

    def distrust(self) -> None:
        """Everything held may lag behind writes another replica made: confirm before relying on it."""
        self._confirmed.clear()

    def _count(self, result: str) -> None:
        if result == "hit":
            self.hits += 1
        else:
            self.misses += 1
        SECRET_CACHE_READS.labels(result=result).inc()

    def peek(self, namespace: str, name: str) -> "SecretView | None":
        """What is held, without ever calling the server (None when absent or not held)."""
        return self._entries.get((namespace, name))

    def observe(self, event_type: str | None, body: dict) -> None:
        """A watch event for a Secret (type None: from a listing). Kept only if some token uses it."""
        md = body.get("metadata") or {}
        key = (md.get("namespace", ""), md.get("name", ""))
        if key not in self._entries and not self.wanted(*key):
            self._hold(key, None if event_type == "DELETED" else body)
            return
        self._events[key] = self._events.get(key, 0) + 1
        if event_type == "DELETED":
            self._entries[key] = _ABSENT
            return
        self._keep(key, view_from_body(body))

    def wrote(self, view: "SecretView") -> None:
        """The server's answer to our own write: newer than anything the watch has shown yet."""
        key = (view.namespace, view.name)
        self._recent.pop(key, None)
        self._confirmed.add(key)
        if key in self._entries or self.wanted(*key):
            self._keep(key, view)

    def invalidate(self, namespace: str, name: str) -> None:
        self._confirmed.discard((namespace, name))
        self._entries.pop((namespace, name), None)
        self._recent.pop((namespace, name), None)

    def _hold(self, key: Key, body: dict | None) -> None:
        """A Secret no token uses: held among the newest RECENT_MAX, or forgotten when deleted."""
        self._recent.pop(key, None)
        if body is None:
            return
        self._recent[key] = view_from_body(body)
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)

    def prune(self, namespace: str) -> int:
        """Drops what no token in `namespace` uses any more (after a token was deleted or edited)."""
        gone = [k for k in self._entries if k[0] == namespace and not self.wanted(*k)]
        for k in gone:
            del self._entries[k]
            self._events.pop(k, None)
            self._confirmed.discard(k)
        return len(gone)

    def _keep(self, key: Key, view: "SecretView | None") -> None:
        held = self._entries.get(key)
        if view is not None and held is not None and _older(view.resource_version, held.resource_version):
            return
        self._entries[key] = view
