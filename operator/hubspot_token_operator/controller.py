"""One reconcile of one HubSpotToken: parse, run the flow for its type, roll out, decide Ready, record.

Called by the work queue; returns when to look at the object again. A reconcile that raises still records
why (Ready=False ReconcileError, Degraded) and backs off like any other failure.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from kubernetes.client import ApiException

from . import conditions as cond
from . import logs, metrics, revocation, tenancy
from .leadership import NotLeading
from .model import SpecError, TokenSpec, parse_spec
from .oauth_flow import reconcile_oauth
from .private_app_flow import reconcile_private_app
from .readiness import ReadinessInput, ready
from .recording import Recorder
from .rollout_flow import reconcile_rollout
from .runtime import Runtime, user_annotations
from .status_model import parse_status
from .workqueue import describe_error

log = logging.getLogger(__name__)

MAX_SLEEP = timedelta(hours=1)  # look again at least hourly, to catch anything a missed event hid
# Not surely leading for a moment (a renewal late, the operator shutting down): look again soon. If this
# replica steps down its queue stops, and whoever leads next schedules every token itself.
NOT_LEADING_RETRY = timedelta(seconds=2)


async def reconcile(rt: Runtime, key: tuple[str, str]) -> datetime | None:
    # Every line logged inside, however deep, names the token and this reconcile (logs.py).
    with logs.token_context(key[0], key[1], logs.new_reconcile_id()):
        try:
            return await _reconcile(rt, key)
        finally:
            rt.limiter.release(key)  # a rate-limit ticket this reconcile did not use is not kept for later
            if key not in rt.tokens:  # deleted while we worked: a series counted meanwhile must go too
                metrics.forget_token(*key)


async def _reconcile(rt: Runtime, key: tuple[str, str]) -> datetime | None:
    body = rt.tokens.get(key)
    if body is None:
        return None
    if body["metadata"].get("deletionTimestamp"):
        if revocation.FINALIZER not in (body["metadata"].get("finalizers") or []):
            return None
        try:  # revokeOnDelete: revoke (or not), say so, let the deletion finish
            return await revocation.finalize(rt, body)
        except NotLeading as e:
            log.warning("%s/%s: not finalized: %s", *key, e)
            return rt.clock.now() + NOT_LEADING_RETRY
    started = time.monotonic()
    rec = Recorder(body=body, now=rt.clock.now())
    spec: TokenSpec | None = None
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError as e:
        rec.facts.invalid_spec = str(e)
        rec.event_once("Warning", "InvalidSpec", str(e))
        nxt = None
    else:
        try:
            nxt = await _run_flows(rt, body, spec, rec)
            nxt = _earliest(nxt, await revocation.keep_finalizers(rt, rec, body, spec))
            refusal = rec.value("refusal")
            if refusal and refusal.get("generation") != rec.generation:
                rec.set_fields(refusal=None)  # refused an older spec: it no longer holds (policies.refused)
        except NotLeading as e:
            # The lease is no longer surely ours, or the operator is shutting down: no HubSpot call was made
            # and nothing more is written here; whoever leads next looks at this token from its status.
            log.warning("%s/%s: not reconciled: %s", *key, e)
            return rt.clock.now() + NOT_LEADING_RETRY
        except ApiException as e:
            nxt = _errored(rec, e, f"Kubernetes API HTTP {e.status}")
        except Exception as e:  # noqa: BLE001 - one bad object must not stop the queue, and must say why
            log.error("reconcile of %s/%s failed (%s)", *key, describe_error(e))
            nxt = _errored(rec, e, describe_error(e))
    _decide_ready(rt, rec, spec)
    if rec.st.fingerprint_key_id in (None, rt.fingerprints.key_id):
        rec.set_fields(fingerprintKeyId=rt.fingerprints.key_id)
    changed_meanwhile = await _flush(rt, rec)
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    if rec.fields.get("failedAttempts"):  # a failure was recorded: the next look is a retry with backoff
        metrics.WORKQUEUE_RETRIES.inc()
    now = rt.clock.now()
    if changed_meanwhile:
        log.debug("%s/%s: changed while reconciled; again now", *key)
        return now  # the object changed while we worked (spec, annotations): look at the new version now
    again = _earliest(nxt, _expiry_wake(rec, now), now + MAX_SLEEP)
    log.debug("%s/%s: next look in %.1fs", *key, (again - now).total_seconds())
    return again


async def _run_flows(rt: Runtime, body: dict, spec: TokenSpec, rec: Recorder) -> datetime | None:
    refusal = tenancy.endpoint_refusal(spec.hubspot.base_url, rt.settings.allowed_endpoints())
    if refusal is not None:  # HubSpot endpoints are the operator's choice: nothing is read or sent
        rec.facts.refused = (refusal.reason, refusal.message)
        rec.event_once("Warning", refusal.reason, refusal.message)
        return None
    if spec.type == "OAuth":
        nxt = await reconcile_oauth(rt, body, spec, rec)
    else:
        nxt = await reconcile_private_app(rt, body, spec, rec)
    if spec.rollout.enabled and not spec.suspend and not rec.held:
        nxt = _earliest(nxt, await reconcile_rollout(rt, body, spec, rec))
    return nxt


def _errored(rec: Recorder, e: BaseException, what: str) -> datetime:
    rec.held = False  # whatever was learned before the error is kept
    rec.facts.error = what
    return rec.failed("Error", "ReconcileError", f"the reconcile failed ({what})", event_reason="ReconcileError")


def _decide_ready(rt: Runtime, rec: Recorder, spec: TokenSpec | None) -> None:
    if rec.held:
        return
    pa = rec.value("privateApp") or {}
    refusal = rec.value("refusal")
    gen = rec.generation
    status_ok, reason, message = ready(ReadinessInput(
        token_type=spec.type if spec else "",
        now=rec.now,
        suspended=bool(spec and spec.suspend),
        facts=rec.facts,
        refusal=(refusal["reason"], refusal.get("message", "")) if refusal and refusal.get("generation") == gen else None,
        published=bool(rec.value("tokenFingerprint")),
        expires_at=parse_status({"expiresAt": rec.value("expiresAt")}).expires_at,
        verified=pa.get("verified"),
        verify_problem=(pa.get("verifyReason") or "Unverified", pa.get("verifyMessage") or "") if pa.get("verified") is False else None,
    ))
    rec.condition(cond.READY, status_ok, reason, message)


def _expiry_wake(rec: Recorder, now: datetime) -> datetime | None:
    """Look again the moment the published token expires, so Ready turns False on time."""
    expires = parse_status({"expiresAt": rec.value("expiresAt")}).expires_at
    return expires if expires and expires > now else None


async def _flush(rt: Runtime, rec: Recorder) -> bool:
    """Writes what the reconcile learned. Returns True when the status write showed that the object itself
    changed since it was read: its watch event may then look like the echo of our own write (we remember
    the write's response), so the change would be lost unless we reconcile again."""
    updated = await rec.flush(rt.kube)
    if not updated:
        return False
    rt.remember(updated, own_write=True)
    # rec.body is the slimmed copy the watch stored (runtime.slim): kubectl's last-applied annotation is left
    # out on both sides, or it alone would look like a change and send every written token round again.
    return _user_side(updated) != _user_side(rec.body)


def _user_side(body: dict) -> tuple:
    md = body.get("metadata") or {}
    return md.get("generation"), user_annotations(md), md.get("labels") or {}, md.get("deletionTimestamp")


def _earliest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None
