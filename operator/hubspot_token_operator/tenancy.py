"""Tenant isolation: a HubSpotToken can only make the operator touch what its author may touch.

A HubSpotToken is a tenant's request, and the operator holds more rights than the tenant (it reads and
writes Secrets, patches workloads). So every object a token names is checked here before the operator
reads a value from it, writes it, deletes it or restarts it. The rules, pure functions of the object:

- **Consent on the object.** A Secret or workload the operator did not create for this token is used only
  when its owner consented: the label `hubspot-operator.dev/consent: "true"` (any HubSpotToken in its
  namespace) and, optionally, the annotation `hubspot-operator.dev/allowed-tokens: "a,b"` narrowing it to
  named tokens. Whoever can label the Secret can read it anyway, so consent cannot be forged by someone
  who could not touch the object: a user with HubSpotToken rights only cannot add it.
- **The target Secret this token created** (our owner reference with its uid, or our published record)
  needs no consent: it is the token's own output.
- **No take-over**: Adopt/Merge never write a Secret that another HubSpotToken reads as an input, or that
  another controller owns; deletionPolicy Delete only ever garbage-collects a Secret the operator created.
- **HubSpot endpoints are the operator's choice**: `spec.hubspot.baseURL` must be on the operator's
  allow-list (HubSpot's public API hosts by default), or the token is refused and nothing is sent.

Why consent on the object and not an admission webhook with a SubjectAccessReview: it is checked at use
time, every time (a Secret created or relabelled after the token, or rights revoked later, are handled); it
needs no webhook serving certificates and does not put the operator in the API server's write path; it
works unchanged with kubectl apply, Helm and GitOps controllers applying as their own ServiceAccount (a
SAR would check the GitOps controller's broad rights, not the team's); and consent is revocable by
removing a label. See docs/multi-tenancy.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping
from urllib.parse import urlsplit

CONSENT_LABEL = "hubspot-operator.dev/consent"
ALLOWED_TOKENS = "hubspot-operator.dev/allowed-tokens"
DEFAULT_HUBSPOT_URLS = ("https://api.hubapi.com", "https://api-eu1.hubapi.com")


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def consents(labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None, token: str) -> bool:
    """Whether an object's owner allowed HubSpotToken `token` (same namespace) to use it."""
    if (labels or {}).get(CONSENT_LABEL) != "true":
        return False
    allowed = (annotations or {}).get(ALLOWED_TOKENS)
    if allowed is None or allowed.strip() == "*":
        return True
    return token in {n.strip() for n in allowed.split(",")}


def consent_hint(kind: str, name: str, token: str) -> str:
    return (f"{kind} {name} has not consented to HubSpotToken {token}: its owner must label it "
            f"{CONSENT_LABEL}=true (optionally annotate {ALLOWED_TOKENS}={token})")


def input_refusal(kind: str, name: str, labels, annotations, token: str) -> Refusal | None:
    """Secrets a token reads (client secret, refresh token, private-app source) need consent."""
    if consents(labels, annotations, token):
        return None
    return Refusal("ConsentMissing", consent_hint(kind, name, token))


def target_refusal(
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    owner_refs: Iterable[Mapping],
    token: str,
    token_uid: str,
    ours: bool,
    inputs_of_others: Iterable[str],
    need_consent: bool = True,
) -> Refusal | None:
    """An existing target Secret that this token did not create may be written only with consent, never
    when it is another token's input or another controller's object."""
    if ours:
        return None
    for o in owner_refs:
        if o.get("controller") and o.get("uid") != token_uid:
            return Refusal("TargetSecretOwnedElsewhere",
                           f"Secret {name} is controlled by {o.get('kind')} {o.get('name')}; choose another target name")
    if name in set(inputs_of_others):
        return Refusal("TargetSecretIsAnInput",
                       f"Secret {name} is an input of another HubSpotToken (a refresh token or client secret); "
                       "writing it would destroy that token's grant")
    if need_consent and not consents(labels, annotations, token):
        return Refusal("ConsentMissing", consent_hint("Secret", name, token))
    return None


def workload_refusal(kind: str, name: str, labels, annotations, token: str) -> Refusal | None:
    if consents(labels, annotations, token):
        return None
    return Refusal("ConsentMissing", consent_hint(kind, name, token))


def normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{host}{port}{path}"


def endpoint_refusal(base_url: str | None, allowed: Iterable[str]) -> Refusal | None:
    """None when the token uses the operator's default endpoint or one on the allow-list."""
    if not base_url:
        return None
    if normalise_url(base_url) in {normalise_url(a) for a in allowed}:
        return None
    return Refusal("EndpointNotAllowed",
                   f"spec.hubspot.baseURL {normalise_url(base_url)} is not on the operator's allow-list of HubSpot "
                   "endpoints; nothing was sent there (ask the operator's administrator, or remove the field)")


def input_secret_names(spec: Mapping) -> set[str]:
    """Secrets a HubSpotToken spec (raw dict) reads as inputs: client secret, refresh token, source token, and
    the audit-log reader's token."""
    oauth, pa = spec.get("oauth") or {}, spec.get("privateApp") or {}
    names = {(oauth.get("clientSecretRef") or {}).get("name"), (oauth.get("refreshTokenSecretRef") or {}).get("name"),
             (pa.get("tokenSecretRef") or {}).get("name"), ((pa.get("auditLog") or {}).get("tokenSecretRef") or {}).get("name")}
    return {n for n in names if n}


def inputs_of_other_tokens(tokens: Mapping, namespace: str, me: str) -> set[str]:
    out: set[str] = set()
    for (ns, name), body in list(tokens.items()):
        if ns == namespace and name != me:
            out |= input_secret_names(body.get("spec") or {})
    return out
