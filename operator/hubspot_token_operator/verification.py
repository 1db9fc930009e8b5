"""Verifying a private-app token with HubSpot: token info, hub pin, scopes, then a Bearer liveness call."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from . import metrics
from .hubspot import ErrorKind, Failure
from .model import TokenSpec
from .runtime import Runtime
from .schedule import jitter_fraction

MIN_VERIFY_INTERVAL = timedelta(minutes=1)  # the CRD refuses less; this guards objects stored before that rule
_TOKEN_SHAPE = re.compile(r"^[\x21-\x7e]{8,4096}$")  # printable ASCII, no spaces: what HubSpot tokens look like


@dataclass(frozen=True)
class Verification:
    verdict: Literal["ok", "rejected", "transient"]
    message: str
    reason: str = "Verified"
    hub_id: int | None = None
    app_id: int | None = None
    scopes: list[str] = field(default_factory=list)
    retry_after: float | None = None


async def verify_token(rt: Runtime, spec: TokenSpec, token: str) -> Verification:
    """'ok', 'rejected' (the token itself is bad: never publish it) or 'transient' (ask again later)."""
    if not _TOKEN_SHAPE.match(token):
        metrics.VERIFICATIONS.labels(result="MalformedToken").inc()
        return Verification("rejected", "the value is not shaped like a HubSpot token (printable ASCII, no spaces)",
                            "MalformedToken")
    client = rt.hubspot(spec.hubspot.base_url)
    info = await client.private_app_token_info(token)
    if isinstance(info, Failure):
        metrics.VERIFICATIONS.labels(result=info.reason).inc()
        if info.kind == ErrorKind.RETRYABLE:
            return Verification("transient", f"HubSpot token info failed: {info.message}", "VerifyFailed",
                                retry_after=info.retry_after_seconds)
        return Verification("rejected", f"HubSpot does not accept the token ({info.reason})", "InvalidToken")
    facts = dict(hub_id=info.hub_id, app_id=info.app_id, scopes=sorted(info.scopes or []))
    if spec.hub_id is not None and info.hub_id != spec.hub_id:
        metrics.VERIFICATIONS.labels(result="HubMismatch").inc()
        return Verification("rejected", f"the token is for hub {info.hub_id}, but spec.hubId pins hub {spec.hub_id}",
                            "HubMismatch", **facts)
    missing = sorted(set(spec.required_scopes) - set(info.scopes or []))
    if missing:
        metrics.VERIFICATIONS.labels(result="ScopesMissing").inc()
        return Verification("rejected", "the token lacks required scopes: " + ", ".join(missing), "ScopesMissing",
                            **facts)
    live = await client.check_liveness(token)
    if isinstance(live, Failure):
        metrics.VERIFICATIONS.labels(result=live.reason).inc()
        if live.kind == ErrorKind.RETRYABLE:
            return Verification("transient", f"HubSpot liveness call failed: {live.message}", "VerifyFailed",
                                retry_after=live.retry_after_seconds)
        return Verification("rejected", f"a Bearer call with the token failed ({live.reason})", "InvalidToken", **facts)
    metrics.VERIFICATIONS.labels(result="success").inc()
    return Verification("ok", "verified with HubSpot", **facts)


def next_verify(now: datetime, interval: timedelta, seed: str) -> datetime:
    """Up to 10% earlier than the interval, stable per object, so verifications do not line up."""
    interval = max(interval, MIN_VERIFY_INTERVAL)
    return now + interval * (1 - 0.1 * jitter_fraction(seed + "verify"))
