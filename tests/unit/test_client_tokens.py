"""Introspection, revocation, private-app token info and liveness probes through the client."""

from __future__ import annotations

import pytest

from hubspot_token_operator.hubspot import (
    AccountDetails,
    ApiGeneration,
    ErrorKind,
    PrivateAppTokenInfo,
    Reason,
    Revoked,
    TokenInfo,
)
from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant

ALL_GENERATIONS = list(ApiGeneration)


async def fresh_access_token(client, grant: Grant) -> str:
    return (await client.refresh(grant.client_id, grant.client_secret, grant.refresh_token)).access_token


class TestIntrospect:
    @pytest.mark.parametrize("gen", ALL_GENERATIONS)
    def test_live_access_and_refresh_tokens(self, run, make_client, grant, gen):
        async def scenario():
            async with make_client(gen) as client:
                access = await fresh_access_token(client, grant)
                return (
                    await client.introspect(grant.client_id, grant.client_secret, access),
                    await client.introspect(grant.client_id, grant.client_secret, grant.refresh_token),
                )

        access_info, refresh_info = run(scenario())
        assert isinstance(access_info, TokenInfo)
        assert (access_info.active, access_info.token_use, access_info.hub_id) == (True, "access_token", HUB_ID)
        assert 0 < access_info.expires_in <= 1800 and access_info.expires_at is not None
        assert (refresh_info.active, refresh_info.token_use, refresh_info.hub_id) == (True, "refresh_token", HUB_ID)
        assert refresh_info.client_id == grant.client_id
        assert refresh_info.scopes == ("oauth", "crm.objects.contacts.read")

    @pytest.mark.parametrize("gen", ALL_GENERATIONS)
    def test_expired_and_unknown_tokens_are_inactive(self, run, make_client, sim: SimControl, grant, gen):
        async def scenario():
            async with make_client(gen) as client:
                access = await fresh_access_token(client, grant)
                sim.advance(1801)
                return (
                    await client.introspect(grant.client_id, grant.client_secret, access),
                    await client.introspect(grant.client_id, grant.client_secret, "CJunknown", "access_token"),
                )

        expired, unknown = run(scenario())
        assert (expired.active, expired.token_use, expired.expires_at) == (False, "access_token", None)
        assert (unknown.active, unknown.token_use) == (False, "access_token")

    def test_bad_client_credentials_fail_instead_of_reporting_inactive(self, run, make_client, grant):
        async def scenario():
            async with make_client() as client:
                return await client.introspect(grant.client_id, "wrong-secret", grant.refresh_token)

        outcome = run(scenario())
        assert (outcome.kind, outcome.reason) == (ErrorKind.TERMINAL, Reason.INVALID_CLIENT)


class TestRevoke:
    @pytest.mark.parametrize("gen", ALL_GENERATIONS)
    def test_revoke_refresh_token(self, run, make_client, grant, gen):
        async def scenario():
            async with make_client(gen) as client:
                revoked = await client.revoke(grant.client_id, grant.client_secret, grant.refresh_token)
                after = await client.refresh(grant.client_id, grant.client_secret, grant.refresh_token)
                return revoked, after

        revoked, after = run(scenario())
        assert isinstance(revoked, Revoked) and not revoked.already_inactive
        assert after.reason == Reason.INVALID_GRANT

    def test_v1_revoking_twice_and_access_tokens(self, run, make_client, grant):
        async def scenario():
            async with make_client("v1") as client:
                access = await fresh_access_token(client, grant)
                await client.revoke(grant.client_id, grant.client_secret, grant.refresh_token)
                return (
                    await client.revoke(grant.client_id, grant.client_secret, grant.refresh_token),
                    await client.revoke(grant.client_id, grant.client_secret, access),
                )

        again, access = run(scenario())
        assert again.already_inactive
        assert (access.kind, access.reason) == (ErrorKind.TERMINAL, Reason.UNSUPPORTED)

    def test_revoke_access_token(self, run, make_client, grant):
        async def scenario():
            async with make_client() as client:
                access = await fresh_access_token(client, grant)
                revoked = await client.revoke(grant.client_id, grant.client_secret, access, "access_token")
                return revoked, await client.check_liveness(access)

        revoked, liveness = run(scenario())
        assert revoked.ok and (liveness.kind, liveness.reason) == (ErrorKind.INVALID_TOKEN, Reason.INVALID_TOKEN)

    def test_revoke_with_bad_client_fails(self, run, make_client, grant):
        async def scenario():
            async with make_client("v3") as client:
                return await client.revoke(grant.client_id, "nope", grant.refresh_token)

        assert run(scenario()).reason == Reason.INVALID_CLIENT


class TestPrivateAppTokenInfo:
    @pytest.mark.parametrize("hublet", ["na1", "eu1"])
    def test_live_token(self, run, make_client, sim: SimControl, hublet):
        app = sim.create_private_app(HUB_ID, ["crm.objects.contacts.read"], hublet=hublet)

        async def scenario():
            async with make_client() as client:
                return await client.private_app_token_info(app.token)

        info = run(scenario())
        assert isinstance(info, PrivateAppTokenInfo)
        assert (info.hub_id, info.app_id, info.scopes) == (HUB_ID, app.app_id, ("crm.objects.contacts.read",))

    def test_rotated_and_deactivated_tokens(self, run, make_client, sim: SimControl):
        app = sim.create_private_app(HUB_ID)
        new = sim.rotate_private_app(app.app_id, expire="later")
        sim.advance(8 * 24 * 3600)

        async def scenario():
            async with make_client() as client:
                expired = await client.private_app_token_info(app.token)
                alive = await client.private_app_token_info(new)
                sim.deactivate_private_app(app.app_id)
                dead = await client.private_app_token_info(new)
                return expired, alive, dead

        expired, alive, dead = run(scenario())
        assert (expired.kind, expired.reason) == (ErrorKind.INVALID_TOKEN, Reason.EXPIRED_TOKEN)
        assert alive.ok
        assert (dead.kind, dead.reason) == (ErrorKind.INVALID_TOKEN, Reason.INVALID_TOKEN)


class TestLiveness:
    @pytest.mark.parametrize(
        ("gen", "route"),
        [("2026-03", "GET /account-info/2026-03/details"), ("v3", "GET /account-info/v3/details"),
         ("v1", "GET /account-info/v3/details")],
    )
    def test_oauth_token_returns_portal_id(self, run, make_client, sim: SimControl, grant, gen, route):
        async def scenario():
            async with make_client(gen) as client:
                return await client.check_liveness(await fresh_access_token(client, grant))

        details = run(scenario())
        assert isinstance(details, AccountDetails) and details.portal_id == HUB_ID
        assert details.rate_limit.max == 100
        assert sim.count(route, "200") == 1

    def test_private_app_token(self, run, make_client, sim: SimControl):
        app = sim.create_private_app(4242)

        async def scenario():
            async with make_client() as client:
                return await client.check_liveness(app.token)

        details = run(scenario())
        assert details.portal_id == 4242 and details.rate_limit.daily_max == 250000

    def test_expired_unknown_and_unscoped_tokens(self, run, make_client, sim: SimControl, grant):
        unscoped_app = sim.create_app()
        unscoped = sim.install(unscoped_app.client_id, HUB_ID, ["crm.objects.contacts.read"])

        async def scenario():
            async with make_client() as client:
                access = await fresh_access_token(client, grant)
                no_scope = await client.refresh(unscoped_app.client_id, unscoped_app.client_secret, unscoped)
                forbidden = await client.check_liveness(no_scope.access_token)
                unknown = await client.check_liveness("CJnot-a-token")
                sim.advance(1800 + 300)
                expired = await client.check_liveness(access)
                return forbidden, unknown, expired

        forbidden, unknown, expired = run(scenario())
        assert (forbidden.kind, forbidden.reason, forbidden.hubspot_status) == (
            ErrorKind.FORBIDDEN, Reason.MISSING_SCOPES, "MISSING_SCOPES")
        assert forbidden.rate_limit is not None
        assert (unknown.kind, unknown.reason, unknown.http_status) == (ErrorKind.INVALID_TOKEN, Reason.INVALID_TOKEN, 401)
        assert (expired.kind, expired.reason) == (ErrorKind.INVALID_TOKEN, Reason.EXPIRED_TOKEN)
        assert "expired 5 minute(s) ago" in expired.message
