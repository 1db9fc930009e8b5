"""Bearer-authenticated data APIs: the cheap "is this token alive" calls plus the audit feeds.

Every call goes through ``guarded``: authenticate (401), spend rate budget (429 with the policy name),
check scopes (403), then answer with HubSpot's rate-limit headers attached. That order matches what a
client observes from HubSpot: a dead token never shows rate-limit headers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Awaitable, Callable

from aiohttp import web

from . import bearer, bodies, errors
from .bearer import Principal, Rejection
from .context import SimContext, sim
from .ratelimit import seconds_until_utc_midnight

Handler = Callable[[web.Request, SimContext, Principal], Awaitable[web.Response]]

CONTACTS_SCOPES = ("crm.objects.contacts.read", "crm.objects.contacts.write")
SECURITY_SCOPES = ("account-info.security.read",)
ACCOUNT_INFO_GENERATIONS = ("v3", "2026-03")


def guarded(any_of_scopes: tuple[str, ...] = (), needs_hub: bool = True, oauth_scopes: tuple[str, ...] = ()):
    """``oauth_scopes`` apply to OAuth tokens only: the account-info spec demands ``oauth``, which every
    OAuth install has but private apps cannot even select."""

    def wrap(inner: Handler):
        async def handle(request: web.Request) -> web.Response:
            ctx = sim(request)
            principal = bearer.authenticate(ctx.state, request.headers.get("Authorization"))
            if isinstance(principal, Rejection):
                return errors.unauthenticated(principal)
            if needs_hub and principal.hub_id is None:
                return errors.unauthenticated(
                    Rejection("INVALID_AUTHENTICATION", "App-level tokens cannot call account APIs.")
                )
            limits = ctx.state.config.rate_limits
            decision = ctx.limiter.check(
                ctx.state.now(),
                principal.app_key,
                limits.ten_secondly_max,
                daily_key=f"hub:{principal.hub_id}" if principal.daily_limited else None,
                daily_max=limits.daily_max if principal.daily_limited else None,
            )
            if not decision.allowed:
                return errors.rate_limited(decision.policy or "TEN_SECONDLY_ROLLING", decision.headers)
            required = any_of_scopes or (oauth_scopes if principal.kind == "oauth" else ())
            if required and not principal.scopes.intersection(required):
                return errors.missing_scopes([required[0]], headers=decision.headers)
            response = await inner(request, ctx, principal)
            response.headers.update(decision.headers)
            return response

        return handle

    return wrap


@guarded(oauth_scopes=("oauth",))
async def account_details(request: web.Request, ctx: SimContext, principal: Principal) -> web.Response:
    return errors.json_response(bodies.account_details(ctx.state.hub(principal.hub_id)))


@guarded(oauth_scopes=("oauth",))
async def api_usage(request: web.Request, ctx: SimContext, principal: Principal) -> web.Response:
    now = ctx.state.now()
    used = ctx.limiter.daily_usage(f"hub:{principal.hub_id}", now)
    body = bodies.api_usage(ctx.state.config.rate_limits.daily_max, used, now, now + seconds_until_utc_midnight(now))
    return errors.json_response(body)


@guarded(CONTACTS_SCOPES)
async def contacts(request: web.Request, ctx: SimContext, principal: Principal) -> web.Response:
    limit = _int_query(request, "limit", 10)
    results = [bodies.contact(principal.hub_id or 0, ctx.state.now())][:limit]
    return errors.json_response({"results": results})


@guarded(SECURITY_SCOPES)
async def security_activity(request: web.Request, ctx: SimContext, principal: Principal) -> web.Response:
    events = _events_for(ctx, principal)
    start_ms, end_ms = _int_query(request, "fromTimestamp", None), _int_query(request, "toTimestamp", None)
    if start_ms is not None:
        events = [e for e in events if e.occurred_at * 1000 >= start_ms]
    if end_ms is not None:
        events = [e for e in events if e.occurred_at * 1000 <= end_ms]
    return _page(request, [bodies.security_activity(e) for e in events])


@guarded(SECURITY_SCOPES)
async def audit_logs(request: web.Request, ctx: SimContext, principal: Principal) -> web.Response:
    ctx.stats.audit_log_read(principal.app_key)
    events = _events_for(ctx, principal)
    after, before = _epoch_query(request, "occurredAfter"), _epoch_query(request, "occurredBefore")
    if after is not None:
        events = [e for e in events if e.occurred_at > after]
    if before is not None:
        events = [e for e in events if e.occurred_at < before]
    if ctx.state.config.audit_log_order == "newest_first":
        events = events[::-1]  # recorded in time order
    return _page(request, [bodies.audit_log_event(e) for e in events])


def _events_for(ctx: SimContext, principal: Principal):
    with ctx.state.lock:
        return [e for e in ctx.state.audit if e.hub_id == principal.hub_id]


def _page(request: web.Request, items: list[dict]) -> web.Response:
    """Forward paging with an opaque cursor, as the audit specs describe (``paging.next.after``)."""
    limit = max(1, _int_query(request, "limit", 100) or 100)
    cursor = request.query.get("after")
    if cursor is not None and not cursor.isdigit():  # not a cursor this server handed out (or one gone stale)
        return errors.validation_error(f"invalid paging cursor: {cursor[:40]}")
    start = int(cursor or 0)
    body: dict = {"results": items[start : start + limit]}
    if start + limit < len(items):
        body["paging"] = {"next": {"after": str(start + limit)}}
    return errors.json_response(body)


def _int_query(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def _epoch_query(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def add_routes(app: web.Application) -> None:
    for gen in ACCOUNT_INFO_GENERATIONS:
        app.router.add_get(f"/account-info/{gen}/details", account_details)
        app.router.add_get(f"/account-info/{gen}/api-usage/daily/private-apps", api_usage)
    app.router.add_get("/account-info/2026-03/activity/security", security_activity)
    app.router.add_get("/account-info/2026-03/activity/audit-logs", audit_logs)
    app.router.add_get("/crm/v3/objects/contacts", contacts)
