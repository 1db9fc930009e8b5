"""The HubSpotToken spec as typed values, parsed once at the top of a reconcile.

Field names follow the CRD (crds/hubspottokens.hubspot-operator.dev.yaml); defaults are the same as the
CRD's (a unit test compares them), so an object stored before a default existed still parses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .durations import MAX_DURATION, parse_duration


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


def _duration(v: object) -> object:
    return parse_duration(v) if isinstance(v, str) else v


def _bounded(v: timedelta | None) -> timedelta | None:
    # Strings are bounded by parse_duration already; this catches numbers (seconds) and timedeltas.
    if v is not None and abs(v) > MAX_DURATION:
        raise ValueError("too long a duration: at most 36500d (100 years)")
    return v


class ClientSecretRef(_Model):
    name: str
    client_id_key: str = Field("client_id", alias="clientIdKey")
    client_secret_key: str = Field("client_secret", alias="clientSecretKey")


class SecretKeyRef(_Model):
    name: str
    key: str


class RefreshTokenRef(SecretKeyRef):
    key: str = "refresh_token"


class SourceTokenRef(SecretKeyRef):
    key: str = "token"


class OAuthSpec(_Model):
    client_secret_ref: ClientSecretRef = Field(alias="clientSecretRef")
    refresh_token_secret_ref: RefreshTokenRef = Field(alias="refreshTokenSecretRef")
    api_version: Literal["2026-03", "v3", "v1"] = Field("2026-03", alias="apiVersion")
    revoke_on_delete: bool = Field(False, alias="revokeOnDelete")


class RefreshSpec(_Model):
    percent: int = 67
    before: timedelta | None = None
    min_remaining_validity: timedelta = Field(timedelta(minutes=2), alias="minRemainingValidity")
    jitter_percent: int = Field(5, alias="jitterPercent")

    _d = field_validator("before", "min_remaining_validity", mode="before")(_duration)
    _b = field_validator("before", "min_remaining_validity")(_bounded)


class AuditLogSpec(_Model):
    enabled: bool = False
    interval: timedelta = timedelta(minutes=5)
    token_secret_ref: SourceTokenRef | None = Field(None, alias="tokenSecretRef")

    _d = field_validator("interval", mode="before")(_duration)
    _b = field_validator("interval")(_bounded)

    @field_validator("interval")
    @classmethod
    def _at_least_a_minute(cls, v: timedelta) -> timedelta:
        # The CRD says so too (CEL); checked here as well, so no schema edit can make each pass call HubSpot.
        if v < timedelta(minutes=1):
            raise ValueError("must be at least 1m (each read is a HubSpot call)")
        return v


class PrivateAppSpec(_Model):
    token_secret_ref: SourceTokenRef = Field(alias="tokenSecretRef")
    audit_log: AuditLogSpec = Field(AuditLogSpec(), alias="auditLog")
    overlap: timedelta = timedelta(days=7)
    max_age: timedelta = Field(timedelta(days=180), alias="maxAge")
    verify_interval: timedelta = Field(timedelta(hours=1), alias="verifyInterval")

    _d = field_validator("overlap", "max_age", "verify_interval", mode="before")(_duration)
    _b = field_validator("overlap", "max_age", "verify_interval")(_bounded)


class TargetKeys(_Model):
    token: str = "access_token"
    previous_token: str = Field("previous_access_token", alias="previousToken")
    expires_at: str = Field("expires_at", alias="expiresAt")
    hub_id: str = Field("hub_id", alias="hubId")


class TargetSpec(_Model):
    name: str
    keys: TargetKeys = TargetKeys()
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    creation_policy: Literal["Owner", "Adopt", "Merge"] = Field("Owner", alias="creationPolicy")
    deletion_policy: Literal["Retain", "Delete"] = Field("Retain", alias="deletionPolicy")


class RolloutTarget(_Model):
    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Rollout"]
    name: str


class LabelSelector(_Model):
    match_labels: dict[str, str] = Field({}, alias="matchLabels")
    match_expressions: list[dict] = Field([], alias="matchExpressions")

    def matches(self, labels: dict[str, str]) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for expr in self.match_expressions:
            key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and key in labels and labels[key] in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return bool(self.match_labels or self.match_expressions)


class RolloutSpec(_Model):
    restart_on: Literal["Rotation", "EveryRefresh", "Never"] = Field("Rotation", alias="restartOn")
    delay: timedelta = timedelta(seconds=5)
    min_interval: timedelta = Field(timedelta(0), alias="minInterval")
    targets: list[RolloutTarget] = []
    selector: LabelSelector | None = None

    _d = field_validator("delay", "min_interval", mode="before")(_duration)
    _b = field_validator("delay", "min_interval")(_bounded)

    @property
    def enabled(self) -> bool:
        return self.restart_on != "Never" and bool(self.targets or self.selector)


class HubSpotSpec(_Model):
    base_url: str | None = Field(None, alias="baseURL")


class TokenSpec(_Model):
    type: Literal["OAuth", "PrivateApp"]
    hub_id: int | None = Field(None, alias="hubId")
    required_scopes: list[str] = Field([], alias="requiredScopes")
    suspend: bool = False
    hubspot: HubSpotSpec = HubSpotSpec()
    oauth: OAuthSpec | None = None
    private_app: PrivateAppSpec | None = Field(None, alias="privateApp")
    refresh: RefreshSpec = RefreshSpec()
    target: TargetSpec
    rollout: RolloutSpec = RolloutSpec()


class SpecError(ValueError):
    """The spec could not be parsed; the message says which field and why (no values echoed)."""


def parse_spec(spec: dict) -> TokenSpec:
    try:
        parsed = TokenSpec.model_validate(spec)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_input=False, include_url=False):
            where = "spec." + ".".join(str(p) for p in err["loc"])
            problems.append(f"{where}: {err['msg']}")
        raise SpecError("; ".join(problems)) from None
    if parsed.type == "OAuth" and parsed.oauth is None:
        raise SpecError("spec.type OAuth needs a spec.oauth block")
    if parsed.type == "PrivateApp" and parsed.private_app is None:
        raise SpecError("spec.type PrivateApp needs a spec.privateApp block")
    return parsed
