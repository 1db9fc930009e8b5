"""The operator's notion of time.

Normally wall-clock UTC. For tests and the demo it can follow the HubSpot simulator's simulated clock
(``--time-source simulator``), so advancing simulated time moves token expiry and the operator's
schedule together. Listeners are told when time jumps, so sleeping work is re-evaluated.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

import httpx

log = logging.getLogger(__name__)


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def on_jump(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def set_offset(self, offset: timedelta) -> None:
        if abs((offset - self.offset).total_seconds()) < 0.5:
            return
        log.info("clock offset changed from %ss to %ss", self.offset.total_seconds(), offset.total_seconds())
        self.offset = offset
        for fn in self._listeners:
            fn()


async def follow_simulator(clock: Clock, base_url: str, interval: float = 0.5) -> None:
    """Keeps `clock` in step with the simulator's ``GET /_sim/clock`` (testing and demo only)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        while True:
            try:
                resp = await http.get("/_sim/clock")
                resp.raise_for_status()
                clock.set_offset(timedelta(seconds=float(resp.json()["offset_seconds"])))
            except (httpx.HTTPError, KeyError, ValueError) as e:
                log.warning("cannot read the simulator clock: %s", type(e).__name__)
            await asyncio.sleep(interval)
