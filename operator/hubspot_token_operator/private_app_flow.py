"""Reconcile of a PrivateApp HubSpotToken (legacy private-app tokens and service keys).

HubSpot has no API to mint these tokens: a person rotates in HubSpot's UI (ideally "Rotate and expire
later", which keeps the old token 7 days) and puts the new token into the source Secret, by hand or with
`kubectl hubspot rotate`. The operator then:

1. verifies the candidate with HubSpot (token info + a Bearer liveness call) and against spec.hubId and
   spec.requiredScopes; a failing candidate is rejected and the current token stays published;
2. publishes it, keeping the previous token under the previous-token key for `overlap`;
3. restarts consumers (rollout_flow) and says when the previous token is no longer used;
4. re-verifies the published token every `verifyInterval` (jittered), so a token deactivated in HubSpot
   is noticed before workloads fail, and raises RotationDue once the token is older than `maxAge`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from . import conditions as cond
from . import metrics
from .durations import format_duration, from_rfc3339, to_rfc3339
from .hubspot import ErrorKind, Failure
from .kube import SecretView
from .model import TokenSpec
from .publish import ours
from .secret_writer import publish_target
from .recording import Recorder
from .runtime import Runtime
from .schedule import jitter_fraction, retry_at

log = logging.getLogger(__name__)

ROTATION_ACCEPTED = "RotationAccepted"
OVERLAP_WARNING = timedelta(hours=24)


async def verify_token(rt: Runtime, spec: TokenSpec, token: str) -> tuple[str, str, dict]:
    """Returns (verdict, message, facts): verdict is 'ok', 'rejected' (the token itself is bad) or
    'transient' (HubSpot could not tell us now). facts carry hub id, app id and scopes when known."""
    client = rt.hubspot(spec.hubspot.base_url)
    info = await client.private_app_token_info(token)
    if isinstance(info, Failure):
        metrics.VERIFICATIONS.labels(result=info.reason).inc()
        if info.kind == ErrorKind.RETRYABLE:
            return "transient", f"HubSpot token info failed: {info.message}", {"retry_after": info.retry_after_seconds}
        return "rejected", f"HubSpot does not accept the token ({info.reason})", {"reason": "InvalidToken"}
    facts = {"hub_id": info.hub_id, "app_id": info.app_id, "scopes": sorted(info.scopes or [])}
    if spec.hub_id is not None and info.hub_id != spec.hub_id:
        metrics.VERIFICATIONS.labels(result="HubMismatch").inc()
        return "rejected", f"the token is for hub {info.hub_id}, but spec.hubId pins hub {spec.hub_id}", {
            **facts, "reason": "HubMismatch"}
    missing = sorted(set(spec.required_scopes) - set(info.scopes or []))
    if missing:
        metrics.VERIFICATIONS.labels(result="ScopesMissing").inc()
        return "rejected", "the token lacks required scopes: " + ", ".join(missing), {**facts, "reason": "ScopesMissing"}
    live = await client.check_liveness(token)
    if isinstance(live, Failure):
        metrics.VERIFICATIONS.labels(result=live.reason).inc()
        if live.kind == ErrorKind.RETRYABLE:
            return "transient", f"HubSpot liveness call failed: {live.message}", {"retry_after": live.retry_after_seconds}
        return "rejected", f"a Bearer call with the token failed ({live.reason})", {**facts, "reason": "InvalidToken"}
    metrics.VERIFICATIONS.labels(result="success").inc()
    return "ok", "verified with HubSpot", facts


def next_verify(now: datetime, interval: timedelta, seed: str) -> datetime:
    """Up to 10% earlier than the interval, stable per object, so verifications do not line up."""
    return now + interval * (1 - 0.1 * jitter_fraction(seed + "verify"))


async def reconcile_private_app(rt: Runtime, body: dict, spec: TokenSpec, rec: Recorder) -> datetime | None:
    md, status = body["metadata"], body.get("status") or {}
    ns, name, uid = md["namespace"], md["name"], md.get("uid", "")
    pa_status = dict(status.get("privateApp") or {})
    now = rt.clock.now()
    pa = spec.private_app
    ref = pa.token_secret_ref

    if spec.suspend:
        rec.condition(cond.READY, False, "Suspended", "spec.suspend is true; nothing is verified or restarted")
        return None

    source = await rt.kube.get_secret(ns, ref.name)
    candidate = source.text(ref.key) if source else None
    target = await rt.kube.get_secret(ns, spec.target.name)
    published_fp = status.get("tokenFingerprint")
    keys = spec.target.keys

    if candidate is None:
        what = f"Secret {ref.name}" if source is None else f"key {ref.key} in Secret {ref.name}"
        still = "; the published token stays in place" if published_fp else ""
        rec.condition(cond.READY, False, "InputsMissing", f"missing {what}{still}")
        rec.event_once("Warning", "InputsMissing", f"missing {what}")
        return None

    cand_fp = rt.fingerprints.of(candidate)
    pa_status["sourceVersion"] = source.resource_version
    wake: list[datetime] = []

    if cand_fp != published_fp:
        if cand_fp == pa_status.get("rejectedFingerprint"):
            pass  # already rejected; waits for a different token in the source Secret
        else:
            verdict, message, facts = await verify_token(rt, spec, candidate)
            if verdict == "transient":
                attempts = int(status.get("failedAttempts") or 0) + 1
                ra = facts.get("retry_after")
                when = retry_at(now, attempts, None, timedelta(seconds=ra) if ra else None)
                rec.set_fields(failedAttempts=attempts, lastFailureTime=to_rfc3339(now), lastFailureReason="VerifyFailed")
                rec.condition(cond.DEGRADED, True, "VerifyFailed", message)
                rec.event("Warning", "VerifyFailed", f"{message}; retry in {format_duration(when - now)}")
                pa_status["lastOutcome"] = "Pending"
                rec.set_fields(privateApp=pa_status)
                return when
            rec.set_fields(failedAttempts=0)
            if verdict == "rejected":
                reason = facts.get("reason", "InvalidToken")
                pa_status.update(rejectedFingerprint=cand_fp, lastOutcome="Rejected", lastOutcomeReason=reason)
                kept = "the current token stays published" if published_fp else "no token is published"
                rec.condition(ROTATION_ACCEPTED, False, reason, f"{message}; {kept}")
                if not published_fp:
                    rec.condition(cond.READY, False, reason, f"{message}; {kept}")
                rec.event("Warning", "RotationRejected", f"new token (fingerprint {cand_fp[:8]}) rejected: {message}; {kept}")
                rec.set_fields(privateApp=pa_status)
                return None
            # Accepted: publish, keeping the previous token for the overlap.
            previous = None
            if target is not None and published_fp:
                held = target.text(keys.token)
                if held and rt.fingerprints.of(held) == published_fp:
                    previous = held
            values = _values(spec, candidate, previous, facts.get("hub_id"))
            if not await publish_target(rt, rec, spec, body, values, target):
                return retry_at(now, 1, None)
            revision = _next_revision(status.get("credentialRevision"), cand_fp)
            pa_status.update(
                publishedAt=to_rfc3339(now),
                lastVerifiedAt=to_rfc3339(now),
                nextVerifyAt=to_rfc3339(next_verify(now, pa.verify_interval, uid)),
                rejectedFingerprint=None,
                lastOutcome="Published",
                lastOutcomeReason="Verified",
            )
            if previous is not None:
                until = now + pa.overlap
                pa_status.update(
                    previousFingerprint=published_fp, previousUntil=to_rfc3339(until), rotatedAt=to_rfc3339(now),
                    overlapWarned=None,
                )
                rec.event(
                    "Normal",
                    "Rotated",
                    f"new token (fingerprint {cand_fp[:8]}) verified and published; the previous token stays under "
                    f"key {keys.previous_token} until {to_rfc3339(until)}",
                )
                rec.condition(
                    cond.PREVIOUS_TOKEN_RETIRABLE, False, "ConsumersRestarting",
                    "workloads may still use the previous token; do not expire it in HubSpot yet",
                )
            else:
                pa_status.update(previousFingerprint=None, previousUntil=None, rotatedAt=None)
                rec.event("Normal", "Published", f"token (fingerprint {cand_fp[:8]}) verified and published")
            rec.set_fields(
                tokenFingerprint=cand_fp,
                hubId=facts.get("hub_id"),
                appId=facts.get("app_id"),
                scopes=facts.get("scopes"),
                credentialRevision=revision,
                restartRevision=revision,
                lastRefreshTime=to_rfc3339(now),
                lastRefreshReason="Rotated" if previous is not None else "InitialIssue",
            )
            rec.condition(ROTATION_ACCEPTED, True, "Verified", f"token {cand_fp[:8]} verified and published")
            rec.condition(cond.VERIFIED, True, "Verified", "HubSpot accepted the token")
            rec.condition(cond.READY, True, "TokenPublished", "verified token published")
            rec.condition(cond.DEGRADED, False, "Verified", "last verification succeeded")
            if spec.required_scopes:
                rec.condition(cond.SCOPES_SATISFIED, True, "ScopesPresent", "the token carries every required scope")
            published_fp = cand_fp
            status = {**status, "tokenFingerprint": cand_fp}
            target = await rt.kube.get_secret(ns, spec.target.name)
    else:
        # The source holds the published token (perhaps written back after a rejection): that is the outcome.
        pa_status.update(lastOutcome="Published", lastOutcomeReason="Verified", rejectedFingerprint=None)

    if published_fp and cand_fp == published_fp:
        # Steady state: drift repair, periodic verification, overlap end, age.
        current_values = _values(
            spec, candidate, _previous_value(rt, target, pa_status, keys.previous_token, now), status.get("hubId")
        )
        mac = rt.fingerprints.of_data(ours(current_values.keys(), target)) if target is not None else None
        if target is None or mac != rt.fingerprints.of_data(current_values):
            if await publish_target(rt, rec, spec, body, current_values, target):
                what = "missing" if target is None else "edited"
                rec.event("Normal", "SecretRestored", f"target Secret {spec.target.name} was {what}; restored")
        nv = from_rfc3339(pa_status.get("nextVerifyAt"))
        if nv is None or now >= nv:
            verdict, message, facts = await verify_token(rt, spec, candidate)
            if verdict == "ok":
                pa_status.update(lastVerifiedAt=to_rfc3339(now), nextVerifyAt=to_rfc3339(next_verify(now, pa.verify_interval, uid)))
                rec.condition(cond.VERIFIED, True, "Verified", "HubSpot accepted the token")
                rec.condition(cond.READY, True, "TokenPublished", "verified token published")
                rec.condition(cond.DEGRADED, False, "Verified", "last verification succeeded")
            elif verdict == "rejected":
                reason = "TokenDeactivated" if facts.get("reason") == "InvalidToken" else facts.get("reason", "Invalid")
                pa_status.update(lastVerifiedAt=to_rfc3339(now), nextVerifyAt=to_rfc3339(next_verify(now, pa.verify_interval, uid)))
                msg = f"the published token no longer passes verification: {message}; rotate it in HubSpot and update Secret {ref.name}"
                if cond.is_true(rec.conditions, cond.VERIFIED) or cond.get(rec.conditions, cond.VERIFIED) is None:
                    rec.event("Warning", "TokenInvalid", msg)
                rec.condition(cond.VERIFIED, False, reason, msg)
                rec.condition(cond.READY, False, reason, msg)
            else:
                pa_status["nextVerifyAt"] = to_rfc3339(retry_at(now, 1, None))
                rec.condition(cond.DEGRADED, True, "VerifyFailed", message)
        wake.append(from_rfc3339(pa_status["nextVerifyAt"]))

        until = from_rfc3339(pa_status.get("previousUntil"))
        if until is not None:
            if now >= until:
                values = _values(spec, candidate, None, status.get("hubId"))
                if await publish_target(rt, rec, spec, body, values, target, remove=(keys.previous_token,)):
                    rec.event("Normal", "PreviousTokenDropped", f"overlap ended; key {keys.previous_token} removed")
                    pa_status.update(previousFingerprint=None, previousUntil=None, overlapWarned=None)
                    rec.condition(
                        cond.PREVIOUS_TOKEN_RETIRABLE, True, "OverlapEnded",
                        "the previous token is no longer published",
                    )
            else:
                warn_at = until - min(OVERLAP_WARNING, pa.overlap / 7)
                retirable = cond.is_true(rec.conditions, cond.PREVIOUS_TOKEN_RETIRABLE)
                if now >= warn_at and not retirable and not pa_status.get("overlapWarned"):
                    rec.event(
                        "Warning",
                        "OverlapEnding",
                        f"the previous token leaves the Secret at {to_rfc3339(until)} but workloads still run pods "
                        "from before the rotation",
                    )
                    pa_status["overlapWarned"] = True
                wake.append(until if now >= warn_at else warn_at)

        published_at = from_rfc3339(pa_status.get("publishedAt"))
        if published_at is not None:
            age = now - published_at
            if age >= pa.max_age:
                if not cond.is_true(rec.conditions, cond.ROTATION_DUE):
                    rec.event(
                        "Warning", "RotationDue",
                        f"the token is {format_duration(age)} old (maxAge {format_duration(pa.max_age)}); rotate it in HubSpot",
                    )
                rec.condition(cond.ROTATION_DUE, True, "MaxAgeExceeded",
                              f"token published {format_duration(age)} ago; maxAge is {format_duration(pa.max_age)}")
            else:
                rec.condition(cond.ROTATION_DUE, False, "WithinMaxAge",
                              f"rotation due in {format_duration(pa.max_age - age)}")
                wake.append(published_at + pa.max_age)

    rec.set_fields(privateApp=pa_status)
    wake = [w for w in wake if w is not None]
    return min(wake) if wake else None


def _previous_value(rt: Runtime, target: SecretView | None, pa_status: dict, key: str, now: datetime) -> str | None:
    """The previous token as published, while the overlap lasts and its fingerprint still matches."""
    if target is None or not pa_status.get("previousFingerprint"):
        return None
    until = from_rfc3339(pa_status.get("previousUntil"))
    if until is None or now >= until:
        return None
    value = target.text(key)
    if value and rt.fingerprints.of(value) == pa_status["previousFingerprint"]:
        return value
    return None


def _values(spec: TokenSpec, token: str, previous: str | None, hub_id: int | None) -> dict[str, bytes]:
    keys = spec.target.keys
    values = {keys.token: token.encode()}
    if previous is not None:
        values[keys.previous_token] = previous.encode()
    if hub_id is not None:
        values[keys.hub_id] = str(hub_id).encode()
    return values


def _next_revision(current: str | None, fp: str) -> str:
    n = 0
    if current and current.split("-", 1)[0].isdigit():
        n = int(current.split("-", 1)[0])
    return f"{n + 1}-{fp[:8]}"


