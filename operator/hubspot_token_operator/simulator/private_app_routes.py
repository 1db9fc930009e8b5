"""``POST /oauth/v2/private-apps/get/access-token-info``: undocumented but widely used (facts §4.1).

Takes JSON ``{"tokenKey": "pat-..."}`` and answers ``{hubId, userId, appId, scopes}``. A third party
reports that eu1 tokens also need the same token as a Bearer header; the simulator enforces that by
default (``eu1_token_info_requires_bearer``) so a client that always sends it is proven safe.
"""

from __future__ import annotations

import json

from aiohttp import web

from . import bearer, errors, private_apps
from .bearer import Rejection
from .context import sim


async def access_token_info(request: web.Request) -> web.Response:
    state = sim(request).state
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    token = payload.get("tokenKey") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        return errors.validation_error("tokenKey is required", context={"tokenKey": ["tokenKey is required"]})
    with state.lock:
        found = private_apps.lookup(state, token)
        if found is None or not private_apps.is_live(state, *found):
            return errors.unauthenticated(_why_not_live(state, token))
        _record, app = found
        if app.hublet == "eu1" and state.config.eu1_token_info_requires_bearer:
            if request.headers.get("Authorization", "") != f"Bearer {token}":
                return errors.unauthenticated(Rejection("INVALID_AUTHENTICATION", bearer.NOT_FOUND_MESSAGE))
        body = {"hubId": app.hub_id, "userId": app.user_id, "appId": app.app_id, "scopes": list(app.scopes)}
    return errors.json_response(body)


def _why_not_live(state, token: str) -> Rejection:
    """The words a Bearer call with this token would get (expired vs invalid), for consistency."""
    verdict = bearer.authenticate(state, f"Bearer {token}")
    return verdict if isinstance(verdict, Rejection) else Rejection("INVALID_AUTHENTICATION", bearer.INVALID_MESSAGE)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/oauth/v2/private-apps/get/access-token-info", access_token_info)
