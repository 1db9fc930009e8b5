"""What to write into the target Secret, and whether we may write it at all. Pure functions.

creationPolicy:
- Owner: create the Secret; refuse to touch one the operator did not create for this HubSpotToken.
- Adopt: take over an existing Secret (its data is replaced by ours; labels are added).
- Merge: write only our keys into an existing Secret, keep everything else; never own it.
deletionPolicy Delete adds an owner reference so Kubernetes garbage-collects the Secret with the token.

Labels: the operator marks every target Secret with its own label OUR_MANAGED_BY (and TOKEN_LABEL). The
standard `app.kubernetes.io/managed-by` belongs to whoever manages the Secret (often Helm on a Secret we
adopt or merge into): the operator sets it only on a Secret it creates and never changes it on an existing
one. Secrets written by versions before OUR_MANAGED_BY carry only `app.kubernetes.io/managed-by:
hubspot-token-operator`; both marks are read (is_marked_ours), only ours is written on existing Secrets.

Reloader: see reloader_annotations (and docs/interop.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Mapping

from . import GROUP, KIND, VERSION
from .kube import SecretView
from .model import TargetSpec

MANAGED_BY = "app.kubernetes.io/managed-by"  # the standard label: written only on Secrets the operator creates
OUR_MANAGED_BY = "hubspot-operator.dev/managed-by"  # the operator's own mark, written on every target Secret
MANAGER = "hubspot-token-operator"
RELOADER_IGNORE = "reloader.stakater.com/ignore"  # stakater Reloader skips Secrets annotated "true"
TOKEN_LABEL = "hubspot-operator.dev/token"
PUBLISHED = "hubspot-operator.dev/published"
CREATED_FOR = "hubspot-operator.dev/created-for"  # uid of the HubSpotToken the operator created the Secret for
# The operator's own annotations: what a Secret says about who created it and what was published decides
# ownership, so spec.target.annotations may not set them (the CRD refuses them; plan_target ignores them).
OPERATOR_ANNOTATIONS = "hubspot-operator.dev/"


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


def is_marked_ours(labels: Mapping[str, str]) -> bool:
    """The operator's label, or (Secrets written by earlier versions) the standard managed-by label."""
    return labels.get(OUR_MANAGED_BY) == MANAGER or labels.get(MANAGED_BY) == MANAGER


def ownership_labels(existing_labels: Mapping[str, str] | None, token: str) -> dict[str, str]:
    """The labels the operator sets on a target Secret. On a new Secret (existing_labels None) both
    managed-by labels; on an existing one only ours, so another manager's `app.kubernetes.io/managed-by`
    (e.g. Helm's) is left exactly as it is (and a missing one stays missing)."""
    labels = {OUR_MANAGED_BY: MANAGER, TOKEN_LABEL: token}
    if existing_labels is None:
        labels[MANAGED_BY] = MANAGER
    return labels


def reloader_annotations(token_type: str, restart_on: str, creation_policy: str) -> dict[str, str | None]:
    """What the operator sets of stakater Reloader's annotations on the target Secret: {key: value} to
    set, {key: None} to remove if present, {} to leave alone.

    - OAuth with restartOn Rotation or Never: the access token changes on every routine refresh (HubSpot's
      live ~30 minutes), and the operator restarts the workloads itself when it matters (Rotation) or was
      told not to (Never); Reloader's `auto` would restart them on every refresh. So: ignore "true".
    - OAuth with restartOn EveryRefresh: a restart on every refresh is what was asked; Reloader may do it
      too. The annotation is removed (it may be left from an earlier restartOn).
    - PrivateApp: the Secret changes only when the credential does (a rotation, the end of the overlap),
      which is exactly when Reloader should act; no annotation (removed if left from earlier).
    - creationPolicy Merge: the Secret is someone else's and holds their keys too; ignoring it would stop
      Reloader for their changes as well. Left alone: set spec.target.annotations to decide.
    An annotation named in spec.target.annotations always wins (plan_target applies those last)."""
    if creation_policy == "Merge":
        return {}
    if token_type == "OAuth" and restart_on in ("Rotation", "Never"):
        return {RELOADER_IGNORE: "true"}
    return {RELOADER_IGNORE: None}


def owned_by(existing: SecretView, owner: Owner) -> bool:
    """Ours: our owner reference, or our created-for mark; the name labels count only on Secrets from before
    created-for existed (a Secret created for another token of the same name is not ours)."""
    created_for = existing.annotations.get(CREATED_FOR)
    if owner.uid in existing.owner_uids or created_for == owner.uid:
        return True
    return created_for is None and existing.labels.get(TOKEN_LABEL) == owner.name and is_marked_ours(existing.labels)


def created_by_us(existing: SecretView, owner: Owner) -> bool:
    """The operator created this Secret for this HubSpotToken (only then may deletionPolicy Delete own it)."""
    return owner.uid in existing.owner_uids or existing.annotations.get(CREATED_FOR) == owner.uid


def other_token(existing: SecretView, owner: Owner) -> str | None:
    """The name of another HubSpotToken that owns (created or adopted) this Secret, if any."""
    for o in existing.owner_refs:
        if o.get("kind") == KIND and o.get("uid") != owner.uid:
            return o.get("name")
    name = existing.labels.get(TOKEN_LABEL)
    if is_marked_ours(existing.labels) and name and name != owner.name:
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
    reloader: Mapping[str, str | None] | None = None,
) -> SecretPlan:
    """Decides create/replace/none/refuse for writing `values` (our keys) into the target Secret.
    `record` (fingerprints and times only) goes into the PUBLISHED annotation: the Secret describes what
    it holds, so a status write lost to a crash is recovered from it (oauth_inputs.published_record).
    `reloader` is reloader_annotations' answer (None: leave Reloader's annotations alone)."""
    annotations: dict[str, str] = {}
    drop: set[str] = set()
    for k, v in (reloader or {}).items():
        if v is None:
            drop.add(k)
        else:
            annotations[k] = v
    asked = {k: v for k, v in target.annotations.items() if not k.startswith(OPERATOR_ANNOTATIONS)}
    drop -= set(asked)
    annotations.update(asked)
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
        labels = {**target.labels, **ownership_labels(None, owner.name)}
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
        new_labels = {**existing.labels, **target.labels,
                      **ownership_labels(existing.labels, existing.labels.get(TOKEN_LABEL) or owner.name)}
    else:
        data = dict(values)
        new_labels = {**existing.labels, **target.labels, **ownership_labels(existing.labels, owner.name)}
    new_annotations = {k: v for k, v in {**existing.annotations, **annotations}.items() if k not in drop}
    if data == existing.data and new_labels == existing.labels and new_annotations == existing.annotations:
        return SecretPlan("none", reason="UpToDate")
    meta: dict = {
        "name": target.name,
        "resourceVersion": existing.resource_version,
        "labels": new_labels,
        "annotations": new_annotations,
        "finalizers": existing.finalizers,  # a replace without them would drop them (others' and ours)
    }
    # deletionPolicy Delete garbage-collects only a Secret the operator created: never an adopted one.
    others = [o for o in existing.owner_refs if o["uid"] != owner.uid]
    meta["ownerReferences"] = others + (owner_refs if created_by_us(existing, owner) else [])
    body = {"apiVersion": "v1", "kind": "Secret", "type": existing.type, "metadata": meta, "data": data}
    return SecretPlan("replace", body, reason="Updated")
