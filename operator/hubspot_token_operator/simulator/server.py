"""Run the simulator on a background thread with its own event loop.

Tests, benchmarks and the demo need a real HTTP server without a subprocess. A dedicated thread and loop
keep the simulator independent of whatever loop the caller runs (pytest, Kopf, ``asyncio.run``), and
``stop()`` is safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import os
import threading

from aiohttp import web

from .app import build_app, context_of
from .context import SimContext
from .middleware import RouteAccessLogger, access_logger
from .state import SimState

SHUTDOWN_TIMEOUT_SECONDS = 1.0


async def start_site(
    app: web.Application, host: str, port: int, access_log: bool = False
) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner and the bound port (useful when ``port`` is 0)."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=access_logger() if access_log else None,
        access_log_class=RouteAccessLogger,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return runner, bound_port


class RunningSimulator:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state: SimState | None = None,
        state_file: str | os.PathLike | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._app = build_app(state, state_file)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hubspot-sim", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def context(self) -> SimContext:
        return context_of(self._app)

    @property
    def state(self) -> SimState:
        return self.context.state

    def start(self, timeout: float = 10.0) -> "RunningSimulator":
        """Start serving; a no-op when already started (so ``with start_in_thread() as sim`` works)."""
        if self._thread.is_alive() or self._ready.is_set():
            return self
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("simulator did not start in time")
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> "RunningSimulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            runner, self.port = await start_site(self._app, self.host, self.port)
        except BaseException as exc:  # report bind errors to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


def start_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    state: SimState | None = None,
    state_file: str | os.PathLike | None = None,
) -> RunningSimulator:
    return RunningSimulator(host, port, state, state_file).start()
