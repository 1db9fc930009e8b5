"""Is a HubSpotToken Ready? The one place that answers (cert-manager's readiness chain).

The flows only report facts (what they found and what their writes did); after the flow, the controller
builds a `ReadinessInput` from those facts and the status as it will be written, and this chain decides
the Ready condition once, last. Ready=True means: a token is published in the target Secret right now,
it has not expired, and nothing known makes it unusable. It turns False the moment the published token
expires, whatever the refresh schedule says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from .durations import to_rfc3339


@dataclass
class Facts:
    """What one pass of a flow found out; filled in by the flow, read by the readiness chain."""

    inputs_missing: str | None = None  # "missing Secret x" ...
    write_problem: tuple[str, str] | None = None  # (reason, message) when writing the target failed
    target_present: bool | None = None  # the target Secret holds our values after this pass
    reauth: bool = False
    error: str | None = None  # the reconcile raised: class and location only
    invalid_spec: str | None = None
    refused: tuple[str, str] | None = None  # (reason, message): tenancy refused an object or endpoint


@dataclass(frozen=True)
class ReadinessInput:
    token_type: str
    now: datetime
    suspended: bool
    facts: Facts
    refusal: tuple[str, str] | None  # (reason, message) of a refusal in force
    published: bool  # status names a published token (tokenFingerprint)
    expires_at: datetime | None  # OAuth: when the published access token expires
    verified: bool | None  # PrivateApp: the published token passed its last verification
    verify_problem: tuple[str, str] | None  # PrivateApp: (reason, message) when it did not


Verdict = tuple[bool, str, str]  # (status, reason, message)
Check = Callable[[ReadinessInput], "Verdict | None"]


def _still(i: ReadinessInput) -> str:
    if i.token_type == "OAuth" and i.expires_at and i.expires_at > i.now and i.published:
        return f"; the published token stays valid until {to_rfc3339(i.expires_at)}"
    if i.token_type == "PrivateApp" and i.published:
        return "; the published token stays in place"
    return ""


def invalid_spec(i: ReadinessInput) -> Verdict | None:
    return (False, "InvalidSpec", i.facts.invalid_spec) if i.facts.invalid_spec else None


def errored(i: ReadinessInput) -> Verdict | None:
    if i.facts.error:
        return False, "ReconcileError", f"the last reconcile failed ({i.facts.error}); retrying" + _still(i)
    return None


def suspended(i: ReadinessInput) -> Verdict | None:
    if i.suspended:
        return False, "Suspended", "spec.suspend is true; nothing is refreshed, verified or restarted" + _still(i)
    return None


def inputs_missing(i: ReadinessInput) -> Verdict | None:
    return (False, "InputsMissing", i.facts.inputs_missing + _still(i)) if i.facts.inputs_missing else None


def refused(i: ReadinessInput) -> Verdict | None:
    if i.facts.refused:
        reason, message = i.facts.refused
        return False, reason, message + _still(i)
    if i.refusal:
        reason, message = i.refusal
        return False, reason, message
    return None


def reauth(i: ReadinessInput) -> Verdict | None:
    if i.facts.reauth:
        return False, "ReauthRequired", "HubSpot rejected the refresh token; re-authorise the app" + _still(i)
    return None


def write_failed(i: ReadinessInput) -> Verdict | None:
    if i.facts.write_problem:
        reason, message = i.facts.write_problem
        return False, reason, message + _still(i)
    return None


def not_published(i: ReadinessInput) -> Verdict | None:
    if not i.published:
        return False, "NotIssued", "no token has been published yet"
    return None


def target_missing(i: ReadinessInput) -> Verdict | None:
    if i.facts.target_present is False:
        return False, "TargetSecretMissing", "the target Secret does not hold the published token"
    return None


def expired(i: ReadinessInput) -> Verdict | None:
    if i.token_type == "OAuth" and (i.expires_at is None or i.expires_at <= i.now):
        when = f" at {to_rfc3339(i.expires_at)}" if i.expires_at else ""
        return False, "TokenExpired", f"the published access token expired{when} and no new one could be obtained"
    return None


def unverified(i: ReadinessInput) -> Verdict | None:
    if i.token_type == "PrivateApp" and i.verified is False and i.verify_problem:
        reason, message = i.verify_problem
        return False, reason, message
    return None


def published(i: ReadinessInput) -> Verdict:
    if i.token_type == "OAuth":
        return True, "TokenPublished", f"access token valid until {to_rfc3339(i.expires_at)}"
    return True, "TokenPublished", "verified token published"


CHAIN: Sequence[Check] = (
    invalid_spec, errored, suspended, inputs_missing, refused, reauth, write_failed,
    not_published, target_missing, expired, unverified,
)


def ready(i: ReadinessInput) -> Verdict:
    for check in CHAIN:
        verdict = check(i)
        if verdict is not None:
            return verdict
    return published(i)
