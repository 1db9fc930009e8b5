"""The operator's long-lived collaborators, built once at start-up and passed to every reconcile."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubernetes.client import ApiException

from . import conditions as cond
from . import metrics, tenancy
from .audit_reads import AuditReads
from .clock import Clock
from .custody import Custody
from .fingerprint import Fingerprinter
from .grants import GrantCache
from .hubspot import HubSpotClient
from .kube import Kube
from .leadership import LeaderClock, NotLeading
from .model import LabelSelector
from .schedule import first_look
from .settings import Settings
from .status_model import parse_status
from .shared_strings import shared
from .sharding import TokenIndex, parse_selector

log = logging.getLogger(__name__)

FINGERPRINT_KEY = "key"


class AppRateLimiter:
    """Spreads refreshes per HubSpot app (client id), so a burst of due tokens after an outage or a restart
    is paced instead of hitting HubSpot's per-app limit all at once.

    A true token bucket: a HubSpot call happens only after one unit of capacity was spent for it, at that
    moment, so in any window of T seconds an app sees at most `burst + rate * T` calls, however late or
    bunched the callers come back. Nothing waits inside a worker: a caller without capacity is told when
    to come back (each one its own slot, `1/rate` apart, so they do not return all at once) and tries again
    then, for real.

    The work queue's gate (`Runtime.refresh_gate`) spends the capacity before a worker is taken (a
    *ticket*), so a paced token waits in the queue and is reconciled once, at its slot.
    """

    def __init__(self, rate: float, burst: int = 10) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # app -> (capacity, monotonic time of reading)
        self._next_slot: dict[str, float] = {}  # app -> the next come-back time handed out
        self._tickets: dict[object, str] = {}  # caller -> app whose capacity the gate spent for it

    def take(self, app: str, caller: object, now: float | None = None) -> float:
        """Spends one call of `app`'s capacity for `caller` (or the ticket the gate took for it). Returns 0.0
        (call now) or the seconds after which to come back and ask again."""
        if self._tickets.pop(caller, None) == app:
            return 0.0
        return self._spend(app, time.monotonic() if now is None else now)

    def ticket(self, app: str, caller: object, now: float | None = None) -> float:
        """The gate's question before a worker is spent on a token due to refresh: takes a ticket (0.0), or
        says when to come back."""
        if self._tickets.get(caller) == app:
            return 0.0
        wait = self._spend(app, time.monotonic() if now is None else now)
        if wait == 0.0:
            self._tickets[caller] = app
        return wait

    def release(self, caller: object) -> None:
        """A reconcile that did not call HubSpot gives its ticket up (spent capacity is never used late)."""
        self._tickets.pop(caller, None)

    def _spend(self, app: str, now: float) -> float:
        capacity, last = self._buckets.get(app, (float(self.burst), now))
        capacity = min(float(self.burst), capacity + (now - last) * self.rate)
        if capacity >= 1.0:
            self._buckets[app] = (capacity - 1.0, now)
            return 0.0
        self._buckets[app] = (capacity, now)
        slot = max(now + (1.0 - capacity) / self.rate, self._next_slot.get(app, 0.0))
        self._next_slot[app] = slot + 1.0 / self.rate
        return slot - now


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    clock: Clock
    fingerprints: Fingerprinter
    grants: GrantCache = field(default_factory=GrantCache)
    tokens: dict = field(default_factory=dict)  # (namespace, name) -> latest HubSpotToken body seen
    _clients: dict = field(default_factory=dict)
    # (namespace, name) -> resourceVersion of the target Secret we just wrote: its watch event is our own
    # echo and needs no reconcile (the reconcile that wrote it already scheduled what comes next).
    own_writes: dict = field(default_factory=dict)
    # (namespace, name) -> resourceVersion of the token's status as our last status write left it: a watch
    # event at that version is our own echo, even when it arrived before the write's answer.
    own_status: dict = field(default_factory=dict)
    _grant_locks: dict = field(default_factory=dict)
    limiter: AppRateLimiter | None = None
    custody: Custody | None = None
    # fingerprint -> value of tokens we published, so a deleted target can be restored even when no other
    # copy is at hand (e.g. the source Secret of a private app now holds a rejected candidate).
    held: dict = field(default_factory=dict, repr=False)
    _critical: set = field(default_factory=set)
    index: TokenIndex = field(default_factory=TokenIndex)  # which tokens use which Secret, per namespace
    selector: LabelSelector | None = None  # this release's shard of HubSpotTokens (None: all)
    leader: LeaderClock | None = None  # None without leader election: this process always leads
    apps: dict = field(default_factory=dict)  # (namespace, name) -> the HubSpot app (client id) it last used
    audit_reads: AuditReads = field(default_factory=AuditReads)  # one audit-log read per credential (audit_reads.py)
    # (namespace, name) -> the input Secrets of a token another release serves (--token-selector): never a
    # target here either, whichever shard the tenant labels their own token into (tenancy).
    other_shard_inputs: dict = field(default_factory=dict)
    closing: bool = False  # shutting down: no new HubSpot call starts (those in flight run to their end)

    def __post_init__(self) -> None:
        if self.selector is None and self.settings.token_selector:
            self.selector = parse_selector(self.settings.token_selector)
        if self.limiter is None:
            self.limiter = AppRateLimiter(self.settings.refreshes_per_second_per_app)
        secrets = getattr(self.kube, "secret_cache", None)
        if secrets is not None:  # the Secret cache keeps only what some token of this shard uses
            secrets.wanted = lambda ns, name: bool(self.index.using_secret(ns, name))
        if self.custody is None:
            self.custody = Custody(self.kube, self.fingerprints, self.settings.operator_namespace,
                                   self.settings.custody_secret)

    def remember_published(self, value: bytes | str | None) -> None:
        if value:
            text = value.decode() if isinstance(value, bytes) else value
            if len(self.held) > 50000:
                self.held.pop(next(iter(self.held)))
            self.held[self.fingerprints.of(text)] = text

    async def critical(self, coro):
        """Runs `coro` shielded from cancellation: a shutdown (SIGTERM) cancels the reconcile around it,
        never the work inside (a HubSpot refresh and the custody of the refresh token it returned).
        `drain_critical` lets the operator wait for such work before it exits."""
        task = asyncio.ensure_future(coro)
        self._critical.add(task)
        task.add_done_callback(self._critical.discard)
        return await asyncio.shield(task)

    async def drain_critical(self, timeout: float) -> int:
        """Waits (bounded) for critical sections in flight, including any that start meanwhile; returns
        how many were still running at the end."""
        deadline = time.monotonic() + timeout
        while pending := [t for t in self._critical if not t.done()]:
            left = deadline - time.monotonic()
            if left <= 0:
                return len(pending)
            await asyncio.wait(pending, timeout=left)
        return 0

    def grant_lock(self, grant_fp: str | None) -> asyncio.Lock:
        if grant_fp is None:
            return asyncio.Lock()
        return self._grant_locks.setdefault(grant_fp, asyncio.Lock())

    def hubspot(self, base_url: str | None, api_version: str | None = None) -> HubSpotClient:
        if tenancy.endpoint_refusal(base_url, self.settings.allowed_endpoints()) is not None:
            raise PermissionError("HubSpot endpoint not on the operator's allow-list")  # checked earlier too
        url = (base_url or self.settings.hubspot_base_url).rstrip("/")
        gen = api_version or self.settings.default_oauth_api
        key = (url, gen)
        if key not in self._clients:
            self._clients[key] = HubSpotClient(
                url, api_generation=gen, now=self.clock.now, observe=metrics.observe_api_call,
                admit=self._admit, deadline=self.settings.hubspot_call_deadline,
            )
        return self._clients[key]

    def first_look(self, body: dict):
        """When to look at a token just learned about (schedule.first_look decides)."""
        status = body.get("status") or {}
        return first_look(self.clock.now(), parse_status(status).next_refresh_at,
                          cond.is_true(status.get("conditions"), cond.READY), body["metadata"].get("uid") or "")

    def refresh_gate(self, key) -> "datetime | None":
        """The work queue's gate: a token whose refresh time has come, for an app with no capacity left
        now, waits in the queue for its slot instead of taking a worker (AppRateLimiter)."""
        body = self.tokens.get(key)
        app = self.apps.get(key) or (self._app_from_cache(key[0], body) if body else None)
        if app is None or body is None:
            return None  # not known without a read: the refresh itself asks the limiter
        now = self.clock.now()
        st = parse_status(body.get("status") or {})
        if st.next_refresh_at is None or st.next_refresh_at > now:
            return None
        sibling = self.grants.latest(st.grant_fingerprint)
        if sibling is not None and (st.last_refresh_time is None or sibling.issued_at > st.last_refresh_time):
            return None  # a sibling of the same grant has just refreshed: this one reuses it, no call
        wait = self.limiter.ticket(app, key)
        return now + timedelta(seconds=wait) if wait > 0 else None

    def _app_from_cache(self, namespace: str, body: dict) -> str | None:
        """The client id of an OAuth token's app, if its client Secret is in the Secret cache (no read)."""
        ref = ((body.get("spec") or {}).get("oauth") or {}).get("clientSecretRef") or {}
        cache = getattr(self.kube, "secret_cache", None)
        held = cache.peek(namespace, ref["name"]) if cache is not None and ref.get("name") else None
        return held.text(ref.get("clientIdKey") or "client_id") if held is not None else None

    def leading(self) -> bool:
        """Whether this replica does the work (always, without leader election)."""
        return self.leader is None or self.leader.leading

    def _admit(self, deadline: float) -> None:
        if self.closing:
            raise NotLeading("the operator is shutting down: no new HubSpot call starts")
        if self.leader is not None:
            self.leader.admit(deadline)

    def remember(self, body: dict, *, own_write: bool = False) -> bool:
        """Stores the newest body of a HubSpotToken (by resourceVersion), from watches and our own writes.
        Returns False when nothing new was learned (an older version, or the echo of our own write). The
        answer to our own write (`own_write`) never brings back a token the watch has meanwhile deleted."""
        md = body.get("metadata", {})
        key = (md.get("namespace"), md.get("name"))
        old = self.tokens.get(key)
        if own_write and old is None:
            return False
        if own_write:
            self.own_status[key] = md.get("resourceVersion")
        if old is not None:
            rv, old_rv = md.get("resourceVersion"), old["metadata"].get("resourceVersion")
            if rv == old_rv or _older(rv, old_rv):
                if rv != old_rv:
                    log.debug("%s/%s: ignoring version %s, older than %s", *key, rv, old_rv)
                return False
        self.tokens[key] = slim(body)
        return True

    def drop(self, key: tuple[str, str]) -> None:
        """Forgets what was learned from a token that is gone from this shard (deleted or relabelled)."""
        self.index.drop(*key)
        self.apps.pop(key, None)
        self.own_status.pop(key, None)
        metrics.forget_token(*key)  # its counter series leave /metrics
        self.audit_reads.forget(key)
        secrets = getattr(self.kube, "secret_cache", None)
        if secrets is not None:
            secrets.prune(key[0])  # Secrets no token uses any more leave the cache

    def note_other_shard(self, key: tuple[str, str], spec: dict | None) -> None:
        """Records (or, with None, forgets) the input Secrets of a token this release does not serve."""
        names = frozenset(tenancy.input_secret_names(spec)) if spec is not None else None
        if names:
            self.other_shard_inputs[key] = names
        else:
            self.other_shard_inputs.pop(key, None)

    def inputs_of_others(self, namespace: str, me: str) -> set[str]:
        """The input Secrets of every other token of the namespace, this release's and other shards'."""
        out = tenancy.inputs_of_other_tokens(self.tokens, namespace, me)
        for (ns, name), names in list(self.other_shard_inputs.items()):
            if ns == namespace and name != me:
                out |= names
        return out

    def is_own_status_echo(self, key: tuple[str, str], resource_version: str | None) -> bool:
        """Whether a token's watch event at this version is the echo of our own status write."""
        return bool(resource_version) and self.own_status.get(key) == resource_version

    def is_own_echo(self, namespace: str, name: str, resource_version: str | None) -> bool:
        if resource_version and self.own_writes.get((namespace, name)) == resource_version:
            del self.own_writes[(namespace, name)]
            return True
        return False

    async def close(self) -> None:
        for c in self._clients.values():
            await c.aclose()


_BULK_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(body: dict) -> dict:
    """The body as the runtime stores it: without what no decision reads (managedFields and kubectl's
    last-applied copy were ~15 KiB of the ~40 KiB each token cost at 3,000 tokens), and with its keys and
    short strings shared with every other stored token (shared_strings: about half of what remains)."""
    md = body.get("metadata") or {}
    slim_md = {k: v for k, v in md.items() if k != "managedFields"}
    if "annotations" in md:
        slim_md["annotations"] = user_annotations(md)
    return shared({**body, "metadata": slim_md})


def user_annotations(metadata: dict) -> dict:
    """A token's annotations without kubectl's last-applied copy (what slim keeps of them)."""
    return {k: v for k, v in (metadata.get("annotations") or {}).items() if k not in _BULK_ANNOTATIONS}


def _older(rv: str | None, than: str | None) -> bool:
    if rv and than and rv.isdigit() and than.isdigit():
        return int(rv) < int(than)
    return False


async def load_fingerprinter(kube: Kube, settings: Settings) -> Fingerprinter:
    """The HMAC key lives in an operator-owned Secret so fingerprints survive restarts; created if absent."""
    ns, name = settings.operator_namespace, settings.fingerprint_secret
    existing = await kube.get_secret(ns, name)
    if existing is None or not existing.data.get(FINGERPRINT_KEY):
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "hubspot-token-operator",
                                                   "hubspot-operator.dev/managed-by": "hubspot-token-operator"}},
            "data": {FINGERPRINT_KEY: secrets.token_bytes(32)},
        }
        try:
            existing = await kube.create_secret(ns, body)
        except ApiException as e:
            if e.status != 409:
                raise
            existing = await kube.get_secret(ns, name)
    return Fingerprinter(existing.data[FINGERPRINT_KEY])
