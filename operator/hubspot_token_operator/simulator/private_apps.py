"""Private apps and Service Keys: static ``pat-`` tokens that only a human can rotate.

HubSpot offers no API for this (facts §4), so the control API plays the human clicking "Rotate" in the UI.
Rotation semantics follow the UI: "expire now" kills the old token at once, "expire later" keeps it valid
for ``rotation_grace_seconds`` (7 days by default) of simulated time; "Cancel rotation" deactivates the
new token and keeps the old one. Each action leaves the audit event
an operator could watch for.
"""

from __future__ import annotations

import uuid
from typing import Literal

from . import minting
from .model import AuditEvent, PrivateApp, StaticToken
from .state import SimState

_EVENT_PREFIX = {"private_app": "PRIVATE_APP_ACCESS_TOKEN", "service_key": "SERVICE_KEY"}


def create(
    state: SimState,
    hub_id: int,
    scopes: list[str],
    hublet: str | None = None,
    kind: str = "private_app",
    user_id: int | None = None,
) -> tuple[PrivateApp, str]:
    with state.lock:
        hub = state.hub(hub_id, hublet)
        app = PrivateApp(
            app_id=state.next_id(),
            hub_id=hub_id,
            user_id=user_id if user_id is not None else state.next_id(),
            scopes=list(scopes),
            hublet=hub.hublet,
            kind=kind,
        )
        state.private_apps[app.app_id] = app
        token = _issue(state, app)
        _audit(state, app, "CREATE")
        return app, token


def rotate(state: SimState, app_id: int, expire: Literal["now", "later"]) -> tuple[str, float | None]:
    """Issue a new token; returns it and when the previous one stops working (None = already dead)."""
    with state.lock:
        app = _active_app(state, app_id)
        now = state.now()
        retire_at = now if expire == "now" else now + state.config.rotation_grace_seconds
        for tok in _tokens_of(state, app_id):
            if tok.expires_at is None or tok.expires_at > retire_at:
                tok.expires_at = retire_at
        token = _issue(state, app)
        _audit(state, app, "ROTATE")
        return token, (None if expire == "now" else retire_at)


def expire_previous(state: SimState, app_id: int) -> None:
    """The UI's "Expire now" on a pending rotation: only the newest token survives."""
    with state.lock:
        _active_app(state, app_id)
        tokens = sorted(_tokens_of(state, app_id), key=lambda t: t.created_at)
        now = state.now()
        for tok in tokens[:-1]:
            if tok.expires_at is None or tok.expires_at > now:
                tok.expires_at = now
        state.touched()


def cancel_rotation(state: SimState, app_id: int) -> None:
    """The UI's "Cancel rotation" on a pending "expire later" rotation. HubSpot documents no semantics for
    it (facts §4.1 only says it sends an email); the simulator does what the name says: the newest token
    is deactivated and the token it replaced is valid again, with no end date. Raises ValueError when no
    rotation is pending (the replaced token already expired, or the rotation expired it at once).
    No audit event: HubSpot's audit-log enum has no cancel type."""
    with state.lock:
        _active_app(state, app_id)
        tokens = sorted(_tokens_of(state, app_id), key=lambda t: t.created_at)
        now = state.now()
        pending = len(tokens) >= 2 and not tokens[-1].revoked and not tokens[-2].revoked and (
            tokens[-2].expires_at is not None and tokens[-2].expires_at > now
        )
        if not pending:
            raise ValueError("no pending rotation to cancel")
        tokens[-1].revoked = True
        tokens[-2].expires_at = None  # it was the current token before the rotation: current tokens never expire
        state.touched()


def deactivate(state: SimState, app_id: int) -> None:
    with state.lock:
        app = _active_app(state, app_id)
        app.active = False
        for tok in _tokens_of(state, app_id):
            tok.revoked = True
        _audit(state, app, "DEACTIVATE")


def lookup(state: SimState, token: str) -> tuple[StaticToken, PrivateApp] | None:
    """The token and its app, whatever their condition (callers decide live vs expired)."""
    record = state.static_tokens.get(token)
    if record is None:
        return None
    return record, state.private_apps[record.app_id]


def is_live(state: SimState, record: StaticToken, app: PrivateApp) -> bool:
    if record.revoked or not app.active:
        return False
    return record.expires_at is None or state.now() < record.expires_at


def _active_app(state: SimState, app_id: int) -> PrivateApp:
    app = state.private_apps.get(app_id)
    if app is None or not app.active:
        raise LookupError("unknown or deactivated private app")
    return app


def _tokens_of(state: SimState, app_id: int) -> list[StaticToken]:
    return [t for t in state.static_tokens.values() if t.app_id == app_id]


def _issue(state: SimState, app: PrivateApp) -> str:
    record = StaticToken(token=minting.private_app_token(app.hublet), app_id=app.app_id, created_at=state.now())
    state.static_tokens[record.token] = record
    state.touched()
    return record.token


def _audit(state: SimState, app: PrivateApp, action: str) -> None:
    state.audit.append(
        AuditEvent(
            event_id=str(uuid.uuid4()),
            hub_id=app.hub_id,
            user_id=app.user_id,
            type=f"{_EVENT_PREFIX[app.kind]}_{action}",
            occurred_at=state.now(),
            object_id=str(app.app_id),
        )
    )
    state.touched()
