"""Rotation detection from HubSpot's audit log (spec.privateApp.auditLog; optional, off by default).

HubSpot has no API to rotate a private-app token, but an Enterprise account's audit log
(GET /account-info/2026-03/activity/audit-logs, scope account-info.security.read) records each rotation and
deactivation. Read every `interval`, it lets the operator tell before the next verification (and before
HubSpot's email is read) that a person rotated this app's token in HubSpot's UI:

- a rotation after the published token was published: RotationDue=True RotatedInHubSpot (the new token
  has not reached the source Secret yet) and a Warning Event saying where to put it; the published token is
  verified at once, because "Rotate and expire now" has already killed it;
- a deactivation: a Warning Event and an immediate verification;
- the published token itself refused (HTTP 401) when it is what reads the log: an immediate verification.

Entries are matched to the app by `targetObjectId` (the app id learnt from token info) and by what
`category`/`subCategory`/`action` say. The 2026-03 spec gives `action` no enum; the audit enum lists
PRIVATE_APP_ACCESS_TOKEN_ROTATE / _DEACTIVATE and SERVICE_KEY_ROTATE / _AUTO_ROTATE / _DEACTIVATE
(docs/hubspot-api-facts.md), so the match is on those words wherever they appear. An entry without a
target id is taken as this app's: a needless verification is cheap, a missed rotation is not.

Tokens that read the log with the same credential share one read of it (audit_reads.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Literal

from . import tenancy
from .durations import from_rfc3339, to_rfc3339
from .hubspot import AuditEvent, ErrorKind, Failure
from .model import TokenSpec
from .recording import Recorder
from .runtime import Runtime

SUBJECTS = ("PRIVATE_APP", "SERVICE_KEY")
SECOND = timedelta(seconds=1)
SCOPE_HINT = ("reading the audit log needs an Enterprise account and a token with scope account-info.security.read "
              "(spec.privateApp.auditLog.tokenSecretRef, or that scope on the published token)")

Kind = Literal["Rotated", "Deactivated"]


# ---- decisions ----------------------------------------------------------------------------------------


def classify(event: AuditEvent) -> Kind | None:
    text = "_".join(p for p in (event.category, event.sub_category, event.action) if p).upper()
    if not any(s in text for s in SUBJECTS) or "ROTATION_SCHEDULE" in text:  # a schedule changes no token
        return None
    if "ROTATE" in text:
        return "Rotated"
    if "DEACTIVATE" in text:
        return "Deactivated"
    return None


def concerns(event: AuditEvent, app_id: int | None) -> bool:
    return app_id is None or not event.target_object_id or event.target_object_id == str(app_id)


@dataclass(frozen=True)
class Findings:
    rotated: AuditEvent | None  # the newest rotation after the published token was published
    deactivated: AuditEvent | None  # the newest deactivation after it
    seen_until: datetime  # the next read asks for entries after this


def findings(events: Iterable[AuditEvent], app_id: int | None, published_at: datetime | None,
             since: datetime, read_before: datetime | None = None) -> Findings:
    """What a read of the window after `since` shows. `read_before`: this token had already read the log up
    to then (a read shared with other tokens may start earlier), so older entries are no news."""
    events = list(events)
    newest: dict[str, AuditEvent] = {}
    for e in events:
        if read_before is not None and e.occurred_at <= read_before:
            continue
        kind = classify(e)
        # publishedAt is stored to the second: an entry counts only from the next second on, so the rotation
        # whose token was just published (and written within the same second) is never taken for a new one.
        if kind is None or not concerns(e, app_id) or (published_at is not None and e.occurred_at < published_at + SECOND):
            continue
        if kind not in newest or e.occurred_at > newest[kind].occurred_at:
            newest[kind] = e
    return Findings(newest.get("Rotated"), newest.get("Deactivated"),
                    max([since, *(e.occurred_at for e in events)]))


def window_after_read(audit: dict, newest_read: datetime, next_after: str | None) -> dict:
    """The status fields that say how far the audit log has been read, after one read of it.

    HubSpot documents no order for audit-log entries, so a read that leaves pages cannot move `seenUntil`:
    if the newest entries come first, the pages left hold older ones. While pages are left, the read goes on
    from HubSpot's cursor (`pageAfter`) over the same window, and the newest entry read so far waits in
    `pendingSeenUntil`. Only the read of the last page moves `seenUntil`, to the newest entry of the whole
    window."""
    newest = max(newest_read, from_rfc3339(audit.get("pendingSeenUntil")) or newest_read)
    if next_after is not None:
        return {"pageAfter": next_after, "pendingSeenUntil": to_rfc3339(newest)}
    return {"pageAfter": None, "pendingSeenUntil": None, "seenUntil": to_rfc3339(newest)}


def newer(event: AuditEvent, recorded: str | None) -> bool:
    """Whether `event` is newer than the one status records (which is kept to the second). The pages of one
    window come in no known order, so an older entry read later must not replace a newer one, nor be
    announced again."""
    seen = from_rfc3339(recorded)
    return seen is None or event.occurred_at.replace(microsecond=0) > seen


def rotated_in_hubspot(audit: dict | None, published_at: datetime | None) -> tuple[datetime, str] | None:
    """(when, by whom) if the audit log showed a rotation newer than the published token."""
    rotated = from_rfc3339((audit or {}).get("rotatedAt"))
    if rotated is None or (published_at is not None and rotated <= published_at):
        return None
    return rotated, (audit or {}).get("rotatedBy") or "someone"


def who(event: AuditEvent) -> str:
    return event.user_email or f"user {event.user_id}"


# ---- the action ---------------------------------------------------------------------------------------


async def check_audit_log(rt: Runtime, rec: Recorder, body: dict, spec: TokenSpec, published: str | None) -> datetime | None:
    """Reads the audit log when due; records what it shows. Returns when to look again."""
    al = spec.private_app.audit_log
    pa = dict(rec.value("privateApp") or {})
    if not al.enabled:
        if pa.get("auditLog"):  # just turned off: it no longer holds its credential's shared window back
            rt.audit_reads.forget((body["metadata"]["namespace"], body["metadata"]["name"]))
            rec.set_fields(privateApp={**pa, "auditLog": None})
        return None
    audit = dict(pa.get("auditLog") or {})
    now = rec.now
    due = from_rfc3339(audit.get("nextCheckAt"))
    if due is not None and now < due:
        return due
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    token, problem = published, None
    if al.token_secret_ref is not None:
        ref = al.token_secret_ref
        secret = await rt.kube.read_secret(ns, ref.name)
        refusal = secret is not None and rt.settings.tenancy == "consent" and tenancy.input_refusal(
            "Secret", secret.name, secret.labels, secret.annotations, name)
        token = None if secret is None or refusal else secret.text(ref.key)
        if refusal:
            problem = refusal.message
        elif token is None:
            problem = f"missing {'Secret ' + ref.name if secret is None else f'key {ref.key} in Secret {ref.name}'}"
    elif token is None:
        problem = "no published token to read the audit log with"
    wake = now + al.interval
    audit.update(checkedAt=to_rfc3339(now), nextCheckAt=to_rfc3339(wake))
    if token is not None:
        published_at = rec.st.private_app.published_at
        since = from_rfc3339(audit.get("seenUntil")) or published_at or now - al.interval
        cursor = audit.get("pageAfter")
        read_before = since
        client = rt.hubspot(spec.hubspot.base_url)
        if cursor is None:  # a whole window: the tokens that read with this credential share one read
            served = await rt.audit_reads.events(
                (client.base_url, rt.fingerprints.of(token)), (ns, name), since, now, al.interval,
                lambda start: client.audit_log_events(token, start))
            got = served.outcome
            if got.ok and served.since != since:  # the shared window: this token reads on from its start too
                since = served.since
                audit["seenUntil"] = to_rfc3339(since)
            wake = served.at + al.interval  # due with the tokens it shares with, so they share again
            audit["nextCheckAt"] = to_rfc3339(wake)
        else:
            got = await client.audit_log_events(token, since, after=cursor)
        if isinstance(got, Failure) and got.kind is ErrorKind.INVALID_TOKEN and token is published:
            # HubSpot refused the published token itself ("Rotate and expire now", a deactivation): the
            # verification, at once, says so in the usual terms (Verified=False TokenDeactivated).
            pa["nextVerifyAt"], wake = to_rfc3339(now), now
        elif isinstance(got, Failure):
            problem = f"reading HubSpot's audit log failed ({got.message})"
            if got.http_status in (401, 403):
                problem += f"; {SCOPE_HINT}"
            if cursor is not None and got.http_status == 400:  # a cursor HubSpot no longer takes: read the window again
                audit.update(pageAfter=None, pendingSeenUntil=None)
        else:
            f = findings(got.events, rec.value("appId"), published_at, since, read_before)
            audit.update(window_after_read(audit, f.seen_until, got.next_after))
            if not got.complete:  # more pages than one read takes: read on at once
                wake = now
                audit["nextCheckAt"] = to_rfc3339(now)
            src = spec.private_app.token_secret_ref.name
            if f.rotated is not None and newer(f.rotated, audit.get("rotatedAt")):
                audit.update(rotatedAt=to_rfc3339(f.rotated.occurred_at), rotatedBy=who(f.rotated))
                rec.event("Warning", "RotatedInHubSpot",
                          f"HubSpot's audit log shows this app's token rotated at {to_rfc3339(f.rotated.occurred_at)} by "
                          f"{who(f.rotated)}; put the new token into Secret {src} (kubectl hubspot rotate {name}); the "
                          "published token is verified now")
                pa["nextVerifyAt"], wake = to_rfc3339(now), now
            if f.deactivated is not None and newer(f.deactivated, audit.get("deactivatedAt")):
                audit["deactivatedAt"] = to_rfc3339(f.deactivated.occurred_at)
                rec.event("Warning", "DeactivatedInHubSpot",
                          f"HubSpot's audit log shows this app's token deactivated at "
                          f"{to_rfc3339(f.deactivated.occurred_at)} by {who(f.deactivated)}; the published token is "
                          "verified now")
                pa["nextVerifyAt"], wake = to_rfc3339(now), now
    if problem and problem != audit.get("problem"):
        rec.event("Warning", "AuditLogUnreadable", problem)
    audit["problem"] = problem
    rec.set_fields(privateApp={**pa, "auditLog": audit})
    return wake
