"""The HubSpotToken status as typed values, parsed once at the top of a reconcile (like the spec).

Decisions read these fields, never a condition's reason: state that a decision needs (a refusal, a
rejected grant, a failure being backed off) has a field of its own. Conditions are for people and for
`kubectl wait`; they are written by `readiness.py` (Ready) and by the flows (the other types).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .durations import from_rfc3339


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


def _time(v: object) -> object:
    if isinstance(v, str):
        try:
            return from_rfc3339(v)
        except ValueError:
            return None
    return v


def _int(v: object) -> object:
    if isinstance(v, str):
        return int(v) if v.strip().isdigit() else 0
    return v if v is not None else 0


class Refusal(_Model):
    """A token HubSpot issued that this spec refuses (hub pin, scopes) or a target Secret we may not write.
    Stays in force until the spec (generation), the grant or the target Secret changes."""

    reason: str
    message: str = ""
    generation: int | None = None
    grant_fingerprint: str | None = Field(None, alias="grantFingerprint")
    secret_version: str | None = Field(None, alias="secretVersion")  # the target Secret as refused


FailureKind = Literal["Refresh", "Write", "WriteBack", "Verify", "Error"]


class PrivateAppStatus(_Model):
    published_at: datetime | None = Field(None, alias="publishedAt")
    last_verified_at: datetime | None = Field(None, alias="lastVerifiedAt")
    next_verify_at: datetime | None = Field(None, alias="nextVerifyAt")
    rejected_fingerprint: str | None = Field(None, alias="rejectedFingerprint")
    rejected_generation: int | None = Field(None, alias="rejectedGeneration")
    previous_fingerprint: str | None = Field(None, alias="previousFingerprint")
    previous_until: datetime | None = Field(None, alias="previousUntil")
    rotated_at: datetime | None = Field(None, alias="rotatedAt")
    source_version: str | None = Field(None, alias="sourceVersion")
    last_outcome: str | None = Field(None, alias="lastOutcome")
    last_outcome_reason: str | None = Field(None, alias="lastOutcomeReason")
    overlap_warned: bool = Field(False, alias="overlapWarned")
    verified: bool | None = None  # the published token passed its last verification
    verify_reason: str | None = Field(None, alias="verifyReason")

    _t = field_validator(
        "published_at", "last_verified_at", "next_verify_at", "previous_until", "rotated_at", mode="before"
    )(_time)


class TokenStatus(_Model):
    observed_generation: int | None = Field(None, alias="observedGeneration")
    conditions: tuple[dict, ...] = ()
    hub_id: int | None = Field(None, alias="hubId")
    app_id: int | None = Field(None, alias="appId")
    scopes: tuple[str, ...] | None = None
    expires_at: datetime | None = Field(None, alias="expiresAt")
    next_refresh_at: datetime | None = Field(None, alias="nextRefreshAt")
    last_refresh_time: datetime | None = Field(None, alias="lastRefreshTime")
    last_refresh_reason: str | None = Field(None, alias="lastRefreshReason")
    last_refresh_request: str | None = Field(None, alias="lastRefreshRequest")
    failed_attempts: int = Field(0, alias="failedAttempts")
    last_failure_time: datetime | None = Field(None, alias="lastFailureTime")
    last_failure_reason: str | None = Field(None, alias="lastFailureReason")
    last_failure_kind: FailureKind | None = Field(None, alias="lastFailureKind")
    retry_at: datetime | None = Field(None, alias="retryAt")
    token_fingerprint: str | None = Field(None, alias="tokenFingerprint")
    grant_fingerprint: str | None = Field(None, alias="grantFingerprint")
    fingerprint_key_id: str | None = Field(None, alias="fingerprintKeyId")
    secret_mac: str | None = Field(None, alias="secretMAC")
    secret_uid: str | None = Field(None, alias="secretUID")
    credential_revision: str | None = Field(None, alias="credentialRevision")
    restart_revision: str | None = Field(None, alias="restartRevision")
    reauth_required_for: str | None = Field(None, alias="reauthRequiredFor")
    refusal: Refusal | None = None
    private_app: PrivateAppStatus = Field(PrivateAppStatus(), alias="privateApp")

    _t = field_validator(
        "expires_at", "next_refresh_at", "last_refresh_time", "last_failure_time", "retry_at", mode="before"
    )(_time)
    _i = field_validator("failed_attempts", mode="before")(_int)

    @field_validator("last_failure_kind", mode="before")
    @classmethod
    def _kind(cls, v: object) -> object:
        return v if v in ("Refresh", "Write", "WriteBack", "Verify", "Error") else None

    @field_validator("private_app", mode="before")
    @classmethod
    def _pa(cls, v: object) -> object:
        return v or {}


def parse_status(status: dict | None) -> TokenStatus:
    """Never fails: a field that does not parse is treated as absent (status is ours, but may be old)."""
    status = status or {}
    try:
        return TokenStatus.model_validate(status)
    except ValueError:
        known = {k: v for k, v in status.items() if k in ("conditions", "observedGeneration")}
        return TokenStatus.model_validate(known)
