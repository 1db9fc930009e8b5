"""Leader election on a coordination.k8s.io Lease: one replica of a release (one shard) does the work.

Why a Lease and not Kopf peering: Kopf peers of equal priority *pause each other* (all of them stop), and a
higher-priority peer pauses the rest only while it announces itself; neither hands over on a timer with a
bound on overlap. A Lease is what kube-controller-manager, cert-manager and client-go use: a holder that
renews, a standby that takes over when the holder has not renewed for the lease's whole duration (as the
standby itself observed it, so clock skew between nodes does not matter), and an optimistic-concurrency
write so that two standbys cannot both take it.

The guarantee we build on it: **a replica starts a HubSpot call only while its lease stays valid for
longer than that call's deadline** (`may_call`). A standby takes over no earlier than `duration` after the
last renewal it saw, which is after the holder *sent* that renewal; so the old holder's calls have ended
(succeeded or timed out) before the new holder can start one. Two replicas never call HubSpot for one grant
at the same time.

A holder that cannot renew within `renew_deadline` steps down: it stops taking work and lets reconciles in
flight finish (custody is never cut; no new HubSpot call is admitted), then waits as a standby; when it
leads again it re-reads custody and looks at every token from status. On SIGTERM it releases the lease, so
a drain hands over in one retry period.

The decisions are pure functions (`next_step`, `LeaderClock`) covered by unit tests; `Elector` does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Awaitable, Callable

from kubernetes.client import ApiException

log = logging.getLogger(__name__)


class NotLeading(Exception):
    """Raised instead of starting a HubSpot call that might not end while this replica surely leads."""


@dataclass(frozen=True)
class LeaseTimings:
    duration: float = 15.0  # a standby takes over after the lease went unrenewed this long
    renew_deadline: float = 10.0  # the holder steps down when it could not renew for this long
    retry_period: float = 2.0  # how often the holder renews and a standby looks

    def __post_init__(self) -> None:
        if not (0 < self.retry_period < self.renew_deadline < self.duration):
            raise ValueError("lease timings need 0 < retry period < renew deadline < duration")


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease that leader election reads."""

    holder: str | None
    duration_seconds: int
    renew_time: str | None
    transitions: int
    resource_version: str | None

    def version(self) -> tuple:
        """What changes whenever anyone writes the lease (a renewal changes renew_time and the version)."""
        return (self.holder, self.renew_time, self.resource_version)


class Step(Enum):
    CREATE = "create"  # no lease yet
    RENEW = "renew"  # ours
    TAKE = "take"  # released, or not renewed for its whole duration
    WAIT = "wait"  # someone else holds it


def next_step(record: LeaseRecord | None, me: str, unchanged_for: float) -> Step:
    """What to do with the lease as read. `unchanged_for`: seconds since this version was first seen."""
    if record is None:
        return Step.CREATE
    if record.holder == me:
        return Step.RENEW
    if not record.holder:
        return Step.TAKE
    if unchanged_for >= record.duration_seconds:
        return Step.TAKE
    return Step.WAIT


class LeaderClock:
    """What this replica may do, from when it last *sent* a renewal that the API server accepted.
    Monotonic seconds throughout; `now` is injectable for tests."""

    def __init__(self, timings: LeaseTimings, now: Callable[[], float] = time.monotonic) -> None:
        self.timings = timings
        self._now = now
        self.renewed_sent_at: float | None = None  # None: not leading

    def renewed(self, sent_at: float) -> None:
        self.renewed_sent_at = sent_at

    def lost(self) -> None:
        self.renewed_sent_at = None

    @property
    def leading(self) -> bool:
        return self.remaining() > 0

    def remaining(self) -> float:
        """Seconds until a standby may take over (0 when not leading)."""
        if self.renewed_sent_at is None:
            return 0.0
        return max(0.0, self.renewed_sent_at + self.timings.duration - self._now())

    def may_call(self, deadline: float) -> bool:
        """Whether a call that ends within `deadline` seconds ends while the lease is surely still ours."""
        return self.remaining() > deadline

    def admit(self, deadline: float) -> None:
        """The HubSpot client's gate: raises NotLeading unless `may_call(deadline)`."""
        if not self.may_call(deadline):
            raise NotLeading(f"the leader lease is not surely ours for the next {deadline:g}s")

    def must_step_down(self) -> bool:
        return self.renewed_sent_at is not None and self._now() - self.renewed_sent_at > self.timings.renew_deadline


def identity() -> str:
    """The pod name in a cluster: unique among live pods, and kept when the container restarts in the same
    pod, so a restarted process takes its own lease back at once (its old self is surely dead). Elsewhere
    host, pid and a random suffix, so two local processes never share an identity."""
    pod = os.environ.get("POD_NAME")
    return pod or f"{socket.gethostname()}-{os.getpid()}_{secrets.token_hex(3)}"


class Elector:
    """Runs the lease loop. `on_elected` runs each time this replica starts to lead; `on_lost` when it must
    step down (it could not renew in time, or someone else holds the lease). After `on_lost` the replica is
    a standby again and competes as before: after an API-server outage a lone replica simply takes its own
    lease back (it still names it), while with two replicas whoever renews or takes it first leads."""

    def __init__(
        self,
        kube,
        namespace: str,
        name: str,
        timings: LeaseTimings,
        on_elected: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        me: str | None = None,
    ) -> None:
        self.kube, self.namespace, self.name, self.timings = kube, namespace, name, timings
        self.on_elected, self.on_lost = on_elected, on_lost
        self.me = me or identity()
        self.clock = LeaderClock(timings)
        self._seen: tuple | None = None
        self._seen_at = time.monotonic()
        # The lease as our last write left it: while leading, the next renewal writes on top of it with no
        # GET (as client-go does). A 409 (someone wrote since) forgets it, and the next attempt reads again.
        self._mine: LeaseRecord | None = None
        self._task: asyncio.Task | None = None
        self._leading: asyncio.Task | None = None  # on_elected, running beside the renewals
        self._stopping = False
        self.elected = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="leader-election")

    async def _loop(self) -> None:
        log.info("leader election: lease %s/%s as %s", self.namespace, self.name, self.me)
        waiting_logged = False
        while not self._stopping:
            try:
                await self._attempt()
            except ApiException as e:
                log.warning("leader election: lease %s/%s: HTTP %s", self.namespace, self.name, e.status)
            if self.elected and (self.clock.must_step_down() or not self.clock.leading):
                log.error("leader election: lease %s/%s not renewed for %ss (or taken); stepping down",
                          self.namespace, self.name, self.timings.renew_deadline)
                self.clock.lost()
                self.elected = False
                await self._stop_leading()
                await self.on_lost()  # drains; then this replica is a standby again
                waiting_logged = False
            if not self.elected and not waiting_logged:
                log.info("standby: waiting for lease %s/%s", self.namespace, self.name)
                waiting_logged = True
            await asyncio.sleep(self.timings.retry_period)

    async def _attempt(self) -> None:
        if self.elected and self._mine is not None:
            record = self._mine  # renewing our own lease: what we wrote last is what is there, or a 409
        else:
            record = await self.kube.get_lease(self.namespace, self.name)
        self._mine = None
        now = time.monotonic()
        if record is None or record.version() != self._seen:
            self._seen, self._seen_at = (record.version() if record else None), now
        step = next_step(record, self.me, now - self._seen_at)
        if step is Step.WAIT:
            if self.elected:  # someone took it (we were partitioned longer than the lease): never act again
                self.clock.lost()
            return
        sent_at = time.monotonic()
        stamp = _micro_time()
        if step is Step.CREATE:
            written = await self.kube.create_lease(self.namespace, self.name, self._spec(stamp, stamp, 0))
        else:
            transitions = record.transitions + (0 if step is Step.RENEW else 1)
            acquire = stamp if step is Step.TAKE else None
            written = await self.kube.replace_lease(
                self.namespace, self.name, record.resource_version, self._spec(stamp, acquire, transitions))
        self.clock.renewed(sent_at)
        self._mine = written
        if self.elected and _failed(self._leading):
            log.warning("leader election: starting to lead failed (%s); trying again",
                        type(self._leading.exception()).__name__)
            self._leading = asyncio.create_task(self.on_elected(), name="leading")
        if not self.elected:
            log.info("leader election: acquired lease %s/%s (%s)", self.namespace, self.name, step.value)
            self.elected = True
            # Start-up work (reading custody) may be slow: the renewals go on meanwhile, or a slow API
            # server would make every new leader step down before it did anything, again and again.
            self._leading = asyncio.create_task(self.on_elected(), name="leading")

    async def _stop_leading(self) -> None:
        if self._leading is not None and not self._leading.done():
            self._leading.cancel()
            await asyncio.gather(self._leading, return_exceptions=True)
        self._leading = None

    def _spec(self, renew: str, acquire: str | None, transitions: int) -> dict:
        spec = {
            "holderIdentity": self.me,
            "leaseDurationSeconds": int(self.timings.duration),  # whole seconds: Settings.problems refuses others
            "renewTime": renew,
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = acquire
        return spec

    async def stop(self, release: bool) -> None:
        """Stops the loop; with `release`, hands the lease over at once (SIGTERM after a clean drain)."""
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_leading()
        if release and self.clock.leading:
            self.clock.lost()
            try:
                record = await self.kube.get_lease(self.namespace, self.name)
                if record is not None and record.holder == self.me:
                    await self.kube.replace_lease(self.namespace, self.name, record.resource_version, {
                        "holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _micro_time(),
                        "leaseTransitions": record.transitions,
                    })
                    log.info("leader election: released lease %s/%s", self.namespace, self.name)
            except ApiException as e:
                log.warning("leader election: releasing lease %s/%s failed: HTTP %s", self.namespace, self.name, e.status)


def _failed(task: asyncio.Task | None) -> bool:
    return task is not None and task.done() and not task.cancelled() and task.exception() is not None


def _micro_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
