"""Builders for the objects cluster tests create, and a registry of every secret value they used, so a
final test can prove none of them leaked into logs, Events, status or annotations."""

from __future__ import annotations

import base64
import json

from kubernetes import client

from hubspot_token_operator import GROUP, PLURAL, VERSION
from hubspot_token_operator.tenancy import CONSENT_LABEL

SEEN_SECRETS: set[str] = set()
OBSERVED: list[str] = []  # Events and HubSpotTokens of each test namespace, captured before deletion
SECRET_KEYS = {"access_token", "previous_access_token", "refresh_token", "token", "client_secret"}


def remember(*values: str) -> None:
    SEEN_SECRETS.update(v for v in values if v)


def put_secret(core: client.CoreV1Api, ns: str, name: str, data: dict[str, str], consent: bool = True) -> None:
    """Creates (or replaces) a Secret as its owner would; by default labelled as consenting to be used by the
    HubSpotTokens of its namespace (see operator tenancy.py)."""
    remember(*(v for k, v in data.items() if k in SECRET_KEYS))
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels={CONSENT_LABEL: "true"} if consent else None),
        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    )
    try:
        core.create_namespaced_secret(ns, body)
    except client.ApiException as e:
        if e.status != 409:
            raise
        core.replace_namespaced_secret(name, ns, body)


def read_secret(core: client.CoreV1Api, ns: str, name: str) -> dict[str, str] | None:
    try:
        s = core.read_namespaced_secret(name, ns)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise
    out = {k: base64.b64decode(v).decode() for k, v in (s.data or {}).items()}
    remember(*(v for k, v in out.items() if k in SECRET_KEYS))
    return out


def private_app_in_source(simulator, core: client.CoreV1Api, ns: str, hub: int, scopes: list[str],
                          secret: str = "pa-source") -> dict:
    """A private app in the simulator with its token in the source Secret `secret`."""
    app = simulator.private_app(hub, scopes)
    remember(app["token"])
    put_secret(core, ns, secret, {"token": app["token"]})
    return app


def oauth_token(name: str, target: str = "hubspot-access", **spec_overrides) -> dict:
    spec = {
        "type": "OAuth",
        "oauth": {"clientSecretRef": {"name": "hubspot-app"}, "refreshTokenSecretRef": {"name": f"{name}-install"}},
        "target": {"name": target},
        "refresh": {"minRemainingValidity": "3s"},
    }
    spec.update(spec_overrides)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HubSpotToken", "metadata": {"name": name}, "spec": spec}


def private_app_token(name: str, target: str = "hubspot-private", **spec_overrides) -> dict:
    spec = {
        "type": "PrivateApp",
        "privateApp": {"tokenSecretRef": {"name": f"{name}-source"}},
        "target": {"name": target},
    }
    spec.update(spec_overrides)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HubSpotToken", "metadata": {"name": name}, "spec": spec}


def create(custom: client.CustomObjectsApi, ns: str, body: dict) -> dict:
    return custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


def get(custom: client.CustomObjectsApi, ns: str, name: str) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)


def patch(custom: client.CustomObjectsApi, ns: str, name: str, body: dict) -> dict:
    return custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, body)


def condition(obj: dict, ctype: str) -> dict:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return c
    return {}


def events(core: client.CoreV1Api, ns: str, name: str | None = None) -> list[client.CoreV1Event]:
    evs = core.list_namespaced_event(ns).items
    return [e for e in evs if name is None or e.involved_object.name == name]


def reasons(core: client.CoreV1Api, ns: str, name: str) -> list[str]:
    return [e.reason for e in events(core, ns, name)]


def dump(obj) -> str:
    return json.dumps(obj, default=str)
