"""Bearer data APIs: account details, contacts, auth failures, scopes and rate limits (facts §5, §6)."""

from __future__ import annotations

import httpx
import pytest

from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant


@pytest.fixture
def access_token(http, grant: Grant) -> str:
    form = {"grant_type": "refresh_token", "client_id": grant.client_id, "client_secret": grant.client_secret,
            "refresh_token": grant.refresh_token}
    return http.post("/oauth/2026-03/token", data=form).json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("gen", ["v3", "2026-03"])
def test_account_details_for_an_oauth_token(http, access_token, gen):
    response = http.get(f"/account-info/{gen}/details", headers=bearer(access_token))
    assert response.status_code == 200
    body = response.json()
    assert (body["portalId"], body["dataHostingLocation"], body["uiDomain"]) == (HUB_ID, "na1", "app.hubspot.com")
    assert response.headers["X-HubSpot-RateLimit-Max"] == "100"
    assert response.headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert "X-HubSpot-RateLimit-Daily" not in response.headers  # not sent for OAuth calls


def test_private_app_calls_also_get_daily_headers_and_eu_details(http, sim: SimControl):
    app = sim.create_private_app(7001, [], hublet="eu1")
    response = http.get("/account-info/2026-03/details", headers=bearer(app.token))
    assert response.json()["dataHostingLocation"] == "eu1"
    assert response.json()["uiDomain"] == "app-eu1.hubspot.com"
    assert response.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert response.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    usage = http.get("/account-info/v3/api-usage/daily/private-apps", headers=bearer(app.token)).json()
    assert usage["results"][0]["currentUsage"] == 2


def test_missing_and_unknown_credentials_are_invalid_authentication(http, sim):
    missing = http.get("/account-info/2026-03/details")
    assert missing.status_code == 401
    assert missing.json()["category"] == "INVALID_AUTHENTICATION"
    assert missing.json()["message"].startswith("Authentication credentials not found.")
    unknown = http.get("/account-info/2026-03/details", headers=bearer("CJnot-a-token"))
    assert (unknown.status_code, unknown.json()["category"]) == (401, "INVALID_AUTHENTICATION")
    assert "X-HubSpot-RateLimit-Max" not in unknown.headers


def test_contacts_needs_the_contacts_scope(http, sim: SimControl, access_token):
    assert http.get("/crm/v3/objects/contacts", params={"limit": 1}, headers=bearer(access_token)).status_code == 200
    app = sim.create_private_app(HUB_ID, ["oauth"])
    response = http.get("/crm/v3/objects/contacts", headers=bearer(app.token))
    assert response.status_code == 403
    body = response.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.read"]


def test_account_details_needs_oauth_scope_for_oauth_tokens(http, sim: SimControl):
    app = sim.create_app()
    refresh = sim.install(app.client_id, HUB_ID, ["crm.objects.contacts.read"])
    form = {"grant_type": "refresh_token", "client_id": app.client_id, "client_secret": app.client_secret,
            "refresh_token": refresh}
    token = http.post("/oauth/2026-03/token", data=form).json()["access_token"]
    assert http.get("/account-info/2026-03/details", headers=bearer(token)).json()["category"] == "MISSING_SCOPES"


def test_client_credentials_tokens_cannot_read_account_data(http, grant):
    form = {"grant_type": "client_credentials", "client_id": grant.client_id, "client_secret": grant.client_secret}
    token = http.post("/oauth/2026-03/token", data=form).json()["access_token"]
    assert http.get("/account-info/2026-03/details", headers=bearer(token)).status_code == 401


def test_ten_secondly_limit_rolls_with_simulated_time(http, sim: SimControl, access_token):
    sim.configure(rate_limits={"ten_secondly_max": 3})
    statuses = [http.get("/account-info/v3/details", headers=bearer(access_token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = http.get("/account-info/v3/details", headers=bearer(access_token))
    assert refused.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert refused.json()["errorType"] == "RATE_LIMIT"
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    sim.advance(10)
    assert http.get("/account-info/v3/details", headers=bearer(access_token)).status_code == 200


def test_daily_limit_applies_to_private_apps_until_midnight(http, sim: SimControl):
    sim.configure(rate_limits={"daily_max": 2})
    app = sim.create_private_app(HUB_ID)
    assert [details(http, app.token) for _ in range(3)] == [200, 200, 429]
    body = http.get("/account-info/v3/details", headers=bearer(app.token)).json()
    assert (body["policyName"], body["message"]) == ("DAILY", "You have reached your daily limit.")
    sim.advance(86400)
    assert details(http, app.token) == 200


def details(http: httpx.Client, token: str) -> int:
    return http.get("/account-info/v3/details", headers=bearer(token)).status_code


def test_limits_are_per_app(http, sim: SimControl, access_token):
    sim.configure(rate_limits={"ten_secondly_max": 1})
    other = sim.create_private_app(HUB_ID)
    assert details(http, access_token) == 200
    assert details(http, access_token) == 429
    assert details(http, other.token) == 200


def test_optional_token_endpoint_limit(http, sim: SimControl, grant):
    sim.configure(rate_limits={"token_endpoint_ten_secondly_max": 2})
    form = {"grant_type": "refresh_token", "client_id": grant.client_id, "client_secret": grant.client_secret,
            "refresh_token": grant.refresh_token}
    statuses = [http.post("/oauth/2026-03/token", data=form).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
