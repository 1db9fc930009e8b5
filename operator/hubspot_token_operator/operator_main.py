"""Starts and stops the operator's own machinery (runtime, work queue, metrics) inside Kopf's loop."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import REGISTRY, start_http_server

from . import health
from .clock import Clock, follow_simulator
from .controller import reconcile
from .kube import Kube
from .metrics import TokenCollector
from .runtime import Runtime, load_fingerprinter
from .settings import Settings
from .workqueue import WorkQueue

log = logging.getLogger(__name__)


class OperatorContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.runtime: Runtime | None = None
        self.queue: WorkQueue | None = None
        self._tasks: list[asyncio.Task] = []
        self._collector: TokenCollector | None = None
        self._health = None
        self.started = False

    async def start(self) -> None:
        kube = Kube.from_environment()
        fps = await load_fingerprinter(kube, self.settings)
        self.runtime = Runtime(settings=self.settings, kube=kube, clock=self.clock, fingerprints=fps)
        await self.runtime.custody.load()
        self.queue = WorkQueue(self.clock, self._reconcile, workers=self.settings.workers)
        await self.queue.start()
        if self.settings.time_source == "simulator":
            self._tasks.append(asyncio.create_task(follow_simulator(self.clock, self.settings.hubspot_base_url)))
        if self.settings.metrics_port:
            try:
                start_http_server(self.settings.metrics_port, addr="0.0.0.0")
            except OSError as e:
                log.warning("metrics endpoint not started on port %s: %s", self.settings.metrics_port, e)
            self._collector = TokenCollector(lambda: list(self.runtime.tokens.values()), lambda: self.clock.now().timestamp())
            REGISTRY.register(self._collector)
        if self.settings.health_port:
            self._health = await health.serve(self.settings.health_port, self.health, lambda: self.started)
        self.started = True
        log.info("operator started (workers=%s, HubSpot %s)", self.settings.workers, self.settings.hubspot_base_url)

    async def _reconcile(self, key):
        return await reconcile(self.runtime, key)

    def health(self) -> "health.Health":
        q = self.queue
        return health.judge(q.oldest_overdue(), q.longest_running(), len(q), len(self.runtime.custody))

    async def stop(self) -> None:
        """SIGTERM: stop taking work, let reconciles in flight finish (bounded), never cut a critical section."""
        grace = self.settings.shutdown_grace_seconds
        if self.queue:
            unfinished = await self.queue.stop(grace)
            if unfinished:
                log.warning("shutdown: %d reconcile(s) did not finish within %ss", unfinished, grace)
        if self.runtime:
            still = await self.runtime.drain_critical(grace)
            if still:
                log.error("shutdown: %d refresh(es) still in flight; their refresh tokens may be lost", still)
        for t in self._tasks:
            t.cancel()
        if self._health is not None:
            await self._health.cleanup()
        if self.runtime:
            await self.runtime.close()
        if self._collector:
            REGISTRY.unregister(self._collector)


_current: OperatorContext | None = None


def install(ctx: OperatorContext) -> None:
    global _current
    _current = ctx


def current() -> OperatorContext:
    if _current is None:
        raise RuntimeError("operator context not installed; start through `hubspot-token-operator run`")
    return _current

