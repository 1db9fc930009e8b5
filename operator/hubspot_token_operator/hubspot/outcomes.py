"""Typed results of every HubSpot call: a success value or a classified ``Failure``.

Callers branch on ``outcome.ok`` (or ``isinstance``) and, for failures, on ``kind``: TERMINAL means a
human must act (re-authorise, fix credentials), RETRYABLE means try again after ``retry_after_seconds`` (or
your own backoff when it is None), INVALID_TOKEN means the Bearer token itself is dead, FORBIDDEN means the
token lives but lacks a scope. ``reason`` is a short CamelCase word fit for a Kubernetes condition reason;
``message`` is for humans and never contains a secret. Secrets inside successes are ``Secret``s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Union

from .secret import Secret


class ErrorKind(str, enum.Enum):
    TERMINAL = "TERMINAL"
    RETRYABLE = "RETRYABLE"
    INVALID_TOKEN = "INVALID_TOKEN"
    FORBIDDEN = "FORBIDDEN"


class Reason:
    """The ``reason`` vocabulary, in one place so the operator can match on constants."""

    INVALID_GRANT = "InvalidGrant"
    NOT_ISSUED_TO_CLIENT = "NotIssuedToClient"
    INVALID_CLIENT = "InvalidClient"
    BAD_REQUEST = "BadRequest"
    NOT_FOUND = "NotFound"
    UNSUPPORTED = "Unsupported"
    BAD_CONFIGURATION = "BadConfiguration"
    UNEXPECTED_STATUS = "UnexpectedStatus"
    RATE_LIMITED = "RateLimited"
    DAILY_RATE_LIMITED = "DailyRateLimited"
    SERVER_ERROR = "ServerError"
    TIMEOUT = "Timeout"
    CONNECTION_ERROR = "ConnectionError"
    UNEXPECTED_RESPONSE = "UnexpectedResponse"
    INVALID_TOKEN = "InvalidToken"
    EXPIRED_TOKEN = "ExpiredToken"
    MISSING_SCOPES = "MissingScopes"
    FORBIDDEN = "Forbidden"


@dataclass(frozen=True)
class RateLimit:
    """``X-HubSpot-RateLimit-*`` headers of one response; any field HubSpot did not send is None."""

    max: int | None = None
    remaining: int | None = None
    interval_ms: int | None = None
    daily_max: int | None = None
    daily_remaining: int | None = None


@dataclass(frozen=True)
class Failure:
    kind: ErrorKind
    reason: str
    message: str
    http_status: int | None = None
    hubspot_status: str | None = None  # legacy "status" (BAD_REFRESH_TOKEN) or "category" (MISSING_SCOPES)
    oauth_error: str | None = None  # RFC 6749 "error" (invalid_grant)
    policy_name: str | None = None  # TEN_SECONDLY_ROLLING / DAILY on 429s
    retry_after_seconds: float | None = None
    correlation_id: str | None = None
    rate_limit: RateLimit | None = None

    ok: ClassVar[bool] = False

    @property
    def retryable(self) -> bool:
        return self.kind is ErrorKind.RETRYABLE

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.reason}: {self.message}"


@dataclass(frozen=True)
class TokenGrant:
    """A successful token-endpoint answer. Persist ``refresh_token`` every time: HubSpot may rotate it."""

    access_token: Secret
    refresh_token: Secret | None
    expires_in: int
    expires_at: datetime
    token_type: str
    token_use: str
    hub_id: int | None
    user_id: int | None
    scopes: tuple[str, ...]
    refresh_token_rotated: bool = False
    rate_limit: RateLimit | None = None

    ok: ClassVar[bool] = True


@dataclass(frozen=True)
class TokenInfo:
    """Introspection result. ``active=False`` is an answer, not a failure: HubSpot knows the token is dead."""

    active: bool
    token_use: str
    client_id: str | None = None
    app_id: int | None = None
    hub_id: int | None = None
    user_id: int | None = None
    scopes: tuple[str, ...] = ()
    expires_in: int | None = None
    expires_at: datetime | None = None
    rate_limit: RateLimit | None = None

    ok: ClassVar[bool] = True


@dataclass(frozen=True)
class Revoked:
    already_inactive: bool = False
    rate_limit: RateLimit | None = None

    ok: ClassVar[bool] = True


@dataclass(frozen=True)
class PrivateAppTokenInfo:
    hub_id: int
    user_id: int | None
    app_id: int | None
    scopes: tuple[str, ...]
    rate_limit: RateLimit | None = None

    ok: ClassVar[bool] = True


@dataclass(frozen=True)
class AccountDetails:
    """What a liveness probe learns: the token works and belongs to ``portal_id``."""

    portal_id: int
    account_type: str | None = None
    data_hosting_location: str | None = None
    ui_domain: str | None = None
    time_zone: str | None = None
    rate_limit: RateLimit | None = None

    ok: ClassVar[bool] = True


@dataclass(frozen=True)
class AuditEvent:
    """An audit-log entry, as the operator reads it (who did what to which object, when)."""

    id: str
    action: str
    category: str
    sub_category: str | None
    occurred_at: datetime
    target_object_id: str | None
    user_id: int
    user_email: str | None = None


@dataclass(frozen=True)
class AuditLogEvents:
    events: tuple[AuditEvent, ...]
    next_after: str | None = None  # HubSpot's paging cursor where the read goes on, when pages were left
    rate_limit: RateLimit | None = None

    @property
    def complete(self) -> bool:
        return self.next_after is None

    ok: ClassVar[bool] = True


RefreshOutcome = Union[TokenGrant, Failure]
IntrospectOutcome = Union[TokenInfo, Failure]
RevokeOutcome = Union[Revoked, Failure]
PrivateAppInfoOutcome = Union[PrivateAppTokenInfo, Failure]
LivenessOutcome = Union[AccountDetails, Failure]
AuditLogOutcome = Union[AuditLogEvents, Failure]
