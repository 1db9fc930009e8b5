"""Simulator responses and client requests validate against HubSpot's official OpenAPI specs.

Traffic is recorded from real HTTP exchanges (client <-> in-process simulator) and every exchange on a
path the specs document is validated with openapi-core: the request against the operation's parameters
and form schema, the response against the schema declared for its status, or the ``default`` (``Error``)
response for statuses the spec does not list (400/401/403/404/429/5xx).

Three documented gaps, handled explicitly rather than skipped:
* The specs declare error bodies as ``*/*``; openapi-core only parses JSON for JSON media types, so the
  validator is told to parse ``*/*`` as JSON (the simulator sends ``application/json``).
* ``DELETE /oauth/v1/refresh-tokens/{token}`` declares 204 with ``content: {}``; openapi-core then demands
  a body. An empty ``content`` map means "no body", so we assert the body is empty instead.
* ``POST /oauth/{v3,2026-03}/token/revoke`` declares no success response at all (only ``default``). The
  simulator answers RFC 7009's 200 with an empty body; we assert exactly that.
Paths outside the provided specs (``/oauth/v2/private-apps/...``, ``/crm/v3/objects/contacts``) are
recorded but not validated; their shapes are asserted in the simulator tests.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from hubspot_token_operator.hubspot import ApiGeneration, HubSpotClient
from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant

REPO_ROOT = Path(__file__).resolve().parents[2]
# HubSpot's official specs, copied into the repository (tests/data/hubspot-openapi/README.md says from where).
SPEC_DIR = Path(os.environ.get("HUBSPOT_OPENAPI_DIR") or REPO_ROOT / "tests" / "data" / "hubspot-openapi")
SPEC_SERVER = "https://api.hubapi.com"
REDIRECT = "https://app.example.com/cb"

# Longest prefix first: path prefix -> spec file.
SPEC_FOR_PREFIX = [
    ("/account-info/2026-03/activity/", "audit-logs-2026-03.json"),
    ("/account-info/2026-03/", "account-info-2026-03.json"),
    ("/account-info/v3/", "account-info-v3.json"),
    ("/oauth/2026-03/", "oauth-2026-03.json"),
    ("/oauth/v3/", "oauth-v3.json"),
    ("/oauth/v1/", "oauth-v1.json"),
]


def _json_from_bytes(value, **_kwargs):
    return json.loads(value)


@lru_cache(maxsize=None)
def load_spec(name: str) -> OpenAPI:
    path = SPEC_DIR / name
    if not path.exists():
        pytest.fail(f"official spec {path} not found (they live in tests/data/hubspot-openapi/; HUBSPOT_OPENAPI_DIR overrides)")
    config = Config(extra_media_type_deserializers={"*/*": _json_from_bytes})
    return OpenAPI.from_file_path(str(path), config=config)


def spec_name_for(path: str) -> str | None:
    return next((name for prefix, name in SPEC_FOR_PREFIX if path.startswith(prefix)), None)


def declared_response(spec: OpenAPI, template: str, method: str, status: int) -> dict:
    responses = (spec.spec / "paths" / template / method.lower() / "responses").read_value()
    return responses.get(str(status)) or responses["default"]


def path_template(spec: OpenAPI, path: str) -> str:
    for template in (spec.spec / "paths").keys():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template
    raise AssertionError(f"{path} is not in the spec")


@dataclass
class Recorder:
    """Collects finished responses (each knows its request) from httpx event hooks."""

    responses: list[httpx.Response] = field(default_factory=list)

    async def async_hook(self, response: httpx.Response) -> None:
        await response.aread()
        self.responses.append(response)

    def sync_hook(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)


def mock_request(request: httpx.Request) -> MockRequest:
    content_type = request.headers.get("Content-Type", "").split(";")[0] or "application/json"
    return MockRequest(
        SPEC_SERVER,
        request.method,
        request.url.path,
        args=dict(request.url.params),
        headers=dict(request.headers),
        data=request.content,
        content_type=content_type,
    )


def validate(response: httpx.Response, check_request: bool = True) -> tuple[str, str, str, int] | None:
    """Validate one exchange; returns (spec, method, template, status) when the specs cover its path."""
    request = response.request
    name = spec_name_for(request.url.path)
    if name is None:
        return None
    spec = load_spec(name)
    template = path_template(spec, request.url.path)
    openapi_request = mock_request(request)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unsupported scheme type")  # openapi-core skips oauth2 checks
        if check_request:
            spec.validate_request(openapi_request)
        declared = declared_response(spec, template, request.method, response.status_code)
        if template.endswith("/token/revoke") and response.status_code == 200:
            assert response.content == b"", "revoke success must have an empty body (spec declares none)"
        elif not declared.get("content") and "$ref" not in declared:
            assert response.content == b"", f"{template} {response.status_code} declares no body"
        else:
            content_type = response.headers.get("Content-Type", "").split(";")[0]
            spec.validate_response(
                openapi_request,
                MockResponse(response.content, response.status_code, dict(response.headers), content_type),
            )
    return name, request.method, template, response.status_code


def client_traffic(run, sim: SimControl, sim_url: str, grant: Grant, gen: ApiGeneration) -> list[httpx.Response]:
    recorder = Recorder()
    other = sim.create_app()
    unscoped = sim.install(grant.client_id, HUB_ID + 1, ["crm.objects.contacts.read"])
    pat = sim.create_private_app(HUB_ID, ["account-info.security.read"])

    async def scenario() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = HubSpotClient(sim_url, api_generation=gen, event_hooks={"response": [recorder.async_hook]})
        async with client:
            cid, csec, rt = grant.client_id, grant.client_secret, grant.refresh_token
            access = (await client.refresh(cid, csec, rt)).access_token
            await client.refresh(cid, "0" * 36, rt)  # 400 BAD_CLIENT_SECRET
            await client.refresh("unknown-client", csec, rt)  # 400 BAD_CLIENT_ID
            await client.refresh(other.client_id, other.client_secret, rt)  # 400 not issued to this client
            await client.refresh(cid, csec, "na1-0000-0000-0000-0000-000000000000")  # 400 BAD_REFRESH_TOKEN
            code = sim.auth_code(cid, HUB_ID, REDIRECT)
            await client.exchange_code(cid, csec, code, REDIRECT)
            await client.exchange_code(cid, csec, code, REDIRECT)  # 400 BAD_AUTH_CODE
            await client.introspect(cid, csec, access)
            await client.introspect(cid, csec, rt)
            await client.introspect(cid, csec, "CJunknown", "access_token")
            await client.introspect(cid, "0" * 36, rt)
            await client.check_liveness(access)
            await client.check_liveness(pat.token)
            await client.check_liveness("CJunknown")
            no_oauth_scope = (await client.refresh(cid, csec, unscoped)).access_token
            await client.check_liveness(no_oauth_scope)  # 403 MISSING_SCOPES
            sim.add_fault("rate_limit", "/", count=1)
            await client.check_liveness(access)  # 429 TEN_SECONDLY_ROLLING
            sim.add_fault("rate_limit", "/", count=1, policy="DAILY")
            await client.check_liveness(pat.token)  # 429 DAILY
            sim.add_fault("server_error", "/", count=2)
            await client.refresh(cid, csec, rt)  # 503
            await client.check_liveness(access)  # 503
            sim.advance(1801)
            await client.introspect(cid, csec, access)  # expired access token
            await client.check_liveness(access)  # 401 EXPIRED_AUTHENTICATION
            await client.revoke(cid, csec, rt)
            await client.revoke(cid, csec, rt)  # v1: 404; v3: 200 again
            await client.introspect(cid, csec, rt, "refresh_token")  # revoked refresh token

    run(scenario())
    return recorder.responses


EXPECTED = {
    ApiGeneration.V2026_03: {
        ("oauth-2026-03.json", "POST", "/oauth/2026-03/token", 200),
        ("oauth-2026-03.json", "POST", "/oauth/2026-03/token", 400),
        ("oauth-2026-03.json", "POST", "/oauth/2026-03/token", 503),
        ("oauth-2026-03.json", "POST", "/oauth/2026-03/token/introspect", 200),
        ("oauth-2026-03.json", "POST", "/oauth/2026-03/token/introspect", 400),
        ("oauth-2026-03.json", "POST", "/oauth/2026-03/token/revoke", 200),
        ("account-info-2026-03.json", "GET", "/account-info/2026-03/details", 200),
        ("account-info-2026-03.json", "GET", "/account-info/2026-03/details", 401),
        ("account-info-2026-03.json", "GET", "/account-info/2026-03/details", 403),
        ("account-info-2026-03.json", "GET", "/account-info/2026-03/details", 429),
        ("account-info-2026-03.json", "GET", "/account-info/2026-03/details", 503),
    },
    ApiGeneration.V3: {
        ("oauth-v3.json", "POST", "/oauth/v3/token", 200),
        ("oauth-v3.json", "POST", "/oauth/v3/token", 400),
        ("oauth-v3.json", "POST", "/oauth/v3/token/introspect", 200),
        ("oauth-v3.json", "POST", "/oauth/v3/token/introspect", 400),
        ("oauth-v3.json", "POST", "/oauth/v3/token/revoke", 200),
        ("account-info-v3.json", "GET", "/account-info/v3/details", 200),
        ("account-info-v3.json", "GET", "/account-info/v3/details", 401),
        ("account-info-v3.json", "GET", "/account-info/v3/details", 429),
    },
    ApiGeneration.V1: {
        ("oauth-v1.json", "POST", "/oauth/v1/token", 200),
        ("oauth-v1.json", "POST", "/oauth/v1/token", 400),
        ("oauth-v1.json", "GET", "/oauth/v1/access-tokens/{token}", 200),
        ("oauth-v1.json", "GET", "/oauth/v1/access-tokens/{token}", 404),
        ("oauth-v1.json", "GET", "/oauth/v1/refresh-tokens/{token}", 200),
        ("oauth-v1.json", "GET", "/oauth/v1/refresh-tokens/{token}", 404),
        ("oauth-v1.json", "DELETE", "/oauth/v1/refresh-tokens/{token}", 204),
        ("oauth-v1.json", "DELETE", "/oauth/v1/refresh-tokens/{token}", 404),
    },
}


@pytest.mark.parametrize("gen", list(ApiGeneration), ids=lambda g: g.value)
def test_client_requests_and_simulator_responses_conform(run, sim: SimControl, sim_url: str, grant: Grant, gen):
    responses = client_traffic(run, sim, sim_url, grant, gen)
    covered = {validate(response) for response in responses} - {None}
    missing = EXPECTED[gen] - covered
    assert not missing, f"scenario no longer exercises {sorted(missing)}"


def test_raw_simulator_responses_conform(sim: SimControl, sim_url: str, grant: Grant):
    """Responses the well-behaved client never provokes: malformed requests, other grants, audit feeds."""
    recorder = Recorder()
    pat = sim.create_private_app(HUB_ID, ["account-info.security.read"])
    sim.rotate_private_app(pat.app_id, expire="later")
    rotated = sim.rotate_private_app(pat.app_id, expire="now")
    creds = {"client_id": grant.client_id, "client_secret": grant.client_secret}
    bearer = {"Authorization": f"Bearer {rotated}"}
    checked_requests, unchecked_requests = [], []
    with httpx.Client(base_url=sim_url, event_hooks={"response": [recorder.sync_hook]}) as http:
        for gen in ("v1", "v3", "2026-03"):
            http.post(f"/oauth/{gen}/token", data={"grant_type": "client_credentials", **creds})
            code = sim.auth_code(grant.client_id, HUB_ID, REDIRECT)
            http.post(f"/oauth/{gen}/token", data={"grant_type": "authorization_code", "code": code,
                                                    "redirect_uri": "https://wrong.example.com/", **creds})
            sim.advance(301)
            http.post(f"/oauth/{gen}/token", data={"grant_type": "authorization_code", "code": code,
                                                    "redirect_uri": REDIRECT, **creds})
        checked_requests = list(recorder.responses)
        http.post("/oauth/2026-03/token", json={"grant_type": "refresh_token", **creds})  # JSON body: 400
        http.post("/oauth/v3/token", params=creds, data={"grant_type": "refresh_token"})  # query creds: 400
        unchecked_requests = recorder.responses[len(checked_requests):]
        for gen in ("v3", "2026-03"):
            http.get(f"/account-info/{gen}/api-usage/daily/private-apps", headers=bearer)
        http.get("/account-info/2026-03/activity/security", params={"limit": 2}, headers=bearer)
        http.get("/account-info/2026-03/activity/audit-logs", params={"limit": 2}, headers=bearer)
        http.get("/account-info/2026-03/activity/audit-logs", params={"after": "2"}, headers=bearer)

    statuses = [r.status_code for r in recorder.responses]
    assert statuses.count(200) >= 8 and statuses.count(400) >= 8
    for response in recorder.responses:
        validate(response, check_request=response not in unchecked_requests)
    bodies = [r.json() for r in recorder.responses if r.status_code == 400]
    assert {"BAD_GRANT_TYPE", "MISMATCH_REDIRECT_URI_AUTH_CODE", "EXPIRED_AUTH_CODE", "BAD_REQUEST"} <= {
        b["status"] for b in bodies
    }


def test_the_validator_really_rejects_nonconforming_bodies(sim):
    """Guard against a silently permissive setup: wrong shapes must fail."""
    spec = load_spec("oauth-2026-03.json")
    request = MockRequest(SPEC_SERVER, "post", "/oauth/2026-03/token", content_type="application/x-www-form-urlencoded",
                          data=b"grant_type=refresh_token")
    bad_bodies = [
        (200, {"access_token": "a", "expires_in": 1800, "token_type": "bearer", "token_use": "bogus"}),
        (200, {"accessToken": "a", "expiresIn": 1800}),  # camelCase, as some doc pages render it
        (200, {"access_token": "a", "expires_in": 1800, "token_type": "bearer", "token_use": "access_token",
               "refresh_token": "r", "hub_id": 2**40}),  # hub_id beyond int32
        (400, {"status": "BAD_REFRESH_TOKEN", "message": "m"}),  # legacy body without category/correlationId
        (400, {"message": "m", "category": "VALIDATION_ERROR", "correlationId": "not-a-uuid"}),
    ]
    for status, body in bad_bodies:
        with pytest.raises(Exception):
            spec.validate_response(request, MockResponse(json.dumps(body).encode(), status, {}, "application/json"))
