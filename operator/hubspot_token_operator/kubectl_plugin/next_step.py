"""The ``Next step:`` line of ``kubectl hubspot status NAME``: what a person should do now, computed from
the HubSpotToken's spec and status alone (a pure function; the same words docs/hubspot-emails.md uses).

The first matching situation wins, most urgent first: a published token that no longer works, a rotation
that was rolled back or rejected, consumers still on the old token near the overlap's end, the old token
safe to expire, a rotation due. Never reads a Secret; fingerprints only.
"""

from __future__ import annotations

from datetime import datetime

from .common import parse_time

# Ready reasons meaning "the published private-app token does not work" (verification.py, private_app_actions.py)
_DEAD = {"TokenDeactivated", "InvalidToken", "HubMismatch", "ScopesMissing", "MalformedToken"}


def _cond(status: dict, ctype: str) -> dict:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def _at(text: object) -> str:
    dt = parse_time(text)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else "-"


def next_step(obj: dict, now: datetime | None = None) -> str:
    md, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    name, ns = md.get("name") or "NAME", md.get("namespace")
    rotate = f"`kubectl hubspot rotate {name}{f' -n {ns}' if ns else ''} < new-token.txt`"
    ready = _cond(status, "Ready")
    if spec.get("suspend"):
        return "nothing happens while spec.suspend is true; set it to false to resume"
    if not status:
        return "wait for the operator to see this object (is it running and does it serve this namespace?)"
    if spec.get("type") == "OAuth":
        return _oauth(spec, status, ready)
    pa = status.get("privateApp") or {}
    src = ((spec.get("privateApp") or {}).get("tokenSecretRef") or {}).get("name") or "the source Secret"
    target = (spec.get("target") or {}).get("name") or "the target Secret"
    accepted = _cond(status, "RotationAccepted")
    retirable = _cond(status, "PreviousTokenRetirable")
    if ready.get("status") == "False":
        reason = ready.get("reason") or ""
        if reason in _DEAD or pa.get("verified") is False:
            return (f"the published token no longer works in HubSpot: put a working token into Secret {src} "
                    f"with {rotate} (if HubSpot already shows a newer token, that one; else rotate in HubSpot first)")
        if reason in ("NotIssued", "InputsMissing"):
            return f"put a token into Secret {src}: {rotate}"
        return f"fix what the Ready condition says ({reason}): {ready.get('message') or '-'}"
    if accepted.get("status") == "False" and accepted.get("reason") == "RotationRolledBack":
        return (f"the new token stopped working and the previous one is published again; Secret {src} still "
                f"holds the dead token: rotate in HubSpot, then {rotate}")
    if pa.get("lastOutcome") == "Rejected":
        why = pa.get("lastOutcomeReason") or accepted.get("reason") or "rejected"
        return f"the token in Secret {src} was rejected ({why}) and not published: put a working one there with {rotate}"
    if pa.get("previousFingerprint"):
        until = _at(pa.get("previousUntil"))
        if retirable.get("status") == "True":
            return (f"safe to expire the old token in HubSpot (\"Expire now\"); it leaves Secret {target} at "
                    f"{until} anyway")
        if pa.get("overlapWarned"):
            return (f"restart the workloads still running pods from before the rotation before {until}, when the "
                    "old token leaves the Secret; do not expire it in HubSpot yet")
        return f"wait for the consumers to restart onto the new token; do not expire the old token in HubSpot yet (overlap until {until})"
    if _cond(status, "RotationDue").get("reason") == "RotatedInHubSpot":
        return (f"someone rotated the token in HubSpot (audit log): copy the new token from HubSpot, then {rotate}; "
                "until then the old one is published")
    if _cond(status, "RotationDue").get("status") == "True":
        return f"rotate in HubSpot (\"Rotate and expire later\"), then {rotate}"
    due = _cond(status, "RotationDue").get("message")
    return "nothing to do" + (f" ({due})" if due else "")


def _oauth(spec: dict, status: dict, ready: dict) -> str:
    if _cond(status, "ReauthRequired").get("status") == "True":
        ref = ((spec.get("oauth") or {}).get("refreshTokenSecretRef") or {}).get("name") or "the refresh-token Secret"
        return f"re-authorise the app in HubSpot and put the new refresh token into Secret {ref}"
    if ready.get("status") == "False":
        return f"fix what the Ready condition says ({ready.get('reason') or '-'}): {ready.get('message') or '-'}"
    return "nothing to do (access tokens are refreshed on their own)"
