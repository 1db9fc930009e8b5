"""Pydantic models of HubSpot's success bodies: the boundary where JSON becomes typed values.

Lenient on extras (HubSpot adds fields over time), strict on what the operator relies on. Validation
errors are reported by field location only, never by value, because values here are tokens.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TokenResponse(_Wire):
    access_token: str = Field(min_length=1)
    expires_in: int
    token_type: str = "bearer"
    token_use: str = "access_token"
    refresh_token: str | None = None
    hub_id: int | None = None
    user_id: int | None = None
    scopes: list[str] = Field(default_factory=list)


class Introspection(_Wire):
    """v3/2026-03 introspection, either union member (access or refresh token)."""

    active: bool
    token_use: str
    client_id: str | None = None
    app_id: int | None = None
    hub_id: int | None = None
    user_id: int | None = None
    scopes: list[str] = Field(default_factory=list)
    expires_in: int | None = None


class V1AccessTokenInfo(_Wire):
    app_id: int
    hub_id: int
    user_id: int
    scopes: list[str]
    expires_in: int


class V1RefreshTokenInfo(_Wire):
    client_id: str
    hub_id: int
    user_id: int
    scopes: list[str]


class PrivateAppInfo(_Wire):
    hub_id: int = Field(alias="hubId")
    user_id: int | None = Field(None, alias="userId")
    app_id: int | None = Field(None, alias="appId")
    scopes: list[str] = Field(default_factory=list)


class PortalInformation(_Wire):
    portal_id: int = Field(alias="portalId")
    account_type: str | None = Field(None, alias="accountType")
    data_hosting_location: str | None = Field(None, alias="dataHostingLocation")
    ui_domain: str | None = Field(None, alias="uiDomain")
    time_zone: str | None = Field(None, alias="timeZone")


class AuditActingUser(_Wire):
    user_id: int = Field(alias="userId")
    user_email: str | None = Field(None, alias="userEmail")


class AuditLogEvent(_Wire):
    """One PublicApiUserActionEvent of the 2026-03 audit-log API (the spec names no enum for `action`)."""

    id: str
    action: str
    category: str
    sub_category: str | None = Field(None, alias="subCategory")
    occurred_at: datetime = Field(alias="occurredAt")
    target_object_id: str | None = Field(None, alias="targetObjectId")
    acting_user: AuditActingUser = Field(alias="actingUser")


class AuditLogPage(_Wire):
    results: list[AuditLogEvent]
    paging: dict | None = None

    @property
    def next_after(self) -> str | None:
        return ((self.paging or {}).get("next") or {}).get("after")


def problem_fields(exc: ValidationError) -> str:
    """``access_token: missing, expires_in: int_parsing``: where and what, without the offending value."""
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['type']}" for err in exc.errors()]
    return ", ".join(parts[:5])
