"""Reconcile of an OAuth HubSpotToken: gather, decide (policies.decide_oauth), act, record.

Order of effects on a refresh, chosen so that nothing is ever lost:
1. call HubSpot once (or reuse a sibling's fresh result for the same grant);
2. refuse the token if it is for another hub or lacks required scopes (nothing is written);
3. write a rotated refresh token back to its Secret (compare-and-swap) *before* publishing;
4. publish the access token to the target Secret;
5. record status (expiry, next refresh, fingerprints) and post an Event.
A failure at any step leaves the previously published token in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from kubernetes.client import ApiException

from . import conditions as cond
from .durations import format_duration, from_rfc3339, to_rfc3339
from .grants import GrantResult
from .hubspot import ErrorKind, Failure
from .kube import SecretView
from .model import TokenSpec
from .policies import Observed, Verdict, decide_oauth
from .publish import ours
from .secret_writer import publish_target
from .recording import Recorder
from .runtime import Runtime
from .schedule import refresh_at, retry_at, usable

log = logging.getLogger(__name__)

REFRESH_REQUEST_ANNOTATION = "hubspot-operator.dev/refresh-requested-at"


@dataclass
class Inputs:
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    refresh_secret: SecretView | None = None
    target: SecretView | None = None
    missing: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Inputs(missing={self.missing})"


async def gather_inputs(rt: Runtime, namespace: str, spec: TokenSpec) -> Inputs:
    oauth = spec.oauth
    missing: list[str] = []
    inp = Inputs()
    cs_ref, rt_ref = oauth.client_secret_ref, oauth.refresh_token_secret_ref
    cs = await rt.kube.get_secret(namespace, cs_ref.name)
    if cs is None:
        missing.append(f"Secret {cs_ref.name}")
    else:
        inp.client_id = cs.text(cs_ref.client_id_key)
        inp.client_secret = cs.text(cs_ref.client_secret_key)
        for key, val in ((cs_ref.client_id_key, inp.client_id), (cs_ref.client_secret_key, inp.client_secret)):
            if val is None:
                missing.append(f"key {key} in Secret {cs_ref.name}")
    rs = cs if rt_ref.name == cs_ref.name else await rt.kube.get_secret(namespace, rt_ref.name)
    inp.refresh_secret = rs
    if rs is None:
        if f"Secret {rt_ref.name}" not in missing:
            missing.append(f"Secret {rt_ref.name}")
    else:
        inp.refresh_token = rs.text(rt_ref.key)
        if inp.refresh_token is None:
            missing.append(f"key {rt_ref.key} in Secret {rt_ref.name}")
    inp.target = await rt.kube.get_secret(namespace, spec.target.name)
    inp.missing = tuple(missing)
    return inp


def grant_fingerprint(rt: Runtime, spec: TokenSpec, client_id: str | None, refresh_token: str | None) -> str | None:
    if not client_id or not refresh_token:
        return None
    base = (spec.hubspot.base_url or rt.settings.hubspot_base_url).rstrip("/")
    return rt.fingerprints.of("\x00".join([base, spec.oauth.api_version, client_id, refresh_token]))


def target_values(spec: TokenSpec, token: str, expires_at: datetime | None, hub_id: int | None) -> dict[str, bytes]:
    keys = spec.target.keys
    values = {keys.token: token.encode()}
    if expires_at is not None:
        values[keys.expires_at] = to_rfc3339(expires_at).encode()
    if hub_id is not None:
        values[keys.hub_id] = str(hub_id).encode()
    return values


def _our_keys(spec: TokenSpec) -> tuple[str, ...]:
    k = spec.target.keys
    return (k.token, k.expires_at, k.hub_id)


def held_token(rt: Runtime, status: dict, grant_fp: str | None, target: SecretView | None, spec: TokenSpec) -> str | None:
    """The access token currently published (per status.tokenFingerprint), if we can still lay hands on it."""
    want = status.get("tokenFingerprint")
    if not want:
        return None
    cached = rt.grants.latest(grant_fp)
    if cached and rt.fingerprints.of(cached.access_token) == want:
        return cached.access_token
    if target is not None:
        value = target.text(spec.target.keys.token)
        if value and rt.fingerprints.of(value) == want:
            return value
    return None


async def reconcile_oauth(rt: Runtime, body: dict, spec: TokenSpec, rec: Recorder) -> datetime | None:
    md, status = body["metadata"], body.get("status") or {}
    ns, name = md["namespace"], md["name"]
    now = rt.clock.now()
    inp = await gather_inputs(rt, ns, spec)
    gfp = grant_fingerprint(rt, spec, inp.client_id, inp.refresh_token)
    held = held_token(rt, status, gfp, inp.target, spec)
    values_now = ours(_our_keys(spec), inp.target)
    obs = Observed(
        spec=spec,
        status=status,
        now=now,
        uid=md.get("uid", name),
        generation=md.get("generation"),
        refresh_request=(md.get("annotations") or {}).get(REFRESH_REQUEST_ANNOTATION),
        missing_inputs=inp.missing,
        grant_fingerprint=gfp,
        target_exists=inp.target is not None,
        target_mac=rt.fingerprints.of_data(values_now) if inp.target is not None else None,
        held_token=held is not None,
        expires_at=from_rfc3339(status.get("expiresAt")),
        issued_at=from_rfc3339(status.get("lastRefreshTime")),
    )
    verdict = decide_oauth(obs)
    log.debug("%s/%s: %s (%s)", ns, name, verdict.action, verdict.reason)

    if verdict.action == "Blocked":
        return _blocked(rec, obs, verdict)
    if verdict.action == "Wait":
        rec.set_fields(nextRefreshAt=to_rfc3339(verdict.until))
        _ready_while_valid(rec, obs)
        return verdict.until
    if verdict.action == "Republish":
        return await _republish(rt, rec, obs, verdict, held, inp, body)
    return await _refresh(rt, rec, obs, verdict, inp, gfp, body)


def _ready_while_valid(rec: Recorder, obs: Observed) -> None:
    if obs.target_exists and obs.expires_at and obs.expires_at > obs.now:
        rec.condition(cond.READY, True, "TokenPublished", f"access token valid until {to_rfc3339(obs.expires_at)}")


def _blocked(rec: Recorder, obs: Observed, v: Verdict) -> datetime | None:
    expires = obs.expires_at
    still = f"; the published token stays valid until {to_rfc3339(expires)}" if expires and expires > obs.now else ""
    if v.reason == "InputsMissing":
        rec.condition(cond.READY, False, "InputsMissing", v.message + still)
        rec.event_once("Warning", "InputsMissing", v.message)
    elif v.reason == "Suspended":
        rec.condition(cond.READY, False, "Suspended", v.message + still)
    elif v.reason == "ReauthRequired":
        rec.condition(cond.READY, False, "ReauthRequired", v.message + still)
    # Refusals (HubMismatch, ScopesMissing, TargetSecretNotOwned, ...) were recorded when they happened;
    # nothing to redo until the spec, the grant or the target Secret changes.
    rec.set_fields(nextRefreshAt=None)
    # Look again when the held token expires, so Ready flips to False on time.
    return expires if expires and expires > obs.now else None


async def _republish(
    rt: Runtime, rec: Recorder, obs: Observed, v: Verdict, held: str, inp: Inputs, body: dict
) -> datetime | None:
    status = obs.status
    values = target_values(obs.spec, held, obs.expires_at, status.get("hubId"))
    ok = await publish_target(rt, rec, obs.spec, body, values, inp.target)
    if ok:
        rec.event("Normal", "SecretRestored", v.message)
        rec.condition(cond.READY, True, "TokenPublished", f"access token valid until {to_rfc3339(obs.expires_at)}")
    return obs.now  # re-evaluate at once: the schedule picks up from here


async def _refresh(
    rt: Runtime, rec: Recorder, obs: Observed, v: Verdict, inp: Inputs, gfp: str | None, body: dict
) -> datetime | None:
    spec, status, now = obs.spec, obs.status, obs.now
    if v.reason == "RefreshRequested":
        rec.set_fields(lastRefreshRequest=obs.refresh_request)

    # One refresh per grant at a time: a sibling arriving while we call HubSpot waits, then reuses
    # our result from the grant cache instead of spending (or, with rotating refresh tokens, burning)
    # a second call.
    async with rt.grant_lock(gfp):
        result = _sibling_result(rt, obs, gfp, status)
        if result is None:
            wait = rt.limiter.reserve(inp.client_id or "", (body["metadata"]["namespace"], body["metadata"]["name"]))
            if wait > 0:
                rec.hold()  # paced: nothing to record yet; come back for the booked slot
                return now + timedelta(seconds=wait)
            client = rt.hubspot(spec.hubspot.base_url, spec.oauth.api_version)
            outcome = await client.refresh(inp.client_id, inp.client_secret, inp.refresh_token)
            if isinstance(outcome, Failure):
                return await _refresh_failed(rt, rec, obs, outcome)
            new_gfp = gfp
            returned_refresh = outcome.refresh_token.reveal() if outcome.refresh_token else None
            if returned_refresh and returned_refresh != inp.refresh_token:
                new_gfp = grant_fingerprint(rt, spec, inp.client_id, returned_refresh)
            # Whole seconds, as status stores them: the schedule recomputed from status must match this one.
            result = GrantResult(
                access_token=outcome.access_token.reveal(),
                issued_at=rt.clock.now().replace(microsecond=0),
                expires_at=outcome.expires_at.replace(microsecond=0),
                hub_id=outcome.hub_id,
                scopes=tuple(outcome.scopes or ()),
                user_id=outcome.user_id,
                grant_fingerprint=new_gfp or "",
                previous_grant_fingerprint=gfp if new_gfp != gfp else None,
            )
            # Refused tokens are not cached: siblings must see the same refusal from their own pins.
            refusal = _refusal(spec, result)
            if refusal is None:
                rt.grants.remember(gfp, result)
            if new_gfp != gfp:
                if not await _write_back_refresh_token(rt, rec, obs, inp, returned_refresh):
                    return retry_at(now, int(status.get("failedAttempts") or 0) + 1, obs.expires_at)
    refusal = _refusal(spec, result)
    if refusal is not None:
        reason, ctype, message = refusal
        rec.condition(cond.READY, False, reason, message + "; the token was not published")
        if ctype:
            rec.condition(ctype, False, reason, message)
        rec.event("Warning", "HubMismatch" if reason == "HubMismatch" else "ScopeDrift", message)
        rec.set_fields(
            nextRefreshAt=None, lastFailureReason=reason, lastFailureTime=to_rfc3339(now), grantFingerprint=gfp
        )
        return None

    values = target_values(spec, result.access_token, result.expires_at, result.hub_id)
    if not await publish_target(rt, rec, spec, body, values, inp.target):
        return retry_at(now, int(status.get("failedAttempts") or 0) + 1, obs.expires_at)

    nxt = refresh_at(result.issued_at, result.expires_at, spec.refresh, obs.uid)
    token_fp = rt.fingerprints.of(result.access_token)
    routine_grant_move = (
        result.previous_grant_fingerprint is not None
        and status.get("grantFingerprint") in (result.previous_grant_fingerprint, result.grant_fingerprint)
    )
    rotation = (
        v.reason == "GrantChanged" and not routine_grant_move
        or status.get("hubId") not in (None, result.hub_id)
        or (status.get("scopes") is not None and sorted(status.get("scopes") or []) != sorted(result.scopes))
        or cond.is_true(status.get("conditions"), cond.REAUTH_REQUIRED)
    )
    revision = status.get("credentialRevision") or f"1-{token_fp[:8]}"
    if rotation:
        n = int(revision.split("-", 1)[0]) + 1 if revision.split("-", 1)[0].isdigit() else 1
        revision = f"{n}-{token_fp[:8]}"
    restart_revision = f"r-{token_fp[:12]}" if spec.rollout.restart_on == "EveryRefresh" else revision
    rec.set_fields(
        expiresAt=to_rfc3339(result.expires_at),
        lastRefreshTime=to_rfc3339(result.issued_at),
        nextRefreshAt=to_rfc3339(nxt),
        lastRefreshReason=v.reason,
        failedAttempts=0,
        lastFailureReason=None,
        tokenFingerprint=token_fp,
        grantFingerprint=result.grant_fingerprint or gfp,
        hubId=result.hub_id,
        scopes=sorted(result.scopes),
        credentialRevision=revision,
        restartRevision=restart_revision,
    )
    valid = f"access token valid until {to_rfc3339(result.expires_at)}"
    rec.condition(cond.READY, True, "TokenPublished", valid)
    rec.condition(cond.REAUTH_REQUIRED, False, "RefreshSucceeded", "HubSpot accepted the refresh token")
    if spec.required_scopes:
        rec.condition(cond.SCOPES_SATISFIED, True, "ScopesPresent", "the token carries every required scope")
    rec.condition(cond.DEGRADED, False, "RefreshSucceeded", "last refresh succeeded")
    deprecation = (
        "; OAuth v1 is deprecated and sunsets on 2027-02-16: set spec.oauth.apiVersion to 2026-03"
        if spec.oauth.api_version == "v1"
        else ""
    )
    rec.event(
        "Normal",
        "Refreshed",
        f"{v.reason}: new access token published (fingerprint {token_fp[:8]}), valid for "
        f"{format_duration(result.expires_at - now)}; next refresh in {format_duration(nxt - now)}{deprecation}",
    )
    rec.count_refresh("success")
    return nxt


def _sibling_result(rt: Runtime, obs: Observed, gfp: str | None, status: dict) -> GrantResult | None:
    """A fresh result for this grant that a sibling HubSpotToken already obtained, if usable by us."""
    cached = rt.grants.latest(gfp)
    if cached is None:
        return None
    if obs.refresh_request and obs.refresh_request != status.get("lastRefreshRequest"):
        return None  # an explicit request means: call HubSpot
    mine = from_rfc3339(status.get("lastRefreshTime"))
    if mine is not None and cached.issued_at <= mine:
        return None
    if rt.fingerprints.of(cached.access_token) == status.get("tokenFingerprint"):
        return None
    if not usable(cached.expires_at, obs.now, obs.spec.refresh):
        return None
    if obs.now >= refresh_at(cached.issued_at, cached.expires_at, obs.spec.refresh, obs.uid):
        return None
    return cached


def _refusal(spec: TokenSpec, result: GrantResult) -> tuple[str, str | None, str] | None:
    if spec.hub_id is not None and result.hub_id != spec.hub_id:
        return (
            "HubMismatch",
            None,
            f"the token is for hub {result.hub_id}, but spec.hubId pins hub {spec.hub_id}",
        )
    missing = sorted(set(spec.required_scopes) - set(result.scopes))
    if missing:
        return ("ScopesMissing", cond.SCOPES_SATISFIED, "the token lacks required scopes: " + ", ".join(missing))
    return None


async def _write_back_refresh_token(rt: Runtime, rec: Recorder, obs: Observed, inp: Inputs, new_token: str) -> bool:
    ref = obs.spec.oauth.refresh_token_secret_ref
    src = inp.refresh_secret
    data = dict(src.data)
    data[ref.key] = new_token.encode()
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": src.type,
        "metadata": {
            "name": src.name,
            "resourceVersion": src.resource_version,
            "labels": src.labels,
            "annotations": src.annotations,
            "ownerReferences": src.owner_refs,
        },
        "data": data,
    }
    try:
        await rt.kube.replace_secret(src.namespace, src.name, body)
        return True
    except ApiException as e:
        msg = f"HubSpot returned a new refresh token but writing it to Secret {src.name} failed: HTTP {e.status}"
        rec.condition(cond.DEGRADED, True, "RefreshTokenWriteFailed", msg)
        rec.event("Warning", "RefreshTokenWriteFailed", msg)
        return False


async def _refresh_failed(rt: Runtime, rec: Recorder, obs: Observed, err: Failure) -> datetime | None:
    status, now = obs.status, obs.now
    expires = obs.expires_at
    still = (
        f"; the published token stays valid until {to_rfc3339(expires)}" if expires and expires > now else ""
    )
    rec.count_refresh(err.reason)
    if err.kind == ErrorKind.TERMINAL:
        rec.condition(cond.REAUTH_REQUIRED, True, err.reason, err.message)
        rec.condition(cond.READY, False, "ReauthRequired", f"HubSpot rejected the refresh token ({err.reason}){still}")
        rec.event("Warning", "ReauthRequired", f"{err.message}; re-authorise the app and update the refresh token Secret")
        rec.set_fields(
            lastFailureReason=err.reason,
            lastFailureTime=to_rfc3339(now),
            failedAttempts=0,
            nextRefreshAt=None,
            grantFingerprint=obs.grant_fingerprint,
        )
        return expires if expires and expires > now else None
    attempts = int(status.get("failedAttempts") or 0) + 1
    retry_after = timedelta(seconds=err.retry_after_seconds) if err.retry_after_seconds else None
    when = retry_at(now, attempts, expires, retry_after)
    rec.set_fields(
        failedAttempts=attempts,
        lastFailureTime=to_rfc3339(now),
        lastFailureReason=err.reason,
        nextRefreshAt=to_rfc3339(when),
    )
    rec.condition(cond.DEGRADED, True, err.reason, f"refresh attempt {attempts} failed: {err.message}")
    if not (expires and expires > now):
        rec.condition(cond.READY, False, "RefreshFailing", f"no valid token: {err.message}")
    rec.event("Warning", "RefreshFailed", f"attempt {attempts}: {err.message}; retry in {format_duration(when - now)}")
    return when
