"""The per-app refresh pacing books future slots instead of blocking workers."""

from hubspot_token_operator.runtime import AppRateLimiter


def test_burst_then_booked_slots_at_the_rate():
    lim = AppRateLimiter(rate=2, burst=3)
    now = 100.0
    waits = [lim.reserve("app", f"t{i}", now) for i in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == [0.5, 1.0, 1.5]
    # coming back early reports the remaining time; on time, the booked slot is granted once
    assert abs(lim.reserve("app", "t4", now + 0.4) - 0.6) < 1e-9
    assert lim.reserve("app", "t4", now + 1.0) == 0.0
    assert lim.reserve("app", "t4", now + 1.0) > 0  # a second refresh is a new booking


def test_apps_are_paced_independently():
    lim = AppRateLimiter(rate=1, burst=1)
    assert lim.reserve("a", "x", 0.0) == 0.0
    assert lim.reserve("b", "y", 0.0) == 0.0
    assert lim.reserve("a", "z", 0.0) == 1.0
