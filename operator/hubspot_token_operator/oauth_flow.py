"""Reconcile of an OAuth HubSpotToken: gather (oauth_inputs), decide (policies), act, record.

Ready is not written here: the flow reports facts on the recorder and `readiness.py` decides, last.
The Refresh action lives in oauth_refresh.py; the others are here, one small function each.
"""

from __future__ import annotations

import logging
from datetime import datetime

from .custody import Landing
from .durations import to_rfc3339
from .model import TokenSpec
from .oauth_inputs import REFRESH_REQUEST_ANNOTATION, Snapshot, gather, our_keys, target_values
from .oauth_refresh import refresh
from .policies import Verdict, decide_oauth
from .publish import ours
from .recording import Recorder
from .runtime import Runtime
from .secret_writer import publish_target

log = logging.getLogger(__name__)

__all__ = ["reconcile_oauth", "REFRESH_REQUEST_ANNOTATION"]


async def reconcile_oauth(rt: Runtime, body: dict, spec: TokenSpec, rec: Recorder) -> datetime | None:
    snap = await gather(rt, body, spec, rec.st)
    obs = snap.obs
    verdict = decide_oauth(obs)
    log.debug("%s/%s: %s (%s)", *snap.key, verdict.action, verdict.reason)
    if obs.grant_moved_by_us:  # our own write-back landed before a crash: the grant moved, nothing changed
        rec.set_fields(grantFingerprint=obs.grant_fingerprint)
    rec.facts.target_present = obs.target_exists and (not obs.status.secret_mac or obs.target_mac == obs.status.secret_mac)
    return await ACTIONS[verdict.action](rt, rec, snap, verdict)


async def _blocked(rt: Runtime, rec: Recorder, snap: Snapshot, v: Verdict) -> datetime | None:
    if v.reason == "ConsentMissing":
        rec.facts.refused = (v.reason, v.message)
        rec.event_once("Warning", v.reason, v.message)
    elif v.reason == "InputsMissing":
        rec.facts.inputs_missing = v.message
        rec.event_once("Warning", "InputsMissing", v.message)
    elif v.reason == "ReauthRequired":
        rec.facts.reauth = True
    # Refusals (HubMismatch, ScopesMissing, TargetSecretNotOwned, ...) stay in status.refusal: nothing to
    # redo until the spec, the grant or the target Secret changes.
    rec.set_fields(nextRefreshAt=None)
    return None  # the controller looks again when the published token expires (Ready turns False then)


async def _wait(rt: Runtime, rec: Recorder, snap: Snapshot, v: Verdict) -> datetime | None:
    if v.reason == "Scheduled":
        rec.set_fields(nextRefreshAt=to_rfc3339(v.until))
    return v.until


async def _republish(rt: Runtime, rec: Recorder, snap: Snapshot, v: Verdict) -> datetime | None:
    obs = snap.obs
    values = target_values(obs.spec, snap.held, obs.expires_at, obs.status.hub_id)
    retry = await publish_target(rt, rec, obs.spec, snap.body, values, snap.inputs.target, obs.expires_at)
    if retry is not None:
        return retry
    rec.event("Normal", "SecretRestored", v.message)
    if obs.status.last_failure_kind == "Write":
        rec.succeeded("SecretRestored", "the target Secret was written")
    return obs.now  # re-evaluate at once: the schedule picks up from here


async def _write_back(rt: Runtime, rec: Recorder, snap: Snapshot, v: Verdict) -> datetime | None:
    obs, st = snap.obs, snap.obs.status
    if st.last_failure_kind == "WriteBack" and st.retry_at and obs.now < st.retry_at:
        return st.retry_at  # backing off
    pending = rt.custody.pending(obs.grant_fingerprint)
    wb = await rt.critical(rt.custody.retry(pending))
    if wb.landing is Landing.LANDED:
        rec.event("Normal", "RefreshTokenWrittenBack", f"the refresh token HubSpot returned is now in Secret {pending.secret}")
        rec.succeeded("RefreshTokenWrittenBack", "the rotated refresh token reached its Secret")
        rec.set_fields(grantFingerprint=pending.new_grant)
        return obs.now
    if wb.landing is Landing.SUPERSEDED:
        rt.custody.forget(pending.old_grant)
        rec.event("Warning", "RefreshTokenSuperseded",
                  f"Secret {pending.secret} was given another refresh token; the rotated one is dropped")
        return obs.now
    where = "kept in the operator's custody Secret" if wb.landing is Landing.HELD else "held in memory only"
    return rec.failed("WriteBack", "RefreshTokenWriteFailed",
                      f"writing the rotated refresh token to Secret {pending.secret} failed (HTTP {wb.status}); "
                      f"it is {where}", obs.expires_at)


async def _rebase(rt: Runtime, rec: Recorder, snap: Snapshot, v: Verdict) -> datetime | None:
    """New fingerprint key: fingerprint what is published now, as it is, and carry on (no refresh, no restart)."""
    obs, target, keys = snap.obs, snap.inputs.target, our_keys(snap.obs.spec)
    token = target.text(keys[0]) if target is not None else None
    rec.set_fields(
        fingerprintKeyId=rt.fingerprints.key_id,
        grantFingerprint=obs.grant_fingerprint,
        tokenFingerprint=rt.fingerprints.of(token) if token else None,
        secretMAC=rt.fingerprints.of_data(ours(keys, target)) if target is not None else None,
        reauthRequiredFor=None,
        refusal=None,
    )
    rec.event("Normal", "FingerprintsRecomputed", v.message)
    return obs.now


async def _recover(rt: Runtime, rec: Recorder, snap: Snapshot, v: Verdict) -> datetime | None:
    r, target = snap.record, snap.inputs.target
    rec.set_fields(
        tokenFingerprint=r.token_fp, lastRefreshTime=to_rfc3339(r.issued_at), expiresAt=to_rfc3339(r.expires_at),
        credentialRevision=r.credential_revision, restartRevision=r.restart_revision,
        grantFingerprint=snap.obs.grant_fingerprint,
        secretMAC=rt.fingerprints.of_data(ours(our_keys(snap.obs.spec), target)), secretUID=target.uid or None,
    )
    rt.remember_published(target.text(snap.obs.spec.target.keys.token))
    log.info("%s/%s: %s", *snap.key, v.message)
    return snap.obs.now


ACTIONS = {
    "Blocked": _blocked,
    "Wait": _wait,
    "Republish": _republish,
    "WriteBack": _write_back,
    "Rebase": _rebase,
    "Recover": _recover,
    "Refresh": refresh,
}
