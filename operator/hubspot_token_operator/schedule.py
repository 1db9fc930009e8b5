"""When a token refreshes, and when a failed refresh is retried. Pure functions of time and spec.

This is the one place that answers "when does a token refresh":

    refresh_at = min(issued + lifetime * percent, expires - before)   # whichever is earlier
                 - jitter                                             # earlier only, stable per object
    clamped to  [issued + lifetime/10, expires - minRemainingValidity]  # the floor wins if they cross

The lifetime is the real one HubSpot returned (``expires_in``), never an assumed 30 minutes, and a 401
never triggers a refresh (HubSpot: a 401 "is not a valid indicator" that a new token is needed).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from .model import RefreshSpec

RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(minutes=5)
RETRY_FLOOR = timedelta(seconds=1)
MIN_SHARE = 0.1  # never refresh before a tenth of the lifetime has passed (the CRD minimum percent)


def jitter_fraction(seed: str) -> float:
    """A number in [0, 1) that is the same for the same object every time (no herd, no flapping)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def refresh_at(issued_at: datetime, expires_at: datetime, policy: RefreshSpec, seed: str) -> datetime:
    lifetime = expires_at - issued_at
    if lifetime <= timedelta(0):
        return issued_at
    due = issued_at + lifetime * (policy.percent / 100)
    if policy.before is not None:
        due = min(due, expires_at - policy.before)
    due -= lifetime * (policy.jitter_percent / 100) * jitter_fraction(seed)
    due = min(due, expires_at - policy.min_remaining_validity)
    # A lifetime shorter than minRemainingValidity is a misconfiguration; refreshing at a tenth of it still
    # beats a hot loop of refreshes.
    return max(due, issued_at + lifetime * MIN_SHARE)


def retry_at(
    now: datetime,
    failed_attempts: int,
    expires_at: datetime | None,
    retry_after: timedelta | None = None,
) -> datetime:
    """Exponential backoff after a retryable failure, capped so a held token is not allowed to lapse.

    While a valid token is held, the wait never exceeds a quarter of its remaining validity, so several
    retries still fit before it expires. HubSpot's own Retry-After (or policy window) is a floor.
    """
    attempts = min(max(failed_attempts, 1), 20)  # 2**19 * 5 s is far past the cap; no overflow
    delay = min(RETRY_BASE * (2 ** (attempts - 1)), RETRY_CAP)
    if expires_at is not None and expires_at > now:
        delay = min(delay, (expires_at - now) / 4)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + max(delay, RETRY_FLOOR)


def usable(expires_at: datetime | None, now: datetime, policy: RefreshSpec) -> bool:
    """A token may be (re)published only with at least minRemainingValidity left."""
    return expires_at is not None and expires_at - now >= policy.min_remaining_validity


FIRST_LOOK_SPREAD = timedelta(seconds=10)  # tokens not due at start-up are looked at within this window
FIRST_LOOK_MARGIN = timedelta(seconds=60)  # a token due within this is looked at at once


def first_look(now: datetime, next_refresh_at: datetime | None, ready: bool, seed: str) -> datetime:
    """When to look at a token the operator has just learned about (start-up, a new leader, a new token).

    Due soon, not Ready, or never refreshed: at once. Otherwise later, spread over FIRST_LOOK_SPREAD by a
    stable per-object jitter, so that with thousands of tokens the due ones are not queued behind the
    ones that only need their Secrets checked (those reconciles cost no HubSpot call and no write).
    """
    if not ready or next_refresh_at is None or next_refresh_at <= now + FIRST_LOOK_MARGIN:
        return now
    return now + spread_delay(seed)


def spread_delay(seed: str) -> timedelta:
    """A stable delay in [1 s, FIRST_LOOK_SPREAD) for looks that can wait a little."""
    return timedelta(seconds=1) + (FIRST_LOOK_SPREAD - timedelta(seconds=1)) * jitter_fraction(seed)
