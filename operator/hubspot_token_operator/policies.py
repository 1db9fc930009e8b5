"""Decisions as chains of small pure checks (cert-manager's policy-chain pattern).

Each check looks at one gathered `Observed` snapshot and returns a `Verdict` or None. The first verdict
wins. The verdict's reason and message are exactly what lands in status, conditions and Events, so a user
reads the words the code decided with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Literal, Sequence

from .durations import format_duration, from_rfc3339
from .model import TokenSpec
from .schedule import refresh_at, usable


@dataclass(frozen=True)
class Observed:
    """Everything a decision needs, gathered once (no I/O below this line)."""

    spec: TokenSpec
    status: dict
    now: datetime
    uid: str
    generation: int | None
    refresh_request: str | None  # value of the refresh-requested-at annotation
    missing_inputs: Sequence[str]  # "Secret ns/name" or "key k in Secret ns/name"
    grant_fingerprint: str | None  # fingerprint of (client id, refresh token) as read now
    target_exists: bool
    target_mac: str | None  # MAC over the target's data as read now (our keys only)
    held_token: bool  # a token for this grant is at hand (published Secret or shared grant cache)
    expires_at: datetime | None
    issued_at: datetime | None

    def st(self, key: str, default=None):
        return self.status.get(key, default)


Action = Literal["Refresh", "Republish", "Wait", "Blocked"]


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str
    message: str
    until: datetime | None = None  # for Wait: when to look again
    extra: dict = field(default_factory=dict)


Check = Callable[[Observed], "Verdict | None"]


def evaluate(chain: Sequence[Check], obs: Observed) -> Verdict | None:
    for check in chain:
        verdict = check(obs)
        if verdict is not None:
            return verdict
    return None


# ---- OAuth trigger checks ------------------------------------------------------------------------


def inputs_missing(o: Observed) -> Verdict | None:
    if o.missing_inputs:
        return Verdict("Blocked", "InputsMissing", "missing " + ", ".join(o.missing_inputs))
    return None


def suspended(o: Observed) -> Verdict | None:
    if o.spec.suspend:
        return Verdict("Blocked", "Suspended", "spec.suspend is true; nothing is refreshed or restarted")
    return None


def refresh_requested(o: Observed) -> Verdict | None:
    if o.refresh_request and o.refresh_request != o.st("lastRefreshRequest"):
        return Verdict("Refresh", "RefreshRequested", "refresh requested by annotation")
    return None


def grant_changed(o: Observed) -> Verdict | None:
    known = o.st("grantFingerprint")
    if known and o.grant_fingerprint and known != o.grant_fingerprint:
        return Verdict("Refresh", "GrantChanged", "the client credentials or refresh token changed")
    return None


def reauth_required(o: Observed) -> Verdict | None:
    """invalid_grant is not transient: do not retry until the refresh token or client changes."""
    if _condition(o.status, "ReauthRequired") == "True":
        return Verdict(
            "Blocked",
            "ReauthRequired",
            "HubSpot rejected the refresh token; re-authorise the app and update the refresh token Secret",
        )
    return None


REFUSALS = ("HubMismatch", "ScopesMissing", "TargetSecretNotOwned", "TargetSecretMissing")


def refused(o: Observed) -> Verdict | None:
    """A token refused for this spec stays refused until the spec or the grant changes (no retry loop)."""
    ready = next((c for c in o.st("conditions") or [] if c.get("type") == "Ready"), None)
    if ready and ready.get("status") == "False" and ready.get("reason") in REFUSALS:
        reason = ready["reason"]
        if ready.get("observedGeneration") != o.generation:
            return None
        if reason == "TargetSecretNotOwned" and not o.target_exists:
            return None
        if reason == "TargetSecretMissing" and o.target_exists:
            return None
        return Verdict("Blocked", reason, ready.get("message", ""))
    return None


def never_issued(o: Observed) -> Verdict | None:
    if not o.st("expiresAt"):
        return Verdict("Refresh", "InitialIssue", "no access token issued yet")
    return None


def backing_off(o: Observed) -> Verdict | None:
    """After a retryable failure the retry time (backoff, HubSpot's Retry-After) is in nextRefreshAt."""
    attempts = int(o.st("failedAttempts") or 0)
    when = from_rfc3339(o.st("nextRefreshAt"))
    if attempts and when:
        if o.now < when:
            return Verdict("Wait", "BackingOff", f"retry {attempts + 1} in {format_duration(when - o.now)}", until=when)
        return Verdict("Refresh", "Retry", f"retrying after {attempts} failed attempt(s)")
    return None


def target_needs_restore(o: Observed) -> Verdict | None:
    if not o.target_exists:
        if o.held_token and usable(o.expires_at, o.now, o.spec.refresh):
            return Verdict("Republish", "SecretRestored", f"target Secret {o.spec.target.name} was missing; restored")
        return Verdict("Refresh", "SecretMissing", f"target Secret {o.spec.target.name} is missing and no token is held")
    if o.st("secretMAC") and o.target_mac != o.st("secretMAC"):
        if o.held_token and usable(o.expires_at, o.now, o.spec.refresh):
            return Verdict("Republish", "SecretRestored", f"target Secret {o.spec.target.name} was edited; restored")
        return Verdict("Refresh", "SecretDrift", f"target Secret {o.spec.target.name} was edited and no token is held")
    return None


def due(o: Observed) -> Verdict | None:
    if o.expires_at is None or o.issued_at is None:
        return Verdict("Refresh", "InitialIssue", "no access token issued yet")
    when = refresh_at(o.issued_at, o.expires_at, o.spec.refresh, o.uid)
    if o.now >= when:
        return Verdict("Refresh", "Expiring", f"token expires in {format_duration(o.expires_at - o.now)}")
    return Verdict("Wait", "Scheduled", f"next refresh in {format_duration(when - o.now)}", until=when)


OAUTH_TRIGGER: tuple[Check, ...] = (
    inputs_missing,
    suspended,
    refresh_requested,
    grant_changed,
    reauth_required,
    refused,
    backing_off,
    never_issued,
    target_needs_restore,
    due,
)


def decide_oauth(o: Observed) -> Verdict:
    verdict = evaluate(OAUTH_TRIGGER, o)
    assert verdict is not None  # `due` always answers
    return verdict


def _condition(status: dict, ctype: str) -> str | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c.get("status")
    return None
