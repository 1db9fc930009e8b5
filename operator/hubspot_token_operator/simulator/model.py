"""Records the simulator keeps: apps, installs, tokens, private apps and audit events.

Plain dataclasses so a snapshot is just ``dataclasses.asdict`` and a restore is ``Cls(**row)``. Times are
simulated epoch seconds (see ``clock.SimClock``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class App:
    """A public OAuth app: the client_id/client_secret pair the operator refreshes with."""

    app_id: int
    client_id: str
    client_secret: str
    redirect_uri: str | None = None


@dataclass
class Install:
    """One app installed in one hub by one user: the thing a refresh token stands for."""

    install_id: int
    app_id: int
    client_id: str
    hub_id: int
    user_id: int
    scopes: list[str]
    active: bool = True


@dataclass
class RefreshToken:
    token: str
    install_id: int
    client_id: str
    active: bool = True
    # Set when a rotating refresh retired this token: the token that replaced it and when (simulated time).
    # Within ``refresh_token_reuse_grace_seconds`` of ``rotated_at`` presenting this token again is answered
    # with the same successor instead of invalid_grant.
    successor: str | None = None
    rotated_at: float | None = None


@dataclass
class AccessToken:
    token: str
    client_id: str
    app_id: int
    issued_at: float
    expires_at: float
    scopes: list[str]
    token_use: str = "access_token"  # or "client_credentials"
    install_id: int | None = None
    hub_id: int | None = None
    user_id: int | None = None
    revoked: bool = False


@dataclass
class AuthCode:
    code: str
    client_id: str
    hub_id: int
    user_id: int
    scopes: list[str]
    redirect_uri: str
    expires_at: float
    code_challenge: str | None = None
    used: bool = False


@dataclass
class PrivateApp:
    """A legacy private app or a Service Key: both authenticate with a static ``pat-`` token."""

    app_id: int
    hub_id: int
    user_id: int
    scopes: list[str]
    hublet: str = "na1"
    kind: str = "private_app"  # or "service_key"
    active: bool = True


@dataclass
class StaticToken:
    token: str
    app_id: int
    created_at: float
    expires_at: float | None = None  # set when a rotation with "expire later" retires it
    revoked: bool = False


@dataclass
class AuditEvent:
    event_id: str
    hub_id: int
    user_id: int
    type: str  # a HydratedCriticalAction.type value, e.g. PRIVATE_APP_ACCESS_TOKEN_ROTATE
    occurred_at: float
    object_id: str


@dataclass
class Hub:
    """A HubSpot account ("portal"); its hublet decides token prefixes and the account details."""

    hub_id: int
    hublet: str = "na1"


@dataclass
class Consent:
    """What the stand-in consent screen (``GET /oauth/authorize``) does until changed: install the app in
    ``hub_id`` (approve) or answer ``error=access_denied``. ``scopes`` None grants what was asked for."""

    hub_id: int
    approve: bool = True
    scopes: list[str] | None = None
    user_id: int | None = None
    hublet: str | None = None
