"""Status conditions: set with reason, message and observedGeneration; lastTransitionTime moves only on change."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from .durations import to_rfc3339

READY = "Ready"
REAUTH_REQUIRED = "ReauthRequired"
SCOPES_SATISFIED = "ScopesSatisfied"
DEGRADED = "Degraded"
ROTATION_DUE = "RotationDue"
PREVIOUS_TOKEN_RETIRABLE = "PreviousTokenRetirable"
VERIFIED = "Verified"


def get(conditions: Iterable[dict] | None, ctype: str) -> dict | None:
    for c in conditions or []:
        if c.get("type") == ctype:
            return c
    return None


def is_true(conditions: Iterable[dict] | None, ctype: str) -> bool:
    c = get(conditions, ctype)
    return bool(c and c.get("status") == "True")


def set_condition(
    conditions: list[dict] | None,
    ctype: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[dict]:
    """Returns a new list with `ctype` set; keeps lastTransitionTime if the status did not change."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    out = [dict(c) for c in conditions or [] if c.get("type") != ctype]
    old = get(conditions, ctype)
    transition = old.get("lastTransitionTime") if old and old.get("status") == value else to_rfc3339(now)
    out.append(
        {
            "type": ctype,
            "status": value,
            "reason": reason,
            "message": message[:1000],
            "observedGeneration": generation,
            "lastTransitionTime": transition,
        }
    )
    order = [READY, REAUTH_REQUIRED, SCOPES_SATISFIED, VERIFIED, ROTATION_DUE, PREVIOUS_TOKEN_RETIRABLE, DEGRADED]
    out.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))
    return out

# Reasons the private-app flow writes and `kubectl hubspot status` reads (next step).
ROTATION_ACCEPTED = "RotationAccepted"
ROTATION_ROLLED_BACK = "RotationRolledBack"  # RotationAccepted=False, Warning Event: the previous token is back
PREVIOUS_TOKEN_EXPIRED = "PreviousTokenExpired"  # the previous token died before the overlap ended
