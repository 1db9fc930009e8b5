"""OAuth rules: who may get which token, and what happens to the old ones.

Pure state transitions over ``SimState``; HTTP shapes live in ``oauth_routes``/``bodies``. Every refusal is
an ``OAuthFailure`` carrying HubSpot's legacy ``status`` plus the RFC 6749 ``error`` (facts §2.2), so the
route layer only has to render it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from . import minting
from .model import AccessToken, App, AuthCode, Consent, Install, RefreshToken
from .state import SimState


class OAuthFailure(Exception):
    def __init__(self, status: str, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def bad_request(message: str) -> OAuthFailure:
    return OAuthFailure("BAD_REQUEST", "invalid_request", message)


BAD_CLIENT_ID = ("BAD_CLIENT_ID", "invalid_client", "missing or unknown client id")
BAD_CLIENT_SECRET = ("BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret")
BAD_REFRESH_TOKEN = ("BAD_REFRESH_TOKEN", "invalid_grant", "refresh token is invalid, expired or revoked")
NOT_THIS_CLIENT = ("BAD_REFRESH_TOKEN", "invalid_grant", "refresh token was not issued to this client")
BAD_AUTH_CODE = ("BAD_AUTH_CODE", "invalid_grant", "missing or unknown auth code")
EXPIRED_AUTH_CODE = ("EXPIRED_AUTH_CODE", "invalid_grant", "auth code is expired")
MISMATCH_REDIRECT = (
    "MISMATCH_REDIRECT_URI_AUTH_CODE",
    "invalid_grant",
    "redirect URI does not match initial auth code URI",
)
BAD_CODE_VERIFIER = ("BAD_CODE_VERIFIER", "invalid_grant", "code verifier does not match code challenge")
BAD_GRANT_TYPE = ("BAD_GRANT_TYPE", "unsupported_grant_type", "missing or unknown grant type")


@dataclass(frozen=True)
class Issued:
    """What a successful token request produced."""

    access: AccessToken
    refresh_token: str | None
    reused: bool = False  # a rotated-out refresh token honoured within the reuse grace


def create_app(state: SimState, redirect_uri: str | None = None) -> App:
    with state.lock:
        app = App(
            app_id=state.next_id(),
            client_id=minting.client_id(),
            client_secret=minting.client_secret(),
            redirect_uri=redirect_uri,
        )
        state.apps[app.client_id] = app
        state.touched()
        return app


def install_app(
    state: SimState,
    client_id: str,
    hub_id: int,
    scopes: list[str],
    user_id: int | None = None,
    hublet: str | None = None,
) -> tuple[Install, str]:
    """Install an app in a hub (what the consent screen does) and hand back its first refresh token."""
    with state.lock:
        app = state.apps.get(client_id)
        if app is None:
            raise LookupError("unknown client_id")
        hub = state.hub(hub_id, hublet)
        install = Install(
            install_id=state.next_id(),
            app_id=app.app_id,
            client_id=client_id,
            hub_id=hub_id,
            user_id=user_id if user_id is not None else state.next_id(),
            scopes=list(scopes),
        )
        state.installs[install.install_id] = install
        token = _new_refresh_token(state, install, hub.hublet)
        return install, token


def mint_auth_code(
    state: SimState,
    client_id: str,
    hub_id: int,
    scopes: list[str],
    redirect_uri: str,
    user_id: int | None = None,
    code_challenge: str | None = None,
    hublet: str | None = None,
) -> AuthCode:
    with state.lock:
        app = state.apps.get(client_id)
        if app is None:
            raise LookupError("unknown client_id")
        if app.redirect_uri and app.redirect_uri != redirect_uri:
            raise ValueError("redirect_uri is not registered for this app")
        state.hub(hub_id, hublet)
        code = AuthCode(
            code=minting.auth_code(),
            client_id=client_id,
            hub_id=hub_id,
            user_id=user_id if user_id is not None else state.next_id(),
            scopes=list(scopes),
            redirect_uri=redirect_uri,
            expires_at=state.now() + state.config.auth_code_ttl_seconds,
            code_challenge=code_challenge,
        )
        state.auth_codes[code.code] = code
        state.touched()
        return code


class AuthorizeRefused(Exception):
    """The consent screen cannot redirect (unknown app, missing or unregistered redirect_uri, no consent
    configured): like HubSpot, it shows an error page instead of sending the browser anywhere."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


def set_consent(state: SimState, consent: Consent | None) -> None:
    with state.lock:
        state.consent = consent
        state.touched()


def consent_from_query(params: Mapping[str, str], standing: Consent | None) -> Consent | None:
    """The consent to apply: ``sim_hub_id`` / ``sim_approve`` / ``sim_scopes`` on the URL (tests) override the
    one set with ``POST /_sim/consent``."""
    if "sim_hub_id" not in params and "sim_approve" not in params and "sim_scopes" not in params:
        return standing
    try:
        hub_id = int(params["sim_hub_id"]) if "sim_hub_id" in params else (standing.hub_id if standing else None)
    except ValueError:
        raise AuthorizeRefused("sim_hub_id must be an integer") from None
    if hub_id is None or not 1 <= hub_id <= 2**31 - 1:
        raise AuthorizeRefused("sim_hub_id must be a hub id (1..2^31-1)")
    approve = params.get("sim_approve", "true" if standing is None else str(standing.approve)).lower() in ("true", "1", "yes")
    scopes = params["sim_scopes"].split() if "sim_scopes" in params else (standing.scopes if standing else None)
    return Consent(hub_id=hub_id, approve=approve, scopes=scopes,
                   user_id=standing.user_id if standing else None, hublet=standing.hublet if standing else None)


def with_query(url: str, **params: str | None) -> str:
    """``url`` with ``params`` appended to its query (keeping what it already had), None values left out."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def authorize(state: SimState, params: Mapping[str, str]) -> str:
    """``GET /oauth/authorize``: what the install page does once the user picked a hub and clicked (or refused).
    Returns the redirect target: ``redirect_uri?code=..&state=..`` or ``redirect_uri?error=access_denied&..``.
    Raises ``AuthorizeRefused`` where HubSpot would not redirect at all."""
    with state.lock:
        app = state.apps.get(params.get("client_id") or "")
        if app is None:
            raise AuthorizeRefused("unknown client_id: this app does not exist")
        redirect_uri = params.get("redirect_uri") or ""
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuthorizeRefused("redirect_uri is missing or not an absolute http(s) URL")
        if app.redirect_uri and app.redirect_uri != redirect_uri:
            raise AuthorizeRefused("redirect_uri does not match the app's registered redirect URL")
        scopes = (params.get("scope") or "").split()
        if not scopes:
            raise AuthorizeRefused("scope is required")
        optional = [s for s in (params.get("optional_scope") or "").split() if s not in scopes]
        challenge = params.get("code_challenge")
        if challenge and params.get("code_challenge_method", "S256") != "S256":
            raise AuthorizeRefused("code_challenge_method must be S256")
        consent = consent_from_query(params, state.consent)
        if consent is None:
            raise AuthorizeRefused("no consent configured: POST /_sim/consent {\"hub_id\": N} first "
                                   "(or add sim_hub_id=N to the URL)", 409)
        client_state = params.get("state")
        if not consent.approve:
            return with_query(redirect_uri, error="access_denied",
                              error_description="the user declined to install the app", state=client_state)
        granted = list(consent.scopes) if consent.scopes is not None else scopes + optional
        code = mint_auth_code(state, app.client_id, consent.hub_id, granted, redirect_uri, consent.user_id,
                              challenge, consent.hublet)
        return with_query(redirect_uri, code=code.code, state=client_state)


def authenticate_client(state: SimState, client_id: str | None, client_secret: str | None) -> App:
    app = state.apps.get(client_id or "")
    if app is None:
        raise OAuthFailure(*BAD_CLIENT_ID)
    if not client_secret or not hmac.compare_digest(app.client_secret, client_secret):
        raise OAuthFailure(*BAD_CLIENT_SECRET)
    return app


def grant(state: SimState, form: Mapping[str, str]) -> Issued:
    """Dispatch on ``grant_type`` exactly like the token endpoint does."""
    grant_type = form.get("grant_type")
    handler = _GRANTS.get(grant_type or "")
    if handler is None:
        raise OAuthFailure(*BAD_GRANT_TYPE)
    with state.lock:
        return handler(state, form)


def _refresh(state: SimState, form: Mapping[str, str]) -> Issued:
    app = authenticate_client(state, form.get("client_id"), form.get("client_secret"))
    record = state.refresh_tokens.get(form.get("refresh_token") or "")
    if record is None:
        raise OAuthFailure(*BAD_REFRESH_TOKEN)
    reused = None if record.active else _reuse_within_grace(state, record)
    if not record.active and reused is None:
        raise OAuthFailure(*BAD_REFRESH_TOKEN)
    install = state.installs[record.install_id]
    if not install.active:
        raise OAuthFailure(*BAD_REFRESH_TOKEN)
    if record.client_id != app.client_id:
        raise OAuthFailure(*NOT_THIS_CLIENT)
    if reused is not None:
        # A retry of a rotation whose answer the client lost: the same successor, a new access token.
        return Issued(access=_new_access_token(state, app, install), refresh_token=reused.token, reused=True)
    refresh_token = record.token
    if state.config.refresh_token_mode == "rotating":
        refresh_token = _new_refresh_token(state, install, state.hub(install.hub_id).hublet)
        record.active = False
        record.successor = refresh_token
        record.rotated_at = state.now()
    return Issued(access=_new_access_token(state, app, install), refresh_token=refresh_token)


def _reuse_within_grace(state: SimState, record: RefreshToken) -> RefreshToken | None:
    """The successor a rotated-out refresh token may still be exchanged for, if the reuse grace allows it.

    Like Okta's and Auth0's reuse interval: for ``refresh_token_reuse_grace_seconds`` (simulated time) after
    a rotation, the old token is answered with the same successor, as long as that successor is itself
    still unused and not revoked. Strict (0, the default): never.
    """
    grace = state.config.refresh_token_reuse_grace_seconds
    if grace <= 0 or record.successor is None or record.rotated_at is None:
        return None
    if state.now() - record.rotated_at >= grace:
        return None
    successor = state.refresh_tokens.get(record.successor)
    if successor is None or not successor.active:
        return None
    return successor


def _authorization_code(state: SimState, form: Mapping[str, str]) -> Issued:
    app = authenticate_client(state, form.get("client_id"), form.get("client_secret"))
    code = state.auth_codes.get(form.get("code") or "")
    if code is None or code.used or code.client_id != app.client_id:
        raise OAuthFailure(*BAD_AUTH_CODE)
    if state.now() >= code.expires_at:
        raise OAuthFailure(*EXPIRED_AUTH_CODE)
    if form.get("redirect_uri") != code.redirect_uri:
        raise OAuthFailure(*MISMATCH_REDIRECT)
    if code.code_challenge and not _pkce_matches(code.code_challenge, form.get("code_verifier")):
        raise OAuthFailure(*BAD_CODE_VERIFIER)
    code.used = True
    install, refresh_token = install_app(state, app.client_id, code.hub_id, code.scopes, code.user_id)
    return Issued(access=_new_access_token(state, app, install), refresh_token=refresh_token)


def _client_credentials(state: SimState, form: Mapping[str, str]) -> Issued:
    app = authenticate_client(state, form.get("client_id"), form.get("client_secret"))
    scopes = (form.get("scope") or "").split()
    now = state.now()
    access = AccessToken(
        token=minting.access_token(),
        client_id=app.client_id,
        app_id=app.app_id,
        issued_at=now,
        expires_at=now + state.config.access_token_lifetime_seconds,
        scopes=scopes,
        token_use="client_credentials",
    )
    state.access_tokens[access.token] = access
    state.touched()
    return Issued(access=access, refresh_token=None)


_GRANTS = {
    "refresh_token": _refresh,
    "authorization_code": _authorization_code,
    "client_credentials": _client_credentials,
}


def uninstall(state: SimState, refresh_token: str) -> bool:
    """The customer removed the app: every refresh and access token of that install dies."""
    with state.lock:
        record = state.refresh_tokens.get(refresh_token)
        if record is None:
            return False
        install = state.installs[record.install_id]
        install.active = False
        for rt in state.refresh_tokens.values():
            if rt.install_id == install.install_id:
                rt.active = False
        for at in state.access_tokens.values():
            if at.install_id == install.install_id:
                at.revoked = True
        state.touched()
        return True


def revoke_refresh_token(state: SimState, token: str) -> bool:
    """Kill one refresh token; access tokens it minted keep working (HubSpot's documented v1 behaviour)."""
    with state.lock:
        record = state.refresh_tokens.get(token)
        if record is None:
            return False
        if record.successor is not None:  # revoking a rotated-out token also ends its reuse grace
            record.successor = None
            state.touched()
        if not record.active:
            return False
        record.active = False
        state.touched()
        return True


def revoke_access_token(state: SimState, token: str) -> bool:
    with state.lock:
        record = state.access_tokens.get(token)
        if record is None or record.revoked:
            return False
        record.revoked = True
        state.touched()
        return True


def live_access_token(state: SimState, token: str) -> AccessToken | None:
    record = state.access_tokens.get(token)
    if record is None or not access_token_usable(state, record) or state.now() >= record.expires_at:
        return None
    return record


def access_token_usable(state: SimState, record: AccessToken) -> bool:
    """Not revoked and its install (if any) still installed; says nothing about expiry."""
    if record.revoked:
        return False
    return record.install_id is None or state.installs[record.install_id].active


def live_refresh_token(state: SimState, token: str) -> tuple[RefreshToken, Install] | None:
    record = state.refresh_tokens.get(token)
    if record is None or not record.active:
        return None
    install = state.installs[record.install_id]
    return (record, install) if install.active else None


def _new_refresh_token(state: SimState, install: Install, hublet: str) -> str:
    record = RefreshToken(
        token=minting.refresh_token(hublet), install_id=install.install_id, client_id=install.client_id
    )
    state.refresh_tokens[record.token] = record
    state.touched()
    return record.token


def _new_access_token(state: SimState, app: App, install: Install) -> AccessToken:
    now = state.now()
    access = AccessToken(
        token=minting.access_token(),
        client_id=app.client_id,
        app_id=app.app_id,
        issued_at=now,
        expires_at=now + state.config.access_token_lifetime_seconds,
        scopes=list(install.scopes),
        install_id=install.install_id,
        hub_id=install.hub_id,
        user_id=install.user_id,
    )
    state.access_tokens[access.token] = access
    state.touched()
    return access


def _pkce_matches(challenge: str, verifier: str | None) -> bool:
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(expected, challenge)
