"""Restarts the workloads a HubSpotToken targets when its restart revision changes (see rollout.py),
records per-target progress, and says when the previous private-app token is no longer in use."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from kubernetes.client import ApiException

from . import conditions as cond
from . import metrics, tenancy
from .durations import format_duration, from_rfc3339, to_rfc3339
from .model import TokenSpec
from .recording import Recorder
from .rollout import (
    KINDS,
    TargetRef,
    current_value,
    due_at,
    paused,
    progress,
    restart_patch,
    restart_value,
    select_targets,
    targets_workload,
)
from .runtime import Runtime

log = logging.getLogger(__name__)


async def reconcile_rollout(rt: Runtime, body: dict, spec: TokenSpec, rec: Recorder) -> datetime | None:
    md, status = body["metadata"], body.get("status") or {}
    ns, name = md["namespace"], md["name"]
    revision = rec.fields.get("restartRevision") or status.get("restartRevision")
    if not revision:
        return None
    now = rt.clock.now()
    ro_status = dict(status.get("rollout") or {})
    records = {f"{t['kind']}/{t['name']}": dict(t) for t in ro_status.get("targets") or []}

    workloads: dict[str, list[dict]] = {}
    if spec.rollout.selector is not None:
        for kind in KINDS:
            for w in await rt.kube.list_workloads(ns, kind):
                w["kind"] = kind
                workloads.setdefault(kind, []).append(w)
    refs = select_targets(spec.rollout, [w for ws in workloads.values() for w in ws])

    pending_since = from_rfc3339(ro_status.get("pendingSince"))
    wake: list[datetime] = []
    new_records: list[dict] = []
    all_complete = bool(refs)
    any_pending = False

    for ref in refs:
        key = str(ref)
        record = records.get(key) or {"kind": ref.kind, "name": ref.name}
        # First sight of this target: whatever it runs started with what the Secret holds now. Recorded even
        # while it cannot be restarted (no consent yet, not there), so a credential change meanwhile is still
        # owed to it when it can be: a target given consent after a rotation is restarted then.
        record.setdefault("revision", revision)
        try:
            w = await rt.kube.get_workload(ns, ref.kind, ref.name)
        except ApiException as e:
            w, record["message"] = None, f"reading {key} failed: HTTP {e.status}"
        if w is None:
            if record.get("state") != "Missing":
                rec.event("Warning", "RestartFailed", f"restart target {key} does not exist")
            record.update(state="Missing", message=f"{key} not found in namespace {ns}")
            new_records.append(record)
            all_complete = False
            continue
        w["kind"] = ref.kind
        wmd = w.get("metadata", {})
        refusal = rt.settings.tenancy == "consent" and tenancy.workload_refusal(
            ref.kind, ref.name, wmd.get("labels"), wmd.get("annotations"), name)
        if refusal:  # a token may restart only workloads whose owner consented
            if record.get("state") != "NotAllowed":
                rec.event("Warning", "RestartRefused", refusal.message)
            record.update(state="NotAllowed", message=refusal.message)
            new_records.append(record)
            all_complete = False
            continue
        if record.get("revision") != revision:
            # Pending until this target is restarted (or found restarted) for `revision`; each branch that
            # leaves it waiting says so. Once recorded, it is judged by its progress like any other target.
            if pending_since is None:
                pending_since = now
            due = due_at(pending_since, w, spec.rollout)
            if now < due or paused(w):
                any_pending = True
                all_complete = False
            if now < due:
                if due - pending_since > spec.rollout.delay and record.get("state") != "Deferred":
                    rec.event(
                        "Normal", "RestartDeferred",
                        f"restart of {key} deferred until {to_rfc3339(due)} (minInterval {format_duration(spec.rollout.min_interval)})",
                    )
                    record["state"] = "Deferred"
                record["message"] = f"restart due at {to_rfc3339(due)}"
                wake.append(due)
                new_records.append(record)
                continue
            if paused(w):
                if record.get("state") != "Paused":
                    rec.event("Warning", "RestartDeferred", f"{key} is paused; it will be restarted when resumed")
                record.update(state="Paused", message=f"{key} is paused")
                new_records.append(record)
                continue
            value = restart_value(_revisions(rt, ns, name, revision, ref, w))
            if current_value(w) != value:
                try:
                    await rt.kube.patch_workload(ns, ref.kind, ref.name, restart_patch(w, value, now))
                except ApiException as e:
                    any_pending, all_complete = True, False
                    if e.status == 409:  # changed under us (often: a sibling token restarting it); look again
                        wake.append(now)
                        new_records.append(record)
                        continue
                    rec.event("Warning", "RestartFailed", f"patching {key} failed: HTTP {e.status} {e.reason}")
                    record.update(state="Failed", message=f"patch failed: HTTP {e.status}")
                    wake.append(now + timedelta(seconds=30))
                    new_records.append(record)
                    continue
                metrics.RESTARTS.labels(kind=ref.kind).inc()
                ro_status["restarts"] = int(ro_status.get("restarts") or 0) + 1
                rec.event("Normal", "RestartTriggered", f"restarted {key} for credential revision {revision} ({value})")
                record.update(restartedAt=to_rfc3339(now))
            record.update(revision=revision, state="Progressing", message=f"restarted for revision {revision}")
            w = await rt.kube.get_workload(ns, ref.kind, ref.name) or w
            w["kind"] = ref.kind
        state, numbers = progress(w)
        if record.get("revision") == revision:
            record.update(state=state, **numbers)
            record["message"] = f"{key} {state.lower()}"
        if state != "Complete":
            all_complete = False
            wake.append(now + timedelta(seconds=rt.settings.rollout_poll_seconds))
        new_records.append(record)

    log.debug("%s/%s: rollout for revision %s: %s", ns, name, revision,
              ", ".join(f"{r['kind']}/{r['name']}={r.get('state')}@{r.get('revision')}" for r in new_records) or "no targets")
    ro_status["targets"] = new_records
    if any_pending:
        ro_status["pendingSince"] = to_rfc3339(pending_since)
        ro_status["pendingRevision"] = revision
    else:
        ro_status["pendingSince"] = None
        ro_status["pendingRevision"] = None
    rec.set_fields(rollout=ro_status)

    pa = rec.fields.get("privateApp") or status.get("privateApp") or {}
    if pa.get("previousFingerprint"):
        was = cond.is_true(rec.conditions, cond.PREVIOUS_TOKEN_RETIRABLE)
        if all_complete:
            rec.condition(
                cond.PREVIOUS_TOKEN_RETIRABLE, True, "ConsumersRestarted",
                "every restart target runs pods created after the rotation; the previous token can be expired in HubSpot",
            )
            if not was:
                rec.event("Normal", "PreviousTokenUnused",
                          "all restart targets run pods created after the rotation: safe to expire the old token in HubSpot")
        else:
            rec.condition(cond.PREVIOUS_TOKEN_RETIRABLE, False, "ConsumersRestarting",
                          "some restart targets still run pods from before the rotation")
    return min(wake) if wake else None


def _revisions(rt: Runtime, ns: str, me: str, my_revision: str, ref: TargetRef, workload: dict) -> dict[str, str]:
    """Restart revisions of every HubSpotToken in the namespace that targets this workload."""
    labels = workload.get("metadata", {}).get("labels") or {}
    out = {me: my_revision}
    for (tns, tname), body in list(rt.tokens.items()):
        if tns != ns or tname == me:
            continue
        rev = (body.get("status") or {}).get("restartRevision")
        if rev and targets_workload(body.get("spec") or {}, ref, labels):
            out[tname] = rev
    return out
