"""The ``/_sim/`` control API: the hands of the human (or test) on the other side of HubSpot.

It creates apps, installs and private apps, rotates and uninstalls, injects faults, tunes config, moves
simulated time, and reports request stats. Bodies are JSON and parsed into pydantic models first, so a
malformed control call fails loudly with a 400 instead of half-applying. Secrets come back only from the
call that created them; there is deliberately no endpoint that lists tokens.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import oauth_grants, private_apps
from .context import sim
from .faults import FaultSpec
from .model import Consent

Hublet = Literal["na1", "na2", "na3", "eu1", "ap1"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewApp(_Body):
    redirect_uri: str | None = None


class NewInstall(_Body):
    client_id: str
    hub_id: int = Field(ge=1, le=2**31 - 1)
    scopes: list[str] = Field(default_factory=lambda: ["oauth"])
    user_id: int | None = Field(None, ge=1, le=2**31 - 1)
    hublet: Hublet | None = None


class NewAuthCode(NewInstall):
    redirect_uri: str
    code_challenge: str | None = Field(None, description="PKCE S256 challenge")


class ConsentChoice(_Body):
    hub_id: int = Field(ge=1, le=2**31 - 1)
    approve: bool = True
    scopes: list[str] | None = Field(None, description="granted scopes; None = what the authorize URL asked for")
    user_id: int | None = Field(None, ge=1, le=2**31 - 1)
    hublet: Hublet | None = None


class NewPrivateApp(_Body):
    hub_id: int = Field(ge=1, le=2**31 - 1)
    scopes: list[str] = Field(default_factory=list)
    hublet: Hublet | None = None
    kind: Literal["private_app", "service_key"] = "private_app"
    user_id: int | None = Field(None, ge=1, le=2**31 - 1)


class Rotation(_Body):
    expire: Literal["now", "later"] = "later"


class ClockMove(_Body):
    advance_seconds: float


async def _parse(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
        return model.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "invalid control request", "detail": str(exc)}),
            content_type="application/json",
        ) from None


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _conflict(message: str, status: int = 404) -> web.Response:
    return _json({"error": message}, status=status)


async def create_app(request: web.Request) -> web.Response:
    body = await _parse(request, NewApp)
    app = oauth_grants.create_app(sim(request).state, body.redirect_uri)
    return _json({"app_id": app.app_id, "client_id": app.client_id, "client_secret": app.client_secret}, 201)


async def create_install(request: web.Request) -> web.Response:
    body = await _parse(request, NewInstall)
    try:
        install, token = oauth_grants.install_app(
            sim(request).state, body.client_id, body.hub_id, body.scopes, body.user_id, body.hublet
        )
    except LookupError as exc:
        return _conflict(str(exc))
    return _json({"refresh_token": token, "hub_id": install.hub_id, "user_id": install.user_id}, 201)


async def delete_install(request: web.Request) -> web.Response:
    if not oauth_grants.uninstall(sim(request).state, request.match_info["refresh_token"]):
        return _conflict("unknown refresh token")
    return web.Response(status=204)


async def create_auth_code(request: web.Request) -> web.Response:
    body = await _parse(request, NewAuthCode)
    try:
        code = oauth_grants.mint_auth_code(
            sim(request).state,
            body.client_id,
            body.hub_id,
            body.scopes,
            body.redirect_uri,
            body.user_id,
            body.code_challenge,
            body.hublet,
        )
    except LookupError as exc:
        return _conflict(str(exc))
    except ValueError as exc:
        return _conflict(str(exc), status=400)
    state = sim(request).state
    return _json({"code": code.code, "expires_in": int(code.expires_at - state.now())}, 201)


async def set_consent(request: web.Request) -> web.Response:
    body = await _parse(request, ConsentChoice)
    oauth_grants.set_consent(sim(request).state, Consent(**body.model_dump()))
    return _json(body.model_dump())


async def clear_consent(request: web.Request) -> web.Response:
    oauth_grants.set_consent(sim(request).state, None)
    return web.Response(status=204)


async def create_private_app(request: web.Request) -> web.Response:
    body = await _parse(request, NewPrivateApp)
    app, token = private_apps.create(
        sim(request).state, body.hub_id, body.scopes, body.hublet, body.kind, body.user_id
    )
    return _json({"app_id": app.app_id, "token": token, "hublet": app.hublet}, 201)


def _app_id(request: web.Request) -> int:
    try:
        return int(request.match_info["app_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def rotate_private_app(request: web.Request) -> web.Response:
    body = await _parse(request, Rotation)
    try:
        token, previous_expires_at = private_apps.rotate(sim(request).state, _app_id(request), body.expire)
    except LookupError as exc:
        return _conflict(str(exc))
    return _json({"token": token, "previous_expires_at": previous_expires_at})


async def expire_previous(request: web.Request) -> web.Response:
    try:
        private_apps.expire_previous(sim(request).state, _app_id(request))
    except LookupError as exc:
        return _conflict(str(exc))
    return web.Response(status=204)


async def cancel_rotation(request: web.Request) -> web.Response:
    try:
        private_apps.cancel_rotation(sim(request).state, _app_id(request))
    except LookupError as exc:
        return _conflict(str(exc))
    except ValueError as exc:
        return _conflict(str(exc), status=409)
    return web.Response(status=204)


async def deactivate_private_app(request: web.Request) -> web.Response:
    try:
        private_apps.deactivate(sim(request).state, _app_id(request))
    except LookupError as exc:
        return _conflict(str(exc))
    return web.Response(status=204)


async def add_fault(request: web.Request) -> web.Response:
    rule = sim(request).faults.add(await _parse(request, FaultSpec))
    return _json(rule.describe(), 201)


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": sim(request).faults.describe()})


async def clear_faults(request: web.Request) -> web.Response:
    sim(request).faults.clear()
    return web.Response(status=204)


async def delete_fault(request: web.Request) -> web.Response:
    if not sim(request).faults.remove(request.match_info["fault_id"]):
        return _conflict("unknown fault id")
    return web.Response(status=204)


async def get_config(request: web.Request) -> web.Response:
    return _json(sim(request).state.config.model_dump())


async def set_config(request: web.Request) -> web.Response:
    state = sim(request).state
    raw = await request.read()
    try:
        patch = json.loads(raw) if raw.strip() else {}
        if not isinstance(patch, dict):
            raise ValueError("config patch must be a JSON object")
        with state.lock:
            state.config = state.config.merged(patch)
            state.touched()
    except (json.JSONDecodeError, ValidationError, ValueError) as exc:
        return _json({"error": "invalid config", "detail": str(exc)}, 400)
    return _json(state.config.model_dump())


async def get_clock(request: web.Request) -> web.Response:
    clock = sim(request).state.clock
    return _json({"now": clock.now(), "offset_seconds": clock.offset_seconds})


async def move_clock(request: web.Request) -> web.Response:
    body = await _parse(request, ClockMove)
    state = sim(request).state
    state.clock.advance(body.advance_seconds)
    state.touched()
    return _json({"now": state.clock.now(), "offset_seconds": state.clock.offset_seconds})


async def get_stats(request: web.Request) -> web.Response:
    return _json(sim(request).stats.snapshot())


async def reset_stats(request: web.Request) -> web.Response:
    sim(request).stats.reset()
    return web.Response(status=204)


async def reset_all(request: web.Request) -> web.Response:
    """Back to a fresh simulator (tests share one server and reset between cases)."""
    ctx = sim(request)
    ctx.state.reset()
    ctx.reset_runtime()
    return web.Response(status=204)


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/health", health)
    r.add_post("/_sim/apps", create_app)
    r.add_post("/_sim/installs", create_install)
    r.add_delete("/_sim/installs/{refresh_token}", delete_install)
    r.add_post("/_sim/auth-codes", create_auth_code)
    r.add_post("/_sim/consent", set_consent)
    r.add_delete("/_sim/consent", clear_consent)
    r.add_post("/_sim/private-apps", create_private_app)
    r.add_post("/_sim/private-apps/{app_id}/rotate", rotate_private_app)
    r.add_post("/_sim/private-apps/{app_id}/expire-previous", expire_previous)
    r.add_post("/_sim/private-apps/{app_id}/cancel-rotation", cancel_rotation)
    r.add_post("/_sim/private-apps/{app_id}/deactivate", deactivate_private_app)
    r.add_post("/_sim/faults", add_fault)
    r.add_get("/_sim/faults", list_faults)
    r.add_delete("/_sim/faults", clear_faults)
    r.add_delete("/_sim/faults/{fault_id}", delete_fault)
    r.add_get("/_sim/config", get_config)
    r.add_post("/_sim/config", set_config)
    r.add_get("/_sim/clock", get_clock)
    r.add_post("/_sim/clock", move_clock)
    r.add_get("/_sim/stats", get_stats)
    r.add_post("/_sim/stats/reset", reset_stats)
    r.add_post("/_sim/reset", reset_all)
