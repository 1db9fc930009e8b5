"""``kubectl hubspot inspect secret NAME``: what a Secret holds, by key, without ever showing a value.

Per key: its name, its role for the owning HubSpotToken (from spec.target.keys), its size in bytes and a
fingerprint. The fingerprint is a plain SHA-256 of the value, truncated to 12 hex digits and labelled
``sha256:``. It is *not* the operator's keyed HMAC (fingerprint.py, status.tokenFingerprint): that needs the
operator's fingerprint key, which lives in an operator-owned Secret that users cannot (and should not) read.
A short unkeyed hash cannot be reversed for a random token, but it lets someone who already holds a candidate
value confirm it — which is the point (is this the token I think it is?).

Also: the expiry (the ``expires_at`` key, else the operator's hubspot-operator.dev/published annotation) and
which HubSpotToken owns the Secret (ownerReferences, the hubspot-operator.dev/created-for annotation or the
hubspot-operator.dev/token label the operator writes: publish.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime

from .. import KIND
from .api import ApiError, NotFound, PluginError
from .common import EXIT_OK, Ctx, parse_time, when
from .output import document, table

# The operator's marks on a target Secret (publish.py; a unit test keeps them equal).
MANAGED_BY = "app.kubernetes.io/managed-by"  # Secrets written by versions before OUR_MANAGED_BY
OUR_MANAGED_BY = "hubspot-operator.dev/managed-by"  # the operator's own label (publish.py), on every target
MANAGER = "hubspot-token-operator"
TOKEN_LABEL = "hubspot-operator.dev/token"
PUBLISHED = "hubspot-operator.dev/published"
CREATED_FOR = "hubspot-operator.dev/created-for"
# model.TargetKeys defaults, used when the owning HubSpotToken cannot be read.
DEFAULT_KEYS = {"token": "access_token", "previousToken": "previous_access_token", "expiresAt": "expires_at",
                "hubId": "hub_id"}
ROLES = {"token": "token", "previousToken": "previous token", "expiresAt": "expiry", "hubId": "hub id"}
FINGERPRINT_HEX = 12
NOT_SECRET_ROLES = {"expiry", "hub id"}


class SecretNotFound(PluginError):
    reason = "NotFound"


def run(ctx: Ctx, args) -> int:
    name = args.name
    secret = ctx.api.read_secret(ctx.namespace, name)
    if secret is None:
        raise SecretNotFound(f"Secret {name!r} not found in namespace {ctx.namespace!r}; the operator writes the "
                             f"one named in spec.target.name (see `kubectl hubspot status -n {ctx.namespace}`)")
    values = decode(secret.get("data") or {})
    owner = owner_of(secret)
    token, token_note = None, None
    if owner.get("hubspotToken"):
        try:
            token = ctx.api.get_token(ctx.namespace, owner["hubspotToken"])
        except NotFound:
            token_note = f"hubspottoken {owner['hubspotToken']} no longer exists"
        except ApiError as e:
            token_note = f"cannot read hubspottoken {owner['hubspotToken']}: {e}"
    owner = verify_owner(owner, token, name, token_note)
    roles = key_roles(token)
    # Defence in depth: every secret-looking value is registered with the redacting output.
    for key, raw in values.items():
        if roles.get(key) not in NOT_SECRET_ROLES and len(raw) >= 8:
            text = raw.decode("utf-8", "replace")
            ctx.out.add_secret(text, base64.b64encode(raw).decode())
    doc = inspection(secret, values, owner, roles, token)
    if ctx.out.machine:
        ctx.out.emit(doc)
        return EXIT_OK
    for line in render(doc, ctx.now(), ctx.out.color):
        ctx.out.line(line)
    return EXIT_OK


def decode(data: dict) -> dict[str, bytes]:
    out = {}
    for k, v in data.items():
        try:
            out[k] = base64.b64decode(v or "", validate=True)
        except (binascii.Error, ValueError):
            out[k] = (v or "").encode()
    return out


def fingerprint(value: bytes) -> str:
    return "sha256:" + hashlib.sha256(value).hexdigest()[:FINGERPRINT_HEX]


def owner_of(secret: dict) -> dict:
    """Which HubSpotToken the operator wrote this Secret for, and how we know (pure)."""
    md = secret.get("metadata") or {}
    labels, annotations = md.get("labels") or {}, md.get("annotations") or {}
    for ref in md.get("ownerReferences") or []:
        if ref.get("kind") == KIND:
            return {"hubspotToken": ref.get("name"), "uid": ref.get("uid"), "via": "ownerReference"}
    managed = labels.get(OUR_MANAGED_BY) == MANAGER or labels.get(MANAGED_BY) == MANAGER
    if annotations.get(CREATED_FOR):
        return {"hubspotToken": labels.get(TOKEN_LABEL) if managed else None, "uid": annotations[CREATED_FOR],
                "via": f"annotation {CREATED_FOR}"}
    if managed and labels.get(TOKEN_LABEL):
        return {"hubspotToken": labels[TOKEN_LABEL], "uid": None, "via": f"label {TOKEN_LABEL}"}
    return {"hubspotToken": None, "uid": None, "via": None}


def verify_owner(owner: dict, token: dict | None, secret_name: str, note: str | None = None) -> dict:
    """Adds ``verified`` (the HubSpotToken exists, has that uid and targets this Secret) and a ``note``."""
    owner = {**owner, "verified": None, "note": note}
    if token is None:
        return owner
    md, spec = token.get("metadata") or {}, token.get("spec") or {}
    problems = []
    if owner.get("uid") and md.get("uid") and owner["uid"] != md["uid"]:
        problems.append(f"written for an earlier hubspottoken {owner['hubspotToken']} (uid {owner['uid']}); "
                        f"the current one has uid {md['uid']}")
    target = (spec.get("target") or {}).get("name")
    if target and target != secret_name:
        problems.append(f"hubspottoken {owner['hubspotToken']} now targets Secret {target}")
    owner["verified"] = not problems
    owner["note"] = "; ".join(problems) or None
    return owner


def key_roles(token: dict | None) -> dict[str, str]:
    keys = dict(DEFAULT_KEYS)
    if token is not None:
        keys.update({k: v for k, v in (((token.get("spec") or {}).get("target") or {}).get("keys") or {}).items()
                     if k in keys and v})
    return {name: ROLES[field] for field, name in keys.items()}


def published_record(annotations: dict) -> dict | None:
    """The operator's hubspot-operator.dev/published annotation: ``uid tokenFingerprint issuedAt expiresAt
    credentialRevision restartRevision seal`` (fingerprints and times only; oauth_inputs.PublishedRecord)."""
    parts = (annotations.get(PUBLISHED) or "").split()
    if len(parts) != 7:
        return None
    return {"uid": parts[0], "tokenFingerprint": parts[1], "issuedAt": parts[2], "expiresAt": parts[3],
            "credentialRevision": parts[4], "restartRevision": parts[5]}


def expiry(values: dict[str, bytes], roles: dict[str, str], record: dict | None) -> tuple[str | None, str | None]:
    """(RFC 3339 expiry, where it came from)."""
    for key, role in roles.items():
        if role == "expiry" and key in values:
            dt = parse_time(values[key].decode("utf-8", "replace").strip())
            if dt is not None:
                return dt.strftime("%Y-%m-%dT%H:%M:%SZ"), f"key {key}"
    if record and parse_time(record["expiresAt"]):
        return record["expiresAt"], f"annotation {PUBLISHED}"
    return None, None


def inspection(secret: dict, values: dict[str, bytes], owner: dict, roles: dict[str, str], token: dict | None) -> dict:
    """The machine-readable result (documented). Holds sizes and fingerprints, never a value."""
    md = secret.get("metadata") or {}
    labels, annotations = md.get("labels") or {}, md.get("annotations") or {}
    record = published_record(annotations)
    expires_at, expires_from = expiry(values, roles, record)
    status_fp = ((token or {}).get("status") or {}).get("tokenFingerprint")
    if record is not None:
        record["matchesStatus"] = (record["tokenFingerprint"] == status_fp) if status_fp else None
    return document(
        "SecretInspection",
        namespace=md.get("namespace"),
        name=md.get("name"),
        type=secret.get("type"),
        immutable=bool(secret.get("immutable")),
        managedBy=labels.get(OUR_MANAGED_BY) or labels.get(MANAGED_BY),
        owner=owner,
        expiresAt=expires_at,
        expiresFrom=expires_from,
        publishedRecord=record,
        fingerprintAlgorithm=f"sha256, first {FINGERPRINT_HEX} hex digits (unkeyed; not the operator's HMAC)",
        keys=[{"key": k, "role": roles.get(k), "size": len(v), "fingerprint": fingerprint(v)}
              for k, v in sorted(values.items())],
    )


def render(doc: dict, now: datetime, color: bool = False) -> list[str]:
    owner = doc["owner"]
    if owner.get("hubspotToken"):
        who = f"hubspottoken/{owner['hubspotToken']} (from {owner['via']}"
        who += {True: ", verified)", False: ", NOT verified)", None: ")"}[owner.get("verified")]
    elif owner.get("uid"):
        who = f"a HubSpotToken with uid {owner['uid']} (from {owner['via']})"
    else:
        who = "none: not written by the hubspot-token-operator (no owner reference, label or annotation of it)"
    lines = [
        f"Secret:      {doc['namespace']}/{doc['name']}",
        f"Type:        {doc['type'] or '-'}{' (immutable)' if doc['immutable'] else ''}",
        f"Owner:       {who}",
    ]
    if owner.get("note"):
        lines.append(f"Note:        {owner['note']}")
    if doc.get("managedBy"):
        lines.append(f"Managed by:  {doc['managedBy']}")
    exp = f"{when(doc['expiresAt'], now)} (from {doc['expiresFrom']})" if doc.get("expiresAt") else "-"
    lines.append(f"Expires:     {exp}")
    rec = doc.get("publishedRecord")
    if rec:
        match = {True: "matches status.tokenFingerprint", False: "differs from status.tokenFingerprint",
                 None: "status not compared"}[rec.get("matchesStatus")]
        lines.append(f"Published:   token fingerprint {rec['tokenFingerprint']} (operator's keyed HMAC; {match}), "
                     f"issued {rec['issuedAt']}, revision {rec['credentialRevision']}")
    if not doc["keys"]:
        lines.append("Keys:        none")
        return lines
    lines.append(f"Keys ({len(doc['keys'])}; values never shown, fingerprint = {doc['fingerprintAlgorithm']}):")
    lines += table(["KEY", "ROLE", "SIZE", "FINGERPRINT"],
                   [[k["key"], k["role"], f"{k['size']} B", k["fingerprint"]] for k in doc["keys"]],
                   color=color, indent="  ")
    return lines
