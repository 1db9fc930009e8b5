"""Starts and stops the operator's own machinery (runtime, work queue, leader election, metrics) inside
Kopf's loop.

Every replica watches (so a standby has warm state); only the replica holding the lease runs the work
queue (leadership.py). Without leader election (`--no-leader-elect`) the process leads at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kubernetes.client import ApiException
from prometheus_client import REGISTRY, start_http_server

from . import health, metrics
from .clock import Clock, follow_simulator
from .controller import reconcile
from .grants import GrantCache
from .kube import Kube
from .leadership import Elector, LeaseTimings
from .metrics import TokenCollector
from .runtime import Runtime, load_fingerprinter
from .settings import Settings
from .workqueue import WorkQueue, describe_error

log = logging.getLogger(__name__)

CUSTODY_LOOP_SECONDS = 10.0  # how often tokens held in memory only are offered to the API server again
CUSTODY_RELOAD_SECONDS = 60.0  # how often the leader reads the custody Secret again


class OperatorContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.runtime: Runtime | None = None
        self.queue: WorkQueue | None = None
        self._tasks: list[asyncio.Task] = []
        self._collector: TokenCollector | None = None
        self._health = None
        self.elector: Elector | None = None
        self.watching = False  # start-up done: watches feed the runtime (a standby is ready too)
        self.started = False  # leading: the work queue runs

    async def start(self) -> None:
        kube = await Kube.from_environment()
        metrics.SECRET_CACHE_ENTRIES.set_function(lambda: len(kube.secret_cache))
        fps = await load_fingerprinter(kube, self.settings)
        self.runtime = Runtime(settings=self.settings, kube=kube, clock=self.clock, fingerprints=fps)
        self.queue = WorkQueue(self.clock, self._reconcile, workers=self.settings.workers,
                               gate=self.runtime.refresh_gate)
        self._tasks.append(asyncio.create_task(self._keep_custody()))
        if self.settings.time_source == "simulator":
            self._tasks.append(asyncio.create_task(follow_simulator(self.clock, self.settings.hubspot_base_url)))
        if self.settings.metrics_port:
            try:
                start_http_server(self.settings.metrics_port, addr="0.0.0.0")
            except OSError as e:
                log.warning("metrics endpoint not started on port %s: %s", self.settings.metrics_port, e)
            # Per-token gauges come from the leader only: a standby's copies would double every alert.
            self._collector = TokenCollector(lambda: list(self.runtime.tokens.values()) if self.started else [],
                                             lambda: self.clock.now().timestamp())
            REGISTRY.register(self._collector)
        if self.settings.health_port:
            self._health = await health.serve(self.settings.health_port, self.health, lambda: self.watching)
        self.watching = True
        if self.settings.leader_elect:
            self.elector = Elector(
                kube, self.settings.operator_namespace, self.settings.lease_name(),
                LeaseTimings(self.settings.lease_duration, self.settings.lease_renew_deadline,
                             self.settings.lease_retry_period),
                on_elected=self._lead, on_lost=self._step_down,
            )
            self.runtime.leader = self.elector.clock
            self.elector.start()
        else:
            await self._lead()

    async def _lead(self) -> None:
        """This replica now does the work: read custody (the previous leader may have written it), then
        look at every token; the schedule comes from status, so tokens not due cost no call and no write.
        No token is looked at before custody is read: its newest refresh token may be there. Wakes queued
        while this replica stood by are dropped: every token is scheduled afresh, due ones first."""
        delay = 1.0
        while True:
            try:
                await self.runtime.custody.load()
                break
            except ApiException as e:
                log.warning("custody: reading the custody Secret failed (HTTP %s); no work until it is read", e.status)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 30.0)
        self.runtime.kube.secret_cache.distrust()  # the former leader's last writes may not have reached us yet
        self.queue.clear()
        await self.queue.start()
        for key, body in list(self.runtime.tokens.items()):
            self.queue.schedule(key, self.runtime.first_look(body))
        self.started = True
        metrics.LEADER.set(1)
        log.info("operator started (workers=%s, HubSpot %s)", self.settings.workers, self.settings.hubspot_base_url)

    async def _step_down(self) -> None:
        """The lease is no longer surely ours: no new HubSpot call is admitted (leadership.LeaderClock);
        stop taking work and let what is in flight finish, keeping custody. Then wait as a standby."""
        metrics.LEADER.set(0)
        self.started = False
        unfinished, still = await self._drain(self.settings.shutdown_grace_seconds)
        self.runtime.grants = GrantCache()  # whoever leads next may refresh meanwhile: trust only status
        log.warning("standby again after losing the lease (%d reconcile(s), %d refresh(es) unfinished)",
                    unfinished, still)

    async def _drain(self, grace: float) -> tuple[int, int]:
        """Reconciles and critical sections in flight, then custody, all within one `grace`: a refresh token
        held in memory only is stored before anyone else may lead (a last attempt; on failure the custody
        loop goes on trying, and says so)."""
        deadline = time.monotonic() + grace
        # Side by side, each with the whole grace: the reconciles in flight and the critical sections inside
        # them (a HubSpot call and the custody of what it returned), which outlive their reconcile's cancel.
        unfinished, still = await asyncio.gather(
            self.queue.stop(grace) if self.queue is not None else asyncio.sleep(0, 0),
            self.runtime.drain_critical(grace) if self.runtime is not None else asyncio.sleep(0, 0))
        if self.runtime is None:
            return unfinished, 0
        if self.runtime.custody.unsaved:
            try:
                left = await asyncio.wait_for(self.runtime.custody.flush(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                left = self.runtime.custody.unsaved
            if left:
                log.error("custody: %d rotated refresh token(s) are held in this process's memory only", left)
        return unfinished, still

    async def _keep_custody(self) -> None:
        """On every replica: tokens held in memory only are stored as soon as the API server takes them.
        On the leader: the custody Secret is read again now and then, so an entry a former leader stored
        after this one was elected (its last critical section ending late) is written back too."""
        last_load = time.monotonic()
        while True:
            await asyncio.sleep(CUSTODY_LOOP_SECONDS)
            try:
                if self.runtime.custody.unsaved:
                    await self.runtime.custody.flush()
                if self.started and time.monotonic() - last_load >= CUSTODY_RELOAD_SECONDS:
                    await self.runtime.custody.load()
                    last_load = time.monotonic()
            except Exception as e:  # noqa: BLE001 - the loop must outlive any one failure
                log.warning("custody loop: %s", describe_error(e))

    async def _reconcile(self, key):
        return await reconcile(self.runtime, key)

    def health(self) -> "health.Health":
        q = self.queue
        if not self.started:
            alive = self.elector is not None and self.elector._task is not None and not self.elector._task.done()
            return health.judge_standby(alive, len(q) if q is not None else 0)
        return health.judge(q.oldest_overdue(), q.longest_running(), len(q), len(self.runtime.custody))

    async def stop(self) -> None:
        """SIGTERM: no new HubSpot call starts, reconciles in flight finish and custody is stored, all within
        `shutdown_grace_seconds` (the chart's terminationGracePeriodSeconds is 10 s more); a critical section
        is never cut."""
        grace = self.settings.shutdown_grace_seconds
        if self.runtime:
            self.runtime.closing = True
        unfinished, still = await self._drain(grace)
        if unfinished:
            log.warning("shutdown: %d reconcile(s) did not finish within %ss", unfinished, grace)
        if still:
            log.error("shutdown: %d refresh(es) still in flight; their refresh tokens may be lost", still)
        if self.elector:
            # Hand the lease over at once only if nothing of ours is in flight. Otherwise let it run out: a
            # standby takes it after the lease duration, by when every call this replica was let start has
            # ended (leadership.LeaderClock), so two replicas never call HubSpot for one grant.
            await self.elector.stop(release=not still)
        metrics.LEADER.set(0)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._health is not None:
            await self._health.cleanup()
        if self.runtime:
            await self.runtime.close()
            await self.runtime.kube.close()
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

