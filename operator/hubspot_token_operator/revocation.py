"""Revoke on delete (spec.oauth.revokeOnDelete): when, whether and how a deleted token's grant is revoked.

While the option is on, a finalizer on the HubSpotToken (FINALIZER) holds its deletion, and a finalizer of
this token's own (secret_finalizer(uid)) on each of its two input Secrets, the app's client Secret and the
refresh-token Secret, keeps them readable: deleting a namespace deletes Secrets and tokens together, and
the revoke needs both. When the token is deleted:

1. a grant another HubSpotToken still uses (the same refresh-token Secret, or the same grant fingerprint,
   in any namespace) is not revoked; an Event says so, naming the other token only if it is in the same
   namespace (a tenant learns nothing about other namespaces);
2. otherwise the newest refresh token is revoked at HubSpot (custody first: one HubSpot returned that is
   not yet written back); "already inactive" counts as revoked;
3. a failure HubSpot may get over (timeout, 5xx, 429) is retried with backoff, at most MAX_ATTEMPTS times
   and for no longer than GIVE_UP_AFTER after the deletion; after that, or at once on a terminal failure, a
   Warning Event says what to do by hand, and the deletion goes on;
4. the finalizers leave the Secrets, then the token, and Kubernetes finishes the deletion.

status.revocation records what is held (heldSecrets), the attempts, and the outcome once reached, so a pass
that only has to release the finalizers never calls HubSpot again. Turning the option off removes the
finalizers. The decisions are the pure functions at the top; the actions below them only gather and write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Literal

from kubernetes.client import ApiException

from . import tenancy
from .durations import from_rfc3339, to_rfc3339
from .hubspot import ErrorKind, Failure
from .model import SpecError, TokenSpec, parse_spec
from .oauth_inputs import gather_inputs, grant_fingerprint
from .recording import Recorder
from .runtime import Runtime
from .schedule import retry_at

log = logging.getLogger(__name__)

FINALIZER = "hubspot-operator.dev/revoke"
SECRET_FINALIZER_PREFIX = "hubspot-operator.dev/revoke-"
MAX_ATTEMPTS = 5
GIVE_UP_AFTER = timedelta(minutes=10)
BY_HAND = "revoke it by hand: uninstall the app from the HubSpot account (Settings > Integrations > Connected apps)"


# ---- decisions ----------------------------------------------------------------------------------------


def secret_finalizer(uid: str) -> str:
    """The finalizer one token puts on each of its input Secrets (one per token: each removes only its own)."""
    return SECRET_FINALIZER_PREFIX + uid


def with_finalizer(current: list[str], mine: str, want: bool) -> list[str] | None:
    """The finalizer list with `mine` present (want) or absent; None when it already is."""
    if (mine in current) == want:
        return None
    return [*current, mine] if want else [f for f in current if f != mine]


def wants_revoke(spec: TokenSpec | None) -> bool:
    return bool(spec and spec.type == "OAuth" and spec.oauth and spec.oauth.revoke_on_delete)


def held_anything(body: dict) -> bool:
    """Whether a token (as last seen) may have put finalizers on Secrets: worth a look when it is gone."""
    spec = body.get("spec") or {}
    return bool(((body.get("status") or {}).get("revocation") or {}).get("heldSecrets")
                or (spec.get("oauth") or {}).get("revokeOnDelete"))


def input_secrets(spec: TokenSpec) -> list[str]:
    """The Secrets a revoke reads: the app's client Secret and the refresh-token Secret."""
    o = spec.oauth
    return sorted({o.client_secret_ref.name, o.refresh_token_secret_ref.name}) if o else []


def sharers(namespace: str, uid: str, spec: TokenSpec, grants: set[str], others: Iterable[dict]) -> list[tuple[str, str]]:
    """Other live HubSpotTokens that use this grant: the same refresh-token Secret and key, or a grant
    fingerprint in `grants` (the same refresh token held in another Secret, in any namespace)."""
    ref = spec.oauth.refresh_token_secret_ref
    out = []
    for body in others:
        md = body.get("metadata") or {}
        if md.get("uid") == uid or md.get("deletionTimestamp"):
            continue
        ospec = body.get("spec") or {}
        if ospec.get("type") != "OAuth":
            continue
        oref = (ospec.get("oauth") or {}).get("refreshTokenSecretRef") or {}
        same_secret = (md.get("namespace") == namespace and oref.get("name") == ref.name
                       and (oref.get("key") or "refresh_token") == ref.key)
        same_grant = (body.get("status") or {}).get("grantFingerprint") in grants
        if same_secret or same_grant:
            out.append((md.get("namespace", ""), md.get("name", "")))
    return sorted(out)


@dataclass(frozen=True)
class RevokePlan:
    action: Literal["Revoke", "Skip", "GiveUp"]
    reason: str = ""
    message: str = ""


def plan_revoke(namespace: str, shared_with: list[tuple[str, str]], missing: tuple[str, ...],
                refused: str | None, endpoint_refused: str | None) -> RevokePlan:
    if shared_with:
        here = [n for ns, n in shared_with if ns == namespace]
        who = f"HubSpotToken {', '.join(here)}" if here else "another HubSpotToken"
        return RevokePlan("Skip", "RevokeSkipped", f"refresh token not revoked: {who} still uses this grant")
    problem = endpoint_refused or refused or (f"missing {', '.join(missing)}" if missing else None)
    if problem:
        return RevokePlan("GiveUp", "RevokeFailed", f"cannot revoke the refresh token ({problem}); {BY_HAND}")
    return RevokePlan("Revoke")


def after_failure(now: datetime, deleted_at: datetime | None, attempts: int, failure: Failure) -> datetime | None:
    """When to try the revoke again after its `attempts`-th failure; None to give up."""
    if failure.kind is not ErrorKind.RETRYABLE or attempts >= MAX_ATTEMPTS:
        return None
    if deleted_at is not None and now - deleted_at >= GIVE_UP_AFTER:
        return None
    retry_after = timedelta(seconds=failure.retry_after_seconds) if failure.retry_after_seconds else None
    when = retry_at(now, attempts, None, retry_after)
    if deleted_at is not None and when > deleted_at + GIVE_UP_AFTER:
        when = max(now, deleted_at + GIVE_UP_AFTER)  # one last try at the limit
    return when


# ---- actions ------------------------------------------------------------------------------------------


async def keep_finalizers(rt: Runtime, rec: Recorder, body: dict, spec: TokenSpec | None) -> datetime | None:
    """Puts our finalizers on the token and its input Secrets while revokeOnDelete is on, and takes them off
    when it is turned off, when an input Secret is no longer used, or when a person deletes an input Secret
    on its own (its namespace is not being deleted: they mean it, and a GitOps delete-and-recreate must not
    hang). Returns when to look again (a conflict). status.revocation.heldSecrets changes per Secret, only
    after its patch succeeded, so a failure half-way never forgets a finalizer that is still there."""
    md = body["metadata"]
    ns, uid = md["namespace"], md.get("uid", "")
    revocation = dict((body.get("status") or {}).get("revocation") or {})
    held = set(revocation.get("heldSecrets") or [])
    want = wants_revoke(spec)
    if not want and not held and FINALIZER not in (md.get("finalizers") or []):
        return None
    wanted = set(input_secrets(spec)) if want else set()
    mine = secret_finalizer(uid)
    now_held = set(held)
    try:
        for name in sorted(held | wanted):
            secret = await rt.kube.read_secret(ns, name)
            if secret is None:
                now_held.discard(name)
                continue
            keep = name in wanted and not (rt.settings.tenancy == "consent" and tenancy.input_refusal(
                "Secret", secret.name, secret.labels, secret.annotations, md["name"]))
            if secret.deleting and (mine not in secret.finalizers or not await rt.kube.namespace_terminating(ns)):
                keep = False  # a deleting Secret takes no new finalizer; a lone deletion is the owner's call
            new = with_finalizer(secret.finalizers, mine, keep)
            if new is not None:
                await rt.kube.patch_secret_metadata(ns, name, {"finalizers": new, "resourceVersion": secret.resource_version})
            (now_held.add if keep else now_held.discard)(name)
        new = with_finalizer(list(md.get("finalizers") or []), FINALIZER, want)
        if new is not None:
            rt.remember(await rt.kube.patch_token_metadata(
                ns, md["name"], {"finalizers": new, "resourceVersion": md.get("resourceVersion")}), own_write=True)
    except ApiException as e:
        if e.status not in (404, 409, 422):
            raise
        return rt.clock.now() + timedelta(seconds=1)  # changed since read: look again with the new version
    finally:
        if now_held != held:
            rec.set_fields(revocation={**revocation, "heldSecrets": sorted(now_held) or None})
    return None


async def finalize(rt: Runtime, body: dict) -> datetime | None:
    """The deletion of a token that carries FINALIZER: revoke (or not), say so, release. Returns when to
    look again (a retry of the revoke, or of a release that conflicted); None when released. A Kubernetes
    failure on the way counts as a failed attempt like a HubSpot one, so the deletion never hangs."""
    md, status = body["metadata"], body.get("status") or {}
    ns, name, uid = md["namespace"], md["name"], md.get("uid", "")
    rec = Recorder(body=body, now=rt.clock.now())
    now = rec.now
    revocation = dict(status.get("revocation") or {})
    retry_at_ = from_rfc3339(revocation.get("retryAt"))
    if not revocation.get("outcome") and retry_at_ is not None and now < retry_at_:
        return retry_at_  # woken early (e.g. by the echo of our own status write): keep the backoff
    if not revocation.get("outcome"):
        try:
            spec: TokenSpec | None = parse_spec(body.get("spec") or {})
        except SpecError:
            spec = None
        if spec is None or spec.oauth is None:
            outcome = RevokePlan("GiveUp", "RevokeFailed", f"the spec cannot be read; nothing was revoked; {BY_HAND}")
        elif not wants_revoke(spec):  # turned off, then deleted before a reconcile released the finalizer
            outcome = RevokePlan("Skip", "RevokeSkipped", "spec.oauth.revokeOnDelete is off: the grant was left alone")
        else:
            try:
                outcome = await _revoke(rt, rec, body, spec, revocation)
            except ApiException as e:
                outcome = _retry_or_give_up(rec, md, revocation, f"Kubernetes API HTTP {e.status}", None,
                                            retryable=True)
            if isinstance(outcome, datetime):
                _remember(rt, await rec.flush(rt.kube))
                return outcome
        if outcome.action == "GiveUp":
            pending = rt.custody.held_for(status.get("grantFingerprint"))
            if pending is not None:  # the token is going away: hold no live refresh token for it
                await rt.custody.discard(pending)
                outcome = RevokePlan(outcome.action, outcome.reason, outcome.message +
                                     "; the newer refresh token held in the operator's custody was dropped")
        rec.event("Normal" if outcome.reason in ("Revoked", "RevokeSkipped") else "Warning", outcome.reason, outcome.message)
        revocation.update(outcome=outcome.reason, finishedAt=to_rfc3339(now), retryAt=None)
        rec.set_fields(revocation=revocation)
    updated = await rec.flush(rt.kube)
    _remember(rt, updated)
    version = (updated or body)["metadata"].get("resourceVersion")
    try:
        try:
            inputs = set(input_secrets(parse_spec(body.get("spec") or {})))
        except SpecError:
            inputs = set()
        await release_secrets(rt, ns, uid, set(revocation.get("heldSecrets") or []) | inputs)
        new = with_finalizer(list(md.get("finalizers") or []), FINALIZER, False)
        if new is not None:
            await rt.kube.patch_token_metadata(ns, name, {"finalizers": new, "resourceVersion": version})
    except ApiException as e:
        if e.status == 404:
            return None  # gone already
        if e.status not in (409, 422):
            raise
        return now + timedelta(seconds=1)  # changed since read: release from the new version
    log.info("%s/%s: finalizer released (%s)", ns, name, revocation.get("outcome"))
    return None


async def release_secrets(rt: Runtime, namespace: str, uid: str, names: Iterable[str]) -> None:
    """Takes this token's finalizer off the named Secrets (those that carry it)."""
    mine = secret_finalizer(uid)
    for secret_name in sorted(set(names)):
        secret = await rt.kube.read_secret(namespace, secret_name)
        new = with_finalizer(secret.finalizers, mine, False) if secret is not None else None
        if new is not None:
            await rt.kube.patch_secret_metadata(namespace, secret_name,
                                                {"finalizers": new, "resourceVersion": secret.resource_version})


async def release_orphaned(rt: Runtime, body: dict) -> None:
    """A token gone without its finalize (its finalizer removed by hand, as docs/revoke-on-delete.md allows):
    its Secret finalizers must not outlive it. Best effort: a failure is logged, the Secret keeps the
    finalizer, and the manual escape in the docs applies."""
    md = body.get("metadata") or {}
    names = set(((body.get("status") or {}).get("revocation") or {}).get("heldSecrets") or [])
    try:
        names |= set(input_secrets(parse_spec(body.get("spec") or {})))
    except SpecError:
        pass
    if not names or not md.get("uid"):
        return
    try:
        await release_secrets(rt, md.get("namespace", ""), md["uid"], names)
    except ApiException as e:
        log.warning("%s/%s: could not release its finalizer from Secrets %s (HTTP %s)", md.get("namespace"),
                    md.get("name"), ", ".join(sorted(names)), e.status)


def _remember(rt: Runtime, updated: dict | None) -> None:
    """Our own status write, remembered so its watch echo does not wake the token at once."""
    if updated:
        rt.remember(updated, own_write=True)


def _retry_or_give_up(rec: Recorder, md: dict, revocation: dict, what: str, retry_after: float | None,
                      retryable: bool) -> RevokePlan | datetime:
    """One more failed attempt: when to retry (recorded in status.revocation), or the plan that gives up."""
    attempts = int(revocation.get("attempts") or 0) + 1
    failure = Failure(ErrorKind.RETRYABLE if retryable else ErrorKind.TERMINAL, "RevokeFailed", what,
                      retry_after_seconds=retry_after)
    again = after_failure(rec.now, from_rfc3339(md.get("deletionTimestamp")), attempts, failure)
    if again is None:
        return RevokePlan("GiveUp", "RevokeFailed", f"revoking the refresh token failed ({what}) after {attempts} "
                          f"attempt(s); the deletion goes on; {BY_HAND}")
    if attempts == 1:
        rec.event("Warning", "RevokeRetrying", f"revoking the refresh token failed ({what}); retrying with backoff "
                  f"for up to {int(GIVE_UP_AFTER.total_seconds() // 60)} minutes")
    revocation.update(attempts=attempts, lastFailure=what, retryAt=to_rfc3339(again))
    rec.set_fields(revocation=dict(revocation))
    return again


async def _revoke(rt: Runtime, rec: Recorder, body: dict, spec: TokenSpec, revocation: dict) -> RevokePlan | datetime:
    md, status = body["metadata"], body.get("status") or {}
    ns, name, uid = md["namespace"], md["name"], md.get("uid", "")
    inp = await gather_inputs(rt, ns, spec, name)
    in_secret = grant_fingerprint(rt, spec, inp.client_id, inp.refresh_token)
    # The newest refresh token may be in custody: keyed by the grant it replaced (the one in the Secret),
    # while status already names the grant it started.
    pending = rt.custody.held_for(in_secret, status.get("grantFingerprint"))
    grants = {g for g in (status.get("grantFingerprint"), in_secret, pending.new_grant if pending else None) if g}
    others = await _all_tokens(rt, ns)
    endpoint = tenancy.endpoint_refusal(spec.hubspot.base_url, rt.settings.allowed_endpoints())
    p = plan_revoke(ns, sharers(ns, uid, spec, grants, others), inp.missing, inp.refused,
                    endpoint.message if endpoint else None)
    if p.action != "Revoke":
        return p
    refresh_token = pending.token if pending else inp.refresh_token
    # A revoke is a call on the app's HubSpot limit like a refresh: a namespace of 1,000 tokens deleted at
    # once is paced by the same per-app bucket. Waiting for a slot is not a failed attempt.
    wait = rt.limiter.take(inp.client_id or "", (ns, name))
    if wait > 0:
        return rec.now + timedelta(seconds=wait)
    client = rt.hubspot(spec.hubspot.base_url, spec.oauth.api_version)
    got = await rt.critical(client.revoke(inp.client_id, inp.client_secret, refresh_token, "refresh_token"))
    if isinstance(got, Failure):
        return _retry_or_give_up(rec, md, revocation, f"HubSpot: {got.message}", got.retry_after_seconds,
                                 retryable=got.kind is ErrorKind.RETRYABLE)
    if pending is not None:
        await rt.custody.discard(pending)  # revoked: nothing left to write back
    revocation["attempts"] = int(revocation.get("attempts") or 0) + 1
    grant = (status.get("grantFingerprint") or "")[:8]
    what = "was already inactive at HubSpot" if got.already_inactive else "revoked at HubSpot"
    return RevokePlan("Revoke", "Revoked", f"refresh token (grant {grant}) {what}")


async def _all_tokens(rt: Runtime, namespace: str) -> list[dict]:
    """Every HubSpotToken that could share the grant: from the API server across namespaces (other shards'
    too); when RBAC allows no cluster-wide read (watch.mode namespaces), the lists of this namespace and of
    every namespace this release watches (other shards' tokens there too), with every token this replica
    holds."""
    try:
        return await rt.kube.list_tokens(None)
    except ApiException as e:
        if e.status != 403:
            raise
    listed: list[dict] = []
    for ns in dict.fromkeys([namespace, *rt.settings.namespaces]):
        try:
            listed += await rt.kube.list_tokens(ns)
        except ApiException as e:
            if e.status != 403:
                raise
    seen = {(b.get("metadata") or {}).get("uid") for b in listed}
    return listed + [b for b in rt.tokens.values() if (b.get("metadata") or {}).get("uid") not in seen]
