"""Turn an HTTP answer (or a transport exception) into a ``Failure``.

A chain of small pure rules over one gathered ``ErrorContext``; the first rule that recognises the answer
wins. No I/O, so the whole table is unit-tested without a server. The rules encode facts §2, §5.3 and §6:
invalid_grant and friends are permanent, 429s are retried per ``policyName``, 5xx and network trouble are
transient, 401/403 on Bearer calls speak about the token, not the client.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import httpx

from .outcomes import ErrorKind, Failure, RateLimit, Reason
from .secret import Secret, redact

TEN_SECONDLY_RETRY_SECONDS = 10.0
# HubSpot resets the daily budget at midnight in the *account's* time zone, which the client does not know.
# Retrying hourly bounds the wait after the reset to one hour at a cost of at most ~24 calls a day.
DAILY_RETRY_SECONDS = 3600.0
MAX_DETAIL_CHARS = 200

_INVALID_CLIENT_STATUSES = {"BAD_CLIENT_ID", "BAD_CLIENT_SECRET", "INVALID_CLIENT"}
_INVALID_GRANT_STATUSES = {
    "BAD_REFRESH_TOKEN",
    "BAD_AUTH_CODE",
    "EXPIRED_AUTH_CODE",
    "MISMATCH_REDIRECT_URI_AUTH_CODE",
    "BAD_REDIRECT_URI",
    "BAD_CODE_VERIFIER",
}


@dataclass(frozen=True)
class ErrorBody:
    """The fields of a HubSpot error body clients branch on; everything optional because shapes vary."""

    status: str | None = None
    message: str | None = None
    error: str | None = None
    error_description: str | None = None
    category: str | None = None
    correlation_id: str | None = None
    policy_name: str | None = None

    @classmethod
    def parse(cls, body: Any) -> "ErrorBody":
        if not isinstance(body, dict):
            return cls()

        def text(key: str) -> str | None:
            value = body.get(key)
            return value if isinstance(value, str) else None

        return cls(
            status=text("status"),
            message=text("message"),
            error=text("error"),
            error_description=text("error_description"),
            category=text("category"),
            correlation_id=text("correlationId"),
            policy_name=text("policyName"),
        )


@dataclass(frozen=True)
class ErrorContext:
    operation: str
    http_status: int
    body: ErrorBody
    rate_limit: RateLimit | None
    retry_after: float | None
    bearer_call: bool
    detail: str  # HubSpot's own words, redacted and truncated

    def failure(self, kind: ErrorKind, reason: str, summary: str, retry_after: float | None = None) -> Failure:
        code = safe_code(self.body.status if self.body.status not in (None, "error") else self.body.category)
        message = f"{self.operation}: {summary} (HTTP {self.http_status}"
        message += f" {code})" if code else ")"
        if self.detail:
            message += f": {self.detail}"
        return Failure(
            kind=kind,
            reason=reason,
            message=message,
            http_status=self.http_status,
            hubspot_status=code,
            oauth_error=self.body.error,
            policy_name=self.body.policy_name,
            retry_after_seconds=retry_after,
            correlation_id=self.body.correlation_id,
            rate_limit=self.rate_limit,
        )


Rule = Callable[[ErrorContext], "Failure | None"]


def _rate_limited(ctx: ErrorContext) -> Failure | None:
    if ctx.http_status != 429:
        return None
    if ctx.body.policy_name == "DAILY":
        wait = ctx.retry_after if ctx.retry_after is not None else DAILY_RETRY_SECONDS
        return ctx.failure(ErrorKind.RETRYABLE, Reason.DAILY_RATE_LIMITED, "daily API limit reached", wait)
    wait = ctx.retry_after if ctx.retry_after is not None else TEN_SECONDLY_RETRY_SECONDS
    return ctx.failure(ErrorKind.RETRYABLE, Reason.RATE_LIMITED, "rate limited", wait)


def _server_error(ctx: ErrorContext) -> Failure | None:
    if ctx.http_status >= 500 or ctx.http_status == 408:
        return ctx.failure(ErrorKind.RETRYABLE, Reason.SERVER_ERROR, "HubSpot server error", ctx.retry_after)
    return None


def _unauthorized(ctx: ErrorContext) -> Failure | None:
    if ctx.http_status != 401:
        return None
    if not ctx.bearer_call:
        return ctx.failure(ErrorKind.TERMINAL, Reason.INVALID_CLIENT, "client authentication failed")
    if ctx.body.category == "EXPIRED_AUTHENTICATION":
        return ctx.failure(ErrorKind.INVALID_TOKEN, Reason.EXPIRED_TOKEN, "token expired")
    return ctx.failure(ErrorKind.INVALID_TOKEN, Reason.INVALID_TOKEN, "token not accepted")


def _forbidden(ctx: ErrorContext) -> Failure | None:
    if ctx.http_status != 403:
        return None
    if ctx.body.category == "MISSING_SCOPES":
        return ctx.failure(ErrorKind.FORBIDDEN, Reason.MISSING_SCOPES, "token lacks a required scope")
    return ctx.failure(ErrorKind.FORBIDDEN, Reason.FORBIDDEN, "forbidden")


def _oauth_rejection(ctx: ErrorContext) -> Failure | None:
    if ctx.http_status != 400:
        return None
    status, error = (ctx.body.status or "").upper(), (ctx.body.error or "").lower()
    words = f"{ctx.body.message or ''} {ctx.body.error_description or ''}".lower()
    if "not issued to this client" in words:
        return ctx.failure(ErrorKind.TERMINAL, Reason.NOT_ISSUED_TO_CLIENT, "refresh token belongs to another app")
    if status in _INVALID_CLIENT_STATUSES or error == "invalid_client":
        return ctx.failure(ErrorKind.TERMINAL, Reason.INVALID_CLIENT, "client id or secret rejected")
    if status in _INVALID_GRANT_STATUSES or error == "invalid_grant":
        return ctx.failure(ErrorKind.TERMINAL, Reason.INVALID_GRANT, "grant rejected; re-authorisation needed")
    return ctx.failure(ErrorKind.TERMINAL, Reason.BAD_REQUEST, "request rejected")


def _not_found(ctx: ErrorContext) -> Failure | None:
    if ctx.http_status == 404:
        return ctx.failure(ErrorKind.TERMINAL, Reason.NOT_FOUND, "not found")
    return None


def _anything_else(ctx: ErrorContext) -> Failure:
    return ctx.failure(ErrorKind.TERMINAL, Reason.UNEXPECTED_STATUS, "unexpected HTTP status")


RULES: tuple[Rule, ...] = (_rate_limited, _server_error, _unauthorized, _forbidden, _oauth_rejection, _not_found)


_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_RISKY_WORD = re.compile(r"[%=/+\\]|(?=.*[A-Za-z])(?=.*[0-9])|^.{20,}$")


def safe_detail(text: str) -> str:
    """HubSpot's own words reach conditions and Events only when they are plainly prose: no word that
    could be (part of) a token in any encoding (long, mixed letters and digits, URL- or base64-encoded).
    Redaction of known secrets happens before this; this catches what redaction cannot know."""
    words = text.split()
    for w in words:
        if _RISKY_WORD.search(w.strip(".,;:()[]{}'\"!?")):
            return ""
    return " ".join(words)[:MAX_DETAIL_CHARS]


def safe_code(code: str | None) -> str | None:
    return code if code and _CODE.match(code) else None


def classify_status(
    operation: str,
    http_status: int,
    body: Any,
    headers: Mapping[str, str],
    now: datetime,
    bearer_call: bool,
    secrets: Iterable[str | Secret | None] = (),
) -> Failure:
    parsed = ErrorBody.parse(body)
    detail = safe_detail(redact(parsed.message or parsed.error_description or "", list(secrets)))
    ctx = ErrorContext(
        operation=operation,
        http_status=http_status,
        body=parsed,
        rate_limit=parse_rate_limit(headers),
        retry_after=parse_retry_after(headers.get("Retry-After"), now),
        bearer_call=bearer_call,
        detail=detail,
    )
    for rule in RULES:
        failure = rule(ctx)
        if failure is not None:
            return failure
    return _anything_else(ctx)


def classify_exception(operation: str, exc: BaseException) -> Failure:
    """Network-level trouble. Only the exception *type* is reported: httpx messages can carry URLs."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return Failure(ErrorKind.RETRYABLE, Reason.TIMEOUT, f"{operation}: timed out ({name})")
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
        return Failure(ErrorKind.TERMINAL, Reason.BAD_CONFIGURATION, f"{operation}: bad base URL ({name})")
    return Failure(ErrorKind.RETRYABLE, Reason.CONNECTION_ERROR, f"{operation}: connection failed ({name})")


def unexpected_response(operation: str, http_status: int, problem: str, rate_limit: RateLimit | None) -> Failure:
    """A 2xx we could not understand: likely a proxy or a transient glitch, so retry rather than give up."""
    return Failure(
        ErrorKind.RETRYABLE,
        Reason.UNEXPECTED_RESPONSE,
        f"{operation}: unexpected response body (HTTP {http_status}): {problem}",
        http_status=http_status,
        rate_limit=rate_limit,
    )


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    def number(name: str) -> int | None:
        raw = headers.get(name)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    limit = RateLimit(
        max=number("X-HubSpot-RateLimit-Max"),
        remaining=number("X-HubSpot-RateLimit-Remaining"),
        interval_ms=number("X-HubSpot-RateLimit-Interval-Milliseconds"),
        daily_max=number("X-HubSpot-RateLimit-Daily"),
        daily_remaining=number("X-HubSpot-RateLimit-Daily-Remaining"),
    )
    return None if limit == RateLimit() else limit


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())
