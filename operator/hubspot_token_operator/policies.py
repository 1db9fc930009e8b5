"""Decisions as chains of small pure checks (cert-manager's policy-chain pattern).

Each check looks at one gathered `Observed` snapshot and returns a `Verdict` or None. The first verdict
wins. The verdict's reason and message are exactly what lands in status, conditions and Events, so a user
reads the words the code decided with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Literal, Sequence

from .durations import format_duration
from .model import TokenSpec
from .status_model import TokenStatus
from .schedule import refresh_at, usable


@dataclass(frozen=True)
class Observed:
    """Everything an OAuth decision needs, gathered once (no I/O below this line)."""

    spec: TokenSpec
    status: TokenStatus
    now: datetime
    uid: str
    generation: int | None
    refresh_request: str | None  # value of the refresh-requested-at annotation
    missing_inputs: Sequence[str]  # "Secret ns/name" or "key k in Secret ns/name"
    grant_fingerprint: str | None  # fingerprint of (client id, refresh token) as read now
    target_exists: bool
    target_mac: str | None  # MAC over the target's data as read now (our keys only)
    held_token: bool  # a token for this grant is at hand (published Secret or shared grant cache)
    custody_pending: bool = False  # a rotated refresh token for this grant still has to be written back
    grant_moved_by_us: bool = False  # the refresh-token Secret carries our own rotation note old -> current
    key_changed: bool = False  # status fingerprints were made with another HMAC key
    status_behind_target: bool = False
    consent_problem: str | None = None
    target_version: str | None = None  # resourceVersion of the target Secret as read  # an input Secret has not consented to this token  # the target holds a newer token of ours than status records

    @property
    def expires_at(self) -> datetime | None:
        return self.status.expires_at

    @property
    def issued_at(self) -> datetime | None:
        return self.status.last_refresh_time


Action = Literal["Refresh", "Republish", "Wait", "Blocked", "WriteBack", "Rebase", "Recover"]


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


def consent_missing(o: Observed) -> Verdict | None:
    if o.consent_problem:
        return Verdict("Blocked", "ConsentMissing", o.consent_problem)
    return None


def suspended(o: Observed) -> Verdict | None:
    if o.spec.suspend:
        return Verdict("Blocked", "Suspended", "spec.suspend is true; nothing is refreshed or restarted")
    return None


def custody_pending(o: Observed) -> Verdict | None:
    """A rotated refresh token not yet in its Secret comes before everything: it is the only copy."""
    if o.custody_pending:
        return Verdict("WriteBack", "RefreshTokenWriteBackPending", "writing back the refresh token HubSpot returned")
    return None


def key_changed(o: Observed) -> Verdict | None:
    """The fingerprint key was lost or replaced: fingerprints in status mean nothing now. Re-fingerprint what
    is in the Secrets instead of taking every token for changed (no refresh, no restart)."""
    if o.key_changed:
        return Verdict("Rebase", "FingerprintKeyChanged", "status fingerprints were recomputed with the current key")
    return None


def status_behind_target(o: Observed) -> Verdict | None:
    """A crash between publishing and the status write: the target Secret's own record (fingerprint,
    expiry, revisions) is the truth; take it into status instead of refreshing again or restarting."""
    if o.status_behind_target:
        return Verdict("Recover", "StatusRecovered", "status recovered from the target Secret's record")
    return None


def target_refused(o: Observed) -> Verdict | None:
    """A refused target refuses whatever is refreshed for it: a refresh request waits for the target to be
    fixed instead of spending (with rotating refresh tokens: rotating) the grant again and again."""
    r = o.status.refusal
    if r is not None and r.reason in TARGET_REFUSALS:
        return refused(o)
    return None


def refresh_requested(o: Observed) -> Verdict | None:
    if o.refresh_request and o.refresh_request != o.status.last_refresh_request:
        st = o.status
        if st.last_failure_kind == "Write" and st.failed_attempts and st.retry_at and o.now < st.retry_at:
            return None  # publishing failed: try again after the backoff (backing_off waits), not in a loop
        return Verdict("Refresh", "RefreshRequested", "refresh requested by annotation")
    return None


def grant_changed(o: Observed) -> Verdict | None:
    known = o.status.grant_fingerprint
    if known and o.grant_fingerprint and known != o.grant_fingerprint and not o.grant_moved_by_us:
        return Verdict("Refresh", "GrantChanged", "the client credentials or refresh token changed")
    return None


def reauth_required(o: Observed) -> Verdict | None:
    """invalid_grant is not transient: do not retry until the refresh token or client changes."""
    if o.status.reauth_required_for and o.status.reauth_required_for == o.grant_fingerprint:
        return Verdict(
            "Blocked",
            "ReauthRequired",
            "HubSpot rejected the refresh token; re-authorise the app and update the refresh token Secret",
        )
    return None


TARGET_REFUSALS = ("TargetSecretNotOwned", "TargetSecretMissing", "TargetSecretOwnedByAnotherToken",
                   "TargetSecretOwnedElsewhere", "TargetSecretIsAnInput", "ConsentMissing")


def refused(o: Observed) -> Verdict | None:
    """A refusal stays until the spec, the grant or (for target refusals) the target Secret changes."""
    r = o.status.refusal
    if r is None or r.generation != o.generation:
        return None
    if r.reason in TARGET_REFUSALS:
        if r.reason == "TargetSecretMissing":
            if o.target_exists:
                return None
        elif not o.target_exists or (r.secret_version and r.secret_version != o.target_version):
            return None  # the Secret is gone or changed (e.g. consent added): try again
    elif r.grant_fingerprint and r.grant_fingerprint != o.grant_fingerprint:
        return None
    return Verdict("Blocked", r.reason, r.message)


def never_issued(o: Observed) -> Verdict | None:
    if not o.status.expires_at:
        return Verdict("Refresh", "InitialIssue", "no access token issued yet")
    return None


def backing_off(o: Observed) -> Verdict | None:
    """After a failure the retry time (backoff, HubSpot's Retry-After) is in retryAt. A failed refresh is
    retried by refreshing; a failed write is retried by whichever check below wants the write."""
    st = o.status
    when = st.retry_at or (st.next_refresh_at if st.last_failure_kind is None else None)
    if st.failed_attempts and when:
        if o.now < when:
            return Verdict("Wait", "BackingOff", f"retry {st.failed_attempts + 1} in {format_duration(when - o.now)}",
                           until=when)
        if st.last_failure_kind in (None, "Refresh"):
            return Verdict("Refresh", "Retry", f"retrying after {st.failed_attempts} failed attempt(s)")
    return None


def target_needs_restore(o: Observed) -> Verdict | None:
    if not o.target_exists:
        if o.held_token and usable(o.expires_at, o.now, o.spec.refresh):
            return Verdict("Republish", "SecretRestored", f"target Secret {o.spec.target.name} was missing; restored")
        return Verdict("Refresh", "SecretMissing", f"target Secret {o.spec.target.name} is missing and no token is held")
    if o.status.secret_mac and o.target_mac != o.status.secret_mac:
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
    consent_missing,
    inputs_missing,
    suspended,
    custody_pending,
    key_changed,
    status_behind_target,
    target_refused,
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
