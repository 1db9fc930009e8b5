"""Error responses in HubSpot's shapes.

Every body carries the three fields the specs' shared ``Error`` schema requires (``category``,
``correlationId``, ``message``), so each one validates against the spec's ``default`` response, plus the
legacy fields clients really branch on: OAuth errors add ``status``/``error``/``error_description``
(facts §2.1), 429s add ``policyName``/``errorType`` (facts §5.3).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import minting
from .bearer import Rejection
from .oauth_grants import OAuthFailure

SCOPES_LINK = "https://developers.hubspot.com/scopes"
_RATE_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "DAILY": "You have reached your daily limit.",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def hubspot_error(
    http_status: int,
    category: str,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body = {"status": "error", "message": message, "correlationId": minting.correlation_id(), "category": category}
    body.update({k: v for k, v in extra.items() if v is not None})
    return json_response(body, status=http_status, headers=headers)


def oauth_error(failure: OAuthFailure, http_status: int = 400, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "status": failure.status,
        "message": failure.message,
        "error": failure.error,
        "error_description": failure.message,
        "correlationId": minting.correlation_id(),
        "category": "VALIDATION_ERROR",
    }
    return json_response(body, status=http_status, headers=headers)


def rate_limited(policy: str, headers: dict[str, str] | None = None, retry_after: int | None = None) -> web.Response:
    all_headers = dict(headers or {})
    if retry_after is not None:
        all_headers["Retry-After"] = str(retry_after)
    return hubspot_error(
        429,
        "RATE_LIMITS",
        _RATE_MESSAGES[policy],
        headers=all_headers,
        errorType="RATE_LIMIT",
        policyName=policy,
        requestId=minting.correlation_id(),
    )


def unauthenticated(rejection: Rejection) -> web.Response:
    return hubspot_error(401, rejection.category, rejection.message)


def missing_scopes(required: list[str], headers: dict[str, str] | None = None) -> web.Response:
    return hubspot_error(
        403,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. "
        f"Read more about required scopes here: {SCOPES_LINK}.",
        headers=headers,
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": list(required)},
            }
        ],
        links={"scopes": SCOPES_LINK},
    )


def server_error(http_status: int) -> web.Response:
    return hubspot_error(http_status, "INTERNAL_ERROR", "internal error", subCategory="SIMULATED_FAULT")


def not_found(message: str) -> web.Response:
    return hubspot_error(404, "OBJECT_NOT_FOUND", message)


def validation_error(message: str, context: dict[str, list[str]] | None = None, sub_category: str | None = None):
    return hubspot_error(400, "VALIDATION_ERROR", message, context=context, subCategory=sub_category)
