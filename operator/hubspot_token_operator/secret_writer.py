"""Writes the target Secret according to publish.plan_target, recording the outcome."""

from __future__ import annotations

from datetime import datetime, timedelta

from kubernetes.client import ApiException

from .kube import SecretView
from .model import TokenSpec
from . import tenancy
from .publish import Owner, created_by_us, other_token, owned_by, plan_target, reloader_annotations
from .recording import Recorder
from .runtime import Runtime

TARGET_REFUSALS = ("TargetSecretNotOwned", "TargetSecretMissing", "TargetSecretOwnedByAnotherToken",
                   "TargetSecretOwnedElsewhere", "TargetSecretIsAnInput", "ConsentMissing")
REFUSAL_RECHECK = timedelta(hours=1)  # a refusal also heals on the Secret's own watch event


async def publish_target(
    rt: Runtime,
    rec: Recorder,
    spec: TokenSpec,
    body: dict,
    values: dict[str, bytes],
    existing: SecretView | None,
    expires_at: datetime | None = None,
    remove: tuple[str, ...] = (),
    record: str | None = None,
) -> datetime | None:
    """Writes `values` (our keys) into the target Secret. None when the Secret holds them afterwards;
    otherwise when to try again (None-free): a refusal waits for a change (the far future of the hourly
    look), a failed write backs off like a failed refresh. Either way the facts say why for Ready."""
    md = body["metadata"]
    owner = Owner(md["name"], md["uid"])
    refusal = None
    # Another token's target is refused as such by plan_target (a consent label would not help there).
    if existing is not None and not (other_token(existing, owner) and spec.target.creation_policy != "Merge"):
        ours = created_by_us(existing, owner) or owned_by(existing, owner)
        r = None if ours else tenancy.target_refusal(  # the routine case (our own target) scans nothing
            existing.name, existing.labels, existing.annotations, existing.owner_refs, owner.name, owner.uid,
            ours=False, inputs_of_others=rt.inputs_of_others(md["namespace"], owner.name),
            need_consent=rt.settings.tenancy == "consent" and spec.target.creation_policy != "Owner",
        )
        refusal = (r.reason, r.message) if r else None
    plan = plan_target(
        spec.target, owner, values, existing, remove_keys=remove,
        published_before=published_here(rec.st.secret_mac, rec.st.secret_uid, existing), record=record, refusal=refusal,
        reloader=reloader_annotations(spec.type, spec.rollout.restart_on, spec.target.creation_policy),
    )
    if plan.action == "refuse":
        rec.facts.write_problem = (plan.reason, plan.message)
        rec.facts.target_present = False
        rec.set_fields(refusal={"reason": plan.reason, "message": plan.message, "generation": rec.generation,
                                "secretVersion": existing.resource_version if existing else None})
        rec.event_once("Warning", plan.reason, plan.message)
        return rec.now + REFUSAL_RECHECK
    try:
        written = None
        if plan.action == "create":
            written = await rt.kube.create_secret(md["namespace"], plan.body)
        elif plan.action == "replace":
            written = await rt.kube.replace_secret(md["namespace"], spec.target.name, plan.body)
        if written is not None:
            rt.own_writes[(written.namespace, written.name)] = written.resource_version
    except ApiException as e:
        msg = f"writing Secret {spec.target.name} failed: HTTP {e.status}"
        rec.facts.write_problem = ("SecretWriteFailed", msg)
        rec.facts.target_present = False
        return rec.failed("Write", "SecretWriteFailed", msg, expires_at)
    rt.remember_published(values.get(spec.target.keys.token))
    rec.facts.target_present = True
    rec.facts.write_problem = None
    if (rec.value("refusal") or {}).get("reason") in TARGET_REFUSALS:
        rec.set_fields(refusal=None)
    held = written or existing
    rec.set_fields(secretMAC=rt.fingerprints.of_data(values), secretUID=held.uid if held is not None else None)
    return None


def published_here(secret_mac: str | None, secret_uid: str | None, existing: SecretView | None) -> bool:
    """Whether status says this token published into this very Secret: not merely into one of the same name
    before it was deleted and made again, nor into the Secret an earlier spec.target.name named."""
    return bool(secret_mac) and existing is not None and bool(existing.uid) and existing.uid == secret_uid
