"""The simulator's OAuth endpoints behave like HubSpot's (facts §1–§3), for all three generations."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant

GENERATIONS = ["v1", "v3", "2026-03"]
REDIRECT = "https://app.example.com/oauth/callback"


def refresh_form(grant: Grant, **override: str) -> dict[str, str]:
    form = {
        "grant_type": "refresh_token",
        "client_id": grant.client_id,
        "client_secret": grant.client_secret,
        "refresh_token": grant.refresh_token,
    }
    form.update(override)
    return form


@pytest.mark.parametrize("gen", GENERATIONS)
def test_refresh_returns_snake_case_token_body(http, grant, gen):
    response = http.post(f"/oauth/{gen}/token", data=refresh_form(grant))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["token_use"] == "access_token"
    assert body["expires_in"] == 1800
    assert body["hub_id"] == HUB_ID
    assert body["refresh_token"] == grant.refresh_token  # stable by default
    assert body["scopes"] == ["oauth", "crm.objects.contacts.read"]
    assert isinstance(body["user_id"], int)
    assert body["access_token"].startswith("CJ") and len(body["access_token"]) < 300
    assert re.fullmatch(r"na1-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", grant.refresh_token)
    assert response.headers["Cache-Control"] == "no-store"


def test_each_refresh_issues_a_new_access_token(http, grant):
    first = http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()["access_token"]
    second = http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()["access_token"]
    assert first != second


@pytest.mark.parametrize(
    ("override", "status", "error", "message"),
    [
        ({"refresh_token": "na1-0000-0000-0000-0000-000000000000"}, "BAD_REFRESH_TOKEN", "invalid_grant",
         "refresh token is invalid, expired or revoked"),
        ({"client_secret": "wrong"}, "BAD_CLIENT_SECRET", "invalid_client", "missing or invalid client secret"),
        ({"client_id": "unknown"}, "BAD_CLIENT_ID", "invalid_client", "missing or unknown client id"),
        ({"grant_type": "password"}, "BAD_GRANT_TYPE", "unsupported_grant_type", "missing or unknown grant type"),
    ],
)
def test_token_errors_carry_legacy_and_rfc_fields(http, grant, override, status, error, message):
    response = http.post("/oauth/2026-03/token", data=refresh_form(grant, **override))
    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["error"], body["message"], body["error_description"]) == (status, error, message, message)
    assert re.fullmatch(r"[0-9a-f-]{36}", body["correlationId"])


def test_refresh_token_of_another_app_is_not_issued_to_this_client(http, sim: SimControl, grant):
    other = sim.create_app()
    response = http.post(
        "/oauth/2026-03/token",
        data=refresh_form(grant, client_id=other.client_id, client_secret=other.client_secret),
    )
    assert response.status_code == 400
    assert response.json()["message"] == "refresh token was not issued to this client"
    assert response.json()["error"] == "invalid_grant"


def test_json_body_is_rejected_as_bad_grant_type(http, grant):
    response = http.post("/oauth/2026-03/token", json=refresh_form(grant))
    assert response.status_code == 400
    assert response.json()["status"] == "BAD_GRANT_TYPE"


def test_only_v1_accepts_credentials_in_the_query_string(http, grant):
    query = {"client_secret": grant.client_secret, "refresh_token": grant.refresh_token}
    form = {"grant_type": "refresh_token", "client_id": grant.client_id}
    assert http.post("/oauth/v1/token", params=query, data=form).status_code == 200
    for gen in ("v3", "2026-03"):
        response = http.post(f"/oauth/{gen}/token", params=query, data=form)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


def test_uninstall_kills_refresh_and_access_tokens(http, sim: SimControl, grant):
    access = http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()["access_token"]
    sim.uninstall(grant.refresh_token)
    response = http.post("/oauth/2026-03/token", data=refresh_form(grant))
    assert response.json()["status"] == "BAD_REFRESH_TOKEN"
    details = http.get("/account-info/2026-03/details", headers={"Authorization": f"Bearer {access}"})
    assert details.status_code == 401


def test_rotating_mode_replaces_the_refresh_token_and_kills_the_old_one(http, sim: SimControl, grant):
    sim.configure(refresh_token_mode="rotating")
    body = http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()
    assert body["refresh_token"] != grant.refresh_token
    assert http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()["status"] == "BAD_REFRESH_TOKEN"
    again = http.post("/oauth/2026-03/token", data=refresh_form(grant, refresh_token=body["refresh_token"]))
    assert again.status_code == 200


class TestRefreshTokenReuseGrace:
    """Rotating mode with ``refresh_token_reuse_grace_seconds``: a lost rotation answer can be retried."""

    def rotate(self, http, grant: Grant, refresh_token: str | None = None) -> httpx.Response:
        return http.post("/oauth/2026-03/token", data=refresh_form(grant, refresh_token=refresh_token or grant.refresh_token))

    def test_strict_by_default(self, http, sim: SimControl, grant):
        assert sim.configure(refresh_token_mode="rotating")["refresh_token_reuse_grace_seconds"] == 0
        assert self.rotate(http, grant).status_code == 200
        again = self.rotate(http, grant)
        assert again.status_code == 400 and again.json()["status"] == "BAD_REFRESH_TOKEN"
        assert sim.stats()["refresh_token_reuses"] == 0

    def test_old_token_within_grace_gets_the_same_successor_and_a_new_access_token(self, http, sim: SimControl, grant):
        sim.configure(refresh_token_mode="rotating", refresh_token_reuse_grace_seconds=60)
        first = self.rotate(http, grant).json()
        assert first["refresh_token"] != grant.refresh_token
        retry = self.rotate(http, grant)
        assert retry.status_code == 200
        body = retry.json()
        assert body["refresh_token"] == first["refresh_token"]
        assert body["access_token"] != first["access_token"]
        assert body["expires_in"] == 1800 and body["hub_id"] == HUB_ID
        assert sim.stats()["refresh_token_reuses"] == 1
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert http.get("/account-info/2026-03/details", headers=bearer).status_code == 200
        # the successor is the live token; the old one is still reported as retired
        assert http.get(f"/oauth/v1/refresh-tokens/{first['refresh_token']}").status_code == 200
        assert http.get(f"/oauth/v1/refresh-tokens/{grant.refresh_token}").status_code == 404
        # using the successor rotates normally
        nxt = self.rotate(http, grant, first["refresh_token"]).json()
        assert nxt["refresh_token"] not in (grant.refresh_token, first["refresh_token"])

    def test_grace_ends_after_its_time_in_simulated_seconds(self, http, sim: SimControl, grant):
        sim.configure(refresh_token_mode="rotating", refresh_token_reuse_grace_seconds=60)
        assert self.rotate(http, grant).status_code == 200
        sim.advance(59)
        assert self.rotate(http, grant).status_code == 200
        sim.advance(2)
        late = self.rotate(http, grant)
        assert late.status_code == 400 and late.json()["status"] == "BAD_REFRESH_TOKEN"

    def test_grace_ends_once_the_successor_was_used(self, http, sim: SimControl, grant):
        sim.configure(refresh_token_mode="rotating", refresh_token_reuse_grace_seconds=60)
        successor = self.rotate(http, grant).json()["refresh_token"]
        assert self.rotate(http, grant, successor).status_code == 200
        reuse = self.rotate(http, grant)
        assert reuse.status_code == 400 and reuse.json()["status"] == "BAD_REFRESH_TOKEN"

    def test_revoke_or_uninstall_ends_the_grace(self, http, sim: SimControl, grant):
        sim.configure(refresh_token_mode="rotating", refresh_token_reuse_grace_seconds=60)
        successor = self.rotate(http, grant).json()["refresh_token"]
        revoke = {"client_id": grant.client_id, "client_secret": grant.client_secret, "token": grant.refresh_token}
        assert http.post("/oauth/2026-03/token/revoke", data=revoke).status_code == 200
        assert self.rotate(http, grant).json()["status"] == "BAD_REFRESH_TOKEN"
        assert self.rotate(http, grant, successor).status_code == 200  # revoking the old one spares the live one

        other = sim.install(grant.client_id, HUB_ID, ["oauth"])
        newer = self.rotate(http, grant, other).json()["refresh_token"]
        sim.uninstall(newer)
        assert self.rotate(http, grant, other).json()["status"] == "BAD_REFRESH_TOKEN"

    def test_grace_is_still_bound_to_the_client(self, http, sim: SimControl, grant):
        sim.configure(refresh_token_mode="rotating", refresh_token_reuse_grace_seconds=60)
        assert self.rotate(http, grant).status_code == 200
        other = sim.create_app()
        stolen = http.post("/oauth/2026-03/token", data=refresh_form(
            grant, client_id=other.client_id, client_secret=other.client_secret))
        assert stolen.json()["message"] == "refresh token was not issued to this client"

    def test_negative_grace_is_refused(self, sim: SimControl):
        with pytest.raises(httpx.HTTPStatusError):
            sim.configure(refresh_token_reuse_grace_seconds=-1)


def test_access_token_lifetime_is_configurable_and_follows_simulated_time(http, sim: SimControl, grant):
    sim.configure(access_token_lifetime_seconds=60)
    body = http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()
    assert body["expires_in"] == 60
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert http.get("/account-info/2026-03/details", headers=bearer).status_code == 200
    sim.advance(61 + 5 * 60)
    expired = http.get("/account-info/2026-03/details", headers=bearer)
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert expired.json()["message"] == "The OAuth token used to make this call expired 5 minute(s) ago."


class TestAuthorizationCode:
    def test_code_is_exchanged_once(self, http, sim: SimControl):
        app = sim.create_app(redirect_uri=REDIRECT)
        code = sim.auth_code(app.client_id, HUB_ID, REDIRECT, ["oauth"])
        form = {"grant_type": "authorization_code", "client_id": app.client_id, "client_secret": app.client_secret,
                "code": code, "redirect_uri": REDIRECT}
        first = http.post("/oauth/2026-03/token", data=form)
        assert first.status_code == 200
        assert first.json()["refresh_token"].startswith("na1-")
        second = http.post("/oauth/2026-03/token", data=form)
        assert second.json()["status"] == "BAD_AUTH_CODE"

    def test_redirect_uri_must_match(self, http, sim: SimControl):
        app = sim.create_app()
        code = sim.auth_code(app.client_id, HUB_ID, REDIRECT)
        form = {"grant_type": "authorization_code", "client_id": app.client_id, "client_secret": app.client_secret,
                "code": code, "redirect_uri": "https://evil.example.com/"}
        assert http.post("/oauth/v3/token", data=form).json()["status"] == "MISMATCH_REDIRECT_URI_AUTH_CODE"

    def test_code_expires_in_simulated_time(self, http, sim: SimControl):
        app = sim.create_app()
        code = sim.auth_code(app.client_id, HUB_ID, REDIRECT)
        sim.advance(301)
        form = {"grant_type": "authorization_code", "client_id": app.client_id, "client_secret": app.client_secret,
                "code": code, "redirect_uri": REDIRECT}
        assert http.post("/oauth/v1/token", data=form).json()["status"] == "EXPIRED_AUTH_CODE"

    def test_pkce_verifier_is_checked(self, http, sim: SimControl):
        app = sim.create_app()
        verifier = "a" * 50
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        code = sim.auth_code(app.client_id, HUB_ID, REDIRECT, code_challenge=challenge)
        form = {"grant_type": "authorization_code", "client_id": app.client_id, "client_secret": app.client_secret,
                "code": code, "redirect_uri": REDIRECT}
        assert http.post("/oauth/2026-03/token", data={**form, "code_verifier": "b" * 50}).status_code == 400
        assert http.post("/oauth/2026-03/token", data={**form, "code_verifier": verifier}).status_code == 200

    def test_registered_redirect_uri_is_enforced_when_minting(self, sim: SimControl):
        app = sim.create_app(redirect_uri=REDIRECT)
        with pytest.raises(httpx.HTTPStatusError):
            sim.auth_code(app.client_id, HUB_ID, "https://other.example.com/")


def test_client_credentials_has_no_refresh_token(http, grant):
    form = {"grant_type": "client_credentials", "client_id": grant.client_id, "client_secret": grant.client_secret,
            "scope": "developer.webhooks_journal.read"}
    body = http.post("/oauth/2026-03/token", data=form).json()
    assert body["token_use"] == "client_credentials"
    assert "refresh_token" not in body and "hub_id" not in body
    assert body["scopes"] == ["developer.webhooks_journal.read"]


class TestIntrospection:
    def introspect(self, http, grant, token, gen="2026-03", **extra):
        form = {"client_id": grant.client_id, "client_secret": grant.client_secret, "token": token, **extra}
        return http.post(f"/oauth/{gen}/token/introspect", data=form)

    @pytest.mark.parametrize("gen", ["v3", "2026-03"])
    def test_access_and_refresh_tokens(self, http, grant, gen):
        access = http.post(f"/oauth/{gen}/token", data=refresh_form(grant)).json()["access_token"]
        a = self.introspect(http, grant, access, gen).json()
        assert (a["active"], a["token_use"], a["hub_id"], a["client_id"]) == (True, "access_token", HUB_ID, grant.client_id)
        assert 0 < a["expires_in"] <= 1800
        assert a["signed_access_token"]["hubId"] == HUB_ID
        r = self.introspect(http, grant, grant.refresh_token, gen, token_type_hint="refresh_token").json()
        assert (r["active"], r["token_use"]) == (True, "refresh_token")

    def test_expired_access_token_is_inactive(self, http, sim: SimControl, grant):
        access = http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()["access_token"]
        sim.advance(1801)
        body = self.introspect(http, grant, access).json()
        assert (body["active"], body["expires_in"]) == (False, 0)

    def test_unknown_token_is_a_validation_error(self, http, grant):
        response = self.introspect(http, grant, "CJnope")
        assert response.status_code == 400
        assert response.json()["context"] == {"token": ["Token is invalid"]}

    def test_another_clients_token_is_not_disclosed(self, http, sim: SimControl, grant):
        other = sim.create_app()
        form = {"client_id": other.client_id, "client_secret": other.client_secret, "token": grant.refresh_token}
        assert http.post("/oauth/2026-03/token/introspect", data=form).status_code == 400

    def test_bad_client_secret(self, http, grant):
        form = {"client_id": grant.client_id, "client_secret": "nope", "token": grant.refresh_token}
        response = http.post("/oauth/v3/token/introspect", data=form)
        assert response.json()["status"] == "BAD_CLIENT_SECRET"


class TestRevocation:
    @pytest.mark.parametrize("gen", ["v3", "2026-03"])
    def test_revoking_refresh_token_leaves_access_tokens_working(self, http, grant, gen):
        access = http.post(f"/oauth/{gen}/token", data=refresh_form(grant)).json()["access_token"]
        form = {"client_id": grant.client_id, "client_secret": grant.client_secret, "token": grant.refresh_token}
        response = http.post(f"/oauth/{gen}/token/revoke", data=form)
        assert (response.status_code, response.content) == (200, b"")
        assert http.post(f"/oauth/{gen}/token", data=refresh_form(grant)).status_code == 400
        bearer = {"Authorization": f"Bearer {access}"}
        assert http.get("/account-info/v3/details", headers=bearer).status_code == 200

    def test_revoking_access_token(self, http, grant):
        access = http.post("/oauth/2026-03/token", data=refresh_form(grant)).json()["access_token"]
        form = {"client_id": grant.client_id, "client_secret": grant.client_secret, "token": access,
                "token_type_hint": "access_token"}
        assert http.post("/oauth/2026-03/token/revoke", data=form).status_code == 200
        assert http.get("/account-info/v3/details", headers={"Authorization": f"Bearer {access}"}).status_code == 401

    def test_unknown_token_revocation_still_succeeds(self, http, grant):
        form = {"client_id": grant.client_id, "client_secret": grant.client_secret, "token": "whatever"}
        assert http.post("/oauth/2026-03/token/revoke", data=form).status_code == 200


class TestV1Metadata:
    def test_access_token_info(self, http, grant):
        access = http.post("/oauth/v1/token", data=refresh_form(grant)).json()["access_token"]
        body = http.get(f"/oauth/v1/access-tokens/{access}").json()
        assert (body["hub_id"], body["token_type"], body["token"]) == (HUB_ID, "access", access)
        assert body["expires_in"] <= 1800

    def test_refresh_token_info_and_delete(self, http, grant):
        info = http.get(f"/oauth/v1/refresh-tokens/{grant.refresh_token}")
        assert info.json()["client_id"] == grant.client_id
        assert http.delete(f"/oauth/v1/refresh-tokens/{grant.refresh_token}").status_code == 204
        assert http.get(f"/oauth/v1/refresh-tokens/{grant.refresh_token}").status_code == 404
        assert http.delete(f"/oauth/v1/refresh-tokens/{grant.refresh_token}").status_code == 404

    def test_unknown_access_token_is_404(self, http, sim):
        assert http.get("/oauth/v1/access-tokens/CJunknown").status_code == 404


class TestAuthorizeEndpoint:
    """``GET /oauth/authorize``: the consent screen's stand-in, driven by ``POST /_sim/consent``."""

    LOOPBACK = "http://127.0.0.1:8765/callback"

    def _authorize(self, http, app, **params):
        query = {"client_id": app.client_id, "scope": "oauth crm.objects.contacts.read",
                 "redirect_uri": self.LOOPBACK, "state": "st-1", **params}
        return http.get("/oauth/authorize", params=query, follow_redirects=False)

    def test_approved_consent_redirects_with_a_code_that_exchanges_for_the_chosen_hub(self, http, sim: SimControl):
        app = sim.create_app()
        sim.consent(HUB_ID)
        response = self._authorize(http, app, optional_scope="crm.objects.deals.read")
        assert response.status_code == 302 and response.headers["Cache-Control"] == "no-store"
        location = httpx.URL(response.headers["Location"])
        assert str(location).startswith(self.LOOPBACK + "?")
        assert location.params["state"] == "st-1"
        form = {"grant_type": "authorization_code", "client_id": app.client_id, "client_secret": app.client_secret,
                "code": location.params["code"], "redirect_uri": self.LOOPBACK}
        body = http.post("/oauth/2026-03/token", data=form).json()
        assert body["hub_id"] == HUB_ID
        assert body["scopes"] == ["oauth", "crm.objects.contacts.read", "crm.objects.deals.read"]
        assert http.post("/oauth/2026-03/token", data=form).json()["status"] == "BAD_AUTH_CODE"  # single use

    def test_declined_consent_redirects_with_access_denied_and_the_state(self, http, sim: SimControl):
        app = sim.create_app()
        sim.consent(HUB_ID, approve=False)
        location = httpx.URL(self._authorize(http, app).headers["Location"])
        assert location.params["error"] == "access_denied" and location.params["state"] == "st-1"
        assert "code" not in location.params

    def test_consent_can_grant_fewer_scopes_and_query_params_override_it(self, http, sim: SimControl, running_sim):
        app = sim.create_app()
        sim.consent(HUB_ID, scopes=["oauth"])
        code = httpx.URL(self._authorize(http, app).headers["Location"]).params["code"]
        assert sim_state_code(running_sim, code) == (HUB_ID, ["oauth"])
        code = httpx.URL(self._authorize(http, app, sim_hub_id="77", sim_scopes="oauth x").headers["Location"]).params["code"]
        assert sim_state_code(running_sim, code) == (77, ["oauth", "x"])

    def test_redirect_uri_keeps_its_own_query(self, http, sim: SimControl):
        app = sim.create_app()
        sim.consent(HUB_ID)
        location = httpx.URL(self._authorize(http, app, redirect_uri="https://app.example.com/cb?tenant=a").headers["Location"])
        assert location.params["tenant"] == "a" and location.params["code"]

    @pytest.mark.parametrize("params,status", [
        ({"client_id": "unknown"}, 400),
        ({"redirect_uri": ""}, 400),
        ({"redirect_uri": "not-a-url"}, 400),
        ({"scope": ""}, 400),
        ({"code_challenge": "x", "code_challenge_method": "plain"}, 400),
    ])
    def test_unusable_requests_get_an_error_page_and_no_redirect(self, http, sim: SimControl, params, status):
        app = sim.create_app()
        sim.consent(HUB_ID)
        response = self._authorize(http, app, **params)
        assert response.status_code == status and "Location" not in response.headers

    def test_unregistered_redirect_uri_is_never_redirected_to(self, http, sim: SimControl):
        app = sim.create_app(redirect_uri=REDIRECT)
        sim.consent(HUB_ID)
        response = self._authorize(http, app, redirect_uri="https://evil.example.com/cb")
        assert response.status_code == 400 and "Location" not in response.headers

    def test_without_consent_configured_it_says_how_to_configure_it(self, http, sim: SimControl):
        app = sim.create_app()
        response = self._authorize(http, app)
        assert response.status_code == 409 and "/_sim/consent" in response.json()["message"]
        sim.consent(HUB_ID)
        sim.clear_consent()
        assert self._authorize(http, app).status_code == 409

    def test_reset_forgets_the_consent(self, http, sim: SimControl):
        app = sim.create_app()
        sim.consent(HUB_ID)
        sim.reset()
        app = sim.create_app()
        assert self._authorize(http, app).status_code == 409

    def test_pkce_challenge_is_carried_into_the_code(self, http, sim: SimControl):
        app = sim.create_app()
        sim.consent(HUB_ID)
        verifier = "v" * 50
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        code = httpx.URL(self._authorize(http, app, code_challenge=challenge,
                                         code_challenge_method="S256").headers["Location"]).params["code"]
        form = {"grant_type": "authorization_code", "client_id": app.client_id, "client_secret": app.client_secret,
                "code": code, "redirect_uri": self.LOOPBACK}
        assert http.post("/oauth/v3/token", data={**form, "code_verifier": "wrong"}).json()["status"] == "BAD_CODE_VERIFIER"

    def test_control_client_authorize_returns_the_location(self, running_sim, sim: SimControl):
        app = sim.create_app()
        sim.consent(HUB_ID)
        loc = sim.authorize(f"{running_sim.url}/oauth/authorize?client_id={app.client_id}&scope=oauth"
                            f"&redirect_uri={self.LOOPBACK}&state=z")
        assert loc.startswith(self.LOOPBACK + "?code=") and loc.endswith("&state=z")

    def test_invalid_consent_body_is_refused(self, http, sim: SimControl):
        assert http.post("/_sim/consent", json={"hub_id": 0}).status_code == 400
        assert http.post("/_sim/consent", json={"hub_id": 1, "nope": 1}).status_code == 400



def sim_state_code(running_sim, code: str):
    """(hub, scopes) of an issued auth code, read from the in-process simulator's state."""
    record = running_sim.state.auth_codes[code]
    return record.hub_id, record.scopes
