"""The Refresh action of an OAuth HubSpotToken: one HubSpot call per grant, custody first, then publish.

Order of effects, chosen so that nothing is ever lost:
1. call HubSpot once (or reuse a sibling's fresh result for the same grant, but only a result whose
   rotated refresh token is already persisted);
2. a rotated refresh token is secured by `custody` (written back, or held in the custody Secret) inside the
   same shielded critical section as the call: a shutdown cannot cut between the two;
3. refuse the token if it is for another hub or lacks required scopes (nothing is published);
4. publish the access token to the target Secret;
5. record status (expiry, next refresh, fingerprints) and post an Event.
A failure at any step leaves the previously published token in place, and backs off.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from . import conditions as cond
from .custody import Landing, Pending, WriteBack
from .durations import format_duration, to_rfc3339
from .grants import GrantResult
from .hubspot import ErrorKind, Failure
from .model import TokenSpec
from .oauth_inputs import PublishedRecord, Snapshot, grant_fingerprint, target_values
from .policies import Verdict
from .recording import Recorder
from .revisions import oauth_is_rotation, oauth_revisions
from .runtime import Runtime
from .schedule import refresh_at, usable
from .secret_writer import publish_target

log = logging.getLogger(__name__)


async def refresh(rt: Runtime, rec: Recorder, snap: Snapshot, v: Verdict) -> datetime | None:
    obs, inp = snap.obs, snap.inputs
    gfp, now = obs.grant_fingerprint, obs.now
    if v.reason == "RefreshRequested":
        rec.set_fields(lastRefreshRequest=obs.refresh_request)
    # One refresh per grant at a time: a sibling arriving while we call HubSpot waits, then reuses our
    # result instead of spending (or, with rotating refresh tokens, burning) a second call.
    async with rt.grant_lock(gfp):
        result = sibling_result(rt, snap)
        wb: WriteBack | None = None
        if result is None and await grant_moved(rt, snap):
            rec.hold()  # the refresh token we read is spent: look again at what is current, at once
            return now
        if result is None:
            rt.apps[snap.key] = inp.client_id or ""  # lets the queue's gate pace this token next time
            wait = rt.limiter.take(inp.client_id or "", snap.key)
            if wait > 0:
                rec.hold()  # paced: nothing to record yet; come back at the slot and ask again
                return now + timedelta(seconds=wait)
            got = await rt.critical(exchange(rt, snap))
            if isinstance(got, Failure):
                return refresh_failed(rec, snap, got)
            result, wb = got
    if wb is not None and wb.landing is Landing.SUPERSEDED:
        rec.event("Warning", "RefreshTokenSuperseded",
                  f"Secret {inp.refresh_secret.name} was given another refresh token while HubSpot rotated ours; "
                  "the new one is used")
        return now
    refusal = refusal_of(obs.spec, result)
    if refusal is not None:
        return _refused(rec, snap, refusal)
    wake = None
    if wb is not None and not wb.durable:
        return rec.failed("WriteBack", "RefreshTokenWriteFailed", _write_back_message(inp, wb, held=False),
                          obs.expires_at)
    if wb is not None and wb.landing is Landing.HELD:
        wake = rec.failed("WriteBack", "RefreshTokenWriteFailed", _write_back_message(inp, wb, held=True),
                          obs.expires_at)
    values = target_values(obs.spec, result.access_token, result.expires_at, result.hub_id)
    token_fp = rt.fingerprints.of(result.access_token)
    rotation = oauth_is_rotation(obs.status, v.reason, result.hub_id, result.scopes, result.previous_grant_fingerprint,
                                 result.grant_fingerprint, reauthorised=bool(obs.status.reauth_required_for))
    revisions = oauth_revisions(obs.status, rotation, token_fp, obs.spec.rollout.restart_on)
    record = PublishedRecord(token_fp, result.issued_at, result.expires_at, *revisions).encode(
        rt, snap.body["metadata"].get("uid", ""))
    retry = await publish_target(rt, rec, obs.spec, snap.body, values, inp.target, obs.expires_at, record=record)
    if retry is not None:
        if v.reason == "RefreshRequested":
            # Not done: nothing new was published. The request stays open and is served after the backoff
            # (policies.refresh_requested waits for it), instead of a restore of the old token closing it.
            rec.set_fields(lastRefreshRequest=obs.status.last_refresh_request)
        return retry
    nxt = _record_success(rec, snap, v, result, token_fp, revisions, failure_pending=wake is not None)
    return min(nxt, wake) if wake else nxt


async def exchange(rt: Runtime, snap: Snapshot) -> Failure | tuple[GrantResult, WriteBack | None]:
    """The critical section: HubSpot's answer and the custody of a rotated refresh token, never split."""
    obs, inp, spec = snap.obs, snap.inputs, snap.obs.spec
    client = rt.hubspot(spec.hubspot.base_url, spec.oauth.api_version)
    outcome = await client.refresh(inp.client_id, inp.client_secret, inp.refresh_token)
    if isinstance(outcome, Failure):
        return outcome
    gfp = obs.grant_fingerprint
    new_gfp, wb = gfp, None
    returned = outcome.refresh_token.reveal() if outcome.refresh_token else None
    if returned and returned != inp.refresh_token:
        new_gfp = grant_fingerprint(rt, spec, inp.client_id, returned)
        ref = spec.oauth.refresh_token_secret_ref
        pending = Pending(inp.refresh_secret.namespace, ref.name, ref.key, returned, gfp, new_gfp,
                          rt.fingerprints.of(inp.refresh_token))
        wb = await rt.custody.secure(pending, inp.refresh_secret)
        if wb.written is not None:  # its watch event is our own echo: it wakes no token
            rt.own_writes[(wb.written.namespace, wb.written.name)] = wb.written.resource_version
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
    # Siblings may reuse only a result whose refresh token is safe, and never a refused one (they must
    # see the same refusal from their own pins).
    if (wb is None or wb.durable) and refusal_of(spec, result) is None:
        rt.grants.remember(gfp, result)
    return result, wb


async def grant_moved(rt: Runtime, snap: Snapshot) -> bool:
    """Whether the refresh token this reconcile read is spent: another refresh of the grant rotated it while
    we waited for the grant's lock (a newer one is in custody, or the Secret holds another one now), or,
    just after a failover, the former leader did and our watch had not shown it yet (the Secret is read
    from the API server once per leadership: SecretCache.confirmed). Calling HubSpot with a spent one would
    be refused (invalid_grant) and read as a grant needing re-authorisation."""
    inp, ref = snap.inputs, snap.obs.spec.oauth.refresh_token_secret_ref
    if rt.custody.pending(snap.obs.grant_fingerprint) is not None:
        return True
    if inp.refresh_secret is None:
        return False
    current = await rt.kube.read_secret_confirmed(inp.refresh_secret.namespace, inp.refresh_secret.name)
    return current is None or current.text(ref.key) != inp.refresh_token


def sibling_result(rt: Runtime, snap: Snapshot) -> GrantResult | None:
    """A fresh result for this grant that a sibling HubSpotToken already obtained, if usable by us."""
    obs = snap.obs
    cached = rt.grants.latest(obs.grant_fingerprint)
    if cached is None:
        return None
    if obs.refresh_request and obs.refresh_request != obs.status.last_refresh_request:
        return None  # an explicit request means: call HubSpot
    mine = obs.status.last_refresh_time
    if mine is not None and cached.issued_at <= mine:
        return None
    if rt.fingerprints.of(cached.access_token) == obs.status.token_fingerprint:
        return None
    if not usable(cached.expires_at, obs.now, obs.spec.refresh):
        return None
    if obs.now >= refresh_at(cached.issued_at, cached.expires_at, obs.spec.refresh, obs.uid):
        return None
    return cached


def refusal_of(spec: TokenSpec, result: GrantResult) -> tuple[str, str | None, str] | None:
    if spec.hub_id is not None and result.hub_id != spec.hub_id:
        return "HubMismatch", None, f"the token is for hub {result.hub_id}, but spec.hubId pins hub {spec.hub_id}"
    missing = sorted(set(spec.required_scopes) - set(result.scopes))
    if missing:
        return "ScopesMissing", cond.SCOPES_SATISFIED, "the token lacks required scopes: " + ", ".join(missing)
    return None


def _refused(rec: Recorder, snap: Snapshot, refusal: tuple[str, str | None, str]) -> None:
    reason, ctype, message = refusal
    if ctype:
        rec.condition(ctype, False, reason, message)
    rec.event("Warning", "HubMismatch" if reason == "HubMismatch" else "ScopeDrift", message)
    rec.set_fields(
        nextRefreshAt=None, lastFailureReason=reason, lastFailureTime=to_rfc3339(snap.obs.now),
        grantFingerprint=snap.obs.grant_fingerprint,
        refusal={"reason": reason, "message": message + "; the token was not published",
                 "generation": snap.obs.generation, "grantFingerprint": snap.obs.grant_fingerprint},
    )
    return None


def _write_back_message(inp, wb: WriteBack, held: bool) -> str:
    where = "kept in the operator's custody Secret" if held else "held in memory only; not used until it is stored"
    return (f"HubSpot returned a new refresh token but writing it to Secret {inp.refresh_secret.name} failed "
            f"(HTTP {wb.status}); it is {where} and the write is retried")


def _record_success(rec: Recorder, snap: Snapshot, v: Verdict, result: GrantResult, token_fp: str,
                    revisions: tuple[str, str], failure_pending: bool) -> datetime:
    obs, spec, now = snap.obs, snap.obs.spec, snap.obs.now
    nxt = refresh_at(result.issued_at, result.expires_at, spec.refresh, obs.uid)
    revision, restart = revisions
    rec.set_fields(
        expiresAt=to_rfc3339(result.expires_at), lastRefreshTime=to_rfc3339(result.issued_at),
        nextRefreshAt=to_rfc3339(nxt), lastRefreshReason=v.reason, tokenFingerprint=token_fp,
        grantFingerprint=result.grant_fingerprint or obs.grant_fingerprint, hubId=result.hub_id,
        scopes=sorted(result.scopes), credentialRevision=revision, restartRevision=restart,
        reauthRequiredFor=None, refusal=None,
    )
    if not failure_pending:
        rec.succeeded("RefreshSucceeded", "last refresh succeeded")
    rec.condition(cond.REAUTH_REQUIRED, False, "RefreshSucceeded", "HubSpot accepted the refresh token")
    if spec.required_scopes:
        rec.condition(cond.SCOPES_SATISFIED, True, "ScopesPresent", "the token carries every required scope")
    deprecation = (
        "; OAuth v1 is deprecated and sunsets on 2027-02-16: set spec.oauth.apiVersion to 2026-03"
        if spec.oauth.api_version == "v1" else ""
    )
    summary = (f"{v.reason}: new access token published (fingerprint {token_fp[:8]}), valid for "
               f"{format_duration(result.expires_at - now)}; next refresh in {format_duration(nxt - now)}{deprecation}")
    if routine_refresh(v.reason, obs.status.failed_attempts, result.previous_grant_fingerprint is not None):
        # Every 20 minutes per token, forever: an Event would be a third write per refresh and noise in
        # `kubectl describe`. Status (lastRefreshTime, nextRefreshAt) and metrics say it; the log line stays.
        log.info("%s/%s refreshed: %s", snap.body["metadata"]["namespace"], snap.body["metadata"]["name"], summary)
    else:
        rec.event("Normal", "Refreshed", summary)
    rec.count_refresh("success")
    return nxt


def routine_refresh(reason: str, failed_attempts: int, grant_rotated: bool) -> bool:
    """A scheduled refresh that went as planned: no Event. The first token, a recovery after failures, an
    explicit request, a repair and a rotated refresh token are news and get one."""
    return reason == "Expiring" and not failed_attempts and not grant_rotated


def refresh_failed(rec: Recorder, snap: Snapshot, err: Failure) -> datetime | None:
    obs = snap.obs
    rec.count_refresh(err.reason)
    if err.kind == ErrorKind.TERMINAL:
        rec.facts.reauth = True
        rec.condition(cond.REAUTH_REQUIRED, True, err.reason, err.message)
        rec.event("Warning", "ReauthRequired", f"{err.message}; re-authorise the app and update the refresh token Secret")
        rec.set_fields(lastFailureReason=err.reason, lastFailureTime=to_rfc3339(obs.now), failedAttempts=0,
                       lastFailureKind=None, retryAt=None, nextRefreshAt=None,
                       grantFingerprint=obs.grant_fingerprint, reauthRequiredFor=obs.grant_fingerprint)
        return obs.expires_at if obs.expires_at and obs.expires_at > obs.now else None
    retry_after = timedelta(seconds=err.retry_after_seconds) if err.retry_after_seconds else None
    when = rec.failed("Refresh", err.reason, f"refresh failed: {err.message}", obs.expires_at, retry_after,
                      event_reason="RefreshFailed")
    rec.set_fields(nextRefreshAt=to_rfc3339(when))
    return when
