"""Credential formats that look like HubSpot's.

The operator (and anyone eyeballing a demo) should see tokens shaped like production ones: opaque access
tokens under 300 characters, ``na1-xxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` refresh tokens, ``pat-<hublet>-<uuid>``
private-app tokens, and UUID client ids, secrets and auth codes.
"""

from __future__ import annotations

import secrets
import uuid


def access_token() -> str:
    # HubSpot's documented example starts with "CJ" and is url-safe base64; length stays well under 300.
    return "CJ" + secrets.token_urlsafe(96)


def refresh_token(hublet: str) -> str:
    h = uuid.uuid4().hex
    return f"{hublet}-{h[0:4]}-{h[4:8]}-{h[8:12]}-{h[12:16]}-{h[16:28]}"


def private_app_token(hublet: str) -> str:
    return f"pat-{hublet}-{uuid.uuid4()}"


def client_id() -> str:
    return str(uuid.uuid4())


def client_secret() -> str:
    return str(uuid.uuid4())


def auth_code() -> str:
    return str(uuid.uuid4())


def correlation_id() -> str:
    return str(uuid.uuid4())


def hublet_of_token(token: str) -> str | None:
    """Region prefix of a refresh or private-app token, if it has one."""
    parts = token.split("-")
    if len(parts) > 2 and parts[0] == "pat":
        return parts[1]
    if len(parts) > 1 and parts[0] in {"na1", "na2", "na3", "eu1", "ap1"}:
        return parts[0]
    return None
