"""Assemble the aiohttp application: routes of every concern plus the stats/fault middlewares."""

from __future__ import annotations

import os

from aiohttp import web

from . import control_routes, data_routes, oauth_routes, private_app_routes
from .context import SIM_KEY, SimContext
from .middleware import count_requests, inject_faults, track_refreshes
from .persistence import Persister
from .state import SimState


def build_app(state: SimState | None = None, state_file: str | os.PathLike | None = None) -> web.Application:
    ctx = SimContext(state=state or SimState())
    app = web.Application(middlewares=[count_requests, track_refreshes, inject_faults], client_max_size=1024 * 1024)
    app[SIM_KEY] = ctx
    if state_file is not None:
        persister = Persister(ctx.state, state_file)
        persister.load()
        persister.attach(app)
    oauth_routes.add_routes(app)
    private_app_routes.add_routes(app)
    data_routes.add_routes(app)
    control_routes.add_routes(app)
    return app


def context_of(app: web.Application) -> SimContext:
    return app[SIM_KEY]  # type: ignore[return-value]
