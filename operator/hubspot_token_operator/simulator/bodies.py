"""Success bodies, shaped by the official schemas (snake_case for OAuth, camelCase for account-info).

Where a schema demands a field the simulator has no real meaning for (``signed_access_token.signature``,
``hub_domain``), it gets a plausible constant: conformance to the spec matters more than realism there.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from .model import AccessToken, AuditEvent, Hub, Install, RefreshToken
from .state import SimState

_HUBLET_ACCOUNT = {
    # hublet -> (timeZone, utcOffset, utcOffsetMilliseconds, currency)
    "eu1": ("Europe/Berlin", "+01:00", 3_600_000, "EUR"),
}
_DEFAULT_ACCOUNT = ("US/Eastern", "-05:00", -18_000_000, "USD")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_email(user_id: int | None) -> str:
    return f"user{user_id or 0}@example.com"


def hub_domain(hub_id: int | None) -> str:
    return f"portal-{hub_id or 0}.example.com"


def expires_in(state: SimState, expires_at: float) -> int:
    return max(0, round(expires_at - state.now()))


def token_response(access: AccessToken, refresh_token: str | None, state: SimState) -> dict[str, Any]:
    body: dict[str, Any] = {
        "token_type": "bearer",
        "access_token": access.token,
        "expires_in": expires_in(state, access.expires_at),
        "scopes": list(access.scopes),
        "token_use": access.token_use,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if access.hub_id is not None:
        body["hub_id"] = access.hub_id
    if access.user_id is not None:
        body["user_id"] = access.user_id
    return body


def signed_access_token(access: AccessToken, state: SimState) -> dict[str, Any]:
    hublet = state.hub(access.hub_id).hublet if access.hub_id is not None else "na1"
    digest = hashlib.sha256(access.token.encode()).hexdigest()
    return {
        "appId": access.app_id,
        "appInstallId": str(access.install_id or 0),
        "audience": "PUBLIC_APP",
        "expiresAt": int(access.expires_at * 1000),
        "hubId": access.hub_id or 0,
        "hublet": hublet,
        "installingUserId": access.user_id or 0,
        "isPrivateDistribution": False,
        "isServiceAccount": access.user_id is None,
        "isUserLevel": False,
        "newSignature": digest[:32],
        "scopeToScopeGroupPks": "",
        "scopes": " ".join(access.scopes),
        "signature": digest[32:],
        "trialScopeToScopeGroupPks": "",
        "trialScopes": "",
        "userId": access.user_id or 0,
    }


def v1_access_token_info(access: AccessToken, state: SimState) -> dict[str, Any]:
    return {
        "token": access.token,
        "user": user_email(access.user_id),
        "hub_domain": hub_domain(access.hub_id),
        "scopes": list(access.scopes),
        "hub_id": access.hub_id or 0,
        "app_id": access.app_id,
        "expires_in": expires_in(state, access.expires_at),
        "user_id": access.user_id or 0,
        "token_type": "access",
        "is_private_distribution": False,
        "signed_access_token": signed_access_token(access, state),
    }


def v1_refresh_token_info(record: RefreshToken, install: Install) -> dict[str, Any]:
    return {
        "token": record.token,
        "user": user_email(install.user_id),
        "hub_domain": hub_domain(install.hub_id),
        "scopes": list(install.scopes),
        "hub_id": install.hub_id,
        "client_id": record.client_id,
        "user_id": install.user_id,
        "token_type": "refresh",
    }


def introspect_access(access: AccessToken, state: SimState, active: bool) -> dict[str, Any]:
    return {
        "active": active,
        "token": access.token,
        "token_use": "access_token",
        "token_type": "access",
        "client_id": access.client_id,
        "app_id": access.app_id,
        "hub_id": access.hub_id or 0,
        "hub_domain": hub_domain(access.hub_id),
        "user_id": access.user_id or 0,
        "user": user_email(access.user_id),
        "scopes": list(access.scopes),
        "expires_in": expires_in(state, access.expires_at) if active else 0,
        "is_private_distribution": False,
        "signed_access_token": signed_access_token(access, state),
    }


def introspect_refresh(record: RefreshToken, install: Install, active: bool) -> dict[str, Any]:
    return {
        "active": active,
        "token": record.token,
        "token_use": "refresh_token",
        "token_type": "refresh",
        "client_id": record.client_id,
        "app_id": install.app_id,
        "hub_id": install.hub_id,
        "hub_domain": hub_domain(install.hub_id),
        "user_id": install.user_id,
        "user": user_email(install.user_id),
        "scopes": list(install.scopes),
    }


def account_details(hub: Hub) -> dict[str, Any]:
    tz, offset, offset_ms, currency = _HUBLET_ACCOUNT.get(hub.hublet, _DEFAULT_ACCOUNT)
    ui_domain = "app.hubspot.com" if hub.hublet == "na1" else f"app-{hub.hublet}.hubspot.com"
    return {
        "portalId": hub.hub_id,
        "accountType": "STANDARD",
        "timeZone": tz,
        "companyCurrency": currency,
        "additionalCurrencies": [],
        "utcOffset": offset,
        "utcOffsetMilliseconds": offset_ms,
        "uiDomain": ui_domain,
        "dataHostingLocation": hub.hublet,
    }


def api_usage(daily_max: int, used: int, now: float, resets_at: float) -> dict[str, Any]:
    return {
        "results": [
            {
                "name": "private-apps-api-calls-daily",
                "usageLimit": daily_max,
                "currentUsage": used,
                "collectedAt": iso(now),
                "fetchStatus": "SUCCESS",
                "resetsAt": iso(resets_at),
            }
        ]
    }


def contact(hub_id: int, now: float) -> dict[str, Any]:
    created = iso(now - 86400)
    return {
        "id": "1",
        "properties": {
            "createdate": created,
            "email": f"contact@portal-{hub_id}.example.com",
            "firstname": "Sim",
            "hs_object_id": "1",
            "lastmodifieddate": created,
            "lastname": "Contact",
        },
        "createdAt": created,
        "updatedAt": created,
        "archived": False,
    }


def security_activity(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.event_id,
        "type": event.type,
        "userId": event.user_id,
        "actingUser": user_email(event.user_id),
        "createdAt": iso(event.occurred_at),
        "objectId": event.object_id,
    }


def audit_log_event(event: AuditEvent) -> dict[str, Any]:
    category, _, action = event.type.rpartition("_")
    return {
        "id": event.event_id,
        "actingUser": {"userId": event.user_id, "userEmail": user_email(event.user_id)},
        "category": category,
        "subCategory": event.type,
        "action": action,
        "occurredAt": iso(event.occurred_at),
        "targetObjectId": event.object_id,
    }
