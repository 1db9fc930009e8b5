"""Shared fixtures: one in-process simulator per test session, reset before each test that uses it.

A session-wide server keeps the suite fast (no port churn, no thread start per test); ``/_sim/reset``
before each test gives every test a blank HubSpot, including config, faults, stats and simulated time.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, TypeVar

import httpx
import pytest

from hubspot_token_operator.hubspot import ApiGeneration, HubSpotClient
from hubspot_token_operator.simulator import RunningSimulator, SimControl, start_in_thread

T = TypeVar("T")
HUB_ID = 62515


@dataclass(frozen=True)
class Grant:
    """An installed OAuth app as the operator would hold it."""

    client_id: str
    client_secret: str
    refresh_token: str
    hub_id: int


@pytest.fixture(scope="session")
def running_sim() -> Iterator[RunningSimulator]:
    sim = start_in_thread()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def _session_control(running_sim: RunningSimulator) -> Iterator[SimControl]:
    with SimControl(running_sim.url) as control:
        yield control


@pytest.fixture(scope="session")
def _session_http(running_sim: RunningSimulator) -> Iterator[httpx.Client]:
    # Clients are shared: building an httpx.Client costs ~50 ms (TLS context), which adds up per test.
    with httpx.Client(base_url=running_sim.url) as client:
        yield client


@pytest.fixture
def sim(_session_control: SimControl) -> SimControl:
    """Control client for a freshly reset simulator."""
    _session_control.reset()
    return _session_control


@pytest.fixture
def http(sim: SimControl, _session_http: httpx.Client) -> httpx.Client:
    """Plain HTTP client on the (reset) simulator, for wire-level assertions."""
    return _session_http


@pytest.fixture
def sim_url(running_sim: RunningSimulator, sim: SimControl) -> str:
    return running_sim.url


@pytest.fixture
def grant(sim: SimControl) -> Grant:
    app = sim.create_app()
    refresh_token = sim.install(app.client_id, HUB_ID, ["oauth", "crm.objects.contacts.read"])
    return Grant(app.client_id, app.client_secret, refresh_token, HUB_ID)


@pytest.fixture
def run() -> Callable[[Awaitable[T]], T]:
    """Run a coroutine to completion (the suite has no pytest-asyncio; ``asyncio.run`` is enough)."""

    def runner(coro: Awaitable[T], timeout: float = 20.0) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(coro, timeout)

        return asyncio.run(bounded())

    return runner


@pytest.fixture
def make_client(sim_url: str) -> Callable[..., HubSpotClient]:
    """Build a client against the simulator; v1's one-time DeprecationWarning is silenced here and
    asserted explicitly in the generation tests."""

    def factory(api_generation: str | ApiGeneration = ApiGeneration.V2026_03, **kwargs: Any) -> HubSpotClient:
        kwargs.setdefault("base_url", sim_url)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return HubSpotClient(api_generation=api_generation, **kwargs)

    return factory
