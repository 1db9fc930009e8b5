"""Collects what one reconcile learned (status fields, conditions, Events) and writes it once.

One status patch per reconcile, and none when nothing changed, keeps Kubernetes writes per refresh
low and avoids waking our own watch for nothing. Messages here are built by our code from reasons,
names and fingerprints; no token value is ever passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kubernetes.client import ApiException

from . import conditions as cond
from .durations import to_rfc3339
from . import metrics
from .kube import Kube
from .readiness import Facts
from .schedule import retry_at
from .status_model import FailureKind, TokenStatus, parse_status

log = logging.getLogger(__name__)


@dataclass
class Recorder:
    body: dict
    now: datetime
    fields: dict = field(default_factory=dict)
    conditions: list[dict] | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    facts: Facts = field(default_factory=Facts)

    held: bool = False  # set when the reconcile was only paced: nothing learned, nothing to write

    def hold(self) -> None:
        self.held = True

    def __post_init__(self) -> None:
        self.status = self.body.get("status") or {}
        self.st: TokenStatus = parse_status(self.status)
        self.conditions = [dict(c) for c in self.status.get("conditions") or []]

    def value(self, key: str, default=None):
        """A status field as it will stand after this reconcile (set in this pass, else as read)."""
        if key in self.fields:
            return self.fields[key]
        return self.status.get(key, default)

    def failed(
        self,
        kind: FailureKind,
        reason: str,
        message: str,
        expires_at: datetime | None = None,
        retry_after: timedelta | None = None,
        event_reason: str | None = None,
    ) -> datetime:
        """Records a failure and returns when to try again. Attempts grow on every failure path (one
        counter), so the backoff grows too; a Warning Event goes out on the first attempt and every 16th, so a
        failure that persists is visible without writing an Event on every try (the first, then every 16th).
        The Event's message names no attempt number or retry time (those are in status and the Degraded
        condition), so the repeats of one failure aggregate into one Event whose count grows."""
        attempts = (self.st.failed_attempts or 0) + 1
        when = retry_at(self.now, attempts, expires_at, retry_after)
        self.set_fields(
            failedAttempts=attempts,
            lastFailureReason=reason,
            lastFailureTime=to_rfc3339(self.now),
            lastFailureKind=kind,
            retryAt=to_rfc3339(when),
        )
        self.condition(cond.DEGRADED, True, reason, f"attempt {attempts} failed: {message}")
        if attempts % 16 == 1:
            self.event("Warning", event_reason or reason, f"{message}; retrying with backoff")
        return when

    def succeeded(self, reason: str, message: str) -> None:
        self.set_fields(failedAttempts=0, lastFailureReason=None, lastFailureKind=None, retryAt=None)
        self.condition(cond.DEGRADED, False, reason, message)

    @property
    def generation(self) -> int | None:
        return self.body["metadata"].get("generation")

    def set_fields(self, **values) -> None:
        self.fields.update(values)

    def condition(self, ctype: str, status: bool | str, reason: str, message: str) -> None:
        self.conditions = cond.set_condition(self.conditions, ctype, status, reason, message, self.generation, self.now)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def event_once(self, type_: str, reason: str, message: str) -> None:
        """An Event only when this reason is new on the Ready condition (no repeats while blocked)."""
        ready = cond.get(self.status.get("conditions"), cond.READY)
        if not ready or ready.get("reason") != reason or not ready.get("message", "").startswith(message):
            self.event(type_, reason, message)

    def count_refresh(self, result: str) -> None:
        md = self.body["metadata"]
        metrics.count_refresh(md.get("namespace", ""), md.get("name", ""), result)

    def patch(self) -> dict:
        """The status merge patch: changed fields only (None deletes a field)."""
        out: dict = {}
        for k, v in self.fields.items():
            if merge_patch_changes(self.status.get(k), v):
                out[k] = v
        if self.conditions != (self.status.get("conditions") or []):
            out["conditions"] = self.conditions
        if self.status.get("observedGeneration") != self.generation:
            out["observedGeneration"] = self.generation
        return out

    async def flush(self, kube: Kube) -> dict | None:
        """Writes status (if changed) and posts Events; returns the updated object when status was written."""
        md = self.body["metadata"]
        updated = None
        patch = {} if self.held else self.patch()
        if patch:
            try:
                updated = await kube.patch_status(md["namespace"], md["name"], patch)
                if updated and updated.get("metadata", {}).get("resourceVersion") == md.get("resourceVersion"):
                    # The API server found nothing to change: our diff was wrong. Each such write costs a
                    # request and, if it repeats on every reconcile, is a loop; the counter makes it visible.
                    metrics.STATUS_NOOP_WRITES.inc()
                    log.warning("%s/%s: status write changed nothing (fields %s)", md["namespace"], md["name"],
                                ", ".join(sorted(patch)))
                log.debug("%s/%s: status %s written (rv %s -> %s)", md["namespace"], md["name"], sorted(patch),
                          md.get("resourceVersion"), (updated or {}).get("metadata", {}).get("resourceVersion"))
            except ApiException as e:
                if e.status != 404:
                    raise
        for type_, reason, message in self.events:
            log.info("%s/%s %s: %s", md["namespace"], md["name"], reason, message)
            metrics.EVENTS.labels(reason=reason).inc()
            await kube.post_event(self.body, type_, reason, message)
        return updated


def merge_patch_changes(current, patch) -> bool:
    """True when applying `patch` to `current` as a JSON merge patch (RFC 7386, what a status patch is)
    would change it. A None inside `patch` deletes a key, so it changes nothing where the key is absent:
    comparing with `!=` would see a difference there and write the same status on every reconcile."""
    if not isinstance(patch, dict):
        return current != patch
    if not isinstance(current, dict):
        return True
    for k, v in patch.items():
        if v is None:
            if k in current:
                return True
        elif k not in current or merge_patch_changes(current[k], v):
            return True
    return False
