"""What to write into the target Secret, and whether we may write it at all. Pure functions.

creationPolicy:
- Owner: create the Secret; refuse to touch one the operator did not create for this HubSpotToken.
- Adopt: take over an existing Secret (its data is replaced by ours; labels are added).
- Merge: write only our keys into an existing Secret, keep everything else; never own it.
deletionPolicy Delete adds an owner reference so Kubernetes garbage-collects the Secret with the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from . import GROUP, KIND, VERSION
from .kube import SecretView
from .model import TargetSpec

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "hubspot-token-operator"
TOKEN_LABEL = "hubspot-operator.dev/token"
PUBLISHED = "hubspot-operator.dev/published"
CREATED_FOR = "hubspot-operator.dev/created-for"  # uid of the HubSpotToken the operator created the Secret for


@dataclass(frozen=True)
class Owner:
    name: str
    uid: str


@dataclass(frozen=True)
class SecretPlan:
    action: Literal["create", "replace", "none", "refuse"]
    body: dict | None = None
    reason: str = ""
    message: str = ""

    def __repr__(self) -> str:
        return f"SecretPlan({self.action}, {self.reason})"


def ours(keys: Iterable[str], existing: SecretView | None) -> dict[str, bytes]:
    """Our keys as they currently stand in the Secret (the input to the drift MAC)."""
    if existing is None:
        return {}
    return {k: existing.data[k] for k in keys if k in existing.data}


def owned_by(existing: SecretView, owner: Owner) -> bool:
    """Ours: our owner reference, or our created-for mark; the name labels count only on Secrets from before
    created-for existed (a Secret created for another token of the same name is not ours)."""
    created_for = existing.annotations.get(CREATED_FOR)
    if owner.uid in existing.owner_uids or created_for == owner.uid:
        return True
    return created_for is None and existing.labels.get(TOKEN_LABEL) == owner.name and (
        existing.labels.get(MANAGED_BY) == MANAGER)


def created_by_us(existing: SecretView, owner: Owner) -> bool:
    """The operator created this Secret for this HubSpotToken (only then may deletionPolicy Delete own it)."""
    return owner.uid in existing.owner_uids or existing.annotations.get(CREATED_FOR) == owner.uid


def other_token(existing: SecretView, owner: Owner) -> str | None:
    """The name of another HubSpotToken that owns (created or adopted) this Secret, if any."""
    for o in existing.owner_refs:
        if o.get("kind") == KIND and o.get("uid") != owner.uid:
            return o.get("name")
    name = existing.labels.get(TOKEN_LABEL)
    if existing.labels.get(MANAGED_BY) == MANAGER and name and name != owner.name:
        return name
    return None


def plan_target(
    target: TargetSpec,
    owner: Owner,
    values: dict[str, bytes],
    existing: SecretView | None,
    remove_keys: tuple[str, ...] = (),
    published_before: bool = False,
    record: str | None = None,
    refusal: tuple[str, str] | None = None,
) -> SecretPlan:
    """Decides create/replace/none/refuse for writing `values` (our keys) into the target Secret.
    `record` (fingerprints and times only) goes into the PUBLISHED annotation: the Secret describes what
    it holds, so a status write lost to a crash is recovered from it (oauth_inputs.published_record)."""
    labels = {**target.labels, MANAGED_BY: MANAGER, TOKEN_LABEL: owner.name}
    annotations = dict(target.annotations)
    if record is not None:
        annotations[PUBLISHED] = record
    owner_refs = []
    if target.deletion_policy == "Delete" and target.creation_policy != "Merge":
        owner_refs = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]

    if existing is None:
        if target.creation_policy == "Merge":
            return SecretPlan(
                "refuse",
                reason="TargetSecretMissing",
                message=f"creationPolicy Merge writes into an existing Secret, and Secret {target.name} does not exist",
            )
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": target.name, "labels": labels, "annotations": {**annotations, CREATED_FOR: owner.uid},
                         "ownerReferences": owner_refs},
            "data": dict(values),
        }
        return SecretPlan("create", body, reason="Created")

    # A Secret we published before stays ours even if someone stripped its labels while editing it.
    if target.creation_policy == "Owner" and not owned_by(existing, owner) and not published_before:
        return SecretPlan(
            "refuse",
            reason="TargetSecretNotOwned",
            message=(
                f"Secret {target.name} exists and was not created by this HubSpotToken; "
                "set spec.target.creationPolicy to Adopt or Merge to use it"
            ),
        )

    if refusal is not None:  # tenancy: not ours, and its owner did not consent (or it is someone's input)
        return SecretPlan("refuse", reason=refusal[0], message=refusal[1])

    other = other_token(existing, owner)
    if other is not None and target.creation_policy != "Merge":
        return SecretPlan(
            "refuse",
            reason="TargetSecretOwnedByAnotherToken",
            message=(
                f"Secret {target.name} is the target of HubSpotToken {other}; two tokens cannot own one Secret "
                "(use creationPolicy Merge with distinct keys, or another target name)"
            ),
        )

    if target.creation_policy == "Merge":
        data = {k: v for k, v in existing.data.items() if k not in remove_keys}
        data.update(values)
        # Several tokens may merge their keys into one Secret: the first one's name stays on the label.
        new_labels = {**existing.labels, **target.labels, MANAGED_BY: MANAGER,
                      TOKEN_LABEL: existing.labels.get(TOKEN_LABEL) or owner.name}
    else:
        data = dict(values)
        new_labels = {**existing.labels, **labels}
    new_annotations = {**existing.annotations, **annotations}
    if data == existing.data and new_labels == existing.labels and new_annotations == existing.annotations:
        return SecretPlan("none", reason="UpToDate")
    meta: dict = {
        "name": target.name,
        "resourceVersion": existing.resource_version,
        "labels": new_labels,
        "annotations": new_annotations,
    }
    # deletionPolicy Delete garbage-collects only a Secret the operator created: never an adopted one.
    others = [o for o in existing.owner_refs if o["uid"] != owner.uid]
    meta["ownerReferences"] = others + (owner_refs if created_by_us(existing, owner) else [])
    body = {"apiVersion": "v1", "kind": "Secret", "type": existing.type, "metadata": meta, "data": data}
    return SecretPlan("replace", body, reason="Updated")
