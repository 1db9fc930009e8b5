"""Tunable simulator behaviour, changed at runtime through ``POST /_sim/config``.

Defaults follow the documented HubSpot numbers (30-minute access tokens, 100 requests per 10 s per app,
250,000 per day per account) or, where HubSpot documents nothing, the most forgiving choice (no limit on
the token endpoint, stable refresh tokens).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RateLimitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ten_secondly_max: int = Field(100, ge=0, description="Bearer calls per app and hub per rolling 10 s")
    daily_max: int = Field(250_000, ge=0, description="Bearer calls per hub per simulated UTC day (pat tokens)")
    token_endpoint_ten_secondly_max: int | None = Field(
        None, ge=0, description="Token/introspect/revoke calls per client_id per 10 s; None = unlimited"
    )


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    access_token_lifetime_seconds: int = Field(1800, ge=1)
    refresh_token_mode: Literal["stable", "rotating"] = "stable"
    refresh_token_reuse_grace_seconds: int = Field(
        0,
        ge=0,
        description="rotating mode: for this long after a rotation the old refresh token may be presented again "
        "and gets the same successor; 0 = strict (one use only)",
    )
    auth_code_ttl_seconds: int = Field(300, ge=1)
    rotation_grace_seconds: int = Field(7 * 24 * 3600, ge=0, description="'expire later' overlap for pat tokens")
    eu1_token_info_requires_bearer: bool = True
    audit_log_order: Literal["oldest_first", "newest_first"] = Field(
        "oldest_first",
        description="the order audit-log pages list their entries in; HubSpot documents none, so the operator "
        "must work with either",
    )
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)

    def merged(self, patch: dict) -> "SimConfig":
        """A new config with ``patch`` applied; nested ``rate_limits`` are merged, not replaced."""
        data = self.model_dump()
        for key, value in patch.items():
            if key == "rate_limits" and isinstance(value, dict):
                data["rate_limits"] = {**data["rate_limits"], **value}
            else:
                data[key] = value
        return SimConfig.model_validate(data)
