"""OAuth endpoints of all three generations: token, introspect/revoke (v3, 2026-03) and the v1 GETs/DELETE.

The generations share one rulebook (``oauth_grants``); they differ only at the edge: v1 still accepts
``client_secret``/``refresh_token`` in the query string, v3 and 2026-03 insist on the form body (facts §1.2),
and only v1 has the token-in-the-path metadata calls.
"""

from __future__ import annotations

from typing import Mapping

from aiohttp import web

from . import bodies, errors, oauth_grants
from .context import sim
from .oauth_grants import OAuthFailure
from .ratelimit import TEN_SECONDLY

FORM = "application/x-www-form-urlencoded"
CURRENT_GENERATIONS = ("v3", "2026-03")
_BODY_ONLY = {"client_id", "client_secret", "refresh_token", "code", "code_verifier", "token", "client_assertion"}
_NO_STORE = {"Cache-Control": "no-store"}


async def read_form(request: web.Request, generation: str, token_endpoint: bool = False) -> dict[str, str]:
    if request.content_type != FORM:
        # HubSpot answers a JSON token request with BAD_GRANT_TYPE: it never parsed a grant_type.
        if token_endpoint:
            raise OAuthFailure(*oauth_grants.BAD_GRANT_TYPE)
        raise oauth_grants.bad_request("request body must be application/x-www-form-urlencoded")
    form = {k: str(v) for k, v in (await request.post()).items()}
    if generation == "v1":
        return {**dict(request.query), **form}
    if _BODY_ONLY.intersection(request.query):
        raise oauth_grants.bad_request("parameters must be sent in the request body, not the query string")
    return form


def token_endpoint_limit(request: web.Request, client_id: str | None) -> web.Response | dict[str, str]:
    """Optional (undocumented by HubSpot) budget on the token endpoints, per client_id."""
    ctx = sim(request)
    limit = ctx.state.config.rate_limits.token_endpoint_ten_secondly_max
    if limit is None:
        return {}
    decision = ctx.limiter.check(ctx.state.now(), f"token:{client_id}", limit)
    if not decision.allowed:
        return errors.rate_limited(TEN_SECONDLY, decision.headers)
    return decision.headers


def token_handler(generation: str):
    async def handle(request: web.Request) -> web.Response:
        state = sim(request).state
        try:
            form = await read_form(request, generation, token_endpoint=True)
            limited = token_endpoint_limit(request, form.get("client_id"))
            if isinstance(limited, web.Response):
                return limited
            issued = oauth_grants.grant(state, form)
        except OAuthFailure as failure:
            return errors.oauth_error(failure)
        if issued.reused:
            sim(request).stats.record_reuse()
        with state.lock:
            body = bodies.token_response(issued.access, issued.refresh_token, state)
        return errors.json_response(body, headers={**limited, **_NO_STORE})

    return handle


def _client_form(form: Mapping[str, str], request: web.Request):
    state = sim(request).state
    app = oauth_grants.authenticate_client(state, form.get("client_id"), form.get("client_secret"))
    token = form.get("token")
    if not token:
        raise oauth_grants.bad_request("token is required")
    return state, app, token, form.get("token_type_hint")


def _invalid_token() -> web.Response:
    return errors.validation_error("Token is invalid", context={"token": ["Token is invalid"]}, sub_category="OAUTH")


async def _client_request(request: web.Request, generation: str):
    """Form, per-client rate limit and client authentication shared by introspect and revoke: either
    (state, app, token, hint, rate-limit headers) or the error response to send."""
    try:
        form = await read_form(request, generation)
        limited = token_endpoint_limit(request, form.get("client_id"))
        if isinstance(limited, web.Response):
            return limited
        state, app, token, hint = _client_form(form, request)
    except OAuthFailure as failure:
        return errors.oauth_error(failure)
    return state, app, token, hint, limited


def introspect_handler(generation: str):
    async def handle(request: web.Request) -> web.Response:
        parsed = await _client_request(request, generation)
        if isinstance(parsed, web.Response):
            return parsed
        state, app, token, hint, limited = parsed
        with state.lock:
            body = _introspection_body(state, app.client_id, token, hint)
        if body is None:
            return _invalid_token()
        return errors.json_response(body, headers=limited)

    return handle


def _introspection_body(state, client_id: str, token: str, hint: str | None) -> dict | None:
    lookups = [_introspect_access, _introspect_refresh]
    if hint == "refresh_token":
        lookups.reverse()
    for lookup in lookups:
        body = lookup(state, client_id, token)
        if body is not None:
            return body
    return None


def _introspect_access(state, client_id: str, token: str) -> dict | None:
    record = state.access_tokens.get(token)
    if record is None or record.client_id != client_id:
        return None
    active = oauth_grants.live_access_token(state, token) is not None
    return bodies.introspect_access(record, state, active)


def _introspect_refresh(state, client_id: str, token: str) -> dict | None:
    record = state.refresh_tokens.get(token)
    if record is None or record.client_id != client_id:
        return None
    install = state.installs[record.install_id]
    return bodies.introspect_refresh(record, install, record.active and install.active)


def revoke_handler(generation: str):
    """RFC 7009 semantics: 200 with an empty body whether or not the token was known."""

    async def handle(request: web.Request) -> web.Response:
        parsed = await _client_request(request, generation)
        if isinstance(parsed, web.Response):
            return parsed
        state, app, token, _hint, limited = parsed
        with state.lock:
            refresh = state.refresh_tokens.get(token)
            access = state.access_tokens.get(token)
            if refresh is not None and refresh.client_id == app.client_id:
                oauth_grants.revoke_refresh_token(state, token)
            elif access is not None and access.client_id == app.client_id:
                oauth_grants.revoke_access_token(state, token)
        return web.Response(status=200, headers=limited)

    return handle


async def v1_access_token_info(request: web.Request) -> web.Response:
    state = sim(request).state
    with state.lock:
        record = oauth_grants.live_access_token(state, request.match_info["token"])
        if record is None:
            return errors.not_found("access token not found, expired or revoked")
        return errors.json_response(bodies.v1_access_token_info(record, state))


async def v1_refresh_token_info(request: web.Request) -> web.Response:
    state = sim(request).state
    with state.lock:
        found = oauth_grants.live_refresh_token(state, request.match_info["token"])
        if found is None:
            return errors.not_found("refresh token not found or revoked")
        return errors.json_response(bodies.v1_refresh_token_info(*found))


async def v1_delete_refresh_token(request: web.Request) -> web.Response:
    if not oauth_grants.revoke_refresh_token(sim(request).state, request.match_info["token"]):
        return errors.not_found("refresh token not found or revoked")
    return web.Response(status=204)


async def authorize(request: web.Request) -> web.Response:
    """The install (consent) page of ``app.hubspot.com/oauth/authorize``, without a person: it applies the
    consent set by ``POST /_sim/consent`` (or the ``sim_*`` query parameters) and answers 302 to the app's
    ``redirect_uri`` with ``code`` and ``state``, or ``error=access_denied``."""
    state = sim(request).state
    try:
        location = oauth_grants.authorize(state, dict(request.query))
    except oauth_grants.AuthorizeRefused as refused:
        return errors.json_response({"status": "error", "message": refused.message}, status=refused.http_status,
                                    headers=_NO_STORE)
    return web.Response(status=302, headers={"Location": location, **_NO_STORE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/oauth/authorize", authorize)
    for generation in ("v1", *CURRENT_GENERATIONS):
        app.router.add_post(f"/oauth/{generation}/token", token_handler(generation))
    for generation in CURRENT_GENERATIONS:
        app.router.add_post(f"/oauth/{generation}/token/introspect", introspect_handler(generation))
        app.router.add_post(f"/oauth/{generation}/token/revoke", revoke_handler(generation))
    app.router.add_get("/oauth/v1/access-tokens/{token}", v1_access_token_info)
    app.router.add_get("/oauth/v1/refresh-tokens/{token}", v1_refresh_token_info)
    app.router.add_delete("/oauth/v1/refresh-tokens/{token}", v1_delete_refresh_token)
