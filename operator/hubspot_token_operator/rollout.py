"""Whom to restart, when, and with which value. Pure functions over workloads as dicts.

- What counts as a change is decided upstream as `restartRevision` (Rotation: new private-app token, new
  refresh token from re-authorisation, hub or scope change; EveryRefresh: every new access token).
- The restart value written to the pod template is a hash of the revisions of *every* HubSpotToken that
  targets the workload. Tokens that change together therefore converge on one value (one restart), a
  repeated reconcile finds the value already there (no second restart), and two different revisions can
  never collapse into one value (unlike a one-second timestamp).
- Debounce: a restart waits `delay` after the change (to coalesce), and at least `minInterval` after the
  workload's previous restart; both instants come from the API server (token status and the workload's
  own annotation), so an operator restart neither loses nor repeats a pending restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from .durations import from_rfc3339
from .model import LabelSelector, RolloutSpec

RESTARTED_FOR = "hubspot-operator.dev/restarted-for"
RESTARTED_AT = "hubspot-operator.dev/restarted-at"
KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Rollout")


@dataclass(frozen=True)
class TargetRef:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def select_targets(spec: RolloutSpec, workloads: Iterable[dict]) -> list[TargetRef]:
    """Explicit targets first, then selector matches, without duplicates."""
    out = [TargetRef(t.kind, t.name) for t in spec.targets]
    if spec.selector is not None:
        for w in workloads:
            md = w.get("metadata", {})
            ref = TargetRef(w.get("kind", ""), md.get("name", ""))
            if ref.kind in KINDS and ref not in out and spec.selector.matches(md.get("labels") or {}):
                out.append(ref)
    return out


def targets_workload(spec: dict, ref: TargetRef, labels: dict) -> bool:
    """Whether a HubSpotToken spec (raw dict, any token in the namespace) targets this workload."""
    rollout = spec.get("rollout") or {}
    if rollout.get("restartOn") == "Never":
        return False
    if any(t.get("kind") == ref.kind and t.get("name") == ref.name for t in rollout.get("targets") or []):
        return True
    sel = rollout.get("selector")
    if not sel:
        return False
    return LabelSelector.model_validate(sel).matches(labels)


def restart_value(revisions: dict[str, str]) -> str:
    """The pod-template value for a set of {token name: restart revision}."""
    text = "\n".join(f"{k}={v}" for k, v in sorted(revisions.items()))
    return "rev-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def current_value(workload: dict) -> str | None:
    if workload.get("kind") == "Rollout":
        return (workload.get("metadata", {}).get("annotations") or {}).get(RESTARTED_FOR)
    tmpl = workload.get("spec", {}).get("template", {}).get("metadata", {})
    return (tmpl.get("annotations") or {}).get(RESTARTED_FOR)


def last_restart(workload: dict) -> datetime | None:
    if workload.get("kind") == "Rollout":
        ann = workload.get("metadata", {}).get("annotations") or {}
    else:
        ann = workload.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    return from_rfc3339(ann.get(RESTARTED_AT))


def due_at(pending_since: datetime, workload: dict, spec: RolloutSpec) -> datetime:
    due = pending_since + spec.delay
    last = last_restart(workload)
    if last is not None and spec.min_interval > timedelta(0):
        due = max(due, last + spec.min_interval)
    return due


def restart_patch(workload: dict, value: str, now: datetime) -> dict:
    """A merge patch guarded by the workload's resourceVersion: if anyone (another token, another
    operator replica) changed it since we read it, the API server answers 409 and we re-read."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    guard = {"resourceVersion": workload.get("metadata", {}).get("resourceVersion")}
    if workload.get("kind") == "Rollout":
        return {
            "metadata": {**guard, "annotations": {RESTARTED_FOR: value, RESTARTED_AT: stamp}},
            "spec": {"restartAt": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }
    return {
        "metadata": guard,
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_FOR: value, RESTARTED_AT: stamp}}}},
    }


def paused(workload: dict) -> bool:
    return bool(workload.get("spec", {}).get("paused"))


def progress(workload: dict) -> tuple[str, dict]:
    """('Complete' | 'Progressing', numbers) from the workload's own status."""
    kind = workload.get("kind")
    md, spec, st = workload.get("metadata", {}), workload.get("spec", {}), workload.get("status") or {}
    gen, observed = md.get("generation"), st.get("observedGeneration")
    old = 0  # pods of the previous template still there: until they are gone the old token may be in use
    if kind == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        updated, available = st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0)
    else:
        want = spec.get("replicas", 1)
        updated, available = st.get("updatedReplicas", 0), st.get("availableReplicas", 0)
        old = st.get("replicas", updated) - updated  # as `kubectl rollout status`: "old replicas are pending termination"
    numbers = {
        "observedGeneration": observed,
        "replicas": want,
        "updatedReplicas": updated,
        "availableReplicas": available,
    }
    if kind == "Rollout":
        # Argo Rollouts: restartAt is honoured by its controller; without one, we can only say "requested".
        done = st.get("restartedAt") and spec.get("restartAt") and st.get("restartedAt") >= spec.get("restartAt")
        return ("Complete" if done else "Requested"), numbers
    complete = (observed is not None and gen is not None and observed >= gen and updated == want and available == want
                and old <= 0)
    return ("Complete" if complete else "Progressing"), numbers
