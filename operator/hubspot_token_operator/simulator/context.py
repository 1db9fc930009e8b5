"""Everything a request handler may need, bundled once per running simulator.

Kept separate from ``SimState`` because faults, stats and rate-limit windows are runtime behaviour, not
data that should survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .faults import FaultBook
from .ratelimit import RateLimiter
from .state import SimState
from .stats import RequestStats

SIM_KEY = web.AppKey("hubspot_sim", object)


@dataclass
class SimContext:
    state: SimState
    faults: FaultBook = field(default_factory=FaultBook)
    stats: RequestStats = field(default_factory=RequestStats)
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def reset_runtime(self) -> None:
        self.faults.clear()
        self.stats.reset()
        self.limiter.reset()


def sim(request: web.Request) -> SimContext:
    return request.app[SIM_KEY]  # type: ignore[return-value]
