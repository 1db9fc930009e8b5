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
    when it is turned off (or an input Secret is no longer used). Returns when to look again (a conflict)."""
    md = body["metadata"]
    ns, uid = md["namespace"], md.get("uid", "")
    revocation = dict((body.get("status") or {}).get("revocation") or {})
    held = set(revocation.get("heldSecrets") or [])
    want = wants_revoke(spec)
    if not want and not held and FINALIZER not in (md.get("finalizers") or []):
        return None
    wanted = set(input_secrets(spec)) if want else set()
    mine = secret_finalizer(uid)
    now_held: set[str] = set()
    try:
        for name in sorted(held | wanted):
            secret = await rt.kube.read_secret(ns, name)
            if secret is None:
                continue
            keep = name in wanted and not (rt.settings.tenancy == "consent" and tenancy.input_refusal(
                "Secret", secret.name, secret.labels, secret.annotations, md["name"]))
            new = with_finalizer(secret.finalizers, mine, keep)
            if new is not None:
                await rt.kube.patch_secret_metadata(ns, name, {"finalizers": new, "resourceVersion": secret.resource_version})
            if keep:
                now_held.add(name)
        new = with_finalizer(list(md.get("finalizers") or []), FINALIZER, want)
        if new is not None:
            rt.remember(await rt.kube.patch_token_metadata(
                ns, md["name"], {"finalizers": new, "resourceVersion": md.get("resourceVersion")}))
    except ApiException as e:
        if e.status not in (404, 409):
            raise
        return rt.clock.now() + timedelta(seconds=1)  # changed since read: look again with the new version
    finally:
        if sorted(now_held) != sorted(held):
            rec.set_fields(revocation={**revocation, "heldSecrets": sorted(now_held) or None})
    return None


async def finalize(rt: Runtime, body: dict) -> datetime | None:
    """The deletion of a token that carries FINALIZER: revoke (or not), say so, release. Returns when to
    look again (a retry of the revoke, or of a release that conflicted); None when released."""
    md, status = body["metadata"], body.get("status") or {}
    ns, name, uid = md["namespace"], md["name"], md.get("uid", "")
    rec = Recorder(body=body, now=rt.clock.now())
    now = rec.now
    revocation = dict(status.get("revocation") or {})
    if not revocation.get("outcome"):
        try:
            spec: TokenSpec | None = parse_spec(body.get("spec") or {})
        except SpecError:
            spec = None
        if spec is None or spec.oauth is None:
            outcome = RevokePlan("GiveUp", "RevokeFailed", f"the spec cannot be read; nothing was revoked; {BY_HAND}")
        else:
            outcome = await _revoke(rt, rec, body, spec, revocation)
            if isinstance(outcome, datetime):
                await rec.flush(rt.kube)
                return outcome
        rec.event("Normal" if outcome.reason in ("Revoked", "RevokeSkipped") else "Warning", outcome.reason, outcome.message)
        revocation.update(outcome=outcome.reason, finishedAt=to_rfc3339(now))
        rec.set_fields(revocation=revocation)
    updated = await rec.flush(rt.kube)
    version = (updated or body)["metadata"].get("resourceVersion")
    try:
        mine = secret_finalizer(uid)
        try:
            inputs = set(input_secrets(parse_spec(body.get("spec") or {})))
        except SpecError:
            inputs = set()
        for secret_name in sorted(set(revocation.get("heldSecrets") or []) | inputs):
            secret = await rt.kube.read_secret(ns, secret_name)
            new = with_finalizer(secret.finalizers, mine, False) if secret is not None else None
            if new is not None:
                await rt.kube.patch_secret_metadata(ns, secret_name, {"finalizers": new, "resourceVersion": secret.resource_version})
        new = with_finalizer(list(md.get("finalizers") or []), FINALIZER, False)
        if new is not None:
            await rt.kube.patch_token_metadata(ns, name, {"finalizers": new, "resourceVersion": version})
    except ApiException as e:
        if e.status == 404:
            return None  # gone already
        if e.status != 409:
            raise
        return now + timedelta(seconds=1)  # changed since read: release from the new version
    log.info("%s/%s: finalizer released (%s)", ns, name, revocation.get("outcome"))
    return None


async def _revoke(rt: Runtime, rec: Recorder, body: dict, spec: TokenSpec, revocation: dict) -> RevokePlan | datetime:
    md, status = body["metadata"], body.get("status") or {}
    ns, name, uid = md["namespace"], md["name"], md.get("uid", "")
    now = rec.now
    inp = await gather_inputs(rt, ns, spec, name)
    pending = rt.custody.pending(status.get("grantFingerprint"))
    grants = {g for g in (status.get("grantFingerprint"), grant_fingerprint(rt, spec, inp.client_id, inp.refresh_token),
                          pending.new_grant if pending else None) if g}
    others = await _all_tokens(rt, ns)
    endpoint = tenancy.endpoint_refusal(spec.hubspot.base_url, rt.settings.allowed_endpoints())
    p = plan_revoke(ns, sharers(ns, uid, spec, grants, others), inp.missing, inp.refused,
                    endpoint.message if endpoint else None)
    if p.action != "Revoke":
        return p
    refresh_token = pending.token if pending else inp.refresh_token
    client = rt.hubspot(spec.hubspot.base_url, spec.oauth.api_version)
    got = await rt.critical(client.revoke(inp.client_id, inp.client_secret, refresh_token, "refresh_token"))
    attempts = int(revocation.get("attempts") or 0) + 1
    if isinstance(got, Failure):
        again = after_failure(now, from_rfc3339(md.get("deletionTimestamp")), attempts, got)
        if again is None:
            return RevokePlan("GiveUp", "RevokeFailed",
                              f"revoking the refresh token at HubSpot failed ({got.message}) after {attempts} "
                              f"attempt(s); the deletion goes on; {BY_HAND}")
        if attempts == 1:
            rec.event("Warning", "RevokeRetrying", f"revoking the refresh token at HubSpot failed ({got.message}); "
                      f"retrying with backoff for up to {int(GIVE_UP_AFTER.total_seconds() // 60)} minutes")
        rec.set_fields(revocation={**revocation, "attempts": attempts, "lastFailure": got.message,
                                   "retryAt": to_rfc3339(again)})
        return again
    if pending is not None:
        await rt.custody.discard(pending)  # revoked: nothing left to write back
    revocation["attempts"] = attempts
    grant = (status.get("grantFingerprint") or "")[:8]
    what = "was already inactive at HubSpot" if got.already_inactive else "revoked at HubSpot"
    return RevokePlan("Revoke", "Revoked", f"refresh token (grant {grant}) {what}")


async def _all_tokens(rt: Runtime, namespace: str) -> list[dict]:
    """Every HubSpotToken that could share the grant: from the API server (other shards' too), falling back
    to this namespace, then to what this replica watches, when RBAC allows no wider read."""
    for scope in (None, namespace):
        try:
            return await rt.kube.list_tokens(scope)
        except ApiException as e:
            if e.status != 403:
                raise
    return list(rt.tokens.values())
