"""Gather for an OAuth HubSpotToken: read its Secrets once into an immutable snapshot for the decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import tenancy
from .custody import rotation_note
from .durations import from_rfc3339, to_rfc3339
from .kube import SecretView
from .model import TokenSpec
from .policies import Observed
from .publish import PUBLISHED, ours
from .runtime import Runtime
from .status_model import TokenStatus

REFRESH_REQUEST_ANNOTATION = "hubspot-operator.dev/refresh-requested-at"


@dataclass(frozen=True)
class Inputs:
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    refresh_secret: SecretView | None = None
    target: SecretView | None = None
    missing: tuple[str, ...] = ()
    refused: str | None = None  # an input Secret has not consented to this token (tenancy.py)

    def __repr__(self) -> str:
        return f"Inputs(missing={self.missing}, refused={bool(self.refused)})"


@dataclass(frozen=True)
class Snapshot:
    """One gathered view: the decision input (`obs`) plus what the actions need to act on it."""

    body: dict
    obs: Observed
    inputs: Inputs
    held: str | None  # the published access token, when we can lay hands on it
    record: "PublishedRecord | None" = None  # what the target Secret says it holds

    @property
    def key(self) -> tuple[str, str]:
        md = self.body["metadata"]
        return md["namespace"], md["name"]

    def __repr__(self) -> str:
        return f"Snapshot({self.key}, {self.inputs!r})"


async def gather_inputs(rt: Runtime, namespace: str, spec: TokenSpec, token: str = "") -> Inputs:
    oauth = spec.oauth
    missing: list[str] = []
    cs_ref, rt_ref = oauth.client_secret_ref, oauth.refresh_token_secret_ref
    client_id = client_secret = refresh_token = None
    cs = await rt.kube.read_secret(namespace, cs_ref.name)
    rs = cs if rt_ref.name == cs_ref.name else await rt.kube.read_secret(namespace, rt_ref.name)
    target = await rt.kube.read_secret(namespace, spec.target.name)
    if rt.settings.tenancy == "consent":
        for secret in (cs, rs):  # no value is taken from a Secret that has not consented
            refusal = secret and tenancy.input_refusal("Secret", secret.name, secret.labels, secret.annotations, token)
            if refusal:
                return Inputs(target=target, refused=refusal.message)
    if cs is None:
        missing.append(f"Secret {cs_ref.name}")
    else:
        client_id, client_secret = cs.text(cs_ref.client_id_key), cs.text(cs_ref.client_secret_key)
        for key, val in ((cs_ref.client_id_key, client_id), (cs_ref.client_secret_key, client_secret)):
            if val is None:
                missing.append(f"key {key} in Secret {cs_ref.name}")
    if rs is None:
        if f"Secret {rt_ref.name}" not in missing:
            missing.append(f"Secret {rt_ref.name}")
    else:
        refresh_token = rs.text(rt_ref.key)
        if refresh_token is None:
            missing.append(f"key {rt_ref.key} in Secret {rt_ref.name}")
    return Inputs(client_id, client_secret, refresh_token, rs, target, tuple(missing))


def grant_fingerprint(rt: Runtime, spec: TokenSpec, client_id: str | None, refresh_token: str | None) -> str | None:
    if not client_id or not refresh_token:
        return None
    base = (spec.hubspot.base_url or rt.settings.hubspot_base_url).rstrip("/")
    return rt.fingerprints.of("\x00".join([base, spec.oauth.api_version, client_id, refresh_token]))


def target_values(spec: TokenSpec, token: str, expires_at: datetime | None, hub_id: int | None) -> dict[str, bytes]:
    keys = spec.target.keys
    values = {keys.token: token.encode()}
    if expires_at is not None:
        values[keys.expires_at] = to_rfc3339(expires_at).encode()
    if hub_id is not None:
        values[keys.hub_id] = str(hub_id).encode()
    return values


def our_keys(spec: TokenSpec) -> tuple[str, ...]:
    k = spec.target.keys
    return (k.token, k.expires_at, k.hub_id)


def held_token(rt: Runtime, st: TokenStatus, grant_fp: str | None, target: SecretView | None, spec: TokenSpec) -> str | None:
    """The access token currently published (per status.tokenFingerprint), if we can still lay hands on it."""
    want = st.token_fingerprint
    if not want:
        return None
    cached = rt.grants.latest(grant_fp)
    if cached and rt.fingerprints.of(cached.access_token) == want:
        return cached.access_token
    if target is not None:
        value = target.text(spec.target.keys.token)
        if value and rt.fingerprints.of(value) == want:
            return value
    return rt.held.get(want)


async def gather(rt: Runtime, body: dict, spec: TokenSpec, st: TokenStatus) -> Snapshot:
    md = body["metadata"]
    inp = await gather_inputs(rt, md["namespace"], spec, md["name"])
    gfp = grant_fingerprint(rt, spec, inp.client_id, inp.refresh_token)
    key_changed = bool(st.fingerprint_key_id) and st.fingerprint_key_id != rt.fingerprints.key_id
    held = None if key_changed else held_token(rt, st, gfp, inp.target, spec)
    note = rotation_note(inp.refresh_secret)
    record = None if key_changed else published_record(rt, spec, md.get("uid", ""), inp.target)
    newer = record is not None and record.token_fp != st.token_fingerprint and (
        st.last_refresh_time is None or record.issued_at > st.last_refresh_time)
    obs = Observed(
        spec=spec,
        status=st,
        now=rt.clock.now(),
        uid=md.get("uid", md["name"]),
        generation=md.get("generation"),
        refresh_request=(md.get("annotations") or {}).get(REFRESH_REQUEST_ANNOTATION),
        missing_inputs=inp.missing,
        consent_problem=inp.refused,
        target_version=inp.target.resource_version if inp.target else None,
        grant_fingerprint=gfp,
        target_exists=inp.target is not None,
        target_mac=rt.fingerprints.of_data(ours(our_keys(spec), inp.target)) if inp.target is not None else None,
        held_token=held is not None,
        custody_pending=rt.custody.pending(gfp) is not None,
        grant_moved_by_us=note is not None and note == (st.grant_fingerprint, gfp),
        key_changed=key_changed,
        status_behind_target=newer,
    )
    return Snapshot(body=body, obs=obs, inputs=inp, held=held, record=record)


@dataclass(frozen=True)
class PublishedRecord:
    """What the target Secret says it holds (annotation written with every publish; no secret in it)."""

    token_fp: str
    issued_at: datetime
    expires_at: datetime
    credential_revision: str
    restart_revision: str

    def fields(self, uid: str) -> str:
        return " ".join([uid, self.token_fp, to_rfc3339(self.issued_at), to_rfc3339(self.expires_at),
                         self.credential_revision, self.restart_revision])

    def encode(self, rt: Runtime, uid: str) -> str:
        """The record for HubSpotToken `uid`, sealed with a keyed MAC (no other token, and nobody without
        the key, can produce a record this token would believe)."""
        text = self.fields(uid)
        return f"{text} {rt.fingerprints.of(text)}"


def published_record(rt: Runtime, spec: TokenSpec, uid: str, target: SecretView | None) -> PublishedRecord | None:
    """The target's record, if it is genuine and ours: sealed with our key, written for this HubSpotToken,
    and naming the token the Secret holds now."""
    if target is None:
        return None
    parts = (target.annotations.get(PUBLISHED) or "").split()
    token = target.text(spec.target.keys.token)
    if len(parts) != 7 or not token or parts[0] != uid or rt.fingerprints.of(token) != parts[1]:
        return None
    if rt.fingerprints.of(" ".join(parts[:6])) != parts[6]:
        return None
    try:
        return PublishedRecord(parts[1], from_rfc3339(parts[2]), from_rfc3339(parts[3]), parts[4], parts[5])
    except ValueError:
        return None
