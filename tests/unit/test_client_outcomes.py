"""Pure pieces of the client: error classification table, Secret, header parsing, single flight."""

from __future__ import annotations

import asyncio
import copy
import pickle
from datetime import datetime, timezone

import httpx
import pytest

from hubspot_token_operator.hubspot import ErrorKind, Reason, Secret
from hubspot_token_operator.hubspot.classify import (
    classify_exception,
    classify_status,
    parse_rate_limit,
    parse_retry_after,
    unexpected_response,
)
from hubspot_token_operator.hubspot.generations import looks_like_refresh_token
from hubspot_token_operator.hubspot.logsafety import redact_paths
from hubspot_token_operator.hubspot.outcomes import RateLimit
from hubspot_token_operator.hubspot.secret import redact
from hubspot_token_operator.hubspot.singleflight import SingleFlight

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def oauth_body(status: str, error: str, message: str) -> dict:
    return {"status": status, "error": error, "message": message, "error_description": message,
            "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf"}


@pytest.mark.parametrize(
    ("http_status", "body", "headers", "bearer", "kind", "reason", "retry_after"),
    [
        (400, oauth_body("BAD_REFRESH_TOKEN", "invalid_grant", "refresh token is invalid, expired or revoked"), {},
         False, ErrorKind.TERMINAL, Reason.INVALID_GRANT, None),
        (400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}, {},
         False, ErrorKind.TERMINAL, Reason.INVALID_GRANT, None),
        (400, {"message": "refresh token was not issued to this client", "status": "error"}, {},
         False, ErrorKind.TERMINAL, Reason.NOT_ISSUED_TO_CLIENT, None),
        (400, oauth_body("BAD_CLIENT_ID", "invalid_client", "x"), {}, False, ErrorKind.TERMINAL, Reason.INVALID_CLIENT, None),
        (400, {"error": "invalid_client"}, {}, False, ErrorKind.TERMINAL, Reason.INVALID_CLIENT, None),
        (400, oauth_body("EXPIRED_AUTH_CODE", "invalid_grant", "x"), {}, False, ErrorKind.TERMINAL, Reason.INVALID_GRANT, None),
        (400, {"status": "BAD_GRANT_TYPE"}, {}, False, ErrorKind.TERMINAL, Reason.BAD_REQUEST, None),
        (401, {"category": "INVALID_AUTHENTICATION"}, {}, False, ErrorKind.TERMINAL, Reason.INVALID_CLIENT, None),
        (401, {"category": "INVALID_AUTHENTICATION"}, {}, True, ErrorKind.INVALID_TOKEN, Reason.INVALID_TOKEN, None),
        (401, {"category": "EXPIRED_AUTHENTICATION"}, {}, True, ErrorKind.INVALID_TOKEN, Reason.EXPIRED_TOKEN, None),
        (401, None, {}, True, ErrorKind.INVALID_TOKEN, Reason.INVALID_TOKEN, None),
        (403, {"category": "MISSING_SCOPES"}, {}, True, ErrorKind.FORBIDDEN, Reason.MISSING_SCOPES, None),
        (403, {"category": "USER_DOES_NOT_HAVE_PERMISSIONS"}, {}, True, ErrorKind.FORBIDDEN, Reason.FORBIDDEN, None),
        (429, {"policyName": "TEN_SECONDLY_ROLLING"}, {}, False, ErrorKind.RETRYABLE, Reason.RATE_LIMITED, 10.0),
        (429, {"message": "You have reached your rate limit."}, {}, False, ErrorKind.RETRYABLE, Reason.RATE_LIMITED, 10.0),
        (429, {"policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "2"}, True, ErrorKind.RETRYABLE, Reason.RATE_LIMITED, 2.0),
        (429, {"policyName": "DAILY"}, {}, True, ErrorKind.RETRYABLE, Reason.DAILY_RATE_LIMITED, 3600.0),
        (429, {"policyName": "DAILY"}, {"Retry-After": "120"}, True, ErrorKind.RETRYABLE, Reason.DAILY_RATE_LIMITED, 120.0),
        (500, None, {}, False, ErrorKind.RETRYABLE, Reason.SERVER_ERROR, None),
        (503, {"category": "INTERNAL_ERROR"}, {"Retry-After": "5"}, False, ErrorKind.RETRYABLE, Reason.SERVER_ERROR, 5.0),
        (408, None, {}, False, ErrorKind.RETRYABLE, Reason.SERVER_ERROR, None),
        (404, {"category": "OBJECT_NOT_FOUND"}, {}, False, ErrorKind.TERMINAL, Reason.NOT_FOUND, None),
        (409, None, {}, False, ErrorKind.TERMINAL, Reason.UNEXPECTED_STATUS, None),
        (302, "<html>", {}, False, ErrorKind.TERMINAL, Reason.UNEXPECTED_STATUS, None),
    ],
)
def test_classification_table(http_status, body, headers, bearer, kind, reason, retry_after):
    failure = classify_status("op", http_status, body, httpx.Headers(headers), NOW, bearer)
    assert (failure.kind, failure.reason, failure.retry_after_seconds) == (kind, reason, retry_after)
    assert failure.http_status == http_status and not failure.ok
    assert failure.message.startswith("op: ")


def test_message_keeps_hubspot_prose_only():
    body = {"status": "BAD_REFRESH_TOKEN", "message": "refresh token is invalid, expired or revoked"}
    failure = classify_status("refresh", 400, body, httpx.Headers(), NOW, False)
    assert failure.message.endswith(": refresh token is invalid, expired or revoked")
    assert str(failure).startswith("TERMINAL/InvalidGrant: refresh:")


SECRET = "na1-3f9a77c2-bbbb-4c1e-9d2a-1234567890ab"


@pytest.mark.parametrize("echo", [
    f"token {SECRET} is invalid",  # verbatim (redacted) and anything else token-shaped
    "token na1%2D3f9a77c2%2Dbbbb is invalid",  # URL-encoded
    "token bmExLTNmOWE3N2My is invalid",  # base64
    "token na1-3f9a77 is invalid",  # truncated prefix
    "x" * 500,  # unbounded junk
])
def test_server_text_that_could_carry_a_token_never_reaches_the_message(echo):
    body = {"status": "BAD_REFRESH_TOKEN", "message": echo}
    failure = classify_status("refresh", 400, body, httpx.Headers(), NOW, False, secrets=[SECRET])
    assert failure.message.startswith("refresh: grant rejected; re-authorisation needed (HTTP 400 BAD_REFRESH_TOKEN)")
    for fragment in ("3f9a77", "%2D", "bmExLTNm", "x" * 20):
        assert fragment not in failure.message, fragment


def test_a_server_supplied_code_must_look_like_a_code():
    body = {"status": "error", "category": "na1-3f9a77c2-bbbb", "message": "nope"}
    failure = classify_status("op", 500, body, httpx.Headers(), NOW, False)
    assert "na1-3f9a77c2" not in failure.message and failure.hubspot_status is None


@pytest.mark.parametrize(
    ("exc", "kind", "reason"),
    [
        (httpx.ConnectTimeout("x"), ErrorKind.RETRYABLE, Reason.TIMEOUT),
        (httpx.ReadTimeout("x"), ErrorKind.RETRYABLE, Reason.TIMEOUT),
        (httpx.WriteTimeout("x"), ErrorKind.RETRYABLE, Reason.TIMEOUT),
        (httpx.PoolTimeout("x"), ErrorKind.RETRYABLE, Reason.TIMEOUT),
        (httpx.ConnectError("x"), ErrorKind.RETRYABLE, Reason.CONNECTION_ERROR),
        (httpx.RemoteProtocolError("x"), ErrorKind.RETRYABLE, Reason.CONNECTION_ERROR),
        (httpx.ReadError("x"), ErrorKind.RETRYABLE, Reason.CONNECTION_ERROR),
        (httpx.UnsupportedProtocol("x"), ErrorKind.TERMINAL, Reason.BAD_CONFIGURATION),
        (httpx.InvalidURL("x"), ErrorKind.TERMINAL, Reason.BAD_CONFIGURATION),
    ],
)
def test_exception_classification_reports_only_the_type(exc, kind, reason):
    exc.args = ("GET https://api.hubapi.com/oauth/v1/access-tokens/CJsecret failed",)
    failure = classify_exception("introspect", exc)
    assert (failure.kind, failure.reason) == (kind, reason)
    assert "CJsecret" not in failure.message and type(exc).__name__ in failure.message


def test_unexpected_success_body_is_retryable():
    failure = unexpected_response("refresh", 200, "access_token: missing", None)
    assert (failure.kind, failure.reason) == (ErrorKind.RETRYABLE, Reason.UNEXPECTED_RESPONSE)


def test_rate_limit_headers():
    headers = httpx.Headers({"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "7",
                             "X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Daily": "x"})
    assert parse_rate_limit(headers) == RateLimit(max=190, remaining=7, interval_ms=10000)
    assert parse_rate_limit(httpx.Headers()) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 0 ", 0.0), ("Sun, 22 Nov 2026 08:01:00 GMT", 60.0), ("Sun, 22 Nov 2026 07:00:00 GMT", 0.0),
     ("soon", None), ("", None), (None, None), ("-5", None)],
)
def test_retry_after(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


class TestSecret:
    def test_never_prints_its_value(self):
        secret = Secret("pat-na1-11111111-2222-3333-4444-555555555555")
        for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, f"{secret:>80}"):
            assert "11111111" not in text and "sha256:" in text
        assert secret.reveal().startswith("pat-na1-")

    def test_equality_hash_and_wrapping(self):
        assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
        assert len({Secret("a"), Secret("a")}) == 1
        assert Secret(Secret("a")) == Secret("a")
        with pytest.raises(TypeError):
            Secret(123)  # type: ignore[arg-type]

    def test_refuses_pickling_but_copies(self):
        with pytest.raises(TypeError):
            pickle.dumps(Secret("a"))
        secret = Secret("a")
        assert copy.copy(secret) is secret and copy.deepcopy({"k": secret})["k"] is secret

    def test_redact(self):
        assert redact("a secret-value b", [Secret("secret-value"), None, "b"]) == "a *** b"
        assert redact("abc", ["abc"]) == "abc"  # too short to be a secret worth hiding


def test_v1_token_paths_are_redacted_in_log_text():
    line = 'HTTP Request: GET http://h/oauth/v1/access-tokens/CJabc-_x "HTTP/1.1 200 OK"'
    assert redact_paths(line) == 'HTTP Request: GET http://h/oauth/v1/access-tokens/{token} "HTTP/1.1 200 OK"'
    assert "na1-1" not in redact_paths("/oauth/v1/refresh-tokens/na1-1234?x=1")


@pytest.mark.parametrize(("token", "expected"), [("na1-ab12-cd34-ef56-ab78-abcdef123456", True),
                                                 ("eu1-0000-1111", True), ("CJSP5qf1KhICAQEY", False), ("pat-na1-x", False)])
def test_refresh_token_shape(token, expected):
    assert looks_like_refresh_token(token) is expected


class TestSingleFlight:
    def test_keys_are_keyed_digests(self):
        first, second = SingleFlight(), SingleFlight()
        key = first.key("https://api.hubapi.com", "client", "na1-refresh")
        assert "na1-refresh" not in key and len(key) == 64
        assert key == first.key("https://api.hubapi.com", "client", "na1-refresh")
        assert key != second.key("https://api.hubapi.com", "client", "na1-refresh")  # per-process HMAC key
        assert first.key("a", "bc") != first.key("ab", "c")

    def test_concurrent_calls_share_one_execution_and_errors(self):
        flight: SingleFlight[int] = SingleFlight()
        calls = 0

        async def work() -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            return 42

        async def boom() -> int:
            await asyncio.sleep(0.01)
            raise RuntimeError("x")

        async def scenario():
            results = await asyncio.gather(*(flight.run("k", work) for _ in range(5)))
            errors = await asyncio.gather(*(flight.run("e", boom) for _ in range(3)), return_exceptions=True)
            return results, errors, flight.in_flight()

        results, errors, left = asyncio.run(scenario())
        assert results == [42] * 5 and calls == 1 and left == 0
        assert all(isinstance(e, RuntimeError) for e in errors)
