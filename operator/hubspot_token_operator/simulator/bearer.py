"""Who is calling a data API: resolve ``Authorization: Bearer`` to a principal or a 401 reason.

OAuth access tokens, client-credentials tokens and ``pat-`` tokens are all accepted. The rate-limit keys
come out of here too, because HubSpot counts the 10-second window per app (and per hub) and the daily
budget per account, and only the token knows which app and account it belongs to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import oauth_grants, private_apps
from .state import SimState

NOT_FOUND_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
INVALID_MESSAGE = "The access token provided is invalid or has been revoked."


@dataclass(frozen=True)
class Principal:
    kind: str  # "oauth", "client_credentials" or "private_app"
    app_key: str
    hub_id: int | None
    hublet: str
    scopes: frozenset[str]
    daily_limited: bool  # HubSpot only sends/enforces the daily headers for non-OAuth tokens


@dataclass(frozen=True)
class Rejection:
    category: str
    message: str


def authenticate(state: SimState, authorization: str | None) -> Principal | Rejection:
    token = _bearer_token(authorization)
    if token is None:
        return Rejection("INVALID_AUTHENTICATION", NOT_FOUND_MESSAGE)
    with state.lock:
        if token.startswith("pat-"):
            return _private_app_principal(state, token)
        return _oauth_principal(state, token)


def expired_ago_phrase(seconds: float) -> str:
    """HubSpot's wording: "expired 5 minute(s) ago", switching to days for very old tokens."""
    minutes = max(1, math.floor(seconds / 60))
    if minutes >= 24 * 60:
        return f"{minutes // (24 * 60)} day(s)"
    return f"{minutes} minute(s)"


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _oauth_principal(state: SimState, token: str) -> Principal | Rejection:
    record = state.access_tokens.get(token)
    if record is None or not oauth_grants.access_token_usable(state, record):
        return Rejection("INVALID_AUTHENTICATION", INVALID_MESSAGE)
    now = state.now()
    if now >= record.expires_at:
        ago = expired_ago_phrase(now - record.expires_at)
        return Rejection("EXPIRED_AUTHENTICATION", f"The OAuth token used to make this call expired {ago} ago.")
    hublet = state.hub(record.hub_id).hublet if record.hub_id is not None else "na1"
    return Principal(
        kind="oauth" if record.token_use == "access_token" else "client_credentials",
        app_key=f"app:{record.app_id}:hub:{record.hub_id}",
        hub_id=record.hub_id,
        hublet=hublet,
        scopes=frozenset(record.scopes),
        daily_limited=False,
    )


def _private_app_principal(state: SimState, token: str) -> Principal | Rejection:
    found = private_apps.lookup(state, token)
    if found is None:
        return Rejection("INVALID_AUTHENTICATION", INVALID_MESSAGE)
    record, app = found
    if record.revoked or not app.active:
        return Rejection("INVALID_AUTHENTICATION", INVALID_MESSAGE)
    if not private_apps.is_live(state, record, app):
        ago = expired_ago_phrase(state.now() - (record.expires_at or 0.0))
        return Rejection(
            "EXPIRED_AUTHENTICATION", f"The private app access token used to make this call expired {ago} ago."
        )
    return Principal(
        kind="private_app",
        app_key=f"private-app:{app.app_id}:hub:{app.hub_id}",
        hub_id=app.hub_id,
        hublet=app.hublet,
        scopes=frozenset(app.scopes),
        daily_limited=True,
    )
