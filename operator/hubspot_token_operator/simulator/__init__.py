"""A local HubSpot: OAuth token endpoints (v1, v3, 2026-03), private-app tokens, data-API stubs, rate limits,
fault injection and a ``/_sim/`` control API. See docs/simulator.md.

In-process use::

    from hubspot_token_operator.simulator import start_in_thread
    sim = start_in_thread()          # 127.0.0.1, free port
    ... sim.url ...
    sim.stop()
"""

from .app import build_app
from .control_client import SimApp, SimControl, SimPrivateApp
from .server import RunningSimulator, start_in_thread
from .state import SimState

__all__ = ["RunningSimulator", "SimApp", "SimControl", "SimPrivateApp", "SimState", "build_app", "start_in_thread"]
