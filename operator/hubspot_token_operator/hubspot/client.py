"""Async HubSpot client for the operator: refresh, introspect, revoke, private-app info, liveness.

Every method returns an outcome (see ``outcomes``) instead of raising, because the operator's next step
(retry later, mark the grant dead, report a missing scope) depends on *which* failure happened, and an
exception hierarchy would hide that behind ``except`` clauses. Secrets go in as ``str`` or ``Secret`` and
come out only as ``Secret``; log lines carry route templates and sha256 fingerprints, never values.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlencode

import httpx
from pydantic import ValidationError

from . import logsafety, wire
from .classify import classify_exception, classify_status, parse_rate_limit, unexpected_response
from .generations import (
    AUDIT_LOGS_PATH,
    PRIVATE_APP_INFO_PATH,
    V1_ACCESS_TOKEN_ROUTE,
    V1_REFRESH_TOKEN_ROUTE,
    ApiGeneration,
    looks_like_refresh_token,
    warn_if_deprecated,
)
from .outcomes import (
    AccountDetails,
    AuditEvent,
    AuditLogEvents,
    AuditLogOutcome,
    ErrorKind,
    Failure,
    IntrospectOutcome,
    LivenessOutcome,
    PrivateAppInfoOutcome,
    PrivateAppTokenInfo,
    RateLimit,
    Reason,
    RefreshOutcome,
    Revoked,
    RevokeOutcome,
    TokenGrant,
    TokenInfo,
)
from .secret import Secret, fingerprint, reveal
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
EU_BASE_URL = "https://api-eu1.hubapi.com"
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=8.0, write=8.0, pool=5.0)
# The whole of one call, waiting for a connection slot included. Shorter than a leader lease's validity
# after a renewal (15 s - 2 s), so a replica that may start a call is sure to end it while it still leads.
DEFAULT_CALL_DEADLINE = 10.0
# HubSpot's own Node SDK caps concurrency at 6. It is also where httpx performs best: httpcore's pool does
# O(waiting requests x connections) work per request, so 50 parallel sockets are slower than 6.
DEFAULT_MAX_CONCURRENCY = 6
TokenHint = str  # "access_token" | "refresh_token"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """One verified TLS context per process: building one costs ~40 ms, and the operator may build
    several clients (one per base URL or API generation)."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: httpx.Headers
    body: Any
    rate_limit: RateLimit | None
    sent_at: datetime

    @property
    def success(self) -> bool:
        return 200 <= self.status < 300


class HubSpotClient:
    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_generation: ApiGeneration | str = ApiGeneration.V2026_03,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        now: Callable[[], datetime] = utc_now,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        verify: ssl.SSLContext | None = None,
        user_agent: str = "hubspot-token-operator",
        deadline: float = DEFAULT_CALL_DEADLINE,
        admit: Callable[[float], None] | None = None,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_generation = ApiGeneration(api_generation)
        warn_if_deprecated(self.api_generation)
        logsafety.install()
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._now = now
        # Every call ends within `deadline` seconds (waiting for a slot included). `admit(deadline)` runs
        # just before a request is sent and may raise to forbid it (leader election: leadership.py).
        self.deadline = deadline
        self._admit = admit
        # `observe(operation, code, seconds)` after every HTTP exchange (metrics): code is the HTTP status,
        # or "timeout" / "error" when no answer came. Never given a URL, a header or a body.
        self._observe = observe
        self._flights: SingleFlight[RefreshOutcome] = SingleFlight()
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        # Requests queue here, in O(1), instead of inside httpcore's pool (see DEFAULT_MAX_CONCURRENCY).
        self._gate = asyncio.Semaphore(max_concurrency)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            transport=transport,
            verify=verify or default_ssl_context(),
            event_hooks=dict(event_hooks or {}),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.base_url!r}, api_generation={self.api_generation.value!r})"

    async def __aenter__(self) -> "HubSpotClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- OAuth ---------------------------------------------------------------------------------------

    async def refresh(
        self, client_id: str, client_secret: str | Secret, refresh_token: str | Secret
    ) -> RefreshOutcome:
        """Exchange a refresh token. Concurrent calls for the same grant share one HTTP request."""
        token = reveal(refresh_token)
        form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": reveal(client_secret),
            "refresh_token": token,
        }
        key = self._flights.key(self.base_url, client_id, token)
        log.debug("refresh requested for grant sha256:%s", fingerprint(token))
        return await self._flights.run(
            key, lambda: self._token_request("refresh", form, (client_secret, token), previous_refresh=token)
        )

    async def exchange_code(
        self,
        client_id: str,
        client_secret: str | Secret,
        code: str | Secret,
        redirect_uri: str,
        code_verifier: str | Secret | None = None,
    ) -> RefreshOutcome:
        """The authorization_code grant: turns a consent-screen code into the first token pair."""
        form = {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "client_secret": reveal(client_secret),
            "code": reveal(code),
            "redirect_uri": redirect_uri,
        }
        if code_verifier is not None:
            form["code_verifier"] = reveal(code_verifier)
        return await self._token_request("exchange_code", form, (client_secret, code, code_verifier))

    async def introspect(
        self,
        client_id: str,
        client_secret: str | Secret,
        token: str | Secret,
        token_type_hint: TokenHint | None = None,
    ) -> IntrospectOutcome:
        """Ask HubSpot whether a token is alive. v1 ignores the client credentials (its GETs take none)."""
        raw = reveal(token)
        if self.api_generation is ApiGeneration.V1:
            return await self._introspect_v1(raw, token_type_hint)
        form = _token_form(client_id, client_secret, raw, token_type_hint)
        gen = self.api_generation
        reply = await self._call("introspect", "POST", gen.introspect_path, gen.introspect_path, form=form)
        if isinstance(reply, Failure):
            return reply
        if reply.status == 400 and _says_token_invalid(reply.body):
            return TokenInfo(active=False, token_use=token_type_hint or "unknown", rate_limit=reply.rate_limit)
        if not reply.success:
            return self._failure("introspect", reply, False, (client_secret, raw))
        try:
            info = wire.Introspection.model_validate(reply.body)
        except ValidationError as exc:
            return unexpected_response("introspect", reply.status, wire.problem_fields(exc), reply.rate_limit)
        return TokenInfo(
            active=info.active,
            token_use=info.token_use,
            client_id=info.client_id,
            app_id=info.app_id,
            hub_id=info.hub_id,
            user_id=info.user_id,
            scopes=tuple(info.scopes),
            expires_in=info.expires_in,
            expires_at=_expiry(reply.sent_at, info.expires_in) if info.active else None,
            rate_limit=reply.rate_limit,
        )

    async def revoke(
        self,
        client_id: str,
        client_secret: str | Secret,
        token: str | Secret,
        token_type_hint: TokenHint | None = None,
    ) -> RevokeOutcome:
        raw = reveal(token)
        if self.api_generation is ApiGeneration.V1:
            return await self._revoke_v1(raw, token_type_hint)
        form = _token_form(client_id, client_secret, raw, token_type_hint)
        gen = self.api_generation
        reply = await self._call("revoke", "POST", gen.revoke_path, gen.revoke_path, form=form)
        if isinstance(reply, Failure):
            return reply
        if not reply.success:
            return self._failure("revoke", reply, False, (client_secret, raw))
        return Revoked(rate_limit=reply.rate_limit)

    # -- Bearer calls --------------------------------------------------------------------------------

    async def private_app_token_info(self, token: str | Secret) -> PrivateAppInfoOutcome:
        """Metadata of a ``pat-`` token. Sends the token as Bearer too: eu1 tokens reportedly need it."""
        raw = reveal(token)
        reply = await self._call(
            "private_app_token_info",
            "POST",
            PRIVATE_APP_INFO_PATH,
            PRIVATE_APP_INFO_PATH,
            json_body={"tokenKey": raw},
            bearer=raw,
        )
        if isinstance(reply, Failure):
            return reply
        if not reply.success:
            return self._failure("private_app_token_info", reply, True, (raw,))
        try:
            info = wire.PrivateAppInfo.model_validate(reply.body)
        except ValidationError as exc:
            problem = wire.problem_fields(exc)
            return unexpected_response("private_app_token_info", reply.status, problem, reply.rate_limit)
        return PrivateAppTokenInfo(
            hub_id=info.hub_id,
            user_id=info.user_id,
            app_id=info.app_id,
            scopes=tuple(info.scopes),
            rate_limit=reply.rate_limit,
        )

    async def check_liveness(self, bearer_token: str | Secret) -> LivenessOutcome:
        """The cheapest authenticated call (account details): proves the token works, returns the portal."""
        raw = reveal(bearer_token)
        path = self.api_generation.account_details_path
        reply = await self._call("check_liveness", "GET", path, path, bearer=raw)
        if isinstance(reply, Failure):
            return reply
        if not reply.success:
            return self._failure("check_liveness", reply, True, (raw,))
        try:
            info = wire.PortalInformation.model_validate(reply.body)
        except ValidationError as exc:
            return unexpected_response("check_liveness", reply.status, wire.problem_fields(exc), reply.rate_limit)
        return AccountDetails(
            portal_id=info.portal_id,
            account_type=info.account_type,
            data_hosting_location=info.data_hosting_location,
            ui_domain=info.ui_domain,
            time_zone=info.time_zone,
            rate_limit=reply.rate_limit,
        )

    async def audit_log_events(
        self, bearer_token: str | Secret, occurred_after: datetime, *, after: str | None = None, limit: int = 100,
        max_pages: int = 5,
    ) -> AuditLogOutcome:
        """Audit-log entries after `occurred_after`, at most `max_pages` pages (each call under the client's
        deadline), starting at the paging cursor `after` when one is given. HubSpot documents no order for
        the entries, so a read that leaves pages returns the cursor to go on with (`next_after`) rather than
        a time to go on from. Needs an Enterprise account and scope account-info.security.read."""
        raw = reveal(bearer_token)
        events: list[AuditEvent] = []
        rate_limit = None
        for _ in range(max_pages):
            query = {"occurredAfter": occurred_after.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
                     "limit": str(limit), **({"after": after} if after else {})}
            reply = await self._call("audit_logs", "GET", f"{AUDIT_LOGS_PATH}?{urlencode(query)}", AUDIT_LOGS_PATH,
                                     bearer=raw)
            if isinstance(reply, Failure):
                return reply
            if not reply.success:
                return self._failure("audit_logs", reply, True, (raw,))
            try:
                page = wire.AuditLogPage.model_validate(reply.body)
            except ValidationError as exc:
                return unexpected_response("audit_logs", reply.status, wire.problem_fields(exc), reply.rate_limit)
            rate_limit = reply.rate_limit
            events += [AuditEvent(
                id=e.id, action=e.action, category=e.category, sub_category=e.sub_category,
                occurred_at=e.occurred_at if e.occurred_at.tzinfo else e.occurred_at.replace(tzinfo=timezone.utc),
                target_object_id=e.target_object_id, user_id=e.acting_user.user_id, user_email=e.acting_user.user_email,
            ) for e in page.results]
            after = page.next_after
            if not after:
                break
        return AuditLogEvents(events=tuple(events), next_after=after or None, rate_limit=rate_limit)

    # -- internals -----------------------------------------------------------------------------------

    async def _token_request(
        self,
        operation: str,
        form: dict[str, str],
        secrets: tuple[str | Secret | None, ...],
        previous_refresh: str | None = None,
    ) -> RefreshOutcome:
        path = self.api_generation.token_path
        reply = await self._call(operation, "POST", path, path, form=form)
        if isinstance(reply, Failure):
            return reply
        if not reply.success:
            return self._failure(operation, reply, False, secrets)
        try:
            body = wire.TokenResponse.model_validate(reply.body)
        except ValidationError as exc:
            return unexpected_response(operation, reply.status, wire.problem_fields(exc), reply.rate_limit)
        returned_refresh = body.refresh_token
        return TokenGrant(
            access_token=Secret(body.access_token),
            refresh_token=Secret(returned_refresh) if returned_refresh else None,
            expires_in=body.expires_in,
            expires_at=_expiry(reply.sent_at, body.expires_in),
            token_type=body.token_type,
            token_use=body.token_use,
            hub_id=body.hub_id,
            user_id=body.user_id,
            scopes=tuple(body.scopes),
            refresh_token_rotated=bool(previous_refresh and returned_refresh and returned_refresh != previous_refresh),
            rate_limit=reply.rate_limit,
        )

    async def _introspect_v1(self, token: str, hint: TokenHint | None) -> IntrospectOutcome:
        is_refresh = hint == "refresh_token" or (hint is None and looks_like_refresh_token(token))
        route = V1_REFRESH_TOKEN_ROUTE if is_refresh else V1_ACCESS_TOKEN_ROUTE
        token_use = "refresh_token" if is_refresh else "access_token"
        reply = await self._call("introspect", "GET", route.format(token=quote(token, safe="")), route)
        if isinstance(reply, Failure):
            return reply
        if reply.status == 404:
            return TokenInfo(active=False, token_use=token_use, rate_limit=reply.rate_limit)
        if not reply.success:
            return self._failure("introspect", reply, False, (token,))
        model = wire.V1RefreshTokenInfo if is_refresh else wire.V1AccessTokenInfo
        try:
            info = model.model_validate(reply.body)
        except ValidationError as exc:
            return unexpected_response("introspect", reply.status, wire.problem_fields(exc), reply.rate_limit)
        expires_in = getattr(info, "expires_in", None)
        return TokenInfo(
            active=True,
            token_use=token_use,
            client_id=getattr(info, "client_id", None),
            app_id=getattr(info, "app_id", None),
            hub_id=info.hub_id,
            user_id=info.user_id,
            scopes=tuple(info.scopes),
            expires_in=expires_in,
            expires_at=_expiry(reply.sent_at, expires_in),
            rate_limit=reply.rate_limit,
        )

    async def _revoke_v1(self, token: str, hint: TokenHint | None) -> RevokeOutcome:
        if hint == "access_token" or (hint is None and not looks_like_refresh_token(token)):
            return Failure(ErrorKind.TERMINAL, Reason.UNSUPPORTED, "revoke: OAuth v1 can only revoke refresh tokens")
        route = V1_REFRESH_TOKEN_ROUTE
        reply = await self._call("revoke", "DELETE", route.format(token=quote(token, safe="")), route)
        if isinstance(reply, Failure):
            return reply
        if reply.status == 404:
            return Revoked(already_inactive=True, rate_limit=reply.rate_limit)
        if not reply.success:
            return self._failure("revoke", reply, False, (token,))
        return Revoked(rate_limit=reply.rate_limit)

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        route: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        bearer: str | None = None,
    ) -> _Reply | Failure:
        """One HTTP exchange. ``route`` is the loggable template; ``path`` may contain a token."""
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        ends = time.monotonic() + self.deadline
        if not await self._enter_gate():
            return classify_exception(operation, httpx.PoolTimeout("no free connection slot"))
        started = time.perf_counter()
        try:
            if self._admit is not None:
                self._admit(self.deadline)
            sent_at = self._aware_now()
            started = time.perf_counter()
            response = await asyncio.wait_for(
                self._http.request(method, path, data=form, json=json_body, headers=headers),
                max(ends - time.monotonic(), 0.001))
        except asyncio.TimeoutError:
            self._observed(operation, "timeout", started)
            failure = classify_exception(operation, httpx.ReadTimeout(f"no answer within {self.deadline:g}s"))
            log.info("%s %s %s failed: %s", operation, method, route, failure.reason)
            return failure
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            self._observed(operation, "timeout" if isinstance(exc, httpx.TimeoutException) else "error", started)
            failure = classify_exception(operation, exc)
            log.info("%s %s %s failed: %s", operation, method, route, failure.reason)
            return failure
        finally:
            self._gate.release()
        self._observed(operation, str(response.status_code), started)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.debug("%s %s %s -> %d in %.1fms", operation, method, route, response.status_code, elapsed_ms)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return _Reply(response.status_code, response.headers, body, parse_rate_limit(response.headers), sent_at)

    def _observed(self, operation: str, code: str, started: float) -> None:
        if self._observe is not None:
            try:
                self._observe(operation, code, time.perf_counter() - started)
            except Exception:  # noqa: BLE001 - metrics must never fail a call
                log.debug("observe hook failed for %s", operation, exc_info=True)

    async def _enter_gate(self) -> bool:
        """Take a request slot, waiting at most the pool timeout (``wait_for`` only when we must wait:
        it costs a task per call)."""
        if not self._gate.locked():
            await self._gate.acquire()
            return True
        try:
            await asyncio.wait_for(self._gate.acquire(), self._timeout.pool)
        except asyncio.TimeoutError:
            return False
        return True

    def _failure(
        self, operation: str, reply: _Reply, bearer_call: bool, secrets: tuple[str | Secret | None, ...]
    ) -> Failure:
        failure = classify_status(
            operation, reply.status, reply.body, reply.headers, self._aware_now(), bearer_call, secrets
        )
        log.info("%s failed: %s/%s (HTTP %d)", operation, failure.kind.value, failure.reason, reply.status)
        return failure

    def _aware_now(self) -> datetime:
        now = self._now()
        return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)


def _expiry(sent_at: datetime, expires_in: int | None) -> datetime | None:
    """Counted from when the request was *sent*: the token cannot have been issued earlier."""
    return sent_at + timedelta(seconds=expires_in) if expires_in is not None else None


def _says_token_invalid(body: Any) -> bool:
    """HubSpot's 400 for an unknown token on introspection: a validation error about ``token``."""
    if not isinstance(body, dict) or body.get("error"):
        return False
    context = body.get("context")
    return isinstance(context, dict) and "token" in context


def _token_form(client_id: str, client_secret: str | Secret, token: str, hint: TokenHint | None) -> dict[str, str]:
    """The body of v3/2026-03 introspect and revoke: credentials and the token, never in the URL."""
    form = {"client_id": client_id, "client_secret": reveal(client_secret), "token": token}
    if hint:
        form["token_type_hint"] = hint
    return form
