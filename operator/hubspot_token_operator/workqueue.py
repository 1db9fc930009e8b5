"""A delayed, de-duplicating work queue (the controller-runtime pattern, in asyncio).

Each key is processed by at most one worker at a time. Scheduling a key that is already waiting keeps
the earlier due time; scheduling a key while it is being processed re-runs it afterwards. Due times are
on the operator's `Clock`, so a jump of simulated time is noticed at once.

Two lanes, so a change never waits behind a round: a key scheduled with no time (`schedule(key)`: a
watch saw something change, e.g. a deleted Secret to restore) is *urgent* and is taken before any key
that merely came due, however many of those are waiting. And a `gate` may look at a key that came due
before a worker is spent on it: it returns None (run it now) or when to come back (e.g. the key's
HubSpot app has no rate-limit capacity now), so paced keys wait in the heap, not in a reconcile.

A wake that may be the echo of the reconcile running for that key (the watch event of its own write can
arrive before the write's answer) is scheduled with `unless`: a check that runs once that reconcile is
over, when the answer has been recorded. The key runs again only if some check says it was not an echo,
so a token's own write never costs a second reconcile.

Stopping drains: no new work is taken, reconciles in flight get a bounded grace to finish, and only then
are they cancelled (and a cancel never cuts a critical section: see `Runtime.critical`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import traceback
from datetime import datetime, timedelta
from typing import Awaitable, Callable, Hashable

from . import metrics
from .clock import Clock

log = logging.getLogger(__name__)


def describe_error(e: BaseException) -> str:
    """Error class, HTTP status and where it was raised, but never the message: API error bodies and
    library messages can echo request data, and request data can hold tokens."""
    where = ""
    tb = traceback.extract_tb(e.__traceback__)
    if tb:
        frame = tb[-1]
        where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    status = getattr(e, "status", None)
    return f"{type(e).__name__}{f' HTTP {status}' if status else ''}{where}"

Key = Hashable
Handler = Callable[[Key], Awaitable["datetime | None"]]
Gate = Callable[[Key], "datetime | None"]
EchoCheck = Callable[[], bool]  # True: the wake was the echo of our own write

URGENT, DUE = 0, 1  # lanes, in the order workers take from them


class WorkQueue:
    def __init__(self, clock: Clock, handler: Handler, workers: int = 8, gate: Gate | None = None) -> None:
        self.clock = clock
        self.handler = handler
        self.workers = workers
        self.gate = gate
        self._due: dict[Key, datetime] = {}
        self._heap: list[tuple[datetime, int, Key]] = []
        self._seq = itertools.count()
        self._active: dict[Key, float] = {}  # key -> monotonic start of its reconcile
        self._late: dict[Key, float] = {}  # key -> seconds it was past due when handed to the workers
        self._processing: dict[Key, float] = {}  # key -> monotonic time a worker took it
        self._again: dict[Key, datetime] = {}
        self._maybe_echo: dict[Key, list[EchoCheck]] = {}  # wakes of an active key, decided when it ends
        self.echoes_skipped = 0  # wakes that turned out to be our own echo (a counter, for tests and metrics)
        self._urgent: set[Key] = set()  # keys scheduled "now, because something changed"
        self._ready: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self.gated = 0  # keys the gate sent back to wait (a counter, for tests and metrics)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        clock.on_jump(self.wake)
        # controller-runtime's workqueue metrics, computed at scrape time (the newest queue is the one served)
        metrics.WORKQUEUE_DEPTH.set_function(self.depth)
        metrics.WORKQUEUE_LONGEST.set_function(self.longest_processing)

    def wake(self) -> None:
        self._wake.set()

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, key: Key, at: datetime | None = None, *, unless: EchoCheck | None = None) -> None:
        """Runs `key` at `at`; with no time, now and ahead of keys that merely came due (urgent). `unless`
        (urgent wakes only): if the key is being reconciled, re-run it afterwards only if `unless()`,
        asked then, is False (see the module's docstring)."""
        if unless is not None and at is None and key in self._active:
            self._maybe_echo.setdefault(key, []).append(unless)
            return
        if at is None:
            self._urgent.add(key)
        at = at or self.clock.now()
        if key in self._active:
            prev = self._again.get(key)
            if prev is None or at < prev:
                self._again[key] = at
                metrics.WORKQUEUE_ADDS.inc()
            return
        prev = self._due.get(key)
        if prev is not None and prev <= at:
            return
        self._due[key] = at
        metrics.WORKQUEUE_ADDS.inc()
        heapq.heappush(self._heap, (at, next(self._seq), key))
        self._wake.set()

    def forget(self, key: Key) -> None:
        self._due.pop(key, None)
        self._again.pop(key, None)
        self._maybe_echo.pop(key, None)
        self._urgent.discard(key)

    def due_at(self, key: Key) -> datetime | None:
        return self._due.get(key)

    def clear(self) -> None:
        """Forgets every waiting key (not those in flight). A standby's watches keep scheduling wakes it
        never runs; on election they would all be urgent and go before the tokens that are due, so the new
        leader clears them and schedules every token afresh from its status."""
        self._due.clear()
        self._heap.clear()
        self._urgent.clear()
        self._again.clear()
        self._maybe_echo.clear()
        while not self._ready.empty():
            self._ready.get_nowait()

    async def start(self) -> None:
        """Starts (or, after `stop`, restarts) the dispatcher and the workers."""
        self._stopping = False
        self._tasks = [asyncio.create_task(self._dispatch(), name="workqueue-dispatch")]
        self._tasks += [asyncio.create_task(self._work(i), name=f"workqueue-{i}") for i in range(self.workers)]

    def oldest_overdue(self) -> float:
        """Seconds the most overdue waiting key is past its due time (0 when none is)."""
        now = self.clock.now()
        overdue = [(now - at).total_seconds() for at in self._due.values() if at < now]
        return max(overdue, default=0.0)

    def depth(self) -> float:
        """Keys due now and not yet taken by a worker (keys scheduled for later are not counted, as in
        controller-runtime's delaying queue); 0 while the queue does not run (a standby)."""
        if self._stopping or not self._tasks:
            return 0.0
        now = self.clock.now()
        due = list(self._due.values())  # one C-level copy: the scrape runs in another thread than the loop
        return float(sum(1 for at in due if at <= now) + self._ready.qsize())

    def longest_processing(self) -> float:
        """Seconds the longest reconcile a worker is running has been running (0 when none is)."""
        now = time.monotonic()
        return max((now - started for started in list(self._processing.values())), default=0.0)

    def longest_running(self) -> float:
        """Seconds the longest reconcile in flight has been running (0 when none is)."""
        now = time.monotonic()
        return max((now - started for started in self._active.values()), default=0.0)

    async def stop(self, grace: float = 0.0) -> int:
        """Stops taking work, waits up to `grace` seconds for reconciles in flight, then cancels the rest.
        Returns how many reconciles were still running when the grace ran out."""
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + grace
        while self._active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        unfinished = len(self._active)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        return unfinished

    async def _dispatch(self) -> None:
        while not self._stopping:
            now = self.clock.now()
            while self._heap and self._heap[0][0] <= now:
                at, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != at:
                    continue  # superseded by an earlier schedule, or forgotten
                urgent = key in self._urgent
                if not urgent and self.gate is not None:
                    later = self.gate(key)
                    if later is not None and later > now:
                        self.gated += 1
                        self._due[key] = later
                        heapq.heappush(self._heap, (later, next(self._seq), key))
                        continue
                del self._due[key]
                self._urgent.discard(key)
                self._active[key] = time.monotonic()
                self._late[key] = max((now - at).total_seconds(), 0.0)
                self._ready.put_nowait((URGENT if urgent else DUE, next(self._seq), key))
            timeout = 1.0
            if self._heap:
                timeout = min(timeout, max((self._heap[0][0] - now).total_seconds(), 0.0))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    async def _work(self, _: int) -> None:
        while True:
            _, _, key = await self._ready.get()
            if self._stopping:  # taken off the heap before the stop: leave it for the next process
                self._active.pop(key, None)
                self._late.pop(key, None)
                continue
            nxt: datetime | None = None
            started = time.monotonic()
            metrics.WORKQUEUE_QUEUE_SECONDS.observe(self._late.pop(key, 0.0) + started - self._active.get(key, started))
            self._processing[key] = started
            try:
                nxt = await self.handler(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - one bad object must not stop the queue
                log.error("reconcile of %s failed (%s); retrying in 30s", key, describe_error(e))
                metrics.WORKQUEUE_RETRIES.inc()
                nxt = self.clock.now() + timedelta(seconds=30)
            finally:
                self._active.pop(key, None)
                self._processing.pop(key, None)
                metrics.WORKQUEUE_WORK_SECONDS.observe(time.monotonic() - started)
            again = self._again.pop(key, None)
            for at in (again, nxt):
                if at is not None:
                    self.schedule(key, at)
            self._decide_echoes(key)

    def _decide_echoes(self, key: Key) -> None:
        checks = self._maybe_echo.pop(key, ())
        if not checks:
            return
        try:
            echo = all(check() for check in checks)
        except Exception as e:  # noqa: BLE001 - a failing check must not lose the wake
            log.error("echo check for %s failed (%s); reconciling again", key, describe_error(e))
            echo = False
        if echo:
            self.echoes_skipped += len(checks)
            metrics.WORKQUEUE_ECHOES_SKIPPED.inc(len(checks))
        else:
            self.schedule(key)
