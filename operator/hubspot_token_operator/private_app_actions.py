"""Gather and act for a PrivateApp HubSpotToken; the decisions are in private_app_policies.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from . import conditions as cond
from . import tenancy
from .audit_detection import rotated_in_hubspot
from .durations import format_duration, to_rfc3339
from .fingerprint import Fingerprinter
from .kube import SecretView
from .model import TokenSpec
from .private_app_policies import PAObserved, decide_reverify, maintenance
from .publish import ours
from .recording import Recorder
from .revisions import bump
from .runtime import Runtime
from .secret_writer import publish_target
from .status_model import TokenStatus
from .verification import next_verify, verify_token

ROTATION_ACCEPTED = cond.ROTATION_ACCEPTED


@dataclass(frozen=True)
class PASnapshot:
    body: dict
    obs: PAObserved
    source: SecretView | None
    candidate: str | None
    target: SecretView | None
    published_value: str | None
    previous_value: str | None  # while the overlap lasts
    expected: dict[str, bytes]  # what the target should hold now

    def __repr__(self) -> str:
        return f"PASnapshot({self.body['metadata'].get('name')})"


def _find(fps: Fingerprinter, want: str | None, *values: str | None) -> str | None:
    if not want:
        return None
    return next((v for v in values if v and fps.of(v) == want), None)


def values_for(spec: TokenSpec, token: str, previous: str | None, hub_id: int | None) -> dict[str, bytes]:
    keys = spec.target.keys
    values = {keys.token: token.encode()}
    if previous is not None:
        values[keys.previous_token] = previous.encode()
    if hub_id is not None:
        values[keys.hub_id] = str(hub_id).encode()
    return values


async def gather(rt: Runtime, body: dict, spec: TokenSpec, st: TokenStatus) -> PASnapshot:
    ns, now, keys = body["metadata"]["namespace"], rt.clock.now(), spec.target.keys
    ref = spec.private_app.token_secret_ref
    source = await rt.kube.read_secret(ns, ref.name)
    refused = None
    if source is not None and rt.settings.tenancy == "consent":
        r = tenancy.input_refusal("Secret", source.name, source.labels, source.annotations, body["metadata"]["name"])
        refused = r.message if r else None
    candidate = source.text(ref.key) if source and not refused else None
    target = await rt.kube.read_secret(ns, spec.target.name)
    in_target = (target.text(keys.token), target.text(keys.previous_token)) if target else (None, None)
    fps, pa = rt.fingerprints, st.private_app
    published = _find(fps, st.token_fingerprint, candidate, *in_target, rt.held.get(st.token_fingerprint))
    previous = None
    if pa.previous_fingerprint and pa.previous_until and now < pa.previous_until:
        previous = _find(fps, pa.previous_fingerprint, in_target[1], in_target[0], rt.held.get(pa.previous_fingerprint))
    expected = values_for(spec, published, previous, st.hub_id) if published else {}
    matches = bool(target is not None and published) and (
        fps.of_data(ours(set(expected) | {keys.previous_token}, target)) == fps.of_data(expected)
    )
    missing = None
    if candidate is None and not refused:
        missing = f"Secret {ref.name}" if source is None else f"key {ref.key} in Secret {ref.name}"
    obs = PAObserved(
        spec=spec, status=st, now=now, source_missing=missing, source_refused=refused,
        candidate_fp=fps.of(candidate) if candidate else None,
        published_known=published is not None, target_exists=target is not None, target_matches=matches,
        generation=body["metadata"].get("generation"),
    )
    return PASnapshot(body, obs, source, candidate, target, published, previous, expected)


async def accept_or_reject(rt: Runtime, rec: Recorder, snap: PASnapshot) -> datetime | None:
    """Verifies the candidate; publishes it (keeping the previous token for the overlap) or rejects it.
    Returns when to look again after a publish or a transient failure; None to go on to maintenance."""
    o, spec, now = snap.obs, snap.obs.spec, snap.obs.now
    v = await verify_token(rt, spec, snap.candidate)
    pa = dict(rec.value("privateApp") or {}, sourceVersion=snap.source.resource_version)
    if v.verdict == "transient":
        pa["lastOutcome"] = "Pending"
        rec.set_fields(privateApp=pa)
        retry_after = None if v.retry_after is None else timedelta(seconds=v.retry_after)
        return rec.failed("Verify", "VerifyFailed", v.message, retry_after=retry_after, event_reason="VerifyFailed")
    if rec.st.last_failure_kind == "Verify":
        rec.succeeded("Verified", "HubSpot answered the verification")
    if v.verdict == "rejected":
        kept = "the current token stays published" if o.published_fp else "no token is published"
        pa.update(rejectedFingerprint=o.candidate_fp, rejectedGeneration=o.generation, lastOutcome="Rejected",
                  lastOutcomeReason=v.reason,
                  lastOutcomeMessage=f"{v.message}; {kept}")
        rec.condition(ROTATION_ACCEPTED, False, v.reason, f"{v.message}; {kept}")
        rec.event("Warning", "RotationRejected",
                  f"new token (fingerprint {o.candidate_fp[:8]}) rejected: {v.message}; {kept}")
        rec.set_fields(privateApp=pa)
        return None
    previous = snap.published_value if o.published_fp else None
    values = values_for(spec, snap.candidate, previous, v.hub_id)
    retry = await publish_target(rt, rec, spec, snap.body, values, snap.target)
    if retry is not None:
        return retry
    keys = spec.target.keys
    pa.update(publishedAt=to_rfc3339(now), lastVerifiedAt=to_rfc3339(now),
              nextVerifyAt=to_rfc3339(next_verify(now, spec.private_app.verify_interval, snap.body["metadata"]["uid"])),
              rejectedFingerprint=None, rejectedGeneration=None, lastOutcome="Published", lastOutcomeReason="Verified", lastOutcomeMessage=None,
              verified=True, verifyReason=None, verifyMessage=None)
    if previous is not None:
        until = now + spec.private_app.overlap
        pa.update(previousFingerprint=o.published_fp, previousUntil=to_rfc3339(until), rotatedAt=to_rfc3339(now),
                  overlapWarned=None)
        rec.event("Normal", "Rotated",
                  f"new token (fingerprint {o.candidate_fp[:8]}) verified and published; the previous token stays "
                  f"under key {keys.previous_token} until {to_rfc3339(until)}")
        rec.condition(cond.PREVIOUS_TOKEN_RETIRABLE, False, "ConsumersRestarting",
                      "workloads may still use the previous token; do not expire it in HubSpot yet")
    else:
        pa.update(previousFingerprint=None, previousUntil=None, rotatedAt=None)
        rec.event("Normal", "Published", f"token (fingerprint {o.candidate_fp[:8]}) verified and published")
    revision = bump(rec.st.credential_revision, o.candidate_fp)
    rec.set_fields(tokenFingerprint=o.candidate_fp, hubId=v.hub_id, appId=v.app_id, scopes=v.scopes,
                   credentialRevision=revision, restartRevision=revision, lastRefreshTime=to_rfc3339(now),
                   lastRefreshReason="Rotated" if previous is not None else "InitialIssue", privateApp=pa)
    rec.condition(ROTATION_ACCEPTED, True, "Verified", f"token {o.candidate_fp[:8]} verified and published")
    rec.condition(cond.VERIFIED, True, "Verified", "HubSpot accepted the token")
    if spec.required_scopes:
        rec.condition(cond.SCOPES_SATISFIED, True, "ScopesPresent", "the token carries every required scope")
    rt.remember_published(previous)
    return now  # the next pass maintains the new state (restore, verification, overlap)


async def maintain(rt: Runtime, rec: Recorder, snap: PASnapshot) -> list[datetime]:
    o, spec = snap.obs, snap.obs.spec
    if not o.published_fp:
        now_pa = rec.value("privateApp") or {}
        if now_pa.get("lastOutcome") == "Rejected":
            rec.facts.write_problem = (now_pa.get("lastOutcomeReason") or "RotationRejected",
                                       now_pa.get("lastOutcomeMessage") or "the token was rejected")
        return []
    m = maintenance(o, cond.is_true(rec.conditions, cond.PREVIOUS_TOKEN_RETIRABLE))
    pa = dict(rec.value("privateApp") or {})
    keys = spec.target.keys
    wake = list(m.wake)
    rec.facts.target_present = o.target_matches
    if m.restore:
        remove = () if keys.previous_token in snap.expected else (keys.previous_token,)
        retry = await publish_target(rt, rec, spec, snap.body, snap.expected, snap.target, remove=remove)
        if retry is not None:
            wake.append(retry)
        elif not m.end_overlap:
            what = "missing" if snap.target is None else "edited"
            rec.event("Normal", "SecretRestored", f"target Secret {spec.target.name} was {what}; restored")
            if rec.st.last_failure_kind == "Write":
                rec.succeeded("SecretRestored", "the target Secret was written")
    elif m.cannot_restore:
        rec.facts.write_problem = (
            "TargetSecretMissing",
            f"target Secret {spec.target.name} does not hold the published token and the operator has no copy; "
            f"put the published token back into Secret {spec.private_app.token_secret_ref.name} or rotate",
        )
    if m.end_overlap and rec.facts.target_present:
        rec.event("Normal", "PreviousTokenDropped", f"overlap ended; key {keys.previous_token} removed")
        pa.update(previousFingerprint=None, previousUntil=None, overlapWarned=None)
        rec.condition(cond.PREVIOUS_TOKEN_RETIRABLE, True, "OverlapEnded", "the previous token is no longer published")
    if m.warn_overlap:
        rec.event("Warning", "OverlapEnding",
                  f"the previous token leaves the Secret at {pa.get('previousUntil')} but workloads still run pods "
                  "from before the rotation")
        pa["overlapWarned"] = True
    if m.verify and snap.published_value:
        wake.append(await _reverify(rt, rec, snap, pa))
    _age(rec, o, m)
    rec.set_fields(privateApp=pa)
    return wake


async def _reverify(rt: Runtime, rec: Recorder, snap: PASnapshot, pa: dict) -> datetime:
    """Re-verifies the published token and, during the overlap, the previous one; rolls back to the
    previous token when only the published one died (private_app_policies.decide_reverify)."""
    o, spec, now = snap.obs, snap.obs.spec, snap.obs.now
    v = await verify_token(rt, spec, snap.published_value)
    nxt = next_verify(now, spec.private_app.verify_interval, snap.body["metadata"]["uid"])
    if v.verdict == "transient":  # asked again after the backoff (HubSpot's Retry-After a floor), not every pass
        return _verify_again(rec, pa, v)
    pv = await verify_token(rt, spec, snap.previous_value) if snap.previous_value else None
    d = decide_reverify(v.verdict, pv.verdict if pv else None, pv.reason if pv else None)
    if d.action == "RollBack":
        retry = await _roll_back(rt, rec, snap, pa, v, pv, nxt)
        if retry is None:
            return nxt
        # the target could not be written: the dead token is still what consumers read; say so below
    pa.update(lastVerifiedAt=to_rfc3339(now), nextVerifyAt=to_rfc3339(nxt))
    if d.action == "Valid":
        pa.update(verified=True, verifyReason=None, verifyMessage=None)
        rec.condition(cond.VERIFIED, True, "Verified", "HubSpot accepted the token")
        if rec.st.last_failure_kind == "Verify":
            rec.succeeded("Verified", "last verification succeeded")
        if d.previous_dead:
            wake = await _drop_dead_previous(rt, rec, snap, pa)
            return min(nxt, wake) if wake else nxt
        return nxt
    reason = "TokenDeactivated" if v.reason == "InvalidToken" else v.reason
    msg = (f"the published token no longer passes verification: {v.message}; rotate it in HubSpot and update "
           f"Secret {spec.private_app.token_secret_ref.name}")
    if pv is not None and pv.verdict == "rejected":
        msg += "; the previous token does not work either"
    if o.status.private_app.verified is not False:
        rec.event("Warning", "TokenInvalid", msg)
    pa.update(verified=False, verifyReason=reason, verifyMessage=msg)
    rec.condition(cond.VERIFIED, False, reason, msg)
    if d.action == "RollBack":  # verified, but the write failed: the write's own backoff says when
        pa["nextVerifyAt"] = to_rfc3339(now)
        return retry
    if d.retry_previous:  # the previous token may still save the day: ask HubSpot again soon
        return _verify_again(rec, pa, pv)
    return nxt


def _verify_again(rec: Recorder, pa: dict, v) -> datetime:
    """A verification HubSpot did not answer: counted as a failure, and the next one waits for its backoff.
    Other wakes meanwhile (the rollout poll, Secret events) do not ask HubSpot again."""
    retry_after = None if v.retry_after is None else timedelta(seconds=v.retry_after)
    again = rec.failed("Verify", "VerifyFailed", v.message, retry_after=retry_after, event_reason="VerifyFailed")
    pa["nextVerifyAt"] = to_rfc3339(again)
    return again


async def _roll_back(rt: Runtime, rec: Recorder, snap: PASnapshot, pa: dict, dead, alive, nxt: datetime):
    """The published token died during the overlap and the previous one still works: publish the
    previous one again (as the token; the previous-token key is removed: the dead token is of no use to
    anyone), restart consumers (a new credential revision), and remember the dead fingerprint so the source
    Secret's copy of it is never published again. None when done; else when to try the write again."""
    o, spec, now = snap.obs, snap.obs.spec, snap.obs.now
    keys, src = spec.target.keys, spec.private_app.token_secret_ref.name
    values = values_for(spec, snap.previous_value, None, alive.hub_id)
    retry = await publish_target(rt, rec, spec, snap.body, values, snap.target, remove=(keys.previous_token,))
    if retry is not None:
        return retry
    dead_fp, back_fp = o.published_fp, o.status.private_app.previous_fingerprint
    in_source = o.candidate_fp == dead_fp
    where = (f"Secret {src} still holds that dead token: put a working token there"
             if in_source else f"put a working token into Secret {src}")
    msg = (f"token {dead_fp[:8]} stopped working during the overlap ({dead.message}; a rotation cancelled in "
           f"HubSpot, a wrong token, or a deactivated one); the previous token {back_fp[:8]} still works and is "
           f"published again under key {keys.token}; {where}")
    pa.update(previousFingerprint=None, previousUntil=None, overlapWarned=None,
              rejectedFingerprint=dead_fp, rejectedGeneration=o.generation, lastOutcome="Rejected",
              lastOutcomeReason=cond.ROTATION_ROLLED_BACK,
              lastOutcomeMessage=msg, lastVerifiedAt=to_rfc3339(now), nextVerifyAt=to_rfc3339(nxt),
              verified=True, verifyReason=None, verifyMessage=None)
    revision = bump(rec.st.credential_revision, back_fp)
    rec.set_fields(tokenFingerprint=back_fp, hubId=alive.hub_id, appId=alive.app_id, scopes=alive.scopes,
                   credentialRevision=revision, restartRevision=revision, lastRefreshTime=to_rfc3339(now),
                   lastRefreshReason=cond.ROTATION_ROLLED_BACK)
    rec.condition(ROTATION_ACCEPTED, False, cond.ROTATION_ROLLED_BACK, msg)
    rec.condition(cond.VERIFIED, True, "Verified", "HubSpot accepted the token (the previous one, published again)")
    rec.condition(cond.PREVIOUS_TOKEN_RETIRABLE, False, cond.ROTATION_ROLLED_BACK,
                  f"token {back_fp[:8]} is the published token again: keep it active in HubSpot")
    rec.event("Warning", cond.ROTATION_ROLLED_BACK, msg + "; consumers are restarted onto it")
    if rec.st.last_failure_kind == "Verify":
        rec.succeeded("Verified", "last verification succeeded")
    rt.remember_published(snap.previous_value)
    return None


async def _drop_dead_previous(rt: Runtime, rec: Recorder, snap: PASnapshot, pa: dict) -> datetime | None:
    """HubSpot no longer accepts the previous token before the overlap ends ("Expire now", or HubSpot's
    7 days, counted from the click, ran out first): say so and stop publishing it."""
    o, spec = snap.obs, snap.obs.spec
    keys, st = spec.target.keys, o.status.private_app
    until = to_rfc3339(st.previous_until) if st.previous_until else "-"
    values = values_for(spec, snap.published_value, None, o.status.hub_id)
    retry = await publish_target(rt, rec, spec, snap.body, values, snap.target, remove=(keys.previous_token,))
    if retry is not None:
        return retry
    retirable = cond.is_true(rec.conditions, cond.PREVIOUS_TOKEN_RETIRABLE)
    msg = (f"HubSpot no longer accepts the previous token {(st.previous_fingerprint or '')[:8]} although the "
           f"overlap ran until {until} (expired in HubSpot: \"Expire now\", or its 7 days ran out first); key "
           f"{keys.previous_token} removed")
    if not retirable:
        msg += "; workloads still running pods from before the rotation are failing: restart them"
    rec.event("Normal" if retirable else "Warning", cond.PREVIOUS_TOKEN_EXPIRED, msg)
    pa.update(previousFingerprint=None, previousUntil=None, overlapWarned=None)
    rec.condition(cond.PREVIOUS_TOKEN_RETIRABLE, True, cond.PREVIOUS_TOKEN_EXPIRED, msg)
    return None


def _age(rec: Recorder, o: PAObserved, m) -> None:
    published_at, max_age = o.status.private_app.published_at, o.spec.private_app.max_age
    if published_at is None:
        return
    age = o.now - published_at
    in_ui = rotated_in_hubspot((rec.value("privateApp") or {}).get("auditLog"), published_at)
    if in_ui is not None:  # a person rotated in HubSpot; the new token has not reached the source Secret
        src = o.spec.private_app.token_secret_ref.name
        rec.condition(cond.ROTATION_DUE, True, "RotatedInHubSpot",
                      f"rotated in HubSpot at {to_rfc3339(in_ui[0])} by {in_ui[1]} (audit log); put the new token "
                      f"into Secret {src}")
    elif m.rotation_due:
        if not cond.is_true(rec.conditions, cond.ROTATION_DUE):
            rec.event("Warning", "RotationDue",
                      f"the token is {format_duration(age)} old (maxAge {format_duration(max_age)}); rotate it in HubSpot")
        rec.condition(cond.ROTATION_DUE, True, "MaxAgeExceeded",
                      f"token published {format_duration(age)} ago; maxAge is {format_duration(max_age)}")
    else:
        rec.condition(cond.ROTATION_DUE, False, "WithinMaxAge", f"rotation due in {format_duration(max_age - age)}")


async def rebase(rt: Runtime, rec: Recorder, body: dict, spec: TokenSpec) -> datetime:
    """The fingerprint key was lost or replaced: fingerprint what the target holds now, as published."""
    target = await rt.kube.read_secret(body["metadata"]["namespace"], spec.target.name)
    keys, fps = spec.target.keys, rt.fingerprints
    token = target.text(keys.token) if target else None
    previous = target.text(keys.previous_token) if target else None
    pa = dict(rec.value("privateApp") or {}, rejectedFingerprint=None, rejectedGeneration=None)
    pa["previousFingerprint"] = fps.of(previous) if previous and pa.get("previousFingerprint") else None
    rec.set_fields(
        fingerprintKeyId=fps.key_id,
        tokenFingerprint=fps.of(token) if token else None,
        secretMAC=fps.of_data(ours(set(values_for(spec, token, previous, rec.st.hub_id)) | {keys.previous_token}, target))
        if token else None,
        privateApp=pa,
    )
    rec.event("Normal", "FingerprintsRecomputed", "status fingerprints were recomputed with the current key")
    return rec.now
