"""Decisions for a PrivateApp HubSpotToken, as pure functions of one gathered snapshot.

Two independent questions, asked on every pass:
- the candidate: what to do with the token in the source Secret (verify it, or nothing);
- the published token: restore the target, re-verify, end the overlap, warn, flag its age.
The second never depends on the first: a rejected candidate in the source Secret cannot freeze the
maintenance of the token that is actually published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .model import TokenSpec
from .status_model import TokenStatus

OVERLAP_WARNING = timedelta(hours=24)


@dataclass(frozen=True)
class PAObserved:
    spec: TokenSpec
    status: TokenStatus
    now: datetime
    source_missing: str | None  # "Secret x" / "key k in Secret x" when there is no candidate
    source_refused: str | None  # the source Secret has not consented to this token (tenancy.py)
    candidate_fp: str | None
    published_known: bool  # we hold the published token's value (to restore and re-verify it)
    target_exists: bool
    target_matches: bool  # the target holds exactly the values we would publish now
    generation: int | None = None  # metadata.generation: a rejection under another spec is tried again

    @property
    def published_fp(self) -> str | None:
        return self.status.token_fingerprint


@dataclass(frozen=True)
class CandidateVerdict:
    action: Literal["Refused", "Missing", "Current", "AlreadyRejected", "BackingOff", "Verify"]
    until: datetime | None = None


def decide_candidate(o: PAObserved) -> CandidateVerdict:
    st = o.status
    if o.source_refused:
        return CandidateVerdict("Refused")
    if o.source_missing:
        return CandidateVerdict("Missing")
    if o.candidate_fp == o.published_fp:
        return CandidateVerdict("Current")
    if o.candidate_fp == st.private_app.rejected_fingerprint and st.private_app.rejected_generation == o.generation:
        return CandidateVerdict("AlreadyRejected")  # waits for a different token in the source Secret, or another spec
    if st.last_failure_kind == "Verify" and st.retry_at and o.now < st.retry_at:
        return CandidateVerdict("BackingOff", st.retry_at)
    return CandidateVerdict("Verify")


@dataclass(frozen=True)
class Maintenance:
    restore: bool = False  # rewrite the target from the held values
    cannot_restore: bool = False  # the target is wrong and the published value is not at hand
    verify: bool = False  # periodic re-verification is due
    end_overlap: bool = False  # drop the previous token from the target
    warn_overlap: bool = False  # the overlap ends soon and consumers still run old pods
    rotation_due: bool = False
    wake: tuple[datetime, ...] = field(default_factory=tuple)


def maintenance(o: PAObserved, retirable: bool) -> Maintenance:
    if not o.published_fp:
        return Maintenance()
    pa, spec, now = o.status.private_app, o.spec.private_app, o.now
    wake: list[datetime] = []
    restore = not o.target_matches and o.published_known
    cannot_restore = not o.target_matches and not o.published_known
    verify = pa.next_verify_at is None or now >= pa.next_verify_at
    if pa.next_verify_at and not verify:
        wake.append(pa.next_verify_at)
    end_overlap = warn = False
    if pa.previous_until is not None:
        if now >= pa.previous_until:
            end_overlap = True
        else:
            warn_at = pa.previous_until - min(OVERLAP_WARNING, spec.overlap / 7)
            warn = now >= warn_at and not retirable and not pa.overlap_warned
            wake.append(pa.previous_until if now >= warn_at else warn_at)
    due = False
    if pa.published_at is not None:
        due = now - pa.published_at >= spec.max_age
        if not due:
            wake.append(pa.published_at + spec.max_age)
    return Maintenance(restore, cannot_restore, verify, end_overlap, warn, due, tuple(wake))


ReverifyAction = Literal["Valid", "Retry", "RollBack", "Invalid"]
VerdictName = Literal["ok", "rejected", "transient"]


@dataclass(frozen=True)
class Reverified:
    """What a periodic re-verification means, from the verdicts on the published token and (during the
    overlap) on the previous one.

    - Valid: the published token works; previous_dead says HubSpot no longer accepts the previous token
      although the overlap has not ended ("Expire now" in HubSpot, or HubSpot's 7 days ran out first).
    - Retry: HubSpot did not answer about the published token; ask again with backoff, change nothing.
    - RollBack: the published token stopped working while the previous one still works (a rotation
      cancelled in HubSpot, a wrong token that died, a new token deactivated): publish the previous again.
    - Invalid: the published token stopped working and there is nothing to fall back to (no previous
      token, or it is dead too): Verified=False, Ready=False. retry_previous: the previous token could not be
      checked (HubSpot did not answer): look again soon instead of at the next verify interval.
    """

    action: ReverifyAction
    previous_dead: bool = False
    retry_previous: bool = False


def decide_reverify(
    published: VerdictName, previous: VerdictName | None = None, previous_reason: str | None = None
) -> Reverified:
    """`previous` is None when there is no previous token to check (never rotated, overlap over, value not
    at hand). `previous_reason` is the verification's reason for the previous token ("InvalidToken" when
    HubSpot does not accept it; hub or scope refusals do not make it dead)."""
    if published == "transient":
        return Reverified("Retry")
    if published == "ok":
        return Reverified("Valid", previous_dead=previous == "rejected" and previous_reason == "InvalidToken")
    if previous == "ok":
        return Reverified("RollBack")
    return Reverified("Invalid", retry_previous=previous == "transient")
