"""The operator's long-lived collaborators, built once at start-up and passed to every reconcile."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field

from kubernetes.client import ApiException

from . import conditions as cond
from . import metrics, tenancy
from .clock import Clock
from .custody import Custody
from .fingerprint import Fingerprinter
from .grants import GrantCache
from .hubspot import HubSpotClient
from .kube import Kube
from .leadership import LeaderClock
from .model import LabelSelector
from .schedule import first_look
from .settings import Settings
from .status_model import parse_status
from .sharding import TokenIndex, parse_selector

log = logging.getLogger(__name__)

FINGERPRINT_KEY = "key"


class AppRateLimiter:
    """Spreads refreshes per HubSpot app (client id): a token bucket, so a burst of due tokens after an
    outage or a restart is paced instead of hitting HubSpot's per-app limit all at once.

    It never makes a worker wait: `reserve` either grants a slot now (0.0) or books one in the future and
    returns how long until then; the caller requeues the token for that time and gets the booked slot
    when it comes back. Workers stay free for other work (Secret restores, other apps) meanwhile.
    """

    def __init__(self, rate: float, burst: int = 10) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._booked: dict[object, float] = {}  # caller key -> monotonic time of its booked slot

    def reserve(self, app_key: str, caller: object, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        booked = self._booked.get(caller)
        if booked is not None:
            if booked <= now:
                del self._booked[caller]
                return 0.0
            return booked - now
        tokens, last = self._buckets.get(app_key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate) - 1
        self._buckets[app_key] = (tokens, now)
        if tokens >= 0:
            return 0.0
        wait = -tokens / self.rate
        self._booked[caller] = now + wait
        return wait


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

    def __post_init__(self) -> None:
        if self.selector is None and self.settings.token_selector:
            self.selector = parse_selector(self.settings.token_selector)
        if self.limiter is None:
            self.limiter = AppRateLimiter(self.settings.refreshes_per_second_per_app)
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
                url, api_generation=gen, now=self.clock.now, event_hooks={"response": [_count_response]},
                admit=self._admit, deadline=self.settings.hubspot_call_deadline,
            )
        return self._clients[key]

    def first_look(self, body: dict):
        """When to look at a token just learned about (schedule.first_look decides)."""
        status = body.get("status") or {}
        return first_look(self.clock.now(), parse_status(status).next_refresh_at,
                          cond.is_true(status.get("conditions"), cond.READY), body["metadata"].get("uid") or "")

    def _admit(self, deadline: float) -> None:
        if self.leader is not None:
            self.leader.admit(deadline)

    def remember(self, body: dict) -> bool:
        """Stores the newest body of a HubSpotToken (by resourceVersion), from watches and our own writes.
        Returns False when nothing new was learned (an older version, or the echo of our own write)."""
        md = body.get("metadata", {})
        key = (md.get("namespace"), md.get("name"))
        old = self.tokens.get(key)
        if old is not None:
            rv, old_rv = md.get("resourceVersion"), old["metadata"].get("resourceVersion")
            if rv == old_rv or _older(rv, old_rv):
                if rv != old_rv:
                    log.debug("%s/%s: ignoring version %s, older than %s", *key, rv, old_rv)
                return False
        self.tokens[key] = body
        return True

    def is_own_echo(self, namespace: str, name: str, resource_version: str | None) -> bool:
        if resource_version and self.own_writes.get((namespace, name)) == resource_version:
            del self.own_writes[(namespace, name)]
            return True
        return False

    async def close(self) -> None:
        for c in self._clients.values():
            await c.aclose()


async def _count_response(response) -> None:
    metrics.HUBSPOT_REQUESTS.labels(code=str(response.status_code)).inc()


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
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "hubspot-token-operator"}},
            "data": {FINGERPRINT_KEY: secrets.token_bytes(32)},
        }
        try:
            existing = await kube.create_secret(ns, body)
        except ApiException as e:
            if e.status != 409:
                raise
            existing = await kube.get_secret(ns, name)
    return Fingerprinter(existing.data[FINGERPRINT_KEY])
