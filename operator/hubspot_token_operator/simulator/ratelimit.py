"""HubSpot-style request budgets in simulated time.

Two policies, as HubSpot names them in 429 bodies: TEN_SECONDLY_ROLLING (a rolling 10-second window per
app and hub) and DAILY (per account, reset at midnight; the simulator uses UTC midnight because hub time
zones are decoration here). A refused request does not consume budget.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 10.0
TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
DAILY = "DAILY"


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    policy: str | None = None  # the policy that refused, when not allowed
    headers: dict[str, str] = field(default_factory=dict)


def seconds_until_utc_midnight(now: float) -> float:
    return 86400.0 - (now % 86400.0)


class RateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._daily: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._daily.clear()

    def daily_usage(self, key: str, now: float) -> int:
        day, count = self._daily.get(key, (int(now // 86400), 0))
        return count if day == int(now // 86400) else 0

    def check(
        self,
        now: float,
        window_key: str,
        window_max: int,
        daily_key: str | None = None,
        daily_max: int | None = None,
    ) -> RateDecision:
        with self._lock:
            window = self._windows.setdefault(window_key, deque())
            while window and (window[0] <= now - WINDOW_SECONDS or window[0] > now):
                window.popleft()  # also drops entries "from the future" if the clock was reset
            used_today = self.daily_usage(daily_key, now) if daily_key else 0

            refused = None
            if len(window) >= window_max:
                refused = TEN_SECONDLY
            elif daily_key is not None and daily_max is not None and used_today >= daily_max:
                refused = DAILY
            if refused is None:
                window.append(now)
                if daily_key is not None:
                    used_today += 1
                    self._daily[daily_key] = (int(now // 86400), used_today)

            headers = {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
                "X-HubSpot-RateLimit-Max": str(window_max),
                "X-HubSpot-RateLimit-Remaining": str(max(0, window_max - len(window))),
            }
            if daily_key is not None and daily_max is not None:
                headers["X-HubSpot-RateLimit-Daily"] = str(daily_max)
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, daily_max - used_today))
            return RateDecision(allowed=refused is None, policy=refused, headers=headers)
