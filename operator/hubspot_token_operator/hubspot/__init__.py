"""The operator's HubSpot client: typed outcomes, secret-safe, single-flight refreshes. See docs/hubspot-client.md."""

from .client import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, EU_BASE_URL, HubSpotClient, utc_now
from .generations import ApiGeneration
from .outcomes import (
    AccountDetails,
    AuditEvent,
    AuditLogEvents,
    AuditLogOutcome,
    ErrorKind,
    Failure,
    IntrospectOutcome,
    LivenessOutcome,
    PrivateAppInfoOutcome,
    PrivateAppTokenInfo,
    RateLimit,
    Reason,
    RefreshOutcome,
    Revoked,
    RevokeOutcome,
    TokenGrant,
    TokenInfo,
)
from .secret import Secret

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "EU_BASE_URL",
    "AccountDetails",
    "ApiGeneration",
    "AuditEvent",
    "AuditLogEvents",
    "AuditLogOutcome",
    "ErrorKind",
    "Failure",
    "HubSpotClient",
    "IntrospectOutcome",
    "LivenessOutcome",
    "PrivateAppInfoOutcome",
    "PrivateAppTokenInfo",
    "RateLimit",
    "Reason",
    "RefreshOutcome",
    "Revoked",
    "RevokeOutcome",
    "Secret",
    "TokenGrant",
    "TokenInfo",
    "utc_now",
]
