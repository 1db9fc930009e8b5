"""Reconcile of a PrivateApp HubSpotToken (legacy private-app tokens and service keys).

HubSpot has no API to mint these tokens: a person rotates in HubSpot's UI ("Rotate and expire later" keeps
the old token 7 days) and puts the new token into the source Secret, by hand or with `kubectl hubspot
rotate`. Each pass: gather; decide about the candidate (private_app_policies.decide_candidate) and act
(verify, publish with the previous token kept for `overlap`, or reject); then decide and act on the
maintenance of the published token (restore, re-verify, roll back to the previous token when only the
published one died during the overlap, end the overlap, age); then, if enabled, read HubSpot's audit log for
a rotation done in the UI (audit_detection.py). Ready is decided later,
by readiness.py, from the facts recorded here.
"""

from __future__ import annotations

from datetime import datetime

from . import conditions as cond
from .audit_detection import check_audit_log
from .model import TokenSpec
from .private_app_actions import PASnapshot, accept_or_reject, gather, maintain, rebase
from .private_app_policies import decide_candidate
from .recording import Recorder
from .runtime import Runtime


async def reconcile_private_app(rt: Runtime, body: dict, spec: TokenSpec, rec: Recorder) -> datetime | None:
    if spec.suspend:
        return None
    if rec.st.fingerprint_key_id not in (None, rt.fingerprints.key_id):
        return await rebase(rt, rec, body, spec)  # a new fingerprint key: re-fingerprint, change nothing
    snap: PASnapshot = await gather(rt, body, spec, rec.st)
    verdict = decide_candidate(snap.obs)
    wake: list[datetime] = []
    if snap.source is not None:  # `kubectl hubspot rotate` waits for this version's outcome
        pa = dict(rec.value("privateApp") or {}, sourceVersion=snap.source.resource_version)
        if verdict.action == "Current":  # e.g. the published token written back after a rejection
            pa.update(lastOutcome="Published", lastOutcomeReason="Verified", lastOutcomeMessage=None,
                      rejectedFingerprint=None, rejectedGeneration=None)
            if rec.st.private_app.last_outcome_reason == cond.ROTATION_ROLLED_BACK:  # the dead token was replaced
                rec.condition(cond.ROTATION_ACCEPTED, True, "SourceMatches",
                              "the source Secret holds the published token again")
        rec.set_fields(privateApp=pa)
    if verdict.action == "Refused":
        rec.facts.refused = ("ConsentMissing", snap.obs.source_refused)
        rec.event_once("Warning", "ConsentMissing", snap.obs.source_refused)
    elif verdict.action == "Missing":
        rec.facts.inputs_missing = f"missing {snap.obs.source_missing}"
        rec.event_once("Warning", "InputsMissing", rec.facts.inputs_missing)
    elif verdict.action == "BackingOff":
        wake.append(verdict.until)
    elif verdict.action == "Verify":
        nxt = await accept_or_reject(rt, rec, snap)
        if nxt is not None:
            return nxt  # published or pending: the next pass maintains the new state
    wake += await maintain(rt, rec, snap)
    if snap.obs.published_fp:  # a rotation done in HubSpot's UI, seen in the audit log (optional)
        audit_wake = await check_audit_log(rt, rec, body, spec, snap.published_value)
        if audit_wake is not None:
            wake.append(audit_wake)
    return min(wake) if wake else None
