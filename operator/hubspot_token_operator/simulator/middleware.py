"""Cross-cutting request behaviour: counting every request, and injecting faults before routing.

Stats wrap faults so an injected 429 or a dropped connection is counted exactly like a real one; the
control API (``/_sim/...``) is neither counted nor faultable, so a test's own bookkeeping never skews
"exactly one call reached HubSpot".
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from . import errors
from .context import sim
from .faults import FaultSpec
from .ratelimit import TEN_SECONDLY

DROPPED = "dropped"


def route_key(request: web.BaseRequest) -> str:
    """``GET /oauth/v1/access-tokens/{token}``: the route template, never the raw (secret-bearing) path."""
    match_info = getattr(request, "match_info", None)
    resource = match_info.route.resource if match_info is not None else None
    return f"{request.method} {resource.canonical if resource is not None else '(unmatched)'}"


def _is_control(request: web.Request) -> bool:
    return request.path.startswith("/_sim/") or request.path == "/_sim"


@web.middleware
async def count_requests(request: web.Request, handler):
    if _is_control(request):
        return await handler(request)
    stats = sim(request).stats
    generation = stats.generation
    outcome = DROPPED
    try:
        response = await handler(request)
        outcome = str(response.status)
        return response
    except web.HTTPException as exc:
        outcome = str(exc.status)
        raise
    finally:
        stats.record(route_key(request), outcome, request.host, generation)


@web.middleware
async def track_refreshes(request: web.Request, handler):
    """Marks a refresh of a grant in flight from arrival (before any injected latency) to the answer."""
    if request.method != "POST" or not request.path.startswith("/oauth/") or not request.path.endswith("/token"):
        return await handler(request)
    try:
        form = await request.post()
    except Exception:  # noqa: BLE001 - not a form: the route answers it
        return await handler(request)
    ctx = sim(request)
    record = ctx.state.refresh_tokens.get(str(form.get("refresh_token") or ""))
    if form.get("grant_type") != "refresh_token" or record is None:
        return await handler(request)
    ctx.stats.refresh_started(record.install_id)
    try:
        return await handler(request)
    finally:
        ctx.stats.refresh_ended(record.install_id)


@web.middleware
async def inject_faults(request: web.Request, handler):
    ctx = sim(request)
    plan = ctx.faults.plan(request.method, request.path)
    if plan.delay_seconds:
        # Take the whole request in first, as a real server does before it gets slow: a client that gives
        # up during the delay has still sent a request that will be processed (a refresh still rotates).
        await request.read()
        await asyncio.sleep(plan.delay_seconds)
    if plan.terminal is None:
        return await handler(request)
    return _faulted_response(request, plan.terminal)


def _faulted_response(request: web.Request, fault: FaultSpec) -> web.Response:
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.abort()
        # aiohttp treats a cancelled handler on a dead transport as "client went away": no response is sent.
        raise asyncio.CancelledError()
    if fault.kind == "rate_limit":
        limits = sim(request).state.config.rate_limits
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(limits.ten_secondly_max),
            "X-HubSpot-RateLimit-Remaining": "0",
        }
        if fault.policy != TEN_SECONDLY:
            headers["X-HubSpot-RateLimit-Daily"] = str(limits.daily_max)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = "0"
        return errors.rate_limited(fault.policy, headers, fault.retry_after)
    return errors.server_error(fault.status)


class RouteAccessLogger(AbstractAccessLogger):
    """Access log that names the route template instead of the path, so v1 tokens never reach a log."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %.1fms", route_key(request), response.status, time * 1000)


def access_logger() -> logging.Logger:
    return logging.getLogger("hubspot_token_operator.simulator.access")
