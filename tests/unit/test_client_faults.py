"""Every fault the simulator can inject, seen through the client's outcome classification."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from hubspot_token_operator.hubspot import ErrorKind, HubSpotClient, RateLimit, Reason
from hubspot_token_operator.simulator import SimControl

from .conftest import HUB_ID, Grant


async def refresh(client: HubSpotClient, grant: Grant):
    async with client:
        return await client.refresh(grant.client_id, grant.client_secret, grant.refresh_token)


def test_ten_secondly_429_retries_after_ten_seconds(run, make_client, sim: SimControl, grant):
    sim.add_fault("rate_limit", "/oauth/2026-03/token", count=1)
    outcome = run(refresh(make_client(), grant))
    assert (outcome.kind, outcome.reason, outcome.http_status) == (ErrorKind.RETRYABLE, Reason.RATE_LIMITED, 429)
    assert (outcome.policy_name, outcome.retry_after_seconds) == ("TEN_SECONDLY_ROLLING", 10.0)
    assert outcome.rate_limit == RateLimit(max=100, remaining=0, interval_ms=10000)
    assert outcome.retryable


def test_retry_after_header_wins(run, make_client, sim: SimControl, grant):
    sim.add_fault("rate_limit", "/oauth/", count=1, retry_after=3)
    assert run(refresh(make_client(), grant)).retry_after_seconds == 3.0


def test_daily_429_waits_long(run, make_client, sim: SimControl, grant):
    sim.add_fault("rate_limit", "/oauth/", policy="DAILY", count=1)
    outcome = run(refresh(make_client(), grant))
    assert (outcome.kind, outcome.reason, outcome.policy_name) == (ErrorKind.RETRYABLE, Reason.DAILY_RATE_LIMITED, "DAILY")
    assert outcome.retry_after_seconds == 3600.0
    assert outcome.rate_limit.daily_remaining == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(run, make_client, sim: SimControl, grant, status):
    sim.add_fault("server_error", "/oauth/", count=1, status=status)
    outcome = run(refresh(make_client(), grant))
    assert (outcome.kind, outcome.reason, outcome.http_status) == (ErrorKind.RETRYABLE, Reason.SERVER_ERROR, status)


def test_latency_beyond_the_read_timeout_is_a_timeout(run, make_client, sim: SimControl, grant):
    sim.add_fault("latency", "/oauth/", delay_ms=1000, count=1)
    timeout = httpx.Timeout(connect=1.0, read=0.2, write=1.0, pool=1.0)
    outcome = run(refresh(make_client(timeout=timeout), grant))
    assert (outcome.kind, outcome.reason) == (ErrorKind.RETRYABLE, Reason.TIMEOUT)
    assert "ReadTimeout" in outcome.message


def test_latency_within_the_timeout_is_fine(run, make_client, sim: SimControl, grant):
    sim.add_fault("latency", "/oauth/", delay_ms=100, count=1)
    assert run(refresh(make_client(timeout=2.0), grant)).ok


def test_dropped_connection_is_a_retryable_connection_error(run, make_client, sim: SimControl, grant):
    sim.add_fault("drop", "/oauth/", count=1)
    outcome = run(refresh(make_client(), grant))
    assert (outcome.kind, outcome.reason) == (ErrorKind.RETRYABLE, Reason.CONNECTION_ERROR)


def test_nothing_listening_is_a_connection_error(run, grant):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = run(refresh(HubSpotClient(f"http://127.0.0.1:{port}", timeout=2.0), grant))
    assert (outcome.kind, outcome.reason) == (ErrorKind.RETRYABLE, Reason.CONNECTION_ERROR)


def test_unusable_base_url_is_terminal(run, grant):
    outcome = run(refresh(HubSpotClient("ftp://api.hubapi.com"), grant))
    assert (outcome.kind, outcome.reason) == (ErrorKind.TERMINAL, Reason.BAD_CONFIGURATION)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "rate_limit"}, Reason.RATE_LIMITED),
        ({"kind": "rate_limit", "policy": "DAILY"}, Reason.DAILY_RATE_LIMITED),
        ({"kind": "server_error"}, Reason.SERVER_ERROR),
        ({"kind": "drop"}, Reason.CONNECTION_ERROR),
    ],
)
def test_faults_classify_the_same_on_every_operation(run, make_client, sim: SimControl, grant, fault, reason):
    pat = sim.create_private_app(HUB_ID)
    sim.add_fault(path="/", **fault)

    async def scenario():
        async with make_client() as client:
            return [
                await client.refresh(grant.client_id, grant.client_secret, grant.refresh_token),
                await client.introspect(grant.client_id, grant.client_secret, grant.refresh_token),
                await client.revoke(grant.client_id, grant.client_secret, grant.refresh_token),
                await client.private_app_token_info(pat.token),
                await client.check_liveness(pat.token),
            ]

    assert [o.reason for o in run(scenario())] == [reason] * 5


def test_real_rate_limit_on_bearer_calls_is_parsed(run, make_client, sim: SimControl):
    sim.configure(rate_limits={"ten_secondly_max": 2, "daily_max": 10})
    pat = sim.create_private_app(HUB_ID)

    async def scenario():
        async with make_client() as client:
            return [await client.check_liveness(pat.token) for _ in range(3)]

    first, second, third = run(scenario())
    assert first.rate_limit == RateLimit(max=2, remaining=1, interval_ms=10000, daily_max=10, daily_remaining=9)
    assert second.rate_limit.remaining == 0
    assert (third.reason, third.retry_after_seconds, third.rate_limit.remaining) == (Reason.RATE_LIMITED, 10.0, 0)


def test_requests_beyond_max_concurrency_wait_at_most_the_pool_timeout(run, make_client, sim: SimControl, grant):
    sim.add_fault("latency", "/account-info/", delay_ms=500, count=1)
    timeout = httpx.Timeout(connect=1.0, read=2.0, write=1.0, pool=0.1)

    async def scenario():
        async with make_client(max_concurrency=1, timeout=timeout) as client:
            slow = client.check_liveness("CJslow")
            queued = client.refresh(grant.client_id, grant.client_secret, grant.refresh_token)
            return await asyncio.gather(slow, queued)

    slow, queued = run(scenario())
    assert slow.reason == Reason.INVALID_TOKEN  # it got its answer, just late
    assert (queued.kind, queued.reason) == (ErrorKind.RETRYABLE, Reason.TIMEOUT)
    assert "PoolTimeout" in queued.message


def test_max_concurrency_must_be_positive():
    with pytest.raises(ValueError):
        HubSpotClient(max_concurrency=0)
