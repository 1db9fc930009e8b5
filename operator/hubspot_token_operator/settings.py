"""Operator-wide settings: from command-line flags, with environment variables as defaults (Helm sets those)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field


def _env(name: str, default: str) -> str:
    return os.environ.get(f"HTO_{name}", default)


@dataclass
class Settings:
    namespaces: list[str] = field(default_factory=list)  # empty with all_namespaces=True: cluster-wide
    all_namespaces: bool = False
    hubspot_base_url: str = field(default_factory=lambda: _env("HUBSPOT_BASE_URL", "https://api.hubapi.com"))
    default_oauth_api: str = field(default_factory=lambda: _env("DEFAULT_OAUTH_API", "2026-03"))
    operator_namespace: str = field(
        default_factory=lambda: _env("OPERATOR_NAMESPACE", os.environ.get("POD_NAMESPACE", "default"))
    )
    fingerprint_secret: str = field(default_factory=lambda: _env("FINGERPRINT_SECRET", "hubspot-token-operator-hmac"))
    custody_secret: str = field(default_factory=lambda: _env("CUSTODY_SECRET", "hubspot-token-operator-custody"))
    # How long a shutdown waits for reconciles in flight (the chart's terminationGracePeriodSeconds is larger).
    shutdown_grace_seconds: float = field(default_factory=lambda: float(_env("SHUTDOWN_GRACE_SECONDS", "20")))
    workers: int = field(default_factory=lambda: int(_env("WORKERS", "32")))
    refreshes_per_second_per_app: float = field(default_factory=lambda: float(_env("APP_REFRESH_RATE", "8")))
    # HubSpot endpoints a HubSpotToken may name in spec.hubspot.baseURL (the operator's own
    # hubspot_base_url is always allowed). Comma-separated in HTO_ALLOWED_HUBSPOT_URLS.
    allowed_hubspot_urls: list[str] = field(default_factory=lambda: [
        u for u in _env("ALLOWED_HUBSPOT_URLS", "https://api.hubapi.com,https://api-eu1.hubapi.com").split(",") if u])
    # "consent": Secrets and workloads a token did not create are used only when labelled
    # hubspot-operator.dev/consent=true (tenancy.py); "trusted": every token may use anything in its namespace.
    tenancy: str = field(default_factory=lambda: _env("TENANCY", "consent"))
    time_source: str = field(default_factory=lambda: _env("TIME_SOURCE", "system"))  # or "simulator"
    metrics_port: int = field(default_factory=lambda: int(_env("METRICS_PORT", "8080")))
    health_port: int = field(default_factory=lambda: int(_env("HEALTH_PORT", "8081")))
    log_format: str = field(default_factory=lambda: _env("LOG_FORMAT", "text"))  # text | json
    log_level: str = field(default_factory=lambda: _env("LOG_LEVEL", "INFO"))
    # Leader election (leadership.py): one replica of a release does the work. The lease name defaults to one
    # per shard (its namespaces and token selector), so releases with disjoint shards never contend.
    leader_elect: bool = field(default_factory=lambda: _env("LEADER_ELECT", "true") == "true")
    lease: str = field(default_factory=lambda: _env("LEASE_NAME", ""))
    lease_duration: float = field(default_factory=lambda: float(_env("LEASE_DURATION", "15")))
    lease_renew_deadline: float = field(default_factory=lambda: float(_env("LEASE_RENEW_DEADLINE", "10")))
    lease_retry_period: float = field(default_factory=lambda: float(_env("LEASE_RETRY_PERIOD", "2")))
    # The whole of one HubSpot call; with leader election it must end before a standby could take over.
    hubspot_call_deadline: float = field(default_factory=lambda: float(_env("HUBSPOT_CALL_DEADLINE", "10")))
    # Sharding by label: only HubSpotTokens matching this selector (e.g. "shard=a", "tier in (x,y)") are served.
    token_selector: str = field(default_factory=lambda: _env("TOKEN_SELECTOR", ""))
    rollout_poll_seconds: float = field(default_factory=lambda: float(_env("ROLLOUT_POLL_SECONDS", "5")))

    def problems(self) -> list[str]:
        """Settings that cannot work together, each said so that the fix is clear."""
        out = []
        if self.leader_elect:
            if not (0 < self.lease_retry_period < self.lease_renew_deadline < self.lease_duration):
                out.append("leader election needs 0 < --lease-retry-period < --lease-renew-deadline < --lease-duration "
                           f"(got {self.lease_retry_period:g} / {self.lease_renew_deadline:g} / {self.lease_duration:g})")
            elif self.lease_duration != int(self.lease_duration):
                out.append(f"--lease-duration must be whole seconds (got {self.lease_duration:g}): the Lease records "
                           "whole seconds, and a standby must not take it before this replica's calls have ended")
            elif self.lease_duration - self.lease_retry_period <= self.hubspot_call_deadline:
                out.append(f"--lease-duration ({self.lease_duration:g}s) minus --lease-retry-period "
                           f"({self.lease_retry_period:g}s) must exceed --hubspot-call-deadline "
                           f"({self.hubspot_call_deadline:g}s): a leader must be able to finish a call it starts")
        if self.hubspot_call_deadline <= 0:
            out.append("--hubspot-call-deadline must be positive")
        if self.token_selector:
            from .sharding import SelectorError, parse_selector
            try:
                parse_selector(self.token_selector)
            except SelectorError as e:
                out.append(f"--token-selector: {e}")
        return out

    def lease_name(self) -> str:
        if self.lease:
            return self.lease
        if self.all_namespaces and not self.token_selector:
            return "hubspot-token-operator"
        shard = ",".join(sorted(self.namespaces)) + "|" + self.token_selector
        return "hubspot-token-operator-" + hashlib.sha256(shard.encode()).hexdigest()[:10]

    def allowed_endpoints(self) -> list[str]:
        return [self.hubspot_base_url, *self.allowed_hubspot_urls]
