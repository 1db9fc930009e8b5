"""HubSpotClient.refresh / exchange_code against the simulator over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import warnings
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from hubspot_token_operator.hubspot import ApiGeneration, ErrorKind, Failure, HubSpotClient, Reason, TokenGrant
from hubspot_token_operator.hubspot import generations
from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant

FIXED_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


class PinnedHostTransport(httpx.AsyncBaseTransport):
    """Like ``curl --connect-to``: keep the URL's host (and Host header), connect to the simulator.

    Real HTTP over TCP; only name resolution is replaced, since api-eu1.hubapi.com must not leave the box.
    """

    def __init__(self, target: str) -> None:
        self._target = httpx.URL(target)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._target.scheme, host=self._target.host, port=self._target.port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def refresh_with(client: HubSpotClient, grant: Grant, refresh_token: str | None = None):
    async with client:
        return await client.refresh(grant.client_id, grant.client_secret, refresh_token or grant.refresh_token)


def test_success_carries_tokens_expiry_and_metadata(run, make_client, grant):
    outcome = run(refresh_with(make_client(now=lambda: FIXED_NOW), grant))
    assert isinstance(outcome, TokenGrant) and outcome.ok
    assert outcome.access_token.reveal().startswith("CJ")
    assert outcome.refresh_token.reveal() == grant.refresh_token
    assert not outcome.refresh_token_rotated
    assert (outcome.expires_in, outcome.expires_at) == (1800, FIXED_NOW + timedelta(seconds=1800))
    assert (outcome.hub_id, outcome.token_type, outcome.token_use) == (HUB_ID, "bearer", "access_token")
    assert outcome.scopes == ("oauth", "crm.objects.contacts.read")
    assert isinstance(outcome.user_id, int)


def test_naive_clock_is_taken_as_utc(run, make_client, grant):
    outcome = run(refresh_with(make_client(now=lambda: datetime(2026, 1, 1)), grant))
    assert outcome.expires_at == datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)


def test_default_clock_is_aware_utc_now(run, make_client, grant):
    before = datetime.now(timezone.utc)
    outcome = run(refresh_with(make_client(), grant))
    assert before + timedelta(seconds=1799) <= outcome.expires_at <= datetime.now(timezone.utc) + timedelta(seconds=1800)


def test_rotating_refresh_tokens_are_reported_and_usable(run, make_client, sim: SimControl, grant):
    sim.configure(refresh_token_mode="rotating")

    async def scenario():
        async with make_client() as client:
            first = await client.refresh(grant.client_id, grant.client_secret, grant.refresh_token)
            second = await client.refresh(grant.client_id, grant.client_secret, first.refresh_token)
            stale = await client.refresh(grant.client_id, grant.client_secret, grant.refresh_token)
            return first, second, stale

    first, second, stale = run(scenario())
    assert first.refresh_token_rotated and second.refresh_token_rotated
    assert first.refresh_token != second.refresh_token
    assert (stale.kind, stale.reason) == (ErrorKind.TERMINAL, Reason.INVALID_GRANT)


def test_uninstall_is_terminal_invalid_grant(run, make_client, sim: SimControl, grant):
    sim.uninstall(grant.refresh_token)
    outcome = run(refresh_with(make_client(), grant))
    assert isinstance(outcome, Failure) and not outcome.ok
    assert (outcome.kind, outcome.reason, outcome.http_status) == (ErrorKind.TERMINAL, Reason.INVALID_GRANT, 400)
    assert (outcome.hubspot_status, outcome.oauth_error) == ("BAD_REFRESH_TOKEN", "invalid_grant")
    assert outcome.correlation_id and outcome.retry_after_seconds is None
    assert "refresh token is invalid, expired or revoked" in outcome.message


def test_refresh_token_of_another_app(run, make_client, sim: SimControl, grant):
    other = sim.create_app()
    wrong = Grant(other.client_id, other.client_secret, grant.refresh_token, HUB_ID)
    outcome = run(refresh_with(make_client(), wrong))
    assert (outcome.kind, outcome.reason) == (ErrorKind.TERMINAL, Reason.NOT_ISSUED_TO_CLIENT)


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_bad_client_credentials_are_terminal_invalid_client(run, make_client, grant, field):
    bad = Grant(**{**grant.__dict__, field: "00000000-0000-0000-0000-000000000000"})
    outcome = run(refresh_with(make_client(), bad))
    assert (outcome.kind, outcome.reason, outcome.oauth_error) == (ErrorKind.TERMINAL, Reason.INVALID_CLIENT, "invalid_client")


@pytest.mark.parametrize("gen", list(ApiGeneration))
def test_every_generation_uses_its_own_token_endpoint(run, make_client, sim: SimControl, grant, gen):
    outcome = run(refresh_with(make_client(gen), grant))
    assert outcome.ok
    assert sim.count(f"POST /oauth/{gen.value}/token", "200") == 1
    assert sim.stats()["total"] == 1


def test_v1_warns_once_about_deprecation(caplog):
    generations._reset_deprecation_warning_for_tests()
    caplog.set_level(logging.WARNING, logger="hubspot_token_operator.hubspot")
    with pytest.warns(DeprecationWarning, match="2027-02-16"):
        HubSpotClient(api_generation="v1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HubSpotClient(api_generation="v1")  # second time: silent
        HubSpotClient(api_generation="2026-03")
    assert sum("deprecated" in r.getMessage() for r in caplog.records) == 1


def test_unknown_generation_is_rejected():
    with pytest.raises(ValueError):
        HubSpotClient(api_generation="v2")


def test_eu_base_url(run, sim_url, sim: SimControl):
    app = sim.create_app()
    refresh_token = sim.install(app.client_id, 9001, ["oauth"], hublet="eu1")
    assert refresh_token.startswith("eu1-")

    async def scenario():
        transport = PinnedHostTransport(sim_url)
        async with HubSpotClient("https://api-eu1.hubapi.com/", transport=transport) as client:
            grant = await client.refresh(app.client_id, app.client_secret, refresh_token)
            details = await client.check_liveness(grant.access_token)
            return grant, details

    grant, details = run(scenario())
    assert grant.ok and grant.hub_id == 9001
    assert (details.portal_id, details.data_hosting_location, details.ui_domain) == (9001, "eu1", "app-eu1.hubspot.com")
    assert sim.stats()["hosts"] == {"api-eu1.hubapi.com": 2}


def test_base_url_with_path_prefix_is_respected(run, sim_url):
    async def scenario():
        async with HubSpotClient(f"{sim_url}/prefix") as client:
            return await client.refresh("id", "secret", "na1-x")

    outcome = run(scenario())
    assert (outcome.reason, outcome.http_status) == (Reason.NOT_FOUND, 404)  # /prefix/oauth/... does not exist


class TestSingleFlight:
    def test_twenty_concurrent_refreshes_make_one_http_call(self, run, make_client, sim: SimControl, grant):
        sim.add_fault("latency", "/oauth/", delay_ms=200)

        async def scenario():
            async with make_client() as client:
                calls = [client.refresh(grant.client_id, grant.client_secret, grant.refresh_token) for _ in range(20)]
                return await asyncio.gather(*calls)

        outcomes = run(scenario())
        assert all(o.ok for o in outcomes)
        assert len({o.access_token.reveal() for o in outcomes}) == 1
        assert sim.count("POST /oauth/2026-03/token") == 1
        assert sim.stats()["total"] == 1

    def test_different_grants_and_later_calls_are_not_coalesced(self, run, make_client, sim: SimControl, grant):
        other = sim.install(grant.client_id, HUB_ID + 1, ["oauth"])

        async def scenario():
            async with make_client() as client:
                await asyncio.gather(
                    client.refresh(grant.client_id, grant.client_secret, grant.refresh_token),
                    client.refresh(grant.client_id, grant.client_secret, other),
                )
                await client.refresh(grant.client_id, grant.client_secret, grant.refresh_token)

        run(scenario())
        assert sim.count("POST /oauth/2026-03/token") == 3

    def test_cancelling_one_caller_does_not_cancel_the_others(self, run, make_client, sim: SimControl, grant):
        sim.add_fault("latency", "/oauth/", delay_ms=200)

        async def scenario():
            async with make_client() as client:
                first = asyncio.ensure_future(client.refresh(grant.client_id, grant.client_secret, grant.refresh_token))
                second = asyncio.ensure_future(client.refresh(grant.client_id, grant.client_secret, grant.refresh_token))
                await asyncio.sleep(0.05)
                first.cancel()
                return first, await second

        first, second = run(scenario())
        assert first.cancelled() and second.ok
        assert sim.count("POST /oauth/2026-03/token") == 1


class TestExchangeCode:
    REDIRECT = "https://app.example.com/cb"

    def test_code_exchange_and_reuse(self, run, make_client, sim: SimControl):
        app = sim.create_app(redirect_uri=self.REDIRECT)
        code = sim.auth_code(app.client_id, HUB_ID, self.REDIRECT, ["oauth"])

        async def scenario():
            async with make_client() as client:
                first = await client.exchange_code(app.client_id, app.client_secret, code, self.REDIRECT)
                again = await client.exchange_code(app.client_id, app.client_secret, code, self.REDIRECT)
                return first, again

        first, again = run(scenario())
        assert first.ok and first.refresh_token.reveal().startswith("na1-") and not first.refresh_token_rotated
        assert (again.reason, again.hubspot_status) == (Reason.INVALID_GRANT, "BAD_AUTH_CODE")

    def test_pkce(self, run, make_client, sim: SimControl):
        import base64
        import hashlib

        verifier = "v" * 64
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        app = sim.create_app()
        code = sim.auth_code(app.client_id, HUB_ID, self.REDIRECT, code_challenge=challenge)

        async def scenario():
            async with make_client("v3") as client:
                return await client.exchange_code(app.client_id, app.client_secret, code, self.REDIRECT, verifier)

        assert run(scenario()).ok
