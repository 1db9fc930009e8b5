"""The operator's long-lived collaborators, built once at start-up and passed to every reconcile."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field

from kubernetes.client import ApiException

from . import metrics
from .clock import Clock
from .fingerprint import Fingerprinter
from .grants import GrantCache
from .hubspot import HubSpotClient
from .kube import Kube
from .settings import Settings

log = logging.getLogger(__name__)

FINGERPRINT_KEY = "key"


class AppRateLimiter:
    """Spreads refreshes per HubSpot app (client id): a token bucket, so a burst of due tokens after an
    outage or a restart is paced instead of hitting HubSpot's per-app limit all at once."""

    def __init__(self, rate: float, burst: int = 10) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, app_key: str) -> float:
        """Waits for a slot; returns how long it waited (seconds)."""
        waited = 0.0
        while True:
            async with self._lock:
                now = time.monotonic()
                tokens, last = self._buckets.get(app_key, (float(self.burst), now))
                tokens = min(float(self.burst), tokens + (now - last) * self.rate)
                if tokens >= 1:
                    self._buckets[app_key] = (tokens - 1, now)
                    return waited
                self._buckets[app_key] = (tokens, now)
                delay = (1 - tokens) / self.rate
            await asyncio.sleep(delay)
            waited += delay


@dataclass
class Runtime:
    settings: Settings
    kube: Kube
    clock: Clock
    fingerprints: Fingerprinter
    grants: GrantCache = field(default_factory=GrantCache)
    tokens: dict = field(default_factory=dict)  # (namespace, name) -> latest HubSpotToken body seen
    _clients: dict = field(default_factory=dict)
    limiter: AppRateLimiter | None = None

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = AppRateLimiter(self.settings.refreshes_per_second_per_app)

    def hubspot(self, base_url: str | None, api_version: str | None = None) -> HubSpotClient:
        url = (base_url or self.settings.hubspot_base_url).rstrip("/")
        gen = api_version or self.settings.default_oauth_api
        key = (url, gen)
        if key not in self._clients:
            self._clients[key] = HubSpotClient(
                url, api_generation=gen, now=self.clock.now, event_hooks={"response": [_count_response]}
            )
        return self._clients[key]

    def remember(self, body: dict) -> None:
        """Stores the newest body of a HubSpotToken (by resourceVersion), from watches and our own writes."""
        md = body.get("metadata", {})
        key = (md.get("namespace"), md.get("name"))
        old = self.tokens.get(key)
        if old is not None and _older(md.get("resourceVersion"), old["metadata"].get("resourceVersion")):
            return
        self.tokens[key] = body

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
